//! The client of the settlement switch: `POST {base}/fsi/api/rsfComIfsService/callService` with
//! one JSON envelope (medical-settlement.md §1.0). A reply is `{infcode, err_msg, output, ...}`;
//! `infcode` 0 (number or string) is success.
//!
//! What a failure means matters more than the failure: a connection that was never made means
//! the message was **not delivered**; a timeout or a broken reply after the request left means
//! the outcome is **unknown** (the switch may have processed it) — never "failed".
//!
//! The platform gateway (medical-settlement.md §1.0) authenticates the caller with four headers,
//! fresh on every attempt (a retry must not replay a nonce): `x-tif-paasid`, `x-tif-timestamp`
//! (Unix seconds), `x-tif-nonce` (32 random hex digits) and `x-tif-signature` = lowercase hex
//! SHA-256 of `timestamp + paasToken + nonce + timestamp`. The token is held in
//! [`PaasToken`], which never prints.

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

/// The gateway's shared secret (`paasToken`); `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct PaasToken(String);

impl PaasToken {
    /// Wraps the token text.
    pub fn new(token: String) -> Self {
        Self(token)
    }
}

impl std::fmt::Debug for PaasToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaasToken(***)")
    }
}

/// The caller's gateway identity: `paasid` and its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayCredentials {
    /// `x-tif-paasid`.
    pub paas_id: String,
    /// The token the signature is keyed with (never sent, never logged).
    pub token: PaasToken,
}

/// `x-tif-signature`: lowercase hex SHA-256 of `timestamp + token + nonce + timestamp`
/// (medical-settlement.md §1.0).
pub fn gateway_signature(timestamp: &str, token: &PaasToken, nonce: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [timestamp, token.0.as_str(), nonce, timestamp] {
        ctx.update(part.as_bytes());
    }
    hex::encode(ctx.finish())
}

/// A client of one switch.
#[derive(Debug, Clone)]
pub struct SwitchClient {
    url: String,
    client: reqwest::Client,
    gateway: Option<GatewayCredentials>,
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
            gateway: None,
        })
    }

    /// The same client, signing every call with `credentials` (the gateway's `x-tif-*`
    /// headers).
    #[must_use]
    pub fn with_gateway(mut self, credentials: GatewayCredentials) -> Self {
        self.gateway = Some(credentials);
        self
    }

    /// The gateway headers for one attempt.
    ///
    /// Errors: [`SwitchError::NotDelivered`] when the system has no randomness for the nonce
    /// (nothing was sent).
    fn gateway_headers(&self) -> Result<Vec<(&'static str, String)>, SwitchError> {
        let Some(gateway) = &self.gateway else {
            return Ok(Vec::new());
        };
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| SwitchError::NotDelivered)?;
        let nonce = hex::encode(nonce);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let signature = gateway_signature(&timestamp, &gateway.token, &nonce);
        Ok(vec![
            ("x-tif-paasid", gateway.paas_id.clone()),
            ("x-tif-timestamp", timestamp),
            ("x-tif-nonce", nonce),
            ("x-tif-signature", signature),
        ])
    }

    /// Sends `body` (an envelope's JSON text, exactly as journaled).
    ///
    /// Errors: [`SwitchError`].
    pub async fn call(&self, body: &str) -> Result<SwitchReply, SwitchError> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in self.gateway_headers()? {
            request = request.header(name, value);
        }
        let response = request.body(body.to_owned()).send().await.map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_signature_is_sha256_of_the_four_parts() {
        // Independent: python3 -c "import hashlib;print(hashlib.sha256(
        //   b'1732950000'+b'tok-123'+b'abcd'+b'1732950000').hexdigest())"
        assert_eq!(
            gateway_signature("1732950000", &PaasToken::new("tok-123".into()), "abcd"),
            "61ceaef1b77d910932102f4543f8d7510c3fefdf305b19f4fee0399be5f53feb"
        );
        assert_eq!(
            format!("{:?}", PaasToken::new("tok-123".into())),
            "PaasToken(***)"
        );
    }
}
