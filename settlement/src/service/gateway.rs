//! The platform gateway's caller authentication (medical-settlement.md §1.0, grade A):
//! `x-tif-paasid`, `x-tif-timestamp` (Unix seconds), `x-tif-nonce`, and `x-tif-signature` =
//! lowercase hex SHA-256 of `timestamp + paasToken + nonce + timestamp`. A timestamp outside
//! `timestamp_window_s` of now is stale; a nonce seen within the window is a replay. The nonce
//! memory is bounded (`nonces_max`): when it is full of unexpired nonces, requests are refused
//! rather than the memory growing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Mutex;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// Longest nonce accepted, bytes.
const NONCE_LEN_MAX: usize = 64;

/// Gateway settings.
#[derive(Clone)]
pub struct GatewayConfig {
    /// `paasid` → `paasToken`. Empty: authentication is off (tests, a trusted private network).
    pub callers: HashMap<String, String>,
    /// Largest accepted |now − timestamp|, seconds.
    pub timestamp_window_s: u64,
    /// Most nonces remembered.
    pub nonces_max: usize,
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("callers", &self.callers.keys().collect::<Vec<_>>())
            .field("timestamp_window_s", &self.timestamp_window_s)
            .field("nonces_max", &self.nonces_max)
            .finish()
    }
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            callers: HashMap::new(),
            timestamp_window_s: 300,
            nonces_max: 2_000_000,
        }
    }
}

/// The gateway check with its nonce memory.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    nonces: Mutex<Nonces>,
}

#[derive(Debug, Default)]
struct Nonces {
    seen: HashSet<u128>,
    order: VecDeque<(u64, u128)>,
}

/// Lowercase hex SHA-256 of `timestamp + token + nonce + timestamp`.
pub fn signature(timestamp: &str, token: &str, nonce: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "{timestamp}{token}{nonce}{timestamp}"
    )))
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, &'static str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(match name {
            "x-tif-paasid" => "x-tif-paasid header missing",
            "x-tif-timestamp" => "x-tif-timestamp header missing",
            "x-tif-nonce" => "x-tif-nonce header missing",
            _ => "x-tif-signature header missing",
        })
}

impl Gateway {
    /// A gateway with `config`.
    pub fn new(config: GatewayConfig) -> Gateway {
        Gateway {
            config,
            nonces: Mutex::new(Nonces::default()),
        }
    }

    /// Checks the headers at `now_s` (Unix seconds). Errors: a fixed reason text.
    pub fn check(&self, headers: &HeaderMap, now_s: u64) -> Result<(), &'static str> {
        if self.config.callers.is_empty() {
            return Ok(());
        }
        let paasid = header(headers, "x-tif-paasid")?;
        let timestamp = header(headers, "x-tif-timestamp")?;
        let nonce = header(headers, "x-tif-nonce")?;
        let sent = header(headers, "x-tif-signature")?;
        let token = self
            .config
            .callers
            .get(paasid)
            .ok_or("unknown x-tif-paasid")?;
        let stamp: u64 = timestamp
            .parse()
            .map_err(|_| "x-tif-timestamp is not Unix seconds")?;
        if stamp.abs_diff(now_s) > self.config.timestamp_window_s {
            return Err("x-tif-timestamp is stale");
        }
        if nonce.len() > NONCE_LEN_MAX {
            return Err("x-tif-nonce is too long");
        }
        let expected = signature(timestamp, token, nonce);
        // Constant-time comparison of the hex strings.
        let differs = expected.len() != sent.len()
            || expected
                .bytes()
                .zip(sent.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0;
        if differs {
            return Err("x-tif-signature does not match");
        }
        let key = u128::from_be_bytes(
            <[u8; 16]>::try_from(&Sha256::digest(format!("{paasid}\0{nonce}"))[..16])
                .map_err(|_| "nonce digest")?,
        );
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        let horizon = now_s.saturating_sub(self.config.timestamp_window_s);
        while let Some(&(seen_at, old)) = nonces.order.front() {
            if seen_at >= horizon {
                break;
            }
            nonces.order.pop_front();
            nonces.seen.remove(&old);
        }
        if nonces.seen.contains(&key) {
            return Err("x-tif-nonce was already used");
        }
        if nonces.seen.len() >= self.config.nonces_max {
            return Err("too many requests in the nonce window; retry later");
        }
        nonces.seen.insert(key);
        nonces.order.push_back((now_s, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ts: &str, nonce: &str, sig: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-tif-paasid", HeaderValue::from_static("his1"));
        map.insert("x-tif-timestamp", HeaderValue::from_str(ts).unwrap());
        map.insert("x-tif-nonce", HeaderValue::from_str(nonce).unwrap());
        map.insert("x-tif-signature", HeaderValue::from_str(sig).unwrap());
        map
    }

    fn gateway(nonces_max: usize) -> Gateway {
        Gateway::new(GatewayConfig {
            callers: HashMap::from([("his1".to_owned(), "secret".to_owned())]),
            timestamp_window_s: 60,
            nonces_max,
        })
    }

    #[test]
    fn signature_is_sha256_of_the_documented_concatenation() {
        // python3 -c "import hashlib;print(hashlib.sha256(b'1700000000secretabc1700000000').hexdigest())"
        assert_eq!(
            signature("1700000000", "secret", "abc"),
            "fdc48fe9d788109715ef6992d91898144cf86682942883a8ceec4dfebddb3d0f"
        );
    }

    #[test]
    fn fresh_accepted_stale_reused_and_forged_refused() {
        let g = gateway(10);
        let sig = signature("1000", "secret", "n1");
        assert_eq!(g.check(&headers("1000", "n1", &sig), 1010), Ok(()));
        assert_eq!(
            g.check(&headers("1000", "n1", &sig), 1010),
            Err("x-tif-nonce was already used")
        );
        let sig2 = signature("900", "secret", "n2");
        assert_eq!(
            g.check(&headers("900", "n2", &sig2), 1010),
            Err("x-tif-timestamp is stale")
        );
        assert_eq!(
            g.check(&headers("1000", "n3", &sig), 1010),
            Err("x-tif-signature does not match")
        );
        assert_eq!(
            g.check(&HeaderMap::new(), 1010),
            Err("x-tif-paasid header missing")
        );
    }

    #[test]
    fn nonce_memory_is_bounded_and_forgets_expired() {
        let g = gateway(2);
        for (n, now) in [("a", 1000), ("b", 1000)] {
            let sig = signature("1000", "secret", n);
            assert_eq!(g.check(&headers("1000", n, &sig), now), Ok(()));
        }
        let sig = signature("1000", "secret", "c");
        assert!(g.check(&headers("1000", "c", &sig), 1000).is_err());
        // 61 s later the first two fell out of the window.
        let sig = signature("1061", "secret", "c");
        assert_eq!(g.check(&headers("1061", "c", &sig), 1061), Ok(()));
    }
}
