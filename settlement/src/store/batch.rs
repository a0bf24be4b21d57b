//! One group-commit batch in one database transaction: load what the batch needs (locking the
//! touched account rows in id order), decide in memory (`plan::plan_batch`), write postings, legs
//! and one balance UPDATE per touched account, commit once.
//!
//! Correct under writers in other processes: on PostgreSQL the account rows are locked with
//! `SELECT ... ORDER BY id FOR UPDATE` (a deterministic order, so two batches cannot deadlock on
//! them) and their balances are read after the lock is granted; on SQLite `BEGIN IMMEDIATE` makes
//! the batch the only writer. A posting id or reversal committed by another process between our
//! read and our insert trips a unique index; the writer then retries the whole batch, which now
//! sees the other commit and replays it.
//!
//! On PostgreSQL a batch of new msgids is first offered as ONE self-committing statement
//! (`one_statement`: one round trip instead of eight), refused as a whole unless it can only end
//! as the transaction would end it; whatever it refuses is decided by the transaction as above.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sqlx::{QueryBuilder, Row};

use crate::account::AccountFlags;
use crate::error::{LedgerError, Rejection, Result};
use crate::fen::Fen;
use crate::ids::{AccountId, Admdvs, PostingId};
use crate::medical::rows::{Attachment, Row as MedicalRow, insert_rows, taken_groups};
use crate::plan::{AccountState, Decision, StoredPosting, Submitted, TargetInfo, plan_batch};
use crate::posting::{Leg, Side};
use crate::records::Receipt;
use crate::store::{Store, Tx, dispatch};

/// Most rows in one multi-row statement (bind parameters stay below SQLite's 32 766 and
/// PostgreSQL's 65 535 with 9 columns).
const ROWS_PER_STATEMENT_MAX: usize = 1_000;

