//! Real-time medical settlement at the national interface, on top of the ledger: visits, fee
//! batches, settlements, cancellations, reversals and year-to-date accumulators, with msgid
//! idempotency. Entry point: [`Medical::handle`], one checked envelope in, one `output` (or a
//! catalogued [`ApiError`]) out.
//!
//! # Commit point (why crashes never pay twice or lose a settlement)
//! A message that moves money (2207/2304 settlement, 2208/2305 cancellation, 2601 reversal) is
//! ONE ledger posting whose id derives from the msgid (`ids::posting_id_of`), and its message
//! record, settlement row, cancellation row and accumulator deltas are attached to that posting
//! (`Ledger::post_attached`): the group-commit writer inserts them in the same database
//! transaction as the posting, so they commit together or not at all. Chosen over "posting first,
//! derive the rest later" because the settlement reply (fund split, accumulators before/after)
//! cannot be derived from the legs alone, and over "a transaction per settlement" because the
//! attached rows ride in the writer's batches (one fsync for hundreds of settlements, the hot
//! pooled-fund row written once per batch: limits.md §1-§2).
//! A crash before the commit loses nothing that was acknowledged (no reply was sent); a resend of
//! the msgid then finds no record and settles once. A crash after the commit but before the reply
//! leaves the record, and the resend gets the stored reply.
//!
//! Money-free messages (registration, fee upload, sign-in) write their rows and message record in
//! one transaction through a second group-commit writer (`store::RowWriter`).
//!
//! # Where the msgid is decided
//! On the hot path (2204/2301 fee upload, 2207/2304 settlement outside region nodes) the msgid is
//! NOT looked up before the work: each writer reads, inside its batch transaction, which of the
//! batch's msgids already have a record (`rows::taken_groups`, one statement per batch) and
//! answers those `LedgerError::MessageRecorded`, writing nothing of them; the caller then
//! answers with the stored outcome. A refusal decided before the write (duplicate fee line,
//! visit already settled, ...) is likewise checked against a stored outcome before it is
//! returned (`Medical::stored_answer_or`), because the state the first message left is what
//! refuses its repeat. So a repeat still gets the first outcome, a reuse with another body is
//! still refused, and a settlement costs no look-up round trip (limits.md: the database's
//! statements per second, not its commits, were the ceiling). Other messages look first.
//!
//! # What is recorded
//! The outcome of every message that was acted on is stored before the reply (success, and ledger
//! refusals decided inside the write). Refusals decided before anything is written (malformed
//! input, unknown code, person not found, insufficient balance seen under the person's lock) are
//! NOT recorded: nothing is written for bad input, and a resend is decided again on the same data.
//!
//! # Serialisation of one person
//! Within a process, a person's money messages run one after another (`locks::PersonLocks`): the
//! split depends on the accumulators and account balance the previous settlement left. The
//! personal account can still never go negative across processes (the ledger checks it inside the
//! serialised write), and a second settlement of one visit or a second cancellation of one
//! settlement is refused by the ledger's at-most-one-reversal rule and the message record's
//! primary key. Several processes can serve one PostgreSQL database (issue 6) once each calls
//! `Medical::share_database`: the per-person queue then also takes the person's advisory lock,
//! and the cache keeps only person records.

pub(crate) mod accounts;
mod cache;
pub(crate) mod ids;
mod loads;
mod locks;
pub(crate) mod person;
mod query;
pub(crate) mod rows;
pub(crate) mod settle;
pub(crate) mod store;
pub mod vault;
mod visit;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::catalogue::CatalogueSet;
use crate::error::{LedgerError, Rejection};
use crate::ledger::Ledger;
use crate::nhsa::{ApiError, Envelope};
use crate::policy::{HospLv, PolicySet};

pub use ids::{posting_id_of, record_id};
pub use person::{PersonImport, PersonRecord};
pub use vault::{PersonVault, PersonVaultError, seal_persons};

use accounts::AccountCache;
use cache::StateCache;
use loads::MoneyLoader;
use locks::PersonLocks;
use rows::{Row, Table, Value as Cell};
use store::{RowWriter, StoredMessage};

/// Reference data the service loads at start (never compiled in).
#[derive(Debug, Default)]
pub struct RefData {
    /// Catalogues by treating region (就医地目录).
    pub catalogues: CatalogueSet,
    /// Policy tables by insured region (参保地政策).
    pub policies: PolicySet,
    /// Designated institutions: `fixmedins_code` → hospital level.
    pub institutions: HashMap<String, HospLv>,
}

/// The settlement service core: ledger, reference data, per-person queue.
#[derive(Debug)]
pub struct Medical {
    ledger: Arc<Ledger>,
    rows: RowWriter,
    loads: MoneyLoader,
    pub(crate) refdata: RefData,
    pub(crate) locks: Arc<PersonLocks>,
    accounts: Arc<AccountCache>,
    pub(crate) cache: Arc<StateCache>,
    /// The region node, when regions are configured (issue 6: cross-region settlement).
    pub(crate) region: std::sync::OnceLock<Arc<crate::region::Node>>,
}

