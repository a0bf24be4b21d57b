//! The ledger's error catalogue: refusals before the ledger (`Invalid`), persisted rejections
//! decided inside the serialised write (`Rejected`), idempotency conflicts, and storage faults.

use crate::account::AccountSpecError;
use crate::ids::{AccountId, IdError, PostingId};
use crate::posting::PostingError;

/// A posting refused by the writer because of ledger state. The rejection is stored under the
/// posting id, so a retry of the same id gets the same answer even if the state has since changed
/// (TigerBeetle `id_already_failed`, anchors-switch.md §1.1 and §6(d) "Retry changes the outcome").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A leg names an account the ledger does not have.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// A leg's account belongs to another region than the posting (cross-region flows go through
    /// each region's clearing account, one posting per region).
    #[error("account {0} belongs to another region")]
    RegionMismatch(AccountId),
    /// The posting would make the account's debits exceed its credits
    /// (`debits_must_not_exceed_credits`, e.g. a personal account going below zero).
    #[error("account {0}: debits would exceed credits")]
    ExceedsCredits(AccountId),
    /// The posting would make the account's credits exceed its debits
    /// (`credits_must_not_exceed_debits`).
    #[error("account {0}: credits would exceed debits")]
    ExceedsDebits(AccountId),
    /// A balance of the account would pass `Fen::MAX`.
    #[error("account {0}: balance would overflow")]
    BalanceOverflow(AccountId),
    /// The linked posting does not exist or was itself rejected.
    #[error("linked posting {0} does not exist or was not posted")]
    LinkTargetUnknown(PostingId),
    /// The target was already reversed once.
    #[error("posting {0} was already reversed")]
    AlreadyReversed(PostingId),
    /// A reversal's legs are not the target's legs with sides swapped.
    #[error("reversal legs do not mirror posting {0}")]
    ReversalMismatch(PostingId),
}

impl Rejection {
    /// Stored `(reject_code, reject_account)`; link variants keep their target in `link_target`.
    pub(crate) fn to_stored(self) -> (i16, Option<i64>) {
        match self {
            Rejection::UnknownAccount(a) => (1, Some(a.get())),
            Rejection::RegionMismatch(a) => (2, Some(a.get())),
            Rejection::ExceedsCredits(a) => (3, Some(a.get())),
            Rejection::ExceedsDebits(a) => (4, Some(a.get())),
            Rejection::BalanceOverflow(a) => (5, Some(a.get())),
            Rejection::LinkTargetUnknown(_) => (6, None),
            Rejection::AlreadyReversed(_) => (7, None),
            Rejection::ReversalMismatch(_) => (8, None),
        }
    }

    /// Rebuilds a stored rejection; `None` if the row is not one this build wrote.
    pub(crate) fn from_stored(
        code: i16,
        account: Option<i64>,
        link_target: Option<PostingId>,
    ) -> Option<Rejection> {
        let account = account.map(AccountId::from_raw);
        Some(match code {
            1 => Rejection::UnknownAccount(account?),
            2 => Rejection::RegionMismatch(account?),
            3 => Rejection::ExceedsCredits(account?),
            4 => Rejection::ExceedsDebits(account?),
            5 => Rejection::BalanceOverflow(account?),
            6 => Rejection::LinkTargetUnknown(link_target?),
            7 => Rejection::AlreadyReversed(link_target?),
            8 => Rejection::ReversalMismatch(link_target?),
            _ => return None,
        })
    }
}

/// Errors of the ledger API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The posting breaks a stateless rule (unbalanced, too few legs, ...); nothing was stored.
    #[error("invalid posting: {0}")]
    Invalid(#[from] PostingError),
    /// The posting was rejected by ledger state; the rejection is stored under its id.
    #[error("posting rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The id was already used for a posting with different content (Mojaloop 3106 "Modified
    /// Request", TigerBeetle `exists_with_different_*`).
    #[error("posting id {0} was already used with different content")]
    IdempotencyConflict(PostingId),
    /// An account spec was refused.
    #[error("invalid account: {0}")]
    AccountSpec(#[from] AccountSpecError),
    /// An account with the same (admdvs, kind, code) exists with other flags.
    #[error("account exists with different flags")]
    AccountConflict,
    /// A query named an account the ledger does not have.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// An identifier read back from storage was malformed.
    #[error("stored identifier is malformed: {0}")]
    Id(#[from] IdError),
    /// A stored row breaks an invariant this code relies on (a bug or tampering; the operator must
    /// look at it). The text names the table and column, never personal data.
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// The database failed. For a posting, the outcome is then unknown to the caller: retry with
    /// the same id (idempotent) or look it up with `Ledger::posting`.
    #[error("storage error: {0}")]
    Storage(#[from] sqlx::Error),
    /// Running the embedded migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL scheme")]
    UnsupportedUrl,
    /// The group-commit batch holding this posting failed in the database and was rolled back
    /// (text of the cause). If the failure hit the COMMIT itself the outcome is unknown: retry with
    /// the same id (idempotent) or look it up with `Ledger::posting`.
    #[error("ledger batch failed: {0}")]
    BatchFailed(String),
    /// The writer task has stopped (the ledger is closing or crashed); outcome unknown.
    #[error("ledger writer is not running")]
    WriterGone,
    /// A query limit was out of range.
    #[error("page limit must be 1..={0}")]
    PageLimit(u32),
    /// The message (`msgid`) whose record rides with this write already has a stored outcome:
    /// nothing of this write was stored. Decided inside the serialised write, so the caller reads
    /// the stored outcome (`medical::Medical::prior`) and answers with it.
    #[error("message already has a stored outcome")]
    MessageRecorded,
}

/// Result alias of the ledger.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