/// Applies a batch and commits it. Returns one answer per submission, in order.
///
/// `attachments[i]` (medical rows, see `medical::rows`) is inserted in the same transaction when
/// `items[i]` is decided for the first time (`always`) and posted (`if_posted`); a replayed or
/// conflicting repeat writes nothing.
///
/// `may_trust_msgids`: when every submission carries a message record, its posting id is the
/// one derived from that msgid (`medical::ids::posting_id_of`, checked here) and none of those
/// msgids is recorded yet, the read of already committed posting ids is skipped: such a posting
/// commits with its message record, so none of them can exist. That saves one of the batch's
/// round trips (~0.6 ms of a ~8 ms batch on a loaded machine, ARCHITECTURE). Should one exist
/// after all (an id committed by another path under the same name; `Envelope::parse` takes
/// msgids of letters and digits only, and the other paths' keys hold `:` or `#`, so only a
/// caller bypassing it could), its insert trips the unique index and the batch fails; the writer
/// then applies it again with `false`, which reads them and decides as always (replay or
/// conflict). Nothing of the failed attempt stays (one transaction).
pub(crate) async fn apply_batch(
    store: &Store,
    items: &[Submitted],
    attachments: &[Option<Arc<Attachment>>],
    posted_at_ms: i64,
    may_trust_msgids: bool,
) -> Result<Vec<Result<Receipt, LedgerError>>> {
    let mut trust = may_trust_msgids
        && items.iter().zip(attachments).all(|(item, attachment)| {
            message_of(attachment)
                .is_some_and(|msgid| crate::medical::ids::posting_id_of(msgid) == item.posting.id)
        });
    if trust && let Store::Postgres(pool) = store {
        match one_statement(pool, items, attachments, posted_at_ms).await {
            Some(Ok(answers)) => return Ok(answers),
            Some(Err(error)) => {
                if refused_as_expected(&error) {
                    tracing::debug!(%error, "ledger batch refused as one statement, deciding it in a transaction");
                } else {
                    tracing::warn!(%error, "ledger batch failed as one statement, deciding it in a transaction");
                }
                // A posting id already there (a retry's, or committed unseen): read them.
                if let LedgerError::Storage(sqlx::Error::Database(db)) = &error
                    && db.is_unique_violation()
                {
                    trust = false;
                }
            }
            None => {}
        }
    }
    let mut tx = store.begin_write().await?;
    match run(&mut tx, items, attachments, posted_at_ms, trust).await {
        Ok(answers) => {
            tx.commit().await?;
            Ok(answers)
        }
        Err(error) => {
            // The rollback error (if any) is secondary to the one that caused it.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Whether `one_statement` failed the way it is meant to refuse a batch: a unique index (a
/// msgid or posting id already there), a CHECK or `ledger_batch_assert` (a condition the
/// transaction decides), a deadlock with another process, an arithmetic overflow. Anything else
/// (a lost connection, a bug in the statement) is worth a warning: every batch would pay for it.
pub(crate) fn refused_as_expected(error: &LedgerError) -> bool {
    let LedgerError::Storage(sqlx::Error::Database(db)) = error else {
        return false;
    };
    matches!(
        db.code().as_deref(),
        Some("23505" | "23514" | "40P01" | "22003")
    )
}

/// PostgreSQL: a batch of new postings applied as ONE statement that commits on its own (one
/// round trip where the transaction of [`run`] takes eight: BEGIN, the msgid read, the account
/// lock, four writes, COMMIT; ARCHITECTURE, "The pooled fund is a hot account", session 9).
///
/// It takes only a batch whose every submission carries a new msgid (`trusted` by
/// [`apply_batch`]), no link, a posting id of its own, and accounts each of whose touched
/// regions agree: then, if nothing is refused, every submission is posted, which is what the
/// in-memory plan would decide. The statement inserts the postings (`P`), their legs and the
/// medical rows and adds each account's batch total to its balance row, and it is refused as a
/// whole (`ledger_batch_assert`, migrations/postgres/0007) unless every account exists, is of the
/// posting's region, stays within `Fen::MAX`, and, when it carries a balance condition, moves one
/// way only in this batch, so that the condition on its final balance (the accounts' CHECK
/// constraints) holds exactly when it holds after every leg in submission order. A msgid or
/// posting id already recorded is refused by its unique index. Whatever is refused writes
/// nothing and the caller decides the batch in a transaction.
///
/// Returns `None` when the batch does not qualify, `Some(Err)` when the statement was refused or
/// its answer lost (the connection: it may have committed; the transaction then finds its
/// postings and replays them).
async fn one_statement(
    pool: &sqlx::PgPool,
    items: &[Submitted],
    attachments: &[Option<Arc<Attachment>>],
    posted_at_ms: i64,
) -> Option<Result<Vec<Result<Receipt, LedgerError>>>> {
    let mut ids = HashMap::with_capacity(items.len());
    // Per account: (debit total, credit total, region of the postings touching it).
    let mut totals: std::collections::BTreeMap<AccountId, (i64, i64, Admdvs)> =
        std::collections::BTreeMap::new();
    let (mut posting_ids, mut regions, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut leg_postings, mut leg_nos, mut leg_accounts, mut sides, mut amounts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rows: Vec<&MedicalRow> = Vec::new();
    for (index, (item, attachment)) in items.iter().zip(attachments).enumerate() {
        let posting = &item.posting;
        if posting.link.is_some() || ids.insert(posting.id, index).is_some() {
            return None;
        }
        let attachment = attachment.as_ref()?;
        rows.extend(attachment.always.iter().chain(&attachment.if_posted));
        posting_ids.push(posting.id.to_bytes().to_vec());
        regions.push(admdvs_column(posting.admdvs).ok()?);
        hashes.push(item.hash.to_vec());
        for (leg_no, leg) in posting.legs.iter().enumerate() {
            let total = totals.entry(leg.account).or_insert((0, 0, posting.admdvs));
            if total.2 != posting.admdvs {
                return None;
            }
            let side = match leg.side {
                Side::Debit => &mut total.0,
                Side::Credit => &mut total.1,
            };
            *side = side.checked_add(leg.amount.fen())?;
            leg_postings.push(posting.id.to_bytes().to_vec());
            leg_nos.push(i16::try_from(leg_no).ok()?);
            leg_accounts.push(leg.account.get());
            sides.push(leg.side.as_str().to_owned());
            amounts.push(leg.amount.fen());
        }
    }
    let (mut accounts, mut debits, mut credits, mut wanted) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Ascending ids: `k` locks the rows in this order (as the transaction's `lock_accounts`
    // does) before the UPDATE writes them in whatever order its join takes.
    for (account, (debit, credit, admdvs)) in &totals {
        accounts.push(account.get());
        debits.push(*debit);
        credits.push(*credit);
        wanted.push(admdvs_column(*admdvs).ok()?);
    }
    let mut by_table: std::collections::BTreeMap<_, Vec<&MedicalRow>> =
        std::collections::BTreeMap::new();
    for row in rows {
        by_table.entry(row.table).or_default().push(row);
    }
    let inserts = crate::medical::rows::UnnestInserts::of(&by_table, 16);
    let mut sql = String::from(
        "WITH p AS (INSERT INTO postings (id, admdvs, content_sha256, status, posted_at_ms) \
         SELECT u.id, u.admdvs, u.h, 'P', $4::int8 \
         FROM UNNEST($1::bytea[], $2::int4[], $3::bytea[]) WITH ORDINALITY AS u (id, admdvs, h, n) \
         ORDER BY u.n RETURNING id, seq), \
         l AS (INSERT INTO legs (posting_seq, leg_no, account_id, side, amount_fen) \
         SELECT p.seq, v.leg_no, v.account, v.side, v.amount \
         FROM UNNEST($5::bytea[], $6::int2[], $7::int8[], $8::text[], $9::int8[]) \
         AS v (id, leg_no, account, side, amount) JOIN p ON p.id = v.id), \
         k AS MATERIALIZED (SELECT a.id FROM (SELECT UNNEST($10::int8[]) AS id ORDER BY 1) AS u \
         CROSS JOIN LATERAL (SELECT id FROM accounts WHERE accounts.id = u.id FOR UPDATE) AS a), \
         b AS (UPDATE accounts SET debits_posted = accounts.debits_posted + v.d, \
         credits_posted = accounts.credits_posted + v.c \
         FROM UNNEST($10::int8[], $11::int8[], $12::int8[], $13::int4[]) AS v (id, d, c, want) \
         JOIN k ON k.id = v.id \
         WHERE accounts.id = v.id \
         RETURNING (accounts.admdvs = v.want AND accounts.debits_posted <= $14::int8 \
         AND accounts.credits_posted <= $14::int8 \
         AND (accounts.flags = 0 OR v.d = 0 OR v.c = 0)) AS ok)",
    );
    for (index, part) in inserts.parts.iter().enumerate() {
        sql.push_str(&format!(", w{index} AS ({part})"));
    }
    sql.push_str(
        " SELECT p.id, p.seq FROM p \
         WHERE ledger_batch_assert((SELECT count(*) = $15::int8 AND bool_and(ok) FROM b))",
    );
    let account_count = i64::try_from(accounts.len()).ok()?;
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(posting_ids)
        .bind(regions)
        .bind(hashes)
        .bind(posted_at_ms)
        .bind(leg_postings)
        .bind(leg_nos)
        .bind(leg_accounts)
        .bind(sides)
        .bind(amounts)
        .bind(accounts)
        .bind(debits)
        .bind(credits)
        .bind(wanted)
        .bind(Fen::MAX.fen())
        .bind(account_count);
    let written = match inserts.bind(query).fetch_all(pool).await {
        Ok(written) => written,
        Err(error) => return Some(Err(error.into())),
    };
    let seqs = written
        .iter()
        .map(|row| Ok((posting_id(row.try_get(0)?)?, row.try_get::<i64, _>(1)?)))
        .collect::<Result<HashMap<PostingId, i64>>>();
    let seqs = match seqs {
        Ok(seqs) => seqs,
        Err(error) => return Some(Err(error)),
    };
    Some(Ok(items
        .iter()
        .map(|item| {
            let id = item.posting.id;
            seqs.get(&id)
                .map(|&seq| Receipt {
                    id,
                    seq,
                    posted_at_ms,
                })
                .ok_or(LedgerError::Corrupt("postings: insert returned no seq"))
        })
        .collect()))
}

/// Decides which submissions carry a message that is already recorded (they write nothing and
/// are answered `MessageRecorded`: msgid idempotency decided inside the serialised write), then
/// applies the others.
async fn run(
    tx: &mut Tx,
    items: &[Submitted],
    attachments: &[Option<Arc<Attachment>>],
    posted_at_ms: i64,
    trust: bool,
) -> Result<Vec<Result<Receipt, LedgerError>>> {
    let taken = taken_groups(tx, attachments.iter().map(message_of)).await?;
    if !taken.contains(&true) {
        return run_fresh(tx, items, attachments, posted_at_ms, trust).await;
    }
    let keep: Vec<usize> = (0..items.len()).filter(|&i| !taken[i]).collect();
    let kept_items: Vec<Submitted> = keep.iter().map(|&i| items[i].clone()).collect();
    let kept_attachments: Vec<Option<Arc<Attachment>>> =
        keep.iter().map(|&i| attachments[i].clone()).collect();
    let mut kept = run_fresh(tx, &kept_items, &kept_attachments, posted_at_ms, trust)
        .await?
        .into_iter();
    let mut answers = Vec::with_capacity(items.len());
    for is_taken in taken {
        answers.push(if is_taken {
            Err(LedgerError::MessageRecorded)
        } else {
            kept.next()
                .ok_or(LedgerError::Corrupt("batch: answer count"))?
        });
    }
    Ok(answers)
}

/// The msgid whose record rides with a posting, if any.
fn message_of(attachment: &Option<Arc<Attachment>>) -> Option<&str> {
    attachment
        .as_ref()?
        .always
        .iter()
        .find_map(|row| row.message_id())
}

/// `fresh_msgids`: every item carries a message record whose msgid is not recorded (see
/// `apply_batch`), so no posting of the batch can be committed already.
async fn run_fresh(
    tx: &mut Tx,
    items: &[Submitted],
    attachments: &[Option<Arc<Attachment>>],
    posted_at_ms: i64,
    fresh_msgids: bool,
) -> Result<Vec<Result<Receipt, LedgerError>>> {
    let ids: BTreeSet<PostingId> = items.iter().map(|item| item.posting.id).collect();
    let existing = if fresh_msgids {
        HashMap::new()
    } else {
        existing_postings(tx, &ids).await?
    };
    let fresh = || {
        items
            .iter()
            .filter(|item| !existing.contains_key(&item.posting.id))
    };
    let account_ids: BTreeSet<AccountId> = fresh()
        .flat_map(|item| item.posting.legs.iter().map(|leg| leg.account))
        .collect();
    let accounts = lock_accounts(tx, &account_ids).await?;
    let target_ids: BTreeSet<PostingId> = fresh()
        .filter_map(|item| item.posting.link.map(|link| link.parts().1))
        .filter(|target| !ids.contains(target))
        .collect();
    let targets = link_targets(tx, &target_ids).await?;

    let plan = plan_batch(items, &existing, &accounts, &targets);

    let new_items: Vec<(&Submitted, Result<(), Rejection>)> = items
        .iter()
        .zip(&plan.decisions)
        .filter_map(|(item, decision)| match decision {
            Decision::New(outcome) => Some((item, *outcome)),
            _ => None,
        })
        .collect();
    let seqs = insert_postings(tx, &new_items, posted_at_ms).await?;
    insert_legs(tx, &new_items, &seqs).await?;
    update_balances(tx, &plan.dirty).await?;

    let mut rows: Vec<&MedicalRow> = Vec::new();
    for (attachment, decision) in attachments.iter().zip(&plan.decisions) {
        if let (Some(attachment), Decision::New(outcome)) = (attachment, decision) {
            rows.extend(attachment.always.iter());
            if outcome.is_ok() {
                rows.extend(attachment.if_posted.iter());
            }
        }
    }
    if !rows.is_empty() {
        insert_rows(tx, &rows).await?;
    }

    let mut answers: Vec<Result<Receipt, LedgerError>> = Vec::with_capacity(items.len());
    for (item, decision) in items.iter().zip(&plan.decisions) {
        let id = item.posting.id;
        let answer = match decision {
            Decision::Replay(stored) => stored
                .outcome
                .map(|()| Receipt {
                    id,
                    seq: stored.seq,
                    posted_at_ms: stored.posted_at_ms,
                })
                .map_err(LedgerError::Rejected),
            Decision::Conflict => Err(LedgerError::IdempotencyConflict(id)),
            Decision::New(outcome) => {
                let seq = *seqs
                    .get(&id)
                    .ok_or(LedgerError::Corrupt("postings: insert returned no seq"))?;
                outcome
                    .map(|()| Receipt {
                        id,
                        seq,
                        posted_at_ms,
                    })
                    .map_err(LedgerError::Rejected)
            }
            Decision::SameAs(first) => match answers.get(*first) {
                Some(Ok(receipt)) => Ok(*receipt),
                Some(Err(LedgerError::Rejected(rejection))) => {
                    Err(LedgerError::Rejected(*rejection))
                }
                _ => Err(LedgerError::Corrupt("batch: duplicate refers to no answer")),
            },
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Postings already committed under any of `ids`.
async fn existing_postings(
    tx: &mut Tx,
    ids: &BTreeSet<PostingId>,
) -> Result<HashMap<PostingId, StoredPosting>> {
    let mut found = HashMap::new();
    if let Tx::Postgres(t) = tx {
        // One statement of fixed text whatever the batch size (its plan is prepared once).
        let bytes: Vec<Vec<u8>> = ids.iter().map(|id| id.to_bytes().to_vec()).collect();
        let rows = sqlx::query(
            "SELECT p.id, p.seq, p.content_sha256, p.status, p.reject_code, p.reject_account, \
             p.link_target, p.posted_at_ms FROM UNNEST($1::bytea[]) AS k (id) CROSS JOIN LATERAL \
             (SELECT * FROM postings WHERE postings.id = k.id OFFSET 0) AS p",
        )
        .bind(bytes)
        .fetch_all(&mut **t)
        .await?;
        for row in &rows {
            let (id, stored) = stored_posting(row)?;
            found.insert(id, stored);
        }
        return Ok(found);
    }
    let ids: Vec<PostingId> = ids.iter().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT_MAX) {
        let bytes: Vec<Vec<u8>> = chunk.iter().map(|id| id.to_bytes().to_vec()).collect();
        let rows = dispatch!(tx, t => {
            let mut query = QueryBuilder::new(
                "SELECT id, seq, content_sha256, status, reject_code, reject_account, link_target, \
                 posted_at_ms FROM postings WHERE id IN (",
            );
            push_list(&mut query, &bytes);
            let rows = query.build().fetch_all(&mut **t).await?;
            rows.iter().map(|row| -> Result<(PostingId, StoredPosting)> {
                let id = posting_id(row.try_get(0)?)?;
                let status: String = row.try_get(3)?;
                let link_target: Option<Vec<u8>> = row.try_get(6)?;
                let link_target = link_target.map(posting_id).transpose()?;
                let outcome = match status.as_str() {
                    "P" => Ok(()),
                    "R" => Err(Rejection::from_stored(row.try_get(4)?, row.try_get(5)?, link_target)
                        .ok_or(LedgerError::Corrupt("postings.reject_code"))?),
                    _ => return Err(LedgerError::Corrupt("postings.status")),
                };
                let hash: Vec<u8> = row.try_get(2)?;
                let hash = <[u8; 32]>::try_from(hash.as_slice())
                    .map_err(|_| LedgerError::Corrupt("postings.content_sha256"))?;
                Ok((id, StoredPosting { seq: row.try_get(1)?, hash, outcome, posted_at_ms: row.try_get(7)? }))
            }).collect::<Result<Vec<_>>>()?
        });
        found.extend(rows);
    }
    Ok(found)
}

/// Loads and (PostgreSQL) locks the account rows, in id order.
async fn lock_accounts(
    tx: &mut Tx,
    ids: &BTreeSet<AccountId>,
) -> Result<HashMap<AccountId, AccountState>> {
    let mut found = HashMap::new();
    if let Tx::Postgres(t) = tx {
        let list: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        let rows = sqlx::query(
            "SELECT a.id, a.admdvs, a.flags, a.debits_posted, a.credits_posted \
             FROM (SELECT DISTINCT UNNEST($1::int8[]) AS id ORDER BY 1) AS k CROSS JOIN LATERAL \
             (SELECT * FROM accounts WHERE accounts.id = k.id FOR UPDATE) AS a",
        )
        .bind(list)
        .fetch_all(&mut **t)
        .await?;
        for row in &rows {
            let admdvs: i32 = row.try_get(1)?;
            let state = AccountState {
                admdvs: admdvs_of(admdvs)?,
                flags: AccountFlags::from_bits(row.try_get(2)?),
                debits: fen_of(row.try_get(3)?, "accounts.debits_posted")?,
                credits: fen_of(row.try_get(4)?, "accounts.credits_posted")?,
            };
            found.insert(AccountId(row.try_get(0)?), state);
        }
        return Ok(found);
    }
    let ids: Vec<AccountId> = ids.iter().copied().collect();
    let suffix = tx.lock_suffix();
    // Chunks are in ascending id order too, so the global lock order stays ascending.
    for chunk in ids.chunks(ROWS_PER_STATEMENT_MAX) {
        let rows = dispatch!(tx, t => {
            let mut query = QueryBuilder::new(
                "SELECT id, admdvs, flags, debits_posted, credits_posted FROM accounts WHERE id IN (",
            );
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.get());
            }
            query.push(") ORDER BY id");
            query.push(suffix);
            let rows = query.build().fetch_all(&mut **t).await?;
            rows.iter().map(|row| -> Result<(AccountId, AccountState)> {
                let admdvs: i32 = row.try_get(1)?;
                let state = AccountState {
                    admdvs: admdvs_of(admdvs)?,
                    flags: AccountFlags::from_bits(row.try_get(2)?),
                    debits: fen_of(row.try_get(3)?, "accounts.debits_posted")?,
                    credits: fen_of(row.try_get(4)?, "accounts.credits_posted")?,
                };
                Ok((AccountId(row.try_get(0)?), state))
            }).collect::<Result<Vec<_>>>()?
        });
        found.extend(rows);
    }
    Ok(found)
}

/// Committed link targets: status, legs, and whether a posted reversal exists.
async fn link_targets(
    tx: &mut Tx,
    ids: &BTreeSet<PostingId>,
) -> Result<HashMap<PostingId, TargetInfo>> {
    let mut found: HashMap<PostingId, TargetInfo> = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let ids: Vec<PostingId> = ids.iter().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT_MAX) {
        let bytes: Vec<Vec<u8>> = chunk.iter().map(|id| id.to_bytes().to_vec()).collect();
        dispatch!(tx, t => {
            let mut heads = QueryBuilder::new("SELECT id, status FROM postings WHERE id IN (");
            push_list(&mut heads, &bytes);
            let mut legs = QueryBuilder::new(
                "SELECT p.id, l.account_id, l.side, l.amount_fen FROM legs l \
                 JOIN postings p ON p.seq = l.posting_seq WHERE p.id IN (",
            );
            push_list(&mut legs, &bytes);
            legs.push(" ORDER BY l.posting_seq, l.leg_no");
            let mut reversed = QueryBuilder::new(
                "SELECT link_target FROM postings WHERE link_kind = 'R' AND status = 'P' \
                 AND link_target IN (",
            );
            push_list(&mut reversed, &bytes);
            for row in heads.build().fetch_all(&mut **t).await? {
                let status: String = row.try_get(1)?;
                found.insert(posting_id(row.try_get(0)?)?, TargetInfo {
                    posted: status == "P",
                    legs: Vec::new(),
                    reversed: false,
                });
            }
            for row in legs.build().fetch_all(&mut **t).await? {
                let id = posting_id(row.try_get(0)?)?;
                let leg = leg_of(row.try_get(1)?, &row.try_get::<String, _>(2)?, row.try_get(3)?)?;
                if let Some(info) = found.get_mut(&id) {
                    info.legs.push(leg);
                }
            }
            for row in reversed.build().fetch_all(&mut **t).await? {
                if let Some(info) = found.get_mut(&posting_id(row.try_get(0)?)?) {
                    info.reversed = true;
                }
            }
        });
    }
    Ok(found)
}

/// A `postings` row (id, seq, content_sha256, status, reject_code, reject_account, link_target,
/// posted_at_ms) as the planner's stored posting.
fn stored_posting(row: &sqlx::postgres::PgRow) -> Result<(PostingId, StoredPosting)> {
    let id = posting_id(row.try_get(0)?)?;
    let status: String = row.try_get(3)?;
    let link_target: Option<Vec<u8>> = row.try_get(6)?;
    let link_target = link_target.map(posting_id).transpose()?;
    let outcome = match status.as_str() {
        "P" => Ok(()),
        "R" => Err(
            Rejection::from_stored(row.try_get(4)?, row.try_get(5)?, link_target)
                .ok_or(LedgerError::Corrupt("postings.reject_code"))?,
        ),
        _ => return Err(LedgerError::Corrupt("postings.status")),
    };
    let hash: Vec<u8> = row.try_get(2)?;
    let hash = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| LedgerError::Corrupt("postings.content_sha256"))?;
    Ok((
        id,
        StoredPosting {
            seq: row.try_get(1)?,
            hash,
            outcome,
            posted_at_ms: row.try_get(7)?,
        },
    ))
}

fn push_list<DB: sqlx::Database>(query: &mut QueryBuilder<DB>, values: &[Vec<u8>])
where
    Vec<u8>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
    query.push(")");
}

/// Inserts the new postings (posted and rejected); returns their seq by id.
async fn insert_postings(
    tx: &mut Tx,
    items: &[(&Submitted, Result<(), Rejection>)],
    posted_at_ms: i64,
) -> Result<HashMap<PostingId, i64>> {
    let mut seqs = HashMap::with_capacity(items.len());
    if items.is_empty() {
        return Ok(seqs);
    }
    if let Tx::Postgres(t) = tx {
        let n = items.len();
        let (mut ids, mut admdvs, mut hashes, mut statuses) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut codes, mut accounts, mut kinds, mut targets) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (item, outcome) in items {
            let posting = &item.posting;
            let (status, code, account) = outcome_columns(outcome);
            let link = posting.link.map(|link| link.parts());
            ids.push(posting.id.to_bytes().to_vec());
            admdvs.push(admdvs_column(posting.admdvs)?);
            hashes.push(item.hash.to_vec());
            statuses.push(status.to_owned());
            codes.push(code);
            accounts.push(account);
            kinds.push(link.map(|(kind, _)| kind.to_owned()));
            targets.push(link.map(|(_, target)| target.to_bytes().to_vec()));
        }
        let rows = sqlx::query(
            "INSERT INTO postings (id, admdvs, content_sha256, status, reject_code, \
             reject_account, link_kind, link_target, posted_at_ms) \
             SELECT u.*, $9::int8 FROM UNNEST($1::bytea[], $2::int4[], $3::bytea[], $4::text[], \
             $5::int2[], $6::int8[], $7::text[], $8::bytea[]) AS u RETURNING id, seq",
        )
        .bind(ids)
        .bind(admdvs)
        .bind(hashes)
        .bind(statuses)
        .bind(codes)
        .bind(accounts)
        .bind(kinds)
        .bind(targets)
        .bind(posted_at_ms)
        .fetch_all(&mut **t)
        .await?;
        for row in &rows {
            seqs.insert(posting_id(row.try_get(0)?)?, row.try_get::<i64, _>(1)?);
        }
        return Ok(seqs);
    }
    for chunk in items.chunks(ROWS_PER_STATEMENT_MAX) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (item, outcome) in chunk {
            let posting = &item.posting;
            let (status, code, account) = outcome_columns(outcome);
            let link = posting.link.map(|link| link.parts());
            rows.push((
                posting.id.to_bytes().to_vec(),
                admdvs_column(posting.admdvs)?,
                item.hash.to_vec(),
                status,
                code,
                account,
                link.map(|(kind, _)| kind),
                link.map(|(_, target)| target.to_bytes().to_vec()),
            ));
        }
        dispatch!(tx, t => {
            let mut query = QueryBuilder::new(
                "INSERT INTO postings (id, admdvs, content_sha256, status, reject_code, \
                 reject_account, link_kind, link_target, posted_at_ms) ",
            );
            query.push_values(rows.iter().cloned(), |mut row, values| {
                row.push_bind(values.0)
                    .push_bind(values.1)
                    .push_bind(values.2)
                    .push_bind(values.3)
                    .push_bind(values.4)
                    .push_bind(values.5)
                    .push_bind(values.6)
                    .push_bind(values.7)
                    .push_bind(posted_at_ms);
            });
            query.push(" RETURNING id, seq");
            for row in query.build().fetch_all(&mut **t).await? {
                seqs.insert(posting_id(row.try_get(0)?)?, row.try_get::<i64, _>(1)?);
            }
        });
    }
    Ok(seqs)
}

