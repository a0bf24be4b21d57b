//! Fee lines as the 2204/2301 upload sends them (`feedetail[]`) and their classification
//! (`fulamt_ownpay_amt`, `overlmt_amt`, `preselfpay_amt`, `inscp_scp_amt`; medical-settlement.md
//! §1.5). Amounts are magnitudes in [`Fen`]; a refund line carries `LineSign::Refund` (the wire's
//! negative `cnt` and `det_item_fee_sumamt`, §5.3: cnt −20, det −3520.0, init_feedetl_sn 6).

use rust_decimal::{Decimal, RoundingStrategy};

use super::{Catalogue, CatalogueError, ChrgitmLv, ListKind};
use crate::Fen;
use crate::policy::round::mul_ratio_half_up;

/// Longest `feedetl_sn` / `init_feedetl_sn` / `med_list_codg` accepted, bytes (the interface's
/// field is 30; slack for local extensions).
pub const FEEDETL_SN_LEN_MAX: usize = 50;

/// Largest `|cnt|` accepted on one line (units).
const CNT_MAX: i64 = 100_000_000;

/// Longest amount text `parse_amount_text` accepts, bytes.
const AMOUNT_TEXT_LEN_MAX: usize = 40;

/// Whether a line charges or refunds (the sign of the wire's `cnt` and `det_item_fee_sumamt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineSign {
    /// A normal line: positive `cnt` and amount.
    Charge,
    /// A refund line: negative `cnt` and amount, referencing the original by `init_feedetl_sn`.
    Refund,
}

/// One uploaded fee line (2204/2301 `feedetail[]`), checked by [`FeeLine::from_wire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeLine {
    /// 费用明细流水号 `feedetl_sn` (1..=`FEEDETL_SN_LEN_MAX` bytes).
    pub feedetl_sn: String,
    /// 原费用流水号 `init_feedetl_sn`: required on a refund line.
    pub init_feedetl_sn: Option<String>,
    /// 医疗目录编码 `med_list_codg` (national format, looked up in the treating region's catalogue).
    pub med_list_codg: String,
    /// 数量 `cnt` as sent (negative on a refund), `|cnt| <= 100 000 000`.
    pub cnt: Decimal,
    /// 单价 `pric` per unit (yuan at the edge, non-negative).
    pub pric: Fen,
    /// `|det_item_fee_sumamt|` (明细项目费用总额); the sign is in `sign`.
    pub det_item_fee_sumamt: Fen,
    /// Charge or refund.
    pub sign: LineSign,
}

/// A classified line (the 2204/2301 reply per `feedetl_sn`). Amounts are magnitudes with `sign`;
/// `det_item_fee_sumamt = fulamt_ownpay_amt + overlmt_amt + preselfpay_amt + inscp_scp_amt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifiedLine {
    /// The line's `feedetl_sn`.
    pub feedetl_sn: String,
    /// The original line of a refund.
    pub init_feedetl_sn: Option<String>,
    /// The code.
    pub med_list_codg: String,
    /// Charge or refund: every amount below counts negative in the bill for a refund.
    pub sign: LineSign,
    /// `|cnt| × pric` rounded half-up to the fen.
    pub det_item_fee_sumamt: Fen,
    /// 全自费 (丙类, or `selfpay_prop` = 1).
    pub fulamt_ownpay_amt: Fen,
    /// 超限价 part above `pric_uplmt_amt`.
    pub overlmt_amt: Fen,
    /// 先行自付 (乙类 × `selfpay_prop`).
    pub preselfpay_amt: Fen,
    /// 符合政策范围 (in scope).
    pub inscp_scp_amt: Fen,
    /// Class from the catalogue.
    pub chrgitm_lv: ChrgitmLv,
    /// Self-pay-first ratio from the catalogue.
    pub selfpay_prop: Decimal,
    /// Unit price cap from the catalogue.
    pub pric_uplmt_amt: Option<Fen>,
    /// Drug, service or consumable.
    pub list_type: ListKind,
}

impl FeeLine {
    /// Checks a wire line. `cnt` and `det_item_fee_sumamt` are signed yuan/units as sent; `pric`
    /// must not be negative. Errors: `BadField` (empty or long sn/code), `BadAmount` (negative
    /// price, sub-fen or too large amounts, `|cnt|` too large), `SignMismatch` (`cnt` and amount of
    /// different signs, a refund without `init_feedetl_sn`).
    pub fn from_wire(
        feedetl_sn: &str,
        init_feedetl_sn: Option<&str>,
        med_list_codg: &str,
        cnt: Decimal,
        pric: Decimal,
        det_item_fee_sumamt: Decimal,
    ) -> Result<FeeLine, CatalogueError> {
        check_field("feedetl_sn", feedetl_sn)?;
        check_field("med_list_codg", med_list_codg)?;
        let init = match init_feedetl_sn {
            Some(text) if !text.is_empty() => {
                check_field("init_feedetl_sn", text)?;
                Some(text.to_owned())
            }
            _ => None,
        };
        let bad = |field: &'static str, reason: String| CatalogueError::BadAmount {
            feedetl_sn: feedetl_sn.to_owned(),
            field,
            reason,
        };
        if cnt.abs() > Decimal::from(CNT_MAX) {
            return Err(bad("cnt", format!("magnitude above {CNT_MAX}")));
        }
        let pric = Fen::from_decimal(pric).map_err(|e| bad("pric", e.to_string()))?;
        let det = Fen::from_decimal(det_item_fee_sumamt.abs())
            .map_err(|e| bad("det_item_fee_sumamt", e.to_string()))?;
        let cnt_negative = cnt.is_sign_negative() && !cnt.is_zero();
        let det_negative = det_item_fee_sumamt.is_sign_negative() && !det.is_zero();
        let det_positive = !det_item_fee_sumamt.is_sign_negative() && !det.is_zero();
        let mismatch = |reason| CatalogueError::SignMismatch {
            feedetl_sn: feedetl_sn.to_owned(),
            reason,
        };
        if (cnt_negative && det_positive) || (!cnt_negative && det_negative) {
            return Err(mismatch("cnt and det_item_fee_sumamt have different signs"));
        }
        let sign = if cnt_negative {
            LineSign::Refund
        } else {
            LineSign::Charge
        };
        if sign == LineSign::Refund && init.is_none() {
            return Err(mismatch(
                "a negative (refund) line must reference init_feedetl_sn",
            ));
        }
        Ok(FeeLine {
            feedetl_sn: feedetl_sn.to_owned(),
            init_feedetl_sn: init,
            med_list_codg: med_list_codg.to_owned(),
            cnt,
            pric,
            det_item_fee_sumamt: det,
            sign,
        })
    }
}

