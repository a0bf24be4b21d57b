//! Scenario tests of the ledger, each run on SQLite and on PostgreSQL: state-dependent validation
//! (unknown account, region mismatch, balance conditions), idempotency (same content → first
//! result, failures included; other content → conflict), reversals and corrections, paging,
//! immutability of the journal, and `verify`. Expected values are hand arithmetic on the amounts
//! given in each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Amounts are written yuan_fen (`840_00` = 840.00 yuan = 84 000 fen) so they read like the bills.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use common::*;
use settlement::{
    AccountFlags, AccountKind, AccountSpec, LedgerError, LedgerOptions, Link, PostingError,
    Rejection, Side,
};

#[tokio::test]
async fn medical_split_posts_and_balances() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let bj = region_accounts(&ledger, region("110000")).await;
        let person = funded_person(&ledger, &bj, "P0001", 50_00).await;
        // medical-settlement.md §5.4 outpatient example: 3000 in scope → fund 840.00; the
        // personal share 2160.00 is paid 50.00 from the account and 2110.00 cash.
        let split = medical_split(&bj, person, 840_00, 50_00, 2110_00);
        let receipt = ledger.post(split.clone()).await.unwrap();
        assert_eq!(receipt.id, split.id);
        let inst = ledger.balance(bj.institution).await.unwrap();
        assert_eq!(inst.credits_posted, fen(3000_00));
        assert_eq!(
            ledger.balance(bj.pooled).await.unwrap().debits_posted,
            fen(840_00)
        );
        let p = ledger.balance(person).await.unwrap();
        assert_eq!(
            (p.debits_posted, p.credits_posted),
            (fen(50_00), fen(50_00))
        );
        assert_eq!(p.credit_balance_fen(), 0);
        let record = ledger.posting(split.id).await.unwrap().unwrap();
        assert_eq!(record.legs, split.legs);
        assert_eq!(record.outcome, Ok(()));
        assert_eq!(record.seq, receipt.seq);
        assert!(ledger.verify().await.unwrap().is_consistent(), "{db:?}");
        ledger.close().await;
        test.drop_db().await;
    }
}

#[tokio::test]
async fn state_dependent_rejections_are_stored_and_replayed() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let bj = region_accounts(&ledger, region("110000")).await;
        let tj = region_accounts(&ledger, region("120000")).await;
        let person = funded_person(&ledger, &bj, "P0001", 10_00).await;

        // Personal account holds 10.00: debiting 10.01 must fail (never below zero).
        let overdraw = medical_split(&bj, person, 1_00, 10_01, 1);
        let err = ledger.post(overdraw.clone()).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::Rejected(Rejection::ExceedsCredits(a)) if a == person),
            "{err:?}"
        );
        // Top the account up: a retry of the SAME id still gets the stored failure
        // (TigerBeetle id_already_failed), not a different outcome.
        ledger
            .post(posting(
                bj.admdvs,
                vec![
                    leg(bj.personal_fund, Side::Debit, 100_00),
                    leg(person, Side::Credit, 100_00),
                ],
            ))
            .await
            .unwrap();
        let again = ledger.post(overdraw.clone()).await.unwrap_err();
        assert!(
            matches!(again, LedgerError::Rejected(Rejection::ExceedsCredits(a)) if a == person)
        );
        let record = ledger.posting(overdraw.id).await.unwrap().unwrap();
        assert_eq!(record.outcome, Err(Rejection::ExceedsCredits(person)));
        assert!(record.legs.is_empty());

        // A leg in another region.
        let cross = posting(
            bj.admdvs,
            vec![
                leg(bj.pooled, Side::Debit, 5),
                leg(tj.institution, Side::Credit, 5),
            ],
        );
        let err = ledger.post(cross).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::Rejected(Rejection::RegionMismatch(a)) if a == tj.institution)
        );

        // An account that does not exist.
        let ghost = settlement::AccountId::from_raw(987_654);
        let err = ledger
            .post(posting(
                bj.admdvs,
                vec![leg(bj.pooled, Side::Debit, 5), leg(ghost, Side::Credit, 5)],
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, LedgerError::Rejected(Rejection::UnknownAccount(a)) if a == ghost));

        // Stateless errors are refused before the ledger and stored nowhere.
        let unbalanced = posting(
            bj.admdvs,
            vec![
                leg(bj.pooled, Side::Debit, 5),
                leg(bj.cash, Side::Credit, 4),
            ],
        );
        let err = ledger.post(unbalanced.clone()).await.unwrap_err();
        assert!(matches!(
            err,
            LedgerError::Invalid(PostingError::Unbalanced {
                debits_fen: 5,
                credits_fen: 4
            })
        ));
        assert_eq!(ledger.posting(unbalanced.id).await.unwrap(), None);

        // Nothing above moved money except the two deposits (10.00 + 100.00).
        let p = ledger.balance(person).await.unwrap();
        assert_eq!((p.debits_posted, p.credits_posted), (fen(0), fen(110_00)));
        let report = ledger.verify().await.unwrap();
        assert!(report.is_consistent(), "{report:?}");
        assert_eq!(report.postings_posted, 2);
        assert_eq!(report.postings_rejected, 3);
        ledger.close().await;
        test.drop_db().await;
    }
}

