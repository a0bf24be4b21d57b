//! The unified reader interface (社保卡读卡器统一接口, ssc-card.md §6) over HTTP, so that HIS code
//! written against `SSCardDriver.dll` can switch to the agent through a thin shim without
//! changing its logic: each function answers 200 with the DLL's return value in `ret` (0, one
//! of the negative codes of the §6 table, or −SW for a card status) and its output buffer in
//! `out`.
//!
//! - `iReadCardBas(iType, pOutInfo)`: `out` is
//!   `区划代码|社会保障号码|卡号|卡识别码|姓名|卡复位信息|规范版本|发卡日期|卡有效期|终端机编号|终端设备号|`.
//! - `iVerifyPIN(iType, pOutInfo)`: the PIN comes in the request (this agent has no PIN pad; §6
//!   notes OCX builds that take it as a string); `ret` −51 with `tries_left`, −52 blocked.
//!
//! `iType` (1 contact, 2 contactless, 3/4 auto) is checked to be 1..=4; PC/SC readers here are
//! contact readers, so every value reads the contact card.

use axum::Json;
use axum::extract::State;
use card_core::auth::Pin;
use card_core::ssc;
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::card;
use crate::error::AgentError;

/// A unified-interface call.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UnifiedRequest {
    /// 1 contact, 2 contactless, 3 auto (contact first), 4 auto (contactless first).
    #[serde(rename = "iType")]
    pub i_type: i32,
    /// The reader; default: the configured one, else the first reader holding a card.
    #[serde(default)]
    pub reader: Option<String>,
    /// `iVerifyPIN` only: the PIN (4 to 12 digits). Never logged.
    #[serde(default)]
    pub pin: Option<String>,
}

impl std::fmt::Debug for UnifiedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedRequest")
            .field("i_type", &self.i_type)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

/// The DLL's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnifiedReply {
    /// The return value: 0 success, else the error code (ssc-card.md §6).
    pub ret: i32,
    /// `pOutInfo`: the output string on success, the error message otherwise.
    pub out: String,
    /// `iVerifyPIN` with `ret` −51: the tries left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u8>,
}

impl UnifiedReply {
    fn error(e: &AgentError) -> Self {
        tracing::info!(
            code = e.catalogue().code,
            ret = e.reader_code(),
            "unified call failed"
        );
        Self {
            ret: e.reader_code(),
            out: e.to_string(),
            tries_left: match e {
                AgentError::PinWrong { tries_left } => Some(*tries_left),
                _ => None,
            },
        }
    }
}

/// The ATR's historical bytes (卡复位信息): ISO/IEC 7816-3 §8.2 — T0's low nibble counts them,
/// and they follow the interface bytes that T0/TDi announce. `None` if the ATR is truncated.
pub fn atr_historical_bytes(atr: &[u8]) -> Option<&[u8]> {
    let t0 = *atr.get(1)?;
    let count = usize::from(t0 & 0x0F);
    let mut pos = 2;
    let mut indicator = t0 >> 4;
    loop {
        let interface = usize::try_from((indicator & 0x0F).count_ones()).ok()?;
        let has_td = indicator & 0x08 != 0;
        pos += interface;
        if !has_td {
            break;
        }
        indicator = *atr.get(pos - 1)? >> 4;
    }
    atr.get(pos..pos + count)
}

async fn resolve_reader(state: &AppState, asked: Option<String>) -> Result<String, AgentError> {
    if let Some(reader) = asked.or_else(|| state.settings.default_reader.clone()) {
        return Ok(reader);
    }
    state
        .readers
        .list(state.settings.card_timeout_ms)
        .await?
        .into_iter()
        .find(|r| r.card_present)
        .map(|r| r.name)
        .ok_or(AgentError::NoCard)
}

fn check_type(i_type: i32) -> Result<(), AgentError> {
    if (1..=4).contains(&i_type) {
        Ok(())
    } else {
        Err(AgentError::BadRequest("iType must be 1 to 4".into()))
    }
}

/// `iReadCardBas`: reads the card and answers the `|`-separated basic information.
#[utoipa::path(post, path = "/v1/iReadCardBas", request_body = UnifiedRequest,
    responses((status = 200, body = UnifiedReply)))]
pub async fn i_read_card_bas(
    State(state): State<AppState>,
    Json(request): Json<UnifiedRequest>,
) -> Json<UnifiedReply> {
    Json(match read_card_bas(&state, request).await {
        Ok(out) => UnifiedReply {
            ret: 0,
            out,
            tries_left: None,
        },
        Err(e) => UnifiedReply::error(&e),
    })
}

async fn read_card_bas(state: &AppState, request: UnifiedRequest) -> Result<String, AgentError> {
    check_type(request.i_type)?;
    let reader = resolve_reader(state, request.reader).await?;
    let authority = state.authority.clone();
    let reading = state
        .readers
        .run(&reader, state.settings.card_timeout_ms, move |link| {
            card::read_social_security(link, &authority)
        })
        .await?;
    let historical = atr_historical_bytes(&reading.atr)
        .ok_or_else(|| AgentError::CardData("the ATR is truncated".into()))?;
    let output = ssc::card_bas_output(
        &reading.identity,
        &reading.holder,
        &hex::encode_upper(historical),
        &state.settings.terminal_no,
        &state.settings.device_no,
    )?;
    Ok(output.into_string())
}

/// `iVerifyPIN`: presents the PIN given in the request.
#[utoipa::path(post, path = "/v1/iVerifyPIN", request_body = UnifiedRequest,
    responses((status = 200, body = UnifiedReply)))]
pub async fn i_verify_pin(
    State(state): State<AppState>,
    Json(request): Json<UnifiedRequest>,
) -> Json<UnifiedReply> {
    Json(match verify(&state, request).await {
        Ok(()) => UnifiedReply {
            ret: 0,
            out: String::new(),
            tries_left: None,
        },
        Err(e) => UnifiedReply::error(&e),
    })
}

async fn verify(state: &AppState, request: UnifiedRequest) -> Result<(), AgentError> {
    check_type(request.i_type)?;
    let pin = Pin::new(request.pin.as_deref().unwrap_or_default()).map_err(AgentError::from)?;
    let reader = resolve_reader(state, request.reader).await?;
    state
        .readers
        .run(&reader, state.settings.card_timeout_ms, move |link| {
            card::verify_pin(link, &pin)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn historical_bytes_follow_the_interface_bytes() {
        // fixtures/cards/tianjin-3g.toml: "3B 6C 00 00 + 12 historical bytes": T0 = 6C → TB1
        // and TC1 present, K = 12.
        let atr = hex::decode("3B6C0000565353432D544A2D332E3030").unwrap();
        assert_eq!(atr_historical_bytes(&atr).unwrap(), &atr[4..]);
        // T0 = 80 (TD1 only, K = 0), TD1 = 01 (T=1, nothing more): no historical bytes.
        assert_eq!(atr_historical_bytes(&[0x3B, 0x80, 0x01]).unwrap(), b"");
        // Truncated.
        assert!(atr_historical_bytes(&[0x3B, 0x6C, 0x00]).is_none());
        assert!(atr_historical_bytes(&[0x3B]).is_none());
    }
}
