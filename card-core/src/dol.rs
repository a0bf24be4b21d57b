//! Data object lists (PDOL `9F38`, CDOL1 `8C`, CDOL2 `8D`, DDOL `9F49`) and the Application File
//! Locator (AFL, tag `94`).
//!
//! A DOL is an ordered list of (tag, length) pairs asking the terminal for data; the terminal
//! answers with the values concatenated in the same order, with no tags or lengths (EMV 4.4
//! Book 3 §5.4). Duplicate tags are legal and kept. Filling follows §5.4 exactly: a tag the
//! terminal does not have, or a constructed tag, is sent as zeros; a value of another length is
//! cut or padded according to its format (`n` keeps the rightmost digits and pads with leading
//! zeros, `cn` pads with trailing `F`, everything else keeps the leftmost bytes and pads with
//! trailing zeros).

use std::collections::BTreeMap;

use crate::tlv::{Tag, TlvError, read_tag};

/// Most bytes in one DOL (the value of a DOL tag fits one short record: 252 bytes).
pub const DOL_LEN_MAX: usize = 252;
/// Most bytes of data one DOL may ask for: it must fit a short Lc.
pub const DOL_DATA_LEN_MAX: usize = 255;
/// Most bytes in one AFL (63 entries of 4 bytes; EMV Book 3 Annex A, tag `94` var. up to 252).
pub const AFL_LEN_MAX: usize = 252;

/// Why a DOL or an AFL is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DolError {
    /// A DOL longer than [`DOL_LEN_MAX`], or an AFL longer than [`AFL_LEN_MAX`].
    #[error("list of {len_bytes} bytes exceeds its limit")]
    TooLong {
        /// Bytes given.
        len_bytes: usize,
    },
    /// A tag in the DOL is malformed.
    #[error("DOL tag: {0}")]
    Tag(#[from] TlvError),
    /// The DOL ends after a tag, before its one-byte length.
    #[error("DOL entry at offset {offset} has no length byte")]
    LengthMissing {
        /// Offset of the entry's tag.
        offset: usize,
    },
    /// A DOL length in long form (DOL lengths are one byte below 80, Book 3 §5.4).
    #[error("DOL entry at offset {offset} has a long-form length byte")]
    LengthLongForm {
        /// Offset of the length byte.
        offset: usize,
    },
    /// The DOL asks for more than [`DOL_DATA_LEN_MAX`] bytes in all.
    #[error("DOL asks for {len_bytes} bytes, more than {DOL_DATA_LEN_MAX}")]
    DataTooLong {
        /// Sum of the entry lengths.
        len_bytes: usize,
    },
    /// The AFL length is not a multiple of 4.
    #[error("AFL of {len_bytes} bytes is not a whole number of 4-byte entries")]
    AflLength {
        /// Bytes given.
        len_bytes: usize,
    },
    /// An AFL entry is invalid: SFI outside 1..=30 or low bits set, first record 0, first after
    /// last, or more offline-authentication records than records.
    #[error("AFL entry {index} is invalid ({reason})")]
    AflEntry {
        /// Zero-based entry index.
        index: usize,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// One DOL entry: the tag asked for and the length wanted, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DolEntry {
    /// The data object asked for.
    pub tag: Tag,
    /// Bytes wanted (0..=127).
    pub len: u8,
}

/// A data object list, in card order, duplicates kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dol {
    entries: Vec<DolEntry>,
}

