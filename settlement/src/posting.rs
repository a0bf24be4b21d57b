//! Postings: N legs applied atomically (all or nothing), debits equal credits, never edited.
//!
//! A posting is checked here for everything that does not depend on ledger state (shape, balance of
//! legs, limits) before it is queued; what depends on state (accounts exist, same region, balance
//! conditions, link targets) is checked by the writer inside the serialised batch.
//! Corrections are new postings linked to the original (`Link::Reverses` / `Link::Corrects`), as in
//! TigerBeetle (anchors-switch.md §1.1 "Transfers").

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use crate::fen::Fen;
use crate::ids::{AccountId, Admdvs, PostingId};

/// Most legs in one posting. A medical split is 4-10 legs (funds of medical-settlement.md §1.4 +
/// personal account + cash + receivable); 32 leaves room without making a batch unbounded.
pub const POSTING_LEGS_MAX: usize = 32;

/// Debit or credit. Stored as the character `D` or `C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Increases `debits_posted` of the account.
    Debit,
    /// Increases `credits_posted` of the account.
    Credit,
}

impl Side {
    /// The stored character.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "D",
            Side::Credit => "C",
        }
    }

    /// From the stored character.
    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "D" => Some(Side::Debit),
            "C" => Some(Side::Credit),
            _ => None,
        }
    }

    /// The other side (a reversal swaps sides).
    pub fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

/// One leg: an amount (> 0 fen) debited or credited to one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Leg {
    /// The account.
    pub account: AccountId,
    /// Debit or credit.
    pub side: Side,
    /// The amount, > 0.
    pub amount: Fen,
}

/// How a posting relates to an earlier one. Corrections never edit the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// Undoes the target exactly: the same accounts and amounts with sides swapped. A posted
    /// posting can be reversed at most once.
    Reverses(PostingId),
    /// Adjusts the target by an arbitrary balanced posting (e.g. after a re-billing), for audit.
    Corrects(PostingId),
}

impl Link {
    /// Stored kind character (`R` / `K`) and target.
    pub(crate) fn parts(self) -> (&'static str, PostingId) {
        match self {
            Link::Reverses(target) => ("R", target),
            Link::Corrects(target) => ("K", target),
        }
    }
}

/// A posting as submitted: a client id (idempotency key), the region whose ledger it posts to,
/// legs, an optional link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Posting {
    /// Client-supplied unique, time-ordered id.
    pub id: PostingId,
    /// The region; every leg's account must belong to it.
    pub admdvs: Admdvs,
    /// The legs, 2..=`POSTING_LEGS_MAX`.
    pub legs: Vec<Leg>,
    /// Reversal or correction of an earlier posting.
    pub link: Option<Link>,
}

/// Why a posting was refused before reaching the ledger (no state needed to decide).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PostingError {
    /// Fewer than two legs (a posting needs at least one debit and one credit).
    #[error("a posting needs at least 2 legs, got {0}")]
    TooFewLegs(usize),
    /// More than `POSTING_LEGS_MAX` legs.
    #[error("a posting has at most {POSTING_LEGS_MAX} legs, got {0}")]
    TooManyLegs(usize),
    /// A leg of zero fen.
    #[error("leg {0} has a zero amount")]
    ZeroAmount(usize),
    /// No debit leg or no credit leg.
    #[error("a posting needs at least one debit and one credit")]
    OneSided,
    /// The same account appears in two legs (both sides or twice on one side).
    #[error("account {0} appears in more than one leg")]
    DuplicateAccount(AccountId),
    /// Sum of debits differs from sum of credits.
    #[error("legs are unbalanced: debits {debits_fen} fen, credits {credits_fen} fen")]
    Unbalanced {
        /// Sum of debit legs, fen.
        debits_fen: i64,
        /// Sum of credit legs, fen.
        credits_fen: i64,
    },
    /// The sum of one side exceeds `Fen::MAX`.
    #[error("sum of legs overflows")]
    Overflow,
    /// A posting cannot link to itself.
    #[error("a posting cannot link to itself")]
    SelfLink,
}

impl Posting {
    /// Checks the stateless rules: leg count, amounts > 0, at least one debit and one credit, no
    /// account twice, sum of debits = sum of credits, no self-link.
    pub fn validate(&self) -> Result<(), PostingError> {
        let count = self.legs.len();
        if count < 2 {
            return Err(PostingError::TooFewLegs(count));
        }
        if count > POSTING_LEGS_MAX {
            return Err(PostingError::TooManyLegs(count));
        }
        let mut seen = HashSet::with_capacity(count);
        let mut debits = Fen::ZERO;
        let mut credits = Fen::ZERO;
        for (index, leg) in self.legs.iter().enumerate() {
            if leg.amount.is_zero() {
                return Err(PostingError::ZeroAmount(index));
            }
            if !seen.insert(leg.account) {
                return Err(PostingError::DuplicateAccount(leg.account));
            }
            let total = match leg.side {
                Side::Debit => &mut debits,
                Side::Credit => &mut credits,
            };
            *total = total
                .checked_add(leg.amount)
                .map_err(|_| PostingError::Overflow)?;
        }
        if debits.is_zero() || credits.is_zero() {
            return Err(PostingError::OneSided);
        }
        if debits != credits {
            return Err(PostingError::Unbalanced {
                debits_fen: debits.fen(),
                credits_fen: credits.fen(),
            });
        }
        if let Some(link) = self.link
            && link.parts().1 == self.id
        {
            return Err(PostingError::SelfLink);
        }
        Ok(())
    }

