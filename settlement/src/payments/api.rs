//! The switch's HTTP API for terminals (JSON over loopback or TLS in front): purchase, refund,
//! void. A refusal or decline is HTTP 200 with its ISO 8583 response code (the terminal acts on
//! the code, as on field 39); 400 for a body that does not parse; 500 for a store/ledger/HSM
//! fault (logged; the body says only that). The PAN never reaches a log.
//!
//! `POST /payments/v1/purchase` `{terminal_id, merchant_id, pan, psn, amount_fen, currency,
//! icc_data_hex}` → `{response_code, approved_fen, rrn, stan, auth_code, arpc_hex}`.
//! `POST /payments/v1/refund`, `/payments/v1/void` `{terminal_id, merchant_id, original_rrn,
//! amount_fen}` → the same reply shape.
//! A purchase may carry `terminal_txn_id` (1..=32 ASCII letters, digits, `-`; unique per
//! terminal); `POST /payments/v1/reversal` `{terminal_id, merchant_id, terminal_txn_id}` →
//! `{response_code}` undoes that purchase whatever happened to it ([`super::terminal`]).

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use card_core::pboc::Pan;
use serde::{Deserialize, Serialize};

use super::adjust::AdjustRequest;
use super::icc::ICC_DATA_LEN_MAX;
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
    /// PAN digits (never logged).
    pub pan: String,
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
        .route("/payments/v1/purchase", post(purchase))
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

fn format_error() -> Response {
    Json(OutcomeBody::from(PaymentOutcome {
        response_code: codes::FORMAT_ERROR.to_owned(),
        approved_fen: 0,
        rrn: String::new(),
        stan: String::new(),
        auth_code: None,
        arpc: None,
    }))
    .into_response()
}

async fn purchase(State(switch): State<Switch>, Json(body): Json<PurchaseBody>) -> Response {
    let icc = hex::decode(&body.icc_data_hex)
        .ok()
        .filter(|d| d.len() <= ICC_DATA_LEN_MAX);
    let (Some(pan), Some(icc_data)) = (Pan::new(&body.pan), icc) else {
        tracing::warn!(terminal = %body.terminal_id, "purchase with a malformed PAN or ICC data");
        return format_error();
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
