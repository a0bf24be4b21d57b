//! Reads of the medical tables, written once for SQLite and PostgreSQL (`dispatch!`), and the
//! group-commit writer for messages that move no money (registration, fee upload, sign-in, ...).
//!
//! Settlement rows never go through this writer: they ride with their ledger posting
//! (`Ledger::post_attached`). Money-free rows are batched here the same way (one transaction per
//! batch, one fsync), because 2204 fee uploads arrive as often as 2207 settlements.

use std::collections::BTreeMap;

use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot};

use super::rows::{Row, insert_rows, taken_groups};
use crate::error::{LedgerError, Result};
use crate::ids::PostingId;
use crate::store::batch::posting_id;
use crate::store::{Store, dispatch};
use crate::writer::WriteGate;

/// Most jobs (messages) in one money-free batch.
const ROW_BATCH_JOBS_MAX: usize = 512;
/// Most jobs waiting for the money-free writer.
const ROW_QUEUE_JOBS_MAX: usize = 8_192;

/// A stored message outcome (`nhsa_messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredMessage {
    /// The transaction code of the first request.
    pub infno: String,
    /// Its request hash.
    pub request_sha256: [u8; 32],
    /// 'D', 'L' or 'V'.
    pub status: String,
    /// The ledger posting, for 'L'.
    pub posting_id: Option<PostingId>,
    /// The stored reply JSON: the message row's own, or for a settlement's message
    /// (`StoredReply::SettlementOutput`) the settlement's output; empty when that settlement
    /// does not exist (its posting was rejected).
    pub reply: String,
}

/// A visit row with its events folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredVisit {
    /// Person.
    pub psn_no: String,
    /// 310/390.
    pub insutype: String,
    /// 参保地.
    pub insuplc_admdvs: i64,
    /// 就医地.
    pub mdtrtarea_admvs: i64,
    /// Institution.
    pub fixmedins_code: String,
    /// 'O' or 'I'.
    pub setting: String,
    /// med_type.
    pub med_type: String,
    /// Cancelled by 2202/2404.
    pub cancelled: bool,
    /// Discharged (2402).
    pub discharged: bool,
}

impl StoredVisit {
    /// The visit's 参保地 (`insuplc_admdvs`). Errors: `IdError::Admdvs` if the stored number is
    /// not a division code.
    pub(crate) fn insured(&self) -> Result<crate::ids::Admdvs, crate::ids::IdError> {
        let code = u32::try_from(self.insuplc_admdvs).map_err(|_| crate::ids::IdError::Admdvs)?;
        crate::ids::Admdvs::from_code(code)
    }
}

/// One live (not cancelled) fee line of a visit: amounts in fen, signed (refund lines negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFeeLine {
    /// Line number.
    pub feedetl_sn: String,
    /// Batch.
    pub chrg_bchno: String,
    /// Signed `det_item_fee_sumamt`, fen.
    pub det_fen: i64,
    /// Signed 全自费, fen.
    pub fulamt_fen: i64,
    /// Signed 超限价, fen.
    pub overlmt_fen: i64,
    /// Signed 先行自付, fen.
    pub preselfpay_fen: i64,
    /// Signed 符合范围, fen.
    pub inscp_fen: i64,
    /// The stored classification JSON (`visit::StoredLine`).
    pub line: String,
}

/// A stored settlement with its cancellation state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSettlement {
    /// Settlement id.
    pub setl_id: String,
    /// Creating message.
    pub msgid: String,
    /// Its posting.
    pub posting_id: PostingId,
    /// Visit.
    pub mdtrt_id: String,
    /// Person.
    pub psn_no: String,
    /// 参保地.
    pub insuplc_admdvs: i64,
    /// The stored 2207/2304 output JSON.
    pub setlinfo: String,
    /// Cancelled or reversed.
    pub cancelled: bool,
}

/// Per-visit, per-institution totals for 3201.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Σ medfee_sumamt, fen.
    pub medfee_sumamt_fen: i64,
    /// Σ fund_pay_sumamt, fen.
    pub fund_pay_sumamt_fen: i64,
    /// Σ acct_pay, fen.
    pub acct_pay_fen: i64,
    /// Count of settlements.
    pub count: i64,
}

/// Adds one `accumulator_changes.deltas` object (`{"name": signed fen, ...}`) into `sums`.
/// Errors: `Corrupt` when it is not a JSON object of integers or a sum overflows.
pub(crate) fn add_changes(sums: &mut BTreeMap<String, i64>, deltas: &str) -> Result<()> {
    let changes: BTreeMap<String, i64> =
        serde_json::from_str(deltas).map_err(|_| LedgerError::Corrupt("accumulator changes"))?;
    for (name, delta) in changes {
        let sum = sums.entry(name).or_default();
        *sum = sum
            .checked_add(delta)
            .ok_or(LedgerError::Corrupt("accumulator sum overflows"))?;
    }
    Ok(())
}

