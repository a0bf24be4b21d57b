//! Property test: random sequences of ledger operations against SQLite and PostgreSQL, checked
//! after EVERY operation against an independent model kept in this file (plain integer
//! arithmetic over the legs the test itself generated):
//! - per region, total debits = total credits (from `verify().regions`);
//! - every account's balance = the model's replay, and `verify()` (the ledger's own replay of its
//!   journal) reports no problem;
//! - no personal account is below zero;
//! - a duplicate id with the same content returns the first result (receipt or rejection), with
//!   different content `IdempotencyConflict`.
//!
//! Seeded (`RngSeed::Fixed`) and without failure files, so a failure replays identically.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use settlement::{
    AccountFlags, AccountId, AccountKind, AccountSpec, Admdvs, Ledger, LedgerError, LedgerOptions,
    Link, Posting, Receipt, Rejection, Side, WriterOptions,
};

const REGIONS: [&str; 3] = ["110000", "120000", "130100"];

#[derive(Debug, Clone)]
enum Op {
    /// Create an account: region index, kind (0 fund, 1 personal, 2 institution), code index.
    Create(usize, u8, u8),
    /// A balanced posting over distinct accounts of one region: account picks, debit count,
    /// amounts.
    Post(usize, Vec<prop::sample::Index>, usize, Vec<i64>),
    /// Debit a personal account by more than its balance.
    Overdraw(prop::sample::Index, i64),
    /// Resubmit an earlier id with the same content.
    RepeatSame(prop::sample::Index),
    /// Resubmit an earlier id with different content.
    RepeatChanged(prop::sample::Index),
    /// Reverse an earlier posting (mirror legs, `Link::Reverses`).
    Reverse(prop::sample::Index),
    /// A posting with one leg in another region.
    CrossRegion(usize, prop::sample::Index, prop::sample::Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3usize, 0..3u8, 0..3u8).prop_map(|(r, k, c)| Op::Create(r, k, c)),
        5 => (0..3usize, prop::collection::vec(any::<prop::sample::Index>(), 2..5), 1..4usize,
              prop::collection::vec(1..5_000i64, 4))
            .prop_map(|(r, picks, d, amounts)| Op::Post(r, picks, d, amounts)),
        1 => (any::<prop::sample::Index>(), 1..1_000i64).prop_map(|(i, e)| Op::Overdraw(i, e)),
        1 => any::<prop::sample::Index>().prop_map(Op::RepeatSame),
        1 => any::<prop::sample::Index>().prop_map(Op::RepeatChanged),
        1 => any::<prop::sample::Index>().prop_map(Op::Reverse),
        1 => (0..3usize, any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(r, a, b)| Op::CrossRegion(r, a, b)),
    ]
}

/// The independent model.
#[derive(Default)]
struct Model {
    /// Accounts per region (id, flags), in creation order.
    accounts: Vec<(AccountId, Admdvs, AccountFlags)>,
    /// (debits, credits) per account, fen.
    balances: HashMap<AccountId, (i64, i64)>,
    /// Every submitted posting with its first answer.
    submitted: Vec<(Posting, Result<Receipt, Rejection>)>,
    /// Targets already reversed.
    reversed: Vec<settlement::PostingId>,
}

impl Model {
    fn in_region(&self, admdvs: Admdvs) -> Vec<(AccountId, AccountFlags)> {
        self.accounts
            .iter()
            .filter(|(_, r, _)| *r == admdvs)
            .map(|(id, _, flags)| (*id, *flags))
            .collect()
    }

    /// What the ledger must answer for a new posting whose accounts all exist in its region.
    fn expect(&self, posting: &Posting) -> Result<(), Rejection> {
        for leg in &posting.legs {
            let (_, region, flags) = self
                .accounts
                .iter()
                .find(|(id, _, _)| *id == leg.account)
                .unwrap();
            if *region != posting.admdvs {
                return Err(Rejection::RegionMismatch(leg.account));
            }
            let _ = flags;
        }
        for leg in &posting.legs {
            let (_, _, flags) = self
                .accounts
                .iter()
                .find(|(id, _, _)| *id == leg.account)
                .unwrap();
            let (d, c) = self.balances.get(&leg.account).copied().unwrap_or_default();
            let (d, c) = match leg.side {
                Side::Debit => (d + leg.amount.fen(), c),
                Side::Credit => (d, c + leg.amount.fen()),
            };
            if flags.debits_must_not_exceed_credits && d > c {
                return Err(Rejection::ExceedsCredits(leg.account));
            }
        }
        Ok(())
    }

