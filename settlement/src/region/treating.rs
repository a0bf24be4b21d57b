//! The treating node's side (就医地目录 / 就医地管理): ask the insured node for the split of a bill
//! this node classified, then pay the hospital from the clearing account toward the insured
//! region (a claim on it) in ONE posting with the settlement record, the message record, the
//! transfer state and the clearing events. Also the hook for cancellations/reversals (mirror
//! locally + durable reversal in the outbox, same transaction) and the resolver of stale intents.
//!
//! Outcomes toward the cashier (issue 6): insured node unreachable → refused at once with a clear
//! message, nothing written anywhere but a closed intent; refused by the insured node → its
//! message; no answer in time → `resolve` at once (settled: completed here; voided: refused); if
//! that fails too → abandoned with a durable reversal, refused ("nothing will be charged").

use std::sync::Arc;

use crate::fen::Fen;
use crate::ids::Admdvs;
use crate::medical::ids::{format_date, now_ms, posting_id_of};
use crate::medical::rows::{Attachment, Row, Table, Value as Cell};
use crate::medical::store::{StoredFeeLine, StoredSettlement};
use crate::medical::{Medical, Output};
use crate::nhsa::ApiError;
use crate::nhsa::output::SettleOutput;
use crate::policy::HospLv;
use crate::posting::{Leg, Posting, Side};

use super::db::{self, Event};
use super::insured::{clearing, internal};
use super::wire::{Decision, ReverseRequest, SplitFigures, SplitRequest, WireLine};
use super::{Node, RegionError, xfer_id};

/// Outbox path of reversals.
pub const REVERSE_PATH: &str = "/region/v1/reverse";

/// A bill to settle across regions, as `medical::settle` has it after its checks.
#[derive(Debug)]
pub(crate) struct Bill<'a> {
    /// The HIS envelope.
    pub(crate) env: &'a crate::nhsa::Envelope,
    /// Person number.
    pub(crate) psn_no: &'a str,
    /// Visit id at this node.
    pub(crate) mdtrt_id: &'a str,
    /// 310 / 390.
    pub(crate) insutype: &'a str,
    /// 医疗类别.
    pub(crate) med_type: String,
    /// 2304 rather than 2207.
    pub(crate) inpatient: bool,
    /// 2207/2304 (true) or 2206/2303 (false).
    pub(crate) commit: bool,
    /// `acct_used_flag`.
    pub(crate) acct_used_flag: bool,
    /// Treating institution.
    pub(crate) fixmedins_code: &'a str,
    /// Its level, if registered.
    pub(crate) hosp_lv: Option<HospLv>,
    /// Live fee lines (classified with this node's catalogue at upload).
    pub(crate) lines: &'a [StoredFeeLine],
    /// The person's insured division.
    pub(crate) insured: Admdvs,
}

fn cross(message: String) -> ApiError {
    ApiError::CrossRegion(message)
}

