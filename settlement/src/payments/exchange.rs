//! Sending a financial request with its durable reversal, turning the issuer's answer into an
//! outcome (ledger posting, transaction status, reversal state), the reversal forwarder (store
//! and forward until a MAC-verified 0410 arrives, across restarts), and sign-on/echo (0800).

use std::time::Duration;

use super::clock::Moment;
use super::routing::Bank;
use super::store::{self, TxnRow};
use super::switch::{Direction, PaymentOutcome, Switch};
use super::{PaymentError, codes};
use crate::AccountKind;
use crate::iso8583::{self, Message, Mti};

/// Most reversals sent in one forwarder pass.
pub const REVERSALS_PER_PASS_MAX: i64 = 256;

/// The issuer's answer as the switch sees it.
#[derive(Debug)]
pub(super) enum Answer {
    /// A response with a good MAC.
    Response(Message),
    /// No response in time (or the link failed after the request may have left).
    Silence,
    /// A response whose MAC does not verify: not trusted, treated like no answer.
    BadMac,
}

/// Field 90, original data elements (n42): original MTI, STAN, transmission date-time,
/// acquirer id (11, zero-left-padded), forwarding institution (11 zeros).
fn original_data(mti: Mti, stan: &str, transmission: &str, acquirer_id: &str) -> Vec<u8> {
    format!("{mti}{stan}{transmission}{acquirer_id:0>11}{:011}", 0).into_bytes()
}

impl Switch {
    /// Writes `txn` and its ARMED reversal in one transaction, then sends `request` (MAC added)
    /// and waits for the answer within the bank's per-hop timeout.
    pub(super) async fn send_with_reversal(
        &self,
        bank: &Bank,
        txn: &TxnRow,
        request: &mut Message,
    ) -> Result<Answer, PaymentError> {
        // Without a terminal transaction id nothing can be refused as already claimed.
        Ok(self
            .send_with_reversal_claimed(bank, txn, request, None)
            .await?
            .unwrap_or(Answer::Silence))
    }

    /// As [`Switch::send_with_reversal`], claiming the terminal's transaction id with the
    /// transaction row; `None` (nothing written, nothing sent) when the terminal already used or
    /// voided that id.
    pub(super) async fn send_with_reversal_claimed(
        &self,
        bank: &Bank,
        txn: &TxnRow,
        request: &mut Message,
        terminal_txn_id: Option<&str>,
    ) -> Result<Option<Answer>, PaymentError> {
        let now = Moment::now();
        let mut reversal = Message::new(Mti::REVERSAL_REQUEST)
            .with(4, format!("{:012}", txn.amount_fen).into_bytes())
            .with(7, now.transmission().into_bytes())
            .with(11, self.next_stan().into_bytes())
            .with(32, bank.acquirer_id.clone().into_bytes())
            .with(37, txn.rrn.clone().into_bytes())
            .with(41, txn.terminal_id.clone().into_bytes())
            .with(42, txn.merchant_id.clone().into_bytes())
            .with(49, *b"156")
            .with(
                90,
                original_data(request.mti, &txn.stan, &txn.transmission, &bank.acquirer_id),
            );
        if let Some(code) = request.get(3) {
            reversal.set(3, code.to_vec());
        }
        let reversal_hex = hex::encode_upper(iso8583::pack(&reversal)?);
        if !store::insert_txn_claimed(
            self.inner.ledger.store(),
            txn,
            Some(&reversal_hex),
            terminal_txn_id,
            now.unix_ms,
        )
        .await?
        {
            return Ok(None);
        }
        let packed = self.mac_and_pack(bank, request).await?;
        let Some(link) = self.inner.links.get(&bank.code) else {
            return Ok(Some(Answer::Silence));
        };
        match link.exchange(request, &packed).await {
            Ok((raw, response)) => {
                if !self.mac_ok(bank, &raw, &response).await || response.text(39).is_none() {
                    tracing::error!(bank = %bank.code, stan = %txn.stan, "issuer response with a bad MAC: reversing");
                    Ok(Some(Answer::BadMac))
                } else {
                    Ok(Some(Answer::Response(response)))
                }
            }
            Err(e) => {
                tracing::warn!(bank = %bank.code, stan = %txn.stan, pan = %txn.pan_masked, error = %e, "no answer from the issuer: reversal pending");
                Ok(Some(Answer::Silence))
            }
        }
    }

