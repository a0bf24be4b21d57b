//! The treating region's monthly cross-region clearing detail for its hospitals, at the national
//! interface (medical-settlement.md §1.2, source hsa-his `InsureUnifiedRemoteBOImpl.java`):
//! - 3260 提取异地清分明细: the month's detail, `data: {trt_year, trt_month, startrow}`, at most
//!   `PAGE_ROWS_MAX` rows per call from `startrow` (1-based); each row `seqno, mdtrtarea,
//!   medins_no, certno, mdtrt_id, mdtrt_setl_time, setl_sn, fulamt_advpay_flag, medfee_sumamt,
//!   optins_pay_sumamt` (+ `insuplc_admdvs`, ours). A row per cross-region settlement of the
//!   calling institution settled in the month, and a negative row per cancellation or reversal
//!   made in the month (`setl_sn` of the cancellation), so a past month's detail never changes.
//!   `optins_pay_sumamt` (经办机构支付) = fund + personal account: what the insured region pays.
//! - 3261 异地清分结果确认: `data: {trt_year, trt_month, totalrow}` + `detail[]: {certno,
//!   mdtrt_id, mdtrt_setl_time, setl_sn, medfee_sumamt, optins_pay_sumamt, cnfm_flag}`; every
//!   line must be a row of the month's detail with the same amounts (else refused, nothing
//!   recorded); `cnfm_flag` 1 agrees, 0 disputes; recorded with the message.
//! - 3262 异地清分结果确认回退: `{trt_year, trt_month, otransid}` (flat, as hsa-his sends it, or
//!   under `data`): the month's confirmations are rolled back.
//!
//! What the reference does not give, and is this project's choice: the reply shapes of 3261 and
//! 3262 (`data: {trt_year, trt_month, totalrow, cnfm_cnt, dspt_cnt}` / `{…, rolled_back}`), the
//! meaning of `otransid` (kept, not interpreted), `fulamt_advpay_flag` (always "0": settled
//! directly, not advanced in full by the patient) and whether cancellations appear as negative
//! rows (they do here).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::medical::ids::{format_time, now_ms, record_id};
use crate::medical::rows::{Row, Table, Value as Cell};
use crate::medical::{Medical, Output, Prior};
use crate::nhsa::input::{self};
use crate::nhsa::money::{SignedYuan, WireNumber};
use crate::nhsa::{ApiError, Envelope};

use super::insured::internal;
use super::{Node, db};

/// Most rows of a 3260 page (hsa-his: "提取数据每次不能超过100条").
pub const PAGE_ROWS_MAX: usize = 100;
/// Most lines of one 3261.
pub const CONFIRM_LINES_MAX: usize = 10_000;
/// Most rows of one month's detail this node assembles.
pub const MONTH_ROWS_MAX: usize = 200_000;

/// One row of the month's detail.
#[derive(Debug, Clone, Serialize)]
pub struct DetailRow {
    /// 1-based position in the month's detail.
    pub seqno: usize,
    /// 就医地 (this node's division).
    pub mdtrtarea: String,
    /// The institution (`fixmedins_code`).
    pub medins_no: String,
    /// The patient's certificate number.
    pub certno: String,
    /// Visit id.
    pub mdtrt_id: String,
    /// Settlement (or cancellation) time, `yyyy-MM-dd HH:mm:ss` Beijing time.
    pub mdtrt_setl_time: String,
    /// The settlement's `setl_id`, or the cancellation's id.
    pub setl_sn: String,
    /// 全额垫付标志: "0", settled directly.
    pub fulamt_advpay_flag: &'static str,
    /// 医疗费总额 (negative on a cancellation row).
    pub medfee_sumamt: SignedYuan,
    /// 经办机构支付总额 = fund + personal account (negative on a cancellation row).
    pub optins_pay_sumamt: SignedYuan,
    /// 参保地 (ours: which region pays).
    pub insuplc_admdvs: String,
}

/// `yyyy-MM` from `trt_year` / `trt_month` given as numbers or strings.
fn month_of(year: &Value, month: &Value) -> Result<String, ApiError> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let bad = |field: &'static str, reason: &str| ApiError::BadField {
        field,
        reason: reason.to_owned(),
    };
    let year = text(year).ok_or_else(|| bad("trt_year", "yyyy"))?;
    let month = text(month).ok_or_else(|| bad("trt_month", "1..12"))?;
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("trt_year", "yyyy"));
    }
    let m: u32 = month.parse().map_err(|_| bad("trt_month", "1..12"))?;
    if !(1..=12).contains(&m) {
        return Err(bad("trt_month", "1..12"));
    }
    Ok(format!("{year}-{m:02}"))
}