fn sha(bytes: Vec<u8>) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| LedgerError::Corrupt("sha256 length"))
}

impl Store {
    /// The stored outcome of `msgid`.
    pub(crate) async fn message(&self, msgid: &str) -> Result<Option<StoredMessage>> {
        // An empty reply is a settlement message's: the reply is that settlement's output.
        let sql = "SELECT m.infno, m.request_sha256, m.status, m.posting_id, \
                   CASE WHEN m.reply = '' THEN COALESCE(s.setlinfo, '') ELSE m.reply END \
                   FROM nhsa_messages m LEFT JOIN settlements s \
                   ON m.reply = '' AND s.msgid = m.msgid WHERE m.msgid = $1";
        Ok(dispatch!(self, pool => {
            match sqlx::query(sql).bind(msgid).fetch_optional(pool).await? {
                None => None,
                Some(row) => {
                    let posting: Option<Vec<u8>> = row.try_get(3)?;
                    Some(StoredMessage {
                        infno: row.try_get(0)?,
                        request_sha256: sha(row.try_get(1)?)?,
                        status: row.try_get(2)?,
                        posting_id: posting.map(posting_id).transpose()?,
                        reply: row.try_get(4)?,
                    })
                }
            }
        }))
    }

    /// The imported person record JSON by `psn_no`, with its insured region.
    pub(crate) async fn person_record(&self, psn_no: &str) -> Result<Option<String>> {
        let sql = "SELECT record FROM persons WHERE psn_no = $1";
        Ok(dispatch!(self, pool => {
            match sqlx::query(sql).bind(psn_no).fetch_optional(pool).await? {
                None => None,
                Some(row) => Some(row.try_get(0)?),
            }
        }))
    }

