//! The switch's HTTP API for terminals (JSON over loopback or TLS in front): purchase, refund,
//! void, reversal, QR purchase. A refusal or decline is HTTP 200 with its ISO 8583 response
//! code (the terminal acts on the code, as on field 39); 400/422 for a body that does not parse;
//! 500 for a store/ledger/HSM fault (logged; the body says only that). The PAN never reaches a
//! log, and never crosses this API in clear: the terminal seals it to the switch's key.
//!
//! `GET /payments/v1/pan-key` → `{algorithm: "SM2", public_key_hex}` (65 bytes `04‖X‖Y`): the
//! key terminals seal the PAN to (404 when the switch has none).
//! `POST /payments/v1/purchase` `{terminal_id, merchant_id, pan_sealed_hex, psn, amount_fen,
//! currency, icc_data_hex}` → `{response_code, approved_fen, rrn, stan, auth_code, arpc_hex}`.
//! `pan_sealed_hex` is the SM2 ciphertext (`C1‖C3‖C2`, GB/T 32918.4-2016, e.g.
//! `hsm::sm::sm2_encrypt`) of the PAN's ASCII digits, opened only inside the switch's HSM:
//! malformed → `30`, does not open or holds no PAN → `63`. A body with a clear `pan` is refused
//! `30` (nothing sent or posted, the value not logged).
//! `POST /payments/v1/refund`, `/payments/v1/void` `{terminal_id, merchant_id, original_rrn,
//! amount_fen}` → the same reply shape.
//! A purchase may carry `terminal_txn_id` (1..=32 ASCII letters, digits, `-`; unique per
//! terminal); `POST /payments/v1/reversal` `{terminal_id, merchant_id, terminal_txn_id}` →
//! `{response_code}` undoes that purchase whatever happened to it ([`super::terminal`]).
//! `POST /payments/v1/qr` `{terminal_id, merchant_id, amount_fen, token}` → the purchase reply
//! shape: a partner's SM2-signed dynamic QR token ([`super::qr`]: single use, short-lived,
//! bound to the amount the terminal shows, verified by the HSM; `30` malformed or unknown
//! partner, `63` bad signature, `13` another amount, `54` expired, `94` replayed).

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::adjust::AdjustRequest;
use super::icc::ICC_DATA_LEN_MAX;
use super::qr::{QrPurchaseRequest, TOKEN_LEN_MAX};
use super::switch::{PaymentOutcome, PurchaseRequest, Switch};
use super::terminal::TerminalReversal;
use super::{PaymentError, codes};

/// Largest request body, bytes.
pub const PAYMENT_BODY_LEN_MAX: usize = 4_096;

/// A purchase on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// PAN digits in clear: always refused (`30`); kept only so that such a body gets a clear
    /// response code rather than a parse error. Never logged.
    #[serde(default)]
    pub pan: Option<String>,
    /// The PAN sealed to the switch's key (see the module doc), hex.
    #[serde(default)]
    pub pan_sealed_hex: Option<String>,
    /// PAN sequence number.
    pub psn: u8,
    /// Amount, fen.
    pub amount_fen: i64,
    /// `156`.
    pub currency: String,
    /// Field 55, hex.
    pub icc_data_hex: String,
    /// The terminal's own id of this purchase (optional), for a later reversal.
    #[serde(default)]
    pub terminal_txn_id: Option<String>,
}

/// Largest sealed PAN, bytes: C1 (65) + C3 (32) + 19 digits.
pub const PAN_SEALED_LEN_MAX: usize = 65 + 32 + 19;

/// A QR purchase on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrBody {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// The amount the terminal shows, fen.
    pub amount_fen: i64,
    /// The scanned token text (never logged: it names the card).
    pub token: String,
}

/// The PAN sealing key on the wire.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PanKeyBody {
    /// `SM2`.
    pub algorithm: String,
    /// Uncompressed public key `04‖X‖Y`, hex (130 digits).
    pub public_key_hex: String,
}

/// A terminal's reversal on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReversalBody {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// The terminal's id of the purchase to reverse.
    pub terminal_txn_id: String,
}

/// The reply to a terminal's reversal.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReversalReply {
    /// Field 39: `00` done (or nothing to undo), `91` in flight (retry), `30` malformed, `12`
    /// another merchant's id, `96` switch fault (retry).
    pub response_code: String,
}

/// A refund or void on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// RRN of the purchase.
    pub original_rrn: String,
    /// Amount, fen.
    pub amount_fen: i64,
}

/// The reply.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutcomeBody {
    /// Field 39.
    pub response_code: String,
    /// Approved amount, fen.
    pub approved_fen: i64,
    /// RRN.
    pub rrn: String,
    /// STAN.
    pub stan: String,
    /// Authorisation id.
    pub auth_code: Option<String>,
    /// ARPC (method 1), hex.
    pub arpc_hex: Option<String>,
}

impl From<PaymentOutcome> for OutcomeBody {
    fn from(o: PaymentOutcome) -> OutcomeBody {
        OutcomeBody {
            response_code: o.response_code,
            approved_fen: o.approved_fen,
            rrn: o.rrn,
            stan: o.stan,
            auth_code: o.auth_code,
            arpc_hex: o.arpc.map(hex::encode_upper),
        }
    }
}

