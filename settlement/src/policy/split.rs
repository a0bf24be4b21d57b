//! The engine's output: the 2207/2304 `setlinfo` money fields and `setldetail[]`
//! (medical-settlement.md §1.4), with the interface's identities as a check.

use rust_decimal::Decimal;

use super::{PolicyError, YearAccumulators};
use crate::{Fen, FundPayType};

/// One `setldetail[]` row: a fund's payment on this settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetlDetail {
    /// `fund_pay_type` (310100, 330100, 390100, 390200 …).
    pub fund_pay_type: FundPayType,
    /// `fund_pay_type_name` (the §1.4 table's name).
    pub fund_pay_type_name: &'static str,
    /// `inscp_scp_amt`: the in-scope amount this fund worked on.
    pub inscp_scp_amt: Fen,
    /// `crt_payb_lmt_amt`: what this fund could still pay under its annual cap BEFORE this
    /// settlement (`Fen::MAX` when the table knows no cap).
    pub crt_payb_lmt_amt: Fen,
    /// `fund_payamt`.
    pub fund_payamt: Fen,
    /// `setl_proc_info`: a JSON trace of the calculation, every figure with its grade (A/B/C) and
    /// `"unverified":true` when any grade-C figure was used.
    pub setl_proc_info: String,
}

/// One settlement's split. All money in fen; the identities of `check_identities` hold exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// 医疗费总额.
    pub medfee_sumamt: Fen,
    /// 全自费 (丙类 etc.).
    pub fulamt_ownpay_amt: Fen,
    /// 超限价自费.
    pub overlmt_selfpay: Fen,
    /// 先行自付.
    pub preselfpay_amt: Fen,
    /// 符合政策范围金额.
    pub inscp_scp_amt: Fen,
    /// 实际支付起付线.
    pub act_pay_dedc: Fen,
    /// 统筹基金支出 (310100 / 390100).
    pub hifp_pay: Fen,
    /// 统筹基金支付比例 (5,4): the ratio of the last band this bill reached (0 if none paid).
    pub pool_prop_selfpay: Decimal,
    /// 公务员医疗补助 (no table: always 0).
    pub cvlserv_pay: Fen,
    /// 企业补充 (no table: always 0).
    pub hifes_pay: Fen,
    /// 居民大病 (390200).
    pub hifmi_pay: Fen,
    /// 职工大额 (330100).
    pub hifob_pay: Fen,
    /// 伤残人员 (no table: always 0).
    pub hifdm_pay: Fen,
    /// 医疗救助 (no table: always 0).
    pub maf_pay: Fen,
    /// 其他基金 (a tier with another code).
    pub oth_pay: Fen,
    /// 基金支付总额.
    pub fund_pay_sumamt: Fen,
    /// 个人负担总金额.
    pub psn_part_amt: Fen,
    /// 个人账户支出.
    pub acct_pay: Fen,
    /// 个人现金支出.
    pub psn_cash_pay: Fen,
    /// 医院负担金额 (always 0 here).
    pub hosp_part_amt: Fen,
    /// Personal-account balance after (`balc = acct_balance − acct_pay`).
    pub balc: Fen,
    /// Personal-account balance before (the input's `acct_balance`).
    pub acct_balance: Fen,
    /// Per-fund rows.
    pub setldetail: Vec<SetlDetail>,
    /// Accumulators after this settlement.
    pub accumulators_after: YearAccumulators,
    /// What this settlement added to the accumulators (subtract it on 2208/2305/2601).
    pub accumulators_delta: YearAccumulators,
}

fn sum(parts: &[Fen]) -> Option<i64> {
    parts
        .iter()
        .try_fold(0_i64, |acc, part| acc.checked_add(part.fen()))
}

fn equal(identity: &'static str, left: Option<i64>, right: Option<i64>) -> Result<(), PolicyError> {
    match (left, right) {
        (Some(l), Some(r)) if l == r => Ok(()),
        _ => Err(PolicyError::Identity {
            identity,
            detail: format!(
                "{} vs {}",
                left.map_or("overflow".to_owned(), |v| Decimal::new(v, 2).to_string()),
                right.map_or("overflow".to_owned(), |v| Decimal::new(v, 2).to_string())
            ),
        }),
    }
}

impl Split {
    /// Checks the interface's identities (medical-settlement.md §1.4, grades A for 1–3, B for 4):
    /// 1. `medfee_sumamt = fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt + inscp_scp_amt`;
    /// 2. `medfee_sumamt = fund_pay_sumamt + psn_part_amt + hosp_part_amt`;
    /// 3. `psn_part_amt = acct_pay + psn_cash_pay`;
    /// 4. `fund_pay_sumamt = hifp + cvlserv + hifes + hifmi + hifob + hifdm + maf + oth`
    ///    `= Σ setldetail.fund_payamt`;
    /// 5. `balc = acct_balance − acct_pay`.
    ///
    /// Errors: `Identity` naming the first that fails, with both sides in yuan.
    pub fn check_identities(&self) -> Result<(), PolicyError> {
        let medfee = Some(self.medfee_sumamt.fen());
        equal(
            "medfee_sumamt = fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt + inscp_scp_amt",
            medfee,
            sum(&[
                self.fulamt_ownpay_amt,
                self.overlmt_selfpay,
                self.preselfpay_amt,
                self.inscp_scp_amt,
            ]),
        )?;
        equal(
            "medfee_sumamt = fund_pay_sumamt + psn_part_amt + hosp_part_amt",
            medfee,
            sum(&[self.fund_pay_sumamt, self.psn_part_amt, self.hosp_part_amt]),
        )?;
        equal(
            "psn_part_amt = acct_pay + psn_cash_pay",
            Some(self.psn_part_amt.fen()),
            sum(&[self.acct_pay, self.psn_cash_pay]),
        )?;
        equal(
            "fund_pay_sumamt = sum of the fund fields",
            Some(self.fund_pay_sumamt.fen()),
            sum(&[
                self.hifp_pay,
                self.cvlserv_pay,
                self.hifes_pay,
                self.hifmi_pay,
                self.hifob_pay,
                self.hifdm_pay,
                self.maf_pay,
                self.oth_pay,
            ]),
        )?;
        let details: Vec<Fen> = self.setldetail.iter().map(|d| d.fund_payamt).collect();
        equal(
            "fund_pay_sumamt = sum of setldetail.fund_payamt",
            Some(self.fund_pay_sumamt.fen()),
            sum(&details),
        )?;
        equal(
            "balc = acct_balance - acct_pay",
            Some(self.balc.fen()),
            self.acct_balance.fen().checked_sub(self.acct_pay.fen()),
        )
    }
}
