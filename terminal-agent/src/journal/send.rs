//! Sending one business message (a settlement 2207/2304, a card payment): journal first, then
//! send, then record the outcome. A timeout of a settlement (2207/2304; other messages have no
//! reversal and end `Unanswered`) makes the outcome **unknown**: the message stays
//! `unknown` and a 2601 reversal naming it (omsgid, oinfno, psn_no) is queued for the
//! [`super::forwarder`], which retries it until the switch acknowledges it.

use serde_json::Value;

use super::envelope::{self, Envelope, EnvelopeHeader, INFNO_REVERSAL};
use super::store::{Journal, JournalError, MessageState};
use super::switch::{SwitchClient, SwitchError, SwitchReply};

/// What became of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// `infcode` 0.
    Acknowledged {
        /// The msgid.
        msgid: String,
        /// The switch's reply.
        reply: SwitchReply,
    },
    /// `infcode` ≠ 0: the switch answered and did not process it.
    Refused {
        /// The msgid.
        msgid: String,
        /// The switch's reply.
        reply: SwitchReply,
    },
    /// The connection was never made; nothing to reverse.
    NotDelivered {
        /// The msgid.
        msgid: String,
    },
    /// No usable reply to a query or preparatory message (1101, 2201, 2204 ...), which the
    /// interface has no reversal for: the caller repeats or abandons the visit.
    Unanswered {
        /// The msgid.
        msgid: String,
    },
    /// No usable reply to a settlement: the switch may have processed it. `reversal_msgid` is
    /// queued.
    Unknown {
        /// The msgid.
        msgid: String,
        /// The queued 2601.
        reversal_msgid: String,
    },
}

/// Whether a 2601 can reverse `infno`: the settlements 2207 (outpatient) and 2304 (inpatient)
/// (medical-settlement.md §1.6; the switch refuses a 2601 naming anything else).
pub fn reversible(infno: &str) -> bool {
    matches!(infno, "2207" | "2304")
}

/// Journals and sends one message `infno` with `input` for the person `psn_no` insured in
/// `insuplc_admdvs`.
///
/// Errors: [`JournalError`] only: if the journal cannot be written, nothing is sent.
pub async fn send_message(
    journal: &Journal,
    client: &SwitchClient,
    header: &EnvelopeHeader,
    infno: &str,
    psn_no: &str,
    insuplc_admdvs: &str,
    input: Value,
) -> Result<SendOutcome, JournalError> {
    let at = envelope::beijing_now();
    let compact = envelope::compact_time(at);
    let msgid = journal.next_msgid(&header.fixmedins_code, &compact).await?;
    let message = Envelope::new(header, infno, &msgid, insuplc_admdvs, input, at);
    let body = serde_json::to_string(&message).map_err(|_| JournalError::Corrupt {
        msgid: msgid.clone(),
        what: "envelope does not serialise",
    })?;
    // Durable before it leaves: a crash from here on leaves a `sending` row to resolve.
    journal
        .record(&msgid, infno, &body, MessageState::Sending, None)
        .await?;
    match client.call(&body).await {
        Ok(reply) if reply.acknowledged() => {
            journal
                .update(&msgid, MessageState::Acknowledged, 0, None)
                .await?;
            Ok(SendOutcome::Acknowledged { msgid, reply })
        }
        Ok(reply) => {
            journal
                .update(&msgid, MessageState::Refused, 0, reply.err_msg.as_deref())
                .await?;
            Ok(SendOutcome::Refused { msgid, reply })
        }
        Err(SwitchError::NotDelivered) => {
            journal
                .update(&msgid, MessageState::NotDelivered, 0, Some("not delivered"))
                .await?;
            Ok(SendOutcome::NotDelivered { msgid })
        }
        Err(e) if !reversible(infno) => {
            tracing::warn!(msgid, infno, "no usable reply; nothing to reverse");
            journal
                .update(&msgid, MessageState::Unknown, 0, Some(&e.to_string()))
                .await?;
            Ok(SendOutcome::Unanswered { msgid })
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(msgid, infno, "outcome unknown; queueing a 2601 reversal");
            journal
                .update(&msgid, MessageState::Unknown, 0, Some(&reason))
                .await?;
            let reversal_msgid =
                queue_reversal(journal, header, &msgid, infno, psn_no, insuplc_admdvs).await?;
            Ok(SendOutcome::Unknown {
                msgid,
                reversal_msgid,
            })
        }
    }
}

/// Journals a 2601 reversal of `omsgid` (transaction `oinfno`), due at once.
///
/// Errors: [`JournalError`].
pub async fn queue_reversal(
    journal: &Journal,
    header: &EnvelopeHeader,
    omsgid: &str,
    oinfno: &str,
    psn_no: &str,
    insuplc_admdvs: &str,
) -> Result<String, JournalError> {
    let at = envelope::beijing_now();
    let msgid = journal
        .next_msgid(&header.fixmedins_code, &envelope::compact_time(at))
        .await?;
    let input = Envelope::reversal_input(psn_no, omsgid, oinfno);
    let message = Envelope::new(header, INFNO_REVERSAL, &msgid, insuplc_admdvs, input, at);
    let body = serde_json::to_string(&message).map_err(|_| JournalError::Corrupt {
        msgid: msgid.clone(),
        what: "envelope does not serialise",
    })?;
    journal
        .record(
            &msgid,
            INFNO_REVERSAL,
            &body,
            MessageState::Queued,
            Some(omsgid),
        )
        .await?;
    // Due at once: `record` sets next_attempt_ms to the time of writing.
    Ok(msgid)
}
