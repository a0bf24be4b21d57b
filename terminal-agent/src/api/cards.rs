//! The REST-style card routes: readers, the card's identity and holder, the bank application,
//! PIN verification. Personal data is masked unless the caller asks `?reveal=true`.

use axum::Json;
use axum::extract::{Path, Query, State};
use card_core::auth::Pin;
use card_core::ssc::{CardIdentity, Holder, Sex};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::card;
use crate::error::AgentError;
use crate::reader::ReaderInfo;

/// `?reveal=true` shows personal data in clear.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct RevealQuery {
    /// Show the 社会保障号码, name, birth data and PAN in clear.
    #[serde(default)]
    pub reveal: bool,
}

/// EF05, the card (no personal data).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    /// 卡识别码, 32 hex characters.
    pub card_id: String,
    /// 发卡地区行政区划代码 (first 6 characters of the 卡识别码).
    pub region_code: String,
    /// 卡类别.
    pub card_type: String,
    /// 规范版本 (`"3.00"`).
    pub spec_version: String,
    /// 初始化机构编号, 24 hex characters.
    pub issuing_org: String,
    /// 发卡日期 `YYYYMMDD`.
    pub issue_date: String,
    /// 卡有效期 `YYYYMMDD`, absent when the card has none.
    pub expiry_date: Option<String>,
    /// 卡号 (9 characters).
    pub card_number: String,
}

/// EF06, the holder; masked unless revealed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HolderView {
    /// 社会保障号码 (masked: `120101********1236`).
    pub ssn: String,
    /// 姓名 with 姓名扩展 (masked: `赵**`).
    pub name: String,
    /// 性别 code (GB/T 2261.1: `1` male, `2` female).
    pub sex: String,
    /// 民族 code (GB 3304).
    pub ethnicity: Option<u8>,
    /// 出生地 (masked to the province: `12****`).
    pub birthplace: Option<String>,
    /// 出生日期 `YYYYMMDD` (masked: `1988****`).
    pub birth_date: Option<String>,
}

/// `GET /v1/readers/{name}/card`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CardView {
    /// The reader.
    pub reader: String,
    /// The card's ATR, hex.
    pub atr: String,
    /// EF05.
    pub identity: IdentityView,
    /// EF06.
    pub holder: HolderView,
    /// True if the card proved itself genuine to the HSM (3.00 cards).
    pub card_authenticated: bool,
    /// APDUs the read cost.
    pub apdus: u32,
}

/// `GET /v1/readers/{name}/bank`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BankView {
    /// AID, hex.
    pub aid: String,
    /// Application label.
    pub label: Option<String>,
    /// PAN, masked unless revealed (`621700*********0016`).
    pub pan: String,
    /// PAN sequence number.
    pub psn: Option<u8>,
    /// Application expiry `YYYYMMDD`.
    pub expiry_date: String,
    /// APDUs the read cost.
    pub apdus: u32,
}

/// `POST /v1/readers/{name}/verify-pin` body. The PIN is never logged.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PinRequest {
    /// 4 to 12 digits.
    pub pin: String,
}

impl std::fmt::Debug for PinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinRequest(****)")
    }
}

/// `POST /v1/readers/{name}/verify-pin` success.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PinVerified {
    /// Always true.
    pub verified: bool,
}

/// `text` with all but the first `head` and the last `tail` characters as `*`.
pub(crate) fn mask(text: &str, head: usize, tail: usize) -> String {
    let count = text.chars().count();
    if count <= head + tail {
        return "*".repeat(count);
    }
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i >= count - tail {
                c
            } else {
                '*'
            }
        })
        .collect()
}

impl From<&CardIdentity> for IdentityView {
    fn from(identity: &CardIdentity) -> Self {
        IdentityView {
            card_id: identity.card_id.to_hex(),
            region_code: identity.card_id.region_code(),
            card_type: identity.card_type.clone(),
            spec_version: identity.spec_version.clone(),
            issuing_org: identity.issuing_org.clone(),
            issue_date: identity.issue_date.to_string(),
            expiry_date: identity.expiry.map(|d| d.to_string()),
            card_number: identity.card_number.clone(),
        }
    }
}

