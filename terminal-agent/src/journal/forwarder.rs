//! The store-and-forward loop: resends each queued reversal (its journaled body, same msgid:
//! a retry is idempotent at the switch) until the switch answers. `infcode` 0 →
//! `acknowledged`; another `infcode` → `rejected` (the switch answered; an operator decides);
//! no usable answer (switch down, timeout) → retried after a doubling backoff. The schedule
//! lives in the journal, so an agent restart picks up where it stopped.

use std::time::Duration;

use super::store::{Journal, JournalError, MessageState, StoredMessage, now_ms};
use super::switch::SwitchClient;

/// Reversals sent per pass.
pub const REVERSALS_PER_PASS_MAX: u32 = 16;

/// Doubling backoff between `initial_ms` and `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
}

impl Backoff {
    /// A backoff; `max_ms` is raised to `initial_ms` if lower.
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        Self {
            initial_ms,
            max_ms: max_ms.max(initial_ms),
        }
    }

    /// The delay after `failures` failed attempts (1 → `initial_ms`, 2 → twice that, ...).
    pub fn delay_ms(&self, failures: i64) -> u64 {
        let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 32)).unwrap_or(32);
        self.initial_ms
            .saturating_mul(1u64 << doublings.min(32))
            .min(self.max_ms)
    }
}

/// One pass: sends every due reversal once. Returns how many were acknowledged.
///
/// Errors: [`JournalError`].
pub async fn pass(
    journal: &Journal,
    client: &SwitchClient,
    backoff: Backoff,
) -> Result<usize, JournalError> {
    let due = journal
        .due_reversals(now_ms(), REVERSALS_PER_PASS_MAX)
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
    client: &SwitchClient,
    backoff: Backoff,
    message: &StoredMessage,
) -> Result<bool, JournalError> {
    match client.call(&message.body).await {
        Ok(reply) if reply.acknowledged() => {
            tracing::info!(msgid = %message.msgid, original = ?message.original_msgid, "reversal acknowledged");
            journal
                .update(&message.msgid, MessageState::Acknowledged, 0, None)
                .await?;
            Ok(true)
        }
        Ok(reply) => {
            tracing::warn!(msgid = %message.msgid, infcode = reply.infcode, "reversal rejected by the switch; operator action needed");
            journal
                .update(
                    &message.msgid,
                    MessageState::Rejected,
                    0,
                    reply.err_msg.as_deref(),
                )
                .await?;
            Ok(false)
        }
        Err(e) => {
            let delay = backoff.delay_ms(message.attempts + 1);
            let next = now_ms().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
            tracing::info!(msgid = %message.msgid, delay_ms = delay, "reversal not answered; retrying later");
            journal
                .update(
                    &message.msgid,
                    MessageState::Queued,
                    next,
                    Some(&e.to_string()),
                )
                .await?;
            Ok(false)
        }
    }
}

/// Runs passes forever, one every `min(backoff.initial_ms, 1000)` ms. Journal errors are logged
/// and retried (the database may be briefly locked or the disk full).
pub async fn run(journal: Journal, client: SwitchClient, backoff: Backoff) {
    let period = Duration::from_millis(backoff.initial_ms.clamp(1, 1_000));
    loop {
        if let Err(e) = pass(&journal, &client, backoff).await {
            tracing::error!(error = %e, "journal pass failed");
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let b = Backoff::new(100, 1_000);
        assert_eq!(
            [1, 2, 3, 4, 5, 60].map(|n| b.delay_ms(n)),
            [100, 200, 400, 800, 1_000, 1_000]
        );
        assert_eq!(b.delay_ms(0), 100);
    }
}
