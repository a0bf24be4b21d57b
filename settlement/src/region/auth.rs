//! Mutual authentication of inter-node messages: every request AND every reply carries an
//! HMAC-SHA256 signature under the key of the node pair (`[[link]]` in the regions file), over
//! the direction, both divisions, a millisecond timestamp, the path, the HTTP status (replies)
//! and the exact body bytes. The receiver of a request checks it before reading the body; the
//! caller checks the reply before believing it. A replayed request is harmless (the inbox makes
//! every message take effect once) and is also refused outside `SKEW_MS_MAX`.
//!
//! Source of the choice: issue 6 ("request signatures under keys"), limits.md §5 (HMAC-SHA256
//! costs well under a microsecond: no budget concern, unlike SM2 at 224 µs).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::config::LinkKey;

/// Header: sender division.
pub const H_FROM: &str = "x-region-from";
/// Header: receiver division.
pub const H_TO: &str = "x-region-to";
/// Header: Unix milliseconds at signing.
pub const H_TS: &str = "x-region-ts";
/// Header: hex HMAC-SHA256.
pub const H_SIG: &str = "x-region-sig";
/// Largest accepted clock difference between nodes, ms.
pub const SKEW_MS_MAX: i64 = 300_000;

/// What a signature covers besides the body.
pub(crate) struct Signed<'a> {
    /// "req" or "rep".
    pub direction: &'a str,
    /// Signer.
    pub from: u32,
    /// Intended receiver.
    pub to: u32,
    /// Unix ms.
    pub ts_ms: i64,
    /// Request path.
    pub path: &'a str,
    /// HTTP status (0 for requests).
    pub status: u16,
}

fn mac(key: &LinkKey, signed: &Signed<'_>, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0).ok()?;
    let head = format!(
        "region-v1\n{}\n{}\n{}\n{}\n{}\n{}\n",
        signed.direction, signed.from, signed.to, signed.ts_ms, signed.path, signed.status
    );
    mac.update(head.as_bytes());
    mac.update(body);
    Some(mac)
}

/// The hex signature (empty if the key is unusable, which `Regions::parse` rules out).
pub(crate) fn sign(key: &LinkKey, signed: &Signed<'_>, body: &[u8]) -> String {
    mac(key, signed, body).map_or_else(String::new, |m| hex::encode(m.finalize().into_bytes()))
}

/// Checks a hex signature in constant time.
pub(crate) fn verify(key: &LinkKey, signed: &Signed<'_>, body: &[u8], sig_hex: &str) -> bool {
    let Ok(sig) = hex::decode(sig_hex) else {
        return false;
    };
    mac(key, signed, body).is_some_and(|m| m.verify_slice(&sig).is_ok())
}
