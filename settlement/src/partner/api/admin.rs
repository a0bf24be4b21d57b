//! Operator routes (`/api/partner/v1/admin/...`, `Authorization: Bearer <token>` of an account
//! in `PartnerOptions::operators`): list and decide applications, read the audit and the
//! webhook rows, record a card's status (挂失 / 解挂). Every call is audited as
//! `operator:<account>`. The operators' console (issue 8, later) builds on these.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use super::super::PartnerPlatform;
use super::super::error::{ApiError, ErrorBody, internal};
use super::super::model::{AppId, AppState, KeyId};
use super::super::ops::{AuditNote, CardStatus, check_card_no};
use super::super::store::{AUDIT_PAGE_MAX, Decision};
use super::wire::{
    AppOut, AppsOut, AuditOut, AuditRowOut, CardStatusIn, CardStatusOut, DecisionIn, KeyRevokedOut,
    WebhookRowOut, WebhooksOut,
};
use super::{audited, body_bytes, param, parse_json, query_params, scope_of};

pub(super) fn routes() -> Router<Arc<PartnerPlatform>> {
    Router::new()
        .route("/api/partner/v1/admin/applications", get(list_apps))
        .route(
            "/api/partner/v1/admin/applications/{app_id}/decision",
            post(decide),
        )
        .route(
            "/api/partner/v1/admin/applications/{app_id}/webhooks",
            get(webhooks),
        )
        .route("/api/partner/v1/admin/audit", get(audit))
        .route(
            "/api/partner/v1/admin/keys/{key_id}/revoke",
            post(revoke_key),
        )
        .route("/api/partner/v1/admin/cards/status", post(card_status))
}

/// The operator account of the bearer token. Errors: `OperatorUnauthenticated`.
fn operator(platform: &PartnerPlatform, headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| platform.operator(token))
        .map(str::to_owned)
        .ok_or(ApiError::OperatorUnauthenticated)
}

fn app_id_of(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<AppId, ApiError> {
    let Path(text) = path.map_err(|_| ApiError::AppNotFound)?;
    AppId::parse(&text).ok_or(ApiError::AppNotFound)
}

fn limit_of(text: Option<&str>, max: u32) -> Result<u32, ApiError> {
    match text {
        None => Ok(max.min(100)),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or(ApiError::BadQuery),
    }
}

/// Runs an operator call and audits it.
async fn run<F>(
    platform: &PartnerPlatform,
    headers: &HeaderMap,
    operation: &'static str,
    f: F,
) -> Response
where
    F: AsyncFnOnce(String, &mut AuditNote) -> Result<Response, ApiError>,
{
    let mut note = AuditNote::default();
    let (who, result) = match operator(platform, headers) {
        Err(error) => ("-".to_owned(), Err(error)),
        Ok(account) => {
            let result = f(account.clone(), &mut note).await;
            (format!("operator:{account}"), result)
        }
    };
    let who: String = who.chars().take(80).collect();
    audited(platform, who, None, operation, note, result).await
}

/// Applications, oldest first, in one state when `state` is given.
#[utoipa::path(
    get,
    path = "/api/partner/v1/admin/applications",
    params(
        ("state" = Option<String>, Query, description = "pending, approved, rejected, suspended"),
        ("limit" = Option<u32>, Query, description = "1-200, default 100"),
    ),
    security(("operator" = [])),
    responses(
        (status = 200, body = AppsOut),
        (status = 400, description = "bad_query", body = ErrorBody),
        (status = 401, description = "operator_unauthenticated", body = ErrorBody),
    )
)]
pub(super) async fn list_apps(
    State(platform): State<Arc<PartnerPlatform>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    run(&platform, &headers, "admin.applications", async |_, _| {
        let query = query_params(&uri, &["state", "limit"])?;
        let state = match param(&query, "state") {
            None => None,
            Some(text) => Some(AppState::parse(text).ok_or(ApiError::BadQuery)?),
        };
        let limit = limit_of(param(&query, "limit"), super::super::APPS_PAGE_MAX)?;
        let apps = platform
            .applications(state, limit)
            .await
            .map_err(|e| internal(&e))?;
        Ok(Json(AppsOut {
            items: apps.iter().map(AppOut::from).collect(),
        })
        .into_response())
    })
    .await
}

