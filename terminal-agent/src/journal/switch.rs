//! The client of the settlement switch: `POST {base}/fsi/api/rsfComIfsService/callService` with
//! one JSON envelope (medical-settlement.md §1.0). A reply is `{infcode, err_msg, output, ...}`;
//! `infcode` 0 (number or string) is success.
//!
//! What a failure means matters more than the failure: a connection that was never made means
//! the message was **not delivered**; a timeout or a broken reply after the request left means
//! the outcome is **unknown** (the switch may have processed it) — never "failed".

use std::time::Duration;

use serde_json::Value;

use super::envelope::Envelope;

/// The path of the national interface.
pub const CALL_SERVICE_PATH: &str = "/fsi/api/rsfComIfsService/callService";

/// The switch's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchReply {
    /// `infcode`: 0 success, other values a refusal.
    pub infcode: i64,
    /// `err_msg`, if any.
    pub err_msg: Option<String>,
    /// `output`.
    pub output: Value,
}

impl SwitchReply {
    /// True for `infcode` 0.
    pub fn acknowledged(&self) -> bool {
        self.infcode == 0
    }
}

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SwitchError {
    /// The connection could not be made: the switch never saw the message.
    #[error("the switch is not reachable; the message was not delivered")]
    NotDelivered,
    /// Timed out or broke after the request left: the switch may have processed it.
    #[error("no usable reply from the switch; the outcome is unknown ({0})")]
    Unknown(String),
}

/// A client of one switch.
#[derive(Debug, Clone)]
pub struct SwitchClient {
    url: String,
    client: reqwest::Client,
}

impl SwitchClient {
    /// A client of the switch at `base_url`; each call is bounded by `timeout_ms`.
    ///
    /// Errors: the HTTP client cannot be built.
    pub fn new(base_url: &str, timeout_ms: u64) -> Result<Self, crate::AgentError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms))
            .build()
            .map_err(|e| crate::AgentError::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            url: format!("{}{CALL_SERVICE_PATH}", base_url.trim_end_matches('/')),
            client,
        })
    }

    /// Sends `body` (an envelope's JSON text, exactly as journaled).
    ///
    /// Errors: [`SwitchError`].
    pub async fn call(&self, body: &str) -> Result<SwitchReply, SwitchError> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    SwitchError::NotDelivered
                } else {
                    SwitchError::Unknown(if e.is_timeout() {
                        "timeout".into()
                    } else {
                        "transport".into()
                    })
                }
            })?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .map_err(|_| SwitchError::Unknown(format!("HTTP {status}, reply not JSON")))?;
        let infcode = match value.get("infcode") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| SwitchError::Unknown(format!("HTTP {status}, reply without infcode")))?;
        Ok(SwitchReply {
            infcode,
            err_msg: value
                .get("err_msg")
                .and_then(Value::as_str)
                .map(str::to_owned),
            output: value.get("output").cloned().unwrap_or(Value::Null),
        })
    }

    /// Serialises and sends `envelope`.
    ///
    /// Errors: [`SwitchError`].
    pub async fn send(&self, envelope: &Envelope) -> Result<SwitchReply, SwitchError> {
        let body =
            serde_json::to_string(envelope).map_err(|e| SwitchError::Unknown(e.to_string()))?;
        self.call(&body).await
    }
}
