//! The agent's public error catalogue: a stable code, the HTTP status, a message a cashier or an
//! integrator can act on, and the unified reader interface's return code (ssc-card.md §6:
//! negative codes, or −SW for a card status). Internal causes go to the request's log span,
//! never into a response body.

use card_core::StatusWord;
use card_core::auth::{AuthError, AuthenticatorError};
use card_core::pboc::PbocError;
use card_core::ssc::SscError;
use card_core::transport::{CardError, TransportError};

use crate::reader::ReaderError;

/// Why an agent operation failed. Messages never carry card data, PINs or keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// No reader of that name is attached.
    #[error("reader {0:?} not found")]
    ReaderNotFound(String),
    /// The reader has no card.
    #[error("no card in the reader")]
    NoCard,
    /// The card was removed while it was being read.
    #[error("the card was removed during the operation")]
    CardRemoved,
    /// The card was reset by another program; the operation can be repeated.
    #[error("the card was reset by another program")]
    CardReset,
    /// The card or reader did not answer within the timeout; the effect of the last command
    /// is unknown.
    #[error("the card did not answer within {timeout_ms} ms")]
    CardTimeout {
        /// The timeout that elapsed.
        timeout_ms: u64,
    },
    /// Too many requests are already queued for this reader.
    #[error("the reader is busy")]
    ReaderBusy,
    /// The PC/SC service or the reader driver failed.
    #[error("reader failure: {0}")]
    ReaderFailure(String),
    /// The card has no social security application.
    #[error("not a social security card")]
    NotSocialSecurityCard,
    /// The card has no supported bank (PBOC) application.
    #[error("the card has no bank application")]
    NoBankApplication,
    /// The card answered a command with an unexpected status word.
    #[error("the card answered {sw} to INS {ins:02X}")]
    CardStatus {
        /// Instruction of the failed command.
        ins: u8,
        /// The card's status word.
        sw: StatusWord,
    },
    /// The card's data does not follow the specification.
    #[error("the card's data is malformed: {0}")]
    CardData(String),
    /// No HSM is configured or reachable for the 3rd-generation authentication.
    #[error("the HSM is not available for card authentication")]
    HsmUnavailable,
    /// The HSM refused or failed the operation.
    #[error("the HSM failed: {0}")]
    HsmFailed(String),
    /// The card's INTERNAL AUTHENTICATE answer does not match the HSM's (card not genuine).
    #[error("the card failed internal authentication")]
    CardNotGenuine,
    /// The card refused the external-authentication cryptogram.
    #[error("the card refused the terminal's authentication ({tries_left} tries left)")]
    TerminalRejected {
        /// Tries left on the card's RKSSSE key.
        tries_left: u8,
    },
    /// The PIN is not 4 to 12 digits.
    #[error("the PIN must be 4 to 12 digits")]
    PinFormat,
    /// Wrong PIN.
    #[error("wrong PIN, {tries_left} tries left")]
    PinWrong {
        /// Tries left before the PIN blocks.
        tries_left: u8,
    },
    /// The PIN is blocked.
    #[error("the PIN is blocked")]
    PinBlocked,
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The agent itself failed (a worker thread ended, a channel closed).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias of the agent.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// An error's place in the public catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// Stable machine-readable code (`"no_card"`).
    pub code: &'static str,
    /// HTTP status.
    pub http_status: u16,
    /// What the cashier should do, in one sentence.
    pub action: &'static str,
}

