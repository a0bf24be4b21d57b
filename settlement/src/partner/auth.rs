//! Authentication of a signed partner request, in this order (cheapest refusal first, and no
//! nonce is spent on a request that does not verify):
//!
//! 1. the four `X-SSC-*` headers are present (`missing_signature`), the key id has its shape
//!    (`bad_key_id`), the timestamp is Unix ms (`bad_timestamp`), the nonce has its shape
//!    (`bad_nonce`), the signature is 128 hex digits (`bad_signature_format`);
//! 2. the key is registered (`unknown_key`) and active (`key_revoked`);
//! 3. the timestamp is within `skew_ms_max` of now (`timestamp_expired`);
//! 4. the signature verifies over the canonical request (`signature_invalid`), by the `hsm`;
//! 5. the nonce is new for this key (`nonce_replayed`), recorded in the database until the
//!    window has passed (so a replay is refused by any process sharing the database);
//! 6. the application is approved (`app_not_approved`);
//! 7. the partner's rate limit has room (`rate_limited`, 429 with `Retry-After`).
//!
//! Scopes are checked by each operation, which knows the use it acts for.

use axum::http::HeaderMap;

use super::canonical::{
    self, H_KEY_ID, H_NONCE, H_SIGNATURE, H_TIMESTAMP, SignedParts, canonical_query,
    nonce_is_valid, parse_signature,
};
use super::error::{ApiError, internal};
use super::model::{AppState, Application, KeyId, Operation, Scope};
use super::{PartnerPlatform, now_ms};
use crate::directory::UseNumber;

/// The request as received, for the signature check.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as sent.
    pub path: &'a str,
    /// Raw query string, if any.
    pub query: Option<&'a str>,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body bytes.
    pub body: &'a [u8],
}

/// A refused request: the error, and the application whose key id it named when that key is
/// registered (the audit attributes the attempt to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What to answer.
    pub error: ApiError,
    /// The application of the named key, once the key was found.
    pub app_id: Option<super::model::AppId>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal {
            error,
            app_id: None,
        }
    }
}

/// An authenticated caller: the key that signed and its approved application.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key that signed.
    pub key_id: KeyId,
    /// Its application (approved).
    pub app: Application,
}

impl Caller {
    /// Checks that the application holds `operation` on `use_number`. Errors: `ScopeDenied`.
    pub fn require(&self, use_number: &UseNumber, operation: Operation) -> Result<Scope, ApiError> {
        let scope = Scope {
            use_number: use_number.clone(),
            operation,
        };
        if self.app.grants(&scope) {
            Ok(scope)
        } else {
            Err(ApiError::ScopeDenied)
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::MissingSignature)
}

/// The key id header when it has a key id's shape (for the audit's `caller`).
pub fn claimed_key_id(headers: &HeaderMap) -> Option<KeyId> {
    headers
        .get(H_KEY_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(KeyId::parse)
}

impl PartnerPlatform {
    /// Authenticates a signed request (module doc for the order of checks). On success the
    /// nonce is spent and one call is taken from the partner's rate limit.
    /// Errors: the catalogued refusal; `Internal` when the database fails.
    pub async fn authenticate(&self, request: &RequestParts<'_>) -> Result<Caller, Refusal> {
        let headers = request.headers;
        let key_text = header(headers, H_KEY_ID)?;
        let timestamp_text = header(headers, H_TIMESTAMP)?;
        let nonce = header(headers, H_NONCE)?;
        let signature_text = header(headers, H_SIGNATURE)?;
        let key_id = KeyId::parse(key_text).ok_or(ApiError::BadKeyId)?;
        let timestamp_ms: i64 = timestamp_text
            .parse()
            .ok()
            .filter(|t| *t >= 0 && timestamp_text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(ApiError::BadTimestamp)?;
        if !nonce_is_valid(nonce) {
            return Err(ApiError::BadNonce.into());
        }
        let signature = parse_signature(signature_text)?;
        let credential = self
            .store
            .partner_credential(&key_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::UnknownKey)?;
        let app_id = credential.app_id.clone();
        self.check_known(
            request,
            &key_id,
            &credential,
            timestamp_ms,
            timestamp_text,
            nonce,
            &signature,
        )
        .await
        .map_err(|error| Refusal {
            error,
            app_id: Some(app_id),
        })
    }

    /// Steps 2 (revocation) to 7 for a registered key.
    #[allow(clippy::too_many_arguments)]
    async fn check_known(
        &self,
        request: &RequestParts<'_>,
        key_id: &KeyId,
        credential: &super::model::Credential,
        timestamp_ms: i64,
        timestamp_text: &str,
        nonce: &str,
        signature: &[u8; 64],
    ) -> Result<Caller, ApiError> {
        if !credential.active {
            return Err(ApiError::KeyRevoked);
        }
        let now = now_ms();
        if now.abs_diff(timestamp_ms) > self.options.skew_ms_max.unsigned_abs() {
            return Err(ApiError::TimestampExpired);
        }
        let pairs = canonical::query_pairs(request.query)?;
        let query = canonical_query(&pairs);
        let canonical = canonical::canonical_request(&SignedParts {
            method: request.method,
            path: request.path,
            query: &query,
            body: request.body,
            timestamp: timestamp_text,
            nonce,
            key_id: key_id.as_str(),
        });
        canonical::verify(credential, canonical.as_bytes(), signature)?;
        // Kept until no timestamp that could carry it is accepted any more.
        let expires = timestamp_ms.saturating_add(self.options.skew_ms_max.saturating_mul(2));
        let fresh = self
            .store
            .partner_nonce_fresh(key_id, nonce, expires)
            .await
            .map_err(|e| internal(&e))?;
        if !fresh {
            return Err(ApiError::NonceReplayed);
        }
        let app = self
            .store
            .partner_app(&credential.app_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::UnknownKey)?;
        if app.state != AppState::Approved {
            return Err(ApiError::AppNotApproved);
        }
        self.limits
            .check(app.partner_code.as_str(), app.rate_per_minute, app.burst)
            .map_err(ApiError::RateLimited)?;
        Ok(Caller {
            key_id: key_id.clone(),
            app,
        })
    }
}
