//! Chinese commercial cryptography (商用密码) and partner signatures: SM4 ECB/CBC
//! (GB/T 32907-2016), SM4 key diversification, SM3 (GB/T 32905-2016), SM2 signatures with SM3
//! and a distinguishing ID (GB/T 32918.2-2016, recommended curve of GB/T 32918.5-2017, via
//! RustCrypto `sm2::dsa`), and ECDSA P-256/SHA-256 (FIPS 186-4, via `ring`; public points are
//! checked on the curve with RustCrypto `p256`, which `ring` has no call for), and SM2 public-key
//! encryption (GB/T 32918.4-2016, `C1‖C3‖C2`, via RustCrypto `sm2::pke`).
//!
//! Private keys are returned only inside [`Zeroizing`] buffers or [`Sm2KeyPair`], whose `Debug`
//! is redacted; the HSM wraps them under the LMK before they leave memory.

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self as ring_sig, EcdsaKeyPair, KeyPair};
use sm2::dsa::signature::{Signer, Verifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

use crate::error::{Error, Result, decode_hex};
use crate::primitives::{BlockAlgorithm, KeyedCipher, sm4_encrypt_block};

/// The default SM2 distinguishing ID, `1234567812345678` (GB/T 35276-2017 §10 / GM/T 0009-2012).
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

/// Longest distinguishing ID accepted, in bytes (ENTL is a 16-bit bit count: 8191 bytes).
pub const SM2_ID_LEN_MAX: usize = 8191;

/// SM4-ECB encryption (GB/T 32907-2016) of `data`, a multiple of 16 bytes.
///
/// Errors: [`Error::DataLength`] if `data` is not a multiple of 16 bytes.
pub fn sm4_encrypt_ecb(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(BlockAlgorithm::Sm4, key)?.ecb_encrypt(&mut out)?;
    Ok(out)
}

/// SM4-ECB decryption of `data`, a multiple of 16 bytes.
///
/// Errors: [`Error::DataLength`] if `data` is not a multiple of 16 bytes.
pub fn sm4_decrypt_ecb(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(BlockAlgorithm::Sm4, key)?.ecb_decrypt(&mut out)?;
    Ok(out)
}

/// SM4-CBC encryption with a 16-byte IV, no padding (callers pad).
///
/// Errors: [`Error::DataLength`] if `data` is not a multiple of 16 bytes.
pub fn sm4_encrypt_cbc(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(BlockAlgorithm::Sm4, key)?.cbc_encrypt(iv, &mut out)?;
    Ok(out)
}

/// SM4-CBC decryption with a 16-byte IV, no padding removed.
///
/// Errors: [`Error::DataLength`] if `data` is not a multiple of 16 bytes.
pub fn sm4_decrypt_cbc(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(BlockAlgorithm::Sm4, key)?.cbc_decrypt(iv, &mut out)?;
    Ok(out)
}

/// SM4 key diversification: SM4_master(factor ‖ NOT factor), 16 bytes. The usual PBOC/SSC
/// one-level dispersion (分散) with an 8-byte factor (e.g. the last 8 bytes of the 卡识别码).
#[must_use]
pub fn sm4_diversify(master: &[u8; 16], factor: &[u8; 8]) -> [u8; 16] {
    let mut block = Zeroizing::new([0u8; 16]);
    block[..8].copy_from_slice(factor);
    block[8..].iter_mut().zip(factor).for_each(|(b, f)| *b = !f);
    sm4_encrypt_block(master, &block)
}

/// SM3 digest (GB/T 32905-2016), 32 bytes.
#[must_use]
pub fn sm3_digest(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

/// An SM2 key pair: the 32-byte private scalar (zeroized on drop) and the uncompressed public
/// key `04‖X‖Y` (65 bytes). `Debug` shows the public key only.
pub struct Sm2KeyPair {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 65],
}

impl core::fmt::Debug for Sm2KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sm2KeyPair")
            .field("secret", &"<redacted>")
            .field("public", &hex::encode_upper(self.public))
            .finish()
    }
}

impl Sm2KeyPair {
    /// Builds a key pair from a private scalar (1 ≤ d ≤ n-2, 32 bytes big-endian).
    ///
    /// Errors: [`Error::InvalidAsymmetricKey`] if `secret` is out of range.
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self> {
        let signing = SigningKey::from_slice(SM2_DEFAULT_ID, secret).map_err(|_| {
            Error::InvalidAsymmetricKey {
                reason: "SM2 private scalar out of range",
            }
        })?;
        let sec1 = signing.verifying_key().to_sec1_bytes();
        let public = <[u8; 65]>::try_from(&sec1[..]).map_err(|_| Error::InvalidAsymmetricKey {
            reason: "SM2 public key is not 65 bytes uncompressed",
        })?;
        Ok(Self {
            secret: Zeroizing::new(*secret),
            public,
        })
    }

    /// The private scalar (32 bytes), for wrapping under the LMK only.
    #[must_use]
    pub fn secret(&self) -> &Zeroizing<[u8; 32]> {
        &self.secret
    }