/// Parses an amount or count sent as text (JSON strings such as `"12.50"`, `"-3"`): a plain decimal
/// with an optional leading minus, no exponent or spaces. Errors: `BadAmount` naming the line and
/// field ("is not a number").
pub fn parse_amount_text(
    feedetl_sn: &str,
    field: &'static str,
    text: &str,
) -> Result<Decimal, CatalogueError> {
    let bad = || CatalogueError::BadAmount {
        feedetl_sn: feedetl_sn.to_owned(),
        field,
        reason: format!("is not a number ({} bytes of text)", text.len()),
    };
    if text.is_empty() || text.len() > AMOUNT_TEXT_LEN_MAX {
        return Err(bad());
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty()
        && !digits.starts_with('.')
        && !digits.ends_with('.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !plain {
        return Err(bad());
    }
    Decimal::from_str_exact(text).map_err(|_| bad())
}

fn check_field(field: &'static str, text: &str) -> Result<(), CatalogueError> {
    if text.is_empty() || text.len() > FEEDETL_SN_LEN_MAX {
        return Err(CatalogueError::BadField {
            field,
            len_max: FEEDETL_SN_LEN_MAX,
        });
    }
    Ok(())
}

/// `|cnt| × unit` rounded half-up to the fen, or `None` on overflow.
fn line_amount(cnt: Decimal, unit: Fen) -> Option<i64> {
    let product = cnt.abs().checked_mul(Decimal::from(unit.fen()))?;
    let rounded = product.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded).ok()
}

fn signed_text(fen: i64, sign: LineSign) -> String {
    let amount = Decimal::new(fen, 2);
    match sign {
        LineSign::Charge => amount.to_string(),
        LineSign::Refund => (-amount).to_string(),
    }
}

pub(super) fn classify(
    catalogue: &Catalogue,
    line: &FeeLine,
) -> Result<ClassifiedLine, CatalogueError> {
    let entry = catalogue
        .get(&line.med_list_codg)
        .ok_or_else(|| CatalogueError::UnknownCode {
            feedetl_sn: line.feedetl_sn.clone(),
            code: line.med_list_codg.clone(),
            admdvs: catalogue.admdvs(),
        })?;
    let overflow = || CatalogueError::BadAmount {
        feedetl_sn: line.feedetl_sn.clone(),
        field: "det_item_fee_sumamt",
        reason: "cnt × pric is too large".to_owned(),
    };
    let det = line.det_item_fee_sumamt.fen();
    let expected = line_amount(line.cnt, line.pric).ok_or_else(overflow)?;
    if expected != det {
        return Err(CatalogueError::SumMismatch {
            feedetl_sn: line.feedetl_sn.clone(),
            sent: signed_text(det, line.sign),
            expected: signed_text(expected, line.sign),
        });
    }
    let (mut fulamt, mut overlmt, mut preselfpay) = (0_i64, 0_i64, 0_i64);
    if entry.chrgitm_lv == ChrgitmLv::Class3 || entry.selfpay_prop >= Decimal::ONE {
        fulamt = det;
    } else {
        if let Some(cap) = entry.pric_uplmt_amt
            && line.pric > cap
        {
            let allowed = line_amount(line.cnt, cap).ok_or_else(overflow)?;
            // round is monotonic and cap < pric, so allowed <= det.
            overlmt = det.saturating_sub(allowed).max(0);
        }
        if entry.chrgitm_lv == ChrgitmLv::Class2 {
            let allowed = det - overlmt;
            preselfpay = mul_ratio_half_up(allowed, entry.selfpay_prop).ok_or_else(overflow)?;
        }
    }
    let inscp = det - fulamt - overlmt - preselfpay;
    let fen = |v: i64| Fen::from_fen(v).map_err(|_| overflow());
    Ok(ClassifiedLine {
        feedetl_sn: line.feedetl_sn.clone(),
        init_feedetl_sn: line.init_feedetl_sn.clone(),
        med_list_codg: line.med_list_codg.clone(),
        sign: line.sign,
        det_item_fee_sumamt: line.det_item_fee_sumamt,
        fulamt_ownpay_amt: fen(fulamt)?,
        overlmt_amt: fen(overlmt)?,
        preselfpay_amt: fen(preselfpay)?,
        inscp_scp_amt: fen(inscp)?,
        chrgitm_lv: entry.chrgitm_lv,
        selfpay_prop: entry.selfpay_prop,
        pric_uplmt_amt: entry.pric_uplmt_amt,
        list_type: entry.list_type,
    })
}
