//! Value types of the SSSE basic files: the 卡识别码, dates, the card generation, and the
//! masking wrappers for personal data (社会保障号码, 姓名) whose `Debug` never shows them in clear.

use std::fmt;

/// The 卡识别码 (EF05 tag 01, 16 bytes): 6 BCD digits of the issuing region's administrative
/// division code, the MOHRSS RID `D156000005`, then 8 card-specific bytes (ssc-card.md §3).
/// Not personal data; `Debug` and `Display` show the 32 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CardId([u8; 16]);

impl CardId {
    /// From the 16 raw bytes.
    pub const fn new(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// 32 upper-case hex characters (`441800D1560000053030737878EC1A84`).
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// 发卡地区行政区划代码: the first 6 hex characters (`441800`), the first field of the
    /// `iReadCardBas` output.
    pub fn region_code(&self) -> String {
        hex::encode_upper(&self.0[..3])
    }

    /// The last 8 bytes: the diversification factor of the card's SM4 keys (docs/ssc-auth-model.md,
    /// model).
    pub fn diversification_factor(&self) -> [u8; 8] {
        let mut out = [0; 8];
        out.copy_from_slice(&self.0[8..]);
        out
    }
}

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardId({self})")
    }
}

/// A calendar date stored as 4 BCD bytes `YYYYMMDD` (发卡日期, 卡有效期, 出生日期).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CardDate {
    year: u16,
    month: u8,
    day: u8,
}

impl CardDate {
    /// A date; `None` unless it exists in the Gregorian calendar (years 1..=9999).
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (year >= 1 && (1..=days).contains(&day)).then_some(Self { year, month, day })
    }

    /// Year.
    pub const fn year(self) -> u16 {
        self.year
    }
    /// Month, 1..=12.
    pub const fn month(self) -> u8 {
        self.month
    }
    /// Day of the month.
    pub const fn day(self) -> u8 {
        self.day
    }
}

impl fmt::Display for CardDate {
    /// `YYYYMMDD`, as the unified reader interface prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

/// The card generation, from 规范版本 (EF05 tag 03): its first character (ssc-card.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CardGeneration {
    /// `1.xx`: first generation; EF06 holds only 08/09/0A.
    First,
    /// `2.xx`: second generation; EF05/EF06 readable in clear.
    Second,
    /// `3.xx`: third generation; EF06 needs EXTERNAL AUTHENTICATE with RKSSSE first.
    Third,
    /// Any other version string, kept as read.
    Unknown(String),
}

impl CardGeneration {
    /// From the 规范版本 text (`"3.00"` → `Third`).
    pub fn from_spec_version(version: &str) -> Self {
        match version.as_bytes().first() {
            Some(b'1') => Self::First,
            Some(b'2') => Self::Second,
            Some(b'3') => Self::Third,
            _ => Self::Unknown(version.to_owned()),
        }
    }

    /// True when EF06 can only be read after EXTERNAL AUTHENTICATE (3.0 cards).
    pub fn needs_external_authentication(&self) -> bool {
        matches!(self, Self::Third)
    }
}

/// 社会保障号码 (EF06 tag 08, = 公民身份号码): 18 characters, 17 digits and a check character
/// `0-9`/`X` (15 digits accepted for old numbers). `Debug` shows only the first 6 and the last 4
/// characters: `110101********1234`.
#[derive(Clone, PartialEq, Eq)]
pub struct SocialSecurityNumber(String);

impl SocialSecurityNumber {
    /// Checks the shape (not the GB 11643 check digit: see [`Self::check_digit_valid`]).
    /// `None` if the shape is wrong.
    pub fn new(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let shape_ok = match bytes.len() {
            18 => {
                bytes[..17].iter().all(u8::is_ascii_digit)
                    && (bytes[17].is_ascii_digit() || bytes[17] == b'X' || bytes[17] == b'x')
            }
            15 => bytes.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        shape_ok.then(|| Self(text.to_ascii_uppercase()))
    }

    /// The number in clear. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True if the 18th character is the GB 11643-1999 ISO 7064 MOD 11-2 check character of the
    /// first 17 digits; `false` for 15-digit numbers (they have none).
    pub fn check_digit_valid(&self) -> bool {
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        const CHECK: &[u8; 11] = b"10X98765432";
        let bytes = self.0.as_bytes();
        if bytes.len() != 18 {
            return false;
        }
        let sum: u32 = bytes[..17]
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        let index = usize::try_from(sum % 11).unwrap_or(0);
        CHECK[index] == bytes[17]
    }
}

impl fmt::Debug for SocialSecurityNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_middle(&self.0, 6, 4))
    }
}

