//! The records of EF05 (发卡机构数据文件) and EF06 (持卡人基本信息文件), read by tag, and their
//! decoding into [`CardIdentity`] and [`Holder`] (ssc-card.md §3).
//!
//! Each record comes back as `tag | len | value` (1-byte tag, 1-byte length). `cn` values are
//! BCD padded right with `F`; `an` values are ASCII or GBK padded right with `00`. Decoding is
//! strict: a bad BCD digit, an impossible date or an undecodable name is a typed error naming
//! the tag, never a replacement character.

use std::collections::BTreeMap;
use std::fmt;

use crate::apdu::CommandApdu;

use super::SscError;
use super::types::{CardDate, CardGeneration, CardId, PersonName, Sex, SocialSecurityNumber};

/// EF05 tags in read order: 卡识别码, 卡类别, 规范版本, 初始化机构编号, 发卡日期, 卡有效期, 卡号.
pub const EF05_TAGS: [u8; 7] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];
/// EF06 tags in read order: 社会保障号码, 姓名, 姓名扩展, 性别, 民族, 出生地, 出生日期.
pub const EF06_TAGS: [u8; 7] = [0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D];
/// Bytes of 卡号 kept: "读取卡号时只读前9位" (ssc-card.md §3 note).
pub const CARD_NUMBER_LEN: usize = 9;

/// The value length of a record by its tag (ssc-card.md §3 tables); `None` for other tags.
pub const fn spec_len(tag: u8) -> Option<u8> {
    Some(match tag {
        0x01 => 16,
        0x02 => 1,
        0x03 => 4,
        0x04 => 12,
        0x05 | 0x06 => 4,
        0x07 => 9,
        0x08 => 18,
        0x09 => 30,
        0x4E => 20,
        0x0A | 0x0B => 1,
        0x0C => 3,
        0x0D => 4,
        _ => return None,
    })
}

/// READ RECORD by tag: `00 B2 <tag> 00 <Le = len + 2>` (ssc-card.md §4, e.g. `00B2080014`).
/// `None` for a tag not in the tables.
pub fn read_record_command(tag: u8) -> Option<CommandApdu> {
    let len = spec_len(tag)?;
    CommandApdu::new(0x00, 0xB2, tag, 0x00)
        .with_ne(u32::from(len) + 2)
        .ok()
}

/// Raw records keyed by tag, each the data of a READ RECORD answer (`tag | len | value`).
/// `Debug` shows the tags only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RecordSet {
    records: BTreeMap<u8, Vec<u8>>,
}

impl RecordSet {
    /// No records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores the answer to the READ RECORD of `tag`.
    pub fn insert(&mut self, tag: u8, data: impl Into<Vec<u8>>) {
        self.records.insert(tag, data.into());
    }

    /// The raw answer for `tag`.
    pub fn get(&self, tag: u8) -> Option<&[u8]> {
        self.records.get(&tag).map(Vec::as_slice)
    }

    /// The checked value of `tag`, or `None` if it was not read.
    fn value(&self, tag: u8) -> Result<Option<&[u8]>, SscError> {
        self.get(tag)
            .map(|data| record_value(tag, data))
            .transpose()
    }

    fn required(&self, tag: u8) -> Result<&[u8], SscError> {
        self.value(tag)?.ok_or(SscError::RecordMissing { tag })
    }
}

impl fmt::Debug for RecordSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.records.keys().map(|t| format!("{t:02X}")))
            .finish()
    }
}