impl HolderView {
    /// The holder, masked unless `reveal`.
    pub fn new(holder: &Holder, reveal: bool) -> Self {
        let sex = match holder.sex {
            Sex::NotKnown => "0".to_owned(),
            Sex::Male => "1".to_owned(),
            Sex::Female => "2".to_owned(),
            Sex::NotStated => "9".to_owned(),
            Sex::Other(b) => char::from(b).to_string(),
        };
        let shown = |text: String, head, tail| {
            if reveal {
                text
            } else {
                mask(&text, head, tail)
            }
        };
        HolderView {
            ssn: shown(holder.ssn.expose().to_owned(), 6, 4),
            name: shown(holder.name.expose().to_owned(), 1, 0),
            sex,
            ethnicity: holder.ethnicity,
            birthplace: holder.birthplace.clone().map(|b| shown(b, 2, 0)),
            birth_date: holder.birth_date.map(|d| shown(d.to_string(), 4, 0)),
        }
    }
}

/// Lists the readers.
#[utoipa::path(get, path = "/v1/readers", responses(
    (status = 200, body = [ReaderInfo]),
    (status = 502, body = super::ErrorBody),
))]
pub async fn list_readers(
    State(state): State<AppState>,
) -> Result<Json<Vec<ReaderInfo>>, ApiError> {
    Ok(Json(
        state.readers.list(state.settings.card_timeout_ms).await?,
    ))
}

/// Reads the social security application: identity (EF05) and holder (EF06).
#[utoipa::path(get, path = "/v1/readers/{name}/card",
    params(("name" = String, Path, description = "PC/SC reader name"), RevealQuery),
    responses(
        (status = 200, body = CardView),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
        (status = 422, body = super::ErrorBody), (status = 503, body = super::ErrorBody),
        (status = 504, body = super::ErrorBody),
    ))]
pub async fn read_card(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<RevealQuery>,
) -> Result<Json<CardView>, ApiError> {
    let authority = state.authority.clone();
    let reading = state
        .readers
        .run(&name, state.settings.card_timeout_ms, move |link| {
            card::read_social_security(link, &authority)
        })
        .await?;
    tracing::info!(reader = %name, apdus = reading.apdus, holder = ?reading.holder, "card read");
    Ok(Json(CardView {
        reader: name,
        atr: hex::encode_upper(&reading.atr),
        identity: IdentityView::from(&reading.identity),
        holder: HolderView::new(&reading.holder, query.reveal),
        card_authenticated: reading.card_authenticated,
        apdus: reading.apdus,
    }))
}

/// Reads the PBOC bank application.
#[utoipa::path(get, path = "/v1/readers/{name}/bank",
    params(("name" = String, Path, description = "PC/SC reader name"), RevealQuery),
    responses((status = 200, body = BankView), (status = 422, body = super::ErrorBody)))]
pub async fn read_bank(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<RevealQuery>,
) -> Result<Json<BankView>, ApiError> {
    let reading = state
        .readers
        .run(&name, state.settings.card_timeout_ms, card::read_bank)
        .await?;
    let app = &reading.application;
    let pan = app.pan.expose().to_owned();
    Ok(Json(BankView {
        aid: hex::encode_upper(&app.aid),
        label: app.label.clone(),
        pan: if query.reveal { pan } else { mask(&pan, 6, 4) },
        psn: app.psn,
        expiry_date: app.expiry.to_string(),
        apdus: reading.apdus,
    }))
}

/// Verifies the holder's PIN.
#[utoipa::path(post, path = "/v1/readers/{name}/verify-pin",
    params(("name" = String, Path, description = "PC/SC reader name")),
    request_body = PinRequest,
    responses(
        (status = 200, body = PinVerified),
        (status = 400, body = super::ErrorBody, description = "pin_format"),
        (status = 422, body = super::ErrorBody, description = "pin_wrong, with tries_left"),
        (status = 423, body = super::ErrorBody, description = "pin_blocked"),
    ))]
pub async fn verify_pin(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(request): Json<PinRequest>,
) -> Result<Json<PinVerified>, ApiError> {
    let pin = Pin::new(&request.pin).map_err(AgentError::from)?;
    drop(request);
    state
        .readers
        .run(&name, state.settings.card_timeout_ms, move |link| {
            card::verify_pin(link, &pin)
        })
        .await?;
    Ok(Json(PinVerified { verified: true }))
}
