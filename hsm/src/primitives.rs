//! Block-cipher primitives: single-block DES/3DES/AES/SM4, ECB and CBC over whole blocks, DES
//! odd parity, XOR, and the PAN shape check shared by the EMV and PIN code.
//!
//! Keys are borrowed bytes; the keyed cipher states (RustCrypto `des`/`aes`/`sm4` on cipher 0.5,
//! built with `zeroize`) are wiped on drop. Nothing here pads: callers pad (ISO 9797-1) first,
//! and data that is not a whole number of blocks is refused with [`Error::DataLength`].

use aes::{Aes128, Aes192, Aes256};
use cipher::array::Array;
use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser, KeyInit};
use des::{Des, TdesEde2, TdesEde3};
use sm4::Sm4;

use crate::error::{Error, Result};

/// A block cipher of the payment world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAlgorithm {
    /// Single DES (FIPS 46-3), 8-byte key, 8-byte block. Only inside ISO 9797-1 MAC algorithm 3.
    Des,
    /// Triple DES EDE (ANSI X9.52 / ISO 18033-3), 16-byte (K1‖K2) or 24-byte key, 8-byte block.
    Tdes,
    /// AES (FIPS 197), 16/24/32-byte key, 16-byte block.
    Aes,
    /// SM4 (GB/T 32907-2016), 16-byte key, 16-byte block.
    Sm4,
}

impl BlockAlgorithm {
    /// Block length in bytes (8 for DES/3DES, 16 for AES/SM4).
    #[must_use]
    pub fn block_len(self) -> usize {
        match self {
            Self::Des | Self::Tdes => 8,
            Self::Aes | Self::Sm4 => 16,
        }
    }
}

/// A cipher keyed once, for many blocks. The key schedule is zeroized on drop.
pub struct KeyedCipher(Engine);

enum Engine {
    Des(Des),
    Tdes2(TdesEde2),
    Tdes3(TdesEde3),
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
    Sm4(Sm4),
}

impl core::fmt::Debug for KeyedCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyedCipher(<redacted>)")
    }
}

fn key_err(actual: usize, expected: &'static str) -> Error {
    Error::InvalidKeyLength { actual, expected }
}

impl KeyedCipher {
    /// Keys `algorithm` with `key`.
    ///
    /// Errors: [`Error::InvalidKeyLength`] (DES 8; 3DES 16 or 24; AES 16, 24 or 32; SM4 16).
    pub fn new(algorithm: BlockAlgorithm, key: &[u8]) -> Result<Self> {
        let engine = match (algorithm, key.len()) {
            (BlockAlgorithm::Des, 8) => Des::new_from_slice(key).map(Engine::Des),
            (BlockAlgorithm::Des, n) => return Err(key_err(n, "8")),
            (BlockAlgorithm::Tdes, 16) => TdesEde2::new_from_slice(key).map(Engine::Tdes2),
            (BlockAlgorithm::Tdes, 24) => TdesEde3::new_from_slice(key).map(Engine::Tdes3),
            (BlockAlgorithm::Tdes, n) => return Err(key_err(n, "16 or 24")),
            (BlockAlgorithm::Aes, 16) => Aes128::new_from_slice(key).map(Engine::Aes128),
            (BlockAlgorithm::Aes, 24) => Aes192::new_from_slice(key).map(Engine::Aes192),
            (BlockAlgorithm::Aes, 32) => Aes256::new_from_slice(key).map(Engine::Aes256),
            (BlockAlgorithm::Aes, n) => return Err(key_err(n, "16, 24 or 32")),
            (BlockAlgorithm::Sm4, 16) => Sm4::new_from_slice(key).map(Engine::Sm4),
            (BlockAlgorithm::Sm4, n) => return Err(key_err(n, "16")),
        };
        engine
            .map(Self)
            .map_err(|_| key_err(key.len(), "a valid length"))
    }

    /// Block length in bytes.
    #[must_use]
    pub fn block_len(&self) -> usize {
        match self.0 {
            Engine::Des(_) | Engine::Tdes2(_) | Engine::Tdes3(_) => 8,
            _ => 16,
        }
    }

    /// Encrypts one block in place. Errors: [`Error::DataLength`] if `block` is not one block.
    pub fn encrypt_block(&self, block: &mut [u8]) -> Result<()> {
        match &self.0 {
            Engine::Des(c) => enc(c, block),
            Engine::Tdes2(c) => enc(c, block),
            Engine::Tdes3(c) => enc(c, block),
            Engine::Aes128(c) => enc(c, block),
            Engine::Aes192(c) => enc(c, block),
            Engine::Aes256(c) => enc(c, block),
            Engine::Sm4(c) => enc(c, block),
        }
    }

    /// Decrypts one block in place. Errors: [`Error::DataLength`] if `block` is not one block.
    pub fn decrypt_block(&self, block: &mut [u8]) -> Result<()> {
        match &self.0 {
            Engine::Des(c) => dec(c, block),
            Engine::Tdes2(c) => dec(c, block),
            Engine::Tdes3(c) => dec(c, block),
            Engine::Aes128(c) => dec(c, block),
            Engine::Aes192(c) => dec(c, block),
            Engine::Aes256(c) => dec(c, block),
            Engine::Sm4(c) => dec(c, block),
        }
    }

