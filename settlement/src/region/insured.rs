//! The insured node's side (参保地政策): apply this region's policy to the person's accumulators
//! and personal account, post in this ledger (funds and personal account → clearing toward the
//! treating region, per fund) with the inbox decision, the accumulator deltas and the clearing
//! events attached (one transaction), and answer the split. Also `resolve` (query-or-void) and
//! `reverse` (the mirror posting, or a void), each taking effect once per `xfer_id`.
//!
//! Source: medical-settlement.md §3.1 (参保地 computes the personal burden and fund payments and
//! returns them to the 就医地, 经办规程 arts. 32–33), §3.2 (京津冀 视同备案).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::account::{AccountFlags, AccountKind, AccountSpec};
use crate::fen::Fen;
use crate::ids::{AccountCode, Admdvs, FundPayType};
use crate::medical::Medical;
use crate::medical::ids::{
    business_year, format_date, format_time, now_ms, posting_id_of, record_id,
};
use crate::medical::rows::{Attachment, Row};
use crate::medical::settle::{ADMISSIONS, accumulators_of, changes_row, classified_of};
use crate::medical::store::StoredFeeLine;
use crate::nhsa::ApiError;
use crate::nhsa::output::{SetlContext, SettleOutput};
use crate::policy::{
    AdmissionOrdinal, CrossRegion, HospLv, Insutype, PsnType, SPLIT_LINES_MAX, Setting, SplitInput,
    compute_split, jingjinji_deemed_filed,
};
use crate::posting::{Leg, Link, Posting, Side};

use super::db::{self, Event};
use super::wire::{Decision, FundAmount, ReverseRequest, SplitFigures, SplitRequest};
use super::{Node, xfer_id};

/// The clearing account of `ledger_region` toward node `counter` for `fund`
/// (code `{counter}-{fund}`).
pub(crate) fn clearing(
    ledger_region: Admdvs,
    counter: Admdvs,
    fund: u32,
) -> Result<AccountSpec, ApiError> {
    let code = AccountCode::parse(&format!("{counter}-{fund}")).map_err(internal)?;
    Ok(AccountSpec {
        admdvs: ledger_region,
        kind: AccountKind::Clearing,
        code,
        flags: AccountFlags::default(),
    })
}

pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "region: internal error");
    ApiError::Internal
}

