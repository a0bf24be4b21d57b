//! Money messages: 2206/2303 pre-settlement (nothing committed), 2207/2304 settlement,
//! 2208/2305 cancellation and 2601 reversal by original msgid. Each committing message is one
//! ledger posting with its rows attached (see the module docs of `medical` for why).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::rows::{Attachment, Row, Table, Value as Cell};
use super::store::{SettlementKey, StoredSettlement};
use super::visit::{Kind, StoredLine};
use super::{
    Medical, Output, Prior, StoredReply, accounts, ids, internal, ledger_error, message_row, out,
    person,
};
use crate::catalogue::{ChrgitmLv, ClassifiedLine, LineSign, ListKind};
use crate::fen::Fen;
use crate::ids::{Admdvs, FundPayType};
use crate::nhsa::input::{self, fen_field};
use crate::nhsa::money::SignedYuan;
use crate::nhsa::output::{SetlContext, SettleOutput};
use crate::nhsa::{ApiError, Envelope};
use crate::policy::{
    AdmissionOrdinal, CrossRegion, Insutype, PsnType, Setting, SettingAccumulators, SplitInput,
    YearAccumulators, compute_split, jingjinji_deemed_filed,
};
use crate::posting::{Leg, Link, Posting, Side};

/// Accumulator name counting a person's inpatient settlements of the year (admission ordinal).
pub(crate) const ADMISSIONS: &str = "inpatient.admissions";

fn setting_of(kind: Kind) -> Setting {
    match kind {
        Kind::Outpatient => Setting::Outpatient,
        Kind::Inpatient => Setting::Inpatient,
    }
}

/// The named fields of one setting's accumulators, in fen.
fn fields(acc: &SettingAccumulators) -> [(&'static str, Fen); 6] {
    [
        ("deductible_used", acc.deductible_used),
        ("inscp_sum", acc.inscp_sum),
        ("hifp_paid", acc.hifp_paid),
        ("hifob_paid", acc.hifob_paid),
        ("hifmi_paid", acc.hifmi_paid),
        ("psn_inscp_share_sum", acc.psn_inscp_share_sum),
    ]
}

/// Accumulators as named rows: `outpatient.deductible_used` → fen, zero fields left out.
pub(crate) fn accumulator_names(acc: &YearAccumulators) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (prefix, setting) in [
        ("outpatient", &acc.outpatient),
        ("inpatient", &acc.inpatient),
    ] {
        for (name, value) in fields(setting) {
            if !value.is_zero() {
                out.push((format!("{prefix}.{name}"), value.fen()));
            }
        }
    }
    out
}

/// Accumulators from named sums. Errors: a negative or overflowing sum (drift: a bug).
pub(crate) fn accumulators_of(sums: &BTreeMap<String, i64>) -> Result<YearAccumulators, ApiError> {
    let get = |name: String| -> Result<Fen, ApiError> {
        let value = sums.get(&name).copied().unwrap_or(0);
        Fen::from_fen(value).map_err(|_| internal(format!("accumulator {name} is {value}")))
    };
    let setting = |prefix: &str| -> Result<SettingAccumulators, ApiError> {
        Ok(SettingAccumulators {
            deductible_used: get(format!("{prefix}.deductible_used"))?,
            inscp_sum: get(format!("{prefix}.inscp_sum"))?,
            hifp_paid: get(format!("{prefix}.hifp_paid"))?,
            hifob_paid: get(format!("{prefix}.hifob_paid"))?,
            hifmi_paid: get(format!("{prefix}.hifmi_paid"))?,
            psn_inscp_share_sum: get(format!("{prefix}.psn_inscp_share_sum"))?,
        })
    };
    Ok(YearAccumulators {
        outpatient: setting("outpatient")?,
        inpatient: setting("inpatient")?,
    })
}

