//! The journal's SQLite store. WAL with `synchronous = FULL`: when [`Journal::record`] returns,
//! the message is on disk, so a crash between writing and sending leaves a trace to resolve.
//!
//! One table, `messages` (migration 1 below explains each column). Messages are never deleted;
//! only their state moves forward: `sending` → `acknowledged` | `refused` | `not_delivered` |
//! `unknown`; a reversal goes `queued` → `acknowledged` | `rejected`. A payment reversal is
//! written `armed` before its purchase is sent: `armed` → `cancelled` (the purchase was answered
//! and finished on the card: nothing to undo) | `queued` (no answer, or a crash before one).
//! The stored bodies hold the business payload (psn_no ...): the journal is local to the
//! terminal, in the agent's data directory, and its rows are never logged.
//!
//! **One agent process per journal file**, enforced: [`Journal::open`] takes an exclusive lock
//! (`flock`) on `<journal>.lock` before it touches the database, and holds it until
//! [`Journal::close`] or the last clone is dropped (the process ending releases it too, a crash
//! included). A second opener gets [`JournalError::InUse`] naming the file: the sweep on open
//! treats every `sending` row as left by a crash, which is only true when no other process is
//! sending from the same journal.

use std::path::Path;
use std::str::FromStr;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Migration 1.
const MIGRATION_1: &str = "
CREATE TABLE IF NOT EXISTS messages (
    -- The national msgid (30 characters): the key a 2601 reversal names as omsgid.
    msgid TEXT PRIMARY KEY NOT NULL,
    -- Transaction code, 4 digits (2207, 2304, 2601 ...).
    infno TEXT NOT NULL,
    -- The envelope's JSON text exactly as sent, so a retry resends the same bytes.
    body TEXT NOT NULL,
    -- sending | acknowledged | refused | not_delivered | unknown | queued | rejected
    -- (and, with no schema change, armed | cancelled for payment reversals).
    state TEXT NOT NULL,
    -- For a reversal: the msgid it reverses.
    original_msgid TEXT,
    -- Send attempts so far (a reversal is retried).
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Unix milliseconds of the next attempt (queued reversals only); integers, never floats.
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    -- The last failure or err_msg, for the operator; never personal data.
    last_error TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_attempt_ms);
";

/// Migration 2: at most one reversal per original message (the sweep after a crash and the
/// timeout path must never queue two).
const MIGRATION_2: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS messages_one_reversal ON messages (original_msgid)
    WHERE original_msgid IS NOT NULL;
";

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The database failed.
    #[error("journal database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value is not what this code writes.
    #[error("journal row {msgid}: {what}")]
    Corrupt {
        /// The row.
        msgid: String,
        /// What is wrong.
        what: &'static str,
    },
    /// Another agent process (or another open journal in this one) holds the journal's lock.
    #[error(
        "journal {path} is in use by another terminal-agent (lock {lock} held): one agent per journal file; stop the other agent or give this one its own data_dir"
    )]
    InUse {
        /// The journal database.
        path: std::path::PathBuf,
        /// The lock file.
        lock: std::path::PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("journal lock {lock}: {source}")]
    Lock {
        /// The lock file.
        lock: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// All 10 000 sequence numbers of this second are used.
    #[error("no msgid left in this second")]
    MsgidExhausted,
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Journaled; the send has not returned yet (after a crash: unknown).
    Sending,
    /// `infcode` 0.
    Acknowledged,
    /// A reply with `infcode` ≠ 0 to a business message.
    Refused,
    /// The connection was never made.
    NotDelivered,
    /// Sent, but no usable reply: the switch may have processed it. A reversal is queued.
    Unknown,
    /// A reversal waiting for (another) attempt.
    Queued,
    /// A reversal answered with `infcode` ≠ 0: an operator must look.
    Rejected,
    /// A payment reversal journaled before its purchase is sent, not due: it becomes `queued`
    /// when the purchase gets no answer (or after a crash), `cancelled` when it is answered.
    Armed,
    /// An armed payment reversal that was not needed.
    Cancelled,
}

