//! The group-commit writer: one task per store takes postings from a bounded queue, applies up to
//! `batch_postings_max` of them in one database transaction, commits once (one fsync), then
//! answers each caller through its oneshot.
//!
//! There is no timer: the writer takes whatever queued while the previous batch was committing.
//! At low load a batch is one posting and adds no latency; under load batches grow by themselves,
//! which is what lifts throughput past the ~1-3k/s ceiling of one transaction per settlement
//! (limits.md "What this means" 1-2) and writes the hot pooled-fund row once per batch.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::LedgerError;
use crate::medical::rows::Attachment;
use crate::plan::Submitted;
use crate::records::Receipt;
use crate::store::Store;
use crate::store::batch::apply_batch;

/// One queued posting and where to send its answer.
pub(crate) struct Job {
    /// The validated posting.
    pub submitted: Submitted,
    /// The caller's answer channel.
    pub reply: oneshot::Sender<Result<Receipt, LedgerError>>,
    /// Medical rows to insert in the same transaction (`Ledger::post_attached`).
    pub attachment: Option<Arc<Attachment>>,
}

/// Limits of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Most postings applied in one transaction.
    pub batch_postings_max: usize,
    /// Most postings waiting in the queue; submitters wait (back-pressure) when it is full.
    pub queue_postings_max: usize,
    /// How often a batch is retried after a conflict with another process (unique violation on a
    /// posting id or reversal, deadlock, serialization failure, SQLite busy) or a lost database
    /// connection (`retryable`).
    pub batch_retries_max: u32,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            batch_postings_max: 512,
            queue_postings_max: 8_192,
            batch_retries_max: 5,
        }
    }
}

/// Starts the writer task. It ends when every sender is dropped.
/// `gate`: held around each batch transaction; shared with the medical layer's money-free writer
/// on SQLite (one writer at a time there), so the two take turns instead of meeting SQLite's busy
/// handler, which sleeps whole milliseconds.
pub(crate) fn spawn(
    store: Store,
    options: WriterOptions,
    gate: WriteGate,
) -> (mpsc::Sender<Job>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(options.queue_postings_max.max(1));
    let handle = tokio::spawn(run(store, options, gate, receiver));
    (sender, handle)
}

async fn run(
    store: Store,
    options: WriterOptions,
    gate: WriteGate,
    mut receiver: mpsc::Receiver<Job>,
) {
    let batch_max = options.batch_postings_max.max(1);
    let mut jobs: Vec<Job> = Vec::with_capacity(batch_max);
    while let Some(first) = receiver.recv().await {
        jobs.push(first);
        while jobs.len() < batch_max {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let items: Vec<Submitted> = jobs.iter().map(|job| job.submitted.clone()).collect();
        let attachments: Vec<Option<Arc<Attachment>>> =
            jobs.iter().map(|job| job.attachment.clone()).collect();
        let mut attempt = 0;
        let mut trust_msgids = true;
        let result = loop {
            let posted_at_ms = now_unix_ms();
            let turn = gate.enter().await;
            let applied =
                apply_batch(&store, &items, &attachments, posted_at_ms, trust_msgids).await;
            drop(turn);
            match applied {
                // A posting id committed although its msgid is new (`apply_batch`,
                // `may_trust_msgids`): apply again reading the committed ids. Not one of the
                // retries, which stay for conflicts.
                Err(LedgerError::Storage(sqlx::Error::Database(db)))
                    if trust_msgids && db.is_unique_violation() =>
                {
                    trust_msgids = false;
                    tracing::debug!(%db, "ledger batch met a committed posting id, reading them");
                }
                Err(error) if attempt < options.batch_retries_max && retryable(&error) => {
                    attempt += 1;
                    tracing::debug!(attempt, %error, "ledger batch conflict, retrying");
                }
                other => break other,
            }
        };
        match result {
            Ok(answers) => {
                for (job, answer) in jobs.drain(..).zip(answers) {
                    // A caller that stopped waiting is not an error of the ledger.
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                tracing::warn!(%error, postings = jobs.len(), "ledger batch failed");
                let text = error.to_string();
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(LedgerError::BatchFailed(text.clone())));
                }
            }
        }
    }
}

/// Conflicts that a retry of the whole batch resolves, and a connection lost before or during
/// the batch (I/O errors; PostgreSQL's connection-exception class 08 and the server shutting
/// the session down, 57P01-57P03 and 57P05). A retry is safe even when the lost connection's
/// commit went through: the retried batch finds its posting ids and msgids recorded and replays
/// their outcomes (a medical message then answers from its stored outcome).
fn retryable(error: &LedgerError) -> bool {
    let db = match error {
        LedgerError::Storage(sqlx::Error::Io(_)) => return true,
        LedgerError::Storage(sqlx::Error::Database(db)) => db,
        _ => return false,
    };
    if db.is_unique_violation() {
        return true;
    }
    let code = db.code();
    let code = code.as_deref().unwrap_or_default();
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "57P05") {
        return true;
    }
    // PostgreSQL: 40001 serialization_failure, 40P01 deadlock_detected.
    // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED, 517 SQLITE_BUSY_SNAPSHOT, 261 SQLITE_BUSY_RECOVERY.
    matches!(code, "40001" | "40P01" | "5" | "6" | "517" | "261")
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Serialises the in-process writers of one SQLite database (see `spawn`); a no-op on PostgreSQL,
/// whose writers lock rows, not the whole database.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteGate(Option<Arc<tokio::sync::Mutex<()>>>);

impl WriteGate {
    /// A gate for `store`: real on SQLite, open on PostgreSQL.
    pub(crate) fn for_store(store: &Store) -> WriteGate {
        match store {
            crate::store::Backend::Sqlite(_) => {
                WriteGate(Some(Arc::new(tokio::sync::Mutex::new(()))))
            }
            crate::store::Backend::Postgres(_) => WriteGate(None),
        }
    }

    /// Waits for this writer's turn; the turn ends when the guard drops.
    pub(crate) async fn enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.0 {
            Some(mutex) => Some(mutex.lock().await),
            None => None,
        }
    }
}
