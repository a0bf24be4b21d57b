//! The partner API's HTTP face under [`API_PREFIX`]: public registration and webhook key,
//! signed partner operations, consent issuing (terminal agents, kiosks, the e-card service, by
//! the gateway's `x-tif-*` check), operator routes (`admin/`, bearer token) and the OpenAPI
//! document. The app is a function of its state ([`router`]); every call writes one audit row
//! before its reply is sent (a call whose audit cannot be written answers `internal`).

mod admin;
mod openapi;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tower_http::trace::TraceLayer;

use super::auth::{Caller, RequestParts, claimed_key_id};
use super::canonical::{self, parse_public_key};
use super::error::{ApiError, internal};
use super::model::{
    AppId, KeyAlgorithm, Operation, PartnerCode, PartnerKind, SCOPES_MAX, SM2_ID_LEN_MAX, Scope,
    name_is_valid, webhook_url_is_valid,
};
use super::ops::{AuditNote, ConsentChannel, ConsentRequest, check_card_no};
use super::store::{AuditRecord, Registration};
use super::{PartnerPlatform, now_ms};
use crate::directory::UseNumber;
use wire::{
    AppOut, ConsentIn, ConsentOut, RegisterIn, RegisteredOut, ScopeIo, SettlementOut, VerifyIn,
    VerifyOut, WebhookKeyOut,
};

/// The headers of every signed call, as documented in the OpenAPI document (checked by
/// [`PartnerPlatform::authenticate`]; the canonical request is in [`canonical`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header, rename_all = "kebab-case")]
#[allow(dead_code)] // read from the `HeaderMap`; this type only documents them
struct SignatureHeaders {
    /// key id
    x_ssc_key_id: String,
    /// Unix milliseconds
    x_ssc_timestamp: String,
    /// 16-64 of [A-Za-z0-9_-], single use
    x_ssc_nonce: String,
    /// r||s, 128 hex digits
    x_ssc_signature: String,
}

/// Prefix of the partner API.
pub const API_PREFIX: &str = "/api/partner/v1";

/// The partner API's routes over `platform`: mount with `Router::merge` into the switch's app.
pub fn router(platform: Arc<PartnerPlatform>) -> Router {
    Router::new()
        .route("/api/partner/v1/applications", post(register))
        .route("/api/partner/v1/webhook-key", get(webhook_key))
        .route("/api/partner/v1/me", get(me))
        .route("/api/partner/v1/cards/verify", post(verify_card))
        .route("/api/partner/v1/settlements/{setl_id}", get(settlement))
        .route("/api/partner/v1/consents", post(issue_consent))
        .route("/api/partner/v1/openapi.json", get(openapi::document))
        .merge(admin::routes())
        .layer(TraceLayer::new_for_http())
        .with_state(platform)
}

/// Reads the whole body up to the platform's limit. Errors: `BodyTooLarge`.
async fn body_bytes(platform: &PartnerPlatform, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, platform.options().body_bytes_max)
        .await
        .map_err(|_| ApiError::BodyTooLarge)
}

/// Parses a JSON body strictly. Errors: `BadBody`.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|_| ApiError::BadBody)
}