/// The terminals' router over `switch`.
pub fn router(switch: Switch) -> Router {
    Router::new()
        .route("/payments/v1/pan-key", get(pan_key))
        .route("/payments/v1/purchase", post(purchase))
        .route("/payments/v1/qr", post(qr))
        .route("/payments/v1/refund", post(refund))
        .route("/payments/v1/void", post(void))
        .route("/payments/v1/reversal", post(reversal))
        .layer(DefaultBodyLimit::max(PAYMENT_BODY_LEN_MAX))
        .with_state(switch)
}

fn reply(result: Result<PaymentOutcome, PaymentError>) -> Response {
    match result {
        Ok(outcome) => Json(OutcomeBody::from(outcome)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "payment failed inside the switch");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(OutcomeBody {
                    response_code: codes::SYSTEM_MALFUNCTION.to_owned(),
                    approved_fen: 0,
                    rrn: String::new(),
                    stan: String::new(),
                    auth_code: None,
                    arpc_hex: None,
                }),
            )
                .into_response()
        }
    }
}

fn refusal(code: &str) -> Response {
    Json(OutcomeBody::from(PaymentOutcome::refused(code))).into_response()
}

fn format_error() -> Response {
    refusal(codes::FORMAT_ERROR)
}

async fn pan_key(State(switch): State<Switch>) -> Response {
    match switch.pan_public_key() {
        Ok(Some(key)) => Json(PanKeyBody {
            algorithm: "SM2".to_owned(),
            public_key_hex: hex::encode_upper(key),
        })
        .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the PAN sealing key is not usable");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn purchase(State(switch): State<Switch>, Json(body): Json<PurchaseBody>) -> Response {
    if body.pan.is_some() {
        tracing::warn!(terminal = %body.terminal_id, "purchase with the PAN in clear refused: 30 (seal it to GET /payments/v1/pan-key)");
        return format_error();
    }
    let icc = hex::decode(&body.icc_data_hex)
        .ok()
        .filter(|d| d.len() <= ICC_DATA_LEN_MAX);
    let sealed = body
        .pan_sealed_hex
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .filter(|s| s.len() <= PAN_SEALED_LEN_MAX);
    let (Some(sealed), Some(icc_data)) = (sealed, icc) else {
        tracing::warn!(terminal = %body.terminal_id, "purchase with a malformed sealed PAN or ICC data: 30");
        return format_error();
    };
    let switch_ = switch.clone();
    let pan = match tokio::task::spawn_blocking(move || switch_.unseal_pan(&sealed)).await {
        Ok(Ok(Some(pan))) => pan,
        Ok(Ok(None)) => {
            tracing::warn!(terminal = %body.terminal_id, "sealed PAN does not open under the switch's key: 63");
            return refusal(codes::SECURITY_VIOLATION);
        }
        Ok(Err(e)) => return reply(Err(e)),
        Err(_) => return reply(Err(PaymentError::Hsm(String::from("task failed")))),
    };
    let request = PurchaseRequest {
        terminal_id: body.terminal_id,
        merchant_id: body.merchant_id,
        pan,
        psn: body.psn,
        amount_fen: body.amount_fen,
        currency: body.currency,
        icc_data,
    };
    reply(
        switch
            .purchase_with_terminal_txn(&request, body.terminal_txn_id.as_deref())
            .await,
    )
}

async fn qr(State(switch): State<Switch>, Json(body): Json<QrBody>) -> Response {
    if body.token.len() > TOKEN_LEN_MAX {
        tracing::warn!(terminal = %body.terminal_id, "QR token longer than the maximum: 30");
        return format_error();
    }
    let request = QrPurchaseRequest {
        terminal_id: body.terminal_id,
        merchant_id: body.merchant_id,
        amount_fen: body.amount_fen,
        token: body.token,
    };
    reply(switch.qr_purchase(&request).await)
}

fn adjust_request(body: AdjustBody) -> AdjustRequest {
    AdjustRequest {
        terminal_id: body.terminal_id,
        merchant_id: body.merchant_id,
        original_rrn: body.original_rrn,
        amount_fen: body.amount_fen,
    }
}

async fn refund(State(switch): State<Switch>, Json(body): Json<AdjustBody>) -> Response {
    reply(switch.refund(&adjust_request(body)).await)
}

async fn void(State(switch): State<Switch>, Json(body): Json<AdjustBody>) -> Response {
    reply(switch.void(&adjust_request(body)).await)
}

async fn reversal(State(switch): State<Switch>, Json(body): Json<ReversalBody>) -> Response {
    let request = TerminalReversal {
        terminal_id: body.terminal_id,
        merchant_id: body.merchant_id,
        terminal_txn_id: body.terminal_txn_id,
    };
    match switch.terminal_reversal(&request).await {
        Ok(response_code) => Json(ReversalReply { response_code }).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "terminal reversal failed inside the switch");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(ReversalReply {
                    response_code: codes::SYSTEM_MALFUNCTION.to_owned(),
                }),
            )
                .into_response()
        }
    }
}