    fn check_blocks(&self, data: &[u8]) -> Result<()> {
        if data.len().is_multiple_of(self.block_len()) {
            Ok(())
        } else if self.block_len() == 8 {
            Err(Error::DataLength {
                actual: data.len(),
                expected: "a multiple of 8",
            })
        } else {
            Err(Error::DataLength {
                actual: data.len(),
                expected: "a multiple of 16",
            })
        }
    }

    /// ECB-encrypts `data` in place (ISO/IEC 10116 ECB). Errors: [`Error::DataLength`].
    pub fn ecb_encrypt(&self, data: &mut [u8]) -> Result<()> {
        self.check_blocks(data)?;
        data.chunks_exact_mut(self.block_len())
            .try_for_each(|b| self.encrypt_block(b))
    }

    /// ECB-decrypts `data` in place. Errors: [`Error::DataLength`].
    pub fn ecb_decrypt(&self, data: &mut [u8]) -> Result<()> {
        self.check_blocks(data)?;
        data.chunks_exact_mut(self.block_len())
            .try_for_each(|b| self.decrypt_block(b))
    }

    /// CBC-encrypts `data` in place with `iv` (ISO/IEC 10116 CBC); returns the last ciphertext
    /// block (the CBC-MAC of `data` when `iv` is zero).
    ///
    /// Errors: [`Error::DataLength`] if `iv` is not one block or `data` not whole blocks.
    pub fn cbc_encrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<Vec<u8>> {
        let n = self.block_len();
        self.check_blocks(data)?;
        if iv.len() != n {
            return Err(Error::DataLength {
                actual: iv.len(),
                expected: "one block of IV",
            });
        }
        let mut chain = iv.to_vec();
        for block in data.chunks_exact_mut(n) {
            xor_in_place(block, &chain)?;
            self.encrypt_block(block)?;
            chain.copy_from_slice(block);
        }
        Ok(chain)
    }

    /// CBC-decrypts `data` in place with `iv`. Errors: [`Error::DataLength`].
    pub fn cbc_decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<()> {
        let n = self.block_len();
        self.check_blocks(data)?;
        if iv.len() != n {
            return Err(Error::DataLength {
                actual: iv.len(),
                expected: "one block of IV",
            });
        }
        let mut chain = iv.to_vec();
        let mut next = vec![0u8; n];
        for block in data.chunks_exact_mut(n) {
            next.copy_from_slice(block);
            self.decrypt_block(block)?;
            xor_in_place(block, &chain)?;
            core::mem::swap(&mut chain, &mut next);
        }
        Ok(())
    }
}

fn block_err(actual: usize) -> Error {
    Error::DataLength {
        actual,
        expected: "exactly one cipher block",
    }
}

fn enc<C: BlockCipherEncrypt>(cipher: &C, block: &mut [u8]) -> Result<()> {
    let len = block.len();
    let b: &mut Array<u8, <C as BlockSizeUser>::BlockSize> =
        block.try_into().map_err(|_| block_err(len))?;
    cipher.encrypt_block(b);
    Ok(())
}

fn dec<C: BlockCipherDecrypt>(cipher: &C, block: &mut [u8]) -> Result<()> {
    let len = block.len();
    let b: &mut Array<u8, <C as BlockSizeUser>::BlockSize> =
        block.try_into().map_err(|_| block_err(len))?;
    cipher.decrypt_block(b);
    Ok(())
}

/// 3DES-encrypts one 8-byte block under a 16- or 24-byte key. Errors: [`Error::InvalidKeyLength`].
pub fn tdes_encrypt_block(key: &[u8], block: &[u8; 8]) -> Result<[u8; 8]> {
    let mut out = *block;
    KeyedCipher::new(BlockAlgorithm::Tdes, key)?.encrypt_block(&mut out)?;
    Ok(out)
}

/// 3DES-decrypts one 8-byte block under a 16- or 24-byte key. Errors: [`Error::InvalidKeyLength`].
pub fn tdes_decrypt_block(key: &[u8], block: &[u8; 8]) -> Result<[u8; 8]> {
    let mut out = *block;
    KeyedCipher::new(BlockAlgorithm::Tdes, key)?.decrypt_block(&mut out)?;
    Ok(out)
}

/// AES-encrypts one 16-byte block under a 16/24/32-byte key. Errors: [`Error::InvalidKeyLength`].
pub fn aes_encrypt_block(key: &[u8], block: &[u8; 16]) -> Result<[u8; 16]> {
    let mut out = *block;
    KeyedCipher::new(BlockAlgorithm::Aes, key)?.encrypt_block(&mut out)?;
    Ok(out)
}

/// SM4-encrypts one 16-byte block (GB/T 32907-2016).
#[must_use]
pub fn sm4_encrypt_block(key: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let cipher = Sm4::new(&Array::from(*key));
    let mut b = Array::from(*block);
    cipher.encrypt_block(&mut b);
    b.into()
}

