//! Key check values (KCV): a short fingerprint of a key, returned on every import/export so
//! custodians and partners can compare keys without revealing them. 3 bytes (6 hex digits).
//!
//! - 3DES: first 3 bytes of 3DES_K(00×8) (ANSI X9.24-1 "KCV", AWS `ANSI_X9_24`).
//! - AES: first 3 bytes of AES-CMAC_K(00×16) (AWS Payment Cryptography `CMAC` KCV, see
//!   ../shared/reference/card-hsm-anchors.md §4 and the AWS `WrappedKey` API).
//! - SM4: first 3 bytes of SM4_K(00×16) — **our convention**, mirroring the 3DES rule (no
//!   normative source for an SM4 KCV was found; Chinese HSMs commonly print it this way).

use crate::error::{Error, Result};
use crate::mac::cmac_aes;
use crate::primitives::{sm4_encrypt_block, tdes_encrypt_block};

/// Length of a key check value, in bytes.
pub const KCV_LEN: usize = 3;

/// The algorithm a key belongs to, for [`kcv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// 3DES, 16 or 24 bytes.
    Tdes,
    /// AES, 16, 24 or 32 bytes.
    Aes,
    /// SM4, 16 bytes.
    Sm4,
}

/// 3DES KCV: first 3 bytes of 3DES_K(00×8). Errors: [`Error::InvalidKeyLength`] (16 or 24).
pub fn kcv_tdes(key: &[u8]) -> Result<[u8; KCV_LEN]> {
    let block = tdes_encrypt_block(key, &[0u8; 8])?;
    Ok([block[0], block[1], block[2]])
}

/// AES KCV: first 3 bytes of AES-CMAC_K(00×16). Errors: [`Error::InvalidKeyLength`].
pub fn kcv_aes(key: &[u8]) -> Result<[u8; KCV_LEN]> {
    let tag = cmac_aes(key, &[0u8; 16])?;
    Ok([tag[0], tag[1], tag[2]])
}

/// SM4 KCV (our convention): first 3 bytes of SM4_K(00×16).
#[must_use]
pub fn kcv_sm4(key: &[u8; 16]) -> [u8; KCV_LEN] {
    let block = sm4_encrypt_block(key, &[0u8; 16]);
    [block[0], block[1], block[2]]
}

/// KCV of `key` for `algorithm`. Errors: [`Error::InvalidKeyLength`].
pub fn kcv(algorithm: KeyAlgorithm, key: &[u8]) -> Result<[u8; KCV_LEN]> {
    match algorithm {
        KeyAlgorithm::Tdes => kcv_tdes(key),
        KeyAlgorithm::Aes => kcv_aes(key),
        KeyAlgorithm::Sm4 => {
            let key = <&[u8; 16]>::try_from(key).map_err(|_| Error::InvalidKeyLength {
                actual: key.len(),
                expected: "16",
            })?;
            Ok(kcv_sm4(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tdes_kcv_of_the_classic_test_key() {
        // pyemv tests/test_kd_hsm.py: key_check_digits(0123..3210, 2) == "08D7"; the third byte
        // B4 from python3 cryptography: TripleDES(key).encrypt(00*8) = 08D7B4FB629D0885.
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(kcv_tdes(&key).unwrap(), [0x08, 0xD7, 0xB4]);
    }

    #[test]
    fn wrong_lengths() {
        assert!(matches!(
            kcv(KeyAlgorithm::Sm4, &[0; 15]),
            Err(Error::InvalidKeyLength { actual: 15, .. })
        ));
        assert!(matches!(
            kcv_aes(&[0; 8]),
            Err(Error::InvalidKeyLength { .. })
        ));
    }
}
