//! Message authentication codes: ISO/IEC 9797-1 algorithm 1 (CBC-MAC, 3DES/AES/SM4) and
//! algorithm 3 (retail MAC, DES with a double-length key) with padding methods 1, 2 and 3;
//! CMAC (NIST SP 800-38B) over AES and 3DES; HMAC-SHA-256 (RFC 2104, via `ring`).
//!
//! Every `verify_*` compares in constant time (`subtle`) and answers
//! [`Error::VerificationFailed`] on mismatch. The data buffers are not secret; keys are borrowed.

use cmac::{Cmac, Mac};
use des::{TdesEde2, TdesEde3};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::primitives::{BlockAlgorithm, KeyedCipher, xor_in_place};

/// ISO/IEC 9797-1:2011 §6.3 padding methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Method 1: zero bits to a positive multiple of the block (an empty message gets one block).
    Method1,
    /// Method 2: one `80` byte, then zeros to a multiple of the block (EMV / PBOC padding).
    Method2,
    /// Method 3: a block holding the message length in bits (big-endian), then method 1
    /// without the extra block for an empty message.
    Method3,
}

/// Pads `data` to a multiple of `block_len` bytes per ISO/IEC 9797-1:2011 §6.3.
#[must_use]
pub fn pad(data: &[u8], block_len: usize, padding: Padding) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2 * block_len);
    match padding {
        Padding::Method1 => {
            out.extend_from_slice(data);
            if data.is_empty() {
                out.resize(block_len, 0);
            }
        }
        Padding::Method2 => {
            out.extend_from_slice(data);
            out.push(0x80);
        }
        Padding::Method3 => {
            let bits = u128::try_from(data.len())
                .unwrap_or(u128::MAX)
                .saturating_mul(8);
            let be = bits.to_be_bytes();
            out.extend_from_slice(&be[be.len().saturating_sub(block_len)..]);
            out.extend_from_slice(data);
        }
    }
    let rem = out.len() % block_len;
    if rem != 0 {
        out.resize(out.len() + block_len - rem, 0);
    }
    out
}

/// ISO/IEC 9797-1 MAC algorithm 1: CBC-MAC with zero IV under one key; returns the whole last
/// block (8 bytes for 3DES, 16 for AES/SM4; truncate as the scheme says).
///
/// Errors: [`Error::InvalidKeyLength`] for the algorithm.
pub fn mac_alg1(
    algorithm: BlockAlgorithm,
    key: &[u8],
    data: &[u8],
    padding: Padding,
) -> Result<Vec<u8>> {
    let cipher = KeyedCipher::new(algorithm, key)?;
    let mut padded = pad(data, cipher.block_len(), padding);
    let iv = vec![0u8; cipher.block_len()];
    cipher.cbc_encrypt(&iv, &mut padded)
}

/// ISO/IEC 9797-1 MAC algorithm 3 (retail MAC, ANSI X9.19): single-DES CBC under K (left half
/// of the 16-byte `key`), then the last block decrypted under K' (right half) and encrypted
/// under K. Returns the 8-byte MAC. With EMV padding (method 2) this is the EMV ARQC MAC
/// (EMV 4.x Book 2 A1.2.1).
///
/// Errors: [`Error::InvalidKeyLength`] unless `key` is 16 bytes.
pub fn mac_alg3(key: &[u8], data: &[u8], padding: Padding) -> Result<[u8; 8]> {
    if key.len() != 16 {
        return Err(Error::InvalidKeyLength {
            actual: key.len(),
            expected: "16",
        });
    }
    let k = KeyedCipher::new(BlockAlgorithm::Des, &key[..8])?;
    let k_prime = KeyedCipher::new(BlockAlgorithm::Des, &key[8..])?;
    let padded = pad(data, 8, padding);
    let mut chain = [0u8; 8];
    for block in padded.chunks_exact(8) {
        xor_in_place(&mut chain, block)?;
        k.encrypt_block(&mut chain)?;
    }
    k_prime.decrypt_block(&mut chain)?;
    k.encrypt_block(&mut chain)?;
    Ok(chain)
}

/// AES-CMAC (NIST SP 800-38B; RFC 4493 for AES-128): 16-byte tag. Key 16, 24 or 32 bytes.
///
/// Errors: [`Error::InvalidKeyLength`].
pub fn cmac_aes(key: &[u8], data: &[u8]) -> Result<[u8; 16]> {
    let tag = match key.len() {
        16 => cmac_with::<aes::Aes128>(key, data),
        24 => cmac_with::<aes::Aes192>(key, data),
        32 => cmac_with::<aes::Aes256>(key, data),
        n => {
            return Err(Error::InvalidKeyLength {
                actual: n,
                expected: "16, 24 or 32",
            });
        }
    }?;
    <[u8; 16]>::try_from(tag.as_slice()).map_err(|_| Error::DataLength {
        actual: tag.len(),
        expected: "a 16-byte CMAC",
    })
}

