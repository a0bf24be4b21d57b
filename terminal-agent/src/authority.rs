//! The card authority: the HSM that holds the social security card keys, reached in process
//! (`hsm::ops::Hsm`, keys wrapped under its LMK) or over its HTTP API (`hsm serve`:
//! `POST /v1/<Operation>`, Bearer token). **The agent never holds a card key**: it asks for
//! the EXTERNAL AUTHENTICATE cryptogram (`GenerateCardAuthCryptogram`) and for the check of the
//! card's INTERNAL AUTHENTICATE answer (`VerifyCardInternalAuth`).
//!
//! The 3rd-generation authentication is the model of docs/ssc-auth-model.md, **not verified
//! against the MOHRSS spec**. Calls run on a reader's worker thread (they block); the HTTP mode
//! drives its async client with the runtime handle it was given, bounded by `timeout_ms`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use card_core::auth::{AUTH_BLOCK_LEN, AuthenticatorError, CHALLENGE_LEN, ExternalAuthenticator};
use hsm::ops::{Hsm, HsmError};
use serde_json::{Value, json};

use crate::error::AgentError;

/// Key aliases in the HSM (usage `11` external, `10` internal authentication masters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityKeys {
    /// The RKSSSE external-authentication master key (usage `11`).
    pub external_auth_alias: String,
    /// The internal-authentication master key (usage `10`); `None` skips the card-genuineness
    /// check (INTERNAL AUTHENTICATE).
    pub internal_auth_alias: Option<String>,
}

/// A bearer token; `Debug` hides it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(****)")
    }
}

enum Mode {
    None,
    InProcess {
        hsm: Arc<Mutex<Hsm>>,
        caller: String,
    },
    Http {
        base_url: String,
        token: Token,
        client: reqwest::Client,
        runtime: tokio::runtime::Handle,
        timeout_ms: u64,
    },
}

/// Where card cryptograms come from. Cheap to clone.
#[derive(Clone)]
pub struct Authority {
    mode: Arc<Mode>,
    keys: Option<AuthorityKeys>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode.as_ref() {
            Mode::None => "none",
            Mode::InProcess { .. } => "in-process",
            Mode::Http { .. } => "http",
        };
        f.debug_struct("Authority")
            .field("mode", &mode)
            .field("keys", &self.keys)
            .finish()
    }
}

impl Authority {
    /// No HSM: 1.00/2.00 cards read fully; a 3.00 card's holder file answers
    /// [`AgentError::HsmUnavailable`] (the unified interface's −2201).
    pub fn none() -> Self {
        Self {
            mode: Arc::new(Mode::None),
            keys: None,
        }
    }

    /// The HSM library in this process; `caller` names the agent in the HSM's audit log.
    pub fn in_process(hsm: Arc<Mutex<Hsm>>, caller: &str, keys: AuthorityKeys) -> Self {
        Self {
            mode: Arc::new(Mode::InProcess {
                hsm,
                caller: caller.to_owned(),
            }),
            keys: Some(keys),
        }
    }