/// Approve (granting all or some requested scopes, setting the partner's rate limit), reject or
/// suspend an application.
#[utoipa::path(
    post,
    path = "/api/partner/v1/admin/applications/{app_id}/decision",
    params(("app_id" = String, Path, description = "app- and 16 hex digits")),
    request_body = DecisionIn,
    security(("operator" = [])),
    responses(
        (status = 200, body = AppOut),
        (status = 400, description = "bad_body, bad_scope, bad_use", body = ErrorBody),
        (status = 401, description = "operator_unauthenticated", body = ErrorBody),
        (status = 404, description = "app_not_found", body = ErrorBody),
        (status = 409, description = "bad_transition", body = ErrorBody),
    )
)]
pub(super) async fn decide(
    State(platform): State<Arc<PartnerPlatform>>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Body,
) -> Response {
    run(
        &platform,
        &headers,
        "admin.decision",
        async |account, note| {
            let app_id = app_id_of(path)?;
            note.app_id = Some(app_id.as_str().to_owned());
            let bytes = body_bytes(&platform, body).await?;
            let request: DecisionIn = parse_json(&bytes)?;
            let decision = match request.action.as_str() {
                "approve" => {
                    let granted = match &request.scopes {
                        None => {
                            platform
                                .application(&app_id)
                                .await
                                .map_err(|e| internal(&e))?
                                .ok_or(ApiError::AppNotFound)?
                                .requested
                        }
                        Some(scopes) => {
                            let mut granted = Vec::new();
                            for scope in scopes {
                                granted.push(scope_of(&platform, scope).await?);
                            }
                            granted
                        }
                    };
                    let rate = match (request.rate_per_minute, request.burst) {
                        (None, None) => None,
                        (Some(per_minute), Some(burst))
                            if (1..=1_000_000).contains(&per_minute)
                                && (1..=100_000).contains(&burst) =>
                        {
                            Some((per_minute, burst))
                        }
                        _ => return Err(ApiError::BadBody),
                    };
                    Decision::Approve { granted, rate }
                }
                "reject" => Decision::Reject,
                "suspend" => Decision::Suspend,
                _ => return Err(ApiError::BadBody),
            };
            platform
                .decide(&app_id, &decision, &account)
                .await
                .map_err(|e| internal(&e))??;
            let app = platform
                .application(&app_id)
                .await
                .map_err(|e| internal(&e))?
                .ok_or(ApiError::AppNotFound)?;
            Ok(Json(AppOut::from(&app)).into_response())
        },
    )
    .await
}

/// An application's webhook rows, newest first.
#[utoipa::path(
    get,
    path = "/api/partner/v1/admin/applications/{app_id}/webhooks",
    params(("app_id" = String, Path, description = "app- and 16 hex digits")),
    security(("operator" = [])),
    responses(
        (status = 200, body = WebhooksOut),
        (status = 401, description = "operator_unauthenticated", body = ErrorBody),
        (status = 404, description = "app_not_found", body = ErrorBody),
    )
)]
pub(super) async fn webhooks(
    State(platform): State<Arc<PartnerPlatform>>,
    uri: Uri,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    run(&platform, &headers, "admin.webhooks", async |_, note| {
        query_params(&uri, &[])?;
        let app_id = app_id_of(path)?;
        note.app_id = Some(app_id.as_str().to_owned());
        let rows = platform
            .webhooks_of(&app_id, 200)
            .await
            .map_err(|e| internal(&e))?;
        Ok(Json(WebhooksOut {
            items: rows
                .into_iter()
                .map(
                    |(event_id, event_type, state, attempts, body)| WebhookRowOut {
                        event_id,
                        event_type,
                        state,
                        attempts,
                        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    },
                )
                .collect(),
        })
        .into_response())
    })
    .await
}

