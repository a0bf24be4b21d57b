//! `verify`: recompute every balance from the journal and compare with the stored balances.
//!
//! The replay reads the legs in commit order and sums them in `i128` (no overflow possible), then
//! checks: each posted posting balances (debits = credits) and stays in its region; rejected
//! postings have no legs; every account's stored `debits_posted` / `credits_posted` equals the
//! replayed sums; balance conditions hold; per region, total debits = total credits. Used by the
//! tests after every operation and, later, by an operator command (TigerBeetle-style online
//! verification, anchors-switch.md §6(c) 4).

use std::collections::{BTreeMap, HashMap};

use crate::account::{Account, Balance};
use crate::error::Result;
use crate::ids::{AccountId, Admdvs};
use crate::posting::Side;
use crate::store::Store;

/// Postings read per journal page during replay.
const JOURNAL_PAGE_POSTINGS: i64 = 2_000;

/// A single inconsistency found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Stored balances differ from the replay of the journal.
    BalanceMismatch {
        /// The account.
        account: AccountId,
        /// As stored.
        stored: Balance,
        /// Replayed sum of debit legs, fen.
        replayed_debits_fen: i128,
        /// Replayed sum of credit legs, fen.
        replayed_credits_fen: i128,
    },
    /// A posted posting whose legs do not balance.
    UnbalancedPosting {
        /// Its seq.
        seq: i64,
    },
    /// A posted posting with fewer than 2 legs, or a rejected one with legs.
    LegCount {
        /// Its seq.
        seq: i64,
    },
    /// A leg on an account of another region, or on no account at all.
    LegAccount {
        /// The posting's seq.
        seq: i64,
        /// The account.
        account: AccountId,
    },
    /// An account breaks its own balance condition.
    ConditionViolated {
        /// The account.
        account: AccountId,
    },
    /// A region's account balances do not sum to zero.
    RegionUnbalanced {
        /// The region.
        admdvs: Admdvs,
    },
}

/// The outcome of `verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Accounts checked.
    pub accounts: usize,
    /// Posted postings replayed.
    pub postings_posted: u64,
    /// Rejected postings seen.
    pub postings_rejected: u64,
    /// Legs replayed.
    pub legs: u64,
    /// Per region: (sum of debits_posted, sum of credits_posted) over its accounts, fen.
    pub regions: BTreeMap<Admdvs, (i128, i128)>,
    /// Everything that did not add up; empty when consistent.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Replays the whole journal of `store`. For an exact answer run it while no writer is active
/// (the accounts are read first, the journal after).
pub(crate) async fn verify(store: &Store) -> Result<VerifyReport> {
    let accounts: Vec<Account> = store.accounts().await?;
    let by_id: HashMap<AccountId, &Account> = accounts.iter().map(|a| (a.id, a)).collect();
    let mut report = VerifyReport {
        accounts: accounts.len(),
        ..VerifyReport::default()
    };
    let mut replayed: HashMap<AccountId, (i128, i128)> = HashMap::new();
    let mut after_seq = 0;
    loop {
        let page = store.journal_page(after_seq, JOURNAL_PAGE_POSTINGS).await?;
        let Some(last) = page.last() else { break };
        after_seq = last.seq;
        for row in &page {
            if !row.posted {
                report.postings_rejected += 1;
                if !row.legs.is_empty() {
                    report.problems.push(Problem::LegCount { seq: row.seq });
                }
                continue;
            }
            report.postings_posted += 1;
            if row.legs.len() < 2 {
                report.problems.push(Problem::LegCount { seq: row.seq });
            }
            let (mut debits, mut credits) = (0_i128, 0_i128);
            for leg in &row.legs {
                report.legs += 1;
                let amount = i128::from(leg.amount.fen());
                let entry = replayed.entry(leg.account).or_default();
                match leg.side {
                    Side::Debit => {
                        debits += amount;
                        entry.0 += amount;
                    }
                    Side::Credit => {
                        credits += amount;
                        entry.1 += amount;
                    }
                }
                let in_region = by_id
                    .get(&leg.account)
                    .is_some_and(|account| account.spec.admdvs == row.admdvs);
                if !in_region {
                    report.problems.push(Problem::LegAccount {
                        seq: row.seq,
                        account: leg.account,
                    });
                }
            }
            if debits != credits {
                report
                    .problems
                    .push(Problem::UnbalancedPosting { seq: row.seq });
            }
        }
    }
    for account in &accounts {
        let (debits, credits) = replayed.get(&account.id).copied().unwrap_or_default();
        let stored = account.balance;
        let stored_debits = i128::from(stored.debits_posted.fen());
        let stored_credits = i128::from(stored.credits_posted.fen());
        if (stored_debits, stored_credits) != (debits, credits) {
            report.problems.push(Problem::BalanceMismatch {
                account: account.id,
                stored,
                replayed_debits_fen: debits,
                replayed_credits_fen: credits,
            });
        }
        let flags = account.spec.flags;
        if (flags.debits_must_not_exceed_credits && stored_debits > stored_credits)
            || (flags.credits_must_not_exceed_debits && stored_credits > stored_debits)
        {
            report.problems.push(Problem::ConditionViolated {
                account: account.id,
            });
        }
        let region = report.regions.entry(account.spec.admdvs).or_default();
        region.0 += stored_debits;
        region.1 += stored_credits;
    }
    for (admdvs, (debits, credits)) in &report.regions {
        if debits != credits {
            report
                .problems
                .push(Problem::RegionUnbalanced { admdvs: *admdvs });
        }
    }
    Ok(report)
}
