//! Visits and fee details: 2201/2401 registration and admission, 2202 cancellation, 2203 visit
//! information, 2402 discharge, 2204/2301 fee upload with per-line classification from the
//! TREATING region's catalogue (就医地目录, medical-settlement.md §3.1), 2205/2302 fee cancel.
//! None of these moves money; each writes its rows and message record in one transaction.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cache::VisitState;
use super::rows::{Row, Table, Value as Cell};
use super::store::{SettlementKey, StoredFeeLine, StoredVisit};
use super::{Medical, Output, Prior, ids, internal, out};
use crate::catalogue::{ClassifiedLine, FeeLine, ListKind};
use crate::nhsa::input::{self, FEE_LINES_MAX};
use crate::nhsa::output::FeeResult;
use crate::nhsa::{ApiError, Envelope};

/// Outpatient or inpatient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 门诊 (2201-2208).
    Outpatient,
    /// 住院 (2401/2402, 2301-2305).
    Inpatient,
}

impl Kind {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Kind::Outpatient => "O",
            Kind::Inpatient => "I",
        }
    }
}

/// A later event of a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// 2202 cancel registration.
    Cancel,
    /// 2203 visit information.
    Info,
    /// 2402 discharge.
    Discharge,
}

/// A classified line as stored in `fee_lines.line` (what `ClassifiedLine` needs back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredLine {
    pub init_feedetl_sn: Option<String>,
    pub med_list_codg: String,
    pub refund: bool,
    pub chrgitm_lv: String,
    pub selfpay_prop: String,
    pub pric_uplmt_fen: Option<i64>,
    pub list_type: String,
    pub cnt: String,
    pub pric_fen: i64,
}

fn list_kind_name(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Drug => "drug",
        ListKind::Service => "service",
        ListKind::Consumable => "consumable",
    }
}

fn signed(fen: crate::Fen, refund: bool) -> i64 {
    if refund { -fen.fen() } else { fen.fen() }
}

impl Medical {
    /// The state of visit `mdtrt_id` if it is a visit of `psn_no`, whose lock the caller holds:
    /// from the cache, else loaded from the database and cached. Another person's visit reads as
    /// `None` and is not cached: only its own person's lock may fill the cache (cache.rs), or a
    /// copy loaded here could miss a settlement of that person committing meanwhile.
    pub(crate) async fn visit_state(
        &self,
        mdtrt_id: &str,
        psn_no: &str,
    ) -> Result<Option<VisitState>, ApiError> {
        if let Some(state) = self.cache.visit(mdtrt_id) {
            return Ok(Some(state).filter(|state| state.visit.psn_no == psn_no));
        }
        let store = self.ledger.store();
        let Some(visit) = store.visit(mdtrt_id).await.map_err(internal)? else {
            return Ok(None);
        };
        if visit.psn_no != psn_no {
            return Ok(None);
        }
        let all = store.fee_lines(mdtrt_id, true).await.map_err(internal)?;
        let lines = store.fee_lines(mdtrt_id, false).await.map_err(internal)?;
        let live_settlement = store
            .settlements(SettlementKey::Visit(mdtrt_id))
            .await
            .map_err(internal)?
            .into_iter()
            .find(|s| !s.cancelled)
            .map(|s| s.setl_id);
        let state = VisitState {
            visit,
            lines,
            all_sns: all.into_iter().map(|l| l.feedetl_sn).collect(),
            live_settlement,
        };
        self.cache.put_visit(mdtrt_id, state.clone());
        Ok(Some(state))
    }

    /// A visit of `psn_no` in `kind`, live. Errors: `VisitNotFound`, `VisitState`.
    pub(crate) async fn live_visit(
        &self,
        mdtrt_id: &str,
        psn_no: &str,
        kind: Kind,
    ) -> Result<VisitState, ApiError> {
        let state = self
            .visit_state(mdtrt_id, psn_no)
            .await?
            .ok_or(ApiError::VisitNotFound)?;
        if state.visit.cancelled {
            return Err(ApiError::VisitState("the visit was cancelled"));
        }
        if state.visit.setting != kind.code() {
            return Err(ApiError::VisitState(
                "outpatient and inpatient transactions cannot be mixed on one visit",
            ));
        }
        Ok(state)
    }

