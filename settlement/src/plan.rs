//! Deciding a group-commit batch in memory, against balances locked in the same transaction.
//!
//! Why in memory and not one savepoint per posting: the writer has already loaded (and on
//! PostgreSQL locked with `FOR UPDATE`, in id order) every account the batch touches, so the
//! loaded balances are authoritative until commit. Checking each posting's balance conditions
//! against "loaded balance + deltas of the postings accepted before it in this batch" gives exactly
//! the result of running the postings one by one, while a rejected posting simply contributes no
//! delta and the others go on. Savepoints would cost a round trip per posting and write the hot
//! pooled-fund row once per posting; this way it is written once per batch (the aggregated delta).
//! The database CHECK constraints on `accounts` remain as a backstop: if this code were wrong, the
//! batch would fail instead of committing an overdraft.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::account::AccountFlags;
use crate::error::Rejection;
use crate::fen::Fen;
use crate::ids::{AccountId, Admdvs, PostingId};
use crate::posting::{Leg, Link, Posting, Side};

/// A validated posting with its content hash, as queued for the writer.
#[derive(Debug, Clone)]
pub(crate) struct Submitted {
    /// The posting (already passed `Posting::validate`).
    pub posting: Posting,
    /// `Posting::content_sha256`.
    pub hash: [u8; 32],
}

/// A posting id already committed by an earlier transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPosting {
    /// Commit order.
    pub seq: i64,
    /// Content hash as stored.
    pub hash: [u8; 32],
    /// Posted or rejected (with reason).
    pub outcome: Result<(), Rejection>,
    /// Commit time, Unix ms.
    pub posted_at_ms: i64,
}

/// An account row as loaded (and locked) in the batch transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccountState {
    /// Region.
    pub admdvs: Admdvs,
    /// Balance conditions.
    pub flags: AccountFlags,
    /// `debits_posted`.
    pub debits: Fen,
    /// `credits_posted`.
    pub credits: Fen,
}

/// A committed link target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetInfo {
    /// True if it was posted (a rejected posting cannot be reversed or corrected).
    pub posted: bool,
    /// Its legs (empty if rejected).
    pub legs: Vec<Leg>,
    /// True if a posted reversal of it already exists.
    pub reversed: bool,
}

/// What the batch does with one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The id was committed before: answer the stored result (same content) ...
    Replay(StoredPosting),
    /// ... or refuse (different content).
    Conflict,
    /// A new id: insert it as posted (`Ok`) or rejected.
    New(Result<(), Rejection>),
    /// A repeat of an earlier submission in this batch with the same content: same answer.
    SameAs(usize),
}

/// The decisions of a batch and the accounts whose balances changed (final values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One decision per submission, in submission order.
    pub decisions: Vec<Decision>,
    /// Accounts to write back, in id order.
    pub dirty: BTreeMap<AccountId, AccountState>,
}

/// Decides every submission of a batch in order, as if they ran one after another.
pub(crate) fn plan_batch(
    items: &[Submitted],
    existing: &HashMap<PostingId, StoredPosting>,
    accounts: &HashMap<AccountId, AccountState>,
    targets: &HashMap<PostingId, TargetInfo>,
) -> Plan {
    let mut balances = accounts.clone();
    let mut dirty = BTreeMap::new();
    let mut decisions = Vec::with_capacity(items.len());
    // First index of each new id in this batch, and which of them were posted.
    let mut first_index: HashMap<PostingId, usize> = HashMap::new();
    let mut batch_posted: HashMap<PostingId, usize> = HashMap::new();
    let mut batch_reversed: HashSet<PostingId> = HashSet::new();

    for (index, item) in items.iter().enumerate() {
        let id = item.posting.id;
        if let Some(stored) = existing.get(&id) {
            decisions.push(if stored.hash == item.hash {
                Decision::Replay(stored.clone())
            } else {
                Decision::Conflict
            });
            continue;
        }
        if let Some(&first) = first_index.get(&id) {
            decisions.push(if items[first].hash == item.hash {
                Decision::SameAs(first)
            } else {
                Decision::Conflict
            });
            continue;
        }
        first_index.insert(id, index);
        let context = Context {
            items,
            targets,
            batch_posted: &batch_posted,
            batch_reversed: &batch_reversed,
        };
        let outcome = match context.evaluate(&item.posting, &balances) {
            Ok(updated) => {
                for (account, state) in updated {
                    balances.insert(account, state);
                    dirty.insert(account, state);
                }
                batch_posted.insert(id, index);
                if let Some(Link::Reverses(target)) = item.posting.link {
                    batch_reversed.insert(target);
                }
                Ok(())
            }
            Err(rejection) => Err(rejection),
        };
        decisions.push(Decision::New(outcome));
    }
    Plan { decisions, dirty }
}

