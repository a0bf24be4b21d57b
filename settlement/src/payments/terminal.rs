//! A terminal's reversal of a purchase whose answer it never received (issue 7): a timeout at
//! the terminal is "unknown", never "failed", so the terminal asks the switch to undo whatever
//! happened to its purchase, named by the terminal's own transaction id (unique per terminal,
//! recorded with the purchase in `pay_terminal_txns`, migrations/*/0102_payments_terminal_txn.sql).
//!
//! Exactly once in every order:
//! - purchase approved → the ledger posting is reversed (the ledger refuses a second reversal of
//!   the same posting, so a retry after a crash is harmless), the transaction becomes
//!   `timed_out` and its stored 0400 goes back to PENDING in the existing outbox, which the
//!   reversal forwarder sends to the issuer until a MAC-verified 0410 arrives; answer `00`;
//! - already reversed, declined, timed out at the switch (its own reversal pending) or voided →
//!   `00`, nothing more;
//! - never arrived → the id is recorded as void in the same table (primary key), so a late
//!   purchase carrying it is refused with `94`; answer `00`;
//! - still in flight toward the issuer (reversal ARMED), or its void is with the issuer → `91`:
//!   the terminal retries later.
//!
//! A void and a terminal's reversal of one purchase are exclusive: each first claims the
//! purchase in `pay_undo_claims` (migrations/*/0103_payments_undo_claims.sql, one row per
//! purchase), so only one can take it; a void that loses is refused `25` and sends nothing, a
//! reversal that finds the purchase voided answers `00` (nothing left to undo), one that finds
//! a void still with the issuer `91`. The money is reversed once, in the ledger and at the
//! issuer.
//!
//! Source of the practice: anchors-switch.md §6(d) (a timeout is resolved by reversal, store and
//! forward until acknowledged).

use sqlx::Row as _;

use super::clock::Moment;
use super::store::{self, TxnRow};
use super::switch::Switch;
use super::{PaymentError, codes};
use crate::store::{Store, dispatch};
use crate::{AccountKind, LedgerError, PostingId, Rejection};

/// Longest terminal transaction id, characters.
pub const TERMINAL_TXN_ID_LEN_MAX: usize = 32;

/// Whether `id` is a well-formed terminal transaction id: 1..=32 ASCII letters, digits or `-`.
#[must_use]
pub fn terminal_txn_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= TERMINAL_TXN_ID_LEN_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A terminal's reversal request.
#[derive(Debug, Clone)]
pub struct TerminalReversal {
    /// Field 41, 8 characters.
    pub terminal_id: String,
    /// Field 42, 15 characters.
    pub merchant_id: String,
    /// The terminal's id of the purchase to reverse.
    pub terminal_txn_id: String,
}

/// What `pay_terminal_txns` holds for a (terminal, id): the merchant and the purchase, if any.
type Claim = (String, Option<String>);

/// Records `id` as void unless already claimed. Returns whether this call recorded it.
async fn claim_void(db: &Store, req: &TerminalReversal, now_ms: i64) -> Result<bool, PaymentError> {
    let sql = "INSERT INTO pay_terminal_txns (terminal_id, terminal_txn_id, merchant_id, txn_id, \
               created_at_ms) VALUES ($1, $2, $3, NULL, $4) \
               ON CONFLICT (terminal_id, terminal_txn_id) DO NOTHING";
    Ok(dispatch!(db, pool => {
        sqlx::query(sql)
            .bind(&req.terminal_id)
            .bind(&req.terminal_txn_id)
            .bind(&req.merchant_id)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
            == 1
    }))
}

/// The claim of (terminal, id).
async fn claim_of(db: &Store, req: &TerminalReversal) -> Result<Option<Claim>, PaymentError> {
    let sql = "SELECT merchant_id, txn_id FROM pay_terminal_txns \
               WHERE terminal_id = $1 AND terminal_txn_id = $2";
    Ok(dispatch!(db, pool => {
        match sqlx::query(sql)
            .bind(&req.terminal_id)
            .bind(&req.terminal_txn_id)
            .fetch_optional(pool)
            .await?
        {
            Some(r) => Some((r.try_get::<String, _>("merchant_id")?, r.try_get::<Option<String>, _>("txn_id")?)),
            None => None,
        }
    }))
}

