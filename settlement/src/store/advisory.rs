//! Locks across the processes that serve one PostgreSQL database (issue 6: "a node is stateless
//! over its database: several processes can serve one region's database at once").
//!
//! What needs them: a person's money messages must run one after another (the split depends on
//! the accumulators and the account balance the previous one left), a transfer is handled by
//! one request at a time, and closing a clearing window must wait for the settlements stamped
//! with it. Within one process in-process locks do this; across processes these PostgreSQL
//! session advisory locks stand beside them: `lock` takes a connection from a small pool of its
//! own (never the ledger's, whose writer must always find a connection), takes the lock on it,
//! and holds both until the guard drops; a process that dies loses its connections and so its
//! locks. Keys are SHA-256 of the schema and the key's text folded to 64 bits (advisory locks
//! are per database; the schema keeps two nodes' schemas in one test database apart).
//!
//! PostgreSQL grants a queued exclusive lock before shared requests that arrive after it, so a
//! window close is not starved by a stream of settlements.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Row};

use super::{Backend, Store};

/// Most connections the lock pool opens (each held lock holds one).
pub const LOCK_CONNECTIONS_MAX: u32 = 32;
/// How long a lock request waits for a connection of the lock pool, ms.
pub const LOCK_ACQUIRE_TIMEOUT_MS: u64 = 10_000;

/// Exclusive or shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// One holder.
    Exclusive,
    /// Any number of shared holders, no exclusive one.
    Shared,
}

/// The advisory locks of one database.
#[derive(Debug, Clone)]
pub(crate) struct SharedLocks {
    pool: PgPool,
    namespace: Arc<str>,
}

/// A held lock; released (on its own connection) when dropped.
#[derive(Debug)]
pub(crate) struct SharedGuard {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
    mode: LockMode,
}

fn fold(namespace: &str, key: &str) -> i64 {
    let digest = Sha256::digest([namespace.as_bytes(), b"\0", key.as_bytes()].concat());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl SharedLocks {
    /// The locks of `store`'s database (`None` on SQLite, where one process serves a file).
    /// Errors: the schema could not be read.
    pub(crate) async fn open(store: &Store) -> Result<Option<SharedLocks>, sqlx::Error> {
        let Backend::Postgres(main) = store else {
            return Ok(None);
        };
        let options = (*main.connect_options()).clone();
        let pool = PgPoolOptions::new()
            .max_connections(LOCK_CONNECTIONS_MAX)
            .min_connections(0)
            .acquire_timeout(Duration::from_millis(LOCK_ACQUIRE_TIMEOUT_MS))
            .connect_lazy_with(options);
        let schema: String = sqlx::query("SELECT current_schema()")
            .fetch_one(main)
            .await?
            .try_get(0)?;
        Ok(Some(SharedLocks {
            pool,
            namespace: Arc::from(schema),
        }))
    }

    /// Waits for and takes lock `key`. Errors: no connection within the acquire timeout,
    /// database errors.
    pub(crate) async fn lock(&self, key: &str, mode: LockMode) -> Result<SharedGuard, sqlx::Error> {
        let key = fold(&self.namespace, key);
        let mut conn = self.pool.acquire().await?;
        let sql = match mode {
            LockMode::Exclusive => "SELECT pg_advisory_lock($1)",
            LockMode::Shared => "SELECT pg_advisory_lock_shared($1)",
        };
        sqlx::query(sql).bind(key).execute(&mut *conn).await?;
        Ok(SharedGuard {
            conn: Some(conn),
            key,
            mode,
        })
    }

    /// Takes lock `key` if nobody holds it (exclusive). Errors as `lock`.
    pub(crate) async fn try_lock(&self, key: &str) -> Result<Option<SharedGuard>, sqlx::Error> {
        let key = fold(&self.namespace, key);
        let mut conn = self.pool.acquire().await?;
        let taken: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(taken.then_some(SharedGuard {
            conn: Some(conn),
            key,
            mode: LockMode::Exclusive,
        }))
    }
}

impl Drop for SharedGuard {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let (key, mode) = (self.key, self.mode);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let sql = match mode {
                        LockMode::Exclusive => "SELECT pg_advisory_unlock($1)",
                        LockMode::Shared => "SELECT pg_advisory_unlock_shared($1)",
                    };
                    if sqlx::query(sql)
                        .bind(key)
                        .execute(&mut *conn)
                        .await
                        .is_err()
                    {
                        // Closing the session releases every lock it holds.
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}