#[derive(Debug, Deserialize)]
struct PageInput {
    trt_year: Value,
    trt_month: Value,
    #[serde(default)]
    startrow: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ConfirmData {
    trt_year: Value,
    trt_month: Value,
    totalrow: Value,
}

#[derive(Debug, Deserialize)]
struct ConfirmLine {
    mdtrt_id: String,
    setl_sn: String,
    medfee_sumamt: WireNumber,
    optins_pay_sumamt: WireNumber,
    cnfm_flag: Value,
}

#[derive(Debug, Deserialize)]
struct ConfirmInput {
    data: ConfirmData,
    detail: Vec<ConfirmLine>,
}

fn count_of(field: &'static str, v: &Value) -> Result<usize, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .ok_or(ApiError::BadField {
            field,
            reason: "a whole number".to_owned(),
        })
}

/// Signed fen of a wire amount (two decimals at most).
fn signed_fen(field: &'static str, n: &WireNumber) -> Result<i64, ApiError> {
    let bad = || ApiError::BadAmount {
        field: field.to_owned(),
        reason: "a decimal with at most 2 places".to_owned(),
    };
    let d = n.to_decimal().ok_or_else(bad)?;
    let fen = d * rust_decimal::Decimal::ONE_HUNDRED;
    if fen.fract() != rust_decimal::Decimal::ZERO {
        return Err(bad());
    }
    i64::try_from(fen).map_err(|_| bad())
}

/// The month's detail of `fixmedins` at this node (every row, in order).
async fn month_detail(
    node: &Node,
    med: &Medical,
    fixmedins: &str,
    month: &str,
) -> Result<Vec<DetailRow>, ApiError> {
    let rows = db::month_settlements(med.ledger(), fixmedins, month)
        .await
        .map_err(internal)?;
    let mut out: Vec<(String, String, DetailRow)> = Vec::new();
    for r in rows {
        let insured = crate::ids::Admdvs::from_code(r.insuplc_admdvs).map_err(internal)?;
        if node.serves(insured) {
            continue;
        }
        if out.len() >= MONTH_ROWS_MAX {
            return Err(ApiError::BadField {
                field: "trt_month",
                reason: "the month's detail is too long for this node".to_owned(),
            });
        }
        let person = med.load_person(&r.psn_no).await?;
        let optins = r
            .fund_fen
            .checked_add(r.acct_fen)
            .ok_or_else(|| internal("amount overflow"))?;
        let (time, sn, sign) = match &r.cancel_msgid {
            None => (r.setl_time.clone(), r.setl_id.clone(), 1),
            Some(msgid) => (
                format_time(r.cancel_ms),
                record_id(node.me, "cancel", msgid),
                -1,
            ),
        };
        out.push((
            time.clone(),
            sn.clone(),
            DetailRow {
                seqno: 0,
                mdtrtarea: node.me.to_string(),
                medins_no: fixmedins.to_owned(),
                certno: person.certno.clone(),
                mdtrt_id: r.mdtrt_id,
                mdtrt_setl_time: time,
                setl_sn: sn,
                fulamt_advpay_flag: "0",
                medfee_sumamt: SignedYuan(sign * r.medfee_fen),
                optins_pay_sumamt: SignedYuan(sign * optins),
                insuplc_admdvs: insured.to_string(),
            },
        ));
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(out
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, mut row))| {
            row.seqno = i + 1;
            row
        })
        .collect())
}

fn out(value: &Value) -> Result<Output, ApiError> {
    serde_json::value::RawValue::from_string(value.to_string()).map_err(internal)
}

/// 3260 / 3261 / 3262 at this region node.
pub(crate) async fn handle(node: &Node, med: &Medical, env: &Envelope) -> Result<Output, ApiError> {
    match env.infno.as_str() {
        "3260" => detail_page(node, med, env).await,
        "3261" => confirm(node, med, env).await,
        _ => rollback(med, env).await,
    }
}

async fn detail_page(node: &Node, med: &Medical, env: &Envelope) -> Result<Output, ApiError> {
    let data: input::Data<PageInput> = input::parse(&env.infno, &env.input)?;
    let month = month_of(&data.data.trt_year, &data.data.trt_month)?;
    let start = match &data.data.startrow {
        Some(v) => count_of("startrow", v)?.max(1),
        None => 1,
    };
    let detail = month_detail(node, med, &env.fixmedins_code, &month).await?;
    let page: Vec<&DetailRow> = detail.iter().skip(start - 1).take(PAGE_ROWS_MAX).collect();
    out(&json!({"data": page}))
}

