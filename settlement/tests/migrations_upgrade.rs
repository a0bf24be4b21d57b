//! Upgrading a store that holds data: a database migrated only up to 0003 (the medical tables,
//! accumulator changes as one row per name in `accumulator_deltas`) is given rows, then opened by
//! the current code, which runs the later migrations. The per-settlement rows of
//! `accumulator_changes` must carry exactly the old rows' amounts, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{BOTH, Db, TestDb, pg_url};
use settlement::LedgerOptions;
use sqlx::Connection;

/// Rows of the old table: (psn_no, year, setl_id, sign, name, delta_fen).
const OLD_ROWS: [(&str, i64, &str, i64, &str, i64); 6] = [
    ("P1", 2026, "S1", 1, "deductible_used", 80_000),
    ("P1", 2026, "S1", 1, "fund_paid", 12_345),
    ("P1", 2026, "S1", -1, "deductible_used", -80_000),
    ("P1", 2026, "S1", -1, "fund_paid", -12_345),
    ("P1", 2026, "S2", 1, "fund_paid", 7),
    ("P2", 2025, "S9", 1, "admissions", 1),
];

/// The last migration before accumulator changes became one row per settlement.
const BEFORE_CHANGES: i64 = 3;

type Key = (String, i64, String, i64);

fn expected() -> BTreeMap<Key, BTreeMap<String, i64>> {
    let mut out: BTreeMap<Key, BTreeMap<String, i64>> = BTreeMap::new();
    for (psn, year, setl, sign, name, fen) in OLD_ROWS {
        out.entry((psn.to_owned(), year, setl.to_owned(), sign))
            .or_default()
            .insert(name.to_owned(), fen);
    }
    out
}

fn decode(rows: Vec<(String, i64, String, i64, String)>) -> BTreeMap<Key, BTreeMap<String, i64>> {
    rows.into_iter()
        .map(|(psn, year, setl, sign, deltas)| {
            let deltas: BTreeMap<String, i64> = serde_json::from_str(&deltas)
                .unwrap_or_else(|error| panic!("deltas {deltas:?} is not {{name: fen}}: {error}"));
            ((psn, year, setl, sign), deltas)
        })
        .collect()
}

const INSERT_OLD: &str = "INSERT INTO accumulator_deltas \
    (psn_no, year, setl_id, sign, name, delta_fen) VALUES ($1, $2, $3, $4, $5, $6)";
const SELECT_NEW: &str =
    "SELECT psn_no, year, setl_id, sign, deltas FROM accumulator_changes ORDER BY 1, 2, 3, 4";

/// Inserts `OLD_ROWS` into `accumulator_deltas` on `$conn` (a SQLite or PostgreSQL connection).
macro_rules! insert_old_rows {
    ($conn:ident) => {
        for (psn, year, setl, sign, name, fen) in OLD_ROWS {
            sqlx::query(INSERT_OLD)
                .bind(psn)
                .bind(year)
                .bind(setl)
                .bind(sign)
                .bind(name)
                .bind(fen)
                .execute(&mut $conn)
                .await
                .unwrap();
        }
    };
}

#[tokio::test]
async fn accumulator_rows_survive_the_upgrade_to_one_row_per_settlement() {
    for db in BOTH {
        let test = TestDb::new(db).await;
        match db {
            Db::Sqlite => {
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    test.sqlite_path().unwrap().display()
                );
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::migrate!("./migrations/sqlite")
                    .run_to(BEFORE_CHANGES, &mut conn)
                    .await
                    .unwrap();
                insert_old_rows!(conn);
                conn.close().await.unwrap();
            }
            Db::Postgres => {
                let mut conn = pg_conn(&test).await;
                sqlx::migrate!("./migrations/postgres")
                    .run_to(BEFORE_CHANGES, &mut conn)
                    .await
                    .unwrap();
                insert_old_rows!(conn);
                conn.close().await.unwrap();
            }
        }

        // The current code opens the store and runs every later migration.
        let ledger = test.open(LedgerOptions::default()).await;
        ledger.close().await;

        let rows: Vec<(String, i64, String, i64, String)> = match db {
            Db::Sqlite => {
                let url = format!("sqlite://{}", test.sqlite_path().unwrap().display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_as(SELECT_NEW)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            }
            Db::Postgres => {
                let mut conn = pg_conn(&test).await;
                sqlx::query_as(SELECT_NEW)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(decode(rows), expected(), "{db:?}");
        test.drop_db().await;
    }
}

async fn pg_conn(test: &TestDb) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let schema = test.pg_schema().unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}
