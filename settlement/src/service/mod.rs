//! The HTTP service (axum): the national envelope endpoint `POST
//! /fsi/api/rsfComIfsService/callService` behind the gateway's `x-tif-*` header check, `/health`,
//! `/ready`, `/openapi.json`, one `TraceLayer` span per request. The app is a function of its
//! state ([`app`]) so tests drive it without a socket (`tower::ServiceExt::oneshot`).
//!
//! Replies: HTTP 200 with `infcode` 0 or -1 for every business outcome (HIS reads `infcode`), 401
//! for a gateway refusal, 413 for a body above `ENVELOPE_BYTES_MAX`; the envelope always carries
//! `err_msg` and the stable `err_code` on failure.

pub mod gateway;
mod openapi;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;
use tracing::Instrument;

use crate::medical::Medical;
use crate::medical::ids::{inf_refmsgid, now_ms};
use crate::nhsa::{ApiError, ENVELOPE_BYTES_MAX, Envelope, ResponseEnvelope};

pub use gateway::{Gateway, GatewayConfig};

/// The envelope endpoint's path (medical-settlement.md §1.0).
pub const CALL_SERVICE_PATH: &str = "/fsi/api/rsfComIfsService/callService";

/// Shared state of the app.
#[derive(Debug)]
pub struct AppState {
    /// The settlement core.
    pub medical: Arc<Medical>,
    /// Caller authentication.
    pub gateway: Gateway,
    /// False while starting and once shutdown began (`/ready` answers 503, new envelopes are
    /// refused with `ShuttingDown`, retryable with the same msgid).
    pub ready: AtomicBool,
}

/// The router over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route(CALL_SERVICE_PATH, post(call_service))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(ENVELOPE_BYTES_MAX))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

fn reply(
    admdvs: Option<crate::Admdvs>,
    received_ms: i64,
    result: Result<crate::medical::Output, ApiError>,
) -> ResponseEnvelope {
    let now = now_ms();
    let stamp = crate::medical::ids::format_stamp_ms;
    let (infcode, err_msg, err_code, output) = match result {
        Ok(output) => (0, None, None, output),
        Err(error) => (
            -1,
            Some(error.to_string()),
            Some(error.code().to_owned()),
            null_output(),
        ),
    };
    ResponseEnvelope {
        infcode,
        inf_refmsgid: inf_refmsgid(admdvs, now),
        refmsg_time: stamp(received_ms),
        respond_time: stamp(now),
        err_msg,
        err_code,
        warn_msg: None,
        output,
    }
}

fn null_output() -> crate::medical::Output {
    serde_json::value::RawValue::NULL.to_owned()
}

/// `POST /fsi/api/rsfComIfsService/callService`.
#[utoipa::path(
    post,
    path = "/fsi/api/rsfComIfsService/callService",
    request_body(content = serde_json::Value, description = "The national envelope {infno, msgid, mdtrtarea_admvs, insuplc_admdvs, fixmedins_code, opter, inf_time, sign_no, input}"),
    params(
        ("x-tif-paasid" = String, Header, description = "caller id"),
        ("x-tif-timestamp" = String, Header, description = "Unix seconds"),
        ("x-tif-nonce" = String, Header, description = "random, single use"),
        ("x-tif-signature" = String, Header, description = "hex SHA-256(timestamp + paasToken + nonce + timestamp)"),
    ),
    responses(
        (status = 200, description = "infcode 0 (output) or -1 (err_msg, err_code)", body = ResponseEnvelope),
        (status = 401, description = "gateway headers refused", body = ResponseEnvelope),
    )
)]
pub(crate) async fn call_service(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = now_ms();
    let now_s = u64::try_from(received / 1_000).unwrap_or(0);
    if let Err(reason) = state.gateway.check(&headers, now_s) {
        tracing::info!(reason, "gateway refused");
        let envelope = reply(None, received, Err(ApiError::Gateway(reason)));
        return (StatusCode::UNAUTHORIZED, Json(envelope)).into_response();
    }
    let envelope = match Envelope::parse(&body) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::info!(code = error.code(), "envelope refused");
            return Json(reply(None, received, Err(error))).into_response();
        }
    };
    let span = tracing::info_span!("envelope", infno = %envelope.infno, msgid = %envelope.msgid);
    let result = if state.ready.load(Ordering::Acquire) {
        state.medical.handle(&envelope).instrument(span).await
    } else {
        Err(ApiError::ShuttingDown)
    };
    match &result {
        Ok(_) => tracing::info!(infno = %envelope.infno, msgid = %envelope.msgid, "answered"),
        Err(error) => tracing::info!(
            infno = %envelope.infno, msgid = %envelope.msgid, code = error.code(), "refused"
        ),
    }
    Json(reply(Some(envelope.mdtrtarea_admvs), received, result)).into_response()
}