async fn confirm(node: &Node, med: &Medical, env: &Envelope) -> Result<Output, ApiError> {
    let input: ConfirmInput = input::parse(&env.infno, &env.input)?;
    let month = month_of(&input.data.trt_year, &input.data.trt_month)?;
    let totalrow = count_of("totalrow", &input.data.totalrow)?;
    if input.detail.len() != totalrow || totalrow > CONFIRM_LINES_MAX {
        return Err(ApiError::BadField {
            field: "totalrow",
            reason: format!("must equal the number of detail lines (at most {CONFIRM_LINES_MAX})"),
        });
    }
    if let Prior::Answered(answer) = med.prior(env).await? {
        return answer;
    }
    let detail = month_detail(node, med, &env.fixmedins_code, &month).await?;
    let by_sn: std::collections::HashMap<&str, &DetailRow> =
        detail.iter().map(|r| (r.setl_sn.as_str(), r)).collect();
    let mut rows = Vec::with_capacity(input.detail.len());
    let (mut agreed, mut disputed) = (0usize, 0usize);
    let mut seen = std::collections::HashSet::new();
    for line in &input.detail {
        let refuse = |reason: &str| ApiError::BadField {
            field: "detail",
            reason: format!("setl_sn {}: {reason}", line.setl_sn),
        };
        let ours = by_sn
            .get(line.setl_sn.as_str())
            .ok_or_else(|| refuse("not in this month's detail of the institution"))?;
        if !seen.insert(line.setl_sn.as_str()) {
            return Err(refuse("listed twice"));
        }
        if ours.mdtrt_id != line.mdtrt_id
            || ours.medfee_sumamt.0 != signed_fen("medfee_sumamt", &line.medfee_sumamt)?
            || ours.optins_pay_sumamt.0 != signed_fen("optins_pay_sumamt", &line.optins_pay_sumamt)?
        {
            return Err(refuse("mdtrt_id or amounts differ from the detail (3260)"));
        }
        let flag = match &line.cnfm_flag {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        match flag.as_str() {
            "1" => agreed += 1,
            "0" => disputed += 1,
            _ => return Err(refuse("cnfm_flag must be 1 (agreed) or 0 (disputed)")),
        }
        rows.push(confirm_row(
            &env.fixmedins_code,
            &month,
            &line.setl_sn,
            &flag,
            env,
        ));
    }
    let (year, mon) = month.split_at(4);
    let output = out(&json!({"data": {
        "trt_year": year, "trt_month": &mon[1..], "totalrow": totalrow,
        "cnfm_cnt": agreed, "dspt_cnt": disputed}}))?;
    med.commit_rows(env, "", rows, output).await
}

fn confirm_row(fixmedins: &str, month: &str, setl_sn: &str, flag: &str, env: &Envelope) -> Row {
    Row {
        table: Table::RegionConfirms,
        values: vec![
            Cell::Text(fixmedins.to_owned()),
            Cell::Text(month.to_owned()),
            Cell::Text(setl_sn.to_owned()),
            Cell::Text(flag.to_owned()),
            Cell::Text(env.msgid.clone()),
            Cell::I64(now_ms()),
        ],
    }
}

async fn rollback(med: &Medical, env: &Envelope) -> Result<Output, ApiError> {
    let raw: Value = input::parse(&env.infno, &env.input)?;
    let fields = raw.get("data").unwrap_or(&raw);
    let input: PageInput =
        serde_json::from_value(fields.clone()).map_err(|_| ApiError::BadInput {
            infno: env.infno.clone(),
            reason: "trt_year and trt_month are required".to_owned(),
        })?;
    let month = month_of(&input.trt_year, &input.trt_month)?;
    let otransid = fields
        .get("otransid")
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    if let Prior::Answered(answer) = med.prior(env).await? {
        return answer;
    }
    let rolled_back = db::confirmed_lines(med.ledger(), &env.fixmedins_code, &month)
        .await
        .map_err(internal)?;
    let (year, mon) = month.split_at(4);
    let output = out(&json!({"data": {
        "trt_year": year, "trt_month": &mon[1..], "otransid": otransid,
        "rolled_back": rolled_back}}))?;
    let row = confirm_row(&env.fixmedins_code, &month, "", "X", env);
    med.commit_rows(env, "", vec![row], output).await
}
