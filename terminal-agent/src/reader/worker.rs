//! One worker thread per reader: the reader's jobs run one after another on a thread that owns
//! its own [`CardBackend`](super::CardBackend) (pcsc calls block; they never run on the async executor's threads).
//!
//! - The queue is bounded ([`ReadersConfig::queue_max`]); a full queue answers
//!   [`ReaderError::Busy`] at once.
//! - The async caller waits with a timeout. A job still running at its timeout (a stalled
//!   card: pcsc-lite's `SCardTransmit` has no timeout of its own) leaves its worker behind: the
//!   worker is retired from the table, a fresh one serves the next request, and the retired
//!   thread ends as soon as its blocking call returns (e.g. when the card is pulled). Jobs whose
//!   caller has already given up are skipped, never run late.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::AgentError;

use super::backend::{BackendFactory, CardLink};
use super::watcher::Watcher;
use super::{ReaderError, ReaderInfo};

/// Limits of the reader layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadersConfig {
    /// Jobs waiting per reader before new ones are refused.
    pub queue_max: usize,
    /// Readers served at once (worker threads, retired ones not counted).
    pub readers_max: usize,
}

impl Default for ReadersConfig {
    fn default() -> Self {
        Self {
            queue_max: 8,
            readers_max: 16,
        }
    }
}

type JobFn = Box<dyn for<'a> FnOnce(Result<CardLink<'a>, ReaderError>) + Send>;

struct Job {
    deadline: Instant,
    run: JobFn,
}

struct Worker {
    id: u64,
    sender: SyncSender<Job>,
}

/// The readers of one terminal: the job scheduler, and the [`Watcher`]'s view when one runs.
pub struct Readers {
    factory: Arc<dyn BackendFactory>,
    config: ReadersConfig,
    workers: Mutex<HashMap<String, Worker>>,
    next_id: Mutex<u64>,
    watcher: Option<Watcher>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Readers {
    /// A scheduler making backends with `factory`; `watcher`, if given, is the source of the
    /// reader list and of events.
    pub fn new(
        factory: Arc<dyn BackendFactory>,
        config: ReadersConfig,
        watcher: Option<Watcher>,
    ) -> Self {
        Self {
            factory,
            config,
            workers: Mutex::new(HashMap::new()),
            next_id: Mutex::new(0),
            watcher,
        }
    }

    /// The watcher, if one runs.
    pub fn watcher(&self) -> Option<&Watcher> {
        self.watcher.as_ref()
    }

    /// The readers and whether each holds a card: the watcher's view, or (without a watcher)
    /// a listing made on a blocking thread, bounded by `timeout_ms`.
    ///
    /// Errors: [`AgentError::ReaderFailure`], [`AgentError::CardTimeout`].
    pub async fn list(&self, timeout_ms: u64) -> Result<Vec<ReaderInfo>, AgentError> {
        if let Some(watcher) = &self.watcher {
            return Ok(watcher.snapshot().readers());
        }
        let factory = Arc::clone(&self.factory);
        let listing = tokio::task::spawn_blocking(move || factory.create().readers());
        let names = match tokio::time::timeout(Duration::from_millis(timeout_ms), listing).await {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => return Err(AgentError::Internal(e.to_string())),
            Err(_) => return Err(AgentError::CardTimeout { timeout_ms }),
        };
        Ok(names
            .into_iter()
            .map(|name| ReaderInfo {
                name,
                card_present: false,
                atr: None,
            })
            .collect())
    }

    /// Runs `job` on the card in `reader`, inside one exclusive transaction, after the jobs
    /// already queued for that reader; waits at most `timeout_ms` for it to finish.
    ///
    /// Errors: [`AgentError::ReaderNotFound`], [`AgentError::NoCard`],
    /// [`AgentError::ReaderBusy`], [`AgentError::CardTimeout`], and the job's own errors.
    pub async fn run<R, F>(&self, reader: &str, timeout_ms: u64, job: F) -> Result<R, AgentError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&mut CardLink<'a>) -> Result<R, AgentError> + Send + 'static,
    {
        if let Some(watcher) = &self.watcher
            && !watcher.snapshot().has_reader(reader)
        {
            return Err(AgentError::ReaderNotFound(reader.to_owned()));
        }
        let timeout = Duration::from_millis(timeout_ms);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let run: JobFn = Box::new(move |link| {
            let result = match link {
                Ok(mut link) => job(&mut link),
                Err(e) => Err(e.into()),
            };
            let _ = reply.send(result);
        });
        let job = Job {
            deadline: Instant::now() + timeout,
            run,
        };
        let worker_id = self.submit(reader, job)?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AgentError::CardTimeout { timeout_ms }),
            Err(_) => {
                tracing::warn!(
                    reader,
                    timeout_ms,
                    "card job timed out; retiring the reader's worker"
                );
                self.retire(reader, worker_id);
                Err(AgentError::CardTimeout { timeout_ms })
            }
        }
    }

    fn submit(&self, reader: &str, job: Job) -> Result<u64, AgentError> {
        let mut workers = self
            .workers
            .lock()
            .map_err(|_| AgentError::Internal("worker table poisoned".into()))?;
        let mut job = Some(job);
        for _ in 0..2 {
            if !workers.contains_key(reader) {
                if workers.len() >= self.config.readers_max {
                    return Err(AgentError::ReaderBusy);
                }
                let worker = self.spawn(reader)?;
                workers.insert(reader.to_owned(), worker);
            }
            let Some(worker) = workers.get(reader) else {
                continue;
            };
            let Some(next) = job.take() else {
                break;
            };
            match worker.sender.try_send(next) {
                Ok(()) => return Ok(worker.id),
                Err(TrySendError::Full(_)) => return Err(AgentError::ReaderBusy),
                Err(TrySendError::Disconnected(back)) => {
                    job = Some(back);
                    workers.remove(reader);
                }
            }
        }
        Err(AgentError::Internal("reader worker could not start".into()))
    }

    fn retire(&self, reader: &str, worker_id: u64) {
        if let Ok(mut workers) = self.workers.lock()
            && workers.get(reader).is_some_and(|w| w.id == worker_id)
        {
            workers.remove(reader);
        }
    }

    fn spawn(&self, reader: &str) -> Result<Worker, AgentError> {
        let id = {
            let mut next = self
                .next_id
                .lock()
                .map_err(|_| AgentError::Internal("worker ids poisoned".into()))?;
            *next += 1;
            *next
        };
        let (sender, receiver) = mpsc::sync_channel(self.config.queue_max);
        let factory = Arc::clone(&self.factory);
        let name = reader.to_owned();
        std::thread::Builder::new()
            .name(format!("reader-{id}"))
            .spawn(move || work(&name, factory.as_ref(), &receiver))
            .map_err(|e| AgentError::Internal(format!("spawning a reader thread: {e}")))?;
        Ok(Worker { id, sender })
    }
}

/// The worker loop: ends when the scheduler drops its sender (retired, or agent stopping).
fn work(reader: &str, factory: &dyn BackendFactory, jobs: &Receiver<Job>) {
    let mut backend = factory.create();
    while let Ok(job) = jobs.recv() {
        if Instant::now() >= job.deadline {
            tracing::debug!(reader, "skipping a job whose caller gave up");
            continue;
        }
        let link = backend.begin(reader);
        (job.run)(link);
    }
    tracing::debug!(reader, "reader worker stopped");
}