/// The single value of query parameter `name`, refusing unknown and repeated parameters.
/// Errors: `BadQuery`.
fn query_params(uri: &Uri, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = canonical::query_pairs(uri.query())?;
    for (i, (name, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&name.as_str()) || pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::BadQuery);
        }
    }
    Ok(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Checks a use number and that it is in the directory. Errors: `BadUse`, `Internal`.
async fn use_in_directory(platform: &PartnerPlatform, text: &str) -> Result<UseNumber, ApiError> {
    let number = UseNumber::parse(text).map_err(|_| ApiError::BadUse)?;
    if platform
        .use_exists(&number)
        .await
        .map_err(|e| internal(&e))?
    {
        Ok(number)
    } else {
        Err(ApiError::BadUse)
    }
}

/// Checks a wire scope (the use must be in the directory). Errors: `BadUse`, `BadScope`.
async fn scope_of(platform: &PartnerPlatform, scope: &ScopeIo) -> Result<Scope, ApiError> {
    let operation = Operation::parse(&scope.operation).ok_or(ApiError::BadScope)?;
    let use_number = use_in_directory(platform, &scope.use_number).await?;
    Ok(Scope {
        use_number,
        operation,
    })
}

/// Writes the audit row of a call and returns its reply (`internal` if the row cannot be
/// written: no answer leaves unaudited).
async fn audited(
    platform: &PartnerPlatform,
    caller: String,
    app: Option<(String, String)>,
    operation: &'static str,
    note: AuditNote,
    result: Result<Response, ApiError>,
) -> Response {
    let (result_code, status) = match &result {
        Ok(response) => ("ok", response.status()),
        Err(error) => (error.code(), error.status()),
    };
    let (app_id, partner_code) = match app {
        Some((app_id, partner_code)) => (Some(app_id), Some(partner_code)),
        None => (note.app_id.clone(), None),
    };
    let record = AuditRecord {
        seq: 0,
        at_ms: now_ms(),
        caller,
        app_id,
        partner_code,
        operation: operation.to_owned(),
        use_number: note.use_number,
        scope: note.scope,
        subject_sha256: note.subject.map(|s| s.to_vec()),
        result: result_code.to_owned(),
        http_status: status.as_u16(),
    };
    if let Err(error) = platform.audit(&record).await {
        return internal(&error).into_response();
    }
    match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Runs a signed operation: authentication, then `op`, then the audit row.
async fn signed<F, Fut>(
    platform: Arc<PartnerPlatform>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    operation: &'static str,
    op: F,
) -> Response
where
    F: FnOnce(Arc<PartnerPlatform>, Caller, Bytes) -> Fut,
    Fut: Future<Output = (AuditNote, Result<Response, ApiError>)>,
{
    let who = claimed_key_id(&headers).map_or_else(|| "-".to_owned(), |k| k.as_str().to_owned());
    let bytes = match body_bytes(&platform, body).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return audited(
                &platform,
                who,
                None,
                operation,
                AuditNote::default(),
                Err(error),
            )
            .await;
        }
    };
    let parts = RequestParts {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers: &headers,
        body: &bytes,
    };
    let caller = match platform.authenticate(&parts).await {
        Ok(caller) => caller,
        Err(refusal) => {
            let note = AuditNote {
                app_id: refusal.app_id.map(|id| id.as_str().to_owned()),
                ..AuditNote::default()
            };
            return audited(&platform, who, None, operation, note, Err(refusal.error)).await;
        }
    };
    let app = Some((
        caller.app.app_id.as_str().to_owned(),
        caller.app.partner_code.as_str().to_owned(),
    ));
    let (note, result) = op(Arc::clone(&platform), caller, bytes).await;
    audited(&platform, who, app, operation, note, result).await
}

/// Register an application (public; it stays `pending` until an operator approves it).
#[utoipa::path(
    post,
    path = "/api/partner/v1/applications",
    request_body = RegisterIn,
    responses(
        (status = 201, body = RegisteredOut),
        (status = 400, description = "bad_body, bad_partner, bad_scope, bad_use, bad_public_key, bad_webhook_url", body = super::error::ErrorBody),
        (status = 409, description = "partner_mismatch", body = super::error::ErrorBody),
        (status = 413, description = "body_too_large", body = super::error::ErrorBody),
    )
)]
async fn register(State(platform): State<Arc<PartnerPlatform>>, body: Body) -> Response {
    let mut note = AuditNote::default();
    let result = register_inner(&platform, body, &mut note).await;
    audited(
        &platform,
        "public".to_owned(),
        None,
        "register",
        note,
        result,
    )
    .await
}

async fn register_inner(
    platform: &PartnerPlatform,
    body: Body,
    note: &mut AuditNote,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(platform, body).await?;
    let request: RegisterIn = parse_json(&bytes)?;
    let partner_code = PartnerCode::parse(&request.partner.code).ok_or(ApiError::BadPartner)?;
    let partner_kind = PartnerKind::parse(&request.partner.kind).ok_or(ApiError::BadPartner)?;
    if !name_is_valid(&request.partner.name) || !name_is_valid(&request.name) {
        return Err(ApiError::BadPartner);
    }
    if request.scopes.is_empty() || request.scopes.len() > SCOPES_MAX {
        return Err(ApiError::BadScope);
    }
    let mut scopes = Vec::with_capacity(request.scopes.len());
    for scope in &request.scopes {
        let scope = scope_of(platform, scope).await?;
        if scopes.contains(&scope) {
            return Err(ApiError::BadScope);
        }
        scopes.push(scope);
    }
    let algorithm = KeyAlgorithm::parse(&request.key.algorithm).ok_or(ApiError::BadPublicKey)?;
    let sm2_id = match (algorithm, request.key.sm2_id) {
        (KeyAlgorithm::Sm2, None) => hsm::sm::SM2_DEFAULT_ID.to_owned(),
        (KeyAlgorithm::Sm2, Some(id))
            if !id.is_empty()
                && id.len() <= SM2_ID_LEN_MAX
                && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id
        }
        (KeyAlgorithm::EcdsaP256, None) => String::new(),
        _ => return Err(ApiError::BadPublicKey),
    };
    let public_key = parse_public_key(algorithm, &request.key.public_key)?;
    if let Some(url) = &request.webhook_url
        && !webhook_url_is_valid(url)
    {
        return Err(ApiError::BadWebhookUrl);
    }
    let registration = Registration {
        partner_code,
        partner_name: request.partner.name,
        partner_kind,
        app_name: request.name,
        scopes,
        algorithm,
        public_key,
        sm2_id,
        webhook_url: request.webhook_url,
    };
    let (app_id, key_id) = platform
        .register(&registration)
        .await
        .map_err(|e| internal(&e))??;
    note.app_id = Some(app_id.as_str().to_owned());
    Ok((
        StatusCode::CREATED,
        Json(RegisteredOut {
            app_id: app_id.as_str().to_owned(),
            key_id: key_id.as_str().to_owned(),
            state: "pending".to_owned(),
        }),
    )
        .into_response())
}