impl AgentError {
    /// The catalogue entry.
    pub fn catalogue(&self) -> ErrorCode {
        let (code, http_status, action) = match self {
            Self::ReaderNotFound(_) => (
                "reader_not_found",
                404,
                "check the reader name and its cable",
            ),
            Self::NoCard => ("no_card", 409, "insert the card, chip first"),
            Self::CardRemoved => (
                "card_removed",
                409,
                "insert the card again and keep it in until the read ends",
            ),
            Self::CardReset => ("card_reset", 409, "repeat the operation"),
            Self::CardTimeout { .. } => (
                "card_timeout",
                504,
                "take the card out, insert it again and repeat",
            ),
            Self::ReaderBusy => ("reader_busy", 503, "wait a moment and repeat"),
            Self::ReaderFailure(_) => (
                "reader_failure",
                502,
                "reconnect the reader; call support if it persists",
            ),
            Self::NotSocialSecurityCard => (
                "not_social_security_card",
                422,
                "insert a social security card",
            ),
            Self::NoBankApplication => (
                "no_bank_application",
                422,
                "this card has no bank function; use another payment",
            ),
            Self::CardStatus { .. } => (
                "card_status",
                502,
                "repeat; if it persists the card may be damaged",
            ),
            Self::CardData(_) => (
                "card_data_invalid",
                422,
                "the card's data is damaged; send the holder to the card office",
            ),
            Self::HsmUnavailable => (
                "hsm_unavailable",
                503,
                "the card authentication service is down; call support",
            ),
            Self::HsmFailed(_) => (
                "hsm_failed",
                502,
                "the card authentication service failed; call support",
            ),
            Self::CardNotGenuine => (
                "card_not_genuine",
                422,
                "do not accept this card; call support",
            ),
            Self::TerminalRejected { .. } => (
                "terminal_rejected",
                502,
                "the terminal's keys do not match this card; call support",
            ),
            Self::PinFormat => ("pin_format", 400, "ask for a 6-digit PIN"),
            Self::PinWrong { .. } => ("pin_wrong", 422, "ask the holder to enter the PIN again"),
            Self::PinBlocked => (
                "pin_blocked",
                423,
                "send the holder to the card office to unblock the PIN",
            ),
            Self::BadRequest(_) => ("bad_request", 400, "fix the request"),
            Self::Internal(_) => (
                "internal",
                500,
                "restart the agent; call support if it persists",
            ),
        };
        ErrorCode {
            code,
            http_status,
            action,
        }
    }

    /// The unified reader interface's return code (ssc-card.md §6 table; card statuses are
    /// −SW, e.g. `6982` → −27010).
    pub fn reader_code(&self) -> i32 {
        match self {
            Self::ReaderNotFound(_) => -11,
            Self::NoCard | Self::CardRemoved => -2,
            Self::CardReset | Self::CardTimeout { .. } => -4,
            Self::ReaderBusy | Self::ReaderFailure(_) | Self::Internal(_) => -12,
            Self::NotSocialSecurityCard | Self::NoBankApplication => -1,
            Self::CardStatus { sw, .. } => sw.reader_error_code(),
            Self::CardData(_) => -23,
            Self::HsmUnavailable => -2201,
            Self::HsmFailed(_) => -24,
            Self::CardNotGenuine => -21,
            Self::TerminalRejected { tries_left } => {
                StatusWord::verify_failed(*tries_left).reader_error_code()
            }
            Self::PinFormat => -33,
            Self::PinWrong { .. } => -51,
            Self::PinBlocked => -52,
            Self::BadRequest(_) => -14,
        }
    }
}

impl From<TransportError> for AgentError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::CardAbsent => Self::CardRemoved,
            TransportError::CardReset => Self::CardReset,
            TransportError::Timeout { timeout_ms } => Self::CardTimeout { timeout_ms },
            TransportError::Reader(m) => Self::ReaderFailure(m),
            TransportError::Apdu(e) => Self::CardData(e.to_string()),
            TransportError::ChainTooLong => Self::CardData(e.to_string()),
            other => Self::ReaderFailure(other.to_string()),
        }
    }
}