/// Marks an approved purchase reversed at the terminal's request: status `timed_out` and its
/// cancelled 0400 back to PENDING, in one database transaction (both updates conditional, so a
/// repeat changes nothing).
async fn mark_reversed(db: &Store, txn_id: &str, now_ms: i64) -> Result<(), PaymentError> {
    dispatch!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE pay_txns SET status = 'timed_out' WHERE txn_id = $1 AND status = 'approved'")
            .bind(txn_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE pay_reversals SET state = 'pending', updated_at_ms = $1 \
             WHERE txn_id = $2 AND state = 'cancelled'",
        )
        .bind(now_ms)
        .bind(txn_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    });
    Ok(())
}

fn posting_of(txn: &TxnRow) -> Option<PostingId> {
    let bytes: [u8; 16] = hex::decode(txn.posting_id.as_deref()?)
        .ok()?
        .try_into()
        .ok()?;
    PostingId::from_bytes(bytes).ok()
}

impl Switch {
    /// Reverses the purchase the terminal named `terminal_txn_id` (see the module doc for every
    /// case). Returns the response code: `00` when nothing of the purchase remains (or will
    /// remain once the outbox delivers the 0400), `91` while the purchase is still in flight
    /// (retry later), `30` for a malformed request, `12` when the id belongs to another
    /// merchant.
    ///
    /// Errors: [`PaymentError::Store`], [`PaymentError::Ledger`].
    pub async fn terminal_reversal(&self, req: &TerminalReversal) -> Result<String, PaymentError> {
        let code = |c: &str| Ok(c.to_owned());
        if req.terminal_id.len() != 8
            || !req.terminal_id.is_ascii()
            || req.merchant_id.len() != 15
            || !req.merchant_id.bytes().all(|b| b.is_ascii_alphanumeric())
            || !terminal_txn_id_ok(&req.terminal_txn_id)
        {
            return code(codes::FORMAT_ERROR);
        }
        let db = self.inner.ledger.store();
        let now_ms = Moment::now().unix_ms;
        if claim_void(db, req, now_ms).await? {
            tracing::info!(terminal = %req.terminal_id, id = %req.terminal_txn_id, "terminal reversal before its purchase: id void");
            return code(codes::APPROVED);
        }
        let Some((merchant_id, txn_id)) = claim_of(db, req).await? else {
            // Inserted-or-present cannot be absent: a store fault by another name.
            return code(codes::SYSTEM_MALFUNCTION);
        };
        if merchant_id != req.merchant_id {
            tracing::warn!(terminal = %req.terminal_id, id = %req.terminal_txn_id, "terminal reversal names another merchant's purchase");
            return code(codes::INVALID_TRANSACTION);
        }
        let Some(txn_id) = txn_id else {
            return code(codes::APPROVED);
        };
        let Some(txn) = store::txn_by_id(db, &txn_id).await? else {
            return code(codes::SYSTEM_MALFUNCTION);
        };
        match txn.status.as_str() {
            "approved" => {
                // Claimed here, so a void of the same purchase is now refused; a claim of our own
                // (an earlier attempt stopped half-way) is finished.
                if !store::claim_undo(db, &txn_id, "reversal", now_ms).await? {
                    match store::undo_claim(db, &txn_id).await?.as_deref() {
                        Some("reversal") => {}
                        // Its void is with the issuer: the outcome decides whether anything is
                        // left to undo.
                        _ => return code(codes::ISSUER_INOPERATIVE),
                    }
                }
            }
            "sent" => {
                // Outcome not recorded yet: in flight if the 0400 is still ARMED; otherwise the
                // switch recovered it after a restart and is already reversing.
                let state = store::reversal_state(db, &txn_id).await?;
                return match state.as_ref().map(|s| s.0.as_str()) {
                    Some("armed") => code(codes::ISSUER_INOPERATIVE),
                    _ => code(codes::APPROVED),
                };
            }
            _ => return code(codes::APPROVED),
        }
        let Some(original) = posting_of(&txn) else {
            return code(codes::SYSTEM_MALFUNCTION);
        };
        let clearing = self.account(AccountKind::Clearing, &txn.bank_code).await?;
        let merchant = self
            .account(AccountKind::InstitutionReceivable, &txn.merchant_id)
            .await?;
        match self
            .post(merchant, clearing, txn.approved_fen, Some(original))
            .await
        {
            Ok(_)
            | Err(PaymentError::Ledger(LedgerError::Rejected(Rejection::AlreadyReversed(_)))) => {}
            Err(e) => return Err(e),
        }
        mark_reversed(db, &txn_id, now_ms).await?;
        tracing::warn!(terminal = %txn.terminal_id, stan = %txn.stan, pan = %txn.pan_masked, "approved purchase reversed at the terminal's request: 0400 pending");
        code(codes::APPROVED)
    }
}
