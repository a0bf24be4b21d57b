//! ISO 9564-1 PIN blocks: formats 0, 1, 3 (3DES, 8 bytes), 4 (AES, 16 bytes, ISO 9564-1:2017
//! encipher-xor-encipher) and 2 (ICC plaintext, clear only); decode-check, translation between
//! keys and formats, and PIN verification ([`verify`]: IBM 3624 offset, Visa PVV).
//!
//! Functions take encrypted PIN blocks and keys and return encrypted blocks, `()` or a bool.
//! The clear PIN lives only in [`Zeroizing`] buffers inside a function; errors name the broken
//! rule, never a digit. Format rules follow AWS Payment Cryptography `TranslatePinData`: format 1
//! cannot become a PAN-bound format (0, 3, 4); formats 0/1/3 use 3DES keys, format 4 AES keys.

pub mod verify;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::primitives::{BlockAlgorithm, KeyedCipher};

/// Shortest PIN, in digits (ISO 9564-1).
pub const PIN_DIGITS_MIN: usize = 4;
/// Longest PIN, in digits (ISO 9564-1).
pub const PIN_DIGITS_MAX: usize = 12;

/// An ISO 9564-1 PIN block format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinBlockFormat {
    /// Format 0 (ANSI X9.8): `0 N PIN F..F` ⊕ `0000 ‖ 12 PAN digits`; 3DES.
    Iso0,
    /// Format 1: `1 N PIN random`, no PAN; 3DES.
    Iso1,
    /// Format 2: `2 N PIN F..F`, the ICC plaintext PIN of VERIFY; never enciphered here.
    Iso2,
    /// Format 3: `3 N PIN fill A-F` ⊕ `0000 ‖ 12 PAN digits`; 3DES.
    Iso3,
    /// Format 4 (ISO 9564-1:2017): 16-byte PIN and PAN fields, AES encipher-xor-encipher.
    Iso4,
}

impl PinBlockFormat {
    /// The control nibble (the format number).
    fn control(self) -> u8 {
        match self {
            Self::Iso0 => 0,
            Self::Iso1 => 1,
            Self::Iso2 => 2,
            Self::Iso3 => 3,
            Self::Iso4 => 4,
        }
    }

    /// Whether the block is bound to the PAN.
    #[must_use]
    pub fn is_pan_bound(self) -> bool {
        matches!(self, Self::Iso0 | Self::Iso3 | Self::Iso4)
    }

    /// Cipher of the enciphered block: 3DES for 0/1/3, AES for 4.
    fn cipher(self) -> Result<BlockAlgorithm> {
        match self {
            Self::Iso0 | Self::Iso1 | Self::Iso3 => Ok(BlockAlgorithm::Tdes),
            Self::Iso4 => Ok(BlockAlgorithm::Aes),
            Self::Iso2 => Err(Error::UnsupportedFormat {
                what: "format 2 is the ICC plaintext PIN and is never enciphered",
            }),
        }
    }
}

/// Checks a PIN (4-12 ASCII digits) and returns its digit values. Never reports the digits.
fn pin_digits(pin: &str) -> Result<Zeroizing<Vec<u8>>> {
    if !(PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&pin.len()) {
        return Err(Error::InvalidPin {
            reason: "length outside 4-12 digits",
        });
    }
    if !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidPin {
            reason: "not all decimal digits",
        });
    }
    Ok(Zeroizing::new(pin.bytes().map(|b| b - b'0').collect()))
}

fn need_pan(pan: Option<&str>) -> Result<&str> {
    pan.ok_or(Error::InvalidPan {
        reason: "a PAN is required for a PAN-bound format",
    })
}

/// The format 0/3 PAN block: `0000` ‖ the 12 rightmost PAN digits excluding the check digit.
/// The PAN must have 13-19 digits.
fn pan_block_8(pan: &str) -> Result<[u8; 8]> {
    if !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidPan {
            reason: "not all decimal digits",
        });
    }
    if !(13..=19).contains(&pan.len()) {
        return Err(Error::InvalidPan {
            reason: "length outside 13-19 digits (format 0/3 needs 12 digits plus check digit)",
        });
    }
    let digits = &pan.as_bytes()[pan.len() - 13..pan.len() - 1];
    let mut block = [0u8; 8];
    for (i, d) in digits.iter().enumerate() {
        block[2 + i / 2] |= (d - b'0') << if i % 2 == 0 { 4 } else { 0 };
    }
    Ok(block)
}

