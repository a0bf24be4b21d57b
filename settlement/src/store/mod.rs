//! Storage: one set of SQL over SQLite (embedded default) and PostgreSQL (production).
//!
//! Both schemas are column-for-column equal (migrations/sqlite, migrations/postgres) and every
//! query is written once: the `dispatch!` macro expands the same body for each backend's concrete
//! sqlx types, so each is type-checked for both databases. The only dialect differences are named
//! here: how a write transaction begins (`BEGIN IMMEDIATE` on SQLite, plain `BEGIN` on PostgreSQL)
//! and the row-lock suffix (`FOR UPDATE` on PostgreSQL; SQLite has one writer at a time).
//!
//! **Keyed lookups on PostgreSQL are driven by the key array** (`FROM UNNEST($1) AS k CROSS JOIN
//! LATERAL (SELECT ... WHERE t.key = k.key OFFSET 0)`), not written `WHERE key = ANY($1)` or
//! `(a, b) IN (SELECT * FROM UNNEST(...))`. Those leave the join strategy to the planner, which
//! on a table that grew since its last ANALYZE (a fresh node's first minutes, a day's bulk
//! load) chose sequential scans and hash joins and then kept them in the statement's cached
//! generic plan: the accumulator load took 4.4 ms a call on 50,000 rows, and 0.07 ms once
//! driven by the key array (pg_stat_statements, settle_bench on PostgreSQL, 64 clients). The
//! lateral form is a nested loop of one index probe per key whatever the statistics say.
//!
//! **Generic plans.** A prepared statement is planned again for its parameters (a custom plan)
//! unless its cached generic plan costs no more than the custom plans so far (PostgreSQL docs,
//! PREPARE, "plan_cache_mode"). `UNNEST($1)` of a bound array is costed at the array's length in a
//! custom plan and at 10 elements in the generic one, so a statement that is usually bound short
//! arrays (the money loader: 1-6 keys) never passes that test and was planned on every call:
//! 0.22 ms of planning for 0.08 ms of execution, 11 % of PostgreSQL's CPU in settle_bench
//! (pg_stat_statements `plans` = `calls`). Such a statement reads its arrays through sub-selects,
//! `UNNEST((SELECT $1::text[]))`, which no plan can see into: both plans cost 10 elements, and
//! the generic plan is kept.

pub(crate) mod advisory;
pub(crate) mod batch;
pub(crate) mod queries;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::error::{LedgerError, Result};

/// See `Store::postings_mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostingsMark {
    /// The last `postings.seq` drawn when the mark was taken.
    pub(crate) seq: i64,
    /// The transactions that had drawn a seq and were open just after (virtual transaction ids;
    /// `OPEN_SEQ_DRAWERS`).
    pub(crate) open: Vec<String>,
}

/// The transactions that have drawn a `postings.seq` and are still open, as virtual transaction
/// ids, other than this statement's own: `nextval` takes `RowExclusiveLock` on the sequence and
/// keeps it until the top-level transaction ends (PostgreSQL source, sequence.c
/// `lock_and_open_sequence`; pg_locks lists fast-path locks too). Transactions that never touch
/// the sequence (a report, autovacuum, another schema's writers) do not hold the feed back.
const OPEN_SEQ_DRAWERS: &str = "SELECT COALESCE(array_agg(DISTINCT l.virtualtransaction), '{}') \
     FROM pg_locks l \
     WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.granted \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND l.relation = pg_get_serial_sequence('postings', 'seq')::regclass \
     AND l.pid IS DISTINCT FROM pg_backend_pid()";

/// A value per backend. `Store` holds the pools, `Tx` an open write transaction.
#[derive(Debug, Clone)]
pub(crate) enum Backend<S, P> {
    /// SQLite.
    Sqlite(S),
    /// PostgreSQL.
    Postgres(P),
}

/// The connection pools.
pub(crate) type Store = Backend<SqlitePool, PgPool>;
/// An open write transaction.
pub(crate) type Tx = Backend<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>;

/// Expands `$body` once per backend with `$conn` bound to that backend's value.
macro_rules! dispatch {
    ($target:expr, $conn:ident => $body:expr) => {
        match $target {
            $crate::store::Backend::Sqlite($conn) => $body,
            $crate::store::Backend::Postgres($conn) => $body,
        }
    };
}
pub(crate) use dispatch;

/// How long an SQLite connection waits for the write lock before failing (ms). Account creation
/// and the writer share the single SQLite writer slot.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;
/// A pooled PostgreSQL connection idle at least this long is pinged before it is handed out
/// (`open_postgres`); under load connections come back within milliseconds and are not.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Connection settings of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most pooled connections (the writer uses one at a time; the rest serve reads).
    pub connections_max: u32,
    /// How long to wait for a pooled connection, ms.
    pub acquire_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            connections_max: 8,
            acquire_timeout_ms: 10_000,
        }
    }
}

