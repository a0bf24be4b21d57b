//! The payment tables (migrations/*/0100_payments.sql), written once for SQLite and
//! PostgreSQL (`dispatch!`): transactions, the reversal outbox and blocked cards.

use sqlx::Row as _;

use super::PaymentError;
use crate::store::{Store, dispatch};

/// A transaction row (`pay_txns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRow {
    /// Acquirer key `terminal_id ‖ stan ‖ transmission`.
    pub txn_id: String,
    /// `purchase`, `refund` or `void`.
    pub kind: String,
    /// Issuer bank code.
    pub bank_code: String,
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// Field 11.
    pub stan: String,
    /// Field 37.
    pub rrn: String,
    /// Field 7.
    pub transmission: String,
    /// First 6 and last 4 PAN digits.
    pub pan_masked: String,
    /// Salted PAN hash, hex.
    pub pan_sha256: String,
    /// Requested amount, fen.
    pub amount_fen: i64,
    /// Approved amount, fen.
    pub approved_fen: i64,
    /// Field 39 of the answer (or of our refusal).
    pub response_code: Option<String>,
    /// `sent`, `approved`, `declined`, `timed_out`, `voided`.
    pub status: String,
    /// The purchase a refund/void refers to.
    pub original_txn_id: Option<String>,
    /// Ledger posting of the approval, hex.
    pub posting_id: Option<String>,
    /// Business date `YYYYMMDD`.
    pub business_date: String,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
}

/// The `pay_txns` columns in `TxnRow` order (a macro so queries stay `&'static str`).
macro_rules! txn_columns {
    () => {
        "txn_id, kind, bank_code, terminal_id, merchant_id, stan, rrn, transmission, pan_masked, \
         pan_sha256, amount_fen, approved_fen, response_code, status, original_txn_id, \
         posting_id, business_date, created_at_ms"
    };
}

