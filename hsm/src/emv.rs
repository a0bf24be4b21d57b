//! EMV / PBOC application cryptograms: ICC master key derivation from the issuer master key,
//! session keys from the ATC, ARQC generation and verification over CDOL1 data, ARPC methods 1
//! and 2. 3DES per EMV 4.x Book 2 Annex A1 (checked against pyemv's HSM-checked vectors);
//! SM4 per our reading of PBOC 3.0 (JR/T 0025) — **unverified: no public vector**.
//!
//! Pure functions over raw key bytes (contract: docs/ssc-auth-model.md). Used by the HSM's
//! operations with keys unwrapped from the key store and by the virtual card with its card image.

use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mac::{Padding, mac_alg3, sm4_cbc_mac};
use crate::primitives::{
    BlockAlgorithm, KeyedCipher, pack_nibbles, pan_digits, set_odd_parity, sm4_encrypt_block,
};

/// The card's cryptogram algorithm set (PBOC 3.0 tag DF69 chooses SM when both sides can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardAlgorithm {
    /// Double-length 3DES keys, 8-byte blocks (EMV 4.x Book 2, PBOC 2.0).
    Tdes,
    /// SM4 keys and blocks (PBOC 3.0 / JR/T 0025.17). Unverified: no public vector.
    Sm4,
}

/// Checks the PSN byte (tag 5F34, n2 in BCD) and returns its two digits.
fn psn_digits(psn: u8) -> Result<[u8; 2]> {
    let (hi, lo) = (psn >> 4, psn & 0x0F);
    if hi > 9 || lo > 9 {
        return Err(Error::InvalidParameter {
            what: "PAN sequence number is not two BCD digits",
        });
    }
    Ok([hi, lo])
}

/// Y of option A: the rightmost 16 digits of PAN‖PSN, zero-padded on the left, packed (8 bytes).
fn option_a_y(pan: &str, psn: u8) -> Result<[u8; 8]> {
    let mut digits = pan_digits(pan)?;
    digits.extend_from_slice(&psn_digits(psn)?);
    let mut y16 = [0u8; 16];
    let take = digits.len().min(16);
    y16[16 - take..].copy_from_slice(&digits[digits.len() - take..]);
    let packed = pack_nibbles(&y16);
    let mut y = [0u8; 8];
    y.copy_from_slice(&packed);
    Ok(y)
}

/// Y of option B (EMV 4.x Book 2 A1.4.2): SHA-1 over the BCD of PAN‖PSN (a leading 0 if the
/// digit count is odd); the decimal digits of the hex digest in order, then if fewer than 16,
/// its A-F digits mapped to 0-5 in order; the first 16 digits, packed.
fn option_b_y(pan: &str, psn: u8) -> Result<[u8; 8]> {
    let mut digits = pan_digits(pan)?;
    digits.extend_from_slice(&psn_digits(psn)?);
    if !digits.len().is_multiple_of(2) {
        digits.insert(0, 0);
    }
    let hash = digest(&SHA1_FOR_LEGACY_USE_ONLY, &pack_nibbles(&digits));
    let nibbles: Vec<u8> = hash
        .as_ref()
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0F])
        .collect();
    let mut chosen: Vec<u8> = nibbles.iter().copied().filter(|n| *n <= 9).collect();
    chosen.extend(nibbles.iter().filter(|n| **n > 9).map(|n| n - 10));
    chosen.truncate(16);
    let mut y = [0u8; 8];
    y.copy_from_slice(&pack_nibbles(&chosen));
    Ok(y)
}

/// 3DES_IMK(Y) ‖ 3DES_IMK(Y ⊕ FF..FF) with odd parity (EMV 4.x Book 2 A1.4.1).
fn tdes_mk_from_y(imk: &[u8; 16], y: [u8; 8]) -> Result<Zeroizing<[u8; 16]>> {
    let cipher = KeyedCipher::new(BlockAlgorithm::Tdes, imk)?;
    let mut mk = Zeroizing::new([0u8; 16]);
    mk[..8].copy_from_slice(&y);
    mk[8..].iter_mut().zip(y).for_each(|(m, b)| *m = !b);
    cipher.encrypt_block(&mut mk[..8])?;
    cipher.encrypt_block(&mut mk[8..])?;
    set_odd_parity(&mut mk[..]);
    Ok(mk)
}

