//! The node's inter-node endpoints (`/region/v1/*`, request signatures checked before anything
//! else, every reply signed) and its operator endpoints (`/region/v1/admin/*`, behind the same
//! x-tif gateway check as the national envelope): `close-window`, `clear-window` (the clearing
//! run of a closed window, `clearing_run`), `positions`, `status` (open items, national
//! position) and `transfer/{xfer_id}` (one transfer as this node knows it).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ids::Admdvs;
use crate::medical::ids::now_ms;
use crate::nhsa::ApiError;
use crate::service::AppState;

use super::auth::{self, H_FROM, H_SIG, H_TO, H_TS, SKEW_MS_MAX, Signed};
use super::clearing::Position;
use super::wire::{
    PersonRequest, Refusal, ReportRequest, ResolveRequest, ReverseRequest, SplitRequest,
};
use super::{Node, insured};

/// Largest inter-node request body, bytes.
pub const REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;

#[derive(Clone)]
struct RegionState {
    app: Arc<AppState>,
    node: Arc<Node>,
}

/// The region routes over the app's state and `node` (merge into `service::app`).
pub fn router(app: Arc<AppState>, node: Arc<Node>) -> Router {
    Router::new()
        .route("/region/v1/person", post(person))
        .route("/region/v1/split", post(split))
        .route("/region/v1/resolve", post(resolve))
        .route("/region/v1/reverse", post(reverse))
        .route("/region/v1/report", post(report))
        .route(super::clearing_run::CONFIRM_PATH, post(clearing_confirm))
        .route(super::clearing_run::SETTLE_PATH, post(clearing_settle))
        .route("/region/v1/admin/clear-window", post(clear_window))
        .route("/region/v1/admin/close-window", post(close_window))
        .route("/region/v1/admin/positions", get(positions))
        .route("/region/v1/admin/status", get(status))
        .route("/region/v1/admin/transfer/{xfer_id}", get(transfer))
        .with_state(RegionState { app, node })
}

/// Checks a peer request; returns the sender or a 401 reply.
fn authenticate(
    node: &Node,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<Admdvs, (StatusCode, &'static str)> {
    let refuse = |reason: &'static str| {
        tracing::warn!(reason, path, "inter-node request refused");
        (StatusCode::UNAUTHORIZED, reason)
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let from = header(H_FROM)
        .and_then(|v| Admdvs::parse(v).ok())
        .ok_or_else(|| refuse("from"))?;
    let to = header(H_TO)
        .and_then(|v| Admdvs::parse(v).ok())
        .ok_or_else(|| refuse("to"))?;
    if to != node.me {
        return Err(refuse("not for this node"));
    }
    let ts_ms: i64 = header(H_TS)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| refuse("timestamp"))?;
    if (now_ms() - ts_ms).abs() > SKEW_MS_MAX {
        return Err(refuse("stale"));
    }
    let key = node.regions.key(from, to).ok_or_else(|| refuse("no key"))?;
    let sig = header(H_SIG).ok_or_else(|| refuse("unsigned"))?;
    let signed = Signed {
        direction: "req",
        from: from.code(),
        to: to.code(),
        ts_ms,
        path,
        status: 0,
    };
    if !auth::verify(key, &signed, body, sig) {
        return Err(refuse("signature"));
    }
    Ok(from)
}

/// A signed reply.
fn signed_reply(
    node: &Node,
    to: Admdvs,
    path: &str,
    status: StatusCode,
    body: Vec<u8>,
) -> Response {
    let ts_ms = now_ms();
    let sig = node
        .regions
        .key(node.me, to)
        .map_or_else(String::new, |key| {
            auth::sign(
                key,
                &Signed {
                    direction: "rep",
                    from: node.me.code(),
                    to: to.code(),
                    ts_ms,
                    path,
                    status: status.as_u16(),
                },
                &body,
            )
        });
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&ts_ms.to_string()) {
        headers.insert(H_TS, v);
    }
    if let Ok(v) = HeaderValue::from_str(&sig) {
        headers.insert(H_SIG, v);
    }
    response
}