/// Checks `tag | len | value` and returns the value, whose length must match the table.
/// 卡号 (07) may be longer than 9 bytes, or cut short by the Le we sent: its first 9 bytes are
/// kept.
///
/// Errors: [`SscError::RecordTag`], [`SscError::RecordLength`], [`SscError::FieldLength`].
pub fn record_value(tag: u8, data: &[u8]) -> Result<&[u8], SscError> {
    let [found, declared, value @ ..] = data else {
        return Err(SscError::RecordLength {
            tag,
            declared: 0,
            actual: data.len(),
        });
    };
    if *found != tag {
        return Err(SscError::RecordTag {
            expected: tag,
            found: *found,
        });
    }
    let declared = usize::from(*declared);
    let expected = spec_len(tag).map_or(declared, usize::from);
    if tag == 0x07 {
        if value.len() >= CARD_NUMBER_LEN && declared >= CARD_NUMBER_LEN {
            return Ok(&value[..CARD_NUMBER_LEN]);
        }
    } else if value.len() != declared {
        return Err(SscError::RecordLength {
            tag,
            declared,
            actual: value.len(),
        });
    }
    if value.len() != expected {
        return Err(SscError::FieldLength {
            tag,
            expected,
            actual: value.len(),
        });
    }
    Ok(value)
}

/// What EF05 says about the card (ssc-card.md §3). No personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardIdentity {
    /// 卡识别码 (tag 01).
    pub card_id: CardId,
    /// 卡类别 (tag 02), one `an` character (meaning of values not published).
    pub card_type: String,
    /// 规范版本 (tag 03), e.g. `"3.00"`.
    pub spec_version: String,
    /// The generation derived from [`Self::spec_version`].
    pub generation: CardGeneration,
    /// 初始化机构编号 (tag 04), 24 upper-case hex characters.
    pub issuing_org: String,
    /// 发卡日期 (tag 05).
    pub issue_date: CardDate,
    /// 卡有效期 (tag 06); `None` when stored as all `FF` or all `00` (no expiry).
    pub expiry: Option<CardDate>,
    /// 卡号 (tag 07), the 9 ASCII characters printed on the card face.
    pub card_number: String,
}

impl CardIdentity {
    /// Decodes the EF05 records 01..=07 (all required).
    ///
    /// Errors: [`SscError::RecordMissing`] and the decoding errors of each field.
    pub fn from_records(records: &RecordSet) -> Result<Self, SscError> {
        let card_id = records.required(0x01)?;
        let card_id =
            CardId::new(
                <[u8; 16]>::try_from(card_id).map_err(|_| SscError::FieldLength {
                    tag: 0x01,
                    expected: 16,
                    actual: card_id.len(),
                })?,
            );
        let spec_version = decode_an(0x03, records.required(0x03)?)?;
        let expiry = records.required(0x06)?;
        let expiry = if expiry.iter().all(|b| *b == 0xFF) || expiry.iter().all(|b| *b == 0) {
            None
        } else {
            Some(decode_date(0x06, expiry)?)
        };
        Ok(Self {
            card_id,
            card_type: decode_an(0x02, records.required(0x02)?)?,
            generation: CardGeneration::from_spec_version(&spec_version),
            spec_version,
            issuing_org: hex::encode_upper(records.required(0x04)?),
            issue_date: decode_date(0x05, records.required(0x05)?)?,
            expiry,
            card_number: decode_an(0x07, records.required(0x07)?)?,
        })
    }
}

/// What EF06 says about the holder (ssc-card.md §3). Personal data: `Debug` masks the number,
/// the name, the birthplace and the birth date.
#[derive(Clone, PartialEq, Eq)]
pub struct Holder {
    /// 社会保障号码 (tag 08).
    pub ssn: SocialSecurityNumber,
    /// 姓名 (tag 09) followed by 姓名扩展 (tag 4E) when present.
    pub name: PersonName,
    /// 性别 (tag 0A).
    pub sex: Sex,
    /// 民族 (tag 0B), the GB 3304 code (1 = 汉); `None` on cards without the record.
    pub ethnicity: Option<u8>,
    /// 出生地 (tag 0C), 6-digit administrative division code; `None` if absent.
    pub birthplace: Option<String>,
    /// 出生日期 (tag 0D); `None` if absent.
    pub birth_date: Option<CardDate>,
}