/// Inserts the legs of the posted postings.
async fn insert_legs(
    tx: &mut Tx,
    items: &[(&Submitted, Result<(), Rejection>)],
    seqs: &HashMap<PostingId, i64>,
) -> Result<()> {
    let mut rows: Vec<(i64, i16, i64, &'static str, i64)> = Vec::new();
    for (item, outcome) in items {
        if outcome.is_err() {
            continue;
        }
        let seq = *seqs
            .get(&item.posting.id)
            .ok_or(LedgerError::Corrupt("postings: insert returned no seq"))?;
        for (leg_no, leg) in item.posting.legs.iter().enumerate() {
            let leg_no = i16::try_from(leg_no).map_err(|_| LedgerError::Corrupt("legs.leg_no"))?;
            rows.push((
                seq,
                leg_no,
                leg.account.get(),
                leg.side.as_str(),
                leg.amount.fen(),
            ));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    if let Tx::Postgres(t) = tx {
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let leg_nos: Vec<i16> = rows.iter().map(|r| r.1).collect();
        let accounts: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let sides: Vec<String> = rows.iter().map(|r| r.3.to_owned()).collect();
        let amounts: Vec<i64> = rows.iter().map(|r| r.4).collect();
        sqlx::query(
            "INSERT INTO legs (posting_seq, leg_no, account_id, side, amount_fen) \
             SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::int8[], $4::text[], $5::int8[])",
        )
        .bind(seqs)
        .bind(leg_nos)
        .bind(accounts)
        .bind(sides)
        .bind(amounts)
        .execute(&mut **t)
        .await?;
        return Ok(());
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT_MAX) {
        dispatch!(tx, t => {
            let mut query = QueryBuilder::new(
                "INSERT INTO legs (posting_seq, leg_no, account_id, side, amount_fen) ",
            );
            query.push_values(chunk, |mut row, values| {
                row.push_bind(values.0)
                    .push_bind(values.1)
                    .push_bind(values.2)
                    .push_bind(values.3)
                    .push_bind(values.4);
            });
            query.build().execute(&mut **t).await?;
        });
    }
    Ok(())
}

/// Writes each touched account's final balances once (the batch's aggregated delta).
async fn update_balances(
    tx: &mut Tx,
    dirty: &std::collections::BTreeMap<AccountId, AccountState>,
) -> Result<()> {
    let rows: Vec<(i64, i64, i64)> = dirty
        .iter()
        .map(|(id, state)| (id.get(), state.debits.fen(), state.credits.fen()))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    if let Tx::Postgres(t) = tx {
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let debits: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let credits: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let updated = sqlx::query(
            "UPDATE accounts SET debits_posted = v.d, credits_posted = v.c \
             FROM UNNEST($1::int8[], $2::int8[], $3::int8[]) AS v (id, d, c) \
             WHERE accounts.id = v.id",
        )
        .bind(ids)
        .bind(debits)
        .bind(credits)
        .execute(&mut **t)
        .await?
        .rows_affected();
        if usize::try_from(updated).ok() != Some(rows.len()) {
            return Err(LedgerError::Corrupt("accounts: locked row vanished"));
        }
        return Ok(());
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT_MAX) {
        let updated = dispatch!(tx, t => {
            let mut query = QueryBuilder::new("WITH v (id, d, c) AS (");
            query.push_values(chunk, |mut row, values| {
                row.push_bind(values.0).push_bind(values.1).push_bind(values.2);
            });
            query.push(
                ") UPDATE accounts SET debits_posted = v.d, credits_posted = v.c \
                 FROM v WHERE accounts.id = v.id",
            );
            query.build().execute(&mut **t).await?.rows_affected()
        });
        if usize::try_from(updated).ok() != Some(chunk.len()) {
            return Err(LedgerError::Corrupt("accounts: locked row vanished"));
        }
    }
    Ok(())
}

/// A decided posting's `postings` columns (status, reject_code, reject_account): `P` with no
/// reason, or `R` with the rejection as stored (`Rejection::to_stored`).
fn outcome_columns(outcome: &Result<(), Rejection>) -> (&'static str, Option<i16>, Option<i64>) {
    match outcome {
        Ok(()) => ("P", None, None),
        Err(rejection) => {
            let (code, account) = rejection.to_stored();
            ("R", Some(code), account)
        }
    }
}

pub(crate) fn posting_id(bytes: Vec<u8>) -> Result<PostingId> {
    let bytes = <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| LedgerError::Corrupt("posting id length"))?;
    Ok(PostingId::from_bytes(bytes)?)
}

pub(crate) fn fen_of(value: i64, column: &'static str) -> Result<Fen> {
    Fen::from_fen(value).map_err(|_| LedgerError::Corrupt(column))
}

pub(crate) fn admdvs_of(value: i32) -> Result<Admdvs> {
    u32::try_from(value)
        .ok()
        .and_then(|code| Admdvs::from_code(code).ok())
        .ok_or(LedgerError::Corrupt("admdvs"))
}

pub(crate) fn admdvs_column(admdvs: Admdvs) -> Result<i32> {
    i32::try_from(admdvs.code()).map_err(|_| LedgerError::Corrupt("admdvs"))
}

pub(crate) fn leg_of(account: i64, side: &str, amount: i64) -> Result<Leg> {
    Ok(Leg {
        account: AccountId(account),
        side: Side::parse(side).ok_or(LedgerError::Corrupt("legs.side"))?,
        amount: fen_of(amount, "legs.amount_fen")?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::apply_batch;
    use crate::medical::ids::posting_id_of;
    use crate::medical::rows::{Attachment, Row, Table, Value};
    use crate::plan::Submitted;
    use crate::{AccountId, AccountSpec, Admdvs, Fen, FundPayType, Ledger, LedgerError};
    use crate::{LedgerOptions, Leg, Posting, Side};

    const REUSED: &str = "H11010500001202611301000000001";
    const FRESH: &str = "H11010500001202611301000000002";

    fn transfer(msgid: &str, from: AccountId, to: AccountId, fen: i64) -> Posting {
        let amount = Fen::from_fen(fen).unwrap();
        Posting {
            id: posting_id_of(msgid),
            admdvs: Admdvs::parse("110000").unwrap(),
            legs: vec![
                Leg {
                    account: from,
                    side: Side::Debit,
                    amount,
                },
                Leg {
                    account: to,
                    side: Side::Credit,
                    amount,
                },
            ],
            link: None,
        }
    }

    /// A message record for `msgid` riding with its posting (status 'L': the outcome is the
    /// posting's).
    fn message(msgid: &str) -> Arc<Attachment> {
        Arc::new(Attachment {
            always: vec![Row {
                table: Table::Messages,
                values: vec![
                    Value::Text(msgid.to_owned()),
                    Value::Text("2207".to_owned()),
                    Value::Bytes(vec![0; 32]),
                    Value::Text("L".to_owned()),
                    Value::Bytes(posting_id_of(msgid).to_bytes().to_vec()),
                    Value::Text("P1".to_owned()),
                    Value::Text(String::new()),
                    Value::I64(0),
                ],
            }],
            if_posted: Vec::new(),
        })
    }

    async fn ledger(dir: &std::path::Path, retries: u32) -> (Ledger, AccountId, AccountId) {
        let mut options = LedgerOptions::default();
        options.writer.batch_retries_max = retries;
        let ledger = Ledger::open_data_dir(dir, options).await.unwrap();
        let admdvs = Admdvs::parse("110000").unwrap();
        let pooled = ledger
            .create_account(&AccountSpec::fund(admdvs, FundPayType::EMPLOYEE_POOLED))
            .await
            .unwrap();
        let personal = ledger
            .create_account(&AccountSpec::fund(
                admdvs,
                FundPayType::EMPLOYEE_PERSONAL_ACCOUNT,
            ))
            .await
            .unwrap();
        (ledger, pooled.id, personal.id)
    }

    /// A posting id derived from a msgid that is not recorded, yet committed (by a path that
    /// wrote no message, as `Ledger::post` does): the batch that trusts the msgids trips the
    /// unique index and leaves nothing; applied again reading the committed ids, it replays
    /// that posting and commits the other one of the batch with its message, once.
    #[tokio::test]
    async fn a_batch_that_trusts_its_msgids_fails_on_a_committed_id_and_the_reread_replays_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, pooled, personal) = ledger(dir.path(), 5).await;
        let reused = transfer(REUSED, pooled, personal, 1_234);
        let first = ledger.post(reused.clone()).await.unwrap();
        let fresh = transfer(FRESH, pooled, personal, 100);
        let items = [reused, fresh].map(|posting| Submitted {
            hash: posting.content_sha256(),
            posting,
        });
        let attachments = [Some(message(REUSED)), Some(message(FRESH))];
        let store = ledger.store();

        match apply_batch(store, &items, &attachments, 1, true).await {
            Err(LedgerError::Storage(sqlx::Error::Database(db))) => {
                assert!(db.is_unique_violation(), "{db}");
            }
            other => panic!("expected a unique violation, got {other:?}"),
        }
        assert_eq!(store.journal_page(0, 100).await.unwrap().len(), 1);
        assert!(store.message(FRESH).await.unwrap().is_none());

        let answers = apply_batch(store, &items, &attachments, 1, false)
            .await
            .unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0].as_ref().unwrap(), &first);
        let second = answers[1].as_ref().unwrap();
        assert!(second.seq > first.seq);
        assert_eq!(store.journal_page(0, 100).await.unwrap().len(), 2);
        // The replayed posting wrote none of its attachment; the new one wrote its message.
        assert!(store.message(REUSED).await.unwrap().is_none());
        assert!(store.message(FRESH).await.unwrap().is_some());
        ledger.close().await;
    }

    /// Through the writer, with no retries allowed for conflicts: the trusted attempt's failure
    /// is not one of them, and the repeat of the committed id gets its first receipt.
    #[tokio::test]
    async fn the_writer_rereads_without_spending_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, pooled, personal) = ledger(dir.path(), 0).await;
        let reused = transfer(REUSED, pooled, personal, 1_234);
        let first = ledger.post(reused.clone()).await.unwrap();
        let again = ledger.post_attached(reused, message(REUSED)).await.unwrap();
        assert_eq!(again, first);
        assert_eq!(ledger.store().journal_page(0, 100).await.unwrap().len(), 1);
        ledger.close().await;
    }

    /// PostgreSQL (`LEDGER_TEST_PG_URL`, default the local `test` database): a ledger in a
    /// schema of its own, with a pooled fund and a personal account (which never goes below
    /// zero) of 110000. Returns the schema's name for [`drop_schema`].
    async fn pg_ledger() -> (Ledger, AccountId, AccountId, String) {
        use sqlx::Connection;
        use std::str::FromStr;
        let url = std::env::var("LEDGER_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!(
            "batch_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let connect = sqlx::postgres::PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let ledger = Ledger::open_postgres(connect, LedgerOptions::default())
            .await
            .unwrap();
        let admdvs = Admdvs::parse("110000").unwrap();
        let pooled = ledger
            .create_account(&AccountSpec::fund(admdvs, FundPayType::EMPLOYEE_POOLED))
            .await
            .unwrap();
        let personal = ledger
            .create_account(&AccountSpec::personal(
                admdvs,
                crate::AccountCode::parse("P0001").unwrap(),
            ))
            .await
            .unwrap();
        (ledger, pooled.id, personal.id, schema)
    }

    async fn drop_schema(schema: &str) {
        use sqlx::Connection;
        let url = std::env::var("LEDGER_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    /// `postings` (msgid, posting) as a batch: submissions and their message records.
    fn batch(postings: Vec<(&str, Posting)>) -> (Vec<Submitted>, Vec<Option<Arc<Attachment>>>) {
        let attachments = postings.iter().map(|(m, _)| Some(message(m))).collect();
        let items = postings
            .into_iter()
            .map(|(_, posting)| Submitted {
                hash: posting.content_sha256(),
                posting,
            })
            .collect();
        (items, attachments)
    }

    /// `postings` refused as one statement, nothing of them written (no message recorded), then
    /// decided by the transaction: its answers.
    async fn refused_then_decided(
        store: &crate::store::Store,
        postings: Vec<(&str, Posting)>,
    ) -> Vec<Result<crate::records::Receipt, LedgerError>> {
        let crate::store::Store::Postgres(pool) = store else {
            panic!("PostgreSQL expected");
        };
        let msgids: Vec<String> = postings.iter().map(|(m, _)| (*m).to_owned()).collect();
        let (items, attachments) = batch(postings);
        let refused = super::one_statement(pool, &items, &attachments, 1).await;
        assert!(matches!(refused, Some(Err(_))), "{refused:?}");
        for msgid in &msgids {
            assert!(store.message(msgid).await.unwrap().is_none(), "{msgid}");
        }
        apply_batch(store, &items, &attachments, 1, true)
            .await
            .unwrap()
    }

    /// The one-statement batch (PostgreSQL) posts a batch of new msgids, and refuses as a whole,
    /// writing nothing, each batch the transaction would decide otherwise or could not prove
    /// alike: an overdraft of the personal account, the personal account moved both ways, an
    /// unknown account, a posting of another region. `apply_batch` then decides each as the
    /// transaction does (expected outcomes from the accounts' rules, account.rs).
    #[tokio::test]
    #[allow(clippy::inconsistent_digit_grouping)] // fen: yuan_fen
    async fn one_statement_posts_only_what_the_transaction_would() {
        use super::one_statement;
        use crate::error::Rejection;
        let (ledger, pooled, personal, schema) = pg_ledger().await;
        let store = ledger.store();
        let crate::store::Store::Postgres(pool) = store else {
            panic!("PostgreSQL expected");
        };
        // Fund the personal account with 100.00: posted in one statement.
        let (items, attachments) = batch(vec![("A1", transfer("A1", pooled, personal, 100_00))]);
        let answers = one_statement(pool, &items, &attachments, 1)
            .await
            .unwrap()
            .unwrap();
        assert!(answers[0].is_ok(), "{answers:?}");
        assert_eq!(
            ledger.balance(personal).await.unwrap().credits_posted.fen(),
            100_00
        );
        assert!(store.message("A1").await.unwrap().is_some());

        // 200.00 out of it: refused, nothing written; the transaction rejects it (ExceedsCredits).
        let answers = refused_then_decided(
            store,
            vec![("B1", transfer("B1", personal, pooled, 200_00))],
        )
        .await;
        assert_eq!(
            ledger.balance(personal).await.unwrap().debits_posted.fen(),
            0
        );
        assert!(
            matches!(answers[0], Err(LedgerError::Rejected(Rejection::ExceedsCredits(a))) if a == personal),
            "{answers:?}"
        );

        // Out 150.00 then in 100.00 in one batch: the final balance (50.00) is fine, the first
        // posting is not (an overdraft of 50.00 in submission order): refused; the transaction
        // rejects the first and posts the second.
        let answers = refused_then_decided(
            store,
            vec![
                ("C1", transfer("C1", personal, pooled, 150_00)),
                ("C2", transfer("C2", pooled, personal, 100_00)),
            ],
        )
        .await;
        assert!(matches!(
            answers[0],
            Err(LedgerError::Rejected(Rejection::ExceedsCredits(_)))
        ));
        assert!(answers[1].is_ok(), "{answers:?}");
        let balance = ledger.balance(personal).await.unwrap();
        assert_eq!(
            (balance.debits_posted.fen(), balance.credits_posted.fen()),
            (0, 200_00)
        );

        // An unknown account: refused; the transaction rejects it.
        let unknown = AccountId(i64::from(i32::MAX));
        let answers =
            refused_then_decided(store, vec![("D1", transfer("D1", unknown, pooled, 1))]).await;
        assert!(matches!(
            answers[0],
            Err(LedgerError::Rejected(Rejection::UnknownAccount(_)))
        ));

        // A posting of 120000 on 110000's accounts: refused; the transaction rejects it.
        let mut other = transfer("E1", pooled, personal, 1);
        other.admdvs = Admdvs::parse("120000").unwrap();
        let answers = refused_then_decided(store, vec![("E1", other)]).await;
        assert!(matches!(
            answers[0],
            Err(LedgerError::Rejected(Rejection::RegionMismatch(_)))
        ));

        // The same accounts touched by postings of two regions: not taken as one statement
        // (only the first posting's region would be checked); the transaction rejects the
        // second.
        let mut other = transfer("F2", pooled, personal, 1);
        other.admdvs = Admdvs::parse("120000").unwrap();
        let (items, attachments) = batch(vec![
            ("F1", transfer("F1", pooled, personal, 1)),
            ("F2", other),
        ]);
        assert!(!matches!(
            one_statement(pool, &items, &attachments, 1).await,
            Some(Ok(_))
        ));
        assert!(store.message("F1").await.unwrap().is_none());
        let answers = apply_batch(store, &items, &attachments, 1, true)
            .await
            .unwrap();
        assert!(answers[0].is_ok(), "{answers:?}");
        assert!(matches!(
            answers[1],
            Err(LedgerError::Rejected(Rejection::RegionMismatch(_)))
        ));

        // A reversal (a link): not taken as one statement.
        let mut reversal = transfer("G1", personal, pooled, 1);
        reversal.link = Some(crate::posting::Link::Reverses(posting_id_of("F1")));
        let (items, attachments) = batch(vec![("G1", reversal)]);
        assert!(one_statement(pool, &items, &attachments, 1).await.is_none());

        // Fen::MAX between two fresh accounts without a balance condition, then 0.01 more into
        // the same one: past Fen::MAX, refused; the transaction rejects it (BalanceOverflow).
        let region = Admdvs::parse("110000").unwrap();
        let mut funds = Vec::new();
        for fund_pay_type in [
            FundPayType::CIVIL_SERVANT_SUBSIDY,
            FundPayType::EMPLOYEE_LARGE_EXPENSE,
            FundPayType::MEDICAL_AID,
        ] {
            let spec = AccountSpec::fund(region, fund_pay_type);
            funds.push(ledger.create_account(&spec).await.unwrap().id);
        }
        let (source, large, other_source) = (funds[0], funds[1], funds[2]);
        let (items, attachments) =
            batch(vec![("H1", transfer("H1", source, large, Fen::MAX.fen()))]);
        let answers = one_statement(pool, &items, &attachments, 1)
            .await
            .unwrap()
            .unwrap();
        assert!(answers[0].is_ok(), "{answers:?}");
        // From another source: only `large`'s credits would pass Fen::MAX.
        let answers =
            refused_then_decided(store, vec![("H2", transfer("H2", other_source, large, 1))]).await;
        assert_eq!(
            ledger.balance(large).await.unwrap().credits_posted,
            Fen::MAX
        );
        assert!(matches!(
            answers[0],
            Err(LedgerError::Rejected(Rejection::BalanceOverflow(_)))
        ));

        // What the statements wrote agrees with the journal.
        let report = ledger.verify().await.unwrap();
        assert!(report.is_consistent(), "{:?}", report.problems);
        ledger.close().await;
        drop_schema(&schema).await;
    }
}