    fn apply(&mut self, posting: &Posting) {
        for leg in &posting.legs {
            let entry = self.balances.entry(leg.account).or_default();
            match leg.side {
                Side::Debit => entry.0 += leg.amount.fen(),
                Side::Credit => entry.1 += leg.amount.fen(),
            }
        }
    }
}

async fn submit_new(
    ledger: &Ledger,
    model: &mut Model,
    posting: Posting,
    expected: Result<(), Rejection>,
) {
    let answer = ledger.post(posting.clone()).await;
    let first = match (expected, answer) {
        (Ok(()), Ok(receipt)) => {
            model.apply(&posting);
            if let Some(Link::Reverses(target)) = posting.link {
                model.reversed.push(target);
            }
            Ok(receipt)
        }
        (Err(rejection), Err(LedgerError::Rejected(got))) => {
            assert_eq!(got, rejection);
            Err(got)
        }
        (expected, got) => panic!("expected {expected:?}, got {got:?} for {posting:?}"),
    };
    model.submitted.push((posting, first));
}

async fn run_op(ledger: &Ledger, model: &mut Model, op: Op) {
    match op {
        Op::Create(r, kind, c) => {
            let admdvs = region(REGIONS[r]);
            let spec = match kind {
                0 => AccountSpec::fund(
                    admdvs,
                    settlement::FundPayType::parse(["310100", "390100", "610100"][usize::from(c)])
                        .unwrap(),
                ),
                1 => AccountSpec::personal(admdvs, code(&format!("P{c}"))),
                _ => AccountSpec::new(
                    admdvs,
                    AccountKind::InstitutionReceivable,
                    code(&format!("H{c}")),
                    AccountFlags::default(),
                )
                .unwrap(),
            };
            let account = ledger.create_account(&spec).await.unwrap();
            if !model.accounts.iter().any(|(id, _, _)| *id == account.id) {
                model.accounts.push((account.id, admdvs, spec.flags));
            }
        }
        Op::Post(r, picks, debits, amounts) => {
            let admdvs = region(REGIONS[r]);
            let mut pool = model.in_region(admdvs);
            let mut chosen = Vec::new();
            for pick in picks {
                if pool.is_empty() {
                    break;
                }
                chosen.push(pool.remove(pick.index(pool.len())));
            }
            if chosen.len() < 2 {
                return;
            }
            let debits = debits.min(chosen.len() - 1);
            let total: i64 = amounts[..debits].iter().sum();
            let credits = chosen.len() - debits;
            let mut legs = Vec::new();
            for (i, (id, _)) in chosen[..debits].iter().enumerate() {
                legs.push(leg(*id, Side::Debit, amounts[i]));
            }
            // Split the total over the credits; the last takes the remainder (each ≥ 1 fen).
            let share = (total / i64::try_from(credits).unwrap()).max(1);
            let mut left = total;
            for (i, (id, _)) in chosen[debits..].iter().enumerate() {
                let amount = if i + 1 == credits {
                    left
                } else {
                    share.min(left - 1)
                };
                if amount < 1 {
                    return;
                }
                left -= amount;
                legs.push(leg(*id, Side::Credit, amount));
            }
            let posting = posting(admdvs, legs);
            let expected = model.expect(&posting);
            submit_new(ledger, model, posting, expected).await;
        }
        Op::Overdraw(pick, extra) => {
            let persons: Vec<_> = model
                .accounts
                .iter()
                .filter(|(_, _, f)| f.debits_must_not_exceed_credits)
                .cloned()
                .collect();
            if persons.is_empty() {
                return;
            }
            let (person, admdvs, _) = persons[pick.index(persons.len())];
            let Some((other, _)) = model
                .in_region(admdvs)
                .into_iter()
                .find(|(id, _)| *id != person)
            else {
                return;
            };
            let (d, c) = model.balances.get(&person).copied().unwrap_or_default();
            let amount = c - d + extra;
            let posting = posting(
                admdvs,
                vec![
                    leg(person, Side::Debit, amount),
                    leg(other, Side::Credit, amount),
                ],
            );
            submit_new(
                ledger,
                model,
                posting,
                Err(Rejection::ExceedsCredits(person)),
            )
            .await;
        }
        Op::RepeatSame(pick) => {
            if model.submitted.is_empty() {
                return;
            }
            let (posting, first) = model.submitted[pick.index(model.submitted.len())].clone();
            match (first, ledger.post(posting).await) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(LedgerError::Rejected(b))) => assert_eq!(a, b),
                (first, again) => panic!("repeat changed the outcome: {first:?} then {again:?}"),
            }
        }
        Op::RepeatChanged(pick) => {
            if model.submitted.is_empty() {
                return;
            }
            let (mut posting, _) = model.submitted[pick.index(model.submitted.len())].clone();
            let last = posting.legs.len() - 1;
            posting.legs[0].amount = fen(posting.legs[0].amount.fen() + 1);
            let side = posting.legs[0].side;
            let j = (1..=last).find(|&j| posting.legs[j].side != side).unwrap();
            posting.legs[j].amount = fen(posting.legs[j].amount.fen() + 1);
            let err = ledger.post(posting.clone()).await.unwrap_err();
            assert!(
                matches!(err, LedgerError::IdempotencyConflict(id) if id == posting.id),
                "{err:?}"
            );
        }
        Op::Reverse(pick) => {
            let posted: Vec<_> = model
                .submitted
                .iter()
                .filter(|(p, r)| r.is_ok() && p.link.is_none())
                .map(|(p, _)| p.clone())
                .collect();
            if posted.is_empty() {
                return;
            }
            let target = &posted[pick.index(posted.len())];
            let legs = target
                .legs
                .iter()
                .map(|l| settlement::Leg {
                    side: l.side.opposite(),
                    ..*l
                })
                .collect();
            let mut reversal = posting(target.admdvs, legs);
            reversal.link = Some(Link::Reverses(target.id));
            let expected = if model.reversed.contains(&target.id) {
                Err(Rejection::AlreadyReversed(target.id))
            } else {
                model.expect(&reversal)
            };
            submit_new(ledger, model, reversal, expected).await;
        }
        Op::CrossRegion(r, a, b) => {
            let home = region(REGIONS[r]);
            let away = region(REGIONS[(r + 1) % 3]);
            let (here, there) = (model.in_region(home), model.in_region(away));
            if here.is_empty() || there.is_empty() {
                return;
            }
            let x = here[a.index(here.len())].0;
            let y = there[b.index(there.len())].0;
            let posting = posting(home, vec![leg(y, Side::Debit, 7), leg(x, Side::Credit, 7)]);
            submit_new(ledger, model, posting, Err(Rejection::RegionMismatch(y))).await;
        }
    }
}