    /// The uncompressed public key `04‖X‖Y` (65 bytes).
    #[must_use]
    pub fn public(&self) -> &[u8; 65] {
        &self.public
    }
}

/// Generates an SM2 key pair from the system random generator (rejection sampling of d).
///
/// Errors: [`Error::Random`] if the generator fails (or 64 draws are all out of range).
pub fn sm2_generate_keypair() -> Result<Sm2KeyPair> {
    let rng = SystemRandom::new();
    for _ in 0..64 {
        let mut d = Zeroizing::new([0u8; 32]);
        rng.fill(&mut d[..]).map_err(|_| Error::Random)?;
        if let Ok(pair) = Sm2KeyPair::from_secret(&d) {
            return Ok(pair);
        }
    }
    Err(Error::Random)
}

/// Imports an uncompressed SM2 public key given as hex `04‖X‖Y` (130 hex digits), checking that
/// the point is on the curve.
///
/// Errors: [`Error::OddLengthHex`], [`Error::InvalidHex`], [`Error::InvalidAsymmetricKey`].
pub fn sm2_public_key_from_hex(text: &str) -> Result<[u8; 65]> {
    let bytes = decode_hex(text)?;
    let public =
        <[u8; 65]>::try_from(bytes.as_slice()).map_err(|_| Error::InvalidAsymmetricKey {
            reason: "SM2 public key must be 65 bytes 04||X||Y",
        })?;
    if public[0] != 0x04 {
        return Err(Error::InvalidAsymmetricKey {
            reason: "SM2 public key must start with 04 (uncompressed)",
        });
    }
    verifying_key(&public, SM2_DEFAULT_ID)?;
    Ok(public)
}

fn check_id(id: &str) -> Result<()> {
    if id.len() > SM2_ID_LEN_MAX {
        return Err(Error::InvalidParameter {
            what: "SM2 distinguishing ID longer than 8191 bytes",
        });
    }
    Ok(())
}

fn verifying_key(public: &[u8], id: &str) -> Result<VerifyingKey> {
    check_id(id)?;
    VerifyingKey::from_sec1_bytes(id, public).map_err(|_| Error::InvalidAsymmetricKey {
        reason: "SM2 public key is not a point on the curve",
    })
}

/// SM2 signature (GB/T 32918.2-2016 §6.1) over `msg` with e = SM3(Z_A ‖ msg), Z_A from `id`
/// ([`SM2_DEFAULT_ID`] unless the partner agreed another). Returns r‖s (64 bytes). The nonce
/// is derived deterministically (RFC 6979 style with SM3, as `sm2` 0.14 does).
///
/// Errors: [`Error::InvalidAsymmetricKey`], [`Error::InvalidParameter`] (ID too long).
pub fn sm2_sign(secret: &[u8; 32], id: &str, msg: &[u8]) -> Result<[u8; 64]> {
    check_id(id)?;
    let signing = SigningKey::from_slice(id, secret).map_err(|_| Error::InvalidAsymmetricKey {
        reason: "SM2 private scalar out of range",
    })?;
    let signature: Signature = signing
        .try_sign(msg)
        .map_err(|_| Error::InvalidAsymmetricKey {
            reason: "SM2 signing failed",
        })?;
    Ok(signature.to_bytes().into())
}

/// Verifies an SM2 signature r‖s (64 bytes) with the uncompressed public key (65 bytes).
///
/// Errors: [`Error::VerificationFailed`], [`Error::InvalidAsymmetricKey`].
pub fn sm2_verify(public: &[u8; 65], id: &str, msg: &[u8], signature: &[u8; 64]) -> Result<()> {
    let key = verifying_key(public, id)?;
    let signature = Signature::from_slice(signature).map_err(|_| Error::VerificationFailed)?;
    key.verify(msg, &signature)
        .map_err(|_| Error::VerificationFailed)
}

/// The system random generator as the `rand_core` 0.10 source `sm2::pke` asks for.
struct SystemRng(SystemRandom);

/// The system random generator failed.
#[derive(Debug)]
struct RngFailed;

impl core::fmt::Display for RngFailed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("system random generator failed")
    }
}

impl core::error::Error for RngFailed {}

impl sm2::elliptic_curve::rand_core::TryRng for SystemRng {
    type Error = RngFailed;

    fn try_next_u32(&mut self) -> core::result::Result<u32, RngFailed> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> core::result::Result<u64, RngFailed> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), RngFailed> {
        self.0.fill(dst).map_err(|_| RngFailed)
    }
}

impl sm2::elliptic_curve::rand_core::TryCryptoRng for SystemRng {}

/// Most plaintext bytes [`sm2_encrypt`] takes (the sealed data is short: a PAN, a key).
pub const SM2_PLAINTEXT_LEN_MAX: usize = 1_024;