/// ICC master key, EMV 4.x Book 2 A1.4.1 option A (3DES): Y = rightmost 16 digits of PAN‖PSN,
/// MK = odd-parity(3DES_IMK(Y) ‖ 3DES_IMK(Y ⊕ FF..FF)). 16-byte result.
///
/// `psn` is the value byte of tag 5F34 (two BCD digits; `0x00` when the card has none).
/// Errors: [`Error::InvalidPan`] (12-19 digits), [`Error::InvalidParameter`] (PSN not BCD).
pub fn derive_icc_master_key_option_a(
    imk: &[u8; 16],
    pan: &str,
    psn: u8,
) -> Result<Zeroizing<[u8; 16]>> {
    tdes_mk_from_y(imk, option_a_y(pan, psn)?)
}

/// ICC master key, EMV 4.x Book 2 A1.4.2 option B: for PANs of more than 16 digits Y comes
/// from SHA-1 of PAN‖PSN; for 16 digits or fewer this is option A, as the spec requires.
///
/// Errors: as [`derive_icc_master_key_option_a`].
pub fn derive_icc_master_key_option_b(
    imk: &[u8; 16],
    pan: &str,
    psn: u8,
) -> Result<Zeroizing<[u8; 16]>> {
    if pan.len() <= 16 {
        return derive_icc_master_key_option_a(imk, pan, psn);
    }
    tdes_mk_from_y(imk, option_b_y(pan, psn)?)
}

/// ICC master key, PBOC 3.0 SM4 variant: Y as option A (8 bytes), MK = SM4_IMK(Y ‖ NOT Y).
/// No parity (SM4 keys have none).
///
/// **Unverified: no public vector**; the layout mirrors option A with one 16-byte SM4 block
/// (our reading of JR/T 0025.17; tests compose the steps independently).
/// Errors: as [`derive_icc_master_key_option_a`].
pub fn derive_icc_master_key_sm4(
    imk: &[u8; 16],
    pan: &str,
    psn: u8,
) -> Result<Zeroizing<[u8; 16]>> {
    let y = option_a_y(pan, psn)?;
    let mut block = Zeroizing::new([0u8; 16]);
    block[..8].copy_from_slice(&y);
    block[8..].iter_mut().zip(y).for_each(|(b, v)| *b = !v);
    Ok(Zeroizing::new(sm4_encrypt_block(imk, &block)))
}

/// PBOC 2.0/3.0 session key from the ATC (JR/T 0025.5/0025.17 "过程密钥"):
/// - 3DES: SK = odd-parity(3DES_MK(00×6‖ATC) ‖ 3DES_MK(00×6‖(ATC ⊕ FFFF))) — the same
///   construction as Visa CVN 10/18 session keys, confirmed for PBOC by issuer documentation
///   (medium confidence; 3DES parity is set, which does not change 3DES results).
/// - SM4: SK = SM4_MK(00×6‖ATC‖00×6‖(ATC ⊕ FFFF)) — the two 8-byte 3DES inputs as one SM4
///   block. **Unverified: no public vector**.
///
/// Errors: none in practice (keys are fixed-size); kept `Result` for the contract.
pub fn derive_session_key_pboc(
    mk: &[u8; 16],
    atc: [u8; 2],
    algorithm: CardAlgorithm,
) -> Result<Zeroizing<[u8; 16]>> {
    let mut sk = Zeroizing::new([0u8; 16]);
    sk[6..8].copy_from_slice(&atc);
    sk[14] = !atc[0];
    sk[15] = !atc[1];
    match algorithm {
        CardAlgorithm::Tdes => {
            let cipher = KeyedCipher::new(BlockAlgorithm::Tdes, mk)?;
            cipher.encrypt_block(&mut sk[..8])?;
            cipher.encrypt_block(&mut sk[8..])?;
            set_odd_parity(&mut sk[..]);
            Ok(sk)
        }
        CardAlgorithm::Sm4 => Ok(Zeroizing::new(sm4_encrypt_block(mk, &sk))),
    }
}

