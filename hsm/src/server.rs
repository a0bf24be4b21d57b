//! The HTTP/JSON face of the HSM (feature `server`): `POST /v1/<OperationName>` with a JSON
//! body of hex fields (see [`crate::ops::api`]), each caller authenticated by a bearer token.
//!
//! Errors answer `{ "code": ..., "message": ... }` with a 4xx status (5xx only for a failing
//! key store or audit log); messages come from [`HsmError`] and never hold key material. The
//! library stays synchronous: each request runs on a blocking thread holding the HSM's lock.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ops::{Hsm, HsmError};

/// Largest request body accepted, in bytes.
pub const REQUEST_BODY_LEN_MAX: usize = 256 * 1024;
/// Shortest caller token accepted, in characters.
pub const TOKEN_LEN_MIN: usize = 16;
/// Most callers in one configuration.
pub const CALLERS_MAX: usize = 256;
/// Environment variable listing callers as `name:token,name:token`.
pub const CALLERS_ENV: &str = "HSM_CALLERS";

/// A bad caller configuration. Messages never contain tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallersError {
    /// An entry is not `name:token`, the name is not `A-Za-z0-9._-`, or the token is short.
    #[error("caller entry {index}: {reason}")]
    Entry {
        /// One-based entry number.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// No callers configured.
    #[error("no callers configured: set {CALLERS_ENV} or pass --callers-file")]
    Empty,
    /// More than [`CALLERS_MAX`] callers.
    #[error("more than {CALLERS_MAX} callers")]
    TooMany,
    /// The callers file could not be read, or is readable by group or others.
    #[error("callers file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The authenticated callers: names and the SHA-256 of their tokens. `Debug` shows names only.
pub struct Callers {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for Callers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Callers").field("names", &names).finish()
    }
}

fn token_digest(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Callers {
    /// Parses `name:token` entries separated by commas or newlines (`#` starts a comment line).
    ///
    /// Errors: [`CallersError`].
    pub fn parse(text: &str) -> Result<Self, CallersError> {
        let mut entries = Vec::new();
        let items = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        for (i, item) in items.enumerate() {
            let index = i + 1;
            let (name, token) = item.split_once(':').ok_or(CallersError::Entry {
                index,
                reason: "expected name:token",
            })?;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(CallersError::Entry {
                    index,
                    reason: "name must be 1-64 characters of A-Z a-z 0-9 . _ -",
                });
            }
            if token.len() < TOKEN_LEN_MIN {
                return Err(CallersError::Entry {
                    index,
                    reason: "token shorter than 16 characters",
                });
            }
            entries.push((name.to_owned(), token_digest(token.as_bytes())));
            if entries.len() > CALLERS_MAX {
                return Err(CallersError::TooMany);
            }
        }
        if entries.is_empty() {
            return Err(CallersError::Empty);
        }
        Ok(Self { entries })
    }

    /// Reads callers from a file (mode 0600 or stricter on Unix).
    ///
    /// Errors: [`CallersError::File`] and parse errors.
    pub fn from_file(path: &Path) -> Result<Self, CallersError> {
        let err = |reason: String| CallersError::File {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(format!("mode {mode:o}; it must be 0600 or stricter")));
            }
        }
        if meta.len() > 1024 * 1024 {
            return Err(err(String::from("larger than 1 MiB")));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        Self::parse(&text)
    }

    /// The caller whose token this is, comparing against every caller in constant time.
    #[must_use]
    pub fn authenticate(&self, token: &[u8]) -> Option<&str> {
        let presented = token_digest(token);
        let mut found = None;
        for (name, digest) in &self.entries {
            if bool::from(digest.ct_eq(&presented)) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// Shared state of the HTTP app.
#[derive(Clone)]
pub struct AppState {
    hsm: Arc<Mutex<Hsm>>,
    callers: Arc<Callers>,
}

impl AppState {
    /// Wraps an opened HSM and its callers.
    #[must_use]
    pub fn new(hsm: Hsm, callers: Callers) -> Self {
        Self {
            hsm: Arc::new(Mutex::new(hsm)),
            callers: Arc::new(callers),
        }
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

fn hsm_error(e: &HsmError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_response(status, e.code(), &e.to_string())
}

/// The HTTP application: `POST /v1/{operation}`; anything else answers 404 JSON.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/{operation}", post(operation))
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such route; use POST /v1/<OperationName>",
            )
        })
        .layer(DefaultBodyLimit::max(REQUEST_BODY_LEN_MAX))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn operation(
    State(state): State<AppState>,
    UrlPath(operation): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(caller) = token.and_then(|t| state.callers.authenticate(t.as_bytes())) else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or unknown bearer token",
        );
    };
    let caller = caller.to_owned();
    let request: Value = if body.is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let message = format!(
                    "request body is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                );
                return error_response(StatusCode::BAD_REQUEST, "BAD_JSON", &message);
            }
        }
    };
    let hsm = Arc::clone(&state.hsm);
    let joined = tokio::task::spawn_blocking(move || {
        let mut guard = match hsm.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        crate::ops::api::execute(&mut guard, &caller, &operation, &request)
    })
    .await;
    match joined {
        Ok(Ok(reply)) => (StatusCode::OK, axum::Json(reply)).into_response(),
        Ok(Err(e)) => hsm_error(&e),
        Err(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the operation did not complete",
        ),
    }
}