/// The format 4 PAN field (ISO 9564-1:2017 §9.4.2): M (PAN length − 12, 0 if shorter) ‖ PAN
/// zero-padded on the left to 12 digits ‖ zeros to 32 nibbles. PAN 1-19 digits.
fn pan_field_16(pan: &str) -> Result<[u8; 16]> {
    if pan.is_empty() || pan.len() > 19 || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidPan {
            reason: "format 4 needs 1-19 decimal digits",
        });
    }
    let mut nibbles = [0u8; 32];
    nibbles[0] = u8::try_from(pan.len().saturating_sub(12)).unwrap_or(0);
    let start = 1 + 12usize.saturating_sub(pan.len());
    for (i, d) in pan.bytes().enumerate() {
        nibbles[start + i] = d - b'0';
    }
    let mut field = [0u8; 16];
    for (i, pair) in nibbles.chunks_exact(2).enumerate() {
        field[i] = (pair[0] << 4) | pair[1];
    }
    Ok(field)
}

fn set_nibble(block: &mut [u8], index: usize, value: u8) {
    let byte = &mut block[index / 2];
    if index.is_multiple_of(2) {
        *byte = (*byte & 0x0F) | (value << 4);
    } else {
        *byte = (*byte & 0xF0) | (value & 0x0F);
    }
}

fn nibble(block: &[u8], index: usize) -> u8 {
    let byte = block[index / 2];
    if index.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0F
    }
}

/// Builds the clear PIN field (8 bytes for formats 0-3, 16 for format 4) from PIN digits.
/// `random` supplies the fill of formats 1 and 3 and the random half of format 4.
fn clear_pin_field(format: PinBlockFormat, pin: &[u8], random: &[u8; 8]) -> Zeroizing<Vec<u8>> {
    let len = if format == PinBlockFormat::Iso4 {
        16
    } else {
        8
    };
    let mut field = Zeroizing::new(vec![0u8; len]);
    set_nibble(&mut field, 0, format.control());
    set_nibble(&mut field, 1, u8::try_from(pin.len()).unwrap_or(0));
    for (i, d) in pin.iter().enumerate() {
        set_nibble(&mut field, 2 + i, *d);
    }
    for i in 2 + pin.len()..16 {
        let shift = if i % 2 == 0 { 4 } else { 0 };
        let r = (random[(i / 2) % 8] >> shift) & 0x0F;
        let fill = match format {
            PinBlockFormat::Iso0 | PinBlockFormat::Iso2 => 0x0F,
            PinBlockFormat::Iso1 => r,
            PinBlockFormat::Iso3 => 0x0A + r % 6,
            PinBlockFormat::Iso4 => 0x0A,
        };
        set_nibble(&mut field, i, fill);
    }
    if format == PinBlockFormat::Iso4 {
        field[8..].copy_from_slice(random);
    }
    field
}

/// Parses a clear PIN field of `format`, checking control nibble, length and fill; returns
/// the PIN digits. Errors: [`Error::InvalidPinBlock`] naming the broken rule.
fn parse_pin_field(format: PinBlockFormat, field: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if nibble(field, 0) != format.control() {
        return Err(Error::InvalidPinBlock {
            reason: "control field does not match the format",
        });
    }
    let len = usize::from(nibble(field, 1));
    if !(PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&len) {
        return Err(Error::InvalidPinBlock {
            reason: "PIN length outside 4-12",
        });
    }
    let mut pin = Zeroizing::new(Vec::with_capacity(len));
    for i in 2..2 + len {
        let d = nibble(field, i);
        if d > 9 {
            return Err(Error::InvalidPinBlock {
                reason: "PIN digit is not decimal",
            });
        }
        pin.push(d);
    }
    let fill_ok = (2 + len..16).all(|i| {
        let f = nibble(field, i);
        match format {
            PinBlockFormat::Iso0 | PinBlockFormat::Iso2 => f == 0x0F,
            PinBlockFormat::Iso1 => true,
            PinBlockFormat::Iso3 => f >= 0x0A,
            PinBlockFormat::Iso4 => f == 0x0A,
        }
    });
    if !fill_ok {
        return Err(Error::InvalidPinBlock {
            reason: "fill does not match the format",
        });
    }
    Ok(pin)
}

