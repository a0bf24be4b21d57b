//! Key pairs in the store, over the constructions in [`crate::sm`]: SM2 (GB/T 32918.2-2016,
//! SM3 with a distinguishing ID) stored as its 32-byte private scalar, and ECDSA P-256 with
//! SHA-256 (FIPS 186-4, fixed-length `r ‖ s` signatures) stored as its PKCS#8 v1 document.

use zeroize::Zeroizing;

use super::{KeyAlgorithm, SecretKey};
use crate::error::Error;

fn not_a_pair() -> Error {
    Error::InvalidAsymmetricKey {
        reason: "not a key-pair algorithm",
    }
}

fn sm2_secret(key: &SecretKey) -> Result<&[u8; 32], Error> {
    <&[u8; 32]>::try_from(key.expose()).map_err(|_| Error::InvalidAsymmetricKey {
        reason: "SM2 private key must be 32 bytes",
    })
}

/// Generates a key pair with the system CSPRNG.
pub(super) fn generate(algorithm: KeyAlgorithm) -> Result<SecretKey, Error> {
    match algorithm {
        KeyAlgorithm::Sm2 => {
            let pair = crate::sm::sm2_generate_keypair()?;
            Ok(SecretKey::new(Zeroizing::new(pair.secret().to_vec())))
        }
        KeyAlgorithm::EcdsaP256 => Ok(SecretKey::new(crate::sm::p256_generate_pkcs8()?)),
        _ => Err(not_a_pair()),
    }
}

/// The uncompressed SEC1 public key (65 bytes, `04 ‖ X ‖ Y`) of a stored key pair.
///
/// Errors: [`Error::InvalidAsymmetricKey`] for a symmetric algorithm or a malformed key.
pub(crate) fn public_key(algorithm: KeyAlgorithm, key: &SecretKey) -> Result<Vec<u8>, Error> {
    match algorithm {
        KeyAlgorithm::Sm2 => Ok(crate::sm::Sm2KeyPair::from_secret(sm2_secret(key)?)?
            .public()
            .to_vec()),
        KeyAlgorithm::EcdsaP256 => crate::sm::p256_public_key(key.expose()),
        _ => Err(not_a_pair()),
    }
}

/// SM3 (SM2) or SHA-256 (P-256) of the uncompressed public key: the key pair's KCV source.
pub(super) fn public_key_digest(
    algorithm: KeyAlgorithm,
    key: &SecretKey,
) -> Result<[u8; 32], Error> {
    let public = public_key(algorithm, key)?;
    if algorithm == KeyAlgorithm::Sm2 {
        return Ok(crate::sm::sm3_digest(&public));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &public);
    <[u8; 32]>::try_from(digest.as_ref()).map_err(|_| not_a_pair())
}

/// Signs `message`: SM2 gives `r ‖ s` (64 bytes) over SM3(Z_A ‖ M) with `sm2_id` as the
/// distinguishing ID; P-256 gives `r ‖ s` (64 bytes) over SHA-256(M).
pub(crate) fn sign(
    algorithm: KeyAlgorithm,
    key: &SecretKey,
    message: &[u8],
    sm2_id: &str,
) -> Result<Vec<u8>, Error> {
    match algorithm {
        KeyAlgorithm::Sm2 => Ok(crate::sm::sm2_sign(sm2_secret(key)?, sm2_id, message)?.to_vec()),
        KeyAlgorithm::EcdsaP256 => crate::sm::p256_sign(key.expose(), message),
        _ => Err(not_a_pair()),
    }
}

/// Verifies a signature made by [`sign`] against the public key of `key`.
///
/// Errors: [`Error::VerificationFailed`], [`Error::InvalidAsymmetricKey`].
pub(crate) fn verify(
    algorithm: KeyAlgorithm,
    key: &SecretKey,
    message: &[u8],
    signature: &[u8],
    sm2_id: &str,
) -> Result<(), Error> {
    let public = public_key(algorithm, key)?;
    match algorithm {
        KeyAlgorithm::Sm2 => {
            let public = <[u8; 65]>::try_from(public.as_slice()).map_err(|_| not_a_pair())?;
            let signature =
                <&[u8; 64]>::try_from(signature).map_err(|_| Error::VerificationFailed)?;
            crate::sm::sm2_verify(&public, sm2_id, message, signature)
        }
        KeyAlgorithm::EcdsaP256 => crate::sm::p256_verify(&public, message, signature),
        _ => Err(not_a_pair()),
    }
}