impl MessageState {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Acknowledged => "acknowledged",
            Self::Refused => "refused",
            Self::NotDelivered => "not_delivered",
            Self::Unknown => "unknown",
            Self::Queued => "queued",
            Self::Rejected => "rejected",
            Self::Armed => "armed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "sending" => Self::Sending,
            "acknowledged" => Self::Acknowledged,
            "refused" => Self::Refused,
            "not_delivered" => Self::NotDelivered,
            "unknown" => Self::Unknown,
            "queued" => Self::Queued,
            "rejected" => Self::Rejected,
            "armed" => Self::Armed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A journal row. `Debug` omits the body (it holds personal data).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// msgid.
    pub msgid: String,
    /// Transaction code.
    pub infno: String,
    /// The envelope as sent.
    pub body: String,
    /// State.
    pub state: MessageState,
    /// For a reversal, the msgid it reverses.
    pub original_msgid: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// Next attempt, Unix ms.
    pub next_attempt_ms: i64,
    /// Last failure.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMessage")
            .field("msgid", &self.msgid)
            .field("infno", &self.infno)
            .field("state", &self.state)
            .field("original_msgid", &self.original_msgid)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The journal. Cheap to clone (a connection pool and the shared lock).
#[derive(Debug, Clone)]
pub struct Journal {
    pool: SqlitePool,
    /// The open, exclusively locked `<journal>.lock`; `None` once closed.
    lock: std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

/// The lock file of the journal at `path`: `<path>.lock` (never deleted: removing a lock file
/// while another process waits on it would let two processes in).
pub fn lock_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    std::path::PathBuf::from(name)
}

/// Takes the exclusive lock of the journal at `path`, without waiting.
fn lock(path: &Path) -> Result<std::fs::File, JournalError> {
    let lock = lock_path(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| JournalError::Lock {
            lock: lock.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::InUse {
            path: path.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(JournalError::Lock { lock, source }),
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` after taking its exclusive lock, then
    /// sweeps the messages a crash left in doubt ([`super::sweep`]: a 2207/2304 left `sending`
    /// gets its 2601 queued).
    ///
    /// Errors: [`JournalError::InUse`] when another agent holds the journal (nothing is read or
    /// written then), [`JournalError::Lock`], [`JournalError::Database`].
    pub async fn open(path: &Path) -> Result<Self, JournalError> {
        let lock = lock(path)?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(MIGRATION_1).execute(&pool).await?;
        sqlx::raw_sql(MIGRATION_2).execute(&pool).await?;
        let journal = Self {
            pool,
            lock: std::sync::Arc::new(std::sync::Mutex::new(Some(lock))),
        };
        let report = super::sweep::sweep(&journal).await?;
        if report != super::sweep::SweepReport::default() {
            tracing::warn!(
                reversals_queued = report.reversals_queued.len(),
                unanswered = report.unanswered.len(),
                unresolvable = report.unresolvable.len(),
                payment_reversals_queued = report.payment_reversals_queued.len(),
                "journal: messages in doubt after a restart resolved"
            );
        }
        Ok(journal)
    }

    /// Closes the pool, then releases the lock (a test's "agent stops"); for every clone.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Ok(mut lock) = self.lock.lock() {
            // Dropping the file releases the flock.
            lock.take();
        }
    }

    /// The next free msgid for `fixmedins_code` in the second `compact` (`yyyyMMddHHmmss`).
    ///
    /// Errors: [`JournalError::MsgidExhausted`], [`JournalError::Database`].
    pub async fn next_msgid(
        &self,
        fixmedins_code: &str,
        compact: &str,
    ) -> Result<String, JournalError> {
        let prefix = format!("{fixmedins_code}{compact}");
        let last: Option<String> = sqlx::query("SELECT msgid FROM messages WHERE substr(msgid, 1, ?1) = ?2 ORDER BY msgid DESC LIMIT 1")
            .bind(i64::try_from(prefix.len()).unwrap_or(0))
            .bind(&prefix)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get("msgid"))
            .transpose()?;
        let next = match last {
            None => 0,
            Some(msgid) => msgid
                .get(prefix.len()..)
                .and_then(|s| s.parse::<u16>().ok())
                .map(|n| n + 1)
                .ok_or(JournalError::Corrupt {
                    msgid,
                    what: "msgid sequence is not 4 digits",
                })?,
        };
        super::envelope::msgid(fixmedins_code, compact, next).ok_or(JournalError::MsgidExhausted)
    }

    /// Writes a message in state `state` (`Sending` for one about to be sent, `Queued` for a
    /// reversal) and returns when it is durable.
    ///
    /// Errors: [`JournalError::Database`] (a duplicate msgid included).
    pub async fn record(
        &self,
        msgid: &str,
        infno: &str,
        body: &str,
        state: MessageState,
        original_msgid: Option<&str>,
    ) -> Result<(), JournalError> {
        let now = now_ms();
        sqlx::query("INSERT INTO messages (msgid, infno, body, state, original_msgid, attempts, next_attempt_ms, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6, ?6)")
            .bind(msgid)
            .bind(infno)
            .bind(body)
            .bind(state.as_str())
            .bind(original_msgid)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves `msgid` to `state`, counting one attempt, with the next attempt time and the last
    /// error.
    ///
    /// Errors: [`JournalError::Database`].
    pub async fn update(
        &self,
        msgid: &str,
        state: MessageState,
        next_attempt_ms: i64,
        last_error: Option<&str>,
    ) -> Result<(), JournalError> {
        sqlx::query("UPDATE messages SET state = ?2, attempts = attempts + 1, next_attempt_ms = ?3, last_error = ?4, updated_ms = ?5 WHERE msgid = ?1")
            .bind(msgid)
            .bind(state.as_str())
            .bind(next_attempt_ms)
            .bind(last_error)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves `msgid` from `from` to `to` (no attempt counted), due at once, with `note` as its
    /// last error; returns false when the row is not in `from` (a compare-and-set: two
    /// resolutions of one armed reversal cannot both win).
    ///
    /// Errors: [`JournalError::Database`].
    pub async fn transition(
        &self,
        msgid: &str,
        from: MessageState,
        to: MessageState,
        note: Option<&str>,
    ) -> Result<bool, JournalError> {
        let now = now_ms();
        let done = sqlx::query("UPDATE messages SET state = ?3, next_attempt_ms = ?4, last_error = ?5, updated_ms = ?4 WHERE msgid = ?1 AND state = ?2")
            .bind(msgid)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now)
            .bind(note)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Messages in `state`, oldest first (the sweep's view of armed payment reversals).
    ///
    /// Errors: [`JournalError`].
    pub async fn in_state(&self, state: MessageState) -> Result<Vec<StoredMessage>, JournalError> {
        sqlx::query("SELECT * FROM messages WHERE state = ?1 ORDER BY created_ms, msgid")
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// One message.
    ///
    /// Errors: [`JournalError`].
    pub async fn get(&self, msgid: &str) -> Result<Option<StoredMessage>, JournalError> {
        sqlx::query("SELECT * FROM messages WHERE msgid = ?1")
            .bind(msgid)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| from_row(&row))
            .transpose()
    }

    /// 2601 reversals due at `now_ms`, oldest first, at most `limit`.
    ///
    /// Errors: [`JournalError`].
    pub async fn due_reversals(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, JournalError> {
        self.due_of_kind(super::envelope::INFNO_REVERSAL, now_ms, limit)
            .await
    }

    /// Queued messages of `infno` (2601, or [`super::payrev::INFNO_PAYMENT_REVERSAL`]) due at
    /// `now_ms`, oldest first, at most `limit`.
    ///
    /// Errors: [`JournalError`].
    pub async fn due_of_kind(
        &self,
        infno: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, JournalError> {
        sqlx::query("SELECT * FROM messages WHERE state = 'queued' AND infno = ?3 AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms, msgid LIMIT ?2")
            .bind(now_ms)
            .bind(i64::from(limit))
            .bind(infno)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The reversal (2601) of `original_msgid`, in any state, if one was journaled.
    ///
    /// Errors: [`JournalError`].
    pub async fn reversal_of(
        &self,
        original_msgid: &str,
    ) -> Result<Option<StoredMessage>, JournalError> {
        sqlx::query("SELECT * FROM messages WHERE original_msgid = ?1")
            .bind(original_msgid)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| from_row(&row))
            .transpose()
    }

    /// Messages left in `sending` by a crash (outcome unknown), for the operator or a sweep.
    ///
    /// Errors: [`JournalError`].
    pub async fn in_doubt(&self) -> Result<Vec<StoredMessage>, JournalError> {
        sqlx::query("SELECT * FROM messages WHERE state IN ('sending', 'unknown') ORDER BY created_ms, msgid")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}

fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredMessage, JournalError> {
    let msgid: String = row.try_get("msgid")?;
    let state: String = row.try_get("state")?;
    let state = MessageState::parse(&state).ok_or_else(|| JournalError::Corrupt {
        msgid: msgid.clone(),
        what: "unknown state",
    })?;
    Ok(StoredMessage {
        infno: row.try_get("infno")?,
        body: row.try_get("body")?,
        state,
        original_msgid: row.try_get("original_msgid")?,
        attempts: row.try_get("attempts")?,
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        last_error: row.try_get("last_error")?,
        msgid,
    })
}
