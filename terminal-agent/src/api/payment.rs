//! `POST /v1/readers/{name}/purchase` `{"amount_fen": N}`: a card purchase through the switch
//! ([`crate::payment`]), answered with the issuer's response code and how the card finished.
//! A decline is HTTP 200 (the cashier acts on `outcome` and `response_code`); an unanswered
//! authorisation is 200 with `outcome` `"unknown"` (never "failed": the issuer may have
//! approved), `response_code` null and the card finished with AAC. With a journal
//! ([`configure_journal`]) the terminal's reversal of the purchase is journaled before the
//! request leaves and queued when no answer comes: `reversal_pending` is true.
//!
//! Settings ([`PaymentConfig`]): given once with [`configure`], else from the environment
//! (`SSC_SWITCH_URL`, `SSC_TERMINAL_ID` 8 characters, `SSC_MERCHANT_ID` 15, `SSC_MERCHANT_NAME`,
//! `SSC_PAYMENT_TIMEOUT_MS`, default 15000, `SSC_SWITCH_PAN_KEY_SM3`: 64 hex digits, the
//! fingerprint of the switch's PAN sealing key, needed unless the switch is on loopback).
//! Without a switch URL the route answers 400.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Path, State};
use card_core::pboc::CryptogramType;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::error::AgentError;
use crate::journal::Journal;
use crate::journal::payrev::PaymentsClient;
use crate::payment::{self, PurchaseSetup, SwitchEndpoint};

/// Where purchases go and who the terminal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentConfig {
    /// The switch's base URL.
    pub switch_url: String,
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// 9F4E, ASCII, at most 20 bytes.
    pub merchant_name: String,
    /// The terminal's authorisation timeout, ms.
    pub timeout_ms: u64,
    /// The SM3 fingerprint of the switch's PAN sealing key (`payment-switch` logs it at
    /// start); required unless the switch is on loopback ([`crate::payment::pin_pan_key`]).
    pub pan_key_sm3: Option<[u8; 32]>,
}

static CONFIG: OnceLock<PaymentConfig> = OnceLock::new();

static JOURNAL: OnceLock<Journal> = OnceLock::new();

/// Sets the journal that purchase timeouts journal their payment reversal in (once; later calls
/// are ignored); returns whether this call set it. Without it no reversal is journaled.
pub fn configure_journal(journal: Journal) -> bool {
    JOURNAL.set(journal).is_ok()
}

/// The client of the switch's payment reversal route, from the payment settings (None when
/// payments are not configured); its timeout is the authorisation timeout.
pub fn reversal_client() -> Option<PaymentsClient> {
    let config = config()?;
    Some(PaymentsClient::new(
        reqwest::Client::new(),
        &config.switch_url,
        config.timeout_ms,
    ))
}

/// Sets the payment settings once (later calls are ignored); returns whether this call set them.
pub fn configure(config: PaymentConfig) -> bool {
    CONFIG.set(config).is_ok()
}

fn config() -> Option<PaymentConfig> {
    if let Some(c) = CONFIG.get() {
        return Some(c.clone());
    }
    let var = |k: &str| std::env::var(k).ok();
    Some(PaymentConfig {
        switch_url: var("SSC_SWITCH_URL")?,
        terminal_id: var("SSC_TERMINAL_ID")?,
        merchant_id: var("SSC_MERCHANT_ID")?,
        merchant_name: var("SSC_MERCHANT_NAME").unwrap_or_default(),
        timeout_ms: var("SSC_PAYMENT_TIMEOUT_MS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(15_000),
        pan_key_sm3: var("SSC_SWITCH_PAN_KEY_SM3")
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                parse_sm3(&v).unwrap_or_else(|| {
                    // A pin no key matches: every purchase is refused until it is mended.
                    tracing::error!(
                        "SSC_SWITCH_PAN_KEY_SM3 is not 64 hex digits: no purchase is sent"
                    );
                    [0; 32]
                })
            }),
    })
}

/// 64 hex digits as 32 bytes.
fn parse_sm3(text: &str) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(hex::decode(text.trim()).ok()?).ok()
}

/// The request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// Amount, fen.
    pub amount_fen: i64,
}

/// What the cashier is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseOutcome {
    /// Approved by the issuer and finished with TC on the card: hand over the goods.
    Approved,
    /// Declined by the issuer, or approved but not finished on the card (then the approval is
    /// reversed, `reversal_pending`).
    Declined,
    /// No answer from the switch in time: unknown, never "failed"; with a journal the
    /// terminal's reversal is pending and the switch undoes whatever happened.
    Unknown,
}