pub(crate) fn classified_of(
    stored: &super::store::StoredFeeLine,
) -> Result<ClassifiedLine, ApiError> {
    let line: StoredLine = serde_json::from_str(&stored.line).map_err(internal)?;
    let corrupt = || internal("fee_lines.line is not a line this build wrote");
    let magnitude = |v: i64| Fen::from_fen(v.abs()).map_err(|_| corrupt());
    Ok(ClassifiedLine {
        feedetl_sn: stored.feedetl_sn.clone(),
        init_feedetl_sn: line.init_feedetl_sn,
        med_list_codg: line.med_list_codg,
        sign: if line.refund {
            LineSign::Refund
        } else {
            LineSign::Charge
        },
        det_item_fee_sumamt: magnitude(stored.det_fen)?,
        fulamt_ownpay_amt: magnitude(stored.fulamt_fen)?,
        overlmt_amt: magnitude(stored.overlmt_fen)?,
        preselfpay_amt: magnitude(stored.preselfpay_fen)?,
        inscp_scp_amt: magnitude(stored.inscp_fen)?,
        chrgitm_lv: ChrgitmLv::parse(&line.chrgitm_lv).ok_or_else(corrupt)?,
        selfpay_prop: line.selfpay_prop.parse().map_err(|_| corrupt())?,
        pric_uplmt_amt: line.pric_uplmt_fen.map(magnitude).transpose()?,
        list_type: ListKind::parse(&line.list_type).ok_or_else(corrupt)?,
    })
}

/// Checks an optional amount HIS sent against the computed one.
fn check_sent(field: &'static str, sent: Option<Fen>, expected_fen: i64) -> Result<(), ApiError> {
    match sent {
        Some(sent) if sent.fen() != expected_fen => Err(ApiError::AmountMismatch {
            field,
            sent: sent.to_string(),
            expected: rust_decimal::Decimal::new(expected_fen, 2).to_string(),
        }),
        _ => Ok(()),
    }
}

impl Medical {
    /// 2206 / 2207 / 2303 / 2304.
    ///
    /// A committing message's msgid is not looked up before the work (that was one database
    /// round trip per settlement): the writer decides it inside the serialised write (its record
    /// rides with the posting) and answers `MessageRecorded` if it is already there, and any
    /// refusal is checked against a stored outcome before it is returned; either way a repeat
    /// gets the first outcome. Region nodes still look first (a cross-region bill leaves the
    /// process before anything is written here).
    pub(crate) async fn settle(
        &self,
        env: &Envelope,
        kind: Kind,
        commit: bool,
    ) -> Result<Output, ApiError> {
        if !commit {
            return self.settle_once(env, kind, false).await;
        }
        match self.settle_once(env, kind, true).await {
            Ok(output) => Ok(output),
            Err(error) => self.stored_answer_or(env, error).await,
        }
    }

