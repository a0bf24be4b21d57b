//! The field table of our ISO 8583:1987 dialect: what each data element is (type, length form,
//! maximum length) and how it is encoded on the wire, as data. The codec (`codec.rs`) reads
//! nothing but this table.
//!
//! Encoding choices, as China UnionPay-style POS/host links use them (ISO 8583:1987 §4.2 field
//! list; the UnionPay practice of packed BCD numerics and binary bitmaps):
//!
//! | element | wire form |
//! |---|---|
//! | frame | 2-byte big-endian length of what follows, no TPDU header |
//! | MTI | n4, packed BCD, 2 bytes |
//! | bitmaps | binary, 8 bytes each; bit 1 announces the secondary bitmap |
//! | `n` fixed | packed BCD; odd length left-padded with a `0` nibble |
//! | `n`/`z` LLVAR | 1-byte BCD length counting digits, then packed BCD right-padded with `F` |
//! | `an`/`ans` | ASCII, fixed or with a BCD length prefix counting characters |
//! | `b` | raw bytes; LLLVAR length = 2-byte BCD counting bytes |
//! | MAC | field 64 (8 bytes) if no secondary bitmap, otherwise field 128 |
//!
//! `z` (track 2) digits are `0-9` and the separator `D` (the `=` of ISO 7813), one nibble each.

/// The data type of a field (ISO 8583:1987 §4.1 notation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `n`: decimal digits, packed BCD on the wire.
    N,
    /// `z`: track-2 data: digits and the separator `D`, packed into nibbles.
    Z,
    /// `an`: letters and digits, ASCII.
    An,
    /// `ans`: letters, digits and printable specials (0x20..=0x7E), ASCII.
    Ans,
    /// `b`: binary bytes.
    B,
}

/// The length form of a field; the number is the (maximum) length in the field's units:
/// digits for `n`/`z`, characters for `an`/`ans`, bytes for `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenForm {
    /// Always exactly this many units.
    Fixed(usize),
    /// A 1-byte BCD length prefix (0..=99 units), at most this many.
    LlVar(usize),
    /// A 2-byte BCD length prefix (0..=999 units), at most this many.
    LllVar(usize),
}

/// One data element of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field number, 2..=128.
    pub number: u8,
    /// ISO 8583:1987 name.
    pub name: &'static str,
    /// Data type.
    pub kind: Kind,
    /// Length form and maximum.
    pub len: LenForm,
    /// Whether the value is cardholder data (PAN, track 2, ICC data): never logged or shown.
    pub sensitive: bool,
}

const fn f(number: u8, name: &'static str, kind: Kind, len: LenForm, sensitive: bool) -> FieldSpec {
    FieldSpec {
        number,
        name,
        kind,
        len,
        sensitive,
    }
}

use Kind::{An, Ans, B, N, Z};
use LenForm::{Fixed, LlVar, LllVar};

/// The fields our switch and its banks exchange (issue 7 list, plus 32, 70 and 90 for
/// acquirer id, network management and reversals). A bitmap bit for any other field is a
/// format error.
pub const FIELDS: &[FieldSpec] = &[
    f(2, "primary account number", N, LlVar(19), true),
    f(3, "processing code", N, Fixed(6), false),
    f(4, "amount, transaction (fen)", N, Fixed(12), false),
    f(
        7,
        "transmission date and time MMDDhhmmss",
        N,
        Fixed(10),
        false,
    ),
    f(11, "systems trace audit number", N, Fixed(6), false),
    f(12, "time, local transaction hhmmss", N, Fixed(6), false),
    f(13, "date, local transaction MMDD", N, Fixed(4), false),
    f(22, "POS entry mode", N, Fixed(3), false),
    f(23, "card sequence number", N, Fixed(3), false),
    f(25, "POS condition code", N, Fixed(2), false),
    f(32, "acquiring institution id", N, LlVar(11), false),
    f(35, "track 2 data", Z, LlVar(37), true),
    f(37, "retrieval reference number", An, Fixed(12), false),
    f(38, "authorisation id response", An, Fixed(6), false),
    f(39, "response code", An, Fixed(2), false),
    f(41, "card acceptor terminal id", Ans, Fixed(8), false),
    f(42, "card acceptor id code", Ans, Fixed(15), false),
    f(49, "currency code, transaction", An, Fixed(3), false),
    f(
        55,
        "ICC system related data (EMV TLV)",
        B,
        LllVar(255),
        true,
    ),
    f(64, "message authentication code", B, Fixed(8), false),
    f(
        70,
        "network management information code",
        N,
        Fixed(3),
        false,
    ),
    f(90, "original data elements", N, Fixed(42), false),
    f(128, "message authentication code", B, Fixed(8), false),
];

/// The table entry of field `number`, if our dialect has it.
#[must_use]
pub fn field(number: u8) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|s| s.number == number)
}