/// The answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurchaseView {
    /// The outcome.
    pub outcome: PurchaseOutcome,
    /// ISO 8583 field 39 from the switch; null when it did not answer in time.
    pub response_code: Option<String>,
    /// Approved amount, fen.
    pub approved_fen: i64,
    /// Retrieval reference number.
    pub rrn: Option<String>,
    /// Authorisation id.
    pub auth_code: Option<String>,
    /// Whether the card accepted the issuer's ARPC (null: no ARPC).
    pub issuer_authenticated: Option<bool>,
    /// How the card finished: `TC` (approved) or `AAC` (declined).
    pub card_result: String,
    /// The purchase's `terminal_txn_id` (1-32 of `[A-Za-z0-9-]`), as sent to the switch.
    pub terminal_txn_id: String,
    /// True when the terminal's reversal of the purchase is queued in the journal and pending
    /// until the switch answers `00`: no answer came (outcome unknown), or the issuer's approval
    /// was not finished on the card.
    pub reversal_pending: bool,
}

fn bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// The route's handler.
///
/// Errors: 400 without payment settings or with a bad amount; card and reader errors.
#[utoipa::path(post, path = "/v1/readers/{name}/purchase",
    params(("name" = String, Path, description = "PC/SC reader name")),
    request_body = PurchaseBody,
    responses(
        (status = 200, body = PurchaseView, description = "approved, declined or unknown (see outcome)"),
        (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody), (status = 500, body = super::ErrorBody),
        (status = 504, body = super::ErrorBody),
    ))]
pub async fn purchase(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<PurchaseBody>,
) -> Result<Json<PurchaseView>, ApiError> {
    let config = config().ok_or_else(|| {
        AgentError::BadRequest("payments are not configured (SSC_SWITCH_URL ...)".into())
    })?;
    let now = crate::journal::envelope::beijing_now();
    let mut un = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut un)
        .map_err(|_| AgentError::Internal("no system randomness".into()))?;
    let mut txn = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut txn)
        .map_err(|_| AgentError::Internal("no system randomness".into()))?;
    // Unix ms (13 digits until 2286) + '-' + 12 hex digits: 26 characters of [0-9A-F-].
    let terminal_txn_id = format!(
        "{}-{}",
        crate::journal::store::now_ms(),
        hex::encode_upper(txn)
    );
    let yy = u8::try_from(now.year().rem_euclid(100)).unwrap_or(0);
    let setup = PurchaseSetup {
        amount_fen: body.amount_fen,
        terminal_id: config.terminal_id,
        merchant_id: config.merchant_id,
        merchant_name: config.merchant_name,
        date: [bcd(yy), bcd(u8::from(now.month())), bcd(now.day())],
        time: [bcd(now.hour()), bcd(now.minute()), bcd(now.second())],
        unpredictable_number: un,
    };
    let endpoint = SwitchEndpoint {
        url: config.switch_url,
        timeout_ms: config.timeout_ms,
        pan_key_sm3: config.pan_key_sm3,
    };
    let receipt = payment::purchase_identified(
        &state.readers,
        &name,
        reqwest::Client::new(),
        endpoint,
        setup,
        Some(payment::PurchaseIdentity {
            terminal_txn_id: terminal_txn_id.clone(),
            journal: JOURNAL.get().cloned(),
        }),
    )
    .await?;
    let answer = receipt.answer;
    let outcome = match &answer {
        None => PurchaseOutcome::Unknown,
        Some(a) if a.approved_fen > 0 && receipt.completion.cryptogram == CryptogramType::Tc => {
            PurchaseOutcome::Approved
        }
        Some(_) => PurchaseOutcome::Declined,
    };
    Ok(Json(PurchaseView {
        outcome,
        response_code: answer.as_ref().map(|a| a.response_code.clone()),
        approved_fen: answer.as_ref().map_or(0, |a| a.approved_fen),
        rrn: answer.as_ref().map(|a| a.rrn.clone()),
        auth_code: answer.and_then(|a| a.auth_code),
        issuer_authenticated: receipt.completion.issuer_authenticated,
        card_result: match receipt.completion.cryptogram {
            CryptogramType::Tc => "TC",
            CryptogramType::Aac => "AAC",
            CryptogramType::Arqc => "ARQC",
            CryptogramType::Rfu => "RFU",
        }
        .to_owned(),
        terminal_txn_id,
        reversal_pending: receipt.reversal_msgid.is_some(),
    }))
}