/// The hash a repeat of a split request must match (fields that decide the outcome; the
/// window stamp is left out: a resend may carry a later one and still means the same bill).
fn request_hash(req: &SplitRequest) -> [u8; 32] {
    let canonical = serde_json::json!([
        req.xfer_id,
        req.msgid,
        req.origin,
        req.commit,
        req.psn_no,
        req.insutype,
        req.inpatient,
        req.med_type,
        req.filed,
        req.hosp_lv,
        req.mdtrt_id,
        req.acct_used_flag,
        req.lines,
    ]);
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

fn decision_text(decision: &Decision) -> Result<String, ApiError> {
    serde_json::to_string(decision).map_err(internal)
}

/// `POST /region/v1/split`.
pub async fn split(node: &Node, med: &Medical, req: SplitRequest) -> Result<Decision, ApiError> {
    let origin = Admdvs::from_code(req.origin).map_err(|_| bad("origin", "not a division"))?;
    if req.xfer_id != xfer_id(origin, &req.msgid) {
        return Err(bad("xfer_id", "must be {origin}-{msgid}"));
    }
    if req.lines.is_empty() || req.lines.len() > SPLIT_LINES_MAX {
        return Err(bad("lines", "1..=SPLIT_LINES_MAX lines"));
    }
    let sha = request_hash(&req);
    let _xfer = node.xfers.lock(&req.xfer_id).await.map_err(internal)?;
    if req.commit {
        for (kind, stored_sha, reply) in db::inbox(med.ledger(), &req.xfer_id)
            .await
            .map_err(internal)?
        {
            if kind == "D" {
                if stored_sha != sha && reply.contains("\"settled\"") {
                    return Err(ApiError::MsgidReused);
                }
                return serde_json::from_str(&reply).map_err(internal);
            }
        }
    }
    let person = med.load_person_local(&req.psn_no).await?;
    let insured = person.region().map_err(internal)?;
    if !node.serves(insured) {
        return Err(ApiError::PersonNotFound);
    }
    if person.insutype != req.insutype {
        return Err(ApiError::InsutypeNotFound(req.insutype.clone()));
    }
    let held = med.locks.lock(&req.psn_no).await?;
    let policy = med
        .refdata
        .policies
        .region(insured)
        .map_err(|e| ApiError::MissingReferenceData(e.to_string()))?;
    let lines = req
        .lines
        .iter()
        .map(|l| {
            classified_of(&StoredFeeLine {
                feedetl_sn: l.feedetl_sn.clone(),
                chrg_bchno: String::new(),
                det_fen: l.det_fen,
                fulamt_fen: l.fulamt_fen,
                overlmt_fen: l.overlmt_fen,
                preselfpay_fen: l.preselfpay_fen,
                inscp_fen: l.inscp_fen,
                line: l.line.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let now = now_ms();
    let setl_date = format_date(now);
    let year = business_year(now);
    let sums = med.year_sums_held(&held, year).await?;
    let accumulators = accumulators_of(&sums)?;
    let personal = med.personal_account(&person).await?;
    let acct_balance = Fen::from_fen(med.acct_balance_fen_held(&held, personal).await?.max(0))
        .map_err(internal)?;
    let treating = origin;
    let input = SplitInput {
        insutype: Insutype::parse(&req.insutype).map_err(|e| ApiError::Policy(e.to_string()))?,
        psn_type: PsnType::parse(&person.psn_type).map_err(|e| ApiError::Policy(e.to_string()))?,
        age_years: person.age_on(&setl_date),
        setting: if req.inpatient {
            Setting::Inpatient
        } else {
            Setting::Outpatient
        },
        hosp_lv: HospLv::parse(&req.hosp_lv).map_err(|e| ApiError::Policy(e.to_string()))?,
        admission_ordinal: if sums.get(ADMISSIONS).copied().unwrap_or(0) > 0 {
            AdmissionOrdinal::SecondOrLater
        } else {
            AdmissionOrdinal::First
        },
        lines,
        accumulators,
        acct_used_flag: req.acct_used_flag,
        acct_balance,
        cross_region: Some(CrossRegion {
            filed: req.filed || jingjinji_deemed_filed(insured, treating),
            emergency: req.med_type == "13",
        }),
    };
    let split = compute_split(policy, &input).map_err(|e| ApiError::Policy(e.to_string()))?;
    split.check_identities().map_err(internal)?;
    if split.acct_pay > acct_balance {
        return Err(ApiError::InsufficientBalance);
    }
    let setl_id = record_id(insured, "setl", &req.msgid);
    let output = SettleOutput::new(
        &split,
        SetlContext {
            setl_id: setl_id.clone(),
            mdtrt_id: req.mdtrt_id.clone(),
            psn_no: req.psn_no.clone(),
            insutype: req.insutype.clone(),
            psn_type: person.psn_type.clone(),
            med_type: req.med_type.clone(),
            setl_time: format_time(now),
            medins_setl_id: req.msgid.clone(),
            clr_optins: insured.to_string(),
        },
        req.inpatient,
    );
    let mut owed: Vec<FundAmount> = split
        .setldetail
        .iter()
        .filter(|d| !d.fund_payamt.is_zero())
        .map(|d| FundAmount {
            fund_pay_type: fund_code(d.fund_pay_type),
            fen: d.fund_payamt.fen(),
        })
        .collect();
    if !split.acct_pay.is_zero() {
        owed.push(FundAmount {
            fund_pay_type: fund_code(FundPayType::EMPLOYEE_PERSONAL_ACCOUNT),
            fen: split.acct_pay.fen(),
        });
    }
    let figures = SplitFigures {
        output: serde_json::to_string(&output).map_err(internal)?,
        owed: owed.clone(),
        psn_cash_pay_fen: split.psn_cash_pay.fen(),
        medfee_fen: split.medfee_sumamt.fen(),
        fund_pay_fen: split.fund_pay_sumamt.fen(),
        acct_pay_fen: split.acct_pay.fen(),
    };
    if !req.commit {
        return Ok(Decision::Settled(figures));
    }
    let decision = Decision::Settled(figures);
    let reply = decision_text(&decision)?;
    let treating_node = node
        .regions
        .route(treating)
        .map(|r| r.admdvs)
        .ok_or_else(|| bad("origin", "not a region of the regions file"))?;

    let mut legs = med.insured_debit_legs(insured, personal, &split).await?;
    let mut rows: Vec<Row> = vec![db::inbox_row(&req.xfer_id, "D", req.origin, &sha, &reply)];
    for owe in &owed {
        let id = med
            .account(clearing(insured, treating_node, owe.fund_pay_type)?)
            .await?;
        legs.push(Leg {
            account: id,
            side: Side::Credit,
            amount: Fen::from_fen(owe.fen).map_err(internal)?,
        });
        rows.push(db::event_row(
            &req.xfer_id,
            "S",
            Event {
                origin: req.origin,
                window: req.window_id,
                counter: treating_node.code(),
                fund: owe.fund_pay_type,
                fen: -owe.fen,
            },
        ));
    }
    let mut deltas = crate::medical::settle::accumulator_names(&split.accumulators_delta);
    if req.inpatient {
        deltas.push((ADMISSIONS.to_owned(), 1));
    }
    rows.extend(changes_row(&req.psn_no, year, &setl_id, 1, &deltas)?);
    if legs.is_empty() {
        // Nothing owed (all cash): the decision and the accumulator changes (a bill below the
        // deductible still counts toward it), without a posting.
        if let Err(error) = db::write_rows(med.ledger(), rows).await {
            med.cache.forget(&req.psn_no, "", Some(personal));
            return Err(internal(error));
        }
        med.cache.add_accumulators(&req.psn_no, year, &deltas);
        return Ok(decision);
    }
    let posting = Posting {
        id: posting_id_of(&format!("{}#{}#S", req.msgid, req.origin)),
        admdvs: insured,
        legs,
        link: None,
    };
    let attachment = Attachment {
        always: Vec::new(),
        if_posted: rows,
    };
    if let Err(error) = med
        .ledger()
        .post_attached(posting, Arc::new(attachment))
        .await
    {
        med.cache.forget(&req.psn_no, "", Some(personal));
        return Err(crate::medical::ledger_error(error));
    }
    med.cache.add_accumulators(&req.psn_no, year, &deltas);
    med.cache.add_balance(personal, -split.acct_pay.fen());
    Ok(decision)
}

/// A fund's 6-digit code as a number (`FundPayType` shows it as text).
pub(crate) fn fund_code(fund: FundPayType) -> u32 {
    fund.to_string().parse().unwrap_or(0)
}

fn bad(field: &'static str, reason: &str) -> ApiError {
    ApiError::BadField {
        field,
        reason: reason.to_owned(),
    }
}

/// `POST /region/v1/resolve`: the decision, or a void if there is none yet.
pub async fn resolve(node: &Node, med: &Medical, xfer: &str) -> Result<Decision, ApiError> {
    let _xfer = node.xfers.lock(xfer).await.map_err(internal)?;
    let rows = db::inbox(med.ledger(), xfer).await.map_err(internal)?;
    if let Some((_, _, reply)) = rows.iter().find(|(k, _, _)| k == "D") {
        return serde_json::from_str(reply).map_err(internal);
    }
    let origin = xfer
        .get(0..6)
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(0);
    let void = decision_text(&Decision::Voided)?;
    db::write_rows(
        med.ledger(),
        vec![db::inbox_row(xfer, "D", origin, &[0; 32], &void)],
    )
    .await
    .map_err(internal)?;
    Ok(Decision::Voided)
}

/// `POST /region/v1/reverse`: the mirror of the posted decision (once), or a void.
pub async fn reverse(
    node: &Node,
    med: &Medical,
    req: ReverseRequest,
) -> Result<Decision, ApiError> {
    let origin = Admdvs::from_code(req.origin).map_err(|_| bad("origin", "not a division"))?;
    if req.xfer_id != xfer_id(origin, &req.msgid) {
        return Err(bad("xfer_id", "must be {origin}-{msgid}"));
    }
    let _xfer = node.xfers.lock(&req.xfer_id).await.map_err(internal)?;
    let rows = db::inbox(med.ledger(), &req.xfer_id)
        .await
        .map_err(internal)?;
    if let Some((_, _, reply)) = rows.iter().find(|(k, _, _)| k == "R") {
        return serde_json::from_str(reply).map_err(internal);
    }
    let decided = rows.iter().find(|(k, _, _)| k == "D");
    let settled: Option<SplitFigures> = match decided {
        Some((_, _, reply)) => match serde_json::from_str(reply).map_err(internal)? {
            Decision::Settled(figures) => Some(figures),
            _ => None,
        },
        None => None,
    };
    let Some(figures) = settled else {
        let void = decision_text(&Decision::Voided)?;
        let mut write = vec![db::inbox_row(
            &req.xfer_id,
            "R",
            req.origin,
            &[0; 32],
            &void,
        )];
        if decided.is_none() {
            write.push(db::inbox_row(
                &req.xfer_id,
                "D",
                req.origin,
                &[0; 32],
                &void,
            ));
        }
        db::write_rows(med.ledger(), write)
            .await
            .map_err(internal)?;
        return Ok(Decision::Voided);
    };
    let output: SettleOutput = serde_json::from_str(&figures.output).map_err(internal)?;
    let psn_no = output.setlinfo.psn_no.clone();
    let setl_id = output.setlinfo.setl_id.clone();
    let _person = med.locks.lock(&psn_no).await?;
    let reversed = decision_text(&Decision::Reversed)?;
    let mut rows = vec![db::inbox_row(
        &req.xfer_id,
        "R",
        req.origin,
        &[0; 32],
        &reversed,
    )];
    for e in db::events_of(med.ledger(), &req.xfer_id, "S")
        .await
        .map_err(internal)?
    {
        rows.push(db::event_row(
            &req.xfer_id,
            "R",
            Event {
                window: req.window_id,
                fen: -e.fen,
                ..e
            },
        ));
    }
    for (year, deltas) in med
        .ledger()
        .store()
        .settlement_changes(&psn_no, &setl_id)
        .await
        .map_err(internal)?
    {
        rows.extend(changes_row(&psn_no, year, &setl_id, -1, &deltas)?);
    }
    let original_id = posting_id_of(&format!("{}#{}#S", req.msgid, req.origin));
    let original = med.ledger().posting(original_id).await.map_err(internal)?;
    let Some(original) = original.filter(|p| p.outcome.is_ok()) else {
        // Decided with nothing owed (all cash): no posting to mirror.
        db::write_rows(med.ledger(), rows).await.map_err(internal)?;
        med.cache.forget(&psn_no, "", None);
        return Ok(Decision::Reversed);
    };
    let legs: Vec<Leg> = original
        .legs
        .iter()
        .map(|leg| Leg {
            account: leg.account,
            side: leg.side.opposite(),
            amount: leg.amount,
        })
        .collect();
    let accounts: Vec<crate::AccountId> = legs.iter().map(|l| l.account).collect();
    let posting = Posting {
        id: posting_id_of(&format!("{}#{}#R", req.msgid, req.origin)),
        admdvs: original.admdvs,
        legs,
        link: Some(Link::Reverses(original_id)),
    };
    let posted = med
        .ledger()
        .post_attached(
            posting,
            Arc::new(Attachment {
                always: Vec::new(),
                if_posted: rows,
            }),
        )
        .await;
    med.cache.forget(&psn_no, "", None);
    med.cache.forget_balances(accounts);
    posted.map_err(crate::medical::ledger_error)?;
    Ok(Decision::Reversed)
}
