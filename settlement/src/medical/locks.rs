//! The in-process per-person queue: settlements, cancellations and reversals of one person run one
//! after another (their split depends on the accumulators and account balance the previous one
//! left), while different persons run concurrently and meet only in the ledger's group-commit
//! batches. The map holds an entry only while someone holds or waits for it, so it is bounded by
//! the number of requests in flight plus the fee uploads' warm-up tasks (`warm_money_state`);
//! a warm-up waits for the lock like any request and then holds it at most its load timeout.
//!
//! Across several processes on one PostgreSQL database (issue 6) the queue also takes the
//! person's advisory lock (`store::advisory`) once `Medical::share_database` set it up, so one
//! person's money messages run one after another in all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::nhsa::ApiError;
use crate::store::advisory::{LockMode, SharedGuard, SharedLocks};

/// Per-key async locks.
#[derive(Debug, Default)]
pub(crate) struct PersonLocks {
    map: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
    /// The database's advisory locks, when other processes serve the same database.
    pub(crate) shared: std::sync::OnceLock<SharedLocks>,
}

/// Holds a person's lock; releasing it drops the map entry when nobody else waits.
#[derive(Debug)]
pub(crate) struct PersonGuard<'a> {
    locks: &'a PersonLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
    /// The cross-process lock (released after the in-process one is).
    _shared: Option<SharedGuard>,
}

impl PersonLocks {
    /// Waits for and takes the lock of `psn_no` (and its advisory lock in shared mode).
    /// Errors: `Internal` if the database lock could not be taken (retryable).
    pub(crate) async fn lock(&self, psn_no: &str) -> Result<PersonGuard<'_>, ApiError> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|poison| poison.into_inner());
            map.entry(psn_no.to_owned()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        let mut held = PersonGuard {
            locks: self,
            key: psn_no.to_owned(),
            guard: Some(guard),
            _shared: None,
        };
        if let Some(shared) = self.shared.get() {
            held._shared = Some(
                shared
                    .lock(&format!("person\0{psn_no}"), LockMode::Exclusive)
                    .await
                    .map_err(super::internal)?,
            );
        }
        Ok(held)
    }

    /// How many wait for the lock of `psn_no` (not counting its holder); for tests that must know
    /// a task is queued on it.
    #[cfg(test)]
    pub(crate) fn waiters(&self, psn_no: &str, held: bool) -> usize {
        let map = self.map.lock().unwrap_or_else(|poison| poison.into_inner());
        // The map's Arc, the holder's (if held) and one per waiter.
        map.get(psn_no).map_or(0, |mutex| {
            Arc::strong_count(mutex).saturating_sub(1 + usize::from(held))
        })
    }

    /// Entries currently in the map (for tests of boundedness).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|map| map.len()).unwrap_or(0)
    }
}

impl PersonGuard<'_> {
    /// The person whose lock this is.
    pub(crate) fn psn_no(&self) -> &str {
        &self.key
    }
}

impl Drop for PersonGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self
            .locks
            .map
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Only the map holds the Arc now: nobody holds or waits for this person.
        if map
            .get(&self.key)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serialises_one_person_and_forgets_idle_entries() {
        let locks = Arc::new(PersonLocks::default());
        let counter = Arc::new(Mutex::new((0, 0)));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let locks = locks.clone();
            let counter = counter.clone();
            tasks.push(tokio::spawn(async move {
                let _guard = locks.lock("P1").await.unwrap();
                {
                    let mut c = counter.lock().unwrap();
                    c.0 += 1;
                    c.1 = c.1.max(c.0);
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                counter.lock().unwrap().0 -= 1;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(counter.lock().unwrap().1, 1, "never two holders at once");
        assert_eq!(locks.len(), 0);
    }
}
