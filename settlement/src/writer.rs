//! The group-commit writers: tasks that take postings from one bounded queue, apply up to
//! `batch_postings_max` of them in one database transaction, commit once (one fsync), then answer
//! each caller through its oneshot.
//!
//! There is no timer: a writer takes whatever queued while it was committing. At low load a batch
//! is one posting and adds no latency; under load batches grow by themselves, which is what lifts
//! throughput past the ~1-3k/s ceiling of one transaction per settlement (limits.md "What this
//! means" 1-2) and writes the hot pooled-fund row once per batch.
//!
//! On PostgreSQL `ledger_writers` batches may be in flight at once: while one commits, the next
//! loads, decides and writes; they wait for each other only on the hot rows, which a batch locks
//! in its last statement (`store::batch`). The default is one: on the 2-core reference machine,
//! where the service and PostgreSQL share the cores, two writers made batches smaller and cost
//! 13-15 % of settle_bench's throughput (interleaved runs, ARCHITECTURE "hot account"); a host
//! with cores to spare may raise it. Order is kept where it matters: a batch
//! that holds a posting linked to (reversing, correcting) or repeating a posting of a batch still
//! in flight waits for that batch to end first, so it sees the target committed exactly as a
//! single writer would have. Callers that need an order between unrelated postings wait for the
//! first one's answer (the medical layer's per-person lock does). SQLite has one writer.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::LedgerError;
use crate::ids::PostingId;
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
    /// Batches in flight at once on PostgreSQL (at least 1; default 1, see the module docs);
    /// SQLite always has one writer.
    pub ledger_writers: usize,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            batch_postings_max: 512,
            queue_postings_max: 8_192,
            batch_retries_max: 5,
            ledger_writers: 1,
        }
    }
}

/// Starts the writer tasks (`ledger_writers` on PostgreSQL, one on SQLite). They end when every
/// sender is dropped; the handle ends when all of them have.
/// `gate`: held around each batch transaction; shared with the medical layer's money-free writer
/// on SQLite (one writer at a time there), so the two take turns instead of meeting SQLite's busy
/// handler, which sleeps whole milliseconds.
pub(crate) fn spawn(
    store: Store,
    options: WriterOptions,
    gate: WriteGate,
) -> (mpsc::Sender<Job>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(options.queue_postings_max.max(1));
    let writers = match store {
        crate::store::Backend::Sqlite(_) => 1,
        crate::store::Backend::Postgres(_) => options.ledger_writers.max(1),
    };
    let shared = Arc::new(Shared {
        receiver: tokio::sync::Mutex::new(receiver),
        in_flight: std::sync::Mutex::new(HashMap::new()),
        ended: Notify::new(),
    });
    let tasks: Vec<JoinHandle<()>> = (0..writers)
        .map(|_| {
            tokio::spawn(run(
                store.clone(),
                options,
                gate.clone(),
                Arc::clone(&shared),
            ))
        })
        .collect();
    let handle = tokio::spawn(async move {
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "ledger writer task ended abnormally");
            }
        }
    });
    (sender, handle)
}

/// What the writers share: the queue, and the posting ids of the batches in flight.
struct Shared {
    /// Taken by one writer at a time, while it forms a batch.
    receiver: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// Posting id → how many batches in flight hold it (a repeat may be in two).
    in_flight: std::sync::Mutex<HashMap<PostingId, usize>>,
    /// Notified whenever a batch leaves `in_flight`.
    ended: Notify,
}

impl Shared {
    /// Takes the next batch (waiting for the first job) and registers its ids as in flight.
    /// Returns the ids of earlier batches still in flight that it must wait for: targets of its
    /// links and repeats of its ids. `None` when every sender is gone.
    async fn take(&self, jobs: &mut Vec<Job>, batch_max: usize) -> Option<Vec<PostingId>> {
        let mut receiver = self.receiver.lock().await;
        jobs.push(receiver.recv().await?);
        while jobs.len() < batch_max {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Registered before the queue is released: a later batch sees these ids.
        let mut in_flight = lock(&self.in_flight);
        let mut waits = Vec::new();
        for job in jobs.iter() {
            let posting = &job.submitted.posting;
            let target = posting.link.map(|link| link.parts().1);
            for id in std::iter::once(posting.id).chain(target) {
                if in_flight.contains_key(&id) {
                    waits.push(id);
                }
            }
        }
        for job in jobs.iter() {
            *in_flight.entry(job.submitted.posting.id).or_insert(0) += 1;
        }
        Some(waits)
    }

    /// Waits until none of `ids` is in flight.
    async fn wait_for(&self, ids: &[PostingId]) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !ids.iter().any(|id| lock(&self.in_flight).contains_key(id)) {
                return;
            }
            ended.await;
        }
    }

    /// Removes a finished batch's ids and wakes the batches waiting on them.
    fn finish(&self, jobs: &[Job]) {
        let mut in_flight = lock(&self.in_flight);
        for job in jobs {
            let id = job.submitted.posting.id;
            if let Some(count) = in_flight.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    in_flight.remove(&id);
                }
            }
        }
        drop(in_flight);
        self.ended.notify_waiters();
    }
}

/// The in-flight map's guard; a writer that panicked left the map consistent (every change is
/// one statement), so a poisoned lock is taken as is.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run(store: Store, options: WriterOptions, gate: WriteGate, shared: Arc<Shared>) {
    let batch_max = options.batch_postings_max.max(1);
    let mut jobs: Vec<Job> = Vec::with_capacity(batch_max);
    while let Some(waits) = shared.take(&mut jobs, batch_max).await {
        if !waits.is_empty() {
            shared.wait_for(&waits).await;
        }
        let items: Vec<Submitted> = jobs.iter().map(|job| job.submitted.clone()).collect();
        let attachments: Vec<Option<Arc<Attachment>>> =
            jobs.iter().map(|job| job.attachment.clone()).collect();
        let mut attempt = 0;
        let result = loop {
            let posted_at_ms = now_unix_ms();
            let turn = gate.enter().await;
            let applied = apply_batch(&store, &items, &attachments, posted_at_ms).await;
            drop(turn);
            match applied {
                Err(error) if attempt < options.batch_retries_max && retryable(&error) => {
                    attempt += 1;
                    tracing::debug!(attempt, %error, "ledger batch conflict, retrying");
                }
                other => break other,
            }
        };
        shared.finish(&jobs);
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
