//! The node's locks: one request at a time per transfer (`KeyedLocks`), and the clearing
//! window's gate (`WindowGate`): a settlement or cancellation holds it shared from the moment it
//! stamps its window until its posting is decided, closing the window holds it exclusively (the
//! atomic cut). In-process locks always; the database's advisory locks as well when other
//! processes serve the same database (`Medical::share_database`), and then the open window is
//! read from the database under the lock, since another process may have closed it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedMutexGuard, OwnedRwLockReadGuard, RwLock};

use crate::ledger::Ledger;
use crate::medical::ids::now_ms;
use crate::medical::rows::{Row, Table, Value as Cell};
use crate::store::advisory::{LockMode, SharedGuard, SharedLocks};

use super::{RegionError, db};

/// The advisory lock key of the clearing window.
const WINDOW_KEY: &str = "region-window";

fn storage(error: impl std::fmt::Display) -> RegionError {
    RegionError::Storage(error.to_string())
}

/// Per-key async locks (one transfer handled at a time).
#[derive(Debug, Default)]
pub(crate) struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    shared: Option<SharedLocks>,
}

/// A held key lock; the map entry is dropped with the last holder.
pub(crate) struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
    shared: Option<SharedGuard>,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.shared.take();
        self.guard.take();
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

impl KeyedLocks {
    /// Locks that also take `shared` advisory locks, if given.
    pub(crate) fn new(shared: Option<SharedLocks>) -> KeyedLocks {
        KeyedLocks {
            map: Mutex::default(),
            shared,
        }
    }

    /// Waits for and takes `key`. Errors: the advisory lock could not be taken.
    pub(crate) async fn lock(&self, key: &str) -> Result<KeyGuard<'_>, RegionError> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_owned()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        let mut held = KeyGuard {
            locks: self,
            key: key.to_owned(),
            guard: Some(guard),
            shared: None,
        };
        if let Some(shared) = &self.shared {
            held.shared = Some(
                shared
                    .lock(&format!("xfer\0{key}"), LockMode::Exclusive)
                    .await
                    .map_err(storage)?,
            );
        }
        Ok(held)
    }

    /// Takes `key` unless a task of this process or another process holds it (`None`).
    pub(crate) async fn try_lock(&self, key: &str) -> Result<Option<KeyGuard<'_>>, RegionError> {
        if self.busy(key) {
            return Ok(None);
        }
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_owned()).or_default().clone()
        };
        let Ok(guard) = mutex.try_lock_owned() else {
            return Ok(None);
        };
        let mut held = KeyGuard {
            locks: self,
            key: key.to_owned(),
            guard: Some(guard),
            shared: None,
        };
        if let Some(shared) = &self.shared {
            match shared
                .try_lock(&format!("xfer\0{key}"))
                .await
                .map_err(storage)?
            {
                Some(guard) => held.shared = Some(guard),
                None => return Ok(None),
            }
        }
        Ok(Some(held))
    }

    /// True if some task of this process holds `key` now.
    pub(crate) fn busy(&self, key: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.contains_key(key)
    }
}

/// The clearing window of this node as origin.
#[derive(Debug)]
pub(crate) struct WindowGate {
    /// The open window as this process last saw it.
    open: Arc<RwLock<i64>>,
    shared: Option<SharedLocks>,
}

/// A window stamp: the window a settlement counts in, held (shared) until its posting is
/// decided, so a close waits for it.
#[derive(Debug)]
pub struct WindowStamp {
    /// The open window at stamping.
    pub window: i64,
    _local: OwnedRwLockReadGuard<i64>,
    _shared: Option<SharedGuard>,
}

impl WindowGate {
    /// The gate of a node whose open window is `open` (read from the database at start).
    pub(crate) fn new(open: i64, shared: Option<SharedLocks>) -> WindowGate {
        WindowGate {
            open: Arc::new(RwLock::new(open)),
            shared,
        }
    }

    /// Stamps the open window. Errors: storage.
    pub(crate) async fn stamp(&self, ledger: &Ledger) -> Result<WindowStamp, RegionError> {
        let local = self.open.clone().read_owned().await;
        let Some(shared) = &self.shared else {
            return Ok(WindowStamp {
                window: *local,
                _local: local,
                _shared: None,
            });
        };
        let guard = shared
            .lock(WINDOW_KEY, LockMode::Shared)
            .await
            .map_err(storage)?;
        Ok(WindowStamp {
            window: db::open_window(ledger).await?,
            _local: local,
            _shared: Some(guard),
        })
    }

    /// The open window (from the database when shared). Errors: storage.
    pub(crate) async fn open(&self, ledger: &Ledger) -> Result<i64, RegionError> {
        match &self.shared {
            None => Ok(*self.open.read().await),
            Some(_) => db::open_window(ledger).await,
        }
    }

    /// Closes the open window (the atomic cut: waits for every stamp) and returns its id.
    /// Errors: storage.
    pub(crate) async fn close(&self, ledger: &Ledger) -> Result<i64, RegionError> {
        let mut open = self.open.write().await;
        let _shared = match &self.shared {
            Some(shared) => Some(
                shared
                    .lock(WINDOW_KEY, LockMode::Exclusive)
                    .await
                    .map_err(storage)?,
            ),
            None => None,
        };
        let closed = match &self.shared {
            Some(_) => db::open_window(ledger).await?,
            None => *open,
        };
        db::write_rows(
            ledger,
            vec![Row {
                table: Table::RegionWindows,
                values: vec![Cell::I64(closed), Cell::I64(now_ms())],
            }],
        )
        .await?;
        *open = closed + 1;
        Ok(closed)
    }
}