impl Dol {
    /// Parses the value of a DOL tag (`9F38`, `8C`, `8D`, `9F49`).
    ///
    /// Errors: [`DolError::TooLong`], [`DolError::Tag`], [`DolError::LengthMissing`],
    /// [`DolError::LengthLongForm`], [`DolError::DataTooLong`].
    pub fn parse(bytes: &[u8]) -> Result<Self, DolError> {
        if bytes.len() > DOL_LEN_MAX {
            return Err(DolError::TooLong {
                len_bytes: bytes.len(),
            });
        }
        let mut entries = Vec::new();
        let mut pos = 0;
        let mut data_len = 0_usize;
        while pos < bytes.len() {
            let (tag, tag_len) = read_tag(&bytes[pos..], pos)?;
            let Some(&len) = bytes.get(pos + tag_len) else {
                return Err(DolError::LengthMissing { offset: pos });
            };
            if len >= 0x80 {
                return Err(DolError::LengthLongForm {
                    offset: pos + tag_len,
                });
            }
            data_len += usize::from(len);
            entries.push(DolEntry { tag, len });
            pos += tag_len + 1;
        }
        if data_len > DOL_DATA_LEN_MAX {
            return Err(DolError::DataTooLong {
                len_bytes: data_len,
            });
        }
        Ok(Self { entries })
    }

    /// A DOL from entries (for building card images and tests). Errors:
    /// [`DolError::DataTooLong`], [`DolError::LengthLongForm`].
    pub fn from_entries(entries: Vec<DolEntry>) -> Result<Self, DolError> {
        if let Some(index) = entries.iter().position(|e| e.len >= 0x80) {
            return Err(DolError::LengthLongForm { offset: index });
        }
        let data_len: usize = entries.iter().map(|e| usize::from(e.len)).sum();
        if data_len > DOL_DATA_LEN_MAX {
            return Err(DolError::DataTooLong {
                len_bytes: data_len,
            });
        }
        Ok(Self { entries })
    }

    /// The entries, in card order.
    pub fn entries(&self) -> &[DolEntry] {
        &self.entries
    }

    /// Total bytes the filled DOL will take.
    pub fn data_len(&self) -> usize {
        self.entries.iter().map(|e| usize::from(e.len)).sum()
    }

    /// Encodes the DOL (tags and one-byte lengths) as the card stores it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in &self.entries {
            out.extend_from_slice(&entry.tag.to_bytes());
            out.push(entry.len);
        }
        out
    }

    /// Builds the DOL-related data: each entry's value from `source`, fitted to the entry's
    /// length by the rules of EMV Book 3 §5.4 (see the module docs). Never fails: a missing tag
    /// is zero-filled.
    pub fn fill(&self, source: &dyn DolSource) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data_len());
        for entry in &self.entries {
            let want = usize::from(entry.len);
            match source.dol_value(entry.tag) {
                Some((format, value)) if !entry.tag.is_constructed() => {
                    fit(format, value, want, &mut out);
                }
                _ => out.resize(out.len() + want, 0),
            }
        }
        out
    }
}

/// How a data element is formatted, which decides how it is cut or padded (EMV Book 3 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// `n`: BCD digits, right-justified, leading zeros (amounts, dates, codes).
    Numeric,
    /// `cn`: BCD digits, left-justified, trailing `F` (the PAN).
    CompressedNumeric,
    /// `a`, `an`, `ans`, `b` and anything else: left-justified, trailing zeros.
    Other,
}

impl DataFormat {
    /// The format of the common terminal and card data elements (EMV Book 3 Annex A); `Other`
    /// for tags not listed.
    pub fn of(tag: Tag) -> Self {
        match tag.to_u32() {
            // Amount authorised/other, currency/country codes, date, type, time, CVM-related
            // and PBOC/UnionPay numeric elements.
            0x9F02 | 0x9F03 | 0x5F2A | 0x9F1A | 0x9A | 0x9C | 0x9F21 | 0x9F35 | 0x5F36 | 0x9F41
            | 0x9F15 | 0x9F39 | 0x5F24 | 0x5F25 | 0x5F28 | 0x5F34 | 0x9F42 | 0x9F44 | 0x9F01
            | 0x9F3C | 0x9F3D => Self::Numeric,
            0x5A => Self::CompressedNumeric,
            _ => Self::Other,
        }
    }
}

/// Where DOL data comes from: the terminal's data (and any card data it already read).
pub trait DolSource {
    /// The value and format of `tag`, if the terminal has it.
    fn dol_value(&self, tag: Tag) -> Option<(DataFormat, &[u8])>;
}