    /// Records the answer: posting and status on approval, reversal cancelled or pending.
    pub(super) async fn settle_answer(
        &self,
        bank: &Bank,
        txn: &TxnRow,
        answer: Answer,
        direction: Direction,
    ) -> Result<PaymentOutcome, PaymentError> {
        let db = self.inner.ledger.store();
        let now_ms = Moment::now().unix_ms;
        let mut outcome = PaymentOutcome {
            response_code: String::new(),
            approved_fen: 0,
            rrn: txn.rrn.clone(),
            stan: txn.stan.clone(),
            auth_code: None,
            arpc: None,
        };
        let response = match answer {
            Answer::Response(r) => r,
            Answer::Silence | Answer::BadMac => {
                let code = if matches!(answer, Answer::BadMac) {
                    codes::MAC_FAILED
                } else {
                    codes::ISSUER_INOPERATIVE
                };
                store::set_outcome(
                    db,
                    &txn.txn_id,
                    "timed_out",
                    code,
                    0,
                    None,
                    Some("pending"),
                    now_ms,
                )
                .await?;
                outcome.response_code = code.to_owned();
                return Ok(outcome);
            }
        };
        let code = response
            .text(39)
            .unwrap_or(codes::SYSTEM_MALFUNCTION)
            .to_owned();
        outcome.response_code.clone_from(&code);
        if code != codes::APPROVED && code != codes::PARTIAL {
            store::set_outcome(
                db,
                &txn.txn_id,
                "declined",
                &code,
                0,
                None,
                Some("cancelled"),
                now_ms,
            )
            .await?;
            return Ok(outcome);
        }
        let approved = if code == codes::PARTIAL {
            response
                .text(4)
                .and_then(|a| a.parse::<i64>().ok())
                .filter(|a| *a > 0 && *a <= txn.amount_fen)
        } else {
            Some(txn.amount_fen)
        };
        let Some(approved) = approved else {
            tracing::error!(bank = %bank.code, stan = %txn.stan, "partial approval with a bad amount: reversing");
            store::set_outcome(
                db,
                &txn.txn_id,
                "timed_out",
                codes::INVALID_AMOUNT,
                0,
                None,
                Some("pending"),
                now_ms,
            )
            .await?;
            outcome.response_code = codes::INVALID_AMOUNT.to_owned();
            return Ok(outcome);
        };
        if approved != txn.amount_fen {
            // A partial approval: whatever later undoes this transaction (a terminal's
            // reversal re-arms this 0400) must reverse what the issuer approved, not what was
            // asked. Field 4 of the stored 0400 becomes the approved amount.
            self.reverse_only(txn, approved).await?;
        }
        let clearing = self.account(AccountKind::Clearing, &bank.code).await?;
        let merchant = self
            .account(AccountKind::InstitutionReceivable, &txn.merchant_id)
            .await?;
        let posted = match direction {
            Direction::Purchase => self.post(clearing, merchant, approved, None).await,
            Direction::Refund => self.post(merchant, clearing, approved, None).await,
            Direction::Void(original) => self.post(merchant, clearing, approved, original).await,
        };
        match posted {
            Ok(posting) => {
                store::set_outcome(
                    db,
                    &txn.txn_id,
                    "approved",
                    &code,
                    approved,
                    Some(&posting),
                    Some("cancelled"),
                    now_ms,
                )
                .await?;
                outcome.approved_fen = approved;
                outcome.auth_code = response.text(38).map(str::to_owned);
                Ok(outcome)
            }
            Err(e) => {
                tracing::error!(bank = %bank.code, stan = %txn.stan, error = %e, "ledger refused an approval: reversing at the issuer");
                store::set_outcome(
                    db,
                    &txn.txn_id,
                    "timed_out",
                    codes::SYSTEM_MALFUNCTION,
                    0,
                    None,
                    Some("pending"),
                    now_ms,
                )
                .await?;
                outcome.response_code = codes::SYSTEM_MALFUNCTION.to_owned();
                Ok(outcome)
            }
        }
    }

