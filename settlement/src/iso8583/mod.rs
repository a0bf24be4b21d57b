//! ISO 8583:1987 messages between the switch and the issuer banks, in the China UnionPay-style
//! dialect described in [`spec`] (packed BCD numerics, binary bitmaps, BCD length prefixes, a
//! 2-byte length frame over TCP, the MAC in field 64 or 128).
//!
//! The layout is data: [`spec::FIELDS`] is the whole dialect and [`codec`] is generic over it.
//! Why not a crate: the Rust ISO 8583 crates on crates.io were evaluated (issue 7) — `iso8583`
//! 0.1.1 (2017, Rust 2015, ASCII spec YAML, unmaintained), `iso8583_rs` 0.1.10 (old, bundles
//! its own TCP server), `iso8583-codec-rs` 0.1.0 (one release, no BCD-nibble padding control
//! documented) — none is well kept enough to carry money, so the codec is ours and is checked
//! against an independent implementation (Python `pyiso8583`, `tests/bank-sim/`).

pub mod codec;
mod message;
pub mod spec;

pub use codec::{pack, unpack};
pub use message::{Message, Mti};

/// Largest packed message (without the 2-byte frame length), bytes. Ours stay under 512; the
/// bound stops a hostile length prefix from making us buffer 64 KiB.
pub const MESSAGE_LEN_MAX: usize = 2_048;

/// Length of the MAC in field 64/128, bytes.
pub const MAC_LEN: usize = 8;

/// Why a message could not be packed or unpacked. Messages never carry field values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Iso8583Error {
    /// The MTI is not 4 BCD digits.
    #[error("the MTI is not 4 decimal digits")]
    BadMti,
    /// The bitmap announces a field our dialect does not define (or field 1/65 misuse).
    #[error("field {number} is not part of this dialect")]
    UnknownField {
        /// The field number.
        number: u8,
    },
    /// The message ends inside field `number` (0 = MTI, 1 = bitmaps): a bitmap announcing a
    /// field that is not there, or a short field.
    #[error("message ends inside field {number}")]
    Truncated {
        /// The field number.
        number: u8,
    },
    /// A field's value does not fit its table entry.
    #[error("field {number}: {reason}")]
    Value {
        /// The field number.
        number: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes left after the last field the bitmap announces.
    #[error("{len} bytes after the last field")]
    TrailingBytes {
        /// How many.
        len: usize,
    },
    /// Past [`MESSAGE_LEN_MAX`].
    #[error("message of {len} bytes is longer than {MESSAGE_LEN_MAX}")]
    TooLong {
        /// Its length, bytes.
        len: usize,
    },
    /// The MAC field is missing.
    #[error("the message carries no MAC")]
    NoMac,
}

/// The MAC field for a message: 128 if it has a secondary bitmap (any field above 64), else 64.
#[must_use]
pub fn mac_field(message: &Message) -> u8 {
    if message.numbers().any(|n| n > 64 && n != 128) {
        128
    } else {
        64
    }
}

/// The bytes the MAC covers: the packed message with the MAC field present, minus its last 8
/// bytes (the MAC value itself, always the last field). Sets a zero MAC placeholder.
///
/// Errors: those of [`pack`].
pub fn mac_input(message: &mut Message) -> Result<Vec<u8>, Iso8583Error> {
    message.remove(64);
    message.remove(128);
    let field = mac_field(message);
    message.set(field, vec![0u8; MAC_LEN]);
    let mut packed = pack(message)?;
    packed.truncate(packed.len() - MAC_LEN);
    Ok(packed)
}

/// Splits a received packed message into (bytes the MAC covers, the MAC).
///
/// Errors: [`Iso8583Error::NoMac`].
pub fn split_mac<'a>(
    packed: &'a [u8],
    message: &'a Message,
) -> Result<(&'a [u8], &'a [u8]), Iso8583Error> {
    let mac = message
        .get(128)
        .or_else(|| message.get(64))
        .ok_or(Iso8583Error::NoMac)?;
    // The MAC field is the last one on the wire, fixed 8 bytes.
    let cut = packed
        .len()
        .checked_sub(MAC_LEN)
        .ok_or(Iso8583Error::NoMac)?;
    Ok((&packed[..cut], mac))
}

/// Frames a packed message: 2-byte big-endian length, then the message.
///
/// Errors: [`Iso8583Error::TooLong`].
pub fn frame(packed: &[u8]) -> Result<Vec<u8>, Iso8583Error> {
    let len = u16::try_from(packed.len())
        .ok()
        .filter(|l| usize::from(*l) <= MESSAGE_LEN_MAX)
        .ok_or(Iso8583Error::TooLong { len: packed.len() })?;
    let mut out = Vec::with_capacity(packed.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packed);
    Ok(out)
}