    /// 2201 / 2401.
    pub(crate) async fn register(&self, env: &Envelope, kind: Kind) -> Result<Output, ApiError> {
        let (psn_no, insutype, begntime, med_type) = match kind {
            Kind::Outpatient => {
                let data: input::Data<input::Registration> = input::parse(&env.infno, &env.input)?;
                let r = data.data;
                (r.psn_no, r.insutype, r.begntime, "11".to_owned())
            }
            Kind::Inpatient => {
                let data: input::AdmissionInput = input::parse(&env.infno, &env.input)?;
                let a = data.mdtrtinfo;
                (a.psn_no, a.insutype, a.begntime, a.med_type)
            }
        };
        let _guard = self.locks.lock(&psn_no).await?;
        if let Prior::Answered(answer) = self.prior(env).await? {
            return answer;
        }
        let person = self.load_person(&psn_no).await?;
        if person.insutype != insutype {
            return Err(ApiError::InsutypeNotFound(insutype));
        }
        let region = self.person_region(&person, env)?;
        let mdtrt_id = ids::record_id(env.mdtrtarea_admvs, "mdtrt", &env.msgid);
        let visit_med_type = med_type.clone();
        let row = Row {
            table: Table::Visits,
            values: vec![
                Cell::Text(mdtrt_id.clone()),
                Cell::Text(psn_no.clone()),
                Cell::Text(insutype),
                Cell::I64(i64::from(region.code())),
                Cell::I64(i64::from(env.mdtrtarea_admvs.code())),
                Cell::Text(env.fixmedins_code.clone()),
                Cell::Text(kind.code().to_owned()),
                Cell::Text(med_type.clone()),
                Cell::Text(begntime),
                Cell::Text(env.msgid.clone()),
                Cell::I64(ids::now_ms()),
            ],
        };
        let output = out(&match kind {
            Kind::Outpatient => json!({"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}}),
            Kind::Inpatient => json!({"result": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}}),
        })?;
        let fresh = VisitState {
            visit: StoredVisit {
                psn_no: psn_no.clone(),
                insutype: person.insutype.clone(),
                insuplc_admdvs: i64::from(region.code()),
                mdtrtarea_admvs: i64::from(env.mdtrtarea_admvs.code()),
                fixmedins_code: env.fixmedins_code.clone(),
                setting: kind.code().to_owned(),
                med_type: visit_med_type,
                cancelled: false,
                discharged: false,
            },
            lines: Vec::new(),
            all_sns: BTreeSet::new(),
            live_settlement: None,
        };
        let (reply, written) = self
            .commit_rows_fresh(env, &psn_no, vec![row], output)
            .await?;
        if written {
            self.cache.put_visit(&mdtrt_id, fresh);
        }
        Ok(reply)
    }

    /// 2202 / 2203 / 2402.
    pub(crate) async fn visit_event(
        &self,
        env: &Envelope,
        event: Event,
    ) -> Result<Output, ApiError> {
        let (mdtrt_id, psn_no, detail, kind) = match event {
            Event::Cancel => {
                let data: input::Data<input::VisitRef> = input::parse(&env.infno, &env.input)?;
                (
                    data.data.mdtrt_id,
                    data.data.psn_no,
                    json!({}),
                    Kind::Outpatient,
                )
            }
            Event::Info => {
                let data: input::VisitInfoInput = input::parse(&env.infno, &env.input)?;
                let info = data.mdtrtinfo;
                let detail = json!({"med_type": info.med_type, "dise_codg": info.dise_codg});
                (info.mdtrt_id, info.psn_no, detail, Kind::Outpatient)
            }
            Event::Discharge => {
                let data: input::DischargeInput = input::parse(&env.infno, &env.input)?;
                let d = data.dscginfo;
                (
                    d.mdtrt_id,
                    d.psn_no,
                    json!({"endtime": d.endtime}),
                    Kind::Inpatient,
                )
            }
        };
        let _guard = self.locks.lock(&psn_no).await?;
        if let Prior::Answered(answer) = self.prior(env).await? {
            return answer;
        }
        let state = self.live_visit(&mdtrt_id, &psn_no, kind).await?;
        let visit = &state.visit;
        if event == Event::Cancel && state.live_settlement.is_some() {
            return Err(ApiError::VisitState(
                "the visit is settled; cancel the settlement first",
            ));
        }
        if event == Event::Discharge && visit.discharged {
            return Err(ApiError::VisitState("the patient was already discharged"));
        }
        let code = match event {
            Event::Cancel => "C",
            Event::Info => "I",
            Event::Discharge => "D",
        };
        let row = Row {
            table: Table::VisitEvents,
            values: vec![
                Cell::Text(mdtrt_id.clone()),
                Cell::Text(code.to_owned()),
                Cell::Text(env.msgid.clone()),
                Cell::Text(detail.to_string()),
                Cell::I64(ids::now_ms()),
            ],
        };
        let (reply, written) = self
            .commit_rows_fresh(env, &psn_no, vec![row], out(&json!({}))?)
            .await?;
        if !written {
            self.cache.forget(&psn_no, &mdtrt_id, None);
        }
        self.cache.update_visit(&mdtrt_id, |state| match event {
            Event::Cancel => state.visit.cancelled = true,
            Event::Discharge => state.visit.discharged = true,
            Event::Info => {}
        });
        Ok(reply)
    }

    /// 2204 / 2301: classify every line with the treating region's catalogue; all or nothing.
    ///
    /// The msgid is not looked up first: the row writer decides it inside its transaction and a
    /// refusal is checked against a stored outcome before it is returned (see `Medical::settle`).
    pub(crate) async fn upload_fees(&self, env: &Envelope, kind: Kind) -> Result<Output, ApiError> {
        match self.upload_fees_once(env, kind).await {
            Ok(output) => Ok(output),
            Err(error) => self.stored_answer_or(env, error).await,
        }
    }

    async fn upload_fees_once(&self, env: &Envelope, kind: Kind) -> Result<Output, ApiError> {
        let upload: input::FeeUpload = input::parse(&env.infno, &env.input)?;
        let Some(first) = upload.feedetail.first() else {
            return Err(ApiError::BadInput {
                infno: env.infno.clone(),
                reason: "feedetail is empty".to_owned(),
            });
        };
        if upload.feedetail.len() > FEE_LINES_MAX {
            return Err(ApiError::BadInput {
                infno: env.infno.clone(),
                reason: format!("more than {FEE_LINES_MAX} lines"),
            });
        }
        let (mdtrt_id, psn_no) = (first.mdtrt_id.clone(), first.psn_no.clone());
        if upload
            .feedetail
            .iter()
            .any(|l| l.mdtrt_id != mdtrt_id || l.psn_no != psn_no)
        {
            return Err(ApiError::BadInput {
                infno: env.infno.clone(),
                reason: "all lines of one upload must carry the same mdtrt_id and psn_no".into(),
            });
        }
        let catalogue = self
            .refdata
            .catalogues
            .region(env.mdtrtarea_admvs)
            .map_err(ApiError::FeeLine)?;
        let mut classified: Vec<(ClassifiedLine, &input::FeeDetail)> = Vec::new();
        let mut seen = BTreeSet::new();
        for line in &upload.feedetail {
            let number = |field: &str, n: &crate::nhsa::WireNumber| {
                n.to_decimal().ok_or_else(|| ApiError::BadAmount {
                    field: format!("feedetail[{}].{field}", line.feedetl_sn),
                    reason: "is not a number".to_owned(),
                })
            };
            let wire = FeeLine::from_wire(
                &line.feedetl_sn,
                line.init_feedetl_sn.as_deref(),
                &line.med_list_codg,
                number("cnt", &line.cnt)?,
                number("pric", &line.pric)?,
                number("det_item_fee_sumamt", &line.det_item_fee_sumamt)?,
            )
            .map_err(ApiError::FeeLine)?;
            let result = catalogue.classify(&wire).map_err(ApiError::FeeLine)?;
            if !seen.insert(line.feedetl_sn.clone()) {
                return Err(ApiError::DuplicateFeeLine(line.feedetl_sn.clone()));
            }
            classified.push((result, line));
        }
        let _guard = self.locks.lock(&psn_no).await?;
        let state = self.live_visit(&mdtrt_id, &psn_no, kind).await?;
        if state.live_settlement.is_some() {
            return Err(ApiError::VisitState(
                "the visit is settled; cancel the settlement first",
            ));
        }
        if let Some(dup) = state.all_sns.iter().find(|sn| seen.contains(*sn)) {
            return Err(ApiError::DuplicateFeeLine(dup.clone()));
        }
        let mut added = Vec::with_capacity(classified.len());
        let mut rows = Vec::with_capacity(classified.len());
        let mut results = Vec::with_capacity(classified.len());
        for (line, wire) in &classified {
            let refund = line.sign == crate::catalogue::LineSign::Refund;
            let stored = StoredLine {
                init_feedetl_sn: line.init_feedetl_sn.clone(),
                med_list_codg: line.med_list_codg.clone(),
                refund,
                chrgitm_lv: line.chrgitm_lv.code().to_owned(),
                selfpay_prop: line.selfpay_prop.to_string(),
                pric_uplmt_fen: line.pric_uplmt_amt.map(|f| f.fen()),
                list_type: list_kind_name(line.list_type).to_owned(),
                cnt: wire.cnt.text().to_owned(),
                pric_fen: wire.pric.to_fen().map(|f| f.fen()).unwrap_or(0),
            };
            let text = serde_json::to_string(&stored).map_err(internal)?;
            rows.push(Row {
                table: Table::FeeLines,
                values: vec![
                    Cell::Text(mdtrt_id.clone()),
                    Cell::Text(line.feedetl_sn.clone()),
                    Cell::Text(wire.chrg_bchno.clone()),
                    Cell::Text(env.msgid.clone()),
                    Cell::Text(line.med_list_codg.clone()),
                    Cell::Text(text.clone()),
                    Cell::I64(signed(line.det_item_fee_sumamt, refund)),
                    Cell::I64(signed(line.fulamt_ownpay_amt, refund)),
                    Cell::I64(signed(line.overlmt_amt, refund)),
                    Cell::I64(signed(line.preselfpay_amt, refund)),
                    Cell::I64(signed(line.inscp_scp_amt, refund)),
                ],
            });
            results.push(FeeResult::from(line));
            added.push(StoredFeeLine {
                feedetl_sn: line.feedetl_sn.clone(),
                chrg_bchno: wire.chrg_bchno.clone(),
                det_fen: signed(line.det_item_fee_sumamt, refund),
                fulamt_fen: signed(line.fulamt_ownpay_amt, refund),
                overlmt_fen: signed(line.overlmt_amt, refund),
                preselfpay_fen: signed(line.preselfpay_amt, refund),
                inscp_fen: signed(line.inscp_scp_amt, refund),
                line: text.clone(),
            });
        }
        #[derive(serde::Serialize)]
        struct FeeReply {
            result: Vec<FeeResult>,
        }
        let output = out(&FeeReply { result: results })?;
        let (reply, written) = self.commit_rows_fresh(env, &psn_no, rows, output).await?;
        if !written {
            self.cache.forget(&psn_no, &mdtrt_id, None);
        }
        self.cache.update_visit(&mdtrt_id, |state| {
            state
                .all_sns
                .extend(added.iter().map(|l| l.feedetl_sn.clone()));
            state.lines.extend(added);
            state.lines.sort_by(|a, b| a.feedetl_sn.cmp(&b.feedetl_sn));
        });
        // The settlement that usually follows reads the person's money state.
        if let Ok(insured) = state.visit.insured() {
            self.warm_money_state(&psn_no, insured);
        }
        Ok(reply)
    }

    /// 2205 / 2302: cancel one line or a whole batch (`feedetl_sn` absent or "0000").
    pub(crate) async fn cancel_fees(&self, env: &Envelope, kind: Kind) -> Result<Output, ApiError> {
        let data: input::Data<input::FeeCancel> = input::parse(&env.infno, &env.input)?;
        let cancel = data.data;
        let _guard = self.locks.lock(&cancel.psn_no).await?;
        if let Prior::Answered(answer) = self.prior(env).await? {
            return answer;
        }
        let state = self
            .live_visit(&cancel.mdtrt_id, &cancel.psn_no, kind)
            .await?;
        if state.live_settlement.is_some() {
            return Err(ApiError::VisitState(
                "the visit is settled; cancel the settlement first",
            ));
        }
        let live = &state.lines;
        let targets: Vec<&str> = match cancel.feedetl_sn.as_deref() {
            None | Some("") | Some("0000") => live
                .iter()
                .filter(|l| l.chrg_bchno == cancel.chrg_bchno)
                .map(|l| l.feedetl_sn.as_str())
                .collect(),
            Some(sn) => live
                .iter()
                .filter(|l| l.feedetl_sn == sn && l.chrg_bchno == cancel.chrg_bchno)
                .map(|l| l.feedetl_sn.as_str())
                .collect(),
        };
        if targets.is_empty() {
            return Err(ApiError::BadInput {
                infno: env.infno.clone(),
                reason: "no live fee line matches chrg_bchno / feedetl_sn".to_owned(),
            });
        }
        let rows = targets
            .iter()
            .map(|sn| Row {
                table: Table::FeeCancels,
                values: vec![
                    Cell::Text(cancel.mdtrt_id.clone()),
                    Cell::Text((*sn).to_owned()),
                    Cell::Text(env.msgid.clone()),
                ],
            })
            .collect();
        let gone: BTreeSet<String> = targets.iter().map(|sn| (*sn).to_owned()).collect();
        let (reply, written) = self
            .commit_rows_fresh(env, &cancel.psn_no, rows, out(&json!({}))?)
            .await?;
        if !written {
            self.cache.forget(&cancel.psn_no, &cancel.mdtrt_id, None);
        }
        self.cache.update_visit(&cancel.mdtrt_id, |state| {
            state.lines.retain(|l| !gone.contains(&l.feedetl_sn));
        });
        Ok(reply)
    }
}
