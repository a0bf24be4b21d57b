//! Domain types of the application directory: one card use ([`CardUse`]) with its stable number,
//! category, usage modes (用卡方式), channels, regions where it is live, the platform operations
//! that serve it, and where the entry comes from. Every type has one checking constructor
//! (`parse`), so a `CardUse` in memory is always well formed.
//!
//! Sources: the categories are issue 8's list (就业创业 … 公共服务); the seven usage modes are the
//! 用卡方式 of the HRSS "应用目录/全业务用卡" list (../shared/reference/app-catalog.md §2b); the
//! channels are issue 8's (window, kiosk, web, app, e-card; ssc-card.md §8 for the e-card).

use std::cmp::Ordering;
use std::fmt;

use crate::Admdvs;

use super::error::FieldError;

/// Longest use number, characters.
pub const NUMBER_LEN_MAX: usize = 16;
/// Longest use name, characters (not bytes).
pub const NAME_CHARS_MAX: usize = 64;
/// Longest operation name, characters.
pub const OPERATION_LEN_MAX: usize = 64;
/// Most operations per use.
pub const OPERATIONS_PER_USE_MAX: usize = 16;
/// Most regions per use.
pub const REGIONS_PER_USE_MAX: usize = 64;
/// Longest source URL, bytes.
pub const SOURCE_URL_LEN_MAX: usize = 512;
/// Longest source reference or note, characters.
pub const NOTE_CHARS_MAX: usize = 500;

/// A use's stable number: 1 to [`NUMBER_LEN_MAX`] ASCII letters, digits or `-`, starting with a
/// letter or digit (e.g. `P001` for this project's provisional numbers, `17` for an official one).
/// Numbers order "naturally" (shorter first, then bytewise), so `9` < `10` < `102`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UseNumber(String);

impl UseNumber {
    /// Checks the text. Errors: [`FieldError::Number`].
    pub fn parse(text: &str) -> Result<UseNumber, FieldError> {
        let ok = !text.is_empty()
            && text.len() <= NUMBER_LEN_MAX
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && text
                .as_bytes()
                .first()
                .is_some_and(u8::is_ascii_alphanumeric);
        if ok {
            Ok(UseNumber(text.to_owned()))
        } else {
            Err(FieldError::Number)
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for UseNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.len(), &self.0).cmp(&(other.0.len(), &other.0))
    }
}

impl PartialOrd for UseNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for UseNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a closed vocabulary whose wire form is its Chinese (or stated) label.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $error:ident, { $($(#[$vmeta:meta])* $variant:ident => $code:literal, $label:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable code used in CSV files, the database and API parameters.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The Chinese label shown to people.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }

            /// Parses a code or a Chinese label. Errors: [`FieldError`] naming this vocabulary.
            pub fn parse(text: &str) -> Result<$name, FieldError> {
                let text = text.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.code() == text || value.label() == text)
                    .ok_or(FieldError::$error)
            }
        }
    };
}

vocabulary!(
    /// The service category of a use (issue 8).
    Category, Category, {
        /// 就业创业 (employment and entrepreneurship).
        Employment => "就业创业", "就业创业";
        /// 社会保险 (pensions, work injury, unemployment insurance).
        SocialInsurance => "社会保险", "社会保险";
        /// 劳动关系 (labour relations).
        LabourRelations => "劳动关系", "劳动关系";
        /// 人事人才 (personnel and talent).
        Personnel => "人事人才", "人事人才";
        /// 医疗保障 (medical insurance, since 2018 under the 医保局).
        Medical => "医疗保障", "医疗保障";
        /// 金融服务 (the card's bank account).
        Finance => "金融服务", "金融服务";
        /// 公共服务 (residents' services beyond HRSS: transport, culture, government services).
        Public => "公共服务", "公共服务";
    }
);

vocabulary!(
    /// A way the card is used (用卡方式), app-catalog.md §2b.
    UsageMode, Mode, {
        /// 身份凭证: machine-read card, e-card QR code, real-person check.
        Identity => "身份凭证", "身份凭证";
        /// 信息记录: on the card or in the back end ("卡证合一").
        Record => "信息记录", "信息记录";
        /// 自助查询: self-service look-ups at bank devices or on phones.
        SelfQuery => "自助查询", "自助查询";
        /// 就医结算: settlement of care (in the HRSS domain mainly work injury).
        MedicalSettlement => "就医结算", "就医结算";
        /// 缴费: paying contributions or fees.
        Payment => "缴费", "缴费";
        /// 待遇领取: benefits paid into the card's bank account.
        Benefit => "待遇领取", "待遇领取";
        /// 金融支付: deposits, withdrawals, transfers, purchases.
        FinancialPayment => "金融支付", "金融支付";
    }
);