impl Holder {
    /// Decodes the EF06 records: 08, 09 and 0A required; 4E, 0B, 0C, 0D optional (absent on
    /// 1st-generation cards; 4E absent means no name extension).
    ///
    /// Errors: [`SscError::RecordMissing`], [`SscError::IdNumberFormat`] and the decoding
    /// errors of each field.
    pub fn from_records(records: &RecordSet) -> Result<Self, SscError> {
        let ssn = decode_an(0x08, records.required(0x08)?)?;
        let ssn = SocialSecurityNumber::new(&ssn).ok_or(SscError::IdNumberFormat)?;
        let mut name = decode_gbk(0x09, records.required(0x09)?)?;
        if let Some(extension) = records.value(0x4E)? {
            name.push_str(&decode_gbk(0x4E, extension)?);
        }
        let sex = records.required(0x0A)?;
        let ethnicity = records
            .value(0x0B)?
            .map(|v| decode_cn(0x0B, v))
            .transpose()?
            .map(|digits| {
                digits
                    .parse::<u8>()
                    .map_err(|_| SscError::Bcd { tag: 0x0B })
            })
            .transpose()?;
        Ok(Self {
            ssn,
            name: PersonName::new(name),
            sex: Sex::from_byte(sex[0]),
            ethnicity,
            birthplace: records
                .value(0x0C)?
                .map(|v| decode_cn(0x0C, v))
                .transpose()?,
            birth_date: records
                .value(0x0D)?
                .map(|v| decode_date(0x0D, v))
                .transpose()?,
        })
    }
}

impl fmt::Debug for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |present: bool| if present { "****" } else { "-" };
        f.debug_struct("Holder")
            .field("ssn", &self.ssn)
            .field("name", &self.name)
            .field("sex", &self.sex)
            .field("ethnicity", &self.ethnicity)
            .field("birthplace", &hidden(self.birthplace.is_some()))
            .field("birth_date", &hidden(self.birth_date.is_some()))
            .finish()
    }
}

/// `cn`: BCD digits, then only `F` nibbles. Errors: [`SscError::Bcd`].
pub fn decode_cn(tag: u8, value: &[u8]) -> Result<String, SscError> {
    let mut digits = String::with_capacity(value.len() * 2);
    let mut padding = false;
    for nibble in value.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
        match nibble {
            0..=9 if !padding => digits.push(char::from(b'0' + nibble)),
            0x0F => padding = true,
            _ => return Err(SscError::Bcd { tag }),
        }
    }
    Ok(digits)
}

/// `cn` `YYYYMMDD` in 4 bytes. Errors: [`SscError::Bcd`], [`SscError::Date`].
pub fn decode_date(tag: u8, value: &[u8]) -> Result<CardDate, SscError> {
    let digits = decode_cn(tag, value)?;
    let number = |range: std::ops::Range<usize>| digits.get(range).and_then(|s| s.parse().ok());
    if digits.len() != 8 {
        return Err(SscError::Date { tag });
    }
    match (number(0..4), number(4..6), number(6..8)) {
        (Some(year), Some(month), Some(day)) => {
            let month = u8::try_from(month).map_err(|_| SscError::Date { tag })?;
            let day = u8::try_from(day).map_err(|_| SscError::Date { tag })?;
            CardDate::new(year, month, day).ok_or(SscError::Date { tag })
        }
        _ => Err(SscError::Date { tag }),
    }
}

/// `an` ASCII: trailing `00` padding stripped; printable ASCII only.
/// Errors: [`SscError::Padding`] for a `00` inside the text, [`SscError::Ascii`].
pub fn decode_an(tag: u8, value: &[u8]) -> Result<String, SscError> {
    let text = strip_padding(tag, value)?;
    if !text.iter().all(|b| (0x20..=0x7E).contains(b)) {
        return Err(SscError::Ascii { tag });
    }
    Ok(text.iter().map(|b| char::from(*b)).collect())
}

