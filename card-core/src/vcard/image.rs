//! The card image: a readable TOML file describing one virtual card (its ATR, the SSSE items given
//! semantically, the PIN, the test keys and the PBOC debit application), and its validation into
//! the typed [`CardImage`] the card runs on.
//!
//! The format is documented in `fixtures/cards/README.md`. Parsing takes a `&str`: reading the
//! file is the caller's business (card-core does no I/O). Every field is checked here, so the card
//! itself never meets a malformed value; errors name the field, never its value (the values are
//! personal data or keys).

use std::fmt;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::fs::{Ef, Record};

/// Longest ATR (ISO/IEC 7816-3 §8.2: TS + 32 bytes).
pub const ATR_LEN_MAX: usize = 33;
/// Largest accepted image text, in bytes (a card image is a few kilobytes).
pub const IMAGE_TEXT_LEN_MAX: usize = 64 * 1024;
/// Longest PIN in digits (ISO 9564 allows 4..=12).
pub const PIN_DIGITS_MAX: usize = 12;
/// Shortest PIN in digits.
pub const PIN_DIGITS_MIN: usize = 4;

/// Why a card image was rejected. Names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The text is not valid TOML for the image schema (message and byte span from the parser).
    #[error("card image is not valid TOML for the schema: {message} (at bytes {span:?})")]
    Toml {
        /// The parser's message.
        message: String,
        /// Byte range in the text, if known.
        span: Option<std::ops::Range<usize>>,
    },
    /// The text is longer than [`IMAGE_TEXT_LEN_MAX`].
    #[error("card image of {len_bytes} bytes exceeds {IMAGE_TEXT_LEN_MAX} bytes")]
    TooLong {
        /// Size of the text.
        len_bytes: usize,
    },
    /// A field has the wrong shape (length, digits, encoding).
    #[error("card image field `{field}`: {reason}")]
    Field {
        /// Dotted name of the field, e.g. `ssse.name`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn bad(field: &'static str, reason: &'static str) -> ImageError {
    ImageError::Field { field, reason }
}

/// The card's generation, from EF05 tag 03 规范版本 (ssc-card.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// `1.00`: no 姓名扩展, EF06 records 1..=6 in tag order.
    V1,
    /// `2.00`/`2.01`: EF06 record 3 is 姓名扩展; no authentication for EF05/EF06.
    V2,
    /// `3.00`: as 2.00, plus EXTERNAL AUTHENTICATE (key `0A`) before EF06 reads.
    V3,
}

/// A validated card image.
pub struct CardImage {
    pub(crate) label: String,
    pub(crate) atr: Vec<u8>,
    pub(crate) t0_get_response: bool,
    pub(crate) generation: Generation,
    pub(crate) algorithm_id: Option<u8>,
    pub(crate) card_id: [u8; 16],
    pub(crate) ef05: Ef,
    pub(crate) ef06: Ef,
    pub(crate) pin: Zeroizing<Vec<u8>>,
    pub(crate) pin_tries_max: u8,
    pub(crate) pin_tries_left: u8,
    pub(crate) ext_auth_tries_max: u8,
    pub(crate) ssse_keys: Option<SsseKeys>,
    pub(crate) pboc: Option<super::pboc::PbocApp>,
}

/// SSSE authentication master keys (test keys): the card diversifies them with the 卡识别码.
pub(crate) struct SsseKeys {
    pub(crate) internal_auth_master: Zeroizing<[u8; 16]>,
    pub(crate) external_auth_master: Zeroizing<[u8; 16]>,
}

impl CardImage {
    /// Parses and validates an image from its TOML text (format: `fixtures/cards/README.md`).
    ///
    /// Errors: [`ImageError::Toml`] for syntax/schema errors, [`ImageError::Field`] for values of
    /// the wrong length or alphabet, [`ImageError::TooLong`] past [`IMAGE_TEXT_LEN_MAX`].
    pub fn from_toml_str(text: &str) -> Result<Self, ImageError> {
        if text.len() > IMAGE_TEXT_LEN_MAX {
            return Err(ImageError::TooLong {
                len_bytes: text.len(),
            });
        }
        let raw: RawImage = toml::from_str(text).map_err(|e| ImageError::Toml {
            message: mask_quoted(e.message()),
            span: e.span(),
        })?;
        raw.validate()
    }