/// The platform's public key that signs webhook deliveries (public).
#[utoipa::path(
    get,
    path = "/api/partner/v1/webhook-key",
    responses(
        (status = 200, body = WebhookKeyOut),
        (status = 503, description = "webhooks_unavailable", body = super::error::ErrorBody),
    )
)]
async fn webhook_key(State(platform): State<Arc<PartnerPlatform>>) -> Response {
    match platform.signer() {
        None => ApiError::WebhooksUnavailable.into_response(),
        Some(signer) => Json(WebhookKeyOut {
            key_id: signer.alias().to_owned(),
            algorithm: "SM2".to_owned(),
            sm2_id: super::webhook::WEBHOOK_SM2_ID.to_owned(),
            public_key: hex::encode_upper(signer.public_key()),
            signed_text:
                "SSC-WEBHOOK-V1\\n<X-SSC-Event-Id>\\n<X-SSC-Timestamp>\\n<hex SHA-256 of body>"
                    .to_owned(),
        })
        .into_response(),
    }
}

/// The calling application: state, granted scopes, rate limit (signed; no scope needed).
#[utoipa::path(
    get,
    path = "/api/partner/v1/me",
    params(
        SignatureHeaders,
    ),
    responses(
        (status = 200, body = AppOut),
        (status = 401, description = "signature refusals", body = super::error::ErrorBody),
        (status = 403, description = "app_not_approved", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::error::ErrorBody),
    )
)]
async fn me(
    State(platform): State<Arc<PartnerPlatform>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let query_ok = query_params(&uri, &[]);
    signed(
        platform,
        method,
        uri,
        headers,
        body,
        "app.read",
        |_, caller, _| async move {
            let result = query_ok.map(|_| Json(AppOut::from(&caller.app)).into_response());
            (AuditNote::default(), result)
        },
    )
    .await
}

/// Verify a card's status and the holder's identity with their consent token.
#[utoipa::path(
    post,
    path = "/api/partner/v1/cards/verify",
    request_body = VerifyIn,
    params(
        SignatureHeaders,
    ),
    responses(
        (status = 200, body = VerifyOut),
        (status = 400, description = "bad_body, bad_use", body = super::error::ErrorBody),
        (status = 401, description = "signature refusals", body = super::error::ErrorBody),
        (status = 403, description = "app_not_approved, scope_denied, consent_invalid, consent_expired, consent_used", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::error::ErrorBody),
    )
)]
async fn verify_card(
    State(platform): State<Arc<PartnerPlatform>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let query_ok = query_params(&uri, &[]);
    signed(
        platform,
        method,
        uri,
        headers,
        body,
        "card.verify",
        |platform, caller, bytes| async move {
            let mut note = AuditNote::default();
            let result = async {
                query_ok?;
                let request: VerifyIn = parse_json(&bytes)?;
                let use_number = use_in_directory(&platform, &request.use_number).await?;
                let verified = platform
                    .verify_card(
                        &caller,
                        &use_number,
                        &request.consent_token,
                        request.certno.as_deref(),
                        request.name.as_deref(),
                        &mut note,
                    )
                    .await?;
                Ok(Json(VerifyOut::from(verified)).into_response())
            }
            .await;
            (note, result)
        },
    )
    .await
}