fn check_block_len(format: PinBlockFormat, block: &[u8]) -> Result<()> {
    let expected = if format == PinBlockFormat::Iso4 {
        16
    } else {
        8
    };
    if block.len() == expected {
        Ok(())
    } else {
        Err(Error::DataLength {
            actual: block.len(),
            expected: if expected == 8 {
                "an 8-byte PIN block"
            } else {
                "a 16-byte format 4 PIN block"
            },
        })
    }
}

/// Enciphers a clear PIN field into a PIN block.
fn encipher(
    format: PinBlockFormat,
    key: &[u8],
    field: &[u8],
    pan: Option<&str>,
) -> Result<Vec<u8>> {
    let cipher = KeyedCipher::new(format.cipher()?, key)?;
    let mut block = field.to_vec();
    match format {
        PinBlockFormat::Iso0 | PinBlockFormat::Iso3 => {
            let pan_block = pan_block_8(need_pan(pan)?)?;
            block.iter_mut().zip(pan_block).for_each(|(b, p)| *b ^= p);
            cipher.encrypt_block(&mut block)?;
        }
        PinBlockFormat::Iso4 => {
            let pan_field = pan_field_16(need_pan(pan)?)?;
            cipher.encrypt_block(&mut block)?;
            block.iter_mut().zip(pan_field).for_each(|(b, p)| *b ^= p);
            cipher.encrypt_block(&mut block)?;
        }
        PinBlockFormat::Iso1 | PinBlockFormat::Iso2 => cipher.encrypt_block(&mut block)?,
    }
    Ok(block)
}

/// Deciphers a PIN block and returns the PIN digits (crate-internal; never leaves the crate).
pub(crate) fn decipher_pin(
    format: PinBlockFormat,
    key: &[u8],
    block: &[u8],
    pan: Option<&str>,
) -> Result<Zeroizing<Vec<u8>>> {
    check_block_len(format, block)?;
    let cipher = KeyedCipher::new(format.cipher()?, key)?;
    let mut field = Zeroizing::new(block.to_vec());
    match format {
        PinBlockFormat::Iso0 | PinBlockFormat::Iso3 => {
            let pan_block = pan_block_8(need_pan(pan)?)?;
            cipher.decrypt_block(&mut field)?;
            field.iter_mut().zip(pan_block).for_each(|(b, p)| *b ^= p);
        }
        PinBlockFormat::Iso4 => {
            let pan_field = pan_field_16(need_pan(pan)?)?;
            cipher.decrypt_block(&mut field)?;
            field.iter_mut().zip(pan_field).for_each(|(b, p)| *b ^= p);
            cipher.decrypt_block(&mut field)?;
        }
        PinBlockFormat::Iso1 | PinBlockFormat::Iso2 => cipher.decrypt_block(&mut field)?,
    }
    parse_pin_field(format, &field)
}

/// **Test and card-simulation use only** (a real HSM never receives a clear PIN): builds and
/// enciphers a PIN block with the given 8 random bytes (fill of formats 1/3, random half of 4).
///
/// Errors: [`Error::InvalidPin`], [`Error::InvalidPan`], [`Error::InvalidKeyLength`],
/// [`Error::UnsupportedFormat`] for format 2.
pub fn encrypt_pin_block_with_random(
    format: PinBlockFormat,
    key: &[u8],
    pin: &str,
    pan: Option<&str>,
    random: &[u8; 8],
) -> Result<Vec<u8>> {
    let digits = pin_digits(pin)?;
    let field = clear_pin_field(format, &digits, random);
    encipher(format, key, &field, pan)
}

/// **Test and card-simulation use only**: [`encrypt_pin_block_with_random`] with fresh
/// randomness from the system generator. Errors: as that function, and [`Error::Random`].
pub fn encrypt_pin_block(
    format: PinBlockFormat,
    key: &[u8],
    pin: &str,
    pan: Option<&str>,
) -> Result<Vec<u8>> {
    let mut random = Zeroizing::new([0u8; 8]);
    SystemRandom::new()
        .fill(&mut random[..])
        .map_err(|_| Error::Random)?;
    encrypt_pin_block_with_random(format, key, pin, pan, &random)
}

/// **Card-simulation use only**: the clear format 2 PIN block the terminal sends to the ICC in
/// VERIFY (`2 N PIN F..F`, 8 bytes). Errors: [`Error::InvalidPin`].
pub fn iso2_plain_block(pin: &str) -> Result<Zeroizing<[u8; 8]>> {
    let digits = pin_digits(pin)?;
    let field = clear_pin_field(PinBlockFormat::Iso2, &digits, &[0; 8]);
    let mut out = Zeroizing::new([0u8; 8]);
    out.copy_from_slice(&field);
    Ok(out)
}

