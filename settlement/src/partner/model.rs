//! The partner registry's types: who a partner is ([`PartnerKind`], [`PartnerCode`]), its
//! applications ([`AppId`], [`AppState`], [`Application`]), their credentials ([`KeyId`],
//! [`KeyAlgorithm`], [`Credential`]) and scopes ([`Scope`] = an [`Operation`] on one directory
//! use). Each identifier has one checking constructor (`parse`), so a value of the type is valid.
//!
//! Later parts of issue 8 (card sign-in, the card-use trail, the operators' console) read the
//! registry through these types.

use std::fmt;

use crate::directory::UseNumber;

/// Longest partner code, bytes.
pub const PARTNER_CODE_LEN_MAX: usize = 32;
/// Longest name of a partner or an application, characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest SM2 distinguishing ID a partner may register, bytes (GM/T 0009 default is 16).
pub const SM2_ID_LEN_MAX: usize = 64;
/// Longest webhook URL, bytes.
pub const WEBHOOK_URL_LEN_MAX: usize = 512;
/// Most scopes one application may request.
pub const SCOPES_MAX: usize = 64;

fn ascii_id(text: &str, len_max: usize) -> bool {
    !text.is_empty()
        && text.len() <= len_max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A partner's stable code (1-32 ASCII letters, digits, `-`, `_`), chosen at registration,
/// e.g. `ICBC-BJ` or `rsj-110000`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerCode(String);

impl PartnerCode {
    /// Checks and wraps a code. Errors: `None` if it is not 1-32 of `[A-Za-z0-9_-]`.
    pub fn parse(text: &str) -> Option<PartnerCode> {
        ascii_id(text, PARTNER_CODE_LEN_MAX).then(|| PartnerCode(text.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An application's id, assigned by the platform: `app-` and 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    /// Checks and wraps an id. Errors: `None` if it is not `app-` + 16 lowercase hex.
    pub fn parse(text: &str) -> Option<AppId> {
        let hex = text.strip_prefix("app-")?;
        (hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| AppId(text.to_owned()))
    }

    /// A fresh random id. Errors: the system random generator failed.
    pub fn generate() -> Result<AppId, getrandom::Error> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)?;
        Ok(AppId(format!("app-{}", hex::encode(bytes))))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A credential's key id, assigned by the platform: `key-` and 20 lowercase hex digits. It is
/// the `X-SSC-Key-Id` header of every signed request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Checks and wraps a key id. Errors: `None` if it is not `key-` + 20 lowercase hex.
    pub fn parse(text: &str) -> Option<KeyId> {
        let hex = text.strip_prefix("key-")?;
        (hex.len() == 20 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| KeyId(text.to_owned()))
    }

    /// A fresh random key id. Errors: the system random generator failed.
    pub fn generate() -> Result<KeyId, getrandom::Error> {
        let mut bytes = [0u8; 10];
        getrandom::fill(&mut bytes)?;
        Ok(KeyId(format!("key-{}", hex::encode(bytes))))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What kind of organisation a partner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartnerKind {
    /// A government department (人社、医保、公安 …).
    Department,
    /// A bank (the card's financial account, 金融服务).
    Bank,
    /// A certified third party (an app, a hospital's vendor).
    ThirdParty,
}

impl PartnerKind {
    /// The stored and wire code: `department`, `bank`, `third_party`.
    pub fn code(self) -> &'static str {
        match self {
            PartnerKind::Department => "department",
            PartnerKind::Bank => "bank",
            PartnerKind::ThirdParty => "third_party",
        }
    }

    /// Parses a code. Errors: `None` for anything else.
    pub fn parse(code: &str) -> Option<PartnerKind> {
        match code {
            "department" => Some(PartnerKind::Department),
            "bank" => Some(PartnerKind::Bank),
            "third_party" => Some(PartnerKind::ThirdParty),
            _ => None,
        }
    }
}

/// An application's life: `pending` → `approved` | `rejected`; `approved` → `suspended`.
/// Only an approved application may call the partner API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppState {
    /// Registered, waiting for an operator.
    Pending,
    /// Approved: its keys are accepted within its granted scopes.
    Approved,
    /// Refused by an operator (final).
    Rejected,
    /// Stopped by an operator after approval.
    Suspended,
}

impl AppState {
    /// The stored and wire code.
    pub fn code(self) -> &'static str {
        match self {
            AppState::Pending => "pending",
            AppState::Approved => "approved",
            AppState::Rejected => "rejected",
            AppState::Suspended => "suspended",
        }
    }

    /// Parses a code. Errors: `None` for anything else.
    pub fn parse(code: &str) -> Option<AppState> {
        match code {
            "pending" => Some(AppState::Pending),
            "approved" => Some(AppState::Approved),
            "rejected" => Some(AppState::Rejected),
            "suspended" => Some(AppState::Suspended),
            _ => None,
        }
    }
}

/// The partner API's operations a scope can grant, on one directory use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `card.verify`: a card's status and whether claimed identity data match, with the
    /// holder's consent; ID number and name masked.
    CardVerify,
    /// `card.identity`: with `card.verify`, the ID number and name in clear.
    CardIdentity,
    /// `settlement.status`: a medical settlement's status by `setl_id`.
    SettlementStatus,
    /// `webhook.settlement`: receive `settlement.done` events.
    WebhookSettlement,
    /// `webhook.card`: receive `card.lost` events for cards the application verified.
    WebhookCard,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 5] = [
        Operation::CardVerify,
        Operation::CardIdentity,
        Operation::SettlementStatus,
        Operation::WebhookSettlement,
        Operation::WebhookCard,
    ];

    /// The stored and wire code.
    pub fn code(self) -> &'static str {
        match self {
            Operation::CardVerify => "card.verify",
            Operation::CardIdentity => "card.identity",
            Operation::SettlementStatus => "settlement.status",
            Operation::WebhookSettlement => "webhook.settlement",
            Operation::WebhookCard => "webhook.card",
        }
    }

    /// Parses a code. Errors: `None` for anything else.
    pub fn parse(code: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.code() == code)
    }
}

