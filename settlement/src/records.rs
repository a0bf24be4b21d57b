//! What the ledger answers: receipts of postings, stored postings, entries of an account.

use crate::error::Rejection;
use crate::fen::Fen;
use crate::ids::{Admdvs, PostingId};
use crate::posting::{Leg, Link, Side};

/// The result of a posted posting. A repeat of the same id and content returns the same receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The client id.
    pub id: PostingId,
    /// Commit order in this ledger database (`postings.seq`), > 0.
    pub seq: i64,
    /// Commit time of its batch, Unix milliseconds (wall clock, informational).
    pub posted_at_ms: i64,
}

/// A stored posting (posted or rejected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingRecord {
    /// The client id.
    pub id: PostingId,
    /// Commit order.
    pub seq: i64,
    /// Region.
    pub admdvs: Admdvs,
    /// `Ok` if posted, the stored rejection otherwise.
    pub outcome: Result<(), Rejection>,
    /// Legs in submission order (empty if rejected).
    pub legs: Vec<Leg>,
    /// Link to an earlier posting.
    pub link: Option<Link>,
    /// Commit time, Unix ms.
    pub posted_at_ms: i64,
}

/// One leg on an account, as listed by `Ledger::account_entries` (oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountEntry {
    /// Commit order of the posting; pass the last one as `after_seq` for the next page.
    pub seq: i64,
    /// The posting's client id.
    pub posting: PostingId,
    /// Debit or credit.
    pub side: Side,
    /// Amount, fen.
    pub amount: Fen,
    /// Commit time, Unix ms.
    pub posted_at_ms: i64,
}