#[tokio::test]
async fn duplicate_ids_return_first_result_or_conflict() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let bj = region_accounts(&ledger, region("110000")).await;
        let person = funded_person(&ledger, &bj, "P0001", 5_00).await;
        let split = medical_split(&bj, person, 3_00, 2_00, 1_00);
        let first = ledger.post(split.clone()).await.unwrap();
        let second = ledger.post(split.clone()).await.unwrap();
        assert_eq!(first, second);
        let mut changed = split.clone();
        changed.legs[2].amount = fen(2_00);
        changed.legs[3].amount = fen(7_00);
        let err = ledger.post(changed).await.unwrap_err();
        assert!(matches!(err, LedgerError::IdempotencyConflict(id) if id == split.id));
        // Applied once: the institution got 6.00, not 12.00.
        assert_eq!(
            ledger.balance(bj.institution).await.unwrap().credits_posted,
            fen(6_00)
        );
        // Concurrent repeats of one new id (likely in one batch): one effect, one receipt.
        let again = medical_split(&bj, person, 1_00, 1_00, 1_00);
        let ledger = std::sync::Arc::new(ledger);
        let answers = concurrent_copies(&ledger, &again, 20).await;
        assert_eq!(answers.len(), 20);
        assert!(answers.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(
            ledger.balance(bj.institution).await.unwrap().credits_posted,
            fen(9_00)
        );
        assert!(ledger.verify().await.unwrap().is_consistent());
        std::sync::Arc::into_inner(ledger).unwrap().close().await;
        test.drop_db().await;
    }
}

/// Submits `copies` of one posting from concurrent tasks (likely landing in one batch).
async fn concurrent_copies(
    ledger: &std::sync::Arc<settlement::Ledger>,
    posting: &settlement::Posting,
    copies: usize,
) -> Vec<settlement::Receipt> {
    let mut tasks = Vec::new();
    for _ in 0..copies {
        let (ledger, posting) = (ledger.clone(), posting.clone());
        tasks.push(tokio::spawn(async move { ledger.post(posting).await }));
    }
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.push(task.await.unwrap().unwrap());
    }
    receipts
}