    /// The answer to reset (2..=33 bytes).
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// The card's generation (from 规范版本).
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The image's free-text label (not personal data).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// True when the card emulates strict T=0 (61XX + GET RESPONSE for case 4 commands).
    pub fn t0_get_response(&self) -> bool {
        self.t0_get_response
    }

    /// True when the image carries the PBOC debit application.
    pub fn has_pboc(&self) -> bool {
        self.pboc.is_some()
    }
}

impl fmt::Debug for CardImage {
    /// Label and generation only: the rest is personal data or keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardImage")
            .field("label", &self.label)
            .field("generation", &self.generation)
            .field("has_pboc", &self.pboc.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    label: String,
    atr: String,
    #[serde(default)]
    t0_get_response: bool,
    ssse: RawSsse,
    pin: RawPin,
    #[serde(default)]
    keys: Option<RawKeys>,
    #[serde(default)]
    pboc: Option<super::pboc::RawPboc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsse {
    card_id: String,
    card_type: String,
    spec_version: String,
    init_org: String,
    issue_date: String,
    expiry_date: String,
    card_no: String,
    ssn: String,
    name: String,
    #[serde(default)]
    name_ext: Option<String>,
    sex: String,
    ethnicity: String,
    birthplace: String,
    birth_date: String,
    #[serde(default)]
    algorithm_id: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    value: String,
    tries_max: u8,
    #[serde(default)]
    tries_left: Option<u8>,
    #[serde(default)]
    external_auth_tries_max: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    test_keys_only: bool,
    ssse_internal_auth_master: String,
    ssse_external_auth_master: String,
}

impl RawImage {
    fn validate(self) -> Result<CardImage, ImageError> {
        let atr = hex_field("atr", &self.atr)?;
        if atr.len() < 2 || atr.len() > ATR_LEN_MAX || !matches!(atr.first(), Some(0x3B | 0x3F)) {
            return Err(bad("atr", "must be 2..=33 bytes starting with 3B or 3F"));
        }
        let s = &self.ssse;
        let generation = match s.spec_version.as_str() {
            "1.00" => Generation::V1,
            "2.00" | "2.01" => Generation::V2,
            "3.00" => Generation::V3,
            _ => return Err(bad("ssse.spec_version", "must be 1.00, 2.00, 2.01 or 3.00")),
        };
        let card_id_bytes = hex_field("ssse.card_id", &s.card_id)?;
        let card_id: [u8; 16] = card_id_bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad("ssse.card_id", "must be 32 hex digits (16 bytes)"))?;
        let ef05 = Ef::new(
            0xEF05,
            5,
            vec![
                Record::new(0x01, card_id.to_vec()),
                Record::new(0x02, ascii_exact("ssse.card_type", &s.card_type, 1)?),
                Record::new(0x03, ascii_exact("ssse.spec_version", &s.spec_version, 4)?),
                Record::new(0x04, hex_exact("ssse.init_org", &s.init_org, 12)?),
                Record::new(0x05, bcd_date("ssse.issue_date", &s.issue_date)?),
                Record::new(0x06, bcd_date("ssse.expiry_date", &s.expiry_date)?),
                Record::new(0x07, ascii_exact("ssse.card_no", &s.card_no, 9)?),
            ],
        );
        let ssn = ascii_exact("ssse.ssn", &s.ssn, 18)?;
        let name = gbk_padded("ssse.name", &s.name, 30)?;
        let sex = ascii_exact("ssse.sex", &s.sex, 1)?;
        let ethnicity = bcd_padded("ssse.ethnicity", &s.ethnicity, 1)?;
        let birthplace = bcd_padded("ssse.birthplace", &s.birthplace, 3)?;
        let birth_date = bcd_date("ssse.birth_date", &s.birth_date)?;
        let mut ef06_records = vec![Record::new(0x08, ssn), Record::new(0x09, name)];
        match (generation, &s.name_ext) {
            (Generation::V1, Some(_)) => {
                return Err(bad("ssse.name_ext", "1.00 cards have no 姓名扩展"));
            }
            (Generation::V1, None) => {}
            (_, ext) => {
                let ext = gbk_padded("ssse.name_ext", ext.as_deref().unwrap_or(""), 20)?;
                ef06_records.push(Record::new(0x4E, ext));
            }
        }
        ef06_records.extend([
            Record::new(0x0A, sex),
            Record::new(0x0B, ethnicity),
            Record::new(0x0C, birthplace),
            Record::new(0x0D, birth_date),
        ]);
        let ef06 = Ef::new(0xEF06, 6, ef06_records);

        let pin = pin_digits("pin.value", &self.pin.value)?;
        if self.pin.tries_max == 0 || self.pin.tries_max > 15 {
            return Err(bad("pin.tries_max", "must be 1..=15 (it is shown as 63CX)"));
        }
        let pin_tries_left = self.pin.tries_left.unwrap_or(self.pin.tries_max);
        if pin_tries_left > self.pin.tries_max {
            return Err(bad("pin.tries_left", "must not exceed pin.tries_max"));
        }
        let ext_auth_tries_max = self.pin.external_auth_tries_max.unwrap_or(5);
        if ext_auth_tries_max == 0 || ext_auth_tries_max > 15 {
            return Err(bad("pin.external_auth_tries_max", "must be 1..=15"));
        }
        let ssse_keys = match self.keys {
            None => None,
            Some(k) => {
                if !k.test_keys_only {
                    return Err(bad(
                        "keys.test_keys_only",
                        "a card image holds test keys only; set it to true",
                    ));
                }
                Some(SsseKeys {
                    internal_auth_master: key16(
                        "keys.ssse_internal_auth_master",
                        &k.ssse_internal_auth_master,
                    )?,
                    external_auth_master: key16(
                        "keys.ssse_external_auth_master",
                        &k.ssse_external_auth_master,
                    )?,
                })
            }
        };
        if generation == Generation::V3 && ssse_keys.is_none() {
            return Err(bad(
                "keys",
                "a 3.00 card needs its SSSE authentication keys",
            ));
        }
        let pboc = self.pboc.map(super::pboc::RawPboc::validate).transpose()?;
        Ok(CardImage {
            label: self.label,
            atr,
            t0_get_response: self.t0_get_response,
            generation,
            algorithm_id: s.algorithm_id,
            card_id,
            ef05,
            ef06,
            pin,
            pin_tries_max: self.pin.tries_max,
            pin_tries_left,
            ext_auth_tries_max,
            ssse_keys,
            pboc,
        })
    }
}

/// The parser's message with every quoted value (`` `...` `` or `"..."`) replaced by `…`: serde
/// quotes the offending value, which may be an ID number, a name or a key.
fn mask_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '`' || c == '"' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push('…');
    }
    out
}

