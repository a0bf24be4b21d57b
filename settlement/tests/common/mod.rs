//! Test harness shared by the ledger test files: a fresh ledger per test on SQLite (a new file in
//! a new temporary directory) or PostgreSQL (a new schema in the `test` database, selected with
//! `search_path`), so tests run in parallel without seeing each other, and are removed afterwards.
//!
//! PostgreSQL is reached at `LEDGER_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`
//! (trust auth; `scripts/ensure-postgres` sets this up).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use settlement::{
    AccountCode, AccountId, AccountKind, AccountSpec, Admdvs, Fen, FundPayType, Ledger,
    LedgerOptions, Leg, PgConnectOptions, Posting, PostingId, Side,
};
use sqlx::Connection;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub const BOTH: [Db; 2] = [Db::Sqlite, Db::Postgres];

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

pub fn pg_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A throw-away database location.
pub struct TestDb {
    pub db: Db,
    dir: Option<PathBuf>,
    schema: Option<String>,
}

impl TestDb {
    pub async fn new(db: Db) -> TestDb {
        let name = unique_name();
        match db {
            Db::Sqlite => {
                let dir = std::env::temp_dir().join(format!("ledger-{name}"));
                std::fs::create_dir_all(&dir).unwrap();
                TestDb {
                    db,
                    dir: Some(dir),
                    schema: None,
                }
            }
            Db::Postgres => {
                let mut admin = sqlx::PgConnection::connect(&pg_url())
                    .await
                    .expect("PostgreSQL at LEDGER_TEST_PG_URL (run scripts/ensure-postgres)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                TestDb {
                    db,
                    dir: None,
                    schema: Some(name),
                }
            }
        }
    }

    /// Opens a ledger (a new pool and writer) on this database; call twice for two "processes".
    pub async fn open(&self, options: LedgerOptions) -> Ledger {
        match (&self.dir, &self.schema) {
            (Some(dir), _) => Ledger::open_data_dir(dir, options).await.unwrap(),
            (_, Some(schema)) => {
                let connect = PgConnectOptions::from_str(&pg_url())
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                Ledger::open_postgres(connect, options).await.unwrap()
            }
            _ => unreachable!(),
        }
    }

    /// The SQLite file, if this is an SQLite database.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(settlement::SQLITE_FILE_NAME))
    }

    /// The PostgreSQL schema, if this is a PostgreSQL database.
    pub fn pg_schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Removes the database.
    pub async fn drop_db(self) {
        if let Some(dir) = &self.dir {
            std::fs::remove_dir_all(dir).unwrap();
        }
        if let Some(schema) = &self.schema {
            let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
        }
    }
}

pub fn fen(value: i64) -> Fen {
    Fen::from_fen(value).unwrap()
}

pub fn region(code: &str) -> Admdvs {
    Admdvs::parse(code).unwrap()
}

pub fn code(text: &str) -> AccountCode {
    AccountCode::parse(text).unwrap()
}

static IDS: AtomicU64 = AtomicU64::new(1);

/// A fresh time-ordered posting id (UUIDv7 layout, increasing within the process).
pub fn next_id() -> PostingId {
    let n = IDS.fetch_add(1, Ordering::Relaxed);
    PostingId::v7(1_767_225_600_000 + n, u128::from(n))
}

pub fn leg(account: AccountId, side: Side, amount: i64) -> Leg {
    Leg {
        account,
        side,
        amount: fen(amount),
    }
}

pub fn posting(admdvs: Admdvs, legs: Vec<Leg>) -> Posting {
    Posting {
        id: next_id(),
        admdvs,
        legs,
        link: None,
    }
}

/// The accounts of one region used by the medical-split tests.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub admdvs: Admdvs,
    /// 310100 职工基本医疗保险统筹基金 (the hot account).
    pub pooled: AccountId,
    /// 310200 个人账户基金 (funds the personal accounts).
    pub personal_fund: AccountId,
    pub cash: AccountId,
    pub institution: AccountId,
}

pub async fn region_accounts(ledger: &Ledger, admdvs: Admdvs) -> Region {
    let pooled = ledger
        .create_account(&AccountSpec::fund(admdvs, FundPayType::EMPLOYEE_POOLED))
        .await
        .unwrap();
    let personal_fund = ledger
        .create_account(&AccountSpec::fund(
            admdvs,
            FundPayType::EMPLOYEE_PERSONAL_ACCOUNT,
        ))
        .await
        .unwrap();
    let none = settlement::AccountFlags::default();
    let cash = ledger
        .create_account(
            &AccountSpec::new(admdvs, AccountKind::PatientCash, code("COUNTER"), none).unwrap(),
        )
        .await
        .unwrap();
    let institution = ledger
        .create_account(
            &AccountSpec::new(
                admdvs,
                AccountKind::InstitutionReceivable,
                code("H11010500001"),
                none,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    Region {
        admdvs,
        pooled: pooled.id,
        personal_fund: personal_fund.id,
        cash: cash.id,
        institution: institution.id,
    }
}

/// A personal account credited with `deposit` fen from the region's personal-account fund.
pub async fn funded_person(
    ledger: &Ledger,
    region: &Region,
    person: &str,
    deposit: i64,
) -> AccountId {
    let account = ledger
        .create_account(&AccountSpec::personal(region.admdvs, code(person)))
        .await
        .unwrap()
        .id;
    if deposit > 0 {
        ledger
            .post(posting(
                region.admdvs,
                vec![
                    leg(region.personal_fund, Side::Debit, deposit),
                    leg(account, Side::Credit, deposit),
                ],
            ))
            .await
            .unwrap();
    }
    account
}

/// The 4-leg medical split: pooled fund + personal account + cash → institution receivable.
pub fn medical_split(
    region: &Region,
    person: AccountId,
    hifp: i64,
    acct: i64,
    cash: i64,
) -> Posting {
    posting(
        region.admdvs,
        vec![
            leg(region.pooled, Side::Debit, hifp),
            leg(person, Side::Debit, acct),
            leg(region.cash, Side::Debit, cash),
            leg(region.institution, Side::Credit, hifp + acct + cash),
        ],
    )
}
