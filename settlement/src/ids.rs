//! Identifier newtypes of the ledger: regions (`Admdvs`), fund codes (`FundPayType`), account codes,
//! account ids and posting ids. Each constructor checks its shape; nothing else builds them.

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A division code (医保区划) must be exactly 6 ASCII digits.
    #[error("admdvs must be 6 ASCII digits")]
    Admdvs,
    /// A `fund_pay_type` must be exactly 6 ASCII digits.
    #[error("fund_pay_type must be 6 ASCII digits")]
    FundPayType,
    /// An account code must be 1 to `ACCOUNT_CODE_LEN_MAX` bytes of ASCII letters, digits, `-`, `_`.
    #[error("account code must be 1..=32 ASCII letters, digits, '-' or '_'")]
    AccountCode,
    /// A posting id of all zero bits is reserved (it would mean "no id supplied").
    #[error("posting id must not be zero")]
    PostingIdZero,
}

/// A 6-digit administrative division code at the pooling level (医保区划, GB/T 2260), e.g. `110000`
/// 北京, `120000` 天津, `130100` 石家庄. Source: medical-settlement.md §2. Treated as data: any 6
/// digits are accepted (the code set is open, see §2 caveats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Admdvs(u32);

impl Admdvs {
    /// Parses 6 ASCII digits. Errors: `IdError::Admdvs`.
    pub fn parse(text: &str) -> Result<Admdvs, IdError> {
        parse_six_digits(text).map(Admdvs).ok_or(IdError::Admdvs)
    }

    /// The code as a number, `0 ..= 999_999` (stored as INTEGER; leading zeros are restored by
    /// `Display`).
    pub fn code(self) -> u32 {
        self.0
    }

    /// Rebuilds from the stored number. Errors: `IdError::Admdvs` above 999 999.
    pub fn from_code(code: u32) -> Result<Admdvs, IdError> {
        if code <= 999_999 {
            Ok(Admdvs(code))
        } else {
            Err(IdError::Admdvs)
        }
    }
}

impl fmt::Display for Admdvs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// A fund code of the national interface's `setldetail[].fund_pay_type` (6 digits), e.g. `310100`
/// 职工基本医疗保险统筹基金, `310200` 个人账户基金, `390100` 城乡居民基本医疗保险基金, `610100`
/// 医疗救助基金. Source: medical-settlement.md §1.4 ("design for an open code set").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FundPayType(u32);

impl FundPayType {
    /// 职工基本医疗保险统筹基金 (employee basic insurance pooled fund), medical-settlement.md §1.4.
    pub const EMPLOYEE_POOLED: FundPayType = FundPayType(310_100);
    /// 职工基本医疗保险个人账户基金 (employee personal-account fund), medical-settlement.md §1.4.
    pub const EMPLOYEE_PERSONAL_ACCOUNT: FundPayType = FundPayType(310_200);
    /// 公务员医疗补助基金, medical-settlement.md §1.4.
    pub const CIVIL_SERVANT_SUBSIDY: FundPayType = FundPayType(320_100);
    /// (职工)大额医疗费用补助基金, medical-settlement.md §1.4.
    pub const EMPLOYEE_LARGE_EXPENSE: FundPayType = FundPayType(330_100);
    /// 城乡居民基本医疗保险基金, medical-settlement.md §1.4.
    pub const RESIDENT_BASIC: FundPayType = FundPayType(390_100);
    /// 城乡居民大病医疗保险基金, medical-settlement.md §1.4.
    pub const RESIDENT_SERIOUS_ILLNESS: FundPayType = FundPayType(390_200);
    /// 医疗救助基金, medical-settlement.md §1.4.
    pub const MEDICAL_AID: FundPayType = FundPayType(610_100);

    /// Parses 6 ASCII digits. Errors: `IdError::FundPayType`.
    pub fn parse(text: &str) -> Result<FundPayType, IdError> {
        parse_six_digits(text)
            .map(FundPayType)
            .ok_or(IdError::FundPayType)
    }
}

impl fmt::Display for FundPayType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

fn parse_six_digits(text: &str) -> Option<u32> {
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Longest account code, bytes.
pub const ACCOUNT_CODE_LEN_MAX: usize = 32;

/// The code that distinguishes accounts of one kind within a region: a `fund_pay_type`, an
/// institution code (`fixmedins_code`, e.g. `H41130200746`), a pseudonymous person reference (never a
/// clear ID number or name: the caller hashes or maps `psn_no` first), a bank or counterparty code.
/// 1..=32 bytes of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountCode(String);

impl AccountCode {
    /// Checks and wraps a code. Errors: `IdError::AccountCode`.
    pub fn parse(text: &str) -> Result<AccountCode, IdError> {
        let ok = !text.is_empty()
            && text.len() <= ACCOUNT_CODE_LEN_MAX
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(AccountCode(text.to_owned()))
        } else {
            Err(IdError::AccountCode)
        }
    }

    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<FundPayType> for AccountCode {
    fn from(fund: FundPayType) -> AccountCode {
        AccountCode(fund.to_string())
    }
}

impl fmt::Debug for AccountCode {
    /// Shows only the length: a code may be a person reference (personal data never in logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountCode(<{} bytes>)", self.0.len())
    }
}

