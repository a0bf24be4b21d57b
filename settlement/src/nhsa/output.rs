//! Reply payloads (`output`) with the interface's field names: 2204/2301 per-line classification
//! (§1.5), 2206/2207/2303/2304 `setlinfo` + `setldetail[]` (§1.4), and the small replies.
//! Built from domain values (`ClassifiedLine`, `Split`) at the edge.

use serde::{Deserialize, Serialize};

use super::money::{Ratio, SignedYuan, Yuan};
use crate::catalogue::{ClassifiedLine, LineSign};
use crate::policy::{SetlDetail, Split};

/// One 2204/2301 `result[]` row (§1.5).
#[derive(Debug, Clone, Serialize)]
pub struct FeeResult {
    /// The line.
    pub feedetl_sn: String,
    /// Line total (negative on a refund).
    pub det_item_fee_sumamt: SignedYuan,
    /// Unit price cap, if the catalogue has one.
    pub pric_uplmt_amt: Option<Yuan>,
    /// Self-pay-first ratio.
    pub selfpay_prop: Ratio,
    /// 全自费.
    pub fulamt_ownpay_amt: SignedYuan,
    /// 超限价.
    pub overlmt_amt: SignedYuan,
    /// 先行自付.
    pub preselfpay_amt: SignedYuan,
    /// 符合范围.
    pub inscp_scp_amt: SignedYuan,
    /// 01 甲 / 02 乙 / 03 丙.
    pub chrgitm_lv: &'static str,
}

fn signed(fen: crate::Fen, sign: LineSign) -> SignedYuan {
    match sign {
        LineSign::Charge => SignedYuan(fen.fen()),
        LineSign::Refund => SignedYuan(-fen.fen()),
    }
}

impl From<&ClassifiedLine> for FeeResult {
    fn from(line: &ClassifiedLine) -> FeeResult {
        FeeResult {
            feedetl_sn: line.feedetl_sn.clone(),
            det_item_fee_sumamt: signed(line.det_item_fee_sumamt, line.sign),
            pric_uplmt_amt: line.pric_uplmt_amt.map(Yuan),
            selfpay_prop: Ratio(line.selfpay_prop),
            fulamt_ownpay_amt: signed(line.fulamt_ownpay_amt, line.sign),
            overlmt_amt: signed(line.overlmt_amt, line.sign),
            preselfpay_amt: signed(line.preselfpay_amt, line.sign),
            inscp_scp_amt: signed(line.inscp_scp_amt, line.sign),
            chrgitm_lv: line.chrgitm_lv.code(),
        }
    }
}

/// Context of a settlement reply that the split does not carry.
#[derive(Debug, Clone)]
pub struct SetlContext {
    /// Settlement id (empty for 2206/2303 pre-settlement).
    pub setl_id: String,
    /// Visit.
    pub mdtrt_id: String,
    /// Person.
    pub psn_no: String,
    /// 310/390.
    pub insutype: String,
    /// 11/21.
    pub psn_type: String,
    /// Med type.
    pub med_type: String,
    /// `yyyy-MM-dd HH:mm:ss`.
    pub setl_time: String,
    /// The sender's msgid.
    pub medins_setl_id: String,
    /// Clearing agency (参保地 division).
    pub clr_optins: String,
}

/// 2207/2304 `setlinfo` (§1.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SetlInfo {
    pub setl_id: String,
    pub mdtrt_id: String,
    pub psn_no: String,
    pub insutype: String,
    pub psn_type: String,
    pub med_type: String,
    pub setl_time: String,
    pub medfee_sumamt: Yuan,
    pub fulamt_ownpay_amt: Yuan,
    pub overlmt_selfpay: Yuan,
    pub preselfpay_amt: Yuan,
    pub inscp_scp_amt: Yuan,
    pub act_pay_dedc: Yuan,
    pub hifp_pay: Yuan,
    pub pool_prop_selfpay: String,
    pub cvlserv_pay: Yuan,
    pub hifes_pay: Yuan,
    pub hifmi_pay: Yuan,
    pub hifob_pay: Yuan,
    pub hifdm_pay: Yuan,
    pub maf_pay: Yuan,
    pub oth_pay: Yuan,
    pub fund_pay_sumamt: Yuan,
    pub psn_part_amt: Yuan,
    pub acct_pay: Yuan,
    pub psn_cash_pay: Yuan,
    pub acct_mulaid_pay: Yuan,
    pub hosp_part_amt: Yuan,
    pub balc: Yuan,
    pub medins_setl_id: String,
    pub clr_optins: String,
    pub clr_way: String,
    pub clr_type: String,
}