#[tokio::test]
async fn reversal_mirrors_once_and_correction_links() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let bj = region_accounts(&ledger, region("110000")).await;
        let person = funded_person(&ledger, &bj, "P0001", 20_00).await;
        let split = medical_split(&bj, person, 30_00, 20_00, 5_00);
        ledger.post(split.clone()).await.unwrap();
        assert_eq!(
            ledger.balance(person).await.unwrap().credit_balance_fen(),
            0
        );

        let mut wrong = posting(bj.admdvs, split.legs.clone());
        wrong.link = Some(Link::Reverses(split.id));
        let err = ledger.post(wrong).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::Rejected(Rejection::ReversalMismatch(t)) if t == split.id)
        );

        let mirrored: Vec<_> = split
            .legs
            .iter()
            .map(|l| settlement::Leg {
                side: l.side.opposite(),
                ..*l
            })
            .collect();
        let mut reversal = posting(bj.admdvs, mirrored.clone());
        reversal.link = Some(Link::Reverses(split.id));
        ledger.post(reversal.clone()).await.unwrap();
        let mut twice = posting(bj.admdvs, mirrored);
        twice.link = Some(Link::Reverses(split.id));
        let err = ledger.post(twice).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::Rejected(Rejection::AlreadyReversed(t)) if t == split.id)
        );

        // After the reversal the person has the 20.00 back; the institution nets to zero.
        assert_eq!(
            ledger.balance(person).await.unwrap().credit_balance_fen(),
            20_00
        );
        assert_eq!(
            ledger
                .balance(bj.institution)
                .await
                .unwrap()
                .credit_balance_fen(),
            0
        );

        let mut fix = medical_split(&bj, person, 30_00, 10_00, 15_00);
        fix.link = Some(Link::Corrects(split.id));
        ledger.post(fix.clone()).await.unwrap();
        let record = ledger.posting(fix.id).await.unwrap().unwrap();
        assert_eq!(record.link, Some(Link::Corrects(split.id)));
        let mut dangling = medical_split(&bj, person, 1, 1, 1);
        let missing = next_id();
        dangling.link = Some(Link::Corrects(missing));
        let err = ledger.post(dangling).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::Rejected(Rejection::LinkTargetUnknown(t)) if t == missing)
        );
        assert!(ledger.verify().await.unwrap().is_consistent());
        ledger.close().await;
        test.drop_db().await;
    }
}

#[tokio::test]
async fn entries_page_in_commit_order() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let bj = region_accounts(&ledger, region("110000")).await;
        let person = funded_person(&ledger, &bj, "P0001", 0).await;
        let mut ids = Vec::new();
        for n in 1..=5 {
            let p = medical_split(&bj, person, n, 0, 0);
            // A 0-fen leg is invalid: use a 2-leg posting instead.
            let p = settlement::Posting {
                legs: vec![p.legs[0], leg(bj.institution, Side::Credit, n)],
                ..p
            };
            ids.push(p.id);
            ledger.post(p).await.unwrap();
        }
        let first = ledger.account_entries(bj.pooled, 0, 2).await.unwrap();
        assert_eq!(
            first.iter().map(|e| e.posting).collect::<Vec<_>>(),
            ids[..2]
        );
        let rest = ledger
            .account_entries(bj.pooled, first[1].seq, 10)
            .await
            .unwrap();
        assert_eq!(rest.iter().map(|e| e.posting).collect::<Vec<_>>(), ids[2..]);
        assert_eq!(rest.iter().map(|e| e.amount.fen()).sum::<i64>(), 3 + 4 + 5);
        assert!(rest.iter().all(|e| e.side == Side::Debit));
        assert!(matches!(
            ledger.account_entries(bj.pooled, 0, 0).await,
            Err(LedgerError::PageLimit(_))
        ));
        ledger.close().await;
        test.drop_db().await;
    }
}

#[tokio::test]
async fn accounts_are_idempotent_and_flags_checked() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let admdvs = region("130100");
        let spec = AccountSpec::new(
            admdvs,
            AccountKind::Clearing,
            code("110000"),
            AccountFlags::default(),
        )
        .unwrap();
        let a = ledger.create_account(&spec).await.unwrap();
        let b = ledger.create_account(&spec).await.unwrap();
        assert_eq!(a, b);
        let other = AccountSpec::new(
            admdvs,
            AccountKind::Clearing,
            code("110000"),
            AccountFlags {
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: false,
            },
        )
        .unwrap();
        assert!(matches!(
            ledger.create_account(&other).await,
            Err(LedgerError::AccountConflict)
        ));
        // A personal account always carries the never-below-zero condition.
        let p = AccountSpec::new(
            admdvs,
            AccountKind::Personal,
            code("X1"),
            AccountFlags::default(),
        )
        .unwrap();
        assert!(p.flags.debits_must_not_exceed_credits);
        assert!(matches!(
            ledger
                .balance(settlement::AccountId::from_raw(424_242))
                .await,
            Err(LedgerError::UnknownAccount(_))
        ));
        ledger.close().await;
        test.drop_db().await;
    }
}