/// A medical settlement's status by `setl_id` (no person data).
#[utoipa::path(
    get,
    path = "/api/partner/v1/settlements/{setl_id}",
    params(
        ("setl_id" = String, Path, description = "结算ID, 1-30 ASCII letters and digits"),
        ("use" = String, Query, description = "the directory use the partner acts for"),
        SignatureHeaders,
    ),
    responses(
        (status = 200, body = SettlementOut),
        (status = 400, description = "bad_query, bad_use, bad_setl_id", body = super::error::ErrorBody),
        (status = 401, description = "signature refusals", body = super::error::ErrorBody),
        (status = 403, description = "app_not_approved, scope_denied", body = super::error::ErrorBody),
        (status = 404, description = "settlement_not_found", body = super::error::ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = super::error::ErrorBody),
    )
)]
async fn settlement(
    State(platform): State<Arc<PartnerPlatform>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    setl_id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Body,
) -> Response {
    let query = query_params(&uri, &["use"]);
    signed(
        platform,
        method,
        uri,
        headers,
        body,
        "settlement.status",
        |platform, caller, _| async move {
            let mut note = AuditNote::default();
            let result = async {
                let query = query?;
                let use_text = param(&query, "use").ok_or(ApiError::BadQuery)?;
                let use_number = use_in_directory(&platform, use_text).await?;
                let Path(setl_id) = setl_id.map_err(|_| ApiError::BadSetlId)?;
                let status = platform
                    .settlement_status(&caller, &use_number, &setl_id, &mut note)
                    .await?;
                Ok(Json(SettlementOut::from(status)).into_response())
            }
            .await;
            (note, result)
        },
    )
    .await
}

/// Issue a one-time consent token after the holder's PIN (terminal agent, kiosk) or e-card
/// password was verified. Called by the terminal side with the gateway's `x-tif-*` headers.
#[utoipa::path(
    post,
    path = "/api/partner/v1/consents",
    request_body = ConsentIn,
    params(
        ("x-tif-paasid" = String, Header, description = "issuer id"),
        ("x-tif-timestamp" = String, Header, description = "Unix seconds"),
        ("x-tif-nonce" = String, Header, description = "random, single use"),
        ("x-tif-signature" = String, Header, description = "hex SHA-256(timestamp + token + nonce + timestamp)"),
    ),
    responses(
        (status = 201, body = ConsentOut),
        (status = 400, description = "bad_body, bad_use, bad_scope, bad_card_no, bad_consent_request", body = super::error::ErrorBody),
        (status = 401, description = "issuer_unauthenticated", body = super::error::ErrorBody),
        (status = 403, description = "app_not_approved, scope_denied", body = super::error::ErrorBody),
        (status = 404, description = "app_not_found, card_not_found", body = super::error::ErrorBody),
        (status = 409, description = "card_lost", body = super::error::ErrorBody),
    )
)]
async fn issue_consent(
    State(platform): State<Arc<PartnerPlatform>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut note = AuditNote::default();
    let (who, result) = match platform.authenticate_issuer(&headers) {
        Err(error) => ("-".to_owned(), Err(error)),
        Ok(issuer) => {
            let result = issue_inner(&platform, &issuer, body, &mut note).await;
            (format!("issuer:{issuer}"), result)
        }
    };
    let who: String = who.chars().take(80).collect();
    audited(&platform, who, None, "consent.issue", note, result).await
}

async fn issue_inner(
    platform: &PartnerPlatform,
    issuer: &str,
    body: Body,
    note: &mut AuditNote,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(platform, body).await?;
    let request: ConsentIn = parse_json(&bytes)?;
    check_card_no(&request.card_no)?;
    let app_id = AppId::parse(&request.app_id).ok_or(ApiError::AppNotFound)?;
    let scope = scope_of(
        platform,
        &ScopeIo {
            use_number: request.use_number,
            operation: request
                .operation
                .unwrap_or_else(|| Operation::CardVerify.code().to_owned()),
        },
    )
    .await?;
    let channel = ConsentChannel::parse(&request.channel).ok_or(ApiError::BadConsentRequest)?;
    let consent = ConsentRequest {
        card_no: request.card_no,
        app_id,
        scope,
        channel,
        pin_verified: request.pin_verified,
        ttl_s: request.ttl_s,
    };
    let issued = platform.issue_consent(issuer, &consent, note).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConsentOut {
            consent_token: issued.token,
            expires_at: super::webhook::utc(issued.expires_at_ms),
            app_id: consent.app_id.as_str().to_owned(),
            scope: ScopeIo::from(&consent.scope),
        }),
    )
        .into_response())
}