/// Settles `bill` through the insured node. Errors: `CrossRegion` (unreachable, unknown,
/// voided), the insured node's refusal, ledger errors.
pub(crate) async fn settle(node: &Node, med: &Medical, bill: Bill<'_>) -> Result<Output, ApiError> {
    let hosp_lv = bill.hosp_lv.ok_or_else(|| {
        ApiError::MissingReferenceData(format!(
            "institution {} is not a registered designated institution",
            bill.fixmedins_code
        ))
    })?;
    let target = node.regions.route(bill.insured).ok_or_else(|| {
        cross(format!(
            "参保地 {} has no settlement node in the regions file; settle manually",
            bill.insured
        ))
    })?;
    let (to, name) = (target.admdvs, target.name.clone());
    let xfer = xfer_id(node.me, bill.env.msgid.as_str());
    let _xfer = node.xfers.lock(&xfer).await.map_err(internal)?;
    let stamp = node.window.stamp(med.ledger()).await.map_err(internal)?;
    let mut window = stamp.window;
    // An earlier attempt of this msgid left an intent without an outcome (the treating node
    // crashed while it waited): the insured node may have decided it, so "unreachable" now
    // proves nothing about it and must be resolved like a timeout.
    let mut resumed = false;
    if bill.commit {
        let states = db::xfer_states(med.ledger(), &xfer)
            .await
            .map_err(internal)?;
        // Every outcome is final for its msgid: a resend after 'F' (refused, unreachable,
        // voided) could settle while the first outcome is on record, and an intent with an
        // outcome is no longer watched by the resolver.
        if states
            .iter()
            .any(|(s, ..)| s == "A" || s == "S" || s == "C" || s == "F")
        {
            return Err(cross(
                "this msgid's cross-region settlement was already decided (refused, abandoned or \
                 settled); settle again with a new msgid"
                    .to_owned(),
            ));
        }
        match states.iter().find(|(s, ..)| s == "I") {
            Some((_, _, w, _)) => {
                window = *w;
                resumed = true;
            }
            None => {
                let detail = serde_json::json!({"msgid": bill.env.msgid.as_str(), "mdtrt_id": bill.mdtrt_id})
                    .to_string();
                db::write_rows(
                    med.ledger(),
                    vec![db::xfer_row(&xfer, "I", to.code(), window, &detail)],
                )
                .await
                .map_err(internal)?;
            }
        }
    }
    let req = SplitRequest {
        xfer_id: xfer.clone(),
        msgid: bill.env.msgid.as_str().to_owned(),
        origin: node.me.code(),
        window_id: window,
        commit: bill.commit,
        psn_no: bill.psn_no.to_owned(),
        insutype: bill.insutype.to_owned(),
        inpatient: bill.inpatient,
        med_type: bill.med_type.clone(),
        filed: false,
        hosp_lv: hosp_lv.name().to_owned(),
        mdtrt_id: bill.mdtrt_id.to_owned(),
        acct_used_flag: bill.acct_used_flag,
        lines: bill
            .lines
            .iter()
            .map(|l| WireLine {
                feedetl_sn: l.feedetl_sn.clone(),
                det_fen: l.det_fen,
                fulamt_fen: l.fulamt_fen,
                overlmt_fen: l.overlmt_fen,
                preselfpay_fen: l.preselfpay_fen,
                inscp_fen: l.inscp_fen,
                line: l.line.clone(),
            })
            .collect(),
    };
    let commit = bill.commit;
    let finish = |detail: &'static str| {
        let row = db::xfer_row(&xfer, "F", to.code(), window, detail);
        async move {
            if commit {
                db::write_rows(med.ledger(), vec![row])
                    .await
                    .map_err(internal)?;
            }
            Ok::<(), ApiError>(())
        }
    };
    let answer: Result<Decision, RegionError> = node.call(to, "/region/v1/split", &req).await;
    let figures = match answer {
        Ok(Decision::Settled(figures)) => figures,
        Ok(_) => {
            finish("voided").await?;
            return Err(cross(format!(
                "参保地 {name} voided this transfer earlier; settle again with a new msgid"
            )));
        }
        Err(RegionError::Refused(_, code, msg)) => {
            finish("refused").await?;
            return Err(match code.as_str() {
                "E2306" => ApiError::InsufficientBalance,
                "E2101" => ApiError::PersonNotFound,
                _ => cross(format!("参保地 {name} refused: {msg}")),
            });
        }
        Err(RegionError::Unreachable(_)) if resumed => {
            abandon(node, med, &xfer, bill.env.msgid.as_str(), to, window).await?;
            return Err(cross(format!(
                "参保地 {name} ({to}) is unreachable and an earlier attempt of this msgid may \
                 have reached it: a reversal is queued and nothing will be charged; settle again \
                 with a new msgid"
            )));
        }
        Err(RegionError::Unreachable(_)) => {
            finish("unreachable").await?;
            return Err(cross(format!(
                "参保地 {name} ({to}) is unreachable: the settlement is refused and nothing was \
                 charged; take payment in cash or settle the bill later"
            )));
        }
        Err(error) if !bill.commit => {
            return Err(cross(format!("参保地 {name} ({to}): {error}; try again")));
        }
        Err(error) => {
            tracing::warn!(%error, xfer = %xfer, "split outcome unknown: resolving");
            match node
                .call::<_, Decision>(
                    to,
                    "/region/v1/resolve",
                    &super::wire::ResolveRequest {
                        xfer_id: xfer.clone(),
                    },
                )
                .await
            {
                Ok(Decision::Settled(figures)) => figures,
                Ok(_) => {
                    finish("voided").await?;
                    return Err(cross(format!(
                        "参保地 {name} did not answer in time; the transfer was voided and \
                         nothing was charged; settle again with a new msgid"
                    )));
                }
                Err(_) => {
                    abandon(node, med, &xfer, bill.env.msgid.as_str(), to, window).await?;
                    return Err(cross(format!(
                        "参保地 {name} did not answer in time; a reversal is queued and nothing \
                         will be charged; settle again with a new msgid"
                    )));
                }
            }
        }
    };
    if !bill.commit {
        return raw(figures.output);
    }
    commit_local(node, med, &bill, &xfer, to, window, figures).await
}