/// Hex string (spaces allowed) to bytes.
pub(crate) fn hex_field(field: &'static str, text: &str) -> Result<Vec<u8>, ImageError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(compact).map_err(|_| bad(field, "must be an even number of hex digits"))
}

/// Hex string of exactly `len` bytes (the `cn` items that may hold hex letters).
fn hex_exact(field: &'static str, text: &str, len: usize) -> Result<Vec<u8>, ImageError> {
    let bytes = hex_field(field, text)?;
    if bytes.len() == len {
        Ok(bytes)
    } else {
        Err(bad(field, "has the wrong number of hex digits"))
    }
}

/// A 16-byte test key from 32 hex digits.
pub(crate) fn key16(field: &'static str, text: &str) -> Result<Zeroizing<[u8; 16]>, ImageError> {
    let bytes = Zeroizing::new(hex_field(field, text)?);
    let key: [u8; 16] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| bad(field, "must be 32 hex digits (a 16-byte key)"))?;
    Ok(Zeroizing::new(key))
}

/// `an` item of exactly `len` printable ASCII characters.
fn ascii_exact(field: &'static str, text: &str, len: usize) -> Result<Vec<u8>, ImageError> {
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            field,
            "has the wrong length or non-printable-ASCII characters",
        ));
    }
    Ok(text.as_bytes().to_vec())
}