/// EMV common session key derivation (EMV 4.x Book 2 A1.3.1, 3DES) from any 8-byte
/// diversification value R: SK = odd-parity(3DES_MK(R with byte 2 = F0) ‖ 3DES_MK(R with byte 2 = 0F)).
///
/// Errors: none in practice (fixed-size key).
pub fn derive_common_session_key(mk: &[u8; 16], r: [u8; 8]) -> Result<Zeroizing<[u8; 16]>> {
    let cipher = KeyedCipher::new(BlockAlgorithm::Tdes, mk)?;
    let mut sk = Zeroizing::new([0u8; 16]);
    for (half, diversifier) in [(0usize, 0xF0u8), (8, 0x0F)] {
        let block = &mut sk[half..half + 8];
        block.copy_from_slice(&r);
        block[2] = diversifier;
        cipher.encrypt_block(block)?;
    }
    set_odd_parity(&mut sk[..]);
    Ok(sk)
}

/// EMV common session key for the AC (EMV 4.x Book 2 A1.3.1 with R = ATC‖00‖00‖UN, 3DES):
/// SK = odd-parity(3DES_MK(ATC‖F0‖00‖UN) ‖ 3DES_MK(ATC‖0F‖00‖UN)).
///
/// Errors: none in practice; kept `Result` for the contract.
pub fn derive_session_key_emv_csk(
    mk: &[u8; 16],
    atc: [u8; 2],
    un: [u8; 4],
) -> Result<Zeroizing<[u8; 16]>> {
    let mut r = [0u8; 8];
    r[..2].copy_from_slice(&atc);
    r[4..].copy_from_slice(&un);
    derive_common_session_key(mk, r)
}

/// EMV common session key for AES master keys (EMV 4.x Book 2 A1.3.1 with 16-byte blocks, as
/// we read it): R = ATC‖00×10‖UN; SK = leftmost key-length bytes of
/// AES_MK(R with byte 2 = F0) ‖ AES_MK(R with byte 2 = 0F). A 16-byte MK gives a 16-byte SK.
///
/// **Unverified: no public AES CSK vector found**; tests compose the steps by hand.
/// Errors: [`Error::InvalidKeyLength`] unless `mk` is 16, 24 or 32 bytes.
pub fn derive_session_key_emv_csk_aes(
    mk: &[u8],
    atc: [u8; 2],
    un: [u8; 4],
) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = KeyedCipher::new(BlockAlgorithm::Aes, mk)?;
    let mut blocks = Zeroizing::new([0u8; 32]);
    for (half, diversifier) in [(0usize, 0xF0u8), (16, 0x0F)] {
        let block = &mut blocks[half..half + 16];
        block[..2].copy_from_slice(&atc);
        block[2] = diversifier;
        block[12..].copy_from_slice(&un);
        cipher.encrypt_block(block)?;
    }
    Ok(Zeroizing::new(blocks[..mk.len()].to_vec()))
}

/// ARQC over CDOL1 data (the transaction data the card MACs, in CDOL1 order).
/// 3DES: ISO/IEC 9797-1 MAC algorithm 3, padding method 2 (EMV 4.x Book 2 A1.2.1).
/// SM4: SM4 CBC-MAC, padding method 2, first 8 bytes of the last block (PBOC 3.0; unverified).
///
/// Errors: [`Error::DataLength`] if `cdol1_data` is empty or over 1024 bytes.
pub fn generate_arqc(
    sk: &[u8; 16],
    algorithm: CardAlgorithm,
    cdol1_data: &[u8],
) -> Result<[u8; 8]> {
    if cdol1_data.is_empty() || cdol1_data.len() > CDOL_DATA_LEN_MAX {
        return Err(Error::DataLength {
            actual: cdol1_data.len(),
            expected: "1 to 1024 bytes of CDOL data",
        });
    }
    mac8(sk, algorithm, cdol1_data)
}

