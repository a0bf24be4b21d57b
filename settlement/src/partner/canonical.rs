//! Request signing (our scheme, `SSC-PARTNER-SIG-V1`). A partner signs the CANONICAL REQUEST,
//! the UTF-8 text of eight lines joined by `\n` (no trailing newline):
//!
//! ```text
//! SSC-PARTNER-SIG-V1
//! <METHOD, upper case>
//! <path exactly as sent, e.g. /api/partner/v1/settlements/S1>
//! <canonical query: parameters percent-decoded, sorted by name then value, each re-encoded
//!  with every byte outside A-Z a-z 0-9 - _ . ~ as %XX (upper hex), joined as k=v with &>
//! <lowercase hex SHA-256 of the body bytes (of the empty string for no body)>
//! <X-SSC-Timestamp: Unix milliseconds>
//! <X-SSC-Nonce: 16-64 of A-Z a-z 0-9 _ ->
//! <X-SSC-Key-Id>
//! ```
//!
//! and sends `X-SSC-Signature`: r‖s as 128 hex digits, made with
//! - SM2 (GB/T 32918.2) with e = SM3(Z_A ‖ canonical request), Z_A from the key's registered
//!   distinguishing ID (GM/T 0009 default `1234567812345678`), or
//! - ECDSA P-256 with SHA-256 over the canonical request (FIPS 186-4; DER signatures are
//!   converted to r‖s by the client).
//!
//! The check is done by the `hsm` crate ([`hsm::sm::sm2_verify`], [`hsm::sm::p256_verify`]).
//! The shape is modelled on AWS SigV4's canonical request; `+` in a query is a literal plus,
//! not a space (only `%20` is a space).

use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::model::{Credential, KeyAlgorithm};

/// The scheme name: first line of the canonical request.
pub const SCHEME: &str = "SSC-PARTNER-SIG-V1";
/// Header: the key id.
pub const H_KEY_ID: &str = "x-ssc-key-id";
/// Header: Unix milliseconds at signing.
pub const H_TIMESTAMP: &str = "x-ssc-timestamp";
/// Header: the single-use nonce.
pub const H_NONCE: &str = "x-ssc-nonce";
/// Header: the signature r‖s, hex.
pub const H_SIGNATURE: &str = "x-ssc-signature";
/// Shortest nonce, bytes.
pub const NONCE_LEN_MIN: usize = 16;
/// Longest nonce, bytes.
pub const NONCE_LEN_MAX: usize = 64;
/// Most query parameters a signed request may carry.
pub const QUERY_PARAMS_MAX: usize = 32;

/// Whether a nonce has the accepted shape.
pub fn nonce_is_valid(nonce: &str) -> bool {
    (NONCE_LEN_MIN..=NONCE_LEN_MAX).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn unhex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one component (`+` stays `+`). Errors: `None` on a broken escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = unhex(*bytes.get(i + 1)?)?;
            let lo = unhex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Percent-encodes bytes: unreserved characters (RFC 3986 §2.3) stay, everything else `%XX`.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query's parameters, decoded (UTF-8), in the order given. Errors: `BadQuery` for a
/// broken escape, non-UTF-8, or more than [`QUERY_PARAMS_MAX`] parameters.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() == QUERY_PARAMS_MAX {
            return Err(ApiError::BadQuery);
        }
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = String::from_utf8(percent_decode(name).ok_or(ApiError::BadQuery)?)
            .map_err(|_| ApiError::BadQuery)?;
        let value = String::from_utf8(percent_decode(value).ok_or(ApiError::BadQuery)?)
            .map_err(|_| ApiError::BadQuery)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The canonical query line of decoded pairs.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encode(k.as_bytes()),
                percent_encode(v.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path as sent.
    pub path: &'a str,
    /// The canonical query line.
    pub query: &'a str,
    /// The body bytes.
    pub body: &'a [u8],
    /// `X-SSC-Timestamp` as sent.
    pub timestamp: &'a str,
    /// `X-SSC-Nonce`.
    pub nonce: &'a str,
    /// `X-SSC-Key-Id`.
    pub key_id: &'a str,
}

/// The canonical request text (module doc).
pub fn canonical_request(parts: &SignedParts<'_>) -> String {
    [
        SCHEME,
        parts.method,
        parts.path,
        parts.query,
        &hex::encode(Sha256::digest(parts.body)),
        parts.timestamp,
        parts.nonce,
        parts.key_id,
    ]
    .join("\n")
}

/// Decodes `X-SSC-Signature`. Errors: `BadSignatureFormat` unless 128 hex digits.
pub fn parse_signature(text: &str) -> Result<[u8; 64], ApiError> {
    let bytes = hex::decode(text).map_err(|_| ApiError::BadSignatureFormat)?;
    <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| ApiError::BadSignatureFormat)
}

/// Verifies `signature` over `canonical` with the credential, through the `hsm` crate.
/// Errors: `SignatureInvalid`.
pub fn verify(
    credential: &Credential,
    canonical: &[u8],
    signature: &[u8; 64],
) -> Result<(), ApiError> {
    let checked = match credential.algorithm {
        KeyAlgorithm::Sm2 => hsm::sm::sm2_verify(
            &credential.public_key,
            &credential.sm2_id,
            canonical,
            signature,
        ),
        KeyAlgorithm::EcdsaP256 => {
            hsm::sm::p256_verify(&credential.public_key, canonical, signature)
        }
    };
    checked.map_err(|_| ApiError::SignatureInvalid)
}

/// Checks a public key registered for `algorithm`: an uncompressed point (`04‖X‖Y`, 65 bytes)
/// on the algorithm's curve. Accepts 130 hex digits, or 128 (X‖Y, as `gmssl` prints SM2 keys)
/// to which `04` is prefixed. Errors: `BadPublicKey`.
pub fn parse_public_key(algorithm: KeyAlgorithm, text: &str) -> Result<[u8; 65], ApiError> {
    let text = if text.len() == 128 {
        format!("04{text}")
    } else {
        text.to_owned()
    };
    match algorithm {
        KeyAlgorithm::Sm2 => {
            hsm::sm::sm2_public_key_from_hex(&text).map_err(|_| ApiError::BadPublicKey)
        }
        KeyAlgorithm::EcdsaP256 => {
            hsm::sm::p256_public_key_from_hex(&text).map_err(|_| ApiError::BadPublicKey)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_sorted_and_reencoded() {
        let pairs = query_pairs(Some("use=P023&a=%E4%B8%AD+x&a=1&b")).unwrap();
        assert_eq!(
            canonical_query(&pairs),
            "a=1&a=%E4%B8%AD%2Bx&b=&use=P023".to_owned()
        );
        assert_eq!(query_pairs(Some("a=%zz")), Err(ApiError::BadQuery));
        assert_eq!(query_pairs(Some("a=%FF")), Err(ApiError::BadQuery));
        assert!(query_pairs(None).unwrap().is_empty());
    }

    #[test]
    fn canonical_request_lines() {
        let text = canonical_request(&SignedParts {
            method: "GET",
            path: "/p",
            query: "",
            body: b"",
            timestamp: "1",
            nonce: "n",
            key_id: "k",
        });
        // SHA-256 of the empty string (FIPS 180-4 test value).
        assert_eq!(
            text,
            "SSC-PARTNER-SIG-V1\nGET\n/p\n\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n1\nn\nk"
        );
    }

    #[test]
    fn nonces() {
        assert!(nonce_is_valid("0123456789abcdef"));
        assert!(!nonce_is_valid("0123456789abcde"));
        assert!(!nonce_is_valid("0123456789abcdef!"));
    }
}