/// Outcome of looking for an earlier answer to a msgid.
pub(crate) enum Prior {
    /// Answered before: this is the answer.
    Answered(Result<Output, ApiError>),
    /// Not seen.
    New,
}

impl Medical {
    /// A core over `ledger` (shared with whoever else posts) and loaded reference data.
    pub fn new(ledger: Arc<Ledger>, refdata: RefData) -> Medical {
        let rows = RowWriter::spawn(ledger.store().clone(), ledger.write_gate());
        let loads = MoneyLoader::spawn(ledger.store().clone());
        Medical {
            ledger,
            rows,
            loads,
            refdata,
            locks: Arc::new(PersonLocks::default()),
            accounts: Arc::new(AccountCache::default()),
            cache: Arc::new(StateCache::default()),
            region: std::sync::OnceLock::new(),
        }
    }

    /// Makes this core a region node: persons insured elsewhere settle through their node.
    /// A second call is ignored (returns false).
    pub fn set_region(&self, node: Arc<crate::region::Node>) -> bool {
        self.region.set(node).is_ok()
    }

    /// Makes this core safe beside other processes serving the same PostgreSQL database: a
    /// person's money messages (and a region node's transfers and window close) also take
    /// PostgreSQL advisory locks, and the cache keeps only person records, so every split reads
    /// the accumulators and balance the last commit in any process left. Call before
    /// `region::attach`. Returns false on SQLite (one process per database file), or if already
    /// shared. Errors: the lock pool could not be set up.
    pub async fn share_database(&self) -> Result<bool, LedgerError> {
        let Some(shared) = crate::store::advisory::SharedLocks::open(self.ledger.store()).await?
        else {
            return Ok(false);
        };
        if self.locks.shared.set(shared).is_err() {
            return Ok(false);
        }
        self.cache.share();
        Ok(true)
    }