    /// Refreshes the planner statistics of the tables a person import fills (PostgreSQL: the
    /// `persons` register and the personal `accounts` and their opening postings; a no-op on
    /// SQLite, whose planner needs none for these keyed reads). A bulk load leaves them stale
    /// until autovacuum's next round, and every plan made meanwhile assumes the old size
    /// (PostgreSQL docs, "Populating a Database" §14.4.9: run ANALYZE afterwards).
    pub(crate) async fn analyze_imported(&self) -> Result<()> {
        if let crate::store::Backend::Postgres(pool) = self {
            sqlx::raw_sql("ANALYZE persons, accounts, postings, legs")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Which of `psn_nos` are already imported.
    pub(crate) async fn existing_persons(
        &self,
        psn_nos: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        let mut found = std::collections::HashSet::new();
        for chunk in psn_nos.chunks(1_000) {
            let rows = dispatch!(self, pool => {
                let mut query = sqlx::QueryBuilder::new("SELECT psn_no FROM persons WHERE psn_no IN (");
                let mut list = query.separated(", ");
                for psn_no in chunk {
                    list.push_bind(psn_no.clone());
                }
                query.push(")");
                query.build().fetch_all(pool).await?.iter()
                    .map(|row| row.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>()?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// `psn_no`s whose certificate (or card) number hashes to `sha256`.
    pub(crate) async fn persons_by_hash(
        &self,
        sha256: &[u8; 32],
        card: bool,
    ) -> Result<Vec<String>> {
        let sql = if card {
            "SELECT psn_no FROM persons WHERE card_no_sha256 = $1 ORDER BY psn_no LIMIT 2"
        } else {
            "SELECT psn_no FROM persons WHERE certno_sha256 = $1 ORDER BY psn_no LIMIT 2"
        };
        let key = sha256.to_vec();
        Ok(dispatch!(self, pool => {
            sqlx::query(sql).bind(key).fetch_all(pool).await?
                .iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>()?
        }))
    }

    /// `psn_no`s found by the first of `lookups` (keyed, then legacy unkeyed hash; see
    /// `medical::vault`) that matches any row; at most 2 (the caller refuses ambiguity).
    pub(crate) async fn persons_by_lookups(
        &self,
        lookups: &[[u8; 32]],
        card: bool,
    ) -> Result<Vec<String>> {
        for key in lookups {
            let found = self.persons_by_hash(key, card).await?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }

    /// Whether any person record is sealed (`medical::vault`).
    pub(crate) async fn persons_sealed(&self) -> Result<bool> {
        let sql = "SELECT psn_no FROM persons WHERE record LIKE 'sealed:%' LIMIT 1";
        Ok(dispatch!(self, pool => {
            sqlx::query(sql).fetch_optional(pool).await?.is_some()
        }))
    }

    /// A visit with its events folded.
    pub(crate) async fn visit(&self, mdtrt_id: &str) -> Result<Option<StoredVisit>> {
        let head = "SELECT psn_no, insutype, insuplc_admdvs, mdtrtarea_admvs, fixmedins_code, \
                    setting, med_type FROM visits WHERE mdtrt_id = $1";
        let events = "SELECT kind FROM visit_events WHERE mdtrt_id = $1";
        Ok(dispatch!(self, pool => {
            match sqlx::query(head).bind(mdtrt_id).fetch_optional(pool).await? {
                None => None,
                Some(row) => {
                    let kinds: Vec<String> = sqlx::query(events).bind(mdtrt_id).fetch_all(pool)
                        .await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
                    Some(StoredVisit {
                        psn_no: row.try_get(0)?,
                        insutype: row.try_get(1)?,
                        insuplc_admdvs: row.try_get(2)?,
                        mdtrtarea_admvs: row.try_get(3)?,
                        fixmedins_code: row.try_get(4)?,
                        setting: row.try_get(5)?,
                        med_type: row.try_get(6)?,
                        cancelled: kinds.iter().any(|k| k == "C"),
                        discharged: kinds.iter().any(|k| k == "D"),
                    })
                }
            }
        }))
    }

    /// Live fee lines of a visit (uploaded, not cancelled), in `feedetl_sn` order; all of them
    /// (`include_cancelled`) for duplicate checks.
    pub(crate) async fn fee_lines(
        &self,
        mdtrt_id: &str,
        include_cancelled: bool,
    ) -> Result<Vec<StoredFeeLine>> {
        let sql = if include_cancelled {
            "SELECT f.feedetl_sn, f.chrg_bchno, f.det_item_fee_sumamt_fen, f.fulamt_ownpay_amt_fen, \
             f.overlmt_amt_fen, f.preselfpay_amt_fen, f.inscp_scp_amt_fen, f.line \
             FROM fee_lines f WHERE f.mdtrt_id = $1 ORDER BY f.feedetl_sn"
        } else {
            "SELECT f.feedetl_sn, f.chrg_bchno, f.det_item_fee_sumamt_fen, f.fulamt_ownpay_amt_fen, \
             f.overlmt_amt_fen, f.preselfpay_amt_fen, f.inscp_scp_amt_fen, f.line \
             FROM fee_lines f WHERE f.mdtrt_id = $1 AND NOT EXISTS (SELECT 1 FROM fee_cancels c \
             WHERE c.mdtrt_id = f.mdtrt_id AND c.feedetl_sn = f.feedetl_sn) ORDER BY f.feedetl_sn"
        };
        Ok(dispatch!(self, pool => {
            sqlx::query(sql).bind(mdtrt_id).fetch_all(pool).await?.iter().map(|row| {
                Ok(StoredFeeLine {
                    feedetl_sn: row.try_get(0)?,
                    chrg_bchno: row.try_get(1)?,
                    det_fen: row.try_get(2)?,
                    fulamt_fen: row.try_get(3)?,
                    overlmt_fen: row.try_get(4)?,
                    preselfpay_fen: row.try_get(5)?,
                    inscp_fen: row.try_get(6)?,
                    line: row.try_get(7)?,
                })
            }).collect::<Result<Vec<_>>>()?
        }))
    }

    /// Settlements of a visit, or one by `setl_id`, or the one made by `msgid`.
    pub(crate) async fn settlements(
        &self,
        key: SettlementKey<'_>,
    ) -> Result<Vec<StoredSettlement>> {
        let (column, value) = match key {
            SettlementKey::Visit(v) => ("s.mdtrt_id", v),
            SettlementKey::SetlId(v) => ("s.setl_id", v),
            SettlementKey::Msgid(v) => ("s.msgid", v),
        };
        let sql = format!(
            "SELECT s.setl_id, s.msgid, s.posting_id, s.mdtrt_id, s.psn_no, s.insuplc_admdvs, \
             s.setlinfo, (SELECT COUNT(*) FROM settlement_cancels c WHERE c.setl_id = s.setl_id) \
             FROM settlements s WHERE {column} = $1 ORDER BY s.setl_id"
        );
        Ok(dispatch!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(value).fetch_all(pool).await?
                .iter().map(|row| Ok(StoredSettlement {
                    setl_id: row.try_get(0)?,
                    msgid: row.try_get(1)?,
                    posting_id: posting_id(row.try_get(2)?)?,
                    mdtrt_id: row.try_get(3)?,
                    psn_no: row.try_get(4)?,
                    insuplc_admdvs: row.try_get(5)?,
                    setlinfo: row.try_get(6)?,
                    cancelled: row.try_get::<i64, _>(7)? > 0,
                })).collect::<Result<Vec<_>>>()?
        }))
    }

    /// Year-to-date accumulators of a person: the sum by name of its `accumulator_changes`.
    /// Errors: storage; `Corrupt` for a change row that is not a JSON object of integers.
    pub(crate) async fn accumulators(
        &self,
        psn_no: &str,
        year: i64,
    ) -> Result<BTreeMap<String, i64>> {
        let sql = "SELECT deltas FROM accumulator_changes WHERE psn_no = $1 AND year = $2";
        let rows: Vec<String> = dispatch!(self, pool => {
            sqlx::query_scalar(sql).bind(psn_no).bind(year).fetch_all(pool).await?
        });
        let mut sums = BTreeMap::new();
        for deltas in &rows {
            add_changes(&mut sums, deltas)?;
        }
        Ok(sums)
    }

    /// 3201 totals of an institution's live settlements for `insutype` dated within
    /// `begin..=end` (`yyyy-MM-dd`), a cancelled settlement counting as not there.
    pub(crate) async fn totals(
        &self,
        fixmedins_code: &str,
        insutype: &str,
        begin: &str,
        end: &str,
    ) -> Result<Totals> {
        let sql = "SELECT CAST(COALESCE(SUM(s.medfee_sumamt_fen), 0) AS BIGINT), \
                   CAST(COALESCE(SUM(s.fund_pay_sumamt_fen), 0) AS BIGINT), \
                   CAST(COALESCE(SUM(s.acct_pay_fen), 0) AS BIGINT), \
                   COUNT(*) FROM settlements s WHERE s.fixmedins_code = $1 AND s.insutype = $2 \
                   AND s.setl_date >= $3 AND s.setl_date <= $4 AND NOT EXISTS \
                   (SELECT 1 FROM settlement_cancels c WHERE c.setl_id = s.setl_id)";
        Ok(dispatch!(self, pool => {
            let row = sqlx::query(sql).bind(fixmedins_code).bind(insutype).bind(begin).bind(end)
                .fetch_one(pool).await?;
            Totals {
                medfee_sumamt_fen: row.try_get(0)?,
                fund_pay_sumamt_fen: row.try_get(1)?,
                acct_pay_fen: row.try_get(2)?,
                count: row.try_get(3)?,
            }
        }))
    }

    /// The accumulator changes settlement `setl_id` of `psn_no` wrote (its `sign` 1 row): per
    /// year, (name, fen) in name order. Errors: storage; `Corrupt` for a malformed change row.
    pub(crate) async fn settlement_changes(
        &self,
        psn_no: &str,
        setl_id: &str,
    ) -> Result<Vec<(i64, Vec<(String, i64)>)>> {
        // psn_no leads the primary key: an index probe, not a scan of every change.
        let sql = "SELECT year, deltas FROM accumulator_changes \
                   WHERE psn_no = $1 AND setl_id = $2 AND sign = 1 ORDER BY year";
        let rows: Vec<(i64, String)> = dispatch!(self, pool => {
            sqlx::query_as(sql).bind(psn_no).bind(setl_id).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(year, deltas)| {
                let mut sums = BTreeMap::new();
                add_changes(&mut sums, &deltas)?;
                Ok((year, sums.into_iter().collect()))
            })
            .collect()
    }

    /// Count of settlement rows made by `msgid` (the crash test's "settled exactly once").
    pub(crate) async fn settlement_count_by_msgid(&self, msgid: &str) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM settlements WHERE msgid = $1";
        Ok(dispatch!(self, pool => {
            sqlx::query(sql).bind(msgid).fetch_one(pool).await?.try_get::<i64, _>(0)?
        }))
    }
}

/// How to find settlements.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SettlementKey<'a> {
    /// All of a visit.
    Visit(&'a str),
    /// One by id.
    SetlId(&'a str),
    /// The one made by a message.
    Msgid(&'a str),
}

struct RowJob {
    rows: Vec<Row>,
    reply: oneshot::Sender<Result<()>>,
}

/// The group-commit writer of money-free rows.
#[derive(Debug, Clone)]
pub(crate) struct RowWriter {
    sender: mpsc::Sender<RowJob>,
}

impl std::fmt::Debug for RowJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowJob({} rows)", self.rows.len())
    }
}

impl RowWriter {
    /// Starts the writer task on `store`; it ends when every `RowWriter` clone is dropped.
    pub(crate) fn spawn(store: Store, gate: WriteGate) -> RowWriter {
        let (sender, receiver) = mpsc::channel(ROW_QUEUE_JOBS_MAX);
        tokio::spawn(run_rows(store, gate, receiver));
        RowWriter { sender }
    }

    /// Inserts `rows` in one transaction (batched with other jobs), durable on return.
    /// Errors: storage errors (a unique violation means another request wrote the same record
    /// first: the caller looks again), `WriterGone`.
    pub(crate) async fn write(&self, rows: Vec<Row>) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(RowJob { rows, reply })
            .await
            .map_err(|_| LedgerError::WriterGone)?;
        answer.await.map_err(|_| LedgerError::WriterGone)?
    }
}

async fn run_rows(store: Store, gate: WriteGate, mut receiver: mpsc::Receiver<RowJob>) {
    let mut jobs: Vec<RowJob> = Vec::with_capacity(ROW_BATCH_JOBS_MAX);
    while let Some(first) = receiver.recv().await {
        jobs.push(first);
        while jobs.len() < ROW_BATCH_JOBS_MAX {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let groups: Vec<&[Row]> = jobs.iter().map(|job| job.rows.as_slice()).collect();
        let turn = gate.enter().await;
        let first_try = match write_fresh(&store, &groups).await {
            Some(()) => Ok(vec![false; groups.len()]),
            None => write_once(&store, &groups).await,
        };
        drop(turn);
        match first_try {
            Ok(taken) => {
                for (job, taken) in jobs.drain(..).zip(taken) {
                    let _ = job.reply.send(answer_of(taken));
                }
            }
            Err(_) if jobs.len() > 1 => {
                // One job's conflict must not fail the others: write each on its own.
                for job in jobs.drain(..) {
                    let turn = gate.enter().await;
                    let written = write_once(&store, &[job.rows.as_slice()]).await;
                    drop(turn);
                    let answer = written.and_then(|taken| answer_of(taken.contains(&true)));
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                for job in jobs.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(LedgerError::BatchFailed(error.to_string())));
                }
            }
        }
    }
}

/// A job's answer: written, or its message was already recorded (nothing written).
fn answer_of(taken: bool) -> Result<()> {
    if taken {
        Err(LedgerError::MessageRecorded)
    } else {
        Ok(())
    }
}

/// PostgreSQL: writes every group in one statement that commits on its own
/// (`insert_rows_autocommit`), assuming no message of theirs is recorded yet, as is the case for
/// all but retries. `None` when that did not go through (not PostgreSQL; a message already
/// recorded, or any other refusal; a lost connection): nothing of it was written, or in the
/// last case possibly all of it, and [`write_once`] decides inside a transaction (a message found
/// recorded there is answered as such, whoever wrote it). Saves the batch two of its four round
/// trips and the msgid read (ARCHITECTURE, the hot account).
async fn write_fresh(store: &Store, groups: &[&[Row]]) -> Option<()> {
    let Store::Postgres(pool) = store else {
        return None;
    };
    let rows: Vec<&Row> = groups.iter().flat_map(|rows| rows.iter()).collect();
    match super::rows::insert_rows_autocommit(pool, &rows).await {
        Ok(()) => Some(()),
        Err(error) => {
            if crate::store::batch::refused_as_expected(&error) {
                tracing::debug!(%error, "money-free batch refused as a whole, deciding in a transaction");
            } else {
                tracing::warn!(%error, "money-free batch failed as one statement, deciding in a transaction");
            }
            None
        }
    }
}

/// Writes the groups (one job's rows each) in one transaction, except those whose message is
/// already recorded (decided inside the transaction: msgid idempotency in the serialised write).
/// Returns, per group, whether it was skipped for that reason.
async fn write_once(store: &Store, groups: &[&[Row]]) -> Result<Vec<bool>> {
    let mut tx = store.begin_write().await?;
    let taken = match taken_groups(
        &mut tx,
        groups
            .iter()
            .map(|rows| rows.iter().find_map(Row::message_id)),
    )
    .await
    {
        Ok(taken) => taken,
        Err(error) => {
            let _ = tx.rollback().await;
            return Err(error);
        }
    };
    let rows: Vec<&Row> = groups
        .iter()
        .zip(&taken)
        .filter(|(_, taken)| !**taken)
        .flat_map(|(rows, _)| rows.iter())
        .collect();
    match insert_rows(&mut tx, &rows).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(taken)
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}