vocabulary!(
    /// Where a person uses it (issue 8's channels).
    Channel, Channel, {
        /// A service window (counter).
        Window => "window", "窗口";
        /// A self-service kiosk or bank self-service device.
        Kiosk => "kiosk", "自助终端";
        /// A web site.
        Web => "web", "网站";
        /// A mobile app.
        App => "app", "手机App";
        /// The electronic social security card (电子社保卡).
        ECard => "e-card", "电子社保卡";
    }
);

vocabulary!(
    /// Whether the entry is named by a public document or only illustrates the format.
    Status, Status, {
        /// Named by the public document in the row's source.
        Sourced => "sourced", "有来源";
        /// Illustration only; not part of any official list (the page labels it 示例).
        Illustrative => "illustrative", "示例";
    }
);

/// Where a use is live: the whole country or one division (6-digit code, GB/T 2260).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// Live nationwide (code `national`).
    National,
    /// Live in this division (a province `xx0000`, a city `xxxx00` or a county).
    Division(Admdvs),
}

impl Region {
    /// Parses `national` / `全国` or 6 digits. Errors: [`FieldError::Region`].
    pub fn parse(text: &str) -> Result<Region, FieldError> {
        match text.trim() {
            "national" | "全国" => Ok(Region::National),
            digits => Admdvs::parse(digits)
                .map(Region::Division)
                .map_err(|_| FieldError::Region),
        }
    }

    /// `national` or the 6 digits.
    pub fn code(self) -> String {
        match self {
            Region::National => "national".to_owned(),
            Region::Division(admdvs) => admdvs.to_string(),
        }
    }

    /// Whether a use live here serves a person in `wanted`: a national use serves everyone, a
    /// province serves its cities and counties, a city its counties.
    pub fn covers(self, wanted: Region) -> bool {
        match (self, wanted) {
            (Region::National, _) => true,
            (Region::Division(_), Region::National) => false,
            (Region::Division(live), Region::Division(wanted)) => {
                let (live, wanted) = (live.code(), wanted.code());
                live == wanted
                    || (live % 10_000 == 0 && live / 10_000 == wanted / 10_000)
                    || (live % 100 == 0 && live / 100 == wanted / 100)
            }
        }
    }
}

/// A platform operation that serves a use: `service:name` (ASCII letters, digits, `_`, `.`, `-`
/// in each part), e.g. `nhsa:2207` (the switch's settlement, medical-settlement.md) or
/// `agent:iReadCardBas` (the terminal agent, ssc-card.md §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation(String);

impl Operation {
    /// Checks the text. Errors: [`FieldError::Operation`].
    pub fn parse(text: &str) -> Result<Operation, FieldError> {
        let text = text.trim();
        let part_ok = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        };
        match text.split_once(':') {
            Some((service, name))
                if text.len() <= OPERATION_LEN_MAX && part_ok(service) && part_ok(name) =>
            {
                Ok(Operation(text.to_owned()))
            }
            _ => Err(FieldError::Operation),
        }
    }

    /// The operation as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One use of the card in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardUse {
    /// Stable number (the key across versions).
    pub number: UseNumber,
    /// Service category.
    pub category: Category,
    /// Name, 1 to [`NAME_CHARS_MAX`] characters, no control characters.
    pub name: String,
    /// Ways of use, sorted, without repeats (may be empty when the source does not say).
    pub modes: Vec<UsageMode>,
    /// Channels, sorted, without repeats (may be empty when the source does not say).
    pub channels: Vec<Channel>,
    /// Regions where live, sorted, without repeats (empty: not known).
    pub regions: Vec<Region>,
    /// Platform operations that serve it, sorted, without repeats.
    pub operations: Vec<Operation>,
    /// Sourced or illustrative.
    pub status: Status,
    /// The public document naming it (`http(s)://`, required when `status` is sourced).
    pub source_url: String,
    /// Where in our references it is discussed (e.g. `app-catalog.md §4`), may be empty.
    pub source_ref: String,
    /// What the source says and what is our own classification, may be empty.
    pub note: String,
}

/// Checks a free-text field: trimmed, at most `max_chars` characters, no control characters.
pub(crate) fn text_field(text: &str, max_chars: usize) -> Option<String> {
    let text = text.trim();
    (text.chars().count() <= max_chars && !text.chars().any(char::is_control))
        .then(|| text.to_owned())
}

/// Checks a source URL: empty, or `http://` / `https://` with no spaces or control characters.
pub(crate) fn source_url_field(text: &str) -> Option<String> {
    let text = text.trim();
    let ok = text.is_empty()
        || (text.len() <= SOURCE_URL_LEN_MAX
            && (text.starts_with("http://") || text.starts_with("https://"))
            && !text.chars().any(|c| c.is_whitespace() || c.is_control()));
    ok.then(|| text.to_owned())
}
