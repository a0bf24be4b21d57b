//! Refunds (0200, processing code 200000, any day, up to what was approved minus what was
//! already refunded — partial refunds allowed) and voids (0200, processing code 020000, same
//! business day, the full approved amount; the ledger posting reverses the original's). Both
//! carry the original in field 90 and the original RRN in field 37's place of a new one; the
//! PAN is not sent (the switch never stores it) — the issuer finds the card from field 90.

use super::clock::Moment;
use super::store::{self, TxnRow};
use super::switch::{Direction, PaymentOutcome, Switch};
use super::{PaymentError, codes};
use crate::PostingId;
use crate::iso8583::{Message, Mti};

/// A refund or void as the terminal sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustRequest {
    /// Field 41 (the terminal of the original purchase).
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// RRN of the original purchase.
    pub original_rrn: String,
    /// Amount, fen (a void must give the full approved amount).
    pub amount_fen: i64,
}

fn refused(code: &str) -> PaymentOutcome {
    PaymentOutcome {
        response_code: code.to_owned(),
        approved_fen: 0,
        rrn: String::new(),
        stan: String::new(),
        auth_code: None,
        arpc: None,
    }
}

impl Switch {
    /// A refund of an approved purchase.
    ///
    /// Errors: store, ledger, HSM faults (refusals are outcomes).
    pub async fn refund(&self, req: &AdjustRequest) -> Result<PaymentOutcome, PaymentError> {
        self.adjust(req, false).await
    }

    /// A same-day void of an approved purchase.
    ///
    /// Errors: store, ledger, HSM faults (refusals are outcomes).
    pub async fn void(&self, req: &AdjustRequest) -> Result<PaymentOutcome, PaymentError> {
        self.adjust(req, true).await
    }

    async fn adjust(
        &self,
        req: &AdjustRequest,
        void: bool,
    ) -> Result<PaymentOutcome, PaymentError> {
        let db = self.inner.ledger.store();
        let now = Moment::now();
        let Some(original) = store::txn_by_rrn(db, &req.original_rrn, &req.terminal_id).await?
        else {
            return Ok(refused(codes::NO_ORIGINAL));
        };
        if original.status != "approved" || original.merchant_id != req.merchant_id {
            return Ok(refused(codes::NO_ORIGINAL));
        }
        if void {
            if original.business_date != now.business_date() {
                return Ok(refused(codes::INVALID_TRANSACTION));
            }
            if req.amount_fen != original.approved_fen {
                return Ok(refused(codes::INVALID_AMOUNT));
            }
        } else {
            let refunded = store::refunded_fen(db, &original.txn_id).await?;
            if req.amount_fen <= 0 || req.amount_fen > original.approved_fen - refunded {
                return Ok(refused(codes::INVALID_AMOUNT));
            }
        }
        let Some(bank) = self.inner.routing.bank(&original.bank_code) else {
            return Ok(refused(codes::NO_SUCH_ISSUER));
        };
        // A void and a terminal's reversal of the same purchase are exclusive: the void claims
        // the purchase (pay_undo_claims) before anything leaves; if a reversal (or another
        // void) claimed it first, this void is refused like any void of a purchase that is no
        // longer approved (25), and nothing is sent or posted.
        if void && !store::claim_undo(db, &original.txn_id, "void", now.unix_ms).await? {
            tracing::warn!(terminal = %req.terminal_id, rrn = %req.original_rrn, "void refused: the purchase is already being reversed or voided");
            return Ok(refused(codes::NO_ORIGINAL));
        }
        let result = self.adjust_send(req, void, &original, bank, &now).await;
        if void {
            if matches!(&result, Ok(o) if o.response_code == codes::APPROVED) {
                store::mark_voided(db, &original.txn_id).await?;
            } else {
                store::release_void_claim(db, &original.txn_id).await?;
            }
        }
        result
    }

    /// Sends the refund or void of `original` and records the answer.
    async fn adjust_send(
        &self,
        req: &AdjustRequest,
        void: bool,
        original: &TxnRow,
        bank: &super::routing::Bank,
        now: &Moment,
    ) -> Result<PaymentOutcome, PaymentError> {
        let stan = self.next_stan();
        let rrn = format!("{}{:02}{}", now.local_date(), now.hour, stan);
        let processing: &[u8; 6] = if void { b"020000" } else { b"200000" };
        let field90 = format!(
            "0200{}{}{:0>11}{:011}",
            original.stan, original.transmission, bank.acquirer_id, 0
        );
        let mut request = Message::new(Mti::FINANCIAL_REQUEST)
            .with(3, *processing)
            .with(4, format!("{:012}", req.amount_fen).into_bytes())
            .with(7, now.transmission().into_bytes())
            .with(11, stan.clone().into_bytes())
            .with(12, now.local_time().into_bytes())
            .with(13, now.local_date().into_bytes())
            .with(32, bank.acquirer_id.clone().into_bytes())
            .with(37, rrn.clone().into_bytes())
            .with(41, req.terminal_id.clone().into_bytes())
            .with(42, req.merchant_id.clone().into_bytes())
            .with(49, *b"156")
            .with(90, field90.into_bytes());
        let txn = TxnRow {
            txn_id: format!("{}{}{}", req.terminal_id, stan, now.transmission()),
            kind: String::from(if void { "void" } else { "refund" }),
            bank_code: bank.code.clone(),
            terminal_id: req.terminal_id.clone(),
            merchant_id: req.merchant_id.clone(),
            stan,
            rrn,
            transmission: now.transmission(),
            pan_masked: original.pan_masked.clone(),
            pan_sha256: original.pan_sha256.clone(),
            amount_fen: req.amount_fen,
            approved_fen: 0,
            response_code: None,
            status: String::from("sent"),
            original_txn_id: Some(original.txn_id.clone()),
            posting_id: None,
            business_date: now.business_date(),
            created_at_ms: now.unix_ms,
        };
        let answer = self.send_with_reversal(bank, &txn, &mut request).await?;
        let direction = if void {
            Direction::Void(original_posting(original))
        } else {
            Direction::Refund
        };
        self.settle_answer(bank, &txn, answer, direction).await
    }
}

fn original_posting(original: &TxnRow) -> Option<PostingId> {
    let bytes: [u8; 16] = hex::decode(original.posting_id.as_deref()?)
        .ok()?
        .try_into()
        .ok()?;
    PostingId::from_bytes(bytes).ok()
}
