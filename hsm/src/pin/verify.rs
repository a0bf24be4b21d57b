//! PIN verification against issuer reference values: IBM 3624 PIN offset (decimalisation table,
//! validation data; Thales DE/EE, AWS `IBM3624_PIN_OFFSET`) and Visa PVV (PVKI, 4 digits;
//! Thales DG/EC, AWS `VISA_PVV`). The PIN is deciphered from its block inside the function.
//!
//! Verifications answer `Ok(true)`/`Ok(false)`; malformed inputs are typed errors. Comparisons
//! run in constant time over the reference digits.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{PinBlockFormat, decipher_pin};
use crate::error::{Error, Result};
use crate::primitives::tdes_encrypt_block;

/// Parameters of the IBM 3624 method. `Debug` hides the validation data (usually PAN digits).
#[derive(Clone, Copy)]
pub struct Ibm3624Params<'a> {
    /// Decimalisation table: 16 decimal digits, the digit for hex 0..F (e.g. `0123456789012345`).
    pub decimalization_table: &'a str,
    /// Validation data: 16 hex digits enciphered under the PVK (usually PAN digits padded
    /// with a pad character, chosen by the issuer).
    pub validation_data: &'a str,
}

impl core::fmt::Debug for Ibm3624Params<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ibm3624Params")
            .field("decimalization_table", &self.decimalization_table)
            .field("validation_data", &"<redacted>")
            .finish()
    }
}

fn parse_table(table: &str) -> Result<[u8; 16]> {
    let bytes = table.as_bytes();
    if bytes.len() != 16 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(Error::InvalidParameter {
            what: "decimalisation table must be 16 decimal digits",
        });
    }
    let mut out = [0u8; 16];
    out.iter_mut().zip(bytes).for_each(|(o, b)| *o = b - b'0');
    Ok(out)
}

fn parse_digits(text: &str, min: usize, max: usize, what: &'static str) -> Result<Vec<u8>> {
    if !(min..=max).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidParameter { what });
    }
    Ok(text.bytes().map(|b| b - b'0').collect())
}

/// Natural PIN digits: 3DES_PVK(validation data), hex digits decimalised, leftmost `len`.
fn natural_pin(pvk: &[u8], params: &Ibm3624Params<'_>, len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let table = parse_table(params.decimalization_table)?;
    let data = params.validation_data;
    if data.len() != 16 || !data.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidParameter {
            what: "validation data must be 16 hex digits",
        });
    }
    let mut block = [0u8; 8];
    hex::decode_to_slice(data, &mut block).map_err(|_| Error::InvalidParameter {
        what: "validation data must be 16 hex digits",
    })?;
    let enc = Zeroizing::new(tdes_encrypt_block(pvk, &block)?);
    let nibbles = enc.iter().flat_map(|b| [b >> 4, b & 0x0F]);
    Ok(Zeroizing::new(
        nibbles.take(len).map(|n| table[usize::from(n)]).collect(),
    ))
}

/// IBM 3624 PIN offset of the PIN in `block`: (PIN − natural PIN) mod 10 per digit, over the
/// leftmost `offset_len` (4-12) digits of the PIN (issuance; Thales DE).
///
/// Errors: [`Error::InvalidParameter`] (table, validation data, length longer than the PIN),
/// PIN-block and key errors.
pub fn generate_ibm3624_offset(
    block: &[u8],
    pek: &[u8],
    format: PinBlockFormat,
    pan: Option<&str>,
    pvk: &[u8],
    params: &Ibm3624Params<'_>,
    offset_len: usize,
) -> Result<String> {
    if !(4..=12).contains(&offset_len) {
        return Err(Error::InvalidParameter {
            what: "offset length must be 4-12 digits",
        });
    }
    let pin = decipher_pin(format, pek, block, pan)?;
    if pin.len() < offset_len {
        return Err(Error::InvalidParameter {
            what: "offset length exceeds the PIN length",
        });
    }
    let natural = natural_pin(pvk, params, offset_len)?;
    Ok(pin
        .iter()
        .zip(natural.iter())
        .map(|(p, n)| char::from(b'0' + (p + 10 - n) % 10))
        .collect())
}