struct Context<'a> {
    items: &'a [Submitted],
    targets: &'a HashMap<PostingId, TargetInfo>,
    batch_posted: &'a HashMap<PostingId, usize>,
    batch_reversed: &'a HashSet<PostingId>,
}

impl Context<'_> {
    /// The new states of the posting's accounts, or why it is rejected.
    fn evaluate(
        &self,
        posting: &Posting,
        balances: &HashMap<AccountId, AccountState>,
    ) -> Result<Vec<(AccountId, AccountState)>, Rejection> {
        for leg in &posting.legs {
            let state = balances
                .get(&leg.account)
                .ok_or(Rejection::UnknownAccount(leg.account))?;
            if state.admdvs != posting.admdvs {
                return Err(Rejection::RegionMismatch(leg.account));
            }
        }
        if let Some(link) = posting.link {
            self.check_link(posting, link)?;
        }
        let mut updated = Vec::with_capacity(posting.legs.len());
        for leg in &posting.legs {
            let Some(mut state) = balances.get(&leg.account).copied() else {
                return Err(Rejection::UnknownAccount(leg.account));
            };
            let overflow = Rejection::BalanceOverflow(leg.account);
            match leg.side {
                Side::Debit => {
                    state.debits = state.debits.checked_add(leg.amount).map_err(|_| overflow)?
                }
                Side::Credit => {
                    state.credits = state
                        .credits
                        .checked_add(leg.amount)
                        .map_err(|_| overflow)?
                }
            }
            if state.flags.debits_must_not_exceed_credits && state.debits > state.credits {
                return Err(Rejection::ExceedsCredits(leg.account));
            }
            if state.flags.credits_must_not_exceed_debits && state.credits > state.debits {
                return Err(Rejection::ExceedsDebits(leg.account));
            }
            updated.push((leg.account, state));
        }
        Ok(updated)
    }

    fn check_link(&self, posting: &Posting, link: Link) -> Result<(), Rejection> {
        let (_, target) = link.parts();
        let (target_legs, reversed) = if let Some(&index) = self.batch_posted.get(&target) {
            (self.items[index].posting.legs.as_slice(), false)
        } else {
            match self.targets.get(&target) {
                Some(info) if info.posted => (info.legs.as_slice(), info.reversed),
                _ => return Err(Rejection::LinkTargetUnknown(target)),
            }
        };
        if let Link::Reverses(_) = link {
            if reversed || self.batch_reversed.contains(&target) {
                return Err(Rejection::AlreadyReversed(target));
            }
            if !mirrors(&posting.legs, target_legs) {
                return Err(Rejection::ReversalMismatch(target));
            }
        }
        Ok(())
    }
}

