//! Coalesced loads of what a settlement needs from the database when the cache does not have it:
//! the person's year-to-date accumulator sums and the personal account's balance.
//!
//! Why: in a stream of settlements most persons are cold (each settles once or twice a day), and
//! two single-row reads per settlement were, with the msgid look-ups, most of the statements the
//! database ran (a few thousand a second, each a round trip and a pool checkout). One loader task
//! per core takes every load request queued while its previous query ran and answers them all from
//! ONE statement of fixed text (`UNNEST` arrays on PostgreSQL, `json_each` on SQLite), so under
//! load a statement serves tens of settlements and the prepared statement is reused.
//!
//! Exactness: a request is sent while its person's lock is held (`locks::PersonLocks`), after the
//! previous message of that person committed, and the query starts after the request arrived, so
//! it reads every commit the settlement depends on (READ COMMITTED on PostgreSQL; a fresh read
//! snapshot on SQLite).

use std::collections::{BTreeMap, HashMap};

use tokio::sync::{mpsc, oneshot};

use super::store::add_changes;
use crate::error::{LedgerError, Result};
use crate::ids::AccountId;
use crate::store::{Backend, Store};

/// Most requests answered by one statement.
const LOADS_PER_STATEMENT_MAX: usize = 256;
/// Most requests waiting.
const LOAD_QUEUE_MAX: usize = 8_192;

/// What one settlement needs: accumulator sums of (`psn_no`, `year`) by name, and the credit
/// balance (credits − debits, fen) of `account`.
pub(crate) type MoneyState = (BTreeMap<String, i64>, i64);

struct LoadJob {
    psn_no: String,
    year: i64,
    account: AccountId,
    reply: oneshot::Sender<Result<MoneyState>>,
}

/// The loader's handle (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct MoneyLoader {
    sender: mpsc::Sender<LoadJob>,
}

impl MoneyLoader {
    /// Starts two loader tasks on `store` (two queries in flight overlap one's round trip with
    /// the other's work); they end when every handle is dropped.
    pub(crate) fn spawn(store: Store) -> MoneyLoader {
        let (sender, receiver) = mpsc::channel(LOAD_QUEUE_MAX);
        let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..2 {
            tokio::spawn(run(store.clone(), receiver.clone()));
        }
        MoneyLoader { sender }
    }

    /// True while more than half the queue is taken: work that only anticipates a load
    /// (`Medical::warm_money_state`) is not added then.
    pub(crate) fn backlogged(&self) -> bool {
        self.sender.capacity() < LOAD_QUEUE_MAX / 2
    }

    /// Loads the accumulator sums of (`psn_no`, `year`) and `account`'s credit balance.
    /// Errors: storage errors; `WriterGone` if the loader stopped. An account that does not
    /// exist reads as balance 0 (the ledger refuses a posting to it anyway).
    pub(crate) async fn load(
        &self,
        psn_no: &str,
        year: i64,
        account: AccountId,
    ) -> Result<MoneyState> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(LoadJob {
                psn_no: psn_no.to_owned(),
                year,
                account,
                reply,
            })
            .await
            .map_err(|_| LedgerError::WriterGone)?;
        answer.await.map_err(|_| LedgerError::WriterGone)?
    }
}

async fn run(store: Store, receiver: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<LoadJob>>>) {
    loop {
        let mut jobs = Vec::with_capacity(LOADS_PER_STATEMENT_MAX);
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < LOADS_PER_STATEMENT_MAX {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        match load_many(&store, &jobs).await {
            Ok((sums, balances)) => {
                for job in jobs {
                    let state = (
                        sums.get(&(job.psn_no.clone(), job.year))
                            .cloned()
                            .unwrap_or_default(),
                        balances.get(&job.account).copied().unwrap_or(0),
                    );
                    let _ = job.reply.send(Ok(state));
                }
            }
            Err(error) => {
                let text = error.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(LedgerError::BatchFailed(text.clone())));
                }
            }
        }
    }
}

type Sums = HashMap<(String, i64), BTreeMap<String, i64>>;

/// One statement for all `jobs`: rows (psn_no, year, deltas, 0) of the accumulator changes (summed
/// here, `store::add_changes`), then rows (NULL, account id, NULL, credit balance) of the accounts.
async fn load_many(store: &Store, jobs: &[LoadJob]) -> Result<(Sums, HashMap<AccountId, i64>)> {
    let rows = match store {
        Backend::Postgres(pool) => {
            let psn: Vec<String> = jobs.iter().map(|job| job.psn_no.clone()).collect();
            let years: Vec<i64> = jobs.iter().map(|job| job.year).collect();
            let accounts: Vec<i64> = jobs.iter().map(|job| job.account.get()).collect();
            sqlx::query(
                // Driven by the key arrays (a nested loop of one probe per key, `keyed lookups`
                // in store/mod.rs), whatever the join statistics say. The arrays are read
                // through sub-selects so that no plan sees their length (`generic plans` in
                // store/mod.rs): the cached generic plan is then used.
                "SELECT k.psn_no, k.year, c.deltas, CAST(0 AS BIGINT) \
                 FROM UNNEST((SELECT $1::text[]), (SELECT $2::bigint[])) AS k (psn_no, year) \
                 CROSS JOIN LATERAL (SELECT d.deltas FROM accumulator_changes d \
                 WHERE d.psn_no = k.psn_no AND d.year = k.year OFFSET 0) AS c \
                 UNION ALL \
                 SELECT NULL, a.id, NULL, a.credits_posted - a.debits_posted \
                 FROM UNNEST((SELECT $3::bigint[])) AS i (id) \
                 CROSS JOIN LATERAL (SELECT * FROM accounts WHERE accounts.id = i.id OFFSET 0) AS a",
            )
            .bind(psn)
            .bind(years)
            .bind(accounts)
            .fetch_all(pool)
            .await?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>>>()?
        }
        Backend::Sqlite(pool) => {
            let keys: Vec<(&str, i64)> = jobs
                .iter()
                .map(|job| (job.psn_no.as_str(), job.year))
                .collect();
            let accounts: Vec<i64> = jobs.iter().map(|job| job.account.get()).collect();
            let keys =
                serde_json::to_string(&keys).map_err(|_| LedgerError::Corrupt("load keys"))?;
            let accounts =
                serde_json::to_string(&accounts).map_err(|_| LedgerError::Corrupt("load keys"))?;
            sqlx::query(
                "SELECT d.psn_no, d.year, d.deltas, 0 \
                 FROM accumulator_changes d \
                 WHERE (d.psn_no, d.year) IN (SELECT json_extract(value, '$[0]'), \
                 json_extract(value, '$[1]') FROM json_each($1)) \
                 UNION ALL \
                 SELECT NULL, a.id, NULL, a.credits_posted - a.debits_posted FROM accounts a \
                 WHERE a.id IN (SELECT value FROM json_each($2))",
            )
            .bind(keys)
            .bind(accounts)
            .fetch_all(pool)
            .await?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>>>()?
        }
    };
    let mut sums: Sums = HashMap::new();
    let mut balances = HashMap::new();
    for (psn_no, key, deltas, value) in rows {
        match (psn_no, deltas) {
            (Some(psn_no), Some(deltas)) => {
                add_changes(sums.entry((psn_no, key)).or_default(), &deltas)?;
            }
            _ => {
                balances.insert(AccountId(key), value);
            }
        }
    }
    Ok((sums, balances))
}

type Loaded = (Option<String>, i64, Option<String>, i64);

fn decode<R: sqlx::Row>(row: &R) -> Result<Loaded>
where
    usize: sqlx::ColumnIndex<R>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ))
}