    /// The advisory locks, when shared (`share_database`).
    pub(crate) fn shared_locks(&self) -> Option<&crate::store::advisory::SharedLocks> {
        self.locks.shared.get()
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Answers one envelope: the `output` on success, a catalogued error otherwise.
    pub async fn handle(&self, env: &Envelope) -> Result<Output, ApiError> {
        match env.infno.as_str() {
            "9001" => self.sign_in(env).await,
            "9002" => self.sign_out(env).await,
            "1101" => self.person_info(env).await,
            "2201" => self.register(env, visit::Kind::Outpatient).await,
            "2401" => self.register(env, visit::Kind::Inpatient).await,
            "2202" => self.visit_event(env, visit::Event::Cancel).await,
            "2203" => self.visit_event(env, visit::Event::Info).await,
            "2402" => self.visit_event(env, visit::Event::Discharge).await,
            "2204" => self.upload_fees(env, visit::Kind::Outpatient).await,
            "2301" => self.upload_fees(env, visit::Kind::Inpatient).await,
            "2205" => self.cancel_fees(env, visit::Kind::Outpatient).await,
            "2302" => self.cancel_fees(env, visit::Kind::Inpatient).await,
            "2206" => self.settle(env, visit::Kind::Outpatient, false).await,
            "2207" => self.settle(env, visit::Kind::Outpatient, true).await,
            "2303" => self.settle(env, visit::Kind::Inpatient, false).await,
            "2304" => self.settle(env, visit::Kind::Inpatient, true).await,
            "2208" => self.cancel_settlement(env, visit::Kind::Outpatient).await,
            "2305" => self.cancel_settlement(env, visit::Kind::Inpatient).await,
            "2601" => self.reverse(env).await,
            "3201" => self.totals(env).await,
            "5206" => self.accumulators(env).await,
            // The monthly cross-region clearing detail lives on region nodes (issue 6).
            "3260" | "3261" | "3262" => match self.region.get() {
                Some(node) => crate::region::monthly::handle(node, self, env).await,
                None => Err(ApiError::CrossRegion(
                    "3260-3262 (cross-region clearing detail) are served by region nodes \
                     (settlement serve --region)"
                        .to_owned(),
                )),
            },
            other => Err(ApiError::UnknownInfno(other.to_owned())),
        }
    }

    /// Count of settlement records made by `msgid` (0 or 1; for crash tests and operators).
    pub async fn settlements_made_by(&self, msgid: &str) -> Result<i64, LedgerError> {
        self.ledger.store().settlement_count_by_msgid(msgid).await
    }

    /// The earlier answer to this msgid, if any. Errors: `MsgidReused` (other request), storage.
    pub(crate) async fn prior(&self, env: &Envelope) -> Result<Prior, ApiError> {
        let stored = self
            .ledger
            .store()
            .message(&env.msgid)
            .await
            .map_err(internal)?;
        let Some(stored) = stored else {
            return Ok(Prior::New);
        };
        Ok(Prior::Answered(self.replay(env, stored).await))
    }

    /// The stored outcome of this msgid if it has one (a repeat gets the first outcome, even when
    /// this attempt was refused: the state the first one left refuses it), else `error`.
    pub(crate) async fn stored_answer_or(
        &self,
        env: &Envelope,
        error: ApiError,
    ) -> Result<Output, ApiError> {
        match self.prior(env).await? {
            Prior::Answered(answer) => answer,
            Prior::New => Err(error),
        }
    }

    async fn replay(&self, env: &Envelope, stored: StoredMessage) -> Result<Output, ApiError> {
        if stored.status == "V" {
            return Err(ApiError::MsgidVoided);
        }
        if stored.request_sha256 != env.request_sha256() || stored.infno != env.infno {
            return Err(ApiError::MsgidReused);
        }
        if let (Some(id), "L") = (stored.posting_id, stored.status.as_str()) {
            let record = self.ledger.posting(id).await.map_err(internal)?;
            match record.map(|r| r.outcome) {
                Some(Ok(())) => {}
                Some(Err(rejection)) => return Err(rejection_error(rejection)),
                None => return Err(internal(LedgerError::Corrupt("message without posting"))),
            }
        }
        RawValue::from_string(stored.reply).map_err(|_| internal(LedgerError::Corrupt("reply")))
    }

    /// Writes money-free rows plus the message record (status 'D', `output` as the reply) in one
    /// transaction. If another request wrote this msgid first, answers with its outcome.
    pub(crate) async fn commit_rows(
        &self,
        env: &Envelope,
        psn_no: &str,
        rows: Vec<Row>,
        output: Output,
    ) -> Result<Output, ApiError> {
        self.commit_rows_fresh(env, psn_no, rows, output)
            .await
            .map(|(output, _)| output)
    }

    /// `commit_rows`, also telling whether THIS call wrote the rows (`true`) or another writer's
    /// outcome was found (`false`: the caller must not apply its change to the cache).
    async fn commit_rows_fresh(
        &self,
        env: &Envelope,
        psn_no: &str,
        mut rows: Vec<Row>,
        output: Output,
    ) -> Result<(Output, bool), ApiError> {
        rows.push(message_row(
            env,
            "D",
            None,
            psn_no,
            StoredReply::Output(&output),
        ));
        match self.rows.write(rows).await {
            Ok(()) => Ok((output, true)),
            Err(error) => match self.prior(env).await? {
                Prior::Answered(answer) => answer.map(|output| (output, false)),
                Prior::New => Err(internal(error)),
            },
        }
    }
}

/// What an `nhsa_messages` row keeps as the reply a repeat of its msgid gets back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoredReply<'a> {
    /// This output, stored in the message row.
    Output(&'a Output),
    /// The output of the settlement this message makes (`settlements.setlinfo`, written in the
    /// same transaction when the posting is posted): the message row keeps an empty `reply`
    /// instead of a second copy of the 1-2 KB settlement output, and `Store::message` reads it
    /// from the settlement. A rejected posting has no settlement; its repeat is answered from
    /// the stored rejection, not from the reply.
    SettlementOutput,
}

/// The `nhsa_messages` row of `env`.
pub(crate) fn message_row(
    env: &Envelope,
    status: &str,
    posting: Option<crate::PostingId>,
    psn_no: &str,
    reply: StoredReply<'_>,
) -> Row {
    let reply = match reply {
        StoredReply::Output(output) => output.get().to_owned(),
        StoredReply::SettlementOutput => String::new(),
    };
    Row {
        table: Table::Messages,
        values: vec![
            Cell::Text(env.msgid.clone()),
            Cell::Text(env.infno.clone()),
            Cell::Bytes(env.request_sha256().to_vec()),
            Cell::Text(status.to_owned()),
            posting.map_or(Cell::NullBytes, |id| Cell::Bytes(id.to_bytes().to_vec())),
            Cell::Text(psn_no.to_owned()),
            Cell::Text(reply),
            Cell::I64(ids::now_ms()),
        ],
    }
}

/// A reply's `output` as JSON text: kept as text end to end so money literals (`12.30`) are
/// written exactly as `nhsa::Yuan` formats them (a `serde_json::Value` would turn them into floats).
pub type Output = Box<RawValue>;

/// Serialises an output. Errors: `Internal` (a serialisation bug).
fn out<T: Serialize>(value: &T) -> Result<Output, ApiError> {
    serde_json::to_string(value)
        .and_then(RawValue::from_string)
        .map_err(internal)
}

/// A ledger rejection as a cashier reads it.
fn rejection_error(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::ExceedsCredits(_) => ApiError::InsufficientBalance,
        Rejection::AlreadyReversed(_) => ApiError::AlreadyCancelled,
        other => {
            tracing::error!(%other, "ledger rejected a medical posting");
            ApiError::Internal
        }
    }
}

/// Logs an internal fault and hides it behind `ApiError::Internal`.
fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "internal error");
    ApiError::Internal
}

/// A ledger error on a money message.
pub(crate) fn ledger_error(error: LedgerError) -> ApiError {
    match error {
        LedgerError::Rejected(rejection) => rejection_error(rejection),
        LedgerError::IdempotencyConflict(_) => ApiError::MsgidReused,
        // The caller answers with the stored outcome (`stored_answer_or`); this is the fallback.
        LedgerError::MessageRecorded => ApiError::MsgidReused,
        other => internal(other),
    }
}
