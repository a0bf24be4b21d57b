//! The sign-in token: a compact JWS (RFC 7515) with `alg` ES256 (RFC 7518 §3.4: ECDSA P-256 with
//! SHA-256, signature r ‖ s, 64 bytes), i.e. a JWT (RFC 7519).
//!
//! **The signing key is the hsm's** (`S0`, ECC_NIST_P256, mode `S`, created at first start):
//! the node asks the hsm to sign each token and never holds the private key. Verification needs
//! only the public key, so every service of the platform and every partner verifies without the
//! hsm (`GET /identity/v1/jwks` publishes it as an RFC 7517 JWK). ES256 rather than SM2
//! because a JWS library of any partner verifies it; the hsm signs SM2 too, should a profile
//! want it.
//!
//! Claims: `iss`, `aud`, `sub` (the holder pseudonym, never a person number), `sid` (the
//! session, for revocation), `iat`/`exp` (Unix seconds), `acr` (`card` or `card+pin`), `amr`
//! (`["card"]` or `["card","pin"]`), `admdvs` (the holder's 参保地).

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use hsm::ops::Hsm;
use serde::{Deserialize, Serialize};

use super::error::{IdentityError, Result};
use super::pii::{ensure_key, lock_hsm};

/// Longest token accepted, bytes.
pub const TOKEN_LEN_MAX: usize = 2_048;
/// The JWS `typ`.
const TYP: &str = "JWT";
/// The JWS `alg`.
const ALG: &str = "ES256";

/// The JOSE header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// The token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (the platform's name, `IdentityOptions::issuer`).
    pub iss: String,
    /// Audience: the platform's services and its partners (`IdentityOptions::audience`).
    pub aud: String,
    /// The holder pseudonym (32 hex digits).
    pub sub: String,
    /// The session id (32 hex digits); revocation is per session.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds (exclusive).
    pub exp: i64,
    /// Authentication level: `card` or `card+pin`.
    pub acr: String,
    /// Methods: `card`, and `pin` when the PIN was verified at the card.
    pub amr: Vec<String>,
    /// The holder's 参保地 (6 digits).
    pub admdvs: String,
}

impl Claims {
    /// True when the PIN was verified at the card for this session.
    pub fn has_pin(&self) -> bool {
        self.acr == "card+pin"
    }
}

/// The hsm's token key as the node uses it: its alias and the public key.
#[derive(Debug, Clone)]
pub struct TokenKey {
    alias: String,
    kid: String,
    public: Vec<u8>,
}

impl TokenKey {
    /// The key `alias` (created in the hsm when missing: ECDSA P-256, usage `S0`, mode `S`, not
    /// exportable) and its public key. `kid` = alias + "." + KCV. Errors: `Hsm`.
    pub fn open(hsm: &Arc<Mutex<Hsm>>, caller: &str, alias: &str) -> Result<TokenKey> {
        let header = KeyHeader {
            alias: alias.to_owned(),
            algorithm: KeyAlgorithm::EcdsaP256,
            usage: KeyUsage::S0,
            mode: ModeOfUse::S,
            version: *b"00",
            exportability: Exportability::NonExportable,
        };
        let kcv = ensure_key(hsm, caller, header)?;
        let public = lock_hsm(hsm).get_public_key(caller, alias)?;
        Ok(TokenKey {
            alias: alias.to_owned(),
            kid: format!("{alias}.{kcv}"),
            public,
        })
    }

    /// The key id in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as an RFC 7517 JWK (`kty` EC, `crv` P-256, `x`, `y` base64url).
    pub fn jwk(&self) -> serde_json::Value {
        let (x, y) = match self.public.get(1..33).zip(self.public.get(33..65)) {
            Some((x, y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
            None => (String::new(), String::new()),
        };
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": ALG, "use": "sig", "kid": self.kid, "x": x, "y": y,
        })
    }

    /// Signs `claims` with the hsm. Errors: `Hsm`.
    pub fn sign(&self, hsm: &Mutex<Hsm>, caller: &str, claims: &Claims) -> Result<String> {
        let header = Header {
            alg: ALG.to_owned(),
            typ: TYP.to_owned(),
            kid: self.kid.clone(),
        };
        let encode = |value: &dyn erased::Json| -> Result<String> {
            Ok(URL_SAFE_NO_PAD.encode(value.json()?))
        };
        let input = format!("{}.{}", encode(&header)?, encode(claims)?);
        let signature = lock_hsm(hsm).sign_data(caller, &self.alias, input.as_bytes(), "")?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// Checks the token's form, header and signature and returns its claims; the caller checks
    /// times and the session. Errors: `TokenMissing` (empty), `TokenInvalid`.
    pub fn verify_signature(&self, token: &str) -> Result<Claims> {
        if token.is_empty() {
            return Err(IdentityError::TokenMissing);
        }
        if token.len() > TOKEN_LEN_MAX {
            return Err(IdentityError::TokenInvalid);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdentityError::TokenInvalid);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| IdentityError::TokenInvalid)
        };
        let parsed: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| IdentityError::TokenInvalid)?;
        // Only our algorithm and key: no `alg: none`, no HS256 keyed with the public key.
        if parsed.alg != ALG || parsed.typ != TYP || parsed.kid != self.kid {
            return Err(IdentityError::TokenInvalid);
        }
        let input_len = header.len() + 1 + claims.len();
        let input = token.get(..input_len).ok_or(IdentityError::TokenInvalid)?;
        hsm::sm::p256_verify(&self.public, input.as_bytes(), &decode(signature)?)
            .map_err(|_| IdentityError::TokenInvalid)?;
        serde_json::from_slice(&decode(claims)?).map_err(|_| IdentityError::TokenInvalid)
    }
}

/// Serialising either the header or the claims through one closure.
mod erased {
    use super::{IdentityError, Result};

    /// A value that serialises to JSON bytes.
    pub(super) trait Json {
        /// The JSON bytes.
        fn json(&self) -> Result<Vec<u8>>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<Vec<u8>> {
            serde_json::to_vec(self).map_err(|_| IdentityError::Corrupt("token claims"))
        }
    }
}