async fn check_invariants(ledger: &Ledger, model: &Model) {
    let report = ledger.verify().await.unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    for (admdvs, (debits, credits)) in &report.regions {
        assert_eq!(debits, credits, "region {admdvs}");
    }
    for (id, _, flags) in &model.accounts {
        let balance = ledger.balance(*id).await.unwrap();
        let (d, c) = model.balances.get(id).copied().unwrap_or_default();
        assert_eq!(
            (balance.debits_posted.fen(), balance.credits_posted.fen()),
            (d, c),
            "account {id}"
        );
        if flags.debits_must_not_exceed_credits {
            assert!(
                balance.credit_balance_fen() >= 0,
                "personal account {id} below zero"
            );
        }
    }
}

fn run_property(db: Db, cases: u32, seed: u64) {
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runner
        .run(&prop::collection::vec(op(), 1..40), |ops| {
            runtime.block_on(async {
                let test = TestDb::new(db).await;
                // Small batches so that batching boundaries are exercised too.
                let options = LedgerOptions {
                    writer: WriterOptions {
                        batch_postings_max: 3,
                        ..WriterOptions::default()
                    },
                    ..LedgerOptions::default()
                };
                let ledger = test.open(options).await;
                let mut model = Model::default();
                // Seed each region with a pooled fund so that posts have material early.
                for r in 0..3 {
                    run_op(&ledger, &mut model, Op::Create(r, 0, 0)).await;
                }
                for op in ops {
                    run_op(&ledger, &mut model, op).await;
                    check_invariants(&ledger, &model).await;
                }
                ledger.close().await;
                test.drop_db().await;
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_operations_keep_the_invariants_on_sqlite() {
    run_property(Db::Sqlite, 24, 0x5e77_1e00_0000_0005);
}

#[test]
fn random_operations_keep_the_invariants_on_postgres() {
    run_property(Db::Postgres, 16, 0x5e77_1e00_0000_0006);
}