/// The audit of partner calls, newest first.
#[utoipa::path(
    get,
    path = "/api/partner/v1/admin/audit",
    params(
        ("app_id" = Option<String>, Query, description = "one application only"),
        ("before" = Option<i64>, Query, description = "rows older than this seq"),
        ("limit" = Option<u32>, Query, description = "1-500, default 100"),
    ),
    security(("operator" = [])),
    responses(
        (status = 200, body = AuditOut),
        (status = 400, description = "bad_query", body = ErrorBody),
        (status = 401, description = "operator_unauthenticated", body = ErrorBody),
    )
)]
pub(super) async fn audit(
    State(platform): State<Arc<PartnerPlatform>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    run(&platform, &headers, "admin.audit", async |_, _| {
        let query = query_params(&uri, &["app_id", "before", "limit"])?;
        let app_id = match param(&query, "app_id") {
            None => None,
            Some(text) => Some(AppId::parse(text).ok_or(ApiError::BadQuery)?),
        };
        let before = match param(&query, "before") {
            None => None,
            Some(text) => Some(text.parse::<i64>().map_err(|_| ApiError::BadQuery)?),
        };
        let limit = limit_of(param(&query, "limit"), AUDIT_PAGE_MAX)?;
        let rows = platform
            .audit_rows(app_id.as_ref(), before, limit)
            .await
            .map_err(|e| internal(&e))?;
        let full = u32::try_from(rows.len()).is_ok_and(|n| n == limit);
        Ok(Json(AuditOut {
            next_before: rows.last().filter(|_| full).map(|r| r.seq),
            items: rows.iter().map(AuditRowOut::from).collect(),
        })
        .into_response())
    })
    .await
}

/// Record a card's status: `lost` (挂失; queues `card.lost` webhooks) or `normal` (解挂).
#[utoipa::path(
    post,
    path = "/api/partner/v1/admin/cards/status",
    request_body = CardStatusIn,
    security(("operator" = [])),
    responses(
        (status = 200, body = CardStatusOut),
        (status = 400, description = "bad_body, bad_card_no", body = ErrorBody),
        (status = 401, description = "operator_unauthenticated", body = ErrorBody),
        (status = 404, description = "card_not_found", body = ErrorBody),
    )
)]
pub(super) async fn card_status(
    State(platform): State<Arc<PartnerPlatform>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(
        &platform,
        &headers,
        "admin.card_status",
        async |account, note| {
            let bytes = body_bytes(&platform, body).await?;
            let request: CardStatusIn = parse_json(&bytes)?;
            check_card_no(&request.card_no)?;
            let status = CardStatus::parse(&request.status).ok_or(ApiError::BadBody)?;
            let queued = platform
                .set_card_status(&request.card_no, status, &account, note)
                .await?;
            Ok(Json(CardStatusOut {
                status: status.code().to_owned(),
                notices_queued: queued,
            })
            .into_response())
        },
    )
    .await
}

/// Revoke a credential (a partner's key was compromised or replaced): its requests are refused
/// with `key_revoked`.
#[utoipa::path(
    post,
    path = "/api/partner/v1/admin/keys/{key_id}/revoke",
    params(("key_id" = String, Path, description = "key- and 20 hex digits")),
    security(("operator" = [])),
    responses(
        (status = 200, body = KeyRevokedOut),
        (status = 401, description = "operator_unauthenticated", body = ErrorBody),
        (status = 404, description = "key_not_found", body = ErrorBody),
    )
)]
pub(super) async fn revoke_key(
    State(platform): State<Arc<PartnerPlatform>>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    run(
        &platform,
        &headers,
        "admin.key_revoke",
        async |account, note| {
            let Path(text) = path.map_err(|_| ApiError::KeyNotFound)?;
            let key_id = KeyId::parse(&text).ok_or(ApiError::KeyNotFound)?;
            let app_id = platform
                .revoke_key(&key_id, &account)
                .await
                .map_err(|e| internal(&e))?
                .ok_or(ApiError::KeyNotFound)?;
            note.app_id = Some(app_id.as_str().to_owned());
            Ok(Json(KeyRevokedOut {
                key_id: key_id.as_str().to_owned(),
                app_id: app_id.as_str().to_owned(),
                state: "revoked".to_owned(),
            })
            .into_response())
        },
    )
    .await
}
