//! Packing and unpacking driven by the field table (`spec.rs`): MTI (BCD), primary and
//! secondary bitmaps (binary), then each present field in ascending order. Unpacking is strict:
//! a bitmap bit for a field the table lacks, a field cut short, a bad BCD digit or pad nibble,
//! a length past the table's maximum or bytes left over are all errors, never guesses.

use super::message::{Message, Mti};
use super::spec::{self, FieldSpec, Kind, LenForm};
use super::{Iso8583Error, MESSAGE_LEN_MAX};

/// Packs `message` (MTI, bitmaps, fields) without the 2-byte frame length.
///
/// Errors: [`Iso8583Error::UnknownField`], [`Iso8583Error::Value`] (length or characters do not
/// fit the table), [`Iso8583Error::TooLong`].
pub fn pack(message: &Message) -> Result<Vec<u8>, Iso8583Error> {
    let mut out = Vec::with_capacity(128);
    out.extend(bcd_pack(message.mti.digits(), b'0')?);
    let secondary = message.numbers().any(|n| n > 64);
    let mut bitmap = [0u8; 16];
    if secondary {
        bitmap[0] |= 0x80;
    }
    for number in message.numbers() {
        if !(2..=128).contains(&number) || spec::field(number).is_none() {
            return Err(Iso8583Error::UnknownField { number });
        }
        let bit = usize::from(number - 1);
        bitmap[bit / 8] |= 0x80 >> (bit % 8);
    }
    out.extend_from_slice(&bitmap[..if secondary { 16 } else { 8 }]);
    for (number, value) in message.fields() {
        let spec = spec::field(*number).ok_or(Iso8583Error::UnknownField { number: *number })?;
        pack_field(spec, value, &mut out)?;
    }
    if out.len() > MESSAGE_LEN_MAX {
        return Err(Iso8583Error::TooLong { len: out.len() });
    }
    Ok(out)
}

/// Unpacks one message (no frame length) and checks every field against the table.
///
/// Errors: [`Iso8583Error::TooLong`], [`Iso8583Error::Truncated`] (the bitmap announces a field
/// that is not there, or a field is cut short), [`Iso8583Error::UnknownField`],
/// [`Iso8583Error::Value`], [`Iso8583Error::BadMti`], [`Iso8583Error::TrailingBytes`].
pub fn unpack(bytes: &[u8]) -> Result<Message, Iso8583Error> {
    if bytes.len() > MESSAGE_LEN_MAX {
        return Err(Iso8583Error::TooLong { len: bytes.len() });
    }
    let mut at = 0usize;
    let mti_bytes = take(bytes, &mut at, 2, 0)?;
    let mti = Mti::parse(&bcd_unpack(mti_bytes, 4, Pad::None, 0)?)?;
    let primary = take(bytes, &mut at, 8, 1)?;
    let mut bitmap = [0u8; 16];
    bitmap[..8].copy_from_slice(primary);
    if primary[0] & 0x80 != 0 {
        bitmap[8..].copy_from_slice(take(bytes, &mut at, 8, 1)?);
    }
    let mut message = Message::new(mti);
    for number in 2u8..=128 {
        let bit = usize::from(number - 1);
        if bitmap[bit / 8] & (0x80 >> (bit % 8)) == 0 {
            continue;
        }
        // Bit 65 would announce a tertiary bitmap, which the 1987 layout does not have.
        let spec = spec::field(number).ok_or(Iso8583Error::UnknownField { number })?;
        let value = unpack_field(spec, bytes, &mut at)?;
        message.set(number, value);
    }
    if at != bytes.len() {
        return Err(Iso8583Error::TrailingBytes {
            len: bytes.len() - at,
        });
    }
    Ok(message)
}

/// Nibble padding of an odd-length BCD field.
#[derive(Clone, Copy)]
enum Pad {
    /// Even length only.
    None,
    /// A `0` nibble first (fixed `n`).
    Left,
    /// An `F` nibble last (LLVAR `n`/`z`).
    Right,
}

fn value_err(number: u8, reason: &'static str) -> Iso8583Error {
    Iso8583Error::Value { number, reason }
}

fn take<'a>(
    bytes: &'a [u8],
    at: &mut usize,
    len: usize,
    number: u8,
) -> Result<&'a [u8], Iso8583Error> {
    let end = at
        .checked_add(len)
        .filter(|end| *end <= bytes.len())
        .ok_or(Iso8583Error::Truncated { number })?;
    let out = &bytes[*at..end];
    *at = end;
    Ok(out)
}

fn nibble_of(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'D' | b'=' => Some(0x0D),
        _ => None,
    }
}