/// Reads a `TxnRow` from a row of either backend (expanded per backend by `dispatch!`).
macro_rules! txn_of {
    ($row:expr) => {{
        let row = $row;
        Ok::<TxnRow, sqlx::Error>(TxnRow {
            txn_id: row.try_get("txn_id")?,
            kind: row.try_get("kind")?,
            bank_code: row.try_get("bank_code")?,
            terminal_id: row.try_get("terminal_id")?,
            merchant_id: row.try_get("merchant_id")?,
            stan: row.try_get("stan")?,
            rrn: row.try_get("rrn")?,
            transmission: row.try_get("transmission")?,
            pan_masked: row.try_get("pan_masked")?,
            pan_sha256: row.try_get("pan_sha256")?,
            amount_fen: row.try_get("amount_fen")?,
            approved_fen: row.try_get("approved_fen")?,
            response_code: row.try_get("response_code")?,
            status: row.try_get("status")?,
            original_txn_id: row.try_get("original_txn_id")?,
            posting_id: row.try_get("posting_id")?,
            business_date: row.try_get("business_date")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }};
}

/// A reversal waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReversal {
    /// The transaction it reverses.
    pub txn_id: String,
    /// Bank code.
    pub bank_code: String,
    /// Packed 0400 without MAC, hex.
    pub message_hex: String,
    /// Sends so far.
    pub attempts: i64,
}

/// Inserts `txn` and, when `reversal_hex` is given, its ARMED reversal, in one transaction;
/// when `terminal_txn_id` is given, claims it for this transaction in `pay_terminal_txns`
/// (migrations/*/0102_payments_terminal_txn.sql) in the same transaction. Returns `false`
/// (nothing written) when the terminal already used or voided that id.
///
/// Errors: [`PaymentError::Store`] (including a repeated txn_id).
pub(crate) async fn insert_txn_claimed(
    store: &Store,
    txn: &TxnRow,
    reversal_hex: Option<&str>,
    terminal_txn_id: Option<&str>,
    now_ms: i64,
) -> Result<bool, PaymentError> {
    let sql = concat!(
        "INSERT INTO pay_txns (",
        txn_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    );
    dispatch!(store, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query(sql)
            .bind(&txn.txn_id)
            .bind(&txn.kind)
            .bind(&txn.bank_code)
            .bind(&txn.terminal_id)
            .bind(&txn.merchant_id)
            .bind(&txn.stan)
            .bind(&txn.rrn)
            .bind(&txn.transmission)
            .bind(&txn.pan_masked)
            .bind(&txn.pan_sha256)
            .bind(txn.amount_fen)
            .bind(txn.approved_fen)
            .bind(&txn.response_code)
            .bind(&txn.status)
            .bind(&txn.original_txn_id)
            .bind(&txn.posting_id)
            .bind(&txn.business_date)
            .bind(txn.created_at_ms)
            .execute(&mut *tx)
            .await?;
        if let Some(hex) = reversal_hex {
            sqlx::query(
                "INSERT INTO pay_reversals (txn_id, bank_code, message_hex, state, attempts, \
                 updated_at_ms) VALUES ($1, $2, $3, 'armed', 0, $4)",
            )
            .bind(&txn.txn_id)
            .bind(&txn.bank_code)
            .bind(hex)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(id) = terminal_txn_id {
            let claimed = sqlx::query(
                "INSERT INTO pay_terminal_txns (terminal_id, terminal_txn_id, merchant_id, \
                 txn_id, created_at_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (terminal_id, terminal_txn_id) DO NOTHING",
            )
            .bind(&txn.terminal_id)
            .bind(id)
            .bind(&txn.merchant_id)
            .bind(&txn.txn_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
    });
    Ok(true)
}

/// Records the outcome of `txn_id`; `reversal_state` moves its reversal (from `armed`).
///
/// Errors: [`PaymentError::Store`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_outcome(
    store: &Store,
    txn_id: &str,
    status: &str,
    response_code: &str,
    approved_fen: i64,
    posting_id: Option<&str>,
    reversal_state: Option<&str>,
    now_ms: i64,
) -> Result<(), PaymentError> {
    dispatch!(store, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE pay_txns SET status = $1, response_code = $2, approved_fen = $3, \
             posting_id = $4 WHERE txn_id = $5",
        )
        .bind(status)
        .bind(response_code)
        .bind(approved_fen)
        .bind(posting_id)
        .bind(txn_id)
        .execute(&mut *tx)
        .await?;
        if let Some(state) = reversal_state {
            sqlx::query(
                "UPDATE pay_reversals SET state = $1, updated_at_ms = $2 \
                 WHERE txn_id = $3 AND state = 'armed'",
            )
            .bind(state)
            .bind(now_ms)
            .bind(txn_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Claims the approved purchase `txn_id` for `by` (`void` or `reversal`) in `pay_undo_claims`
/// (migrations/*/0103_payments_undo_claims.sql): the one place where a void and a terminal's
/// reversal of the same purchase race, so exactly one of them can win. Returns whether this
/// call claimed it.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn claim_undo(
    store: &Store,
    txn_id: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, PaymentError> {
    let sql = "INSERT INTO pay_undo_claims (txn_id, claimed_by, created_at_ms) \
               VALUES ($1, $2, $3) ON CONFLICT (txn_id) DO NOTHING";
    Ok(dispatch!(store, pool => {
        sqlx::query(sql)
            .bind(txn_id)
            .bind(by)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
            == 1
    }))
}

/// Who claimed the purchase `txn_id` (`void` or `reversal`), if anyone.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn undo_claim(
    store: &Store,
    txn_id: &str,
) -> Result<Option<String>, PaymentError> {
    let sql = "SELECT claimed_by FROM pay_undo_claims WHERE txn_id = $1";
    Ok(dispatch!(store, pool => {
        match sqlx::query(sql).bind(txn_id).fetch_optional(pool).await? {
            Some(r) => Some(r.try_get::<String, _>("claimed_by")?),
            None => None,
        }
    }))
}

/// Gives back a void's claim on `txn_id` (the issuer did not approve the void: the purchase
/// stands).
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn release_void_claim(store: &Store, txn_id: &str) -> Result<(), PaymentError> {
    dispatch!(store, pool => {
        sqlx::query("DELETE FROM pay_undo_claims WHERE txn_id = $1 AND claimed_by = 'void'")
            .bind(txn_id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Marks a transaction voided (its same-day void was approved).
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn mark_voided(store: &Store, txn_id: &str) -> Result<(), PaymentError> {
    dispatch!(store, pool => {
        sqlx::query("UPDATE pay_txns SET status = 'voided' WHERE txn_id = $1 AND status = 'approved'")
            .bind(txn_id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The stored (unMACed) 0400 of `txn_id`, hex.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn reversal_message(
    store: &Store,
    txn_id: &str,
) -> Result<Option<String>, PaymentError> {
    let sql = "SELECT message_hex FROM pay_reversals WHERE txn_id = $1";
    Ok(dispatch!(store, pool => {
        match sqlx::query(sql).bind(txn_id).fetch_optional(pool).await? {
            Some(r) => Some(r.try_get::<String, _>("message_hex")?),
            None => None,
        }
    }))
}

/// Replaces the stored (unsent, unMACed) 0400 of `txn_id`, e.g. with field 4 set to the
/// amount a partial approval approved.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn set_reversal_message(
    store: &Store,
    txn_id: &str,
    message_hex: &str,
) -> Result<(), PaymentError> {
    dispatch!(store, pool => {
        sqlx::query("UPDATE pay_reversals SET message_hex = $1 WHERE txn_id = $2")
            .bind(message_hex)
            .bind(txn_id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// At start-up: every ARMED reversal (its request's outcome was never recorded because the
/// process stopped) becomes PENDING; a purchase whose void was recorded approved is marked
/// voided, and a void's claim on a purchase that is still approved is given back (that void's
/// own 0400, now pending, undoes it at the issuer). Returns how many reversals were recovered.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn recover_armed(store: &Store, now_ms: i64) -> Result<u64, PaymentError> {
    let sql =
        "UPDATE pay_reversals SET state = 'pending', updated_at_ms = $1 WHERE state = 'armed'";
    let voided = "UPDATE pay_txns SET status = 'voided' WHERE status = 'approved' \
                  AND kind = 'purchase' AND EXISTS (SELECT 1 FROM pay_txns v \
                  WHERE v.original_txn_id = pay_txns.txn_id AND v.kind = 'void' \
                  AND v.status = 'approved')";
    let released = "DELETE FROM pay_undo_claims WHERE claimed_by = 'void' AND txn_id IN \
                    (SELECT txn_id FROM pay_txns WHERE status = 'approved')";
    Ok(dispatch!(store, pool => {
        let n = sqlx::query(sql).bind(now_ms).execute(pool).await?.rows_affected();
        sqlx::query(voided).execute(pool).await?;
        sqlx::query(released).execute(pool).await?;
        n
    }))
}

/// PENDING reversals, oldest first, at most `limit`.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn reversals_to_send(
    store: &Store,
    limit: i64,
) -> Result<Vec<PendingReversal>, PaymentError> {
    let sql = "SELECT txn_id, bank_code, message_hex, attempts FROM pay_reversals \
               WHERE state = 'pending' ORDER BY updated_at_ms, txn_id LIMIT $1";
    let rows = dispatch!(store, pool => {
        sqlx::query(sql)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<PendingReversal, sqlx::Error> {
                Ok(PendingReversal {
                    txn_id: r.try_get("txn_id")?,
                    bank_code: r.try_get("bank_code")?,
                    message_hex: r.try_get("message_hex")?,
                    attempts: r.try_get::<i64, _>("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    });
    Ok(rows)
}

/// Moves a reversal to `state` (`pending` after a failed send, `acknowledged` after 0410) and
/// counts the attempt.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn set_reversal_state(
    store: &Store,
    txn_id: &str,
    state: &str,
    now_ms: i64,
) -> Result<(), PaymentError> {
    dispatch!(store, pool => {
        sqlx::query(
            "UPDATE pay_reversals SET state = $1, attempts = attempts + 1, updated_at_ms = $2 \
             WHERE txn_id = $3",
        )
        .bind(state)
        .bind(now_ms)
        .bind(txn_id)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// The state and attempt count of a reversal.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn reversal_state(
    store: &Store,
    txn_id: &str,
) -> Result<Option<(String, i64)>, PaymentError> {
    let sql = "SELECT state, attempts FROM pay_reversals WHERE txn_id = $1";
    Ok(dispatch!(store, pool => {
        match sqlx::query(sql).bind(txn_id).fetch_optional(pool).await? {
            Some(r) => Some((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("attempts")?)),
            None => None,
        }
    }))
}

/// Transactions of one business date (all banks), in creation order.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn txns_of_day(
    store: &Store,
    business_date: &str,
) -> Result<Vec<TxnRow>, PaymentError> {
    let sql = concat!(
        "SELECT ",
        txn_columns!(),
        " FROM pay_txns WHERE business_date = $1 ORDER BY created_at_ms, txn_id"
    );
    Ok(dispatch!(store, pool => {
        sqlx::query(sql)
            .bind(business_date)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| txn_of!(r))
            .collect::<Result<Vec<_>, _>>()?
    }))
}

/// The transaction `txn_id`, whatever its day.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn txn_by_id(store: &Store, txn_id: &str) -> Result<Option<TxnRow>, PaymentError> {
    let sql = concat!(
        "SELECT ",
        txn_columns!(),
        " FROM pay_txns WHERE txn_id = $1"
    );
    Ok(dispatch!(store, pool => {
        match sqlx::query(sql).bind(txn_id).fetch_optional(pool).await? {
            Some(r) => Some(txn_of!(&r)?),
            None => None,
        }
    }))
}

/// The transaction with this RRN and terminal.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn txn_by_rrn(
    store: &Store,
    rrn: &str,
    terminal_id: &str,
) -> Result<Option<TxnRow>, PaymentError> {
    let sql = concat!(
        "SELECT ",
        txn_columns!(),
        " FROM pay_txns WHERE rrn = $1 AND terminal_id = $2 AND kind = 'purchase'"
    );
    Ok(dispatch!(store, pool => {
        match sqlx::query(sql).bind(rrn).bind(terminal_id).fetch_optional(pool).await? {
            Some(r) => Some(txn_of!(&r)?),
            None => None,
        }
    }))
}

/// Approved purchases of a card (by PAN hash) since `since_ms`: (amount approved, terminal id,
/// created at) — the risk checks' view.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn card_activity(
    store: &Store,
    pan_sha256: &str,
    since_ms: i64,
) -> Result<Vec<(i64, String, i64)>, PaymentError> {
    let sql = "SELECT approved_fen, terminal_id, created_at_ms FROM pay_txns \
               WHERE pan_sha256 = $1 AND created_at_ms >= $2 AND kind = 'purchase' \
               AND status IN ('approved', 'sent')";
    Ok(dispatch!(store, pool => {
        sqlx::query(sql)
            .bind(pan_sha256)
            .bind(since_ms)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<(i64, String, i64), sqlx::Error> {
                Ok((r.try_get("approved_fen")?, r.try_get("terminal_id")?, r.try_get("created_at_ms")?))
            })
            .collect::<Result<Vec<_>, _>>()?
    }))
}

/// Blocks a card (lost `41`, stolen `43`, restricted `62`).
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn block_card(
    store: &Store,
    pan_sha256: &str,
    response_code: &str,
    now_ms: i64,
) -> Result<(), PaymentError> {
    dispatch!(store, pool => {
        sqlx::query(
            "INSERT INTO pay_card_blocks (pan_sha256, response_code, created_at_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (pan_sha256) DO UPDATE SET response_code = $2",
        )
        .bind(pan_sha256)
        .bind(response_code)
        .bind(now_ms)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// The block on a card, if any (its response code).
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn card_block(
    store: &Store,
    pan_sha256: &str,
) -> Result<Option<String>, PaymentError> {
    let sql = "SELECT response_code FROM pay_card_blocks WHERE pan_sha256 = $1";
    Ok(dispatch!(store, pool => {
        match sqlx::query(sql).bind(pan_sha256).fetch_optional(pool).await? {
            Some(r) => Some(r.try_get::<String, _>("response_code")?),
            None => None,
        }
    }))
}

/// Sum of approved refunds of `original_txn_id`, fen.
///
/// Errors: [`PaymentError::Store`].
pub(crate) async fn refunded_fen(
    store: &Store,
    original_txn_id: &str,
) -> Result<i64, PaymentError> {
    let sql = "SELECT approved_fen FROM pay_txns WHERE original_txn_id = $1 AND kind = 'refund' \
               AND status = 'approved'";
    Ok(dispatch!(store, pool => {
        sqlx::query(sql)
            .bind(original_txn_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>("approved_fen"))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .sum()
    }))
}
