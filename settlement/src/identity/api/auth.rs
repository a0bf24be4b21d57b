//! How other services accept the sign-in token: the [`HolderAuth`] extractor (a handler that
//! takes it gets only verified sessions), the [`require_holder`] middleware (for a whole router:
//! it puts the [`HolderSession`] in the request's extensions), and the terminal check of the
//! routes agents call (the gateway's `x-tif-*` headers).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::identity::{HolderSession, Identity, IdentityError};
use crate::service::AppState;

/// The bearer token of `Authorization: Bearer <token>`. Errors: `TokenMissing`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, IdentityError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(IdentityError::TokenMissing)
}

/// A verified holder session, extracted from `Authorization: Bearer`. Any handler whose state
/// yields an `Arc<Identity>` (`FromRef`) can take it; a missing, invalid, expired or revoked
/// token answers 401 with the catalogue code before the handler runs.
#[derive(Debug, Clone)]
pub struct HolderAuth(pub HolderSession);

impl<S> FromRequestParts<S> for HolderAuth
where
    Arc<Identity>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<HolderAuth, ApiError> {
        if let Some(session) = parts.extensions.get::<HolderSession>() {
            return Ok(HolderAuth(session.clone()));
        }
        let identity = Arc::<Identity>::from_ref(state);
        let token = bearer(&parts.headers)?;
        Ok(HolderAuth(identity.verify(token).await?))
    }
}

/// Middleware: refuses requests without a valid token, and puts the [`HolderSession`] in the
/// request's extensions. Use with `axum::middleware::from_fn_with_state(identity,
/// require_holder)`.
pub async fn require_holder(
    State(identity): State<Arc<Identity>>,
    mut request: Request,
    next: Next,
) -> Response {
    let verified = match bearer(request.headers()) {
        Ok(token) => identity.verify(token).await,
        Err(error) => Err(error),
    };
    match verified {
        Ok(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Err(error) => ApiError(error).into_response(),
    }
}

/// The terminal (gateway caller) of a request: its `x-tif-paasid` once the gateway check
/// passes ('' when the gateway check is off). Errors: `Terminal`.
pub(crate) fn terminal(service: &AppState, headers: &HeaderMap) -> Result<String, IdentityError> {
    let now_s = u64::try_from(crate::identity::now_ms() / 1_000).unwrap_or(0);
    service
        .gateway
        .check(headers, now_s)
        .map_err(IdentityError::Terminal)?;
    Ok(headers
        .get("x-tif-paasid")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(64)
        .collect())
}
