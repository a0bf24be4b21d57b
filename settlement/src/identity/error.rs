//! The identity module's errors and their public catalogue (stable code, HTTP status, a message a
//! kiosk integrator or a holder can act on). Internal causes stay in the log, never in a body.

/// What went wrong in sign-in, tokens, personal data or the trail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A request field is malformed (names the field, never echoes personal data).
    #[error("bad field {field}: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The challenge id was never issued here.
    #[error("unknown challenge")]
    ChallengeUnknown,
    /// The challenge was answered before (a replay).
    #[error("challenge already used")]
    ChallengeUsed,
    /// The challenge's life ended before the answer came.
    #[error("challenge expired")]
    ChallengeExpired,
    /// The hsm found the card's INTERNAL AUTHENTICATE answer wrong: not a genuine card, or not
    /// the card the 卡识别码 names.
    #[error("the card's answer to the challenge is wrong")]
    CardNotGenuine,
    /// The card was reported lost.
    #[error("the card was reported lost")]
    CardLost,
    /// No insured person holds this card number.
    #[error("no holder is registered for this card")]
    HolderUnknown,
    /// The card was first used by another holder, or with another card number.
    #[error("the card does not belong to this card number")]
    CardMismatch,
    /// The service needs the PIN verified at the card.
    #[error("this service needs the PIN")]
    PinRequired,
    /// No token, or a malformed one.
    #[error("a sign-in token is required")]
    TokenMissing,
    /// Signature, issuer, key id or claims are wrong.
    #[error("the token is not valid")]
    TokenInvalid,
    /// The token's life has ended.
    #[error("the token has expired")]
    TokenExpired,
    /// The session was signed out, or its card reported lost.
    #[error("the token was revoked")]
    TokenRevoked,
    /// The caller is not a registered terminal (gateway check failed).
    #[error("terminal not authenticated: {0}")]
    Terminal(&'static str),
    /// An operator asked for a person's trail or data without a reason.
    #[error("a reason is required to read a person's data")]
    ReasonRequired,
    /// Nothing matches (a reported card number no holder has, an unknown holder).
    #[error("not found")]
    NotFound,
    /// The hsm refused or failed (key missing, usage) — a configuration problem.
    #[error("hsm: {0}")]
    Hsm(String),
    /// Stored data could not be decoded or decrypted (wrong KEK, altered row).
    #[error("corrupt stored data in {0}")]
    Corrupt(&'static str),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The module's result.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

impl From<hsm::ops::HsmError> for IdentityError {
    fn from(error: hsm::ops::HsmError) -> IdentityError {
        IdentityError::Hsm(error.code().to_owned())
    }
}

impl From<crate::LedgerError> for IdentityError {
    fn from(error: crate::LedgerError) -> IdentityError {
        match error {
            crate::LedgerError::Storage(e) => IdentityError::Database(e),
            other => IdentityError::Hsm(format!("ledger: {other}")),
        }
    }
}

impl IdentityError {
    /// The stable code and HTTP status of the public catalogue.
    pub fn catalogue(&self) -> (&'static str, u16) {
        match self {
            IdentityError::BadField { .. } => ("bad_field", 400),
            IdentityError::ChallengeUnknown => ("challenge_unknown", 400),
            IdentityError::ChallengeUsed => ("challenge_used", 409),
            IdentityError::ChallengeExpired => ("challenge_expired", 410),
            IdentityError::CardNotGenuine => ("card_not_genuine", 401),
            IdentityError::CardLost => ("card_lost", 403),
            IdentityError::HolderUnknown => ("holder_unknown", 404),
            IdentityError::CardMismatch => ("card_mismatch", 403),
            IdentityError::PinRequired => ("pin_required", 403),
            IdentityError::TokenMissing => ("token_missing", 401),
            IdentityError::TokenInvalid => ("token_invalid", 401),
            IdentityError::TokenExpired => ("token_expired", 401),
            IdentityError::TokenRevoked => ("token_revoked", 401),
            IdentityError::Terminal(_) => ("terminal_unauthenticated", 401),
            IdentityError::ReasonRequired => ("reason_required", 400),
            IdentityError::NotFound => ("not_found", 404),
            IdentityError::Hsm(_) => ("hsm_unavailable", 503),
            IdentityError::Corrupt(_) => ("internal", 500),
            IdentityError::Database(_) => ("internal", 500),
        }
    }

    /// The message a caller sees: the variant's text for 4xx, a fixed text for 5xx (causes are
    /// logged, not sent).
    pub fn public_message(&self) -> String {
        match self.catalogue().1 {
            500.. => "internal error; the operator has the details in the log".to_owned(),
            _ => self.to_string(),
        }
    }
}
