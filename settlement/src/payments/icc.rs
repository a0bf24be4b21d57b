//! EMV field 55 (ICC system related data): a flat list of BER-TLV objects the terminal took
//! from the card and its own data. The switch rebuilds from it exactly the CDOL1 data the card
//! MACed into the ARQC: the card's CDOL1 (tag 8C) travels in field 55, and each CDOL1 entry is
//! taken from the object of the same tag, which must have exactly the entry's length (the
//! terminal sends each object as it filled it into the DOL, EMV 4.4 Book 3 §5.4; no padding or
//! truncation is guessed here). It also gives the amount (9F02) and currency (5F2A) the card
//! signed, which the switch checks against fields 4 and 49.

use card_core::dol::Dol;
use card_core::tlv::{self, Tag, Tlv};

/// Most bytes of field 55 (its LLLVAR maximum).
pub const ICC_DATA_LEN_MAX: usize = 255;

/// What the switch needs from field 55.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IccData {
    /// The ARQC (9F26).
    pub arqc: [u8; 8],
    /// Cryptogram information data (9F27).
    pub cid: u8,
    /// Application transaction counter (9F36).
    pub atc: [u8; 2],
    /// The CDOL1 data in order: what the card MACed.
    pub cdol1_data: Vec<u8>,
    /// Amount authorised (9F02) in fen.
    pub amount_fen: i64,
    /// Transaction currency code (5F2A) as 4 digits, e.g. `0156`.
    pub currency: String,
}

/// Why field 55 was refused (response code 30).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IccError {
    /// Longer than [`ICC_DATA_LEN_MAX`] or not BER-TLV.
    #[error("ICC data is not well-formed BER-TLV")]
    Malformed,
    /// A required tag is absent or has the wrong length.
    #[error("ICC data lacks tag {0:X} or it has the wrong length")]
    Missing(u32),
    /// A CDOL1 entry's object has another length than the CDOL asks.
    #[error("ICC data tag {0:X} does not have the length CDOL1 asks for")]
    DolLength(u32),
    /// The card's cryptogram is not an ARQC.
    #[error("the card did not ask to go online (CID is not ARQC)")]
    NotArqc,
    /// 9F02 is not 12 BCD digits.
    #[error("amount 9F02 is not BCD")]
    Amount,
}

fn value(objects: &[Tlv], tag: u32) -> Result<&[u8], IccError> {
    let t = Tag::from_u32(tag).map_err(|_| IccError::Missing(tag))?;
    tlv::find_value(objects, t).ok_or(IccError::Missing(tag))
}

fn fixed<const N: usize>(objects: &[Tlv], tag: u32) -> Result<[u8; N], IccError> {
    value(objects, tag)?
        .try_into()
        .map_err(|_| IccError::Missing(tag))
}

fn bcd_digits(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for n in [b >> 4, b & 0x0F] {
            if n > 9 {
                return None;
            }
            out.push(char::from(b'0' + n));
        }
    }
    Some(out)
}

/// Parses field 55.
///
/// Errors: [`IccError`].
pub fn parse(field55: &[u8]) -> Result<IccData, IccError> {
    if field55.len() > ICC_DATA_LEN_MAX {
        return Err(IccError::Malformed);
    }
    let objects = tlv::parse_all(field55).map_err(|_| IccError::Malformed)?;
    let cdol1 = Dol::parse(value(&objects, 0x8C)?).map_err(|_| IccError::Missing(0x8C))?;
    let mut cdol1_data = Vec::with_capacity(cdol1.data_len());
    for entry in cdol1.entries() {
        let raw = entry.tag.to_bytes();
        let tag = raw.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let v = value(&objects, tag)?;
        if v.len() != usize::from(entry.len) {
            return Err(IccError::DolLength(tag));
        }
        cdol1_data.extend_from_slice(v);
    }
    let cid = fixed::<1>(&objects, 0x9F27)?[0];
    if cid >> 6 != 2 {
        return Err(IccError::NotArqc);
    }
    let amount = bcd_digits(&fixed::<6>(&objects, 0x9F02)?).ok_or(IccError::Amount)?;
    let currency = bcd_digits(&fixed::<2>(&objects, 0x5F2A)?).ok_or(IccError::Missing(0x5F2A))?;
    Ok(IccData {
        arqc: fixed(&objects, 0x9F26)?,
        cid,
        atc: fixed(&objects, 0x9F36)?,
        cdol1_data,
        amount_fen: amount.parse().map_err(|_| IccError::Amount)?,
        currency,
    })
}