/// Writes 'A' and the durable reversal in one transaction.
async fn abandon(
    node: &Node,
    med: &Medical,
    xfer: &str,
    msgid: &str,
    to: Admdvs,
    window: i64,
) -> Result<(), ApiError> {
    let body = serde_json::to_string(&ReverseRequest {
        xfer_id: xfer.to_owned(),
        msgid: msgid.to_owned(),
        origin: node.me.code(),
        window_id: window,
    })
    .map_err(internal)?;
    db::write_rows(
        med.ledger(),
        vec![
            db::xfer_row(xfer, "A", to.code(), window, "abandoned"),
            db::outbox_row(&format!("{xfer}#R"), to.code(), REVERSE_PATH, &body, window),
        ],
    )
    .await
    .map_err(internal)
}

#[allow(clippy::too_many_arguments)]
async fn commit_local(
    node: &Node,
    med: &Medical,
    bill: &Bill<'_>,
    xfer: &str,
    to: Admdvs,
    window: i64,
    figures: SplitFigures,
) -> Result<Output, ApiError> {
    let me = node.me;
    let output: SettleOutput = serde_json::from_str(&figures.output).map_err(internal)?;
    let setl_id = output.setlinfo.setl_id.clone();
    let mut legs = Vec::with_capacity(figures.owed.len() + 2);
    let mut rows: Vec<Row> = vec![db::xfer_row(xfer, "S", to.code(), window, "settled")];
    for owe in &figures.owed {
        let id = med.account(clearing(me, to, owe.fund_pay_type)?).await?;
        legs.push(Leg {
            account: id,
            side: Side::Debit,
            amount: Fen::from_fen(owe.fen).map_err(internal)?,
        });
        rows.push(db::event_row(
            xfer,
            "S",
            Event {
                origin: me.code(),
                window,
                counter: to.code(),
                fund: owe.fund_pay_type,
                fen: owe.fen,
            },
        ));
    }
    if figures.psn_cash_pay_fen > 0 {
        let id = med
            .account(crate::medical::accounts::cash(me).map_err(internal)?)
            .await?;
        legs.push(Leg {
            account: id,
            side: Side::Debit,
            amount: Fen::from_fen(figures.psn_cash_pay_fen).map_err(internal)?,
        });
    }
    let inst = crate::medical::accounts::institution(me, bill.fixmedins_code).map_err(|_| {
        ApiError::BadField {
            field: "fixmedins_code",
            reason: "must be 1..=32 letters, digits, '-' or '_'".to_owned(),
        }
    })?;
    let inst = med.account(inst).await?;
    legs.push(Leg {
        account: inst,
        side: Side::Credit,
        amount: Fen::from_fen(figures.medfee_fen).map_err(internal)?,
    });
    let posting_id = posting_id_of(bill.env.msgid.as_str());
    rows.push(Row {
        table: Table::Settlements,
        values: vec![
            Cell::Text(setl_id.clone()),
            Cell::Text(bill.env.msgid.as_str().to_owned()),
            Cell::Bytes(posting_id.to_bytes().to_vec()),
            Cell::Text(bill.mdtrt_id.to_owned()),
            Cell::Text(bill.psn_no.to_owned()),
            Cell::Text(bill.insutype.to_owned()),
            Cell::I64(i64::from(bill.insured.code())),
            Cell::Text(bill.fixmedins_code.to_owned()),
            Cell::Text(format_date(now_ms())),
            Cell::I64(figures.medfee_fen),
            Cell::I64(figures.fund_pay_fen),
            Cell::I64(figures.acct_pay_fen),
            Cell::I64(figures.psn_cash_pay_fen),
            Cell::Text(figures.output.clone()),
        ],
    });
    let output_json = raw(figures.output.clone())?;
    let message = crate::medical::message_row(
        bill.env,
        "L",
        Some(posting_id),
        bill.psn_no,
        crate::medical::StoredReply::SettlementOutput,
    );
    let posting = Posting {
        id: posting_id,
        admdvs: me,
        legs,
        link: None,
    };
    let attachment = Attachment {
        always: vec![message],
        if_posted: rows,
    };
    if let Err(error) = med
        .ledger()
        .post_attached(posting, Arc::new(attachment))
        .await
    {
        // The insured node posted; this side did not (or does not know). The resolver abandons
        // the intent (durable reversal) unless a later look finds the 'S' row committed.
        tracing::error!(%error, xfer, "local commit of a cross-region settlement failed");
        return Err(crate::medical::ledger_error(error));
    }
    med.cache.update_visit(bill.mdtrt_id, |state| {
        state.live_settlement = Some(setl_id.clone());
    });
    Ok(output_json)
}