/// One `setldetail[]` row (§1.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SetlDetailOut {
    pub fund_pay_type: String,
    pub fund_pay_type_name: String,
    pub inscp_scp_amt: Yuan,
    pub crt_payb_lmt_amt: Yuan,
    pub fund_payamt: Yuan,
    pub setl_proc_info: String,
}

/// The whole 2206/2207/2303/2304 output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettleOutput {
    /// The settlement.
    pub setlinfo: SetlInfo,
    /// Per fund.
    pub setldetail: Vec<SetlDetailOut>,
}

impl SetlDetailOut {
    fn from_detail(detail: &SetlDetail) -> SetlDetailOut {
        SetlDetailOut {
            fund_pay_type: detail.fund_pay_type.to_string(),
            fund_pay_type_name: detail.fund_pay_type_name.to_owned(),
            inscp_scp_amt: Yuan(detail.inscp_scp_amt),
            crt_payb_lmt_amt: Yuan(detail.crt_payb_lmt_amt),
            fund_payamt: Yuan(detail.fund_payamt),
            setl_proc_info: detail.setl_proc_info.clone(),
        }
    }
}

impl SettleOutput {
    /// The reply of a computed split. `clr_type` 11 门诊 / 21 住院 (local convention, C).
    pub fn new(split: &Split, context: SetlContext, inpatient: bool) -> SettleOutput {
        let setlinfo = SetlInfo {
            setl_id: context.setl_id,
            mdtrt_id: context.mdtrt_id,
            psn_no: context.psn_no,
            insutype: context.insutype,
            psn_type: context.psn_type,
            med_type: context.med_type,
            setl_time: context.setl_time,
            medfee_sumamt: Yuan(split.medfee_sumamt),
            fulamt_ownpay_amt: Yuan(split.fulamt_ownpay_amt),
            overlmt_selfpay: Yuan(split.overlmt_selfpay),
            preselfpay_amt: Yuan(split.preselfpay_amt),
            inscp_scp_amt: Yuan(split.inscp_scp_amt),
            act_pay_dedc: Yuan(split.act_pay_dedc),
            hifp_pay: Yuan(split.hifp_pay),
            pool_prop_selfpay: split.pool_prop_selfpay.normalize().to_string(),
            cvlserv_pay: Yuan(split.cvlserv_pay),
            hifes_pay: Yuan(split.hifes_pay),
            hifmi_pay: Yuan(split.hifmi_pay),
            hifob_pay: Yuan(split.hifob_pay),
            hifdm_pay: Yuan(split.hifdm_pay),
            maf_pay: Yuan(split.maf_pay),
            oth_pay: Yuan(split.oth_pay),
            fund_pay_sumamt: Yuan(split.fund_pay_sumamt),
            psn_part_amt: Yuan(split.psn_part_amt),
            acct_pay: Yuan(split.acct_pay),
            psn_cash_pay: Yuan(split.psn_cash_pay),
            acct_mulaid_pay: Yuan(crate::Fen::ZERO),
            hosp_part_amt: Yuan(split.hosp_part_amt),
            balc: Yuan(split.balc),
            medins_setl_id: context.medins_setl_id,
            clr_optins: context.clr_optins,
            clr_way: "1".to_owned(),
            clr_type: if inpatient { "21" } else { "11" }.to_owned(),
        };
        SettleOutput {
            setlinfo,
            setldetail: split
                .setldetail
                .iter()
                .map(SetlDetailOut::from_detail)
                .collect(),
        }
    }
}