/// 姓名 (EF06 tag 09 followed by the 姓名扩展 tag 4E). `Debug` shows the first character and one
/// `*` per other character: `张*`, `王**`.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Wraps a decoded name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name in clear. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        if let Some(first) = chars.next() {
            write!(f, "{first}")?;
        }
        for _ in chars {
            f.write_str("*")?;
        }
        Ok(())
    }
}

/// 性别 (EF06 tag 0A), GB/T 2261.1 codes stored as one ASCII digit (ssc-card.md §3, codes **M**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// `0` 未知的性别.
    NotKnown,
    /// `1` 男.
    Male,
    /// `2` 女.
    Female,
    /// `9` 未说明的性别.
    NotStated,
    /// Any other byte, kept as read.
    Other(u8),
}

impl Sex {
    /// From the stored byte.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            b'0' => Self::NotKnown,
            b'1' => Self::Male,
            b'2' => Self::Female,
            b'9' => Self::NotStated,
            other => Self::Other(other),
        }
    }
}

/// `text` with all but the first `head` and last `tail` characters replaced by `*`; all `*` if
/// it is too short to keep both ends.
pub(crate) fn mask_middle(text: &str, head: usize, tail: usize) -> String {
    let count = text.chars().count();
    if count <= head + tail {
        return "*".repeat(count);
    }
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i >= count - tail {
                c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_number_is_masked_and_checked() {
        // Sample number from ssc-card.md §6; its check digit recomputed with Python:
        // w=[7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]; "10X98765432"[sum(int(a)*b for a,b in
        // zip("44122519870304043",w))%11] == '7'.
        let ssn = SocialSecurityNumber::new("441225198703040437").unwrap();
        assert_eq!(format!("{ssn:?}"), "441225********0437");
        assert!(ssn.check_digit_valid());
        assert!(
            !SocialSecurityNumber::new("441225198703040438")
                .unwrap()
                .check_digit_valid()
        );
        assert!(SocialSecurityNumber::new("11010119900307123x").is_some());
        assert!(SocialSecurityNumber::new("4412251987030404").is_none());
        assert!(SocialSecurityNumber::new("44122519870304043Y").is_none());
    }

    #[test]
    fn names_are_masked_after_the_first_character() {
        assert_eq!(format!("{:?}", PersonName::new("张三")), "张*");
        assert_eq!(format!("{:?}", PersonName::new("王小堃")), "王**");
        assert_eq!(format!("{:?}", PersonName::new("")), "");
    }

    #[test]
    fn dates_and_generations() {
        assert!(CardDate::new(2024, 2, 29).is_some());
        assert!(CardDate::new(2023, 2, 29).is_none());
        assert!(CardDate::new(1900, 2, 29).is_none());
        assert!(CardDate::new(2000, 2, 29).is_some());
        assert!(CardDate::new(2019, 13, 1).is_none());
        assert_eq!(CardDate::new(2019, 11, 20).unwrap().to_string(), "20191120");
        assert_eq!(
            CardGeneration::from_spec_version("3.00"),
            CardGeneration::Third
        );
        assert_eq!(
            CardGeneration::from_spec_version("2.01"),
            CardGeneration::Second
        );
        assert_eq!(
            CardGeneration::from_spec_version("9.99"),
            CardGeneration::Unknown("9.99".into())
        );
    }

    #[test]
    fn card_id_parts() {
        let id = CardId::new(
            hex::decode("441800D1560000053030737878EC1A84")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(id.region_code(), "441800");
        assert_eq!(
            id.diversification_factor(),
            *b"\x30\x30\x73\x78\x78\xEC\x1A\x84"
        );
        assert_eq!(id.to_string(), "441800D1560000053030737878EC1A84");
    }
}
