//! The calling side of the inter-node protocol: signed JSON POSTs with bounded timeouts, and
//! replies believed only when their signature verifies. Failures are classified the way the
//! treating flow needs them: `Unreachable` (the request never left: safe to refuse at once),
//! `Unknown` (sent, no answer in time: resolve or reverse), `Refused` (the peer's catalogued
//! refusal), `BadReply`.
//!
//! The bytes travel through a [`Transport`]: HTTP (`reqwest`) in a deployment, an in-memory
//! network in the seeded simulation (`tests/region_sim.rs`), which decides each message's fate
//! (delivered, lost, answered late, duplicated, the caller or the callee crashing) from its seed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ids::Admdvs;
use crate::medical::ids::now_ms;

use super::auth::{self, H_FROM, H_SIG, H_TO, H_TS, Signed};
use super::wire::Refusal;
use super::{Node, RegionError};

/// Largest reply body accepted from a peer, bytes.
pub const REPLY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A boxed future of a transport.
pub type TransportFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TransportReply, TransportError>> + Send + 'a>>;

/// How one exchange failed, as far as the caller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The request did not leave (connection refused or failed before sending): the peer did
    /// not see it.
    NotSent,
    /// The request may have arrived, but no complete answer came back in time.
    NoAnswer,
}

/// A peer's answer: HTTP status, headers and body bytes (not yet authenticated).
#[derive(Debug, Clone)]
pub struct TransportReply {
    /// HTTP status.
    pub status: u16,
    /// Headers (the reply signature is among them).
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Carries one signed request to a peer and brings back its answer.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// POSTs `body` with `headers` (the signature headers included) to `url`, the peer's base
    /// URL followed by the path.
    fn post(&self, url: String, headers: HeaderMap, body: Vec<u8>) -> TransportFuture<'_>;
}

/// HTTP with `reqwest`: connect timeout `NodeOptions::connect_timeout_ms`, whole-request timeout
/// `NodeOptions::request_timeout_ms`.
#[derive(Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A client with these timeouts (ms). Errors: `Config` (TLS backend could not start).
    pub fn new(connect_timeout_ms: u64, request_timeout_ms: u64) -> Result<Self, RegionError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(connect_timeout_ms))
            .timeout(Duration::from_millis(request_timeout_ms))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| RegionError::Config(e.to_string()))?;
        Ok(HttpTransport { client })
    }
}

impl Transport for HttpTransport {
    fn post(&self, url: String, headers: HeaderMap, body: Vec<u8>) -> TransportFuture<'_> {
        Box::pin(async move {
            let sent = self
                .client
                .post(url)
                .headers(headers)
                .body(body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(error) if error.is_connect() => return Err(TransportError::NotSent),
                Err(_) => return Err(TransportError::NoAnswer),
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|_| TransportError::NoAnswer)?;
            Ok(TransportReply {
                status,
                headers,
                body: body.to_vec(),
            })
        })
    }
}

fn header_value(value: &str) -> Result<HeaderValue, RegionError> {
    HeaderValue::from_str(value).map_err(|e| RegionError::Config(e.to_string()))
}

impl Node {
    /// POSTs `body` to node `to` at `path` and returns the verified reply.
    pub(crate) async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        to: Admdvs,
        path: &str,
        body: &B,
    ) -> Result<R, RegionError> {
        let bytes = serde_json::to_vec(body).map_err(|e| RegionError::Storage(e.to_string()))?;
        self.call_raw(to, path, bytes).await
    }

    /// `call` with a body already serialised (outbox messages).
    pub(crate) async fn call_raw<R: DeserializeOwned>(
        &self,
        to: Admdvs,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<R, RegionError> {
        let region = self.regions.get(to).ok_or(RegionError::UnknownRegion(to))?;
        let key = self
            .regions
            .key(self.me, to)
            .ok_or(RegionError::Config(format!("no link key {}-{to}", self.me)))?;
        let ts_ms = now_ms();
        let signed = Signed {
            direction: "req",
            from: self.me.code(),
            to: to.code(),
            ts_ms,
            path,
            status: 0,
        };
        let sig = auth::sign(key, &signed, &bytes);
        let mut headers = HeaderMap::new();
        headers.insert(H_FROM, header_value(&self.me.to_string())?);
        headers.insert(H_TO, header_value(&to.to_string())?);
        headers.insert(H_TS, header_value(&ts_ms.to_string())?);
        headers.insert(H_SIG, header_value(&sig)?);
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let reply = match self
            .transport
            .post(format!("{}{path}", region.url), headers, bytes)
            .await
        {
            Ok(reply) => reply,
            Err(TransportError::NotSent) => return Err(RegionError::Unreachable(to)),
            Err(TransportError::NoAnswer) => return Err(RegionError::Unknown(to)),
        };
        let (status, headers, body) = (reply.status, reply.headers, reply.body);
        if body.len() > REPLY_BYTES_MAX {
            return Err(RegionError::BadReply(to, "reply too large"));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let reply_ts: i64 = header(H_TS)
            .and_then(|v| v.parse().ok())
            .ok_or(RegionError::BadReply(to, "no timestamp"))?;
        let reply = Signed {
            direction: "rep",
            from: to.code(),
            to: self.me.code(),
            ts_ms: reply_ts,
            path,
            status,
        };
        let sig = header(H_SIG).ok_or(RegionError::BadReply(to, "unsigned"))?;
        if !auth::verify(key, &reply, &body, sig) {
            return Err(RegionError::BadReply(to, "signature"));
        }
        match status {
            200 => serde_json::from_slice(&body).map_err(|_| RegionError::BadReply(to, "json")),
            422 => {
                let refusal: Refusal =
                    serde_json::from_slice(&body).map_err(|_| RegionError::BadReply(to, "json"))?;
                Err(RegionError::Refused(to, refusal.err_code, refusal.err_msg))
            }
            _ => Err(RegionError::Unknown(to)),
        }
    }
}