/// SM4-decrypts one 16-byte block (GB/T 32907-2016).
#[must_use]
pub fn sm4_decrypt_block(key: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let cipher = Sm4::new(&Array::from(*key));
    let mut b = Array::from(*block);
    cipher.decrypt_block(&mut b);
    b.into()
}

/// ECB encryption of whole blocks into a new buffer. Errors: key length, [`Error::DataLength`].
pub fn ecb_encrypt(algorithm: BlockAlgorithm, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(algorithm, key)?.ecb_encrypt(&mut out)?;
    Ok(out)
}

/// ECB decryption of whole blocks into a new buffer. Errors: key length, [`Error::DataLength`].
pub fn ecb_decrypt(algorithm: BlockAlgorithm, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(algorithm, key)?.ecb_decrypt(&mut out)?;
    Ok(out)
}

/// CBC encryption of whole blocks with `iv` (one block). Errors: key length, [`Error::DataLength`].
pub fn cbc_encrypt(
    algorithm: BlockAlgorithm,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(algorithm, key)?.cbc_encrypt(iv, &mut out)?;
    Ok(out)
}

/// CBC decryption of whole blocks with `iv` (one block). Errors: key length, [`Error::DataLength`].
pub fn cbc_decrypt(
    algorithm: BlockAlgorithm,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<Vec<u8>> {
    let mut out = data.to_vec();
    KeyedCipher::new(algorithm, key)?.cbc_decrypt(iv, &mut out)?;
    Ok(out)
}

/// Sets odd parity on every byte (DES key convention, FIPS 46-3: bit 0 of each byte is parity).
pub fn set_odd_parity(key: &mut [u8]) {
    for byte in key.iter_mut() {
        let high = *byte & 0xFE;
        *byte = if high.count_ones() % 2 == 0 {
            high | 1
        } else {
            high
        };
    }
}

/// Whether every byte has odd parity.
#[must_use]
pub fn has_odd_parity(key: &[u8]) -> bool {
    key.iter().all(|b| b.count_ones() % 2 == 1)
}

/// XORs `other` into `target`. Errors: [`Error::DataLength`] if the lengths differ.
pub fn xor_in_place(target: &mut [u8], other: &[u8]) -> Result<()> {
    if target.len() != other.len() {
        return Err(Error::DataLength {
            actual: other.len(),
            expected: "the same length as the other operand",
        });
    }
    target.iter_mut().zip(other).for_each(|(t, o)| *t ^= o);
    Ok(())
}

/// PAN length bounds (ISO/IEC 7812-1: at most 19 digits; 12 is the shortest PIN-block PAN field).
pub const PAN_DIGITS_MIN: usize = 12;
/// Longest PAN, in digits (ISO/IEC 7812-1).
pub const PAN_DIGITS_MAX: usize = 19;

/// Checks that `pan` is 12-19 ASCII decimal digits and returns its digit values (0-9).
///
/// The Luhn check digit is not verified (test PANs often break it; the HSM is not the place).
/// Errors: [`Error::InvalidPan`] naming the rule, never the digits.
pub fn pan_digits(pan: &str) -> Result<Vec<u8>> {
    if !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidPan {
            reason: "not all decimal digits",
        });
    }
    if !(PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&pan.len()) {
        return Err(Error::InvalidPan {
            reason: "length outside 12-19 digits",
        });
    }
    Ok(pan.bytes().map(|b| b - b'0').collect())
}

/// Packs decimal/hex digit values (each 0-15) two to a byte; an even count is required.
pub(crate) fn pack_nibbles(digits: &[u8]) -> Vec<u8> {
    digits
        .chunks(2)
        .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_is_odd_and_keeps_key_bits() {
        let mut k = [0x00, 0x01, 0xFE, 0xFF, 0x10];
        set_odd_parity(&mut k);
        assert_eq!(k, [0x01, 0x01, 0xFE, 0xFE, 0x10]);
        assert!(has_odd_parity(&k));
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        assert_eq!(
            KeyedCipher::new(BlockAlgorithm::Tdes, &[0; 15]).err(),
            Some(Error::InvalidKeyLength {
                actual: 15,
                expected: "16 or 24"
            })
        );
        assert!(matches!(
            ecb_encrypt(BlockAlgorithm::Sm4, &[0; 16], &[0; 15]),
            Err(Error::DataLength { actual: 15, .. })
        ));
        assert!(matches!(
            pan_digits("12345678901"),
            Err(Error::InvalidPan { .. })
        ));
        assert!(matches!(
            pan_digits("12345678901x"),
            Err(Error::InvalidPan { .. })
        ));
    }

    #[test]
    fn cbc_round_trips() {
        let key = [7u8; 16];
        let iv = [1u8; 8];
        let data = *b"sixteen byte msg";
        let c = cbc_encrypt(BlockAlgorithm::Tdes, &key, &iv, &data).unwrap();
        assert_ne!(c, data);
        assert_eq!(
            cbc_decrypt(BlockAlgorithm::Tdes, &key, &iv, &c).unwrap(),
            data
        );
    }
}