/// A scope: one operation on one directory use, e.g. `P023:settlement.status`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The directory use the application acts for.
    pub use_number: UseNumber,
    /// What it may do there.
    pub operation: Operation,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.use_number.as_str(), self.operation.code())
    }
}

/// A signature algorithm of partner credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// SM2 (GB/T 32918.2) with SM3 and a distinguishing ID (GM/T 0009, default
    /// `1234567812345678`): e = SM3(Z_A ‖ canonical request).
    Sm2,
    /// ECDSA over P-256 with SHA-256 (FIPS 186-4).
    EcdsaP256,
}

impl KeyAlgorithm {
    /// The stored and wire code: `SM2`, `ECDSA_P256`.
    pub fn code(self) -> &'static str {
        match self {
            KeyAlgorithm::Sm2 => "SM2",
            KeyAlgorithm::EcdsaP256 => "ECDSA_P256",
        }
    }

    /// Parses a code. Errors: `None` for anything else.
    pub fn parse(code: &str) -> Option<KeyAlgorithm> {
        match code {
            "SM2" => Some(KeyAlgorithm::Sm2),
            "ECDSA_P256" => Some(KeyAlgorithm::EcdsaP256),
            _ => None,
        }
    }
}

/// A registered public key: what a signed request is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The key id (`X-SSC-Key-Id`).
    pub key_id: KeyId,
    /// The application it belongs to.
    pub app_id: AppId,
    /// The algorithm.
    pub algorithm: KeyAlgorithm,
    /// Uncompressed public point `04‖X‖Y`, 65 bytes, checked on its curve at registration.
    pub public_key: [u8; 65],
    /// SM2 distinguishing ID (empty for ECDSA).
    pub sm2_id: String,
    /// False once revoked.
    pub active: bool,
}

/// An application as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// Its id.
    pub app_id: AppId,
    /// The partner it belongs to.
    pub partner_code: PartnerCode,
    /// The partner's name (organisation, public).
    pub partner_name: String,
    /// The partner's kind.
    pub partner_kind: PartnerKind,
    /// The application's name.
    pub name: String,
    /// Its state.
    pub state: AppState,
    /// Where its webhooks go, if anywhere.
    pub webhook_url: Option<String>,
    /// Scopes requested at registration.
    pub requested: Vec<Scope>,
    /// Scopes granted by the operator (a subset of `requested`).
    pub granted: Vec<Scope>,
    /// The partner's rate limit: calls per minute.
    pub rate_per_minute: u32,
    /// The partner's burst.
    pub burst: u32,
    /// Registration time, Unix ms UTC.
    pub created_at_ms: i64,
}

impl Application {
    /// Whether `scope` is granted.
    pub fn grants(&self, scope: &Scope) -> bool {
        self.granted.contains(scope)
    }

    /// Whether `operation` is granted on any use.
    pub fn grants_anywhere(&self, operation: Operation) -> bool {
        self.granted.iter().any(|s| s.operation == operation)
    }
}

/// Checks a partner or application name: 1-100 characters, no control characters.
pub fn name_is_valid(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=NAME_CHARS_MAX).contains(&chars)
        && !name.chars().any(char::is_control)
        && !name.trim().is_empty()
}

/// Checks a webhook URL: `http://` or `https://`, at most 512 printable ASCII bytes, no spaces.
pub fn webhook_url_is_valid(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= WEBHOOK_URL_LEN_MAX
        && url.len() > "https://".len()
        && url.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_their_shape() {
        assert!(AppId::parse("app-0123456789abcdef").is_some());
        assert!(AppId::parse("app-0123456789ABCDEF").is_none());
        assert!(AppId::parse("app-0123").is_none());
        assert!(KeyId::parse("key-0123456789abcdef0123").is_some());
        assert!(KeyId::parse("key-0123456789abcdef012").is_none());
        assert!(PartnerCode::parse("ICBC-BJ_1").is_some());
        assert!(PartnerCode::parse("工行").is_none());
        assert!(PartnerCode::parse("").is_none());
        let generated = AppId::generate().unwrap();
        assert!(AppId::parse(generated.as_str()).is_some());
        let generated = KeyId::generate().unwrap();
        assert!(KeyId::parse(generated.as_str()).is_some());
    }

    #[test]
    fn codes_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.code()), Some(op));
        }
        for kind in [
            PartnerKind::Department,
            PartnerKind::Bank,
            PartnerKind::ThirdParty,
        ] {
            assert_eq!(PartnerKind::parse(kind.code()), Some(kind));
        }
        assert_eq!(Operation::parse("card.Verify"), None);
    }

    #[test]
    fn names_and_urls() {
        assert!(name_is_valid("中国工商银行北京分行"));
        assert!(!name_is_valid(" "));
        assert!(!name_is_valid("a\u{0}b"));
        assert!(webhook_url_is_valid("http://127.0.0.1:9/hook"));
        assert!(!webhook_url_is_valid("ftp://x/y"));
        assert!(!webhook_url_is_valid("http://a b"));
    }
}
