//! Payment reversals from the terminal (issue 7): when a purchase's authorisation gets no answer
//! in time, the terminal journals `POST {switch}/payments/v1/reversal` naming the purchase by
//! `{terminal_id, merchant_id, terminal_txn_id}` and retries it until the switch answers
//! `response_code` `"00"` (done: reversed, or nothing to reverse). `"91"` (still in flight at
//! the switch) and any other answer or no answer are retried after a doubling backoff.
//! Source: settlement/src/payments/terminal.rs (the switch's side) and api.rs (the route).
//!
//! In the journal a payment reversal is a row with infno [`INFNO_PAYMENT_REVERSAL`], msgid
//! `PAYREV-{terminal_id}-{terminal_txn_id}` (so journaling the same reversal twice keeps one
//! row) and as body the JSON request exactly as sent. The purchase flow writes it **before the
//! purchase leaves** ([`arm_payment_reversal`], state `armed`, never sent as such), then
//! resolves it: [`trigger`] (`armed` → `queued`: no answer, outcome unknown) or [`release`]
//! (`armed` → `cancelled`: answered and finished on the card). A crash in between leaves it
//! `armed`, and the sweep on the next open queues it ([`super::sweep`]); the switch answers `00`
//! to a reversal of a purchase that never arrived (it voids the id). Then `queued` →
//! `acknowledged` on `00`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::forwarder::{Backoff, REVERSALS_PER_PASS_MAX};
use super::store::{Journal, JournalError, MessageState, StoredMessage, now_ms};

/// The journal's infno for a payment reversal (not a national transaction code: those are 4
/// digits).
pub const INFNO_PAYMENT_REVERSAL: &str = "PAYREV";

/// Longest `terminal_txn_id`, characters (settlement/src/payments/terminal.rs).
pub const TERMINAL_TXN_ID_LEN_MAX: usize = 32;