fn raw(text: String) -> Result<Output, ApiError> {
    serde_json::value::RawValue::from_string(text).map_err(internal)
}

/// Hook of `medical`'s cancellation/reversal: for a cross-region settlement made here, adds to
/// `rows` (committed with the mirror posting) the 'C' state, the negated clearing events in the
/// open window and the durable reversal toward the insured node. Returns the window stamp the
/// caller holds until the posting is decided (`None`: not a cross-region settlement).
pub(crate) async fn on_reverse(
    node: &Node,
    med: &Medical,
    settlement: &StoredSettlement,
    rows: &mut Vec<Row>,
) -> Result<Option<super::WindowStamp>, ApiError> {
    let insured = Admdvs::from_code(u32::try_from(settlement.insuplc_admdvs).unwrap_or(u32::MAX))
        .map_err(internal)?;
    if node.serves(insured) {
        return Ok(None);
    }
    let xfer = xfer_id(node.me, &settlement.msgid);
    let events = db::events_of(med.ledger(), &xfer, "S")
        .await
        .map_err(internal)?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let to = first.counter;
    let stamp = node.window.stamp(med.ledger()).await.map_err(internal)?;
    let window = stamp.window;
    rows.push(db::xfer_row(&xfer, "C", to, window, "cancelled"));
    for e in &events {
        rows.push(db::event_row(
            &xfer,
            "R",
            Event {
                window,
                fen: -e.fen,
                ..*e
            },
        ));
    }
    let body = serde_json::to_string(&ReverseRequest {
        xfer_id: xfer.clone(),
        msgid: settlement.msgid.clone(),
        origin: node.me.code(),
        window_id: window,
    })
    .map_err(internal)?;
    rows.push(db::outbox_row(
        &format!("{xfer}#R"),
        to,
        REVERSE_PATH,
        &body,
        window,
    ));
    Ok(Some(stamp))
}

/// Abandons intents left without an outcome (crash, lost local commit) for longer than
/// `intent_stale_ms`: 'A' plus a durable reversal, unless a settlement row was committed.
pub async fn resolve_stale(node: &Node, med: &Medical) -> Result<(), RegionError> {
    let before = now_ms() - node.options.intent_stale_ms;
    for (xfer, counter, window, detail) in db::stale_intents(med.ledger(), before).await? {
        let Some(_xfer) = node.xfers.try_lock(&xfer).await? else {
            continue;
        };
        let states = db::xfer_states(med.ledger(), &xfer).await?;
        if states.iter().any(|(s, ..)| s != "I") {
            continue;
        }
        let msgid = serde_json::from_str::<serde_json::Value>(&detail)
            .ok()
            .and_then(|v| v.get("msgid").and_then(|m| m.as_str()).map(str::to_owned))
            .ok_or_else(|| RegionError::Storage("intent detail".to_owned()))?;
        let to = Admdvs::from_code(counter).map_err(|e| RegionError::Storage(e.to_string()))?;
        tracing::warn!(xfer = %xfer, "abandoning a stale cross-region intent");
        abandon(node, med, &xfer, &msgid, to, window)
            .await
            .map_err(|e| RegionError::Storage(e.to_string()))?;
    }
    Ok(())
}