/// SM2 public-key encryption (GB/T 32918.4-2016 §6.1, SM3 in the KDF and C3) of `msg` to the
/// uncompressed public key `public` (65 bytes, `04‖X‖Y`). Returns `C1 ‖ C3 ‖ C2` (the 2016
/// standard's order): C1 uncompressed (65 bytes), C3 = SM3 (32 bytes), C2 as long as `msg`.
/// A fresh random k per call (system generator).
///
/// Errors: [`Error::InvalidAsymmetricKey`] (not a curve point), [`Error::InvalidParameter`]
/// (empty or longer than [`SM2_PLAINTEXT_LEN_MAX`]), [`Error::Random`].
pub fn sm2_encrypt(public: &[u8; 65], msg: &[u8]) -> Result<Vec<u8>> {
    if msg.is_empty() || msg.len() > SM2_PLAINTEXT_LEN_MAX {
        return Err(Error::InvalidParameter {
            what: "SM2 plaintext must be 1..=1024 bytes",
        });
    }
    let key = sm2::pke::EncryptingKey::from_sec1_bytes(public).map_err(|_| {
        Error::InvalidAsymmetricKey {
            reason: "SM2 public key is not a point on the curve",
        }
    })?;
    key.encrypt(&mut SystemRng(SystemRandom::new()), msg)
        .map_err(|_| Error::Random)
}

/// SM2 decryption (GB/T 32918.4-2016 §7.1) of `C1 ‖ C3 ‖ C2` made by [`sm2_encrypt`] with the
/// private scalar `secret`. The plaintext comes back in a [`Zeroizing`] buffer.
///
/// Errors: [`Error::VerificationFailed`] when the ciphertext is malformed, C1 is not on the
/// curve, or C3 does not match (altered, or made for another key);
/// [`Error::InvalidAsymmetricKey`] for a bad scalar.
pub fn sm2_decrypt(secret: &[u8; 32], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key =
        sm2::pke::DecryptingKey::from_slice(secret).map_err(|_| Error::InvalidAsymmetricKey {
            reason: "SM2 private scalar out of range",
        })?;
    if ciphertext.len() <= 65 + 32 || ciphertext.len() > 65 + 32 + SM2_PLAINTEXT_LEN_MAX {
        return Err(Error::VerificationFailed);
    }
    key.decrypt(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| Error::VerificationFailed)
}

/// Generates an ECDSA P-256 key pair; returns its PKCS#8 v1 document (zeroized on drop).
///
/// Errors: [`Error::Random`].
pub fn p256_generate_pkcs8() -> Result<Zeroizing<Vec<u8>>> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| Error::Random)?;
    Ok(Zeroizing::new(doc.as_ref().to_vec()))
}

fn p256_pair(pkcs8: &[u8]) -> Result<EcdsaKeyPair> {
    let rng = SystemRandom::new();
    EcdsaKeyPair::from_pkcs8(&ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).map_err(
        |_| Error::InvalidAsymmetricKey {
            reason: "not a P-256 PKCS#8 private key",
        },
    )
}

/// The uncompressed public key (65 bytes, `04‖X‖Y`) of a P-256 PKCS#8 private key.
///
/// Errors: [`Error::InvalidAsymmetricKey`].
pub fn p256_public_key(pkcs8: &[u8]) -> Result<Vec<u8>> {
    Ok(p256_pair(pkcs8)?.public_key().as_ref().to_vec())
}

/// ECDSA P-256 with SHA-256 (FIPS 186-4): signature r‖s, 64 bytes (randomised nonce).
///
/// Errors: [`Error::InvalidAsymmetricKey`], [`Error::Random`].
pub fn p256_sign(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    let pair = p256_pair(pkcs8)?;
    let sig = pair
        .sign(&SystemRandom::new(), msg)
        .map_err(|_| Error::Random)?;
    Ok(sig.as_ref().to_vec())
}

/// Imports an uncompressed P-256 public key given as hex `04‖X‖Y` (130 hex digits), checking
/// that the point is on the curve (SEC 1 §2.3.4; RustCrypto `p256`).
///
/// Errors: [`Error::OddLengthHex`], [`Error::InvalidHex`], [`Error::InvalidAsymmetricKey`].
pub fn p256_public_key_from_hex(text: &str) -> Result<[u8; 65]> {
    let bytes = decode_hex(text)?;
    let public =
        <[u8; 65]>::try_from(bytes.as_slice()).map_err(|_| Error::InvalidAsymmetricKey {
            reason: "P-256 public key must be 65 bytes 04||X||Y",
        })?;
    if public[0] != 0x04 {
        return Err(Error::InvalidAsymmetricKey {
            reason: "P-256 public key must start with 04 (uncompressed)",
        });
    }
    p256::PublicKey::from_sec1_bytes(&public).map_err(|_| Error::InvalidAsymmetricKey {
        reason: "P-256 public key is not a point on the curve",
    })?;
    Ok(public)
}

/// Verifies an ECDSA P-256/SHA-256 signature r‖s (64 bytes) with an uncompressed public key.
///
/// Errors: [`Error::VerificationFailed`] (also for a malformed key or signature).
pub fn p256_verify(public: &[u8], msg: &[u8], signature: &[u8]) -> Result<()> {
    ring_sig::UnparsedPublicKey::new(&ring_sig::ECDSA_P256_SHA256_FIXED, public)
        .verify(msg, signature)
        .map_err(|_| Error::VerificationFailed)
}