/// TDEA-CMAC (NIST SP 800-38B, 64-bit block, Rb = 0x1B): 8-byte tag. Key 16 (K1‖K2, keying
/// option 2) or 24 bytes. Used by TR-31 key block version B (ANSI X9.143).
///
/// Errors: [`Error::InvalidKeyLength`].
pub fn cmac_tdes(key: &[u8], data: &[u8]) -> Result<[u8; 8]> {
    let tag = match key.len() {
        16 => cmac_with::<TdesEde2>(key, data),
        24 => cmac_with::<TdesEde3>(key, data),
        n => {
            return Err(Error::InvalidKeyLength {
                actual: n,
                expected: "16 or 24",
            });
        }
    }?;
    <[u8; 8]>::try_from(tag.as_slice()).map_err(|_| Error::DataLength {
        actual: tag.len(),
        expected: "an 8-byte CMAC",
    })
}

fn cmac_with<C>(key: &[u8], data: &[u8]) -> Result<Vec<u8>>
where
    C: cmac::block_api::CmacCipher + cipher::KeyInit,
{
    let mut mac =
        <Cmac<C> as cmac::KeyInit>::new_from_slice(key).map_err(|_| Error::InvalidKeyLength {
            actual: key.len(),
            expected: "a length the cipher accepts",
        })?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// SM4 CBC-MAC (ISO/IEC 9797-1 algorithm 1 over SM4, GB/T 15852.1), padding method 2, zero IV:
/// the full 16-byte last block. PBOC 3.0 cryptograms take its first 8 bytes.
#[must_use]
pub fn sm4_cbc_mac(key: &[u8; 16], data: &[u8]) -> [u8; 16] {
    let padded = pad(data, 16, Padding::Method2);
    let mut chain = [0u8; 16];
    for block in padded.chunks_exact(16) {
        chain.iter_mut().zip(block).for_each(|(c, b)| *c ^= b);
        chain = crate::primitives::sm4_encrypt_block(key, &chain);
    }
    chain
}

/// HMAC-SHA-256 (RFC 2104, FIPS 198-1) via `ring`: 32-byte tag, any key length.
#[must_use]
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Compares a received MAC with the computed one in constant time. A received MAC may be a
/// left-truncation of the computed one (4 to full length bytes, ISO/IEC 9797-1 §7.4).
///
/// Errors: [`Error::VerificationFailed`] on mismatch or an impossible length.
pub fn verify_truncated(computed: &[u8], received: &[u8]) -> Result<()> {
    if received.len() < 4 || received.len() > computed.len() {
        return Err(Error::VerificationFailed);
    }
    if bool::from(computed[..received.len()].ct_eq(received)) {
        Ok(())
    } else {
        Err(Error::VerificationFailed)
    }
}

/// Verifies an ISO/IEC 9797-1 algorithm 3 MAC (possibly truncated to 4-8 bytes).
///
/// Errors: key length, [`Error::VerificationFailed`].
pub fn verify_mac_alg3(key: &[u8], data: &[u8], padding: Padding, received: &[u8]) -> Result<()> {
    verify_truncated(&mac_alg3(key, data, padding)?, received)
}

/// Verifies an ISO/IEC 9797-1 algorithm 1 MAC (possibly truncated).
///
/// Errors: key length, [`Error::VerificationFailed`].
pub fn verify_mac_alg1(
    algorithm: BlockAlgorithm,
    key: &[u8],
    data: &[u8],
    padding: Padding,
    received: &[u8],
) -> Result<()> {
    verify_truncated(&mac_alg1(algorithm, key, data, padding)?, received)
}

/// Verifies an AES-CMAC (possibly truncated). Errors: key length, [`Error::VerificationFailed`].
pub fn verify_cmac_aes(key: &[u8], data: &[u8], received: &[u8]) -> Result<()> {
    verify_truncated(&cmac_aes(key, data)?, received)
}

/// Verifies a TDEA-CMAC (possibly truncated). Errors: key length, [`Error::VerificationFailed`].
pub fn verify_cmac_tdes(key: &[u8], data: &[u8], received: &[u8]) -> Result<()> {
    verify_truncated(&cmac_tdes(key, data)?, received)
}

/// Verifies an HMAC-SHA-256 tag (possibly truncated, at least 4 bytes).
///
/// Errors: [`Error::VerificationFailed`].
pub fn verify_hmac_sha256(key: &[u8], data: &[u8], received: &[u8]) -> Result<()> {
    verify_truncated(&hmac_sha256(key, data), received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_methods() {
        assert_eq!(pad(b"", 8, Padding::Method1), vec![0u8; 8]);
        assert_eq!(pad(&[1; 8], 8, Padding::Method1), vec![1u8; 8]);
        assert_eq!(pad(&[1; 8], 8, Padding::Method2).len(), 16);
        assert_eq!(
            pad(&[1; 3], 8, Padding::Method2),
            [1, 1, 1, 0x80, 0, 0, 0, 0]
        );
        assert_eq!(
            pad(&[1; 3], 8, Padding::Method3),
            [0, 0, 0, 0, 0, 0, 0, 24, 1, 1, 1, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn truncated_verification() {
        let mac = [1, 2, 3, 4, 5, 6, 7, 8];
        assert!(verify_truncated(&mac, &mac[..4]).is_ok());
        assert_eq!(
            verify_truncated(&mac, &mac[..3]),
            Err(Error::VerificationFailed)
        );
        assert_eq!(
            verify_truncated(&mac, &[1, 2, 3, 5]),
            Err(Error::VerificationFailed)
        );
    }
}