impl From<CardError> for AgentError {
    fn from(e: CardError) -> Self {
        match e {
            CardError::Transport(t) => t.into(),
            CardError::Status { ins, sw } => Self::CardStatus { ins, sw },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AuthenticatorError> for AgentError {
    fn from(e: AuthenticatorError) -> Self {
        match e {
            AuthenticatorError::Unavailable => Self::HsmUnavailable,
            AuthenticatorError::Failed(m) => Self::HsmFailed(m),
            other => Self::HsmFailed(other.to_string()),
        }
    }
}

impl From<AuthError> for AgentError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::PinFormat => Self::PinFormat,
            AuthError::PinWrong { tries_left } => Self::PinWrong { tries_left },
            AuthError::PinBlocked => Self::PinBlocked,
            AuthError::CryptogramWrong { tries_left } => Self::TerminalRejected { tries_left },
            AuthError::KeyBlocked => Self::TerminalRejected { tries_left: 0 },
            AuthError::Authenticator(a) => a.into(),
            AuthError::Card(c) => c.into(),
            other => Self::CardData(other.to_string()),
        }
    }
}

impl From<SscError> for AgentError {
    fn from(e: SscError) -> Self {
        match e {
            SscError::NoSsse => Self::NotSocialSecurityCard,
            SscError::AuthenticationRequired => Self::CardStatus {
                ins: 0xB2,
                sw: StatusWord::SECURITY_STATUS_NOT_SATISFIED,
            },
            SscError::Auth(a) => a.into(),
            SscError::Card(c) => c.into(),
            other => Self::CardData(other.to_string()),
        }
    }
}

impl From<PbocError> for AgentError {
    fn from(e: PbocError) -> Self {
        match e {
            PbocError::NoApplication => Self::NoBankApplication,
            PbocError::Card(c) => c.into(),
            other => Self::CardData(other.to_string()),
        }
    }
}

impl From<ReaderError> for AgentError {
    fn from(e: ReaderError) -> Self {
        match e {
            ReaderError::UnknownReader(name) => Self::ReaderNotFound(name),
            ReaderError::NoCard => Self::NoCard,
            ReaderError::Busy => Self::ReaderBusy,
            ReaderError::Timeout { timeout_ms } => Self::CardTimeout { timeout_ms },
            ReaderError::Transport(t) => t.into(),
            ReaderError::Service(m) => Self::ReaderFailure(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_codes_follow_the_unified_interface_table() {
        // ssc-card.md §6: −2 no card, −51 PIN verify failed, −52 PIN locked, −2201 no PSAM;
        // card statuses are −SW: 6982 → −27010 (0x6982 = 27010, Python int("6982", 16)).
        assert_eq!(AgentError::NoCard.reader_code(), -2);
        assert_eq!(AgentError::PinWrong { tries_left: 2 }.reader_code(), -51);
        assert_eq!(AgentError::PinBlocked.reader_code(), -52);
        assert_eq!(AgentError::HsmUnavailable.reader_code(), -2201);
        let e: AgentError = SscError::AuthenticationRequired.into();
        assert_eq!(e.reader_code(), -27010);
        // 63C0 → −25536 (ssc-card.md §4).
        assert_eq!(
            AgentError::TerminalRejected { tries_left: 0 }.reader_code(),
            -25536
        );
    }

    #[test]
    fn codes_are_unique() {
        let all = [
            AgentError::ReaderNotFound(String::new()),
            AgentError::NoCard,
            AgentError::CardRemoved,
            AgentError::CardReset,
            AgentError::CardTimeout { timeout_ms: 1 },
            AgentError::ReaderBusy,
            AgentError::ReaderFailure(String::new()),
            AgentError::NotSocialSecurityCard,
            AgentError::NoBankApplication,
            AgentError::CardStatus {
                ins: 0,
                sw: StatusWord::SUCCESS,
            },
            AgentError::CardData(String::new()),
            AgentError::HsmUnavailable,
            AgentError::HsmFailed(String::new()),
            AgentError::CardNotGenuine,
            AgentError::TerminalRejected { tries_left: 1 },
            AgentError::PinFormat,
            AgentError::PinWrong { tries_left: 1 },
            AgentError::PinBlocked,
            AgentError::BadRequest(String::new()),
            AgentError::Internal(String::new()),
        ];
        let mut codes: Vec<_> = all.iter().map(|e| e.catalogue().code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