/// The terminal's data elements (amount `9F02`, date `9A`, unpredictable number `9F37`, ...),
/// by tag. `Debug` shows the tags only.
#[derive(Clone, Default)]
pub struct TerminalData {
    values: BTreeMap<Tag, (DataFormat, Vec<u8>)>,
}

impl TerminalData {
    /// No data: every DOL entry will be zero-filled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `tag` with its format from [`DataFormat::of`].
    pub fn set(&mut self, tag: Tag, value: impl Into<Vec<u8>>) -> &mut Self {
        self.set_with_format(tag, DataFormat::of(tag), value)
    }

    /// Sets `tag` with an explicit format.
    pub fn set_with_format(
        &mut self,
        tag: Tag,
        format: DataFormat,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.values.insert(tag, (format, value.into()));
        self
    }

    /// Builder form of [`Self::set`].
    pub fn with(mut self, tag: Tag, value: impl Into<Vec<u8>>) -> Self {
        self.set(tag, value);
        self
    }

    /// The value of `tag`, if set.
    pub fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.values.get(&tag).map(|(_, v)| v.as_slice())
    }
}

impl DolSource for TerminalData {
    fn dol_value(&self, tag: Tag) -> Option<(DataFormat, &[u8])> {
        self.values.get(&tag).map(|(f, v)| (*f, v.as_slice()))
    }
}

impl std::fmt::Debug for TerminalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// Appends `value` fitted to `want` bytes by the rules of EMV Book 3 §5.4.
fn fit(format: DataFormat, value: &[u8], want: usize, out: &mut Vec<u8>) {
    let have = value.len();
    match format {
        DataFormat::Numeric => {
            if have >= want {
                out.extend_from_slice(&value[have - want..]);
            } else {
                out.resize(out.len() + (want - have), 0);
                out.extend_from_slice(value);
            }
        }
        DataFormat::CompressedNumeric | DataFormat::Other => {
            let pad = if format == DataFormat::CompressedNumeric {
                0xFF
            } else {
                0x00
            };
            let keep = have.min(want);
            out.extend_from_slice(&value[..keep]);
            out.resize(out.len() + (want - keep), pad);
        }
    }
}

/// One AFL entry: records `first_record..=last_record` of the file `sfi`, of which the first
/// `oda_records` take part in offline data authentication (EMV Book 3 §10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AflEntry {
    /// Short file identifier, 1..=30.
    pub sfi: u8,
    /// First record number, at least 1.
    pub first_record: u8,
    /// Last record number, at least `first_record`.
    pub last_record: u8,
    /// Records (from the first) used in offline data authentication.
    pub oda_records: u8,
}

impl AflEntry {
    /// The READ RECORD P2 for this file: `SFI << 3 | 4` ("P1 is a record number").
    pub fn read_record_p2(self) -> u8 {
        (self.sfi << 3) | 0x04
    }

    /// Record numbers of this entry, in order.
    pub fn records(self) -> std::ops::RangeInclusive<u8> {
        self.first_record..=self.last_record
    }
}

