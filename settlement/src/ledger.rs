//! The ledger API: open a store, create accounts, post, query, verify.
//!
//! Postings go through the group-commit writer (`writer`); reads and account creation go straight
//! to the pool. Every posting is first checked for its stateless rules here, so the writer only
//! sees well-formed postings.

use std::path::Path;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::account::{Account, AccountSpec, Balance};
use crate::error::{LedgerError, Result};
use crate::ids::{AccountId, PostingId};
use crate::medical::rows::Attachment;
use crate::plan::Submitted;
use crate::posting::Posting;
use crate::records::{AccountEntry, PostingRecord, Receipt};
use crate::store::{Store, StoreOptions};
use crate::verify::{VerifyReport, verify};
use crate::writer::{self, Job, WriteGate, WriterOptions};

/// File name of the embedded SQLite ledger inside the data directory.
pub const SQLITE_FILE_NAME: &str = "ledger.sqlite3";

/// Most entries returned by one `account_entries` page.
pub const ENTRIES_PAGE_MAX: u32 = 1_000;

/// Options of a ledger: connection pool and writer limits.
#[derive(Debug, Clone, Default)]
pub struct LedgerOptions {
    /// Pool settings.
    pub store: StoreOptions,
    /// Group-commit writer limits.
    pub writer: WriterOptions,
}

/// A double-entry ledger over one database (SQLite file or PostgreSQL), with its writer task.
///
/// Several `Ledger`s (in one or several processes) may share one PostgreSQL database; each has its
/// own writer, and batches serialise on the account rows they touch.
#[derive(Debug)]
pub struct Ledger {
    store: Store,
    sender: mpsc::Sender<Job>,
    writer: JoinHandle<()>,
    gate: WriteGate,
    person_vault: crate::medical::PersonVault,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({})", self.submitted.posting.id)
    }
}

impl Ledger {
    /// Opens (creating if missing) `DATA_DIR/ledger.sqlite3` and runs the migrations.
    pub async fn open_data_dir(data_dir: &Path, options: LedgerOptions) -> Result<Ledger> {
        Ledger::open_sqlite(&data_dir.join(SQLITE_FILE_NAME), options).await
    }

    /// Opens (creating if missing) an SQLite file: WAL, `synchronous=FULL`, migrations run.
    pub async fn open_sqlite(path: &Path, options: LedgerOptions) -> Result<Ledger> {
        let store = Store::open_sqlite(path, &options.store).await?;
        Ok(Ledger::start(store, options.writer))
    }

    /// Opens PostgreSQL with explicit connect options (e.g. a `search_path`), migrations run.
    pub async fn open_postgres(
        connect: PgConnectOptions,
        options: LedgerOptions,
    ) -> Result<Ledger> {
        let store = Store::open_postgres(connect, &options.store).await?;
        Ok(Ledger::start(store, options.writer))
    }

    /// Opens by URL: `sqlite:PATH` or `postgres://user@host:port/db` (as in `DATABASE_URL`).
    /// Errors: `UnsupportedUrl`, storage and migration errors.
    pub async fn open_url(url: &str, options: LedgerOptions) -> Result<Ledger> {
        let store = Store::open_url(url, &options.store).await?;
        Ok(Ledger::start(store, options.writer))
    }

    fn start(store: Store, options: WriterOptions) -> Ledger {
        let gate = WriteGate::for_store(&store);
        let (sender, writer) = writer::spawn(store.clone(), options, gate.clone());
        Ledger {
            store,
            sender,
            writer,
            gate,
            person_vault: crate::medical::PersonVault::default(),
        }
    }

    /// Creates an account, or returns the existing one with the same (admdvs, kind, code) and
    /// flags (idempotent). Errors: `AccountConflict` if it exists with other flags.
    pub async fn create_account(&self, spec: &AccountSpec) -> Result<Account> {
        self.store.create_account(spec).await
    }

    /// Posts atomically: all legs or none. Returns the receipt of the first submission of this id
    /// if it was posted before with the same content.
    ///
    /// Errors: `Invalid` (stateless rules, nothing stored); `Rejected` (ledger state: unknown
    /// account, region mismatch, balance condition, link; stored, so a retry gets it again);
    /// `IdempotencyConflict` (id reused with other content); `BatchFailed`/`WriterGone` (outcome
    /// unknown: retry with the same id).
    pub async fn post(&self, posting: Posting) -> Result<Receipt> {
        self.submit(posting, None).await
    }

    /// `post`, plus medical rows inserted in the same database transaction as the posting (see
    /// `medical::rows::Attachment`): the settlement record, its accumulators and its message
    /// outcome commit if and only if the posting's decision commits. Same errors as `post`.
    pub(crate) async fn post_attached(
        &self,
        posting: Posting,
        attachment: Arc<Attachment>,
    ) -> Result<Receipt> {
        self.submit(posting, Some(attachment)).await
    }

    /// The writers' gate (the medical layer's money-free writer takes turns with the ledger's on
    /// SQLite).
    pub(crate) fn write_gate(&self) -> WriteGate {
        self.gate.clone()
    }

    /// How this database's insured persons are stored (clear until personal-data keys are
    /// installed; `medical::seal_persons`). Shared by every reader of persons.
    pub fn person_vault(&self) -> &crate::medical::PersonVault {
        &self.person_vault
    }

    /// The pools (the medical layer reads its own tables through them).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    async fn submit(
        &self,
        posting: Posting,
        attachment: Option<Arc<Attachment>>,
    ) -> Result<Receipt> {
        posting.validate()?;
        let hash = posting.content_sha256();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            submitted: Submitted { posting, hash },
            reply,
            attachment,
        };
        self.sender
            .send(job)
            .await
            .map_err(|_| LedgerError::WriterGone)?;
        answer.await.map_err(|_| LedgerError::WriterGone)?
    }

    /// An account with its balances. Errors: `UnknownAccount`.
    pub async fn account(&self, id: AccountId) -> Result<Account> {
        self.store.account(id).await
    }

    /// Posted balances of an account (`debits_posted`, `credits_posted`, fen).
    /// Errors: `UnknownAccount`.
    pub async fn balance(&self, id: AccountId) -> Result<Balance> {
        Ok(self.store.account(id).await?.balance)
    }

    /// Legs on `account` with seq > `after_seq` (0 for the first page), oldest first, at most
    /// `limit` (1..=`ENTRIES_PAGE_MAX`). Errors: `PageLimit`, `UnknownAccount`.
    pub async fn account_entries(
        &self,
        account: AccountId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AccountEntry>> {
        if limit == 0 || limit > ENTRIES_PAGE_MAX {
            return Err(LedgerError::PageLimit(ENTRIES_PAGE_MAX));
        }
        self.store.account(account).await?;
        self.store
            .account_entries(account, after_seq, i64::from(limit))
            .await
    }

    /// A stored posting (posted or rejected) by client id; `None` if the id was never submitted
    /// successfully to the writer.
    pub async fn posting(&self, id: PostingId) -> Result<Option<PostingRecord>> {
        self.store.posting(id).await
    }

    /// Recomputes every balance from the journal and compares (see `verify`).
    pub async fn verify(&self) -> Result<VerifyReport> {
        verify(&self.store).await
    }

    /// Stops the writer after it has answered everything queued, then closes the pool.
    pub async fn close(self) {
        drop(self.sender);
        // A writer that panicked has nothing left to flush; closing the pool is still right.
        let _ = self.writer.await;
        self.store.close().await;
    }
}