    async fn settle_once(
        &self,
        env: &Envelope,
        kind: Kind,
        commit: bool,
    ) -> Result<Output, ApiError> {
        let data: input::Data<input::SettleRequest> = input::parse(&env.infno, &env.input)?;
        let req = data.data;
        let medfee_sent = fen_field("medfee_sumamt", &req.medfee_sumamt)?;
        let optional = |field: &str, n: &Option<crate::nhsa::WireNumber>| {
            n.as_ref().map(|n| fen_field(field, n)).transpose()
        };
        let fulamt_sent = optional("fulamt_ownpay_amt", &req.fulamt_ownpay_amt)?;
        let overlmt_sent = optional("overlmt_selfpay", &req.overlmt_selfpay)?;
        let preselfpay_sent = optional("preselfpay_amt", &req.preselfpay_amt)?;
        let inscp_sent = optional("inscp_scp_amt", &req.inscp_scp_amt)?;
        let acct_used_flag = match req.acct_used_flag.as_str() {
            "0" => false,
            "1" => true,
            _ => {
                return Err(ApiError::BadField {
                    field: "acct_used_flag",
                    reason: "must be \"0\" or \"1\"".to_owned(),
                });
            }
        };
        if req.mid_setl_flag.as_deref() == Some("1") {
            return Err(ApiError::BadField {
                field: "mid_setl_flag",
                reason: "mid-stay settlement is not supported; settle at discharge".to_owned(),
            });
        }
        let _guard = self.locks.lock(&req.psn_no).await?;
        if commit
            && self.region.get().is_some()
            && let Prior::Answered(answer) = self.prior(env).await?
        {
            return answer;
        }
        let person = self.load_person(&req.psn_no).await?;
        if person.insutype != req.insutype {
            return Err(ApiError::InsutypeNotFound(req.insutype.clone()));
        }
        let state = self.live_visit(&req.mdtrt_id, &req.psn_no, kind).await?;
        if let Some(setl_id) = state.live_settlement {
            return Err(ApiError::AlreadySettled(setl_id));
        }
        let visit = state.visit;
        let stored = state.lines;
        if stored.is_empty() {
            return Err(ApiError::NothingToSettle);
        }
        let sum = |f: fn(&super::store::StoredFeeLine) -> i64| stored.iter().map(f).sum::<i64>();
        let total = sum(|l| l.det_fen);
        check_sent("medfee_sumamt", Some(medfee_sent), total)?;
        check_sent("fulamt_ownpay_amt", fulamt_sent, sum(|l| l.fulamt_fen))?;
        check_sent("overlmt_selfpay", overlmt_sent, sum(|l| l.overlmt_fen))?;
        check_sent("preselfpay_amt", preselfpay_sent, sum(|l| l.preselfpay_fen))?;
        check_sent("inscp_scp_amt", inscp_sent, sum(|l| l.inscp_fen))?;
        if total <= 0 {
            return Err(ApiError::NothingToSettle);
        }
        let lines = stored
            .iter()
            .map(classified_of)
            .collect::<Result<Vec<_>, _>>()?;

        let insured = visit.insured().map_err(internal)?;
        let treating = env.mdtrtarea_admvs;
        if let Some(node) = self.region.get().filter(|node| !node.serves(insured)) {
            let bill = crate::region::treating::Bill {
                env,
                psn_no: &req.psn_no,
                mdtrt_id: &req.mdtrt_id,
                insutype: &req.insutype,
                med_type: req
                    .med_type
                    .clone()
                    .unwrap_or_else(|| visit.med_type.clone()),
                inpatient: kind == Kind::Inpatient,
                commit,
                acct_used_flag,
                fixmedins_code: &visit.fixmedins_code,
                hosp_lv: self
                    .refdata
                    .institutions
                    .get(&visit.fixmedins_code)
                    .copied(),
                lines: &stored,
                insured,
            };
            return crate::region::treating::settle(node, self, bill).await;
        }
        let policy = self
            .refdata
            .policies
            .region(insured)
            .map_err(|e| ApiError::MissingReferenceData(e.to_string()))?;
        let hosp_lv = *self
            .refdata
            .institutions
            .get(&visit.fixmedins_code)
            .ok_or_else(|| {
                ApiError::MissingReferenceData(format!(
                    "institution {} is not a registered designated institution",
                    visit.fixmedins_code
                ))
            })?;
        let now = ids::now_ms();
        let setl_time = ids::format_time(now);
        let setl_date = ids::format_date(now);
        let year = ids::business_year(now);
        let personal = self.personal_account(&person).await?;
        let (sums, balance_fen) = self.money_state(&req.psn_no, year, personal).await?;
        let accumulators = accumulators_of(&sums)?;
        let acct_balance = Fen::from_fen(balance_fen.max(0)).map_err(internal)?;
        let med_type = req
            .med_type
            .clone()
            .unwrap_or_else(|| visit.med_type.clone());
        let input = SplitInput {
            insutype: Insutype::parse(&req.insutype)
                .map_err(|e| ApiError::Policy(e.to_string()))?,
            psn_type: PsnType::parse(&person.psn_type)
                .map_err(|e| ApiError::Policy(e.to_string()))?,
            age_years: person.age_on(&setl_date),
            setting: setting_of(kind),
            hosp_lv,
            admission_ordinal: if sums.get(ADMISSIONS).copied().unwrap_or(0) > 0 {
                AdmissionOrdinal::SecondOrLater
            } else {
                AdmissionOrdinal::First
            },
            lines,
            accumulators,
            acct_used_flag,
            acct_balance,
            cross_region: (insured != treating).then(|| CrossRegion {
                filed: jingjinji_deemed_filed(insured, treating),
                emergency: med_type == "13",
            }),
        };
        let split = compute_split(policy, &input).map_err(|e| ApiError::Policy(e.to_string()))?;
        split.check_identities().map_err(internal)?;
        if split.acct_pay > acct_balance {
            return Err(ApiError::InsufficientBalance);
        }
        let setl_id = if commit {
            ids::record_id(insured, "setl", &env.msgid)
        } else {
            String::new()
        };
        let output = SettleOutput::new(
            &split,
            SetlContext {
                setl_id: setl_id.clone(),
                mdtrt_id: req.mdtrt_id.clone(),
                psn_no: req.psn_no.clone(),
                insutype: req.insutype.clone(),
                psn_type: person.psn_type.clone(),
                med_type,
                setl_time,
                medins_setl_id: env.msgid.clone(),
                clr_optins: insured.to_string(),
            },
            kind == Kind::Inpatient,
        );
        let output_json = out(&output)?;
        if !commit {
            return Ok(output_json);
        }

        // The posting: funds, personal account and cash pay the institution's receivable.
        let mut legs = self.insured_debit_legs(insured, personal, &split).await?;
        if !split.psn_cash_pay.is_zero() {
            let id = self
                .account(accounts::cash(insured).map_err(internal)?)
                .await?;
            legs.push(Leg {
                account: id,
                side: Side::Debit,
                amount: split.psn_cash_pay,
            });
        }
        let receivable = split
            .fund_pay_sumamt
            .checked_add(split.psn_part_amt)
            .map_err(internal)?;
        let inst = accounts::institution(insured, &visit.fixmedins_code).map_err(|_| {
            ApiError::BadField {
                field: "fixmedins_code",
                reason: "must be 1..=32 letters, digits, '-' or '_'".to_owned(),
            }
        })?;
        let inst = self.account(inst).await?;
        legs.push(Leg {
            account: inst,
            side: Side::Credit,
            amount: receivable,
        });
        let posting_id = ids::posting_id_of(&env.msgid);
        let posting = Posting {
            id: posting_id,
            admdvs: insured,
            legs,
            link: None,
        };

        let mut if_posted = vec![Row {
            table: Table::Settlements,
            values: vec![
                Cell::Text(setl_id.clone()),
                Cell::Text(env.msgid.clone()),
                Cell::Bytes(posting_id.to_bytes().to_vec()),
                Cell::Text(req.mdtrt_id.clone()),
                Cell::Text(req.psn_no.clone()),
                Cell::Text(req.insutype.clone()),
                Cell::I64(i64::from(insured.code())),
                Cell::Text(visit.fixmedins_code.clone()),
                Cell::Text(setl_date),
                Cell::I64(split.medfee_sumamt.fen()),
                Cell::I64(split.fund_pay_sumamt.fen()),
                Cell::I64(split.acct_pay.fen()),
                Cell::I64(split.psn_cash_pay.fen()),
                Cell::Text(output_json.get().to_owned()),
            ],
        }];
        let mut deltas = accumulator_names(&split.accumulators_delta);
        if kind == Kind::Inpatient {
            deltas.push((ADMISSIONS.to_owned(), 1));
        }
        if_posted.extend(changes_row(&req.psn_no, year, &setl_id, 1, &deltas)?);
        let attachment = Attachment {
            always: vec![message_row(
                env,
                "L",
                Some(posting_id),
                &req.psn_no,
                StoredReply::SettlementOutput,
            )],
            if_posted,
        };
        if let Err(error) = self
            .ledger
            .post_attached(posting, Arc::new(attachment))
            .await
        {
            // Refused or unknown: whatever the database holds now, reload it next time.
            self.cache
                .forget(&req.psn_no, &req.mdtrt_id, Some(personal));
            return Err(ledger_error(error));
        }
        self.cache.update_visit(&req.mdtrt_id, |state| {
            state.live_settlement = Some(setl_id.clone());
        });
        self.cache.add_accumulators(&req.psn_no, year, &deltas);
        self.cache.add_balance(personal, -split.acct_pay.fen());
        Ok(output_json)
    }

