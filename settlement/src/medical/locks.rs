//! The in-process per-person queue: settlements, cancellations and reversals of one person run one
//! after another (their split depends on the accumulators and account balance the previous one
//! left), while different persons run concurrently and meet only in the ledger's group-commit
//! batches. The map holds an entry only while someone holds or waits for it, so it is bounded by
//! the number of requests in flight.
//!
//! Across several processes on one PostgreSQL database (issue 6) this queue is not enough on its
//! own; see `medical` module docs for what stands in for it there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Per-key async locks.
#[derive(Debug, Default)]
pub(crate) struct PersonLocks {
    map: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Holds a person's lock; releasing it drops the map entry when nobody else waits.
#[derive(Debug)]
pub(crate) struct PersonGuard<'a> {
    locks: &'a PersonLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl PersonLocks {
    /// Waits for and takes the lock of `psn_no`.
    pub(crate) async fn lock(&self, psn_no: &str) -> PersonGuard<'_> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|poison| poison.into_inner());
            map.entry(psn_no.to_owned()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        PersonGuard {
            locks: self,
            key: psn_no.to_owned(),
            guard: Some(guard),
        }
    }

    /// Entries currently in the map (for tests of boundedness).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|map| map.len()).unwrap_or(0)
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
                let _guard = locks.lock("P1").await;
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