    /// SHA-256 over a canonical encoding of the content (region, legs in order, link), stored with
    /// the posting so that a repeat of the id can be compared with the original (same content →
    /// first result; different → `IdempotencyConflict`), as Mojaloop compares request hashes
    /// (anchors-switch.md §2.1 "Idempotency / duplicates").
    pub fn content_sha256(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"ledger-posting-v1");
        hash.update(self.admdvs.code().to_be_bytes());
        let legs = u32::try_from(self.legs.len()).unwrap_or(u32::MAX);
        hash.update(legs.to_be_bytes());
        for leg in &self.legs {
            hash.update(leg.account.get().to_be_bytes());
            hash.update(leg.side.as_str().as_bytes());
            hash.update(leg.amount.fen().to_be_bytes());
        }
        match self.link {
            None => hash.update(b"N"),
            Some(link) => {
                let (kind, target) = link.parts();
                hash.update(kind.as_bytes());
                hash.update(target.to_bytes());
            }
        }
        hash.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(account: i64, side: Side, fen: i64) -> Leg {
        Leg {
            account: AccountId(account),
            side,
            amount: Fen::from_fen(fen).unwrap(),
        }
    }

    fn posting(legs: Vec<Leg>) -> Posting {
        Posting {
            id: PostingId::from_u128(1).unwrap(),
            admdvs: Admdvs::parse("110000").unwrap(),
            legs,
            link: None,
        }
    }

    #[test]
    fn accepts_balanced_four_leg_split() {
        // 100.00 = 60.00 pooled fund + 30.00 personal account + 10.00 cash, all to the receivable.
        let p = posting(vec![
            leg(1, Side::Debit, 6000),
            leg(2, Side::Debit, 3000),
            leg(3, Side::Debit, 1000),
            leg(4, Side::Credit, 10000),
        ]);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn refuses_unbalanced() {
        let p = posting(vec![leg(1, Side::Debit, 100), leg(2, Side::Credit, 99)]);
        assert_eq!(
            p.validate(),
            Err(PostingError::Unbalanced {
                debits_fen: 100,
                credits_fen: 99
            })
        );
    }

    #[test]
    fn refuses_zero_and_single_legs() {
        assert_eq!(posting(vec![]).validate(), Err(PostingError::TooFewLegs(0)));
        assert_eq!(
            posting(vec![leg(1, Side::Debit, 1)]).validate(),
            Err(PostingError::TooFewLegs(1))
        );
        let p = posting(vec![leg(1, Side::Debit, 0), leg(2, Side::Credit, 0)]);
        assert_eq!(p.validate(), Err(PostingError::ZeroAmount(0)));
        let p = posting(vec![leg(1, Side::Debit, 5), leg(2, Side::Debit, 5)]);
        assert_eq!(p.validate(), Err(PostingError::OneSided));
    }

    #[test]
    fn refuses_same_account_both_sides() {
        let p = posting(vec![leg(7, Side::Debit, 5), leg(7, Side::Credit, 5)]);
        assert_eq!(
            p.validate(),
            Err(PostingError::DuplicateAccount(AccountId(7)))
        );
    }

    #[test]
    fn refuses_too_many_legs_and_self_link() {
        let mut legs = vec![leg(1, Side::Debit, 33)];
        legs.extend((2..=33).map(|a| leg(a, Side::Credit, 1)));
        assert_eq!(posting(legs).validate(), Err(PostingError::TooManyLegs(33)));
        let mut p = posting(vec![leg(1, Side::Debit, 5), leg(2, Side::Credit, 5)]);
        p.link = Some(Link::Reverses(p.id));
        assert_eq!(p.validate(), Err(PostingError::SelfLink));
    }

    #[test]
    fn refuses_overflowing_sum() {
        let p = posting(vec![
            leg(1, Side::Debit, Fen::MAX.fen()),
            leg(2, Side::Debit, 1),
            leg(3, Side::Credit, 1),
        ]);
        assert_eq!(p.validate(), Err(PostingError::Overflow));
    }

    #[test]
    fn content_hash_depends_on_content_not_id() {
        let a = posting(vec![leg(1, Side::Debit, 5), leg(2, Side::Credit, 5)]);
        let mut b = a.clone();
        b.id = PostingId::from_u128(2).unwrap();
        assert_eq!(a.content_sha256(), b.content_sha256());
        b.legs[0].amount = Fen::from_fen(6).unwrap();
        assert_ne!(a.content_sha256(), b.content_sha256());
        let mut c = a.clone();
        c.link = Some(Link::Corrects(PostingId::from_u128(9).unwrap()));
        assert_ne!(a.content_sha256(), c.content_sha256());
    }
}
