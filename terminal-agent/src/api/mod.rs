//! The local HTTP API (axum) for HIS and kiosk applications, on 127.0.0.1 only.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/readers` | readers and whether each holds a card |
//! | `GET /v1/readers/{name}/card` | identity (EF05) and holder (EF06), masked unless `?reveal=true` |
//! | `GET /v1/readers/{name}/bank` | the PBOC application, PAN masked unless `?reveal=true` |
//! | `POST /v1/readers/{name}/verify-pin` | VERIFY; tries left on failure |
//! | `POST /v1/readers/{name}/purchase` | a card purchase through the payment switch |
//! | `POST /v1/readers/{name}/settle` | an outpatient medical settlement for the card (1101 → 2201 → 2204 → 2207, journaled) |
//! | `POST /v1/readers/{name}/signin` | card sign-in at the settlement node (challenge → INTERNAL AUTHENTICATE → token) |
//! | `POST /v1/iReadCardBas`, `POST /v1/iVerifyPIN` | the unified reader interface (ssc-card.md §6) |
//! | `GET /v1/events` | server-sent events: readers and cards coming and going |
//! | `GET /openapi.json` | the OpenAPI document |
//!
//! Errors are `{"code", "message", "action"}` with a stable code and a 4xx/5xx status
//! ([`crate::error::AgentError::catalogue`]); the unified interface's functions answer 200 with
//! its return code instead, as the DLL would. One `TraceLayer` span per request.

mod cards;
mod events;
mod openapi;
pub mod payment;
pub mod settle;
pub mod signin;
mod unified;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::authority::Authority;
use crate::error::AgentError;
use crate::reader::Readers;

pub use cards::{BankView, CardView, HolderView, IdentityView, PinRequest, PinVerified};
pub use openapi::ApiDoc;
pub use unified::{UnifiedReply, UnifiedRequest};

/// Largest request body accepted, in bytes.
pub const REQUEST_BODY_LEN_MAX: usize = 4_096;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The readers.
    pub readers: Arc<Readers>,
    /// The HSM for 3.00 cards.
    pub authority: Authority,
    /// Limits and terminal identity.
    pub settings: ApiSettings,
}

/// The API's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// Longest wait for one card job.
    pub card_timeout_ms: u64,
    /// 终端机编号 in `iReadCardBas`.
    pub terminal_no: String,
    /// 终端设备号 in `iReadCardBas`.
    pub device_no: String,
    /// Reader for the unified interface when the request names none (else the first reader
    /// holding a card).
    pub default_reader: Option<String>,
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/readers", get(cards::list_readers))
        .route("/v1/readers/{name}/card", get(cards::read_card))
        .route("/v1/readers/{name}/bank", get(cards::read_bank))
        .route("/v1/readers/{name}/verify-pin", post(cards::verify_pin))
        .route("/v1/readers/{name}/purchase", post(payment::purchase))
        .route("/v1/readers/{name}/settle", post(settle::settle))
        .route("/v1/readers/{name}/signin", post(signin::signin))
        .route("/v1/iReadCardBas", post(unified::i_read_card_bas))
        .route("/v1/iVerifyPIN", post(unified::i_verify_pin))
        .route("/v1/events", get(events::events))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async {
            ApiError(AgentError::BadRequest("no such route".into())).into_response()
        })
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BODY_LEN_MAX))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable code (`"no_card"`, `"pin_wrong"`, ...).
    pub code: &'static str,
    /// What went wrong, without personal data.
    pub message: String,
    /// What the cashier should do.
    pub action: &'static str,
    /// PIN tries left (`pin_wrong` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u8>,
}

/// An [`AgentError`] as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub AgentError);

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let entry = self.0.catalogue();
        if entry.http_status >= 500 {
            tracing::warn!(code = entry.code, error = %self.0, "request failed");
        } else {
            tracing::info!(code = entry.code, "request refused");
        }
        let tries_left = match &self.0 {
            AgentError::PinWrong { tries_left } => Some(*tries_left),
            AgentError::PinBlocked => Some(0),
            _ => None,
        };
        let status =
            StatusCode::from_u16(entry.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            code: entry.code,
            message: self.0.to_string(),
            action: entry.action,
            tries_left,
        };
        (status, Json(body)).into_response()
    }
}