/// Whether `id` is a valid `terminal_txn_id`: 1-32 of `[A-Za-z0-9-]`.
pub fn terminal_txn_id_ok(id: &str) -> bool {
    (1..=TERMINAL_TXN_ID_LEN_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The request body of `POST /payments/v1/reversal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReversal {
    /// Field 41 of the purchase (8 characters).
    pub terminal_id: String,
    /// Field 42 of the purchase (15 characters).
    pub merchant_id: String,
    /// The id the terminal gave the purchase.
    pub terminal_txn_id: String,
}

#[derive(Debug, Deserialize)]
struct ReversalAnswer {
    response_code: String,
}

/// Journals `reversal`, due at once; journaling the same one again is a no-op. Returns its
/// journal msgid.
///
/// Errors: [`JournalError::Corrupt`] for an invalid `terminal_txn_id` or a body that does not
/// serialise, [`JournalError::Database`].
pub async fn queue_payment_reversal(
    journal: &Journal,
    reversal: &PaymentReversal,
) -> Result<String, JournalError> {
    let msgid = msgid_of(reversal);
    if !terminal_txn_id_ok(&reversal.terminal_txn_id) {
        return Err(JournalError::Corrupt {
            msgid,
            what: "terminal_txn_id is not 1-32 of [A-Za-z0-9-]",
        });
    }
    if journal.get(&msgid).await?.is_some() {
        return Ok(msgid);
    }
    let body = serde_json::to_string(reversal).map_err(|_| JournalError::Corrupt {
        msgid: msgid.clone(),
        what: "payment reversal does not serialise",
    })?;
    journal
        .record(
            &msgid,
            INFNO_PAYMENT_REVERSAL,
            &body,
            MessageState::Queued,
            None,
        )
        .await?;
    Ok(msgid)
}

/// The journal msgid of `reversal`.
pub fn msgid_of(reversal: &PaymentReversal) -> String {
    format!(
        "PAYREV-{}-{}",
        reversal.terminal_id, reversal.terminal_txn_id
    )
}

/// Journals `reversal` `armed` (not due) and returns its msgid once it is durable: call it
/// before the purchase it would undo is sent.
///
/// Errors: [`JournalError::Corrupt`] for an invalid `terminal_txn_id` or a body that does not
/// serialise, [`JournalError::Database`] (an id journaled before included: ids are per
/// purchase).
pub async fn arm_payment_reversal(
    journal: &Journal,
    reversal: &PaymentReversal,
) -> Result<String, JournalError> {
    let msgid = msgid_of(reversal);
    if !terminal_txn_id_ok(&reversal.terminal_txn_id) {
        return Err(JournalError::Corrupt {
            msgid,
            what: "terminal_txn_id is not 1-32 of [A-Za-z0-9-]",
        });
    }
    let body = serde_json::to_string(reversal).map_err(|_| JournalError::Corrupt {
        msgid: msgid.clone(),
        what: "payment reversal does not serialise",
    })?;
    journal
        .record(
            &msgid,
            INFNO_PAYMENT_REVERSAL,
            &body,
            MessageState::Armed,
            None,
        )
        .await?;
    Ok(msgid)
}

/// The `last_error` of a payment reversal queued because its purchase got no usable answer.
pub const NO_ANSWER_NOTE: &str = "purchase not answered: outcome unknown";

/// The purchase behind the armed reversal `msgid` got no answer (or must be undone): queue the
/// reversal, due at once. Returns false if it was not armed (already resolved).
///
/// Errors: [`JournalError::Database`].
pub async fn trigger(journal: &Journal, msgid: &str, note: &str) -> Result<bool, JournalError> {
    journal
        .transition(msgid, MessageState::Armed, MessageState::Queued, Some(note))
        .await
}

/// The purchase behind the armed reversal `msgid` was answered and finished: nothing to undo.
/// Returns false if it was not armed.
///
/// Errors: [`JournalError::Database`].
pub async fn release(journal: &Journal, msgid: &str) -> Result<bool, JournalError> {
    journal
        .transition(msgid, MessageState::Armed, MessageState::Cancelled, None)
        .await
}

/// The client of the switch's payments reversal route.
#[derive(Debug, Clone)]
pub struct PaymentsClient {
    http: reqwest::Client,
    url: String,
    timeout_ms: u64,
}

impl PaymentsClient {
    /// A client of `{base_url}/payments/v1/reversal`, waiting `timeout_ms` for each answer.
    pub fn new(http: reqwest::Client, base_url: &str, timeout_ms: u64) -> Self {
        Self {
            http,
            url: format!("{}/payments/v1/reversal", base_url.trim_end_matches('/')),
            timeout_ms,
        }
    }

    /// Sends one journaled body; `Ok(response_code)` or `Err(reason)` (no usable answer).
    async fn send(&self, body: &str) -> Result<String, String> {
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .timeout(Duration::from_millis(self.timeout_ms))
            .send()
            .await
            .map_err(|e| format!("no answer: {}", e.without_url()))?;
        let status = response.status();
        let answer = response
            .json::<ReversalAnswer>()
            .await
            .map_err(|_| format!("unreadable answer (HTTP {})", status.as_u16()))?;
        Ok(answer.response_code)
    }
}

/// One pass: sends every due payment reversal once. Returns how many were acknowledged.
///
/// Errors: [`JournalError`].
pub async fn pass(
    journal: &Journal,
    client: &PaymentsClient,
    backoff: Backoff,
) -> Result<usize, JournalError> {
    let due = journal
        .due_of_kind(INFNO_PAYMENT_REVERSAL, now_ms(), REVERSALS_PER_PASS_MAX)
        .await?;
    let mut acknowledged = 0;
    for message in due {
        if attempt(journal, client, backoff, &message).await? {
            acknowledged += 1;
        }
    }
    Ok(acknowledged)
}

async fn attempt(
    journal: &Journal,
    client: &PaymentsClient,
    backoff: Backoff,
    message: &StoredMessage,
) -> Result<bool, JournalError> {
    let reason = match client.send(&message.body).await {
        Ok(code) if code == "00" => {
            tracing::info!(msgid = %message.msgid, "payment reversal acknowledged");
            journal
                .update(&message.msgid, MessageState::Acknowledged, 0, None)
                .await?;
            return Ok(true);
        }
        Ok(code) => format!("response_code {code}"),
        Err(reason) => reason,
    };
    let delay = backoff.delay_ms(message.attempts + 1);
    let next = now_ms().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
    tracing::info!(msgid = %message.msgid, delay_ms = delay, reason = %reason, "payment reversal not done; retrying later");
    journal
        .update(&message.msgid, MessageState::Queued, next, Some(&reason))
        .await?;
    Ok(false)
}

/// Runs passes forever, one every `min(backoff.initial_ms, 1000)` ms; journal errors are logged
/// and retried.
pub async fn run(journal: Journal, client: PaymentsClient, backoff: Backoff) {
    let period = Duration::from_millis(backoff.initial_ms.clamp(1, 1_000));
    loop {
        if let Err(e) = pass(&journal, &client, backoff).await {
            tracing::error!(error = %e, "payment reversal pass failed");
        }
        tokio::time::sleep(period).await;
    }
}
