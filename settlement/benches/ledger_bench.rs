//! Ledger throughput and latency: N concurrent submitters post 4-leg medical splits (pooled fund +
//! personal account + patient cash → institution receivable) against ONE hot pooled-fund account,
//! through the group-commit writer, on SQLite (file, WAL, synchronous=FULL) and PostgreSQL.
//!
//! Run: `cargo bench -p settlement --bench ledger_bench -- [--db sqlite|postgres|both]
//!       [--submitters 64] [--postings 20000] [--persons 1000]`
//! PostgreSQL at `LEDGER_TEST_PG_URL` (default postgres://postgres@127.0.0.1:5432/test); the bench
//! works in a schema of its own and drops it at the end. Prints postings/s and p50/p99/max latency
//! per posting (submit → durable answer).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use settlement::{
    AccountCode, AccountFlags, AccountKind, AccountSpec, Admdvs, Fen, FundPayType, Ledger,
    LedgerOptions, Leg, PgConnectOptions, Posting, PostingId, Side,
};
use sqlx::Connection;

struct Args {
    db: String,
    submitters: usize,
    postings: usize,
    persons: usize,
}

fn args() -> Args {
    let mut parsed = Args {
        db: "both".into(),
        submitters: 64,
        postings: 20_000,
        persons: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("flag value");
        match flag.as_str() {
            "--db" => parsed.db = value(),
            "--submitters" => parsed.submitters = value().parse().expect("number"),
            "--postings" => parsed.postings = value().parse().expect("number"),
            "--persons" => parsed.persons = value().parse().expect("number"),
            // `cargo bench` passes --bench; ignore unknown flags.
            _ => {}
        }
    }
    parsed
}

fn pg_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn fen(value: i64) -> Fen {
    Fen::from_fen(value).unwrap()
}

fn leg(account: settlement::AccountId, side: Side, amount: i64) -> Leg {
    Leg {
        account,
        side,
        amount: fen(amount),
    }
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_id() -> PostingId {
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    PostingId::v7(u64::try_from(ms).unwrap(), u128::from(n))
}

async fn run(label: &str, ledger: Ledger, args: &Args) {
    let admdvs = Admdvs::parse("110000").unwrap();
    let none = AccountFlags::default();
    let pooled = ledger
        .create_account(&AccountSpec::fund(admdvs, FundPayType::EMPLOYEE_POOLED))
        .await
        .unwrap()
        .id;
    let personal_fund = ledger
        .create_account(&AccountSpec::fund(
            admdvs,
            FundPayType::EMPLOYEE_PERSONAL_ACCOUNT,
        ))
        .await
        .unwrap()
        .id;
    let cash = ledger
        .create_account(
            &AccountSpec::new(
                admdvs,
                AccountKind::PatientCash,
                AccountCode::parse("COUNTER").unwrap(),
                none,
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .id;
    let institution = ledger
        .create_account(
            &AccountSpec::new(
                admdvs,
                AccountKind::InstitutionReceivable,
                AccountCode::parse("H11010500001").unwrap(),
                none,
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .id;
    let ledger = Arc::new(ledger);
    let mut persons = Vec::new();
    let mut deposits = Vec::new();
    for n in 0..args.persons {
        let person = ledger
            .create_account(&AccountSpec::personal(
                admdvs,
                AccountCode::parse(&format!("P{n:06}")).unwrap(),
            ))
            .await
            .unwrap()
            .id;
        persons.push(person);
        let ledger = ledger.clone();
        deposits.push(tokio::spawn(async move {
            let deposit = Posting {
                id: next_id(),
                admdvs,
                legs: vec![
                    leg(personal_fund, Side::Debit, 100_000_000),
                    leg(person, Side::Credit, 100_000_000),
                ],
                link: None,
            };
            ledger.post(deposit).await.unwrap();
        }));
    }
    for deposit in deposits {
        deposit.await.unwrap();
    }
    let persons = Arc::new(persons);
    let per_submitter = args.postings / args.submitters;
    let started = Instant::now();
    let mut handles = Vec::new();
    for s in 0..args.submitters {
        let ledger = ledger.clone();
        let persons = persons.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_submitter);
            for i in 0..per_submitter {
                let person = persons[(s * per_submitter + i) % persons.len()];
                let (hifp, acct, cash_fen) = (84_000, 5_000, 211_000);
                let posting = Posting {
                    id: next_id(),
                    admdvs,
                    legs: vec![
                        leg(pooled, Side::Debit, hifp),
                        leg(person, Side::Debit, acct),
                        leg(cash, Side::Debit, cash_fen),
                        leg(institution, Side::Credit, hifp + acct + cash_fen),
                    ],
                    link: None,
                };
                let t = Instant::now();
                ledger.post(posting).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for handle in handles {
        latencies.extend(handle.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    // Nearest-rank percentile in per mille, integer index arithmetic.
    let pct =
        |per_mille: usize| latencies[(latencies.len() - 1) * per_mille / 1000].as_secs_f64() * 1e3;
    let rate = f64::from(u32::try_from(latencies.len()).unwrap()) / elapsed.as_secs_f64();
    println!(
        "{label}: {} postings, {} submitters, {:.2} s: {:.0} postings/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        args.submitters,
        elapsed.as_secs_f64(),
        rate,
        pct(500),
        pct(990),
        pct(1000),
    );
    let ledger = Arc::into_inner(ledger).unwrap();
    let report = ledger.verify().await.unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    let pooled_balance = ledger.balance(pooled).await.unwrap();
    assert_eq!(
        pooled_balance.debits_posted.fen(),
        84_000 * i64::try_from(latencies.len()).unwrap()
    );
    ledger.close().await;
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if args.db == "sqlite" || args.db == "both" {
            let dir = std::env::temp_dir().join(format!("ledger-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let ledger = Ledger::open_data_dir(&dir, LedgerOptions::default())
                .await
                .unwrap();
            run("sqlite (WAL, synchronous=FULL)", ledger, &args).await;
            std::fs::remove_dir_all(&dir).unwrap();
        }
        if args.db == "postgres" || args.db == "both" {
            let schema = format!("bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let connect = PgConnectOptions::from_str(&pg_url())
                .unwrap()
                .options([("search_path", schema.as_str())]);
            let ledger = Ledger::open_postgres(connect, LedgerOptions::default())
                .await
                .unwrap();
            run("postgres (synchronous_commit=on)", ledger, &args).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    });
}
