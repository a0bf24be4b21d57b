//! The open application directory of card uses (issue 8, first part): each use of the social
//! security card with its stable number, category, usage modes (用卡方式), channels, regions where
//! it is live, the platform operations that serve it, and the public document that names it.
//!
//! - Data: `fixtures/catalog/uses.csv` holds only uses that public documents name (the official
//!   102-item and 95-item lists were not found: ../shared/reference/app-catalog.md); an
//!   administrator imports the official list with `settlement-directory import --csv FILE --by
//!   ACCOUNT`, and every import that changes something is a new VERSION with a per-use diff, its
//!   time (UTC) and the importing account ([`Directory::import_csv`]).
//! - Storage: the crate's store (SQLite or PostgreSQL, migrations/*/0200_directory.sql).
//! - Reads are served from an in-memory [`Snapshot`] with a Chinese search index
//!   ([`search`]), reloaded after an import and at most every `refresh_interval_ms` when another
//!   process may have imported.
//! - HTTP: [`api::router`] (public, no key): JSON API, OpenAPI document and the static page.
//!
//! Later parts of issue 8 (partner platform, card sign-in, personal data, trail, console) build on
//! [`UseNumber`] as the key a partner's scopes and a trail event refer to.

pub mod api;
pub mod csv_file;
pub mod diff;
pub mod error;
pub mod model;
pub mod query;
pub mod regions;
pub mod search;
mod store;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::Ledger;
use crate::store::Store;

pub use csv_file::{CSV_HEADER, IMPORT_BYTES_MAX, IMPORT_ROWS_MAX, parse_csv, to_csv};
pub use diff::{ChangeKind, UseChange};
pub use error::{DirectoryError, FieldError, ImportError, Result};
pub use model::{CardUse, Category, Channel, Operation, Region, Status, UsageMode, UseNumber};
pub use query::{Cursor, Filter, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, Page, Snapshot};
pub use store::{ImportOutcome, VersionInfo};

/// How often, at most, a read checks the database for a version imported by another process, ms.
pub const REFRESH_INTERVAL_MS_DEFAULT: i64 = 5_000;
/// Most versions returned by one [`Directory::versions`] call.
pub const VERSIONS_PAGE_MAX: u32 = 100;

/// The directory over one database, with the snapshot its reads are served from.
#[derive(Debug)]
pub struct Directory {
    store: Store,
    snapshot: RwLock<Arc<Snapshot>>,
    last_check_ms: AtomicI64,
    refresh_interval_ms: i64,
}

/// Now, Unix milliseconds UTC.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Checks an importing account name: 1-64 ASCII letters, digits or `._@-`.
fn check_by(by: &str) -> std::result::Result<(), ImportError> {
    let ok = !by.is_empty()
        && by.len() <= 64
        && by
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok { Ok(()) } else { Err(ImportError::By) }
}

impl Directory {
    /// The directory in the ledger's database (the migrations ran when the ledger opened), with
    /// its snapshot loaded. Errors: database errors, `Corrupt`.
    pub async fn from_ledger(ledger: &Ledger) -> Result<Directory> {
        let directory = Directory {
            store: ledger.store().clone(),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            last_check_ms: AtomicI64::new(now_ms()),
            refresh_interval_ms: REFRESH_INTERVAL_MS_DEFAULT,
        };
        directory.reload().await?;
        Ok(directory)
    }

    /// Sets how often, at most, reads look for another process's import (0: every read).
    pub fn with_refresh_interval_ms(mut self, refresh_interval_ms: i64) -> Directory {
        self.refresh_interval_ms = refresh_interval_ms;
        self
    }

    /// The snapshot last loaded (no database access).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn install(&self, snapshot: Arc<Snapshot>) {
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Loads the current version and rebuilds the index.
    async fn reload(&self) -> Result<Arc<Snapshot>> {
        let version = self.store.directory_latest().await?;
        let uses = self.store.directory_uses().await?;
        let index = search::SearchIndex::build(&uses);
        let snapshot = Arc::new(Snapshot {
            version,
            uses,
            index,
        });
        self.install(Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// The snapshot, reloaded first if `refresh_interval_ms` has passed since the last check and
    /// the database holds a newer version (another process imported). Errors: database errors.
    pub async fn current(&self) -> Result<Arc<Snapshot>> {
        let now = now_ms();
        let last = self.last_check_ms.load(Ordering::Acquire);
        if now.saturating_sub(last) < self.refresh_interval_ms
            || self
                .last_check_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return Ok(self.snapshot());
        }
        let snapshot = self.snapshot();
        let latest = self.store.directory_latest().await?.map(|v| v.version);
        if latest == snapshot.version.as_ref().map(|v| v.version) {
            Ok(snapshot)
        } else {
            self.reload().await
        }
    }

    /// Imports a whole CSV file (see [`csv_file`]) as the new directory: uses missing from the
    /// file are removed. Makes a new version when anything differs, none otherwise; the snapshot
    /// is reloaded. `by` is the importing operator's account (1-64 ASCII letters, digits or
    /// `._@-`; it is published with the version). Errors: `Import` (nothing written), database
    /// errors, `Concurrent`.
    pub async fn import_csv(&self, bytes: &[u8], by: &str) -> Result<ImportOutcome> {
        check_by(by)?;
        let uses = parse_csv(bytes)?;
        let file_sha256 = hex::encode(Sha256::digest(bytes));
        let outcome = self
            .store
            .directory_import(&uses, by, &file_sha256, now_ms())
            .await?;
        self.reload().await?;
        Ok(outcome)
    }

    /// Versions, newest first, at most `limit` (clamped to [`VERSIONS_PAGE_MAX`]), older than
    /// `before` when given. Errors: database errors.
    pub async fn versions(&self, before: Option<i64>, limit: u32) -> Result<Vec<VersionInfo>> {
        self.store
            .directory_versions(before, limit.clamp(1, VERSIONS_PAGE_MAX))
            .await
    }

    /// One version with its per-use changes; none if there is no such version. Errors: database
    /// errors, `Corrupt`.
    pub async fn version(&self, version: i64) -> Result<Option<(VersionInfo, Vec<UseChange>)>> {
        self.store.directory_version(version).await
    }
}