/// Packs ASCII digits (and `D` for `z`) two per byte; odd length gets `pad` nibble (`b'0'`
/// left or `b'F'` right).
fn bcd_pack(digits: &[u8], pad: u8) -> Result<Vec<u8>, Iso8583Error> {
    let mut nibbles: Vec<u8> = Vec::with_capacity(digits.len() + 1);
    if digits.len() % 2 == 1 && pad == b'0' {
        nibbles.push(0);
    }
    for &c in digits {
        nibbles.push(nibble_of(c).ok_or(value_err(0, "not a digit"))?);
    }
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0F);
    }
    Ok(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

fn bcd_unpack(bytes: &[u8], digits: usize, pad: Pad, number: u8) -> Result<Vec<u8>, Iso8583Error> {
    let mut nibbles = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        nibbles.push(b >> 4);
        nibbles.push(b & 0x0F);
    }
    if nibbles.len() != digits {
        let (pad_nibble, rest) = match pad {
            Pad::Left => (nibbles.first().copied(), 1..nibbles.len()),
            Pad::Right => (nibbles.last().copied(), 0..nibbles.len().saturating_sub(1)),
            Pad::None => return Err(value_err(number, "odd length without a pad")),
        };
        let expected = if matches!(pad, Pad::Left) { 0 } else { 0x0F };
        if pad_nibble != Some(expected) || rest.len() != digits {
            return Err(value_err(number, "wrong pad nibble"));
        }
        nibbles = nibbles[rest].to_vec();
    }
    nibbles
        .into_iter()
        .map(|n| match n {
            0..=9 => Ok(b'0' + n),
            0x0D if number == 35 => Ok(b'D'),
            _ => Err(value_err(number, "not a BCD digit")),
        })
        .collect()
}

fn check_chars(spec: &FieldSpec, value: &[u8]) -> Result<(), Iso8583Error> {
    let ok = match spec.kind {
        Kind::N => value.iter().all(u8::is_ascii_digit),
        Kind::Z => value.iter().all(|c| c.is_ascii_digit() || *c == b'D'),
        Kind::An => value.iter().all(u8::is_ascii_alphanumeric),
        Kind::Ans => value.iter().all(|c| (0x20..=0x7E).contains(c)),
        Kind::B => true,
    };
    if ok {
        Ok(())
    } else {
        Err(value_err(
            spec.number,
            "characters outside the field's type",
        ))
    }
}

/// Bytes on the wire for `units` of a field of `kind`.
fn wire_len(kind: Kind, units: usize) -> usize {
    match kind {
        Kind::N | Kind::Z => units.div_ceil(2),
        Kind::An | Kind::Ans | Kind::B => units,
    }
}

fn pack_field(spec: &FieldSpec, value: &[u8], out: &mut Vec<u8>) -> Result<(), Iso8583Error> {
    check_chars(spec, value)?;
    let units = value.len();
    let (max, prefix_digits) = match spec.len {
        LenForm::Fixed(len) => {
            if units != len {
                return Err(value_err(
                    spec.number,
                    "length differs from the fixed length",
                ));
            }
            (len, 0)
        }
        LenForm::LlVar(max) => (max, 2),
        LenForm::LllVar(max) => (max, 4),
    };
    if units > max {
        return Err(value_err(spec.number, "longer than the field's maximum"));
    }
    if prefix_digits > 0 {
        let text = format!("{units:0width$}", width = prefix_digits);
        out.extend(bcd_pack(text.as_bytes(), b'0')?);
    }
    match spec.kind {
        Kind::N | Kind::Z => {
            let pad = if prefix_digits == 0 { b'0' } else { b'F' };
            out.extend(bcd_pack(value, pad).map_err(|_| value_err(spec.number, "not a digit"))?);
        }
        Kind::An | Kind::Ans | Kind::B => out.extend_from_slice(value),
    }
    Ok(())
}

fn unpack_field(spec: &FieldSpec, bytes: &[u8], at: &mut usize) -> Result<Vec<u8>, Iso8583Error> {
    let number = spec.number;
    let (units, pad) = match spec.len {
        LenForm::Fixed(len) => (len, Pad::Left),
        LenForm::LlVar(max) | LenForm::LllVar(max) => {
            let prefix_len = if matches!(spec.len, LenForm::LlVar(_)) {
                1
            } else {
                2
            };
            let prefix = take(bytes, at, prefix_len, number)?;
            let digits = bcd_unpack(prefix, prefix_len * 2, Pad::None, number)?;
            let units = digits
                .iter()
                .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
            if units > max {
                return Err(value_err(number, "length prefix past the field's maximum"));
            }
            (units, Pad::Right)
        }
    };
    let raw = take(bytes, at, wire_len(spec.kind, units), number)?;
    let value = match spec.kind {
        Kind::N | Kind::Z => bcd_unpack(raw, units, pad, number)?,
        Kind::An | Kind::Ans | Kind::B => raw.to_vec(),
    };
    check_chars(spec, &value)?;
    Ok(value)
}