    /// Sets field 4 of the stored 0400 of `txn` to `amount_fen`.
    async fn reverse_only(&self, txn: &TxnRow, amount_fen: i64) -> Result<(), PaymentError> {
        let db = self.inner.ledger.store();
        let Some(stored) = store::reversal_message(db, &txn.txn_id).await? else {
            return Ok(());
        };
        let message = hex::decode(&stored)
            .ok()
            .and_then(|b| iso8583::unpack(&b).ok());
        let Some(mut message) = message else {
            tracing::error!(txn = %txn.txn_id, "stored reversal does not unpack");
            return Ok(());
        };
        message.set(4, format!("{amount_fen:012}").into_bytes());
        let packed = hex::encode_upper(iso8583::pack(&message)?);
        store::set_reversal_message(db, &txn.txn_id, &packed).await
    }

    /// One forwarder pass: sends every PENDING reversal once; a MAC-verified 0410 marks it
    /// ACKNOWLEDGED, anything else leaves it PENDING (attempts counted). Returns how many were
    /// acknowledged.
    ///
    /// Errors: [`PaymentError::Store`], [`PaymentError::Hsm`].
    pub async fn forward_reversals(&self) -> Result<usize, PaymentError> {
        let db = self.inner.ledger.store();
        let mut acknowledged = 0;
        for pending in store::reversals_to_send(db, REVERSALS_PER_PASS_MAX).await? {
            let now_ms = Moment::now().unix_ms;
            let Some(bank) = self.inner.routing.bank(&pending.bank_code) else {
                tracing::error!(bank = %pending.bank_code, txn = %pending.txn_id, "reversal for a bank no longer routed");
                continue;
            };
            let message = hex::decode(&pending.message_hex)
                .ok()
                .and_then(|b| iso8583::unpack(&b).ok());
            let Some(mut message) = message else {
                tracing::error!(txn = %pending.txn_id, "stored reversal does not unpack");
                continue;
            };
            let packed = self.mac_and_pack(bank, &mut message).await?;
            let ok = match self.inner.links.get(&bank.code) {
                Some(link) => match link.exchange(&message, &packed).await {
                    Ok((raw, response)) => {
                        self.mac_ok(bank, &raw, &response).await && response.text(39).is_some()
                    }
                    Err(_) => false,
                },
                None => false,
            };
            if ok {
                store::set_reversal_state(db, &pending.txn_id, "acknowledged", now_ms).await?;
                acknowledged += 1;
                tracing::info!(bank = %bank.code, txn = %pending.txn_id, "reversal acknowledged");
            } else {
                store::set_reversal_state(db, &pending.txn_id, "pending", now_ms).await?;
                tracing::warn!(bank = %bank.code, txn = %pending.txn_id, attempts = pending.attempts + 1, "reversal not acknowledged; will retry");
            }
        }
        Ok(acknowledged)
    }

    /// Runs [`Switch::forward_reversals`] every `interval_ms` until the task is aborted.
    #[must_use]
    pub fn spawn_reversal_forwarder(&self, interval_ms: u64) -> tokio::task::JoinHandle<()> {
        let switch = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = switch.forward_reversals().await {
                    tracing::error!(error = %e, "reversal forwarder pass failed");
                }
                tokio::time::sleep(Duration::from_millis(interval_ms)).await;
            }
        })
    }

    /// Network management 0800 to bank `code`: `001` sign-on, `301` echo. True when a
    /// MAC-verified 0810 with 39 = 00 came back in time.
    ///
    /// Errors: [`PaymentError::NoRoute`] for an unknown bank, [`PaymentError::Hsm`].
    pub async fn network(&self, code: &str, function: &str) -> Result<bool, PaymentError> {
        let bank = self.inner.routing.bank(code).ok_or(PaymentError::NoRoute)?;
        let now = Moment::now();
        let mut request = Message::new(Mti::NETWORK_REQUEST)
            .with(7, now.transmission().into_bytes())
            .with(11, self.next_stan().into_bytes())
            .with(32, bank.acquirer_id.clone().into_bytes())
            .with(70, function.as_bytes().to_vec());
        let packed = self.mac_and_pack(bank, &mut request).await?;
        let Some(link) = self.inner.links.get(code) else {
            return Ok(false);
        };
        Ok(match link.exchange(&request, &packed).await {
            Ok((raw, response)) => {
                self.mac_ok(bank, &raw, &response).await
                    && response.text(39) == Some(codes::APPROVED)
            }
            Err(_) => false,
        })
    }
}