/// The ledger's own id of an account, assigned at creation (`BIGINT`, > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub(crate) i64);

impl AccountId {
    /// The numeric id as stored.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Wraps a numeric id (e.g. read back from an operator command). The ledger answers
    /// `UnknownAccount` for an id it never assigned.
    pub fn from_raw(id: i64) -> AccountId {
        AccountId(id)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client-supplied, globally unique posting id (128 bits), the end-to-end idempotency key.
///
/// It should be time-ordered (UUIDv7 or ULID layout: milliseconds in the high bits) so that inserts
/// land at the right edge of the primary-key B-tree; random keys multiply index writes per batch
/// (limits.md §1c, §2). Stored as 16 big-endian bytes, so byte order = numeric order = time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PostingId(u128);

impl PostingId {
    /// Wraps a 128-bit id. Errors: `PostingIdZero` for 0.
    pub fn from_u128(id: u128) -> Result<PostingId, IdError> {
        if id == 0 {
            Err(IdError::PostingIdZero)
        } else {
            Ok(PostingId(id))
        }
    }

    /// A time-ordered id in the UUIDv7 bit layout (RFC 9562 §5.7): 48-bit Unix milliseconds, version
    /// 7, then 74 caller bits (`counter`, e.g. a per-process sequence or random bits), variant `10`.
    pub fn v7(unix_ms: u64, counter: u128) -> PostingId {
        let ms = u128::from(unix_ms & 0xFFFF_FFFF_FFFF);
        let rand_a = (counter >> 62) & 0xFFF;
        let rand_b = counter & 0x3FFF_FFFF_FFFF_FFFF;
        PostingId((ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)
    }

    /// The id as a number.
    pub fn get(self) -> u128 {
        self.0
    }

    /// The 16 stored bytes, big-endian.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Rebuilds from the 16 stored bytes. Errors: `PostingIdZero`; `None`-like misuse (wrong length)
    /// is reported by the caller.
    pub fn from_bytes(bytes: [u8; 16]) -> Result<PostingId, IdError> {
        PostingId::from_u128(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for PostingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admdvs_is_six_digits() {
        assert_eq!(Admdvs::parse("110000").unwrap().code(), 110_000);
        assert_eq!(Admdvs::parse("130100").unwrap().to_string(), "130100");
        assert_eq!(Admdvs::parse("011000").unwrap().to_string(), "011000");
        for bad in ["11000", "1100000", "11000a", "+11000", " 110000", ""] {
            assert_eq!(Admdvs::parse(bad), Err(IdError::Admdvs), "{bad:?}");
        }
        assert_eq!(Admdvs::from_code(1_000_000), Err(IdError::Admdvs));
    }

    #[test]
    fn fund_pay_type_codes() {
        // medical-settlement.md §1.4 table.
        assert_eq!(
            FundPayType::parse("310100"),
            Ok(FundPayType::EMPLOYEE_POOLED)
        );
        assert_eq!(FundPayType::parse("610100"), Ok(FundPayType::MEDICAL_AID));
        assert_eq!(FundPayType::parse("62010"), Err(IdError::FundPayType));
        assert_eq!(
            AccountCode::from(FundPayType::RESIDENT_BASIC).as_str(),
            "390100"
        );
    }

    #[test]
    fn account_code_shape_and_masked_debug() {
        assert!(AccountCode::parse("H41130200746").is_ok());
        assert_eq!(AccountCode::parse(""), Err(IdError::AccountCode));
        assert_eq!(AccountCode::parse("a b"), Err(IdError::AccountCode));
        assert_eq!(
            AccountCode::parse(&"x".repeat(33)),
            Err(IdError::AccountCode)
        );
        let code = AccountCode::parse("P123456").unwrap();
        assert_eq!(format!("{code:?}"), "AccountCode(<7 bytes>)");
    }

    #[test]
    fn posting_id_v7_layout_and_order() {
        // RFC 9562 §5.7: version nibble at bits 76..80 is 7, variant bits 62..64 are 0b10.
        let id = PostingId::v7(0x0190_0000_0001, 5);
        assert_eq!((id.get() >> 76) & 0xF, 7);
        assert_eq!((id.get() >> 62) & 0b11, 0b10);
        assert_eq!(id.get() >> 80, 0x0190_0000_0001);
        assert!(PostingId::v7(2, 0) > PostingId::v7(1, u128::MAX));
        assert_eq!(PostingId::from_bytes(id.to_bytes()), Ok(id));
        assert_eq!(PostingId::from_u128(0), Err(IdError::PostingIdZero));
    }
}