impl Store {
    /// Opens an SQLite file (created if missing) in WAL mode with `synchronous=FULL`.
    ///
    /// Why FULL: in WAL mode `synchronous=NORMAL` does not fsync at commit, only at checkpoints,
    /// so a power loss or OS crash can lose the last commits after they were acknowledged
    /// (limits.md §2). An acknowledged settlement must survive that, and group commit pays the
    /// one fsync per batch, not per posting.
    pub(crate) async fn open_sqlite(path: &Path, options: &StoreOptions) -> Result<Store> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS));
        let pool = SqlitePoolOptions::new()
            .max_connections(options.connections_max)
            .acquire_timeout(Duration::from_millis(options.acquire_timeout_ms))
            .connect_with(connect)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Backend::Sqlite(pool))
    }

    /// Opens PostgreSQL from already-built options (tests set a per-test `search_path` here).
    pub(crate) async fn open_postgres(
        connect: PgConnectOptions,
        options: &StoreOptions,
    ) -> Result<Store> {
        let pool = PgPoolOptions::new()
            .max_connections(options.connections_max)
            // sqlx's default pings every connection it hands out: one more round trip per
            // group-commit batch, on the writer's serial path (settle_bench: ~0.3 ms of a ~4 ms
            // batch on a loaded machine). Only a connection that sat idle (where a server
            // restart or an idle timeout can have closed it) is pinged; one that fails is
            // dropped and another taken. One that dies while busy fails its statement; the
            // ledger writer retries such a batch (writer::retryable), which is safe because a
            // batch decides its idempotency inside its transaction.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .acquire_timeout(Duration::from_millis(options.acquire_timeout_ms))
            .connect_with(connect)
            .await?;
        // sqlx takes an advisory lock while migrating, so several processes may start at once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Backend::Postgres(pool))
    }

    /// Opens by URL: `sqlite:PATH` / `sqlite://PATH` or `postgres://...` / `postgresql://...`.
    pub(crate) async fn open_url(url: &str, options: &StoreOptions) -> Result<Store> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            Store::open_sqlite(Path::new(path), options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?;
            Store::open_postgres(connect, options).await
        } else {
            Err(LedgerError::UnsupportedUrl)
        }
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the write lock up front, so
    /// the read-then-write batch never fails to upgrade a read snapshot), `BEGIN` on PostgreSQL
    /// (READ COMMITTED; rows are locked explicitly with `FOR UPDATE`).
    pub(crate) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Backend::Sqlite(pool) => Backend::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(pool) => Backend::Postgres(pool.begin().await?),
        })
    }

    /// A mark toward the commit horizon of `postings.seq` (PostgreSQL; `None` on SQLite, whose
    /// seqs commit in order): the last seq drawn so far, and the transactions that had drawn
    /// one and were still open right after it was read. Once none of them is open any more
    /// (`any_open`), every posting with a seq at or below the mark is committed or rolled back
    /// for good.
    ///
    /// Why: a seq is drawn when a posting is inserted, not when its batch commits, so on
    /// PostgreSQL two processes' batches (issue 6) can commit out of seq order, and a reader
    /// that moved a cursor past the higher seq would never see the lower one (the partner feed,
    /// `partner::webhook`). A seq at or below the mark was drawn before the mark was read, by a
    /// transaction that had ended by then or still held the sequence's lock when the drawers
    /// were listed just after. Nothing is asked of the writers (no lock on their path). This
    /// holds only while the sequence hands out one value at a time (`CACHE 1`, the default):
    /// with a cache, a backend could later draw a value below the mark from its cached block,
    /// so a larger cache is refused. SQLite has one writer at a time (`BEGIN IMMEDIATE`), so a
    /// reader never sees a seq above an uncommitted one.
    ///
    /// Errors: database; `Configuration` when the sequence's cache is not 1 or its last value
    /// cannot be read although postings exist (no privilege on the sequence).
    pub(crate) async fn postings_mark(&self) -> Result<Option<PostingsMark>, sqlx::Error> {
        let Backend::Postgres(pool) = self else {
            return Ok(None);
        };
        // Two statements, in this order: the seq first, then who is open.
        let (seq, cache): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT pg_sequence_last_value(s.id), \
             (SELECT seqcache FROM pg_sequence WHERE seqrelid = s.id) \
             FROM (SELECT pg_get_serial_sequence('postings', 'seq')::regclass AS id) AS s",
        )
        .fetch_one(pool)
        .await?;
        if cache != Some(1) {
            return Err(sqlx::Error::Configuration(
                format!(
                    "the sequence of postings.seq has CACHE {cache:?}; readers of the journal in \
                     seq order need CACHE 1 (ALTER SEQUENCE ... CACHE 1)"
                )
                .into(),
            ));
        }
        let seq = match seq {
            Some(seq) => seq,
            None => {
                // Never drawn (no posting yet), or not readable by this role.
                let (any,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM postings)")
                    .fetch_one(pool)
                    .await?;
                if any {
                    return Err(sqlx::Error::Configuration(
                        "cannot read the last value of postings.seq's sequence (grant SELECT \
                         on it to this role)"
                            .into(),
                    ));
                }
                0
            }
        };
        let (open,): (Vec<String>,) = sqlx::query_as(OPEN_SEQ_DRAWERS).fetch_one(pool).await?;
        Ok(Some(PostingsMark { seq, open }))
    }

    /// Whether any of `transactions` (virtual transaction ids from `postings_mark`) still holds
    /// the lock of a seq it drew. Always `false` on SQLite. Errors: database.
    pub(crate) async fn any_open(&self, transactions: &[String]) -> Result<bool, sqlx::Error> {
        let Backend::Postgres(pool) = self else {
            return Ok(false);
        };
        if transactions.is_empty() {
            return Ok(false);
        }
        let (open,): (Vec<String>,) = sqlx::query_as(OPEN_SEQ_DRAWERS).fetch_one(pool).await?;
        Ok(transactions.iter().any(|t| open.contains(t)))
    }

    /// Closes the pools.
    pub(crate) async fn close(&self) {
        dispatch!(self, pool => pool.close().await);
    }
}

impl Tx {
    /// The suffix that locks selected rows until commit (PostgreSQL), empty on SQLite whose
    /// `BEGIN IMMEDIATE` already excludes every other writer.
    pub(crate) fn lock_suffix(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => " FOR UPDATE",
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        dispatch!(self, tx => tx.commit().await)
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        dispatch!(self, tx => tx.rollback().await)
    }
}
