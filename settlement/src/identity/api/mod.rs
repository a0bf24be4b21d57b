//! The identity HTTP API (`/identity/v1`).
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /identity/v1/challenges` | terminal (`x-tif-*`) | a fresh challenge for INTERNAL AUTHENTICATE |
//! | `POST /identity/v1/signin` | terminal | the card's answer → a token |
//! | `POST /identity/v1/cards/lost` | terminal (counter, 12333) | report a card number lost: its tokens die |
//! | `POST /identity/v1/trail/reads` | terminal | a card read at the terminal, for the trail |
//! | `GET /identity/v1/jwks` | anyone | the token verification key (RFC 7517) |
//! | `POST /identity/v1/verify` | any service | is this token valid now? its claims |
//! | `POST /identity/v1/signout` | holder (Bearer) | revoke this token |
//! | `GET /identity/v1/me` | holder | own profile, masked |
//! | `GET /identity/v1/me/trail` | holder | own card-use trail |
//! | `GET /identity/v1/me/reads` | holder | who read my personal data, and why |
//!
//! Errors: `{"code", "message"}` with the status of [`IdentityError::catalogue`].

pub mod auth;

use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Router, extract::DefaultBodyLimit};
use serde::Deserialize;
use serde_json::json;

pub use auth::{HolderAuth, bearer, require_holder};

use super::signin::SignIn;
use super::{Identity, IdentityError};
use crate::service::AppState;

/// Largest request body, bytes.
pub const BODY_BYTES_MAX: usize = 8 * 1024;

/// The router's state: the identity service and the switch's gateway check (shared nonce
/// memory with the national interface).
#[derive(Debug, Clone)]
pub struct IdentityState {
    /// The identity service.
    pub identity: Arc<Identity>,
    /// The switch's state (its gateway authenticates terminals).
    pub service: Arc<AppState>,
}

impl FromRef<IdentityState> for Arc<Identity> {
    fn from_ref(state: &IdentityState) -> Arc<Identity> {
        Arc::clone(&state.identity)
    }
}

/// An [`IdentityError`] as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub IdentityError);

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> ApiError {
        ApiError(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.0.catalogue();
        if status >= 500 {
            tracing::warn!(code, error = %self.0, "identity request failed");
        } else {
            tracing::info!(code, "identity request refused");
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "code": code, "message": self.0.public_message() });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"ssc-platform\""),
            );
        }
        response
    }
}

/// The routes, over their state.
pub fn router(state: IdentityState) -> Router {
    Router::new()
        .route("/identity/v1/challenges", post(challenge))
        .route("/identity/v1/signin", post(sign_in))
        .route("/identity/v1/cards/lost", post(report_lost))
        .route("/identity/v1/trail/reads", post(record_read))
        .route("/identity/v1/jwks", get(jwks))
        .route("/identity/v1/verify", post(verify))
        .route("/identity/v1/signout", post(sign_out))
        .route("/identity/v1/me", get(me))
        .route("/identity/v1/me/trail", get(my_trail))
        .route("/identity/v1/me/reads", get(my_reads))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

async fn challenge(
    State(state): State<IdentityState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let terminal = auth::terminal(&state.service, &headers)?;
    let challenge = state.identity.challenge(&terminal).await?;
    Ok((StatusCode::CREATED, Json(challenge)).into_response())
}

/// `POST /identity/v1/signin` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    challenge_id: String,
    /// 卡识别码, 32 hex digits.
    card_id: String,
    /// 卡号.
    card_no: String,
    /// The card's answer, 32 hex digits.
    answer: String,
    /// The terminal verified the PIN at the card.
    #[serde(default)]
    pin_verified: bool,
    /// The service needs the PIN.
    #[serde(default)]
    require_pin: bool,
}

fn hex16(text: &str, field: &'static str) -> Result<[u8; 16], IdentityError> {
    let bad = IdentityError::BadField {
        field,
        reason: "must be 32 hex digits",
    };
    if text.len() != 32 {
        return Err(bad);
    }
    hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(bad)
}

async fn sign_in(
    State(state): State<IdentityState>,
    headers: HeaderMap,
    body: Result<Json<SignInBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let terminal = auth::terminal(&state.service, &headers)?;
    let Json(body) = body.map_err(|_| IdentityError::BadField {
        field: "body",
        reason: "must be a JSON object with challenge_id, card_id, card_no, answer",
    })?;
    if body.challenge_id.len() != 32 || !body.challenge_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdentityError::BadField {
            field: "challenge_id",
            reason: "must be 32 hex digits",
        }
        .into());
    }
    super::session::check_card_no(&body.card_no)?;
    let request = SignIn {
        challenge_id: body.challenge_id.to_ascii_lowercase(),
        card_id: hex16(&body.card_id, "card_id")?,
        card_no: body.card_no,
        answer: hex16(&body.answer, "answer")?,
        pin_verified: body.pin_verified,
        terminal,
    };
    let issued = state.identity.sign_in(&request, body.require_pin).await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LostBody {
    card_no: String,
}

async fn report_lost(
    State(state): State<IdentityState>,
    headers: HeaderMap,
    body: Result<Json<LostBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let terminal = auth::terminal(&state.service, &headers)?;
    let Json(body) = body.map_err(|_| IdentityError::BadField {
        field: "body",
        reason: "must be a JSON object with card_no",
    })?;
    let reporter = if terminal.is_empty() {
        "terminal"
    } else {
        &terminal
    };
    let outcome = state.identity.report_lost(&body.card_no, reporter).await?;
    Ok(Json(outcome).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    /// 卡号 of the card read.
    card_no: String,
    /// The terminal's id of the read (1..=32 bytes).
    #[serde(rename = "ref")]
    reference: String,
    /// The directory category of the service the read was for (code or label); 公共服务 when
    /// absent.
    #[serde(default)]
    category: Option<String>,
}

async fn record_read(
    State(state): State<IdentityState>,
    headers: HeaderMap,
    body: Result<Json<ReadBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let terminal = auth::terminal(&state.service, &headers)?;
    let Json(body) = body.map_err(|_| IdentityError::BadField {
        field: "body",
        reason: "must be a JSON object with card_no and ref",
    })?;
    if body.reference.is_empty() || body.reference.len() > 32 {
        return Err(IdentityError::BadField {
            field: "ref",
            reason: "must be 1..=32 bytes",
        }
        .into());
    }
    let category = match body.category.as_deref() {
        None => crate::directory::Category::Public,
        Some(text) => {
            crate::directory::Category::parse(text).map_err(|_| IdentityError::BadField {
                field: "category",
                reason: "must be a directory category",
            })?
        }
    };
    let terminal = if terminal.is_empty() {
        "terminal".to_owned()
    } else {
        terminal
    };
    let event = state
        .identity
        .record_read(&body.card_no, &body.reference, &terminal, category)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "event_id": event.event_id })),
    )
        .into_response())
}

async fn jwks(State(state): State<IdentityState>) -> Response {
    Json(state.identity.jwks()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: String,
}

/// Token introspection (RFC 7662's shape): `{"active": true, claims...}`, or the error.
async fn verify(
    State(state): State<IdentityState>,
    body: Result<Json<VerifyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|_| IdentityError::TokenMissing)?;
    let session = state.identity.verify(&body.token).await?;
    let mut claims =
        serde_json::to_value(&session.claims).map_err(|_| IdentityError::Corrupt("claims"))?;
    if let Some(object) = claims.as_object_mut() {
        object.insert("active".into(), json!(true));
    }
    Ok(Json(claims).into_response())
}

async fn sign_out(
    State(state): State<IdentityState>,
    HolderAuth(session): HolderAuth,
) -> Result<Response, ApiError> {
    state.identity.sign_out(&session).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(
    State(state): State<IdentityState>,
    HolderAuth(session): HolderAuth,
) -> Result<Response, ApiError> {
    let profile = state.identity.holder_profile(session.holder_id()).await?;
    Ok(Json(json!({
        "profile": profile,
        "acr": session.claims.acr,
        "exp": session.claims.exp,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(default)]
    before_ms: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn my_trail(
    State(state): State<IdentityState>,
    HolderAuth(session): HolderAuth,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| IdentityError::BadField {
        field: "query",
        reason: "before_ms and limit must be integers",
    })?;
    let events = state
        .identity
        .holder_trail(
            session.holder_id(),
            query.before_ms,
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(Json(json!({ "events": events })).into_response())
}

async fn my_reads(
    State(state): State<IdentityState>,
    HolderAuth(session): HolderAuth,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| IdentityError::BadField {
        field: "query",
        reason: "limit must be an integer",
    })?;
    let reads = state
        .identity
        .holder_reads(session.holder_id(), query.limit.unwrap_or(50))
        .await?;
    Ok(Json(json!({ "reads": reads })).into_response())
}