fn answer<T: Serialize>(
    node: &Node,
    to: Admdvs,
    path: &str,
    result: Result<T, ApiError>,
) -> Response {
    let (status, body) = match result {
        Ok(value) => (StatusCode::OK, serde_json::to_vec(&value)),
        Err(error) => {
            let status = if error.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let refusal = Refusal {
                err_code: error.code().to_owned(),
                err_msg: error.to_string(),
            };
            (status, serde_json::to_vec(&refusal))
        }
    };
    match body {
        Ok(body) => signed_reply(node, to, path, status, body),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > REQUEST_BYTES_MAX {
        return Err(ApiError::MalformedEnvelope(
            "inter-node body too large".to_owned(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedEnvelope(e.to_string()))
}

async fn person(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/region/v1/person";
    let from = match authenticate(&s.node, &headers, path, &body) {
        Ok(from) => from,
        Err(refusal) => return refusal.into_response(),
    };
    let result = async {
        let req: PersonRequest = parse(&body)?;
        let person = s.app.medical.load_person_local(&req.psn_no).await?;
        let region = person.region().map_err(insured::internal)?;
        if !s.node.serves(region) {
            return Err(ApiError::PersonNotFound);
        }
        Ok((*person).clone())
    }
    .await;
    answer(&s.node, from, path, result)
}

async fn split(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/region/v1/split";
    let from = match authenticate(&s.node, &headers, path, &body) {
        Ok(from) => from,
        Err(refusal) => return refusal.into_response(),
    };
    let result = async {
        let req: SplitRequest = parse(&body)?;
        if req.origin != from.code() {
            return Err(ApiError::BadField {
                field: "origin",
                reason: "must be the signing node".to_owned(),
            });
        }
        insured::split(&s.node, &s.app.medical, req).await
    }
    .await;
    answer(&s.node, from, path, result)
}

async fn resolve(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/region/v1/resolve";
    let from = match authenticate(&s.node, &headers, path, &body) {
        Ok(from) => from,
        Err(refusal) => return refusal.into_response(),
    };
    let result = async {
        let req: ResolveRequest = parse(&body)?;
        if !req.xfer_id.starts_with(&format!("{from}-")) {
            return Err(ApiError::BadField {
                field: "xfer_id",
                reason: "not a transfer of the signing node".to_owned(),
            });
        }
        insured::resolve(&s.node, &s.app.medical, &req.xfer_id).await
    }
    .await;
    answer(&s.node, from, path, result)
}

async fn reverse(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/region/v1/reverse";
    let from = match authenticate(&s.node, &headers, path, &body) {
        Ok(from) => from,
        Err(refusal) => return refusal.into_response(),
    };
    let result = async {
        let req: ReverseRequest = parse(&body)?;
        if req.origin != from.code() {
            return Err(ApiError::BadField {
                field: "origin",
                reason: "must be the signing node".to_owned(),
            });
        }
        insured::reverse(&s.node, &s.app.medical, req).await
    }
    .await;
    answer(&s.node, from, path, result)
}

async fn report(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/region/v1/report";
    let from = match authenticate(&s.node, &headers, path, &body) {
        Ok(from) => from,
        Err(refusal) => return refusal.into_response(),
    };
    let result = async {
        let req: ReportRequest = parse(&body)?;
        s.node
            .report(&s.app.medical, req.origin, req.window_id)
            .await
            .map_err(insured::internal)
    }
    .await;
    answer(&s.node, from, path, result)
}

fn operator(s: &RegionState, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    let now_s = u64::try_from(now_ms() / 1_000).unwrap_or(0);
    s.app
        .gateway
        .check(headers, now_s)
        .map_err(|reason| (StatusCode::UNAUTHORIZED, reason))
}

async fn close_window(State(s): State<RegionState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = operator(&s, &headers) {
        return refusal.into_response();
    }
    match s.node.close_window(&s.app.medical).await {
        Ok(closed) => Json(serde_json::json!({"closed": closed})).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn positions(State(s): State<RegionState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = operator(&s, &headers) {
        return refusal.into_response();
    }
    let result: Result<Vec<Position>, _> = s.node.positions(&s.app.medical).await;
    match result {
        Ok(positions) => Json(positions).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

impl Node {
    /// Asks the other nodes for person `psn_no` (1101/2201 of a person insured elsewhere; the
    /// node whose `serves` prefix matches the psn_no's first digits first). `None` if no node
    /// knows the person or none answers.
    pub async fn remote_person(&self, psn_no: &str) -> Option<crate::medical::PersonRecord> {
        let mut peers: Vec<&super::Region> = self
            .regions
            .all()
            .iter()
            .filter(|r| r.admdvs != self.me)
            .collect();
        peers.sort_by_key(|r| !r.serves.iter().any(|p| psn_no.starts_with(p.as_str())));
        for peer in peers {
            let req = PersonRequest {
                psn_no: psn_no.to_owned(),
            };
            if let Ok(person) = self.call(peer.admdvs, "/region/v1/person", &req).await {
                return Some(person);
            }
        }
        None
    }
}

async fn status(State(s): State<RegionState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = operator(&s, &headers) {
        return refusal.into_response();
    }
    match s.node.status(&s.app.medical).await {
        Ok(status) => Json(status).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn transfer(
    State(s): State<RegionState>,
    headers: HeaderMap,
    Path(xfer_id): Path<String>,
) -> Response {
    if let Err(refusal) = operator(&s, &headers) {
        return refusal.into_response();
    }
    if xfer_id.is_empty() || xfer_id.len() > 64 {
        return (StatusCode::BAD_REQUEST, "xfer_id: 1..=64 characters").into_response();
    }
    match s.node.transfer(&s.app.medical, &xfer_id).await {
        Ok(status) => Json(status).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

fn not_signer(field: &'static str) -> ApiError {
    ApiError::BadField {
        field,
        reason: "must be the signing node".to_owned(),
    }
}

async fn clearing_confirm(
    State(s): State<RegionState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = super::clearing_run::CONFIRM_PATH;
    let from = match authenticate(&s.node, &headers, path, &body) {
        Ok(from) => from,
        Err(refusal) => return refusal.into_response(),
    };
    let result = async {
        let req: super::clearing_run::ConfirmRequest = parse(&body)?;
        if req.origin != from.code() {
            return Err(not_signer("origin"));
        }
        s.node
            .confirm_statement(&s.app.medical, &req)
            .await
            .map_err(insured::internal)
    }
    .await;
    answer(&s.node, from, path, result)
}

async fn clearing_settle(
    State(s): State<RegionState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = super::clearing_run::SETTLE_PATH;
    let from = match authenticate(&s.node, &headers, path, &body) {
        Ok(from) => from,
        Err(refusal) => return refusal.into_response(),
    };
    let result = async {
        let req: super::clearing_run::SettleRequest = parse(&body)?;
        if req.origin != from.code() {
            return Err(not_signer("origin"));
        }
        s.node.settle_received(&s.app.medical, &req).await?;
        Ok(serde_json::json!({"settled": true}))
    }
    .await;
    answer(&s.node, from, path, result)
}

/// `POST /region/v1/admin/clear-window` body.
#[derive(Debug, serde::Deserialize)]
struct ClearWindow {
    window_id: i64,
}

async fn clear_window(
    State(s): State<RegionState>,
    headers: HeaderMap,
    Json(req): Json<ClearWindow>,
) -> Response {
    if let Err(refusal) = operator(&s, &headers) {
        return refusal.into_response();
    }
    match s.node.clear_window(&s.app.medical, req.window_id).await {
        Ok(run) => Json(run).into_response(),
        Err(super::RegionError::Refused(_, code, message)) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({"err_code": code, "err_msg": message})),
        )
            .into_response(),
        Err(error @ (super::RegionError::Unreachable(_) | super::RegionError::Unknown(_))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{error}: nothing was posted; run again"),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
