//! The sweep of messages a crash left in doubt, run by [`super::Journal::open`]: a row still in
//! `sending` means the agent died between journaling a message and reading its answer, so the
//! switch may or may not have processed it. That reading is only sound because no other process
//! can be sending from the same journal: [`super::Journal::open`] holds the journal's exclusive
//! lock before it sweeps (a second agent on the file is refused, tests/journal_lock.rs).
//!
//! - A settlement (2207/2304, [`super::send::reversible`]) in doubt gets the same 2601 reversal
//!   a timeout queues (medical-settlement.md §1.6), built from the journaled envelope (its
//!   header, `insuplc_admdvs` and `input.data.psn_no`). This also covers a settlement left
//!   `unknown` without its reversal (a crash between the two writes of a timeout).
//! - Any other message in doubt is marked as a timeout of it would be: `unknown`, no reversal
//!   (the switch refuses a 2601 naming it); the caller repeats or abandons the visit.
//! - A payment reversal still `armed` ([`super::payrev`]) means its purchase may have left with
//!   no answer recorded: it is queued (the switch undoes the purchase, or voids its id if it
//!   never arrived).
//!
//! Idempotent: a settlement that already has a reversal (any state) gets no second one; the
//! journal's unique index on `original_msgid` enforces it as well.

use serde_json::Value;

use super::envelope::EnvelopeHeader;
use super::send::{queue_reversal, reversible};
use super::store::{Journal, JournalError, MessageState, StoredMessage};

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Reversals queued: (original msgid, reversal msgid).
    pub reversals_queued: Vec<(String, String)>,
    /// Non-reversible messages marked unanswered (state `unknown`), by msgid.
    pub unanswered: Vec<String>,
    /// Settlements in doubt whose journaled envelope lacks what a 2601 needs; left as they
    /// are for an operator (never expected: this code writes every field).
    pub unresolvable: Vec<String>,
    /// Armed payment reversals queued, by msgid.
    pub payment_reversals_queued: Vec<String>,
}

/// The `last_error` of a message the sweep found in doubt.
pub const IN_DOUBT_NOTE: &str = "in doubt after a restart (no answer was recorded)";

/// Resolves every message in doubt once (see the module doc).
///
/// Errors: [`JournalError`] (the journal could not be read or written).
pub async fn sweep(journal: &Journal) -> Result<SweepReport, JournalError> {
    let mut report = SweepReport::default();
    for message in journal.in_doubt().await? {
        if reversible(&message.infno) {
            if journal.reversal_of(&message.msgid).await?.is_some() {
                continue;
            }
            let Some((header, insuplc_admdvs, psn_no)) = reversal_fields(&message) else {
                tracing::error!(msgid = %message.msgid, "settlement in doubt cannot be reversed: envelope incomplete");
                report.unresolvable.push(message.msgid);
                continue;
            };
            if message.state == MessageState::Sending {
                journal
                    .update(
                        &message.msgid,
                        MessageState::Unknown,
                        0,
                        Some(IN_DOUBT_NOTE),
                    )
                    .await?;
            }
            tracing::warn!(msgid = %message.msgid, infno = %message.infno, "settlement in doubt; queueing a 2601 reversal");
            let reversal = queue_reversal(
                journal,
                &header,
                &message.msgid,
                &message.infno,
                &psn_no,
                &insuplc_admdvs,
            )
            .await?;
            report.reversals_queued.push((message.msgid, reversal));
        } else if message.state == MessageState::Sending {
            tracing::warn!(msgid = %message.msgid, infno = %message.infno, "message in doubt; nothing to reverse");
            journal
                .update(
                    &message.msgid,
                    MessageState::Unknown,
                    0,
                    Some(IN_DOUBT_NOTE),
                )
                .await?;
            report.unanswered.push(message.msgid);
        }
    }
    for armed in journal.in_state(MessageState::Armed).await? {
        if armed.infno != super::payrev::INFNO_PAYMENT_REVERSAL {
            continue;
        }
        tracing::warn!(msgid = %armed.msgid, "purchase in doubt after a restart; queueing its payment reversal");
        if super::payrev::trigger(journal, &armed.msgid, IN_DOUBT_NOTE).await? {
            report.payment_reversals_queued.push(armed.msgid);
        }
    }
    Ok(report)
}

/// The header, `insuplc_admdvs` and `psn_no` of a journaled envelope.
fn reversal_fields(message: &StoredMessage) -> Option<(EnvelopeHeader, String, String)> {
    let body: Value = serde_json::from_str(&message.body).ok()?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let header = EnvelopeHeader {
        fixmedins_code: text("fixmedins_code")?,
        fixmedins_name: text("fixmedins_name")?,
        mdtrtarea_admvs: text("mdtrtarea_admvs")?,
        recer_sys_code: text("recer_sys_code")?,
        opter_type: text("opter_type")?,
        opter: text("opter")?,
        opter_name: text("opter_name")?,
        sign_no: text("sign_no")?,
    };
    let psn_no = body
        .pointer("/input/data/psn_no")
        .and_then(Value::as_str)?
        .to_owned();
    Some((header, text("insuplc_admdvs")?, psn_no))
}