    /// 2208 / 2305.
    pub(crate) async fn cancel_settlement(
        &self,
        env: &Envelope,
        kind: Kind,
    ) -> Result<Output, ApiError> {
        let data: input::Data<input::SettleCancel> = input::parse(&env.infno, &env.input)?;
        let cancel = data.data;
        let _guard = self.locks.lock(&cancel.psn_no).await?;
        if let Prior::Answered(answer) = self.prior(env).await? {
            return answer;
        }
        let settlement = self
            .ledger
            .store()
            .settlements(SettlementKey::SetlId(&cancel.setl_id))
            .await
            .map_err(internal)?
            .into_iter()
            .find(|s| s.psn_no == cancel.psn_no && s.mdtrt_id == cancel.mdtrt_id)
            .ok_or(ApiError::SettlementNotFound)?;
        self.live_visit(&settlement.mdtrt_id, &cancel.psn_no, kind)
            .await?;
        if settlement.cancelled {
            return Err(ApiError::AlreadyCancelled);
        }
        self.reverse_settlement(env, &settlement, "C").await
    }

    /// 2601: reverse the message `omsgid` (a settlement), or void it if it never arrived.
    pub(crate) async fn reverse(&self, env: &Envelope) -> Result<Output, ApiError> {
        let data: input::Data<input::Reversal> = input::parse(&env.infno, &env.input)?;
        let rev = data.data;
        if rev.omsgid.is_empty() || rev.omsgid.len() > crate::nhsa::MSGID_LEN_MAX {
            return Err(ApiError::BadField {
                field: "omsgid",
                reason: "must be 1..=30 characters".into(),
            });
        }
        if rev.oinfno.len() != 4 || !rev.oinfno.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::BadField {
                field: "oinfno",
                reason: "must be 4 digits".into(),
            });
        }
        if rev.omsgid == env.msgid {
            return Err(ApiError::BadField {
                field: "omsgid",
                reason: "a message cannot reverse itself".into(),
            });
        }
        let _guard = self.locks.lock(&rev.psn_no).await?;
        if let Prior::Answered(answer) = self.prior(env).await? {
            return answer;
        }
        let result = |rslt: &str| {
            out(&json!({"data": {"omsgid": rev.omsgid, "oinfno": rev.oinfno, "rslt": rslt}}))
        };
        let original = self
            .ledger
            .store()
            .message(&rev.omsgid)
            .await
            .map_err(internal)?;
        let Some(original) = original else {
            // Never arrived: void it, so a late arrival is refused (and settles nothing).
            let void = Row {
                table: Table::Messages,
                values: vec![
                    Cell::Text(rev.omsgid.clone()),
                    Cell::Text(rev.oinfno.clone()),
                    Cell::Bytes(vec![0; 32]),
                    Cell::Text("V".to_owned()),
                    Cell::NullBytes,
                    Cell::Text(rev.psn_no.clone()),
                    Cell::Text("{}".to_owned()),
                    Cell::I64(ids::now_ms()),
                ],
            };
            return self
                .commit_rows(env, &rev.psn_no, vec![void], result("voided")?)
                .await;
        };
        if original.status == "V" {
            return self
                .commit_rows(env, &rev.psn_no, Vec::new(), result("voided")?)
                .await;
        }
        if !matches!(original.infno.as_str(), "2207" | "2304") || original.infno != rev.oinfno {
            return Err(ApiError::BadField {
                field: "oinfno",
                reason: "2601 reverses a 2207/2304 settlement named by its msgid and infno".into(),
            });
        }
        let settlement = self
            .ledger
            .store()
            .settlements(SettlementKey::Msgid(&rev.omsgid))
            .await
            .map_err(internal)?
            .into_iter()
            .next();
        match settlement {
            // The original was refused by the ledger: nothing was paid.
            None => {
                self.commit_rows(env, &rev.psn_no, Vec::new(), result("nothing_settled")?)
                    .await
            }
            Some(s) if s.psn_no != rev.psn_no => Err(ApiError::SettlementNotFound),
            Some(s) if s.cancelled => {
                self.commit_rows(env, &rev.psn_no, Vec::new(), result("already_reversed")?)
                    .await
            }
            Some(s) => self.reverse_settlement(env, &s, "R").await,
        }
    }

    /// Posts the mirror of a settlement's posting, linked to it, with the cancellation row and
    /// its accumulator changes undone (a sign -1 row). `kind` 'C' cancellation, 'R' reversal.
    async fn reverse_settlement(
        &self,
        env: &Envelope,
        settlement: &StoredSettlement,
        kind: &str,
    ) -> Result<Output, ApiError> {
        let original = self
            .ledger
            .posting(settlement.posting_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("settlement without posting"))?;
        let legs: Vec<Leg> = original
            .legs
            .iter()
            .map(|leg| Leg {
                account: leg.account,
                side: leg.side.opposite(),
                amount: leg.amount,
            })
            .collect();
        let posting_id = ids::posting_id_of(&env.msgid);
        let posting = Posting {
            id: posting_id,
            admdvs: original.admdvs,
            legs,
            link: Some(Link::Reverses(settlement.posting_id)),
        };
        let stored: SettleOutput = serde_json::from_str(&settlement.setlinfo).map_err(internal)?;
        let info = &stored.setlinfo;
        let now = ids::now_ms();
        let neg = |y: crate::nhsa::Yuan| SignedYuan(-y.0.fen());
        #[derive(Serialize)]
        struct CancelInfo<'a> {
            setl_id: String,
            init_setl_id: &'a str,
            mdtrt_id: &'a str,
            psn_no: &'a str,
            setl_time: String,
            medfee_sumamt: SignedYuan,
            fund_pay_sumamt: SignedYuan,
            hifp_pay: SignedYuan,
            psn_part_amt: SignedYuan,
            acct_pay: SignedYuan,
            psn_cash_pay: SignedYuan,
        }
        #[derive(Serialize)]
        struct CancelDetail<'a> {
            fund_pay_type: &'a str,
            fund_payamt: SignedYuan,
        }
        #[derive(Serialize)]
        struct CancelReply<'a> {
            setlinfo: CancelInfo<'a>,
            setldetail: Vec<CancelDetail<'a>>,
        }
        let output = match kind {
            "C" => out(&CancelReply {
                setlinfo: CancelInfo {
                    setl_id: ids::record_id(original.admdvs, "cancel", &env.msgid),
                    init_setl_id: &settlement.setl_id,
                    mdtrt_id: &settlement.mdtrt_id,
                    psn_no: &settlement.psn_no,
                    setl_time: ids::format_time(now),
                    medfee_sumamt: neg(info.medfee_sumamt),
                    fund_pay_sumamt: neg(info.fund_pay_sumamt),
                    hifp_pay: neg(info.hifp_pay),
                    psn_part_amt: neg(info.psn_part_amt),
                    acct_pay: neg(info.acct_pay),
                    psn_cash_pay: neg(info.psn_cash_pay),
                },
                setldetail: stored
                    .setldetail
                    .iter()
                    .map(|d| CancelDetail {
                        fund_pay_type: &d.fund_pay_type,
                        fund_payamt: neg(d.fund_payamt),
                    })
                    .collect(),
            })?,
            _ => out(
                &json!({"data": {"omsgid": settlement.msgid, "rslt": "reversed",
                                 "setl_id": settlement.setl_id}}),
            )?,
        };
        let mut if_posted = vec![Row {
            table: Table::SettlementCancels,
            values: vec![
                Cell::Text(settlement.setl_id.clone()),
                Cell::Text(env.msgid.clone()),
                Cell::Bytes(posting_id.to_bytes().to_vec()),
                Cell::Text(kind.to_owned()),
                Cell::Text(ids::format_date(now)),
            ],
        }];
        let changes = self
            .ledger
            .store()
            .settlement_changes(&settlement.psn_no, &settlement.setl_id)
            .await
            .map_err(internal)?;
        for (year, deltas) in changes {
            if_posted.extend(changes_row(
                &settlement.psn_no,
                year,
                &settlement.setl_id,
                -1,
                &deltas,
            )?);
        }
        let _region_window = match self.region.get() {
            Some(node) => {
                crate::region::treating::on_reverse(node, self, settlement, &mut if_posted).await?
            }
            None => None,
        };
        let attachment = Attachment {
            always: vec![message_row(
                env,
                "L",
                Some(posting_id),
                &settlement.psn_no,
                StoredReply::Output(&output),
            )],
            if_posted,
        };
        let accounts: Vec<crate::AccountId> = original.legs.iter().map(|leg| leg.account).collect();
        let posted = self
            .ledger
            .post_attached(posting, Arc::new(attachment))
            .await;
        // Rare path: drop the cached state it changed (or may have changed) and reload it.
        self.cache
            .forget(&settlement.psn_no, &settlement.mdtrt_id, None);
        self.cache.forget_balances(accounts);
        match posted {
            Ok(_) => Ok(output),
            // A repeat (this msgid committed by an earlier attempt whose answer was lost, e.g. a
            // batch retried after its connection dropped at commit) gets the stored outcome.
            Err(error) => self.stored_answer_or(env, ledger_error(error)).await,
        }
    }

    /// The insured region's side of a split: each fund's payment and the personal account's,
    /// as debit legs (zero amounts left out). Shared by the local settlement and the insured
    /// node of a cross-region one, so that both book a split the same way.
    pub(crate) async fn insured_debit_legs(
        &self,
        insured: crate::Admdvs,
        personal: crate::AccountId,
        split: &crate::policy::Split,
    ) -> Result<Vec<Leg>, ApiError> {
        let mut legs = Vec::with_capacity(split.setldetail.len() + 3);
        for detail in split.setldetail.iter().filter(|d| !d.fund_payamt.is_zero()) {
            let id = self
                .account(accounts::fund(insured, detail.fund_pay_type))
                .await?;
            legs.push(Leg {
                account: id,
                side: Side::Debit,
                amount: detail.fund_payamt,
            });
        }
        if !split.acct_pay.is_zero() {
            legs.push(Leg {
                account: personal,
                side: Side::Debit,
                amount: split.acct_pay,
            });
        }
        Ok(legs)
    }

    pub(crate) async fn account(
        &self,
        spec: crate::AccountSpec,
    ) -> Result<crate::AccountId, ApiError> {
        self.accounts.id(&self.ledger, spec).await.map_err(internal)
    }

    /// The person's personal account (created empty if the import did not).
    pub(crate) async fn personal_account(
        &self,
        person: &person::PersonRecord,
    ) -> Result<crate::AccountId, ApiError> {
        let region = person.region().map_err(internal)?;
        let code = person::personal_account_code(&person.psn_no).map_err(internal)?;
        self.account(crate::AccountSpec::personal(region, code))
            .await
    }
}