/// Checks a clear format 2 block (ICC side of VERIFY) against the PIN held by the card, in
/// constant time over the block. Errors: [`Error::InvalidPinBlock`] if malformed.
pub fn iso2_plain_matches(block: &[u8; 8], card_pin: &str) -> Result<bool> {
    parse_pin_field(PinBlockFormat::Iso2, block)?;
    let expected = iso2_plain_block(card_pin)?;
    Ok(bool::from(subtle::ConstantTimeEq::ct_eq(
        &expected[..],
        &block[..],
    )))
}

/// Deciphers `block` and checks that it is a well-formed PIN block of `format` (control field,
/// PIN length 4-12, decimal digits, fill). Returns nothing about the PIN.
///
/// Errors: [`Error::InvalidPinBlock`], [`Error::DataLength`], key/PAN errors.
pub fn check_pin_block(
    format: PinBlockFormat,
    key: &[u8],
    block: &[u8],
    pan: Option<&str>,
) -> Result<()> {
    decipher_pin(format, key, block, pan).map(|_| ())
}

/// Translates a PIN block: decipher under `key_in` as `format_in`, re-encipher under `key_out` as
/// `format_out` with fresh fill (Thales CA/CC, AWS `TranslatePinData`). The same PAN binds both
/// sides. Format 1 cannot become a PAN-bound format; format 2 is refused; 3DES keys serve
/// formats 0/1/3, AES keys format 4.
///
/// Errors: [`Error::UnsupportedFormat`], [`Error::InvalidPinBlock`], key/PAN/length errors,
/// [`Error::Random`].
pub fn translate_pin_block(
    block: &[u8],
    key_in: &[u8],
    format_in: PinBlockFormat,
    key_out: &[u8],
    format_out: PinBlockFormat,
    pan: Option<&str>,
) -> Result<Vec<u8>> {
    if format_in == PinBlockFormat::Iso1 && format_out.is_pan_bound() {
        return Err(Error::UnsupportedFormat {
            what: "format 1 cannot be translated to a PAN-bound format",
        });
    }
    format_out.cipher()?;
    let digits = decipher_pin(format_in, key_in, block, pan)?;
    let mut random = Zeroizing::new([0u8; 8]);
    SystemRandom::new()
        .fill(&mut random[..])
        .map_err(|_| Error::Random)?;
    let field = clear_pin_field(format_out, &digits, &random);
    encipher(format_out, key_out, &field, pan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psec_format0_and_format2_clear_fields() {
        // psec tests/test_pinblock.py: PIN 1234, PAN 5555555551234567 -> 041261AAAAEDCBA9;
        // format 2 PIN 123456789 -> 29123456789FFFFF.
        let digits = pin_digits("1234").unwrap();
        let mut f = clear_pin_field(PinBlockFormat::Iso0, &digits, &[0; 8]).to_vec();
        let p = pan_block_8("5555555551234567").unwrap();
        f.iter_mut().zip(p).for_each(|(b, q)| *b ^= q);
        assert_eq!(hex::encode_upper(&f), "041261AAAAEDCBA9");
        assert_eq!(
            hex::encode_upper(*iso2_plain_block("123456789").unwrap()),
            "29123456789FFFFF"
        );
    }

    #[test]
    fn psec_format4_pan_field() {
        // psec tests/test_pinblock.py::test_encode_pan_field_iso_4.
        assert_eq!(
            hex::encode_upper(pan_field_16("112233445566778899").unwrap()),
            "61122334455667788990000000000000"
        );
    }

    #[test]
    fn psec_format2_decode_errors() {
        // psec tests/test_pinblock.py::test_decode_pinblock_iso_2_exception cases.
        let cases = [
            (
                "041234FFFFFFFFFF",
                "control field does not match the format",
            ),
            ("2F123456789012FF", "PIN length outside 4-12"),
            ("22123456789012FF", "PIN length outside 4-12"),
            ("2C123456789012CF", "fill does not match the format"),
            ("2C12345678901FFF", "PIN digit is not decimal"),
        ];
        for (block, reason) in cases {
            let b = hex::decode(block).unwrap();
            assert_eq!(
                parse_pin_field(PinBlockFormat::Iso2, &b).err(),
                Some(Error::InvalidPinBlock { reason })
            );
        }
    }
}