    /// `hsm serve` at `base_url` (`http://127.0.0.1:8443`); `runtime` drives the HTTP client
    /// from worker threads; each call is bounded by `timeout_ms`.
    ///
    /// Errors: [`AgentError::Internal`] if the HTTP client cannot be built.
    pub fn http(
        base_url: &str,
        token: Token,
        keys: AuthorityKeys,
        timeout_ms: u64,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, AgentError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .build()
            .map_err(|e| AgentError::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            mode: Arc::new(Mode::Http {
                base_url: base_url.trim_end_matches('/').to_owned(),
                token,
                client,
                runtime,
                timeout_ms,
            }),
            keys: Some(keys),
        })
    }

    /// True when the card-genuineness check (INTERNAL AUTHENTICATE) is configured.
    pub fn checks_internal_auth(&self) -> bool {
        self.keys
            .as_ref()
            .is_some_and(|k| k.internal_auth_alias.is_some())
    }

    /// Asks the HSM whether `card_response` is the card's INTERNAL AUTHENTICATE answer to
    /// `auth_data` (`VerifyCardInternalAuth`).
    ///
    /// Errors: [`AgentError::CardNotGenuine`] if it is not; [`AgentError::HsmUnavailable`],
    /// [`AgentError::HsmFailed`].
    pub fn verify_internal_auth(
        &self,
        card_id: &[u8; 16],
        auth_data: &[u8; AUTH_BLOCK_LEN],
        card_response: &[u8; AUTH_BLOCK_LEN],
    ) -> Result<(), AgentError> {
        let Some(alias) = self
            .keys
            .as_ref()
            .and_then(|k| k.internal_auth_alias.clone())
        else {
            return Err(AgentError::HsmUnavailable);
        };
        let result = match self.mode.as_ref() {
            Mode::None => return Err(AgentError::HsmUnavailable),
            Mode::InProcess { hsm, caller } => {
                let mut hsm = hsm
                    .lock()
                    .map_err(|_| AgentError::HsmFailed("HSM lock poisoned".into()))?;
                match hsm.verify_card_internal_auth(
                    caller,
                    &alias,
                    card_id,
                    *auth_data,
                    *card_response,
                ) {
                    Ok(()) => Ok(()),
                    Err(HsmError::VerificationFailed) => return Err(AgentError::CardNotGenuine),
                    Err(e) => Err(AuthenticatorError::Failed(e.code().to_owned())),
                }
            }
            Mode::Http { .. } => {
                let body = json!({
                    "alias": alias,
                    "card_id": hex::encode_upper(card_id),
                    "auth_data": hex::encode_upper(auth_data),
                    "card_response": hex::encode_upper(card_response),
                });
                match self.call_http("VerifyCardInternalAuth", &body) {
                    Ok(_) => Ok(()),
                    Err(HttpFailure::Refused(code)) if code == "VERIFICATION_FAILED" => {
                        return Err(AgentError::CardNotGenuine);
                    }
                    Err(other) => Err(other.into()),
                }
            }
        };
        result.map_err(AgentError::from)
    }

    fn call_http(&self, operation: &str, body: &Value) -> Result<Value, HttpFailure> {
        let Mode::Http {
            base_url,
            token,
            client,
            runtime,
            timeout_ms,
        } = self.mode.as_ref()
        else {
            return Err(HttpFailure::Unreachable);
        };
        let url = format!("{base_url}/v1/{operation}");
        let request = client.post(url).bearer_auth(&token.0).json(body);
        let timeout = Duration::from_millis(*timeout_ms);
        runtime.block_on(async move {
            let response = tokio::time::timeout(timeout, request.send())
                .await
                .map_err(|_| HttpFailure::Unreachable)?
                .map_err(|e| {
                    tracing::warn!(error = %e, "HSM not reachable");
                    HttpFailure::Unreachable
                })?;
            let status = response.status();
            let value: Value = tokio::time::timeout(timeout, response.json())
                .await
                .map_err(|_| HttpFailure::Unreachable)?
                .map_err(|_| HttpFailure::Refused(format!("HTTP {status}, body not JSON")))?;
            if status.is_success() {
                Ok(value)
            } else {
                let code = value
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("UNKNOWN")
                    .to_owned();
                Err(HttpFailure::Refused(code))
            }
        })
    }
}

enum HttpFailure {
    Unreachable,
    Refused(String),
}

impl From<HttpFailure> for AuthenticatorError {
    fn from(f: HttpFailure) -> Self {
        match f {
            HttpFailure::Unreachable => Self::Unavailable,
            HttpFailure::Refused(code) => Self::Failed(format!("HSM refused: {code}")),
        }
    }
}

impl ExternalAuthenticator for Authority {
    fn external_auth_cryptogram(
        &mut self,
        card_id: &[u8; 16],
        challenge: &[u8; CHALLENGE_LEN],
    ) -> Result<[u8; AUTH_BLOCK_LEN], AuthenticatorError> {
        let Some(keys) = self.keys.as_ref() else {
            return Err(AuthenticatorError::Unavailable);
        };
        match self.mode.as_ref() {
            Mode::None => Err(AuthenticatorError::Unavailable),
            Mode::InProcess { hsm, caller } => {
                let mut hsm = hsm
                    .lock()
                    .map_err(|_| AuthenticatorError::Failed("HSM lock poisoned".into()))?;
                hsm.generate_card_auth_cryptogram(
                    caller,
                    &keys.external_auth_alias,
                    card_id,
                    *challenge,
                )
                .map_err(|e| AuthenticatorError::Failed(e.code().to_owned()))
            }
            Mode::Http { .. } => {
                let body = json!({
                    "alias": keys.external_auth_alias,
                    "card_id": hex::encode_upper(card_id),
                    "challenge": hex::encode_upper(challenge),
                });
                let reply = self.call_http("GenerateCardAuthCryptogram", &body)?;
                let text = reply
                    .get("cryptogram")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        AuthenticatorError::Failed("HSM reply has no cryptogram".into())
                    })?;
                let bytes = hex::decode(text)
                    .map_err(|_| AuthenticatorError::Failed("HSM cryptogram is not hex".into()))?;
                <[u8; AUTH_BLOCK_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                    AuthenticatorError::Failed("HSM cryptogram is not 16 bytes".into())
                })
            }
        }
    }
}