/// `an` GBK (姓名, 姓名扩展): trailing `00` padding stripped, then decoded with encoding_rs's GBK
/// decoder without replacement. That decoder is the WHATWG one, which also accepts GB18030
/// four-byte sequences: a rare character outside GBK (e.g. `𠀀`, `95 32 82 36`) decodes to the
/// right character rather than failing. Errors: [`SscError::Padding`], [`SscError::Gbk`].
pub fn decode_gbk(tag: u8, value: &[u8]) -> Result<String, SscError> {
    let text = strip_padding(tag, value)?;
    encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(text)
        .map(std::borrow::Cow::into_owned)
        .ok_or(SscError::Gbk { tag })
}

/// Strips trailing `00`; a `00` left inside the text is an error (GBK and GB18030 never use
/// `00` inside a character).
fn strip_padding(tag: u8, value: &[u8]) -> Result<&[u8], SscError> {
    let end = value.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let text = &value[..end];
    if text.contains(&0) {
        return Err(SscError::Padding { tag });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_and_padding_rules() {
        assert_eq!(decode_cn(0x0C, &[0x44, 0x12, 0x25]).unwrap(), "441225");
        assert_eq!(decode_cn(0x0C, &[0x44, 0x1F, 0xFF]).unwrap(), "441");
        assert_eq!(
            decode_cn(0x0C, &[0x4F, 0x12]),
            Err(SscError::Bcd { tag: 0x0C })
        );
        assert_eq!(decode_cn(0x0C, &[0x4A]), Err(SscError::Bcd { tag: 0x0C }));
        assert_eq!(
            decode_date(0x05, &[0x20, 0x19, 0x02, 0x30]),
            Err(SscError::Date { tag: 0x05 })
        );
        assert_eq!(decode_an(0x03, b"3.00").unwrap(), "3.00");
        assert_eq!(decode_an(0x07, b"R4770\0\0\0\0").unwrap(), "R4770");
        assert_eq!(
            decode_an(0x07, b"R4\x0070\0"),
            Err(SscError::Padding { tag: 0x07 })
        );
        assert_eq!(decode_an(0x02, &[0x80]), Err(SscError::Ascii { tag: 0x02 }));
    }

    #[test]
    fn read_commands_use_le_len_plus_2() {
        // ssc-card.md §4 examples.
        for (tag, apdu) in [
            (0x08, "00B2080014"),
            (0x09, "00B2090020"),
            (0x0A, "00B20A0003"),
            (0x0B, "00B20B0003"),
            (0x0C, "00B20C0005"),
            (0x0D, "00B20D0006"),
            (0x4E, "00B24E0016"),
        ] {
            assert_eq!(
                read_record_command(tag).unwrap().to_bytes(),
                hex::decode(apdu).unwrap()
            );
        }
        assert!(read_record_command(0x55).is_none());
    }

    #[test]
    fn record_framing_is_checked() {
        assert_eq!(record_value(0x02, &[0x02, 0x01, b'3']).unwrap(), b"3");
        assert_eq!(
            record_value(0x02, &[0x03, 0x01, b'3']),
            Err(SscError::RecordTag {
                expected: 0x02,
                found: 0x03
            })
        );
        assert_eq!(
            record_value(0x02, &[0x02, 0x02, b'3']),
            Err(SscError::RecordLength {
                tag: 0x02,
                declared: 2,
                actual: 1
            })
        );
        assert_eq!(
            record_value(0x03, &[0x03, 0x02, b'3', b'.']),
            Err(SscError::FieldLength {
                tag: 0x03,
                expected: 4,
                actual: 2
            })
        );
        // A 12-byte 卡号 cut to 9 by our Le: the first 9 are kept.
        assert_eq!(
            record_value(0x07, b"\x07\x0CBA0010547").unwrap(),
            b"BA0010547"
        );
        assert!(record_value(0x07, &[]).is_err());
    }
}