/// Verifies the PIN in `block` against an IBM 3624 `offset` (4-12 digits): the leftmost
/// offset-length PIN digits must equal natural PIN + offset (mod 10 per digit).
///
/// Errors: [`Error::InvalidParameter`], PIN-block and key errors (a wrong PIN is `Ok(false)`).
pub fn verify_ibm3624_offset(
    block: &[u8],
    pek: &[u8],
    format: PinBlockFormat,
    pan: Option<&str>,
    pvk: &[u8],
    params: &Ibm3624Params<'_>,
    offset: &str,
) -> Result<bool> {
    let offset = parse_digits(offset, 4, 12, "offset must be 4-12 decimal digits")?;
    let pin = decipher_pin(format, pek, block, pan)?;
    let natural = natural_pin(pvk, params, offset.len())?;
    if pin.len() < offset.len() {
        return Ok(false);
    }
    let expected: Zeroizing<Vec<u8>> = Zeroizing::new(
        natural
            .iter()
            .zip(&offset)
            .map(|(n, o)| (n + o) % 10)
            .collect(),
    );
    Ok(bool::from(expected.ct_eq(&pin[..offset.len()])))
}

/// Visa PVV (4 digits) from the transformed security parameter TSP = 11 rightmost PAN digits
/// excluding the check digit ‖ PVKI ‖ leftmost 4 PIN digits, enciphered under the PVK; decimal
/// digits of the result left to right, then hex digits A-F minus 10 if fewer than 4.
fn pvv_of(pvk: &[u8], pan: &str, pvki: u8, pin: &[u8]) -> Result<Zeroizing<[u8; 4]>> {
    if pvki > 9 {
        return Err(Error::InvalidParameter {
            what: "PVKI must be one digit 0-9",
        });
    }
    if pan.len() < 12 || pan.len() > 19 || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidPan {
            reason: "Visa PVV needs 12-19 decimal digits",
        });
    }
    if pin.len() < 4 {
        return Err(Error::InvalidPin {
            reason: "Visa PVV needs at least 4 digits",
        });
    }
    let pan_digits = &pan.as_bytes()[pan.len() - 12..pan.len() - 1];
    let mut tsp = Zeroizing::new([0u8; 16]);
    pan_digits
        .iter()
        .map(|d| d - b'0')
        .chain([pvki])
        .chain(pin[..4].iter().copied())
        .enumerate()
        .for_each(|(i, d)| tsp[i] = d);
    let mut block = Zeroizing::new([0u8; 8]);
    for (i, pair) in tsp.chunks_exact(2).enumerate() {
        block[i] = (pair[0] << 4) | pair[1];
    }
    let enc = Zeroizing::new(tdes_encrypt_block(pvk, &block)?);
    let nibbles: Zeroizing<Vec<u8>> =
        Zeroizing::new(enc.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect());
    let mut pvv = Zeroizing::new([0u8; 4]);
    let decimal = nibbles.iter().filter(|n| **n <= 9);
    let letters = nibbles.iter().filter(|n| **n > 9).map(|n| n - 10);
    for (slot, d) in pvv.iter_mut().zip(decimal.copied().chain(letters)) {
        *slot = d;
    }
    Ok(pvv)
}

/// Visa PVV (4 ASCII digits) of the PIN in `block` (issuance; Thales DG).
///
/// Errors: [`Error::InvalidParameter`] (PVKI), [`Error::InvalidPan`], PIN-block and key errors.
pub fn generate_visa_pvv(
    block: &[u8],
    pek: &[u8],
    format: PinBlockFormat,
    pan: &str,
    pvk: &[u8],
    pvki: u8,
) -> Result<String> {
    let pin = decipher_pin(format, pek, block, Some(pan))?;
    let pvv = pvv_of(pvk, pan, pvki, &pin)?;
    Ok(pvv.iter().map(|d| char::from(b'0' + d)).collect())
}

/// Verifies the PIN in `block` against a Visa `pvv` (4 digits) with key index `pvki`.
///
/// Errors: [`Error::InvalidParameter`], [`Error::InvalidPan`], PIN-block and key errors (a wrong
/// PIN is `Ok(false)`).
pub fn verify_visa_pvv(
    block: &[u8],
    pek: &[u8],
    format: PinBlockFormat,
    pan: &str,
    pvk: &[u8],
    pvki: u8,
    pvv: &str,
) -> Result<bool> {
    let reference = parse_digits(pvv, 4, 4, "PVV must be 4 decimal digits")?;
    let pin = decipher_pin(format, pek, block, Some(pan))?;
    let computed = pvv_of(pvk, pan, pvki, &pin)?;
    Ok(bool::from(computed.ct_eq(&reference[..])))
}