/// True if `reversal` has the same (account, amount) legs as `original` with every side swapped.
fn mirrors(reversal: &[Leg], original: &[Leg]) -> bool {
    let key = |leg: &Leg| (leg.account, leg.side, leg.amount);
    let mut expected: Vec<_> = original
        .iter()
        .map(|leg| (leg.account, leg.side.opposite(), leg.amount))
        .collect();
    let mut got: Vec<_> = reversal.iter().map(key).collect();
    expected.sort();
    got.sort();
    expected == got
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fen(value: i64) -> Fen {
        Fen::from_fen(value).unwrap()
    }

    fn region() -> Admdvs {
        Admdvs::parse("110000").unwrap()
    }

    fn item(id: u128, legs: &[(i64, Side, i64)], link: Option<Link>) -> Submitted {
        let posting = Posting {
            id: PostingId::from_u128(id).unwrap(),
            admdvs: region(),
            legs: legs
                .iter()
                .map(|&(account, side, amount)| Leg {
                    account: AccountId(account),
                    side,
                    amount: fen(amount),
                })
                .collect(),
            link,
        };
        let hash = posting.content_sha256();
        Submitted { posting, hash }
    }

    fn accounts() -> HashMap<AccountId, AccountState> {
        let plain = AccountState {
            admdvs: region(),
            flags: AccountFlags::default(),
            debits: Fen::ZERO,
            credits: Fen::ZERO,
        };
        let personal = AccountState {
            flags: AccountFlags {
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: false,
            },
            credits: fen(100),
            ..plain
        };
        HashMap::from([
            (AccountId(1), plain),
            (AccountId(2), personal),
            (AccountId(3), plain),
        ])
    }

    #[test]
    fn a_failing_posting_does_not_abort_the_others() {
        // Personal account 2 holds 100 fen: 60 passes, the next 60 fails, 40 passes (100 - 60 = 40).
        let items = [
            item(1, &[(2, Side::Debit, 60), (3, Side::Credit, 60)], None),
            item(2, &[(2, Side::Debit, 60), (3, Side::Credit, 60)], None),
            item(3, &[(2, Side::Debit, 40), (3, Side::Credit, 40)], None),
        ];
        let plan = plan_batch(&items, &HashMap::new(), &accounts(), &HashMap::new());
        assert_eq!(
            plan.decisions,
            vec![
                Decision::New(Ok(())),
                Decision::New(Err(Rejection::ExceedsCredits(AccountId(2)))),
                Decision::New(Ok(())),
            ]
        );
        assert_eq!(plan.dirty[&AccountId(2)].debits, fen(100));
        assert_eq!(plan.dirty[&AccountId(3)].credits, fen(100));
    }

    #[test]
    fn duplicates_inside_a_batch() {
        let a = item(1, &[(1, Side::Debit, 5), (3, Side::Credit, 5)], None);
        let mut changed = item(1, &[(1, Side::Debit, 6), (3, Side::Credit, 6)], None);
        changed.posting.id = a.posting.id;
        let items = [a.clone(), a, changed];
        let plan = plan_batch(&items, &HashMap::new(), &accounts(), &HashMap::new());
        assert_eq!(
            plan.decisions,
            vec![
                Decision::New(Ok(())),
                Decision::SameAs(0),
                Decision::Conflict
            ]
        );
        assert_eq!(plan.dirty[&AccountId(1)].debits, fen(5));
    }

    #[test]
    fn reversal_in_the_same_batch_once_and_mirrored() {
        let original = item(1, &[(1, Side::Debit, 5), (3, Side::Credit, 5)], None);
        let target = original.posting.id;
        let items = [
            original,
            item(
                2,
                &[(1, Side::Credit, 4), (3, Side::Debit, 4)],
                Some(Link::Reverses(target)),
            ),
            item(
                3,
                &[(3, Side::Debit, 5), (1, Side::Credit, 5)],
                Some(Link::Reverses(target)),
            ),
            item(
                4,
                &[(3, Side::Debit, 5), (1, Side::Credit, 5)],
                Some(Link::Reverses(target)),
            ),
        ];
        let plan = plan_batch(&items, &HashMap::new(), &accounts(), &HashMap::new());
        assert_eq!(
            plan.decisions,
            vec![
                Decision::New(Ok(())),
                Decision::New(Err(Rejection::ReversalMismatch(target))),
                Decision::New(Ok(())),
                Decision::New(Err(Rejection::AlreadyReversed(target))),
            ]
        );
        assert_eq!(plan.dirty[&AccountId(1)].debits, fen(5));
        assert_eq!(plan.dirty[&AccountId(1)].credits, fen(5));
    }

    #[test]
    fn unknown_account_and_region_mismatch() {
        let mut states = accounts();
        if let Some(state) = states.get_mut(&AccountId(3)) {
            state.admdvs = Admdvs::parse("120000").unwrap();
        }
        let items = [
            item(1, &[(1, Side::Debit, 5), (9, Side::Credit, 5)], None),
            item(2, &[(1, Side::Debit, 5), (3, Side::Credit, 5)], None),
        ];
        let plan = plan_batch(&items, &HashMap::new(), &states, &HashMap::new());
        assert_eq!(
            plan.decisions,
            vec![
                Decision::New(Err(Rejection::UnknownAccount(AccountId(9)))),
                Decision::New(Err(Rejection::RegionMismatch(AccountId(3)))),
            ]
        );
        assert!(plan.dirty.is_empty());
    }
}