/// Parses an AFL (the value of tag `94`, or the tail of a format-1 GPO response).
///
/// Errors: [`DolError::TooLong`], [`DolError::AflLength`], [`DolError::AflEntry`].
pub fn parse_afl(bytes: &[u8]) -> Result<Vec<AflEntry>, DolError> {
    if bytes.len() > AFL_LEN_MAX {
        return Err(DolError::TooLong {
            len_bytes: bytes.len(),
        });
    }
    if !bytes.len().is_multiple_of(4) {
        return Err(DolError::AflLength {
            len_bytes: bytes.len(),
        });
    }
    let mut entries = Vec::with_capacity(bytes.len() / 4);
    for (index, chunk) in bytes.chunks_exact(4).enumerate() {
        let [b0, first_record, last_record, oda_records] = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let sfi = b0 >> 3;
        let reason = if b0 & 0x07 != 0 {
            Some("bits 3-1 of byte 1 are not zero")
        } else if !(1..=30).contains(&sfi) {
            Some("SFI outside 1..=30")
        } else if first_record == 0 {
            Some("first record is 0")
        } else if first_record > last_record {
            Some("first record after last record")
        } else if oda_records > last_record - first_record + 1 {
            Some("more ODA records than records")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(DolError::AflEntry { index, reason });
        }
        entries.push(AflEntry {
            sfi,
            first_record,
            last_record,
            oda_records,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn dol_keeps_order_and_duplicates() {
        // A PDOL with 9F66 twice (python-emv #22 shape).
        let dol = Dol::parse(&h("9F66 04 9F02 06 9F66 04 5F2A 02")).unwrap();
        let tags: Vec<u32> = dol.entries().iter().map(|e| e.tag.to_u32()).collect();
        assert_eq!(tags, [0x9F66, 0x9F02, 0x9F66, 0x5F2A]);
        assert_eq!(dol.data_len(), 16);
        assert_eq!(dol.to_bytes(), h("9F66 04 9F02 06 9F66 04 5F2A 02"));
    }

    #[test]
    fn fill_follows_book_3_section_5_4() {
        let data = TerminalData::new()
            .with(Tag::known(0x9F02), h("000000001000")) // n12, exact
            .with(Tag::known(0x5F2A), h("0156")) // n3 given in 2 bytes, asked in 3
            .with(Tag::known(0x9A), h("20250131")) // n6 given in 4 bytes, asked in 3
            .with(Tag::known(0x9F37), h("11223344")) // b, asked in 2: leftmost kept
            .with(Tag::known(0x5A), h("6221")) // cn, asked in 4: trailing FF
            .with(Tag::known(0x9F4E), b"AB".to_vec()); // ans, asked in 4: trailing 00
        let dol = Dol::parse(&h(
            "9F02 06 5F2A 03 9A 03 9F37 02 5A 04 9F4E 04 9F1A 02 70 02",
        ))
        .unwrap();
        let filled = dol.fill(&data);
        assert_eq!(
            filled,
            h("000000001000 000156 250131 1122 6221FFFF 41420000 0000 0000")
        );
    }

    #[test]
    fn dol_errors_are_typed() {
        assert_eq!(
            Dol::parse(&h("9F02")),
            Err(DolError::LengthMissing { offset: 0 })
        );
        assert_eq!(
            Dol::parse(&h("9F02 81")),
            Err(DolError::LengthLongForm { offset: 2 })
        );
        assert!(matches!(Dol::parse(&h("9F")), Err(DolError::Tag(_))));
        assert!(matches!(
            Dol::parse(&h("9F02 7F 9F03 7F 9F04 7F")),
            Err(DolError::DataTooLong { len_bytes: 381 })
        ));
    }

    #[test]
    fn afl_entries_parse_and_validate() {
        // SFI 1 records 1-2 (1 for ODA), SFI 2 record 1, SFI 3 records 1-4.
        let afl = parse_afl(&h("08010201 10010100 18010400")).unwrap();
        assert_eq!(afl.len(), 3);
        assert_eq!(
            afl[0],
            AflEntry {
                sfi: 1,
                first_record: 1,
                last_record: 2,
                oda_records: 1
            }
        );
        assert_eq!(afl[2].read_record_p2(), 0x1C);
        assert_eq!(afl[2].records().count(), 4);
        assert_eq!(
            parse_afl(&h("080102")),
            Err(DolError::AflLength { len_bytes: 3 })
        );
        for (bad, index) in [
            ("00010100", 0),          // SFI 0
            ("F8010100", 0),          // SFI 31
            ("09010100", 0),          // low bits set
            ("08010100 08000100", 1), // first record 0
            ("08030200", 0),          // first > last
            ("08010203", 0),          // 3 ODA records of 2
        ] {
            assert!(
                matches!(parse_afl(&h(bad)), Err(DolError::AflEntry { index: i, .. }) if i == index),
                "{bad}"
            );
        }
    }
}
