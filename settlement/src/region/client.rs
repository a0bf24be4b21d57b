//! The calling side of the inter-node protocol: signed JSON POSTs with bounded timeouts, and
//! replies believed only when their signature verifies. Failures are classified the way the
//! treating flow needs them: `Unreachable` (the request never left: safe to refuse at once),
//! `Unknown` (sent, no answer in time: resolve or reverse), `Refused` (the peer's catalogued
//! refusal), `BadReply`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ids::Admdvs;
use crate::medical::ids::now_ms;

use super::auth::{self, H_FROM, H_SIG, H_TO, H_TS, Signed};
use super::wire::Refusal;
use super::{Node, RegionError};

/// Largest reply body accepted from a peer, bytes.
pub const REPLY_BYTES_MAX: usize = 4 * 1024 * 1024;

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
        let sent = self
            .http
            .post(format!("{}{path}", region.url))
            .header(H_FROM, self.me.to_string())
            .header(H_TO, to.to_string())
            .header(H_TS, ts_ms.to_string())
            .header(H_SIG, sig)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_connect() => return Err(RegionError::Unreachable(to)),
            Err(_) => return Err(RegionError::Unknown(to)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|_| RegionError::Unknown(to))?;
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