#[tokio::test]
async fn journal_rows_cannot_be_updated_or_deleted() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let bj = region_accounts(&ledger, region("110000")).await;
        ledger
            .post(posting(
                bj.admdvs,
                vec![
                    leg(bj.pooled, Side::Debit, 5),
                    leg(bj.institution, Side::Credit, 5),
                ],
            ))
            .await
            .unwrap();
        ledger.close().await;
        // Straight to the database, around the ledger: the triggers refuse.
        for sql in [
            "UPDATE legs SET amount_fen = 6",
            "DELETE FROM legs",
            "UPDATE postings SET status = 'R'",
            "DELETE FROM postings",
        ] {
            let failed = raw_execute(&test, sql).await;
            assert!(failed, "{db:?}: {sql} was allowed");
        }
        test.drop_db().await;
    }
}

/// Runs `sql` directly on the test database; true if the database refused it.
async fn raw_execute(test: &TestDb, sql: &'static str) -> bool {
    use sqlx::Connection;
    match test.db {
        Db::Sqlite => {
            let path = test.sqlite_path().unwrap();
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            assert!(
                sqlx::query("SELECT 1 FROM legs")
                    .fetch_all(&mut conn)
                    .await
                    .is_ok()
            );
            sqlx::query(sql).execute(&mut conn).await.is_err()
        }
        Db::Postgres => {
            let schema = test.pg_schema().unwrap();
            let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            assert!(
                sqlx::query("SELECT 1 FROM legs")
                    .fetch_all(&mut conn)
                    .await
                    .is_ok()
            );
            sqlx::query(sql).execute(&mut conn).await.is_err()
        }
    }
}

/// PostgreSQL ends every session of the ledger (as a server restart or an operator's
/// `pg_terminate_backend` would) between postings: the next postings still succeed, once the
/// pool's connections are dead but recently used (the writer retries the batch on a new
/// connection) and once they have sat idle (the pool pings them first and replaces them). The
/// balances then equal the sum of the postings that succeeded.
#[tokio::test]
async fn postings_survive_the_server_ending_the_ledgers_sessions() {
    use settlement::PgConnectOptions;
    use sqlx::Connection;
    use std::str::FromStr;

    let test = TestDb::new(Db::Postgres).await;
    let schema = test.pg_schema().unwrap().to_owned();
    // The sessions are found by application name: nothing else in the shared database is hit.
    let app_name = format!("ledger-ops-{schema}");
    let connect = PgConnectOptions::from_str(&pg_url())
        .unwrap()
        .application_name(&app_name)
        .options([("search_path", schema.as_str())]);
    let ledger = settlement::Ledger::open_postgres(connect, LedgerOptions::default())
        .await
        .unwrap();
    let bj = region_accounts(&ledger, region("110000")).await;
    let bill = || {
        posting(
            bj.admdvs,
            vec![
                leg(bj.pooled, Side::Debit, 100_00),
                leg(bj.cash, Side::Debit, 10_00),
                leg(bj.institution, Side::Credit, 110_00),
            ],
        )
    };
    let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let mut posted_hifp = 0;
    for (round, idle) in [(0, false), (1, true)] {
        ledger
            .post(bill())
            .await
            .unwrap_or_else(|error| panic!("round {round}, before the sessions end: {error}"));
        posted_hifp += 100_00;
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&app_name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(
            !ended.is_empty(),
            "round {round}: the ledger had no session to end"
        );
        if idle {
            tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        }
        ledger
            .post(bill())
            .await
            .unwrap_or_else(|error| panic!("round {round}, after the sessions ended: {error}"));
        posted_hifp += 100_00;
    }
    assert_eq!(
        ledger.balance(bj.pooled).await.unwrap().debits_posted,
        fen(posted_hifp)
    );
    assert_eq!(
        ledger.balance(bj.institution).await.unwrap().credits_posted,
        fen(posted_hifp / 100 * 110)
    );
    assert!(ledger.verify().await.unwrap().is_consistent());
    admin.close().await.unwrap();
    ledger.close().await;
    test.drop_db().await;
}