/// The `accumulator_changes` row of settlement `setl_id` (`sign` 1) or of its cancellation
/// (`sign` -1): `deltas` are the settlement's changes (accumulator name, fen), stored times
/// `sign` as one JSON object `{"name": fen, ...}` (a repeated name is summed), so a cancellation
/// row undoes its settlement's in the sums. `None` when there is no change to record.
pub(crate) fn changes_row(
    psn_no: &str,
    year: i64,
    setl_id: &str,
    sign: i64,
    deltas: &[(String, i64)],
) -> Result<Option<Row>, ApiError> {
    if deltas.is_empty() {
        return Ok(None);
    }
    let mut object: BTreeMap<&str, i64> = BTreeMap::new();
    for (name, delta) in deltas {
        let sum = object.entry(name.as_str()).or_default();
        *sum = delta
            .checked_mul(sign)
            .and_then(|signed| sum.checked_add(signed))
            .ok_or_else(|| internal("accumulator change overflows"))?;
    }
    Ok(Some(Row {
        table: Table::AccumulatorChanges,
        values: vec![
            Cell::Text(psn_no.to_owned()),
            Cell::I64(year),
            Cell::Text(setl_id.to_owned()),
            Cell::I64(sign),
            Cell::Text(serde_json::to_string(&object).map_err(internal)?),
        ],
    }))
}

/// The region's personal-account fund (credits opening balances).
pub(crate) fn personal_fund(region: Admdvs) -> crate::AccountSpec {
    accounts::fund(region, FundPayType::EMPLOYEE_PERSONAL_ACCOUNT)
}