/// `an` item in GBK, left-aligned, padded right with `00` to `len` bytes (ssc-card.md §3).
pub(crate) fn gbk_padded(
    field: &'static str,
    text: &str,
    len: usize,
) -> Result<Vec<u8>, ImageError> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    if unmappable {
        return Err(bad(field, "holds a character that GBK cannot encode"));
    }
    if bytes.len() > len {
        return Err(bad(field, "is longer than its field once GBK-encoded"));
    }
    let mut out = bytes.into_owned();
    out.resize(len, 0x00);
    Ok(out)
}

/// `cn` item: decimal digits packed BCD, left-aligned, padded right with `F` to `len` bytes.
pub(crate) fn bcd_padded(
    field: &'static str,
    digits: &str,
    len: usize,
) -> Result<Vec<u8>, ImageError> {
    if digits.is_empty() || digits.len() > 2 * len || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(field, "must be decimal digits that fit the field"));
    }
    let mut nibbles: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    nibbles.resize(2 * len, 0x0F);
    Ok(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// `cn` date `YYYYMMDD` in 4 BCD bytes.
pub(crate) fn bcd_date(field: &'static str, text: &str) -> Result<Vec<u8>, ImageError> {
    // A calendar date (no 20230230): the reader decodes it with the same rule (`CardDate::new`).
    let ok = text.len() == 8
        && text.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            (
                text.get(0..4).and_then(|y| y.parse::<u16>().ok()),
                text.get(4..6).and_then(|m| m.parse::<u8>().ok()),
                text.get(6..8).and_then(|d| d.parse::<u8>().ok()),
            ),
            (Some(y), Some(m), Some(d)) if crate::ssc::CardDate::new(y, m, d).is_some()
        );
    if !ok {
        return Err(bad(field, "must be a date YYYYMMDD"));
    }
    bcd_padded(field, text, 4)
}

/// The PIN's digits (values 0..=9), 4..=12 of them.
fn pin_digits(field: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>, ImageError> {
    if text.len() < PIN_DIGITS_MIN
        || text.len() > PIN_DIGITS_MAX
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad(field, "must be 4..=12 decimal digits"));
    }
    Ok(Zeroizing::new(text.bytes().map(|b| b - b'0').collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_errors_do_not_repeat_the_value() {
        let text = "label = \"x\"\natr = \"3B00\"\n[ssse]\nssn = 120101198805121236\n";
        let err = CardImage::from_toml_str(text).unwrap_err().to_string();
        assert!(!err.contains("120101198805121236"), "{err}");
        assert_eq!(
            mask_quoted("invalid type: integer `42`, expected \"a\""),
            "invalid type: integer `…`, expected \"…\""
        );
    }

    #[test]
    fn bcd_pads_with_f_and_gbk_with_00() {
        // Expected bytes worked out by hand from ssc-card.md §3 (cn: F padding; an: 00 padding).
        assert_eq!(bcd_padded("x", "01", 1).unwrap(), vec![0x01]);
        assert_eq!(bcd_padded("x", "123", 3).unwrap(), vec![0x12, 0x3F, 0xFF]);
        // Python: "王喆".encode("gbk").hex() == "cdf586b4"
        let name = gbk_padded("x", "王喆", 6).unwrap();
        assert_eq!(name, vec![0xCD, 0xF5, 0x86, 0xB4, 0, 0]);
        assert!(gbk_padded("x", "王喆", 3).is_err());
        assert!(bcd_padded("x", "12a", 2).is_err());
        assert!(bcd_date("x", "20231301").is_err());
    }
}