/// Longest CDOL-built data accepted, in bytes (a CDOL lists at most 252 bytes of data; 1024 is
/// a generous bound that also covers issuer proprietary data).
pub const CDOL_DATA_LEN_MAX: usize = 1024;

fn mac8(key: &[u8; 16], algorithm: CardAlgorithm, data: &[u8]) -> Result<[u8; 8]> {
    match algorithm {
        CardAlgorithm::Tdes => mac_alg3(key, data, Padding::Method2),
        CardAlgorithm::Sm4 => {
            let full = sm4_cbc_mac(key, data);
            let mut out = [0u8; 8];
            out.copy_from_slice(&full[..8]);
            Ok(out)
        }
    }
}

/// Recomputes the ARQC and compares it with `arqc` in constant time.
///
/// Errors: [`Error::VerificationFailed`] on mismatch; as [`generate_arqc`] otherwise.
pub fn verify_arqc(
    sk: &[u8; 16],
    algorithm: CardAlgorithm,
    cdol1_data: &[u8],
    arqc: &[u8; 8],
) -> Result<()> {
    let computed = generate_arqc(sk, algorithm, cdol1_data)?;
    if bool::from(computed.ct_eq(arqc)) {
        Ok(())
    } else {
        Err(Error::VerificationFailed)
    }
}

/// ARPC method 1 (EMV 4.x Book 2 A1.2.1 / 8.2.1): 3DES_K(ARQC ⊕ (ARC‖00×6)), 8 bytes. `key` is
/// the ICC master key or session key as the scheme says.
/// SM4: first 8 bytes of SM4_K((ARQC ⊕ (ARC‖00×6))‖00×8) (our PBOC 3.0 convention; unverified).
///
/// Errors: none in practice; kept `Result` for the contract.
pub fn generate_arpc_method1(
    key: &[u8; 16],
    algorithm: CardAlgorithm,
    arqc: &[u8; 8],
    arc: [u8; 2],
) -> Result<[u8; 8]> {
    let mut y = *arqc;
    y[0] ^= arc[0];
    y[1] ^= arc[1];
    match algorithm {
        CardAlgorithm::Tdes => {
            KeyedCipher::new(BlockAlgorithm::Tdes, key)?.encrypt_block(&mut y)?;
            Ok(y)
        }
        CardAlgorithm::Sm4 => {
            let mut block = [0u8; 16];
            block[..8].copy_from_slice(&y);
            let out = sm4_encrypt_block(key, &block);
            let mut arpc = [0u8; 8];
            arpc.copy_from_slice(&out[..8]);
            Ok(arpc)
        }
    }
}

/// ARPC method 2 (EMV 4.x Book 2 8.2.2): the first 4 bytes of the MAC (3DES: algorithm 3, SM4:
/// CBC-MAC; padding method 2) over ARQC‖CSU‖proprietary authentication data (0-8 bytes).
///
/// Errors: [`Error::DataLength`] if `prop_auth_data` is longer than 8 bytes.
pub fn generate_arpc_method2(
    key: &[u8; 16],
    algorithm: CardAlgorithm,
    arqc: &[u8; 8],
    csu: [u8; 4],
    prop_auth_data: &[u8],
) -> Result<[u8; 4]> {
    if prop_auth_data.len() > 8 {
        return Err(Error::DataLength {
            actual: prop_auth_data.len(),
            expected: "0 to 8 bytes of proprietary authentication data",
        });
    }
    let mut data = Vec::with_capacity(20);
    data.extend_from_slice(arqc);
    data.extend_from_slice(&csu);
    data.extend_from_slice(prop_auth_data);
    let mac = mac8(key, algorithm, &data)?;
    let mut arpc = [0u8; 4];
    arpc.copy_from_slice(&mac[..4]);
    Ok(arpc)
}
