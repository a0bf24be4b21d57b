//! `compute_split`: one settlement's split under the insured region's tables, in the order of
//! medical-settlement.md §4.1. Assumptions (all grade C, stated in the fixture README too):
//! - segment bands are measured on `SegmentBasis` (Beijing inpatient: this bill's in-scope cost
//!   from 0 with the deductible inside band 1, §5.4 assumption C); each band's fund amount is
//!   rounded half-up to the fen (§5.2), the personal share is the remainder;
//! - the basic annual cap limits the basic fund's payments of the year; where it cuts a band, the
//!   cost it stands for is `left / ratio` rounded half-up, the rest is "beyond the basic cap";
//! - the unfiled cross-region cut lowers every basic band's ratio by `unfiled_ratio_cut` points
//!   (not below 0); second tiers are not cut;
//! - `pool_prop_selfpay` is the (cut) ratio of the last band this bill reached.

use rust_decimal::Decimal;

use super::PolicyError;
use super::round::{div_ratio_half_up, mul_ratio_half_up};
use super::split::{SetlDetail, Split};
use super::table::{DeductibleScope, Grade, RegionPolicy, Rule, Segment, SegmentBasis, TierBasis};
use super::types::{
    AdmissionOrdinal, HospLv, Insutype, Setting, SettingAccumulators, SplitInput, YearAccumulators,
};
use crate::catalogue::{ClassifiedLine, LineSign};
use crate::{Admdvs, Fen, FundPayType};

/// Most lines one bill may carry.
pub const SPLIT_LINES_MAX: usize = 10_000;

/// True when a person insured in `insuplc_admdvs` treated in `mdtrtarea_admvs` counts as filed
/// under 京津冀 视同备案 (medical-settlement.md §3.2, grade C: document number and scope unverified):
/// both divisions in 北京 (11), 天津 (12) or 河北 (13) and in different provinces. Within one
/// province it answers false (intra-provincial rules were not researched).
pub fn jingjinji_deemed_filed(insuplc_admdvs: Admdvs, mdtrtarea_admvs: Admdvs) -> bool {
    let province = |a: Admdvs| a.code() / 10_000;
    let in_jjj = |p: u32| matches!(p, 11..=13);
    let (a, b) = (province(insuplc_admdvs), province(mdtrtarea_admvs));
    a != b && in_jjj(a) && in_jjj(b)
}

/// Computes the split of one settlement (medical-settlement.md §4.1 order; module doc for the
/// assumptions): item sums → accumulators → deductible → bands → basic cap → second tier →
/// personal share → personal account (`acct_pay = min(balance, psn_part_amt)` when
/// `acct_used_flag` and the rule allows an account) → cash. `policy` is the INSURED region's.
///
/// Errors: `NoRule` (no table row for the combination), `NegativeBill` (refunds exceed charges),
/// `TooManyLines`, `Overflow`. The result always passes `Split::check_identities`.
pub fn compute_split(policy: &RegionPolicy, input: &SplitInput) -> Result<Split, PolicyError> {
    if input.lines.len() > SPLIT_LINES_MAX {
        return Err(PolicyError::TooManyLines(SPLIT_LINES_MAX));
    }
    let totals = Totals::of(&input.lines)?;
    let acc = *input.accumulators.setting(input.setting);
    let personal_only = input.hosp_lv == HospLv::Pharmacy && !policy.pharmacy_pooled_fund.value;
    let (funds, acct_allowed) = if personal_only {
        (
            pharmacy_only(policy, input, &totals)?,
            input.insutype == Insutype::Employee,
        )
    } else {
        let rule = policy.rule(
            input.insutype,
            input.psn_type,
            input.setting,
            input.hosp_lv,
            input.age_years,
        )?;
        (
            basic_and_tier(policy, rule, input, &acc, &totals)?,
            rule.acct_allowed,
        )
    };
    assemble(input, &totals, funds, acct_allowed)
}

/// Signed sums of the lines, checked non-negative.
struct Totals {
    medfee: i64,
    fulamt: i64,
    overlmt: i64,
    preselfpay: i64,
    inscp: i64,
}

impl Totals {
    fn of(lines: &[ClassifiedLine]) -> Result<Totals, PolicyError> {
        let mut t = [0_i64; 5];
        for line in lines {
            let parts = [
                line.det_item_fee_sumamt,
                line.fulamt_ownpay_amt,
                line.overlmt_amt,
                line.preselfpay_amt,
                line.inscp_scp_amt,
            ];
            for (sum, part) in t.iter_mut().zip(parts) {
                let value = match line.sign {
                    LineSign::Charge => part.fen(),
                    LineSign::Refund => -part.fen(),
                };
                *sum = sum
                    .checked_add(value)
                    .ok_or(PolicyError::Overflow("bill totals"))?;
            }
        }
        let names = [
            "medfee_sumamt",
            "fulamt_ownpay_amt",
            "overlmt_selfpay",
            "preselfpay_amt",
            "inscp_scp_amt",
        ];
        for (sum, field) in t.iter().zip(names) {
            if *sum < 0 {
                return Err(PolicyError::NegativeBill { field });
            }
        }
        if t[0] > Fen::MAX.fen() {
            return Err(PolicyError::Overflow("medfee_sumamt"));
        }
        Ok(Totals {
            medfee: t[0],
            fulamt: t[1],
            overlmt: t[2],
            preselfpay: t[3],
            inscp: t[4],
        })
    }
}

/// The fund side of a split.
#[derive(Default)]
struct Funds {
    act_pay_dedc: i64,
    hifp: i64,
    pool_prop: Decimal,
    hifob: i64,
    hifmi: i64,
    oth: i64,
    setldetail: Vec<SetlDetail>,
}

/// A pharmacy bill where the region's basic fund does not pay at pharmacies: one zero fund row whose
/// trace names the (graded) rule.
fn pharmacy_only(
    policy: &RegionPolicy,
    input: &SplitInput,
    totals: &Totals,
) -> Result<Funds, PolicyError> {
    let fund_pay_type = match input.insutype {
        Insutype::Employee => FundPayType::EMPLOYEE_POOLED,
        Insutype::Resident => FundPayType::RESIDENT_BASIC,
    };
    Ok(Funds {
        setldetail: vec![SetlDetail {
            fund_pay_type,
            fund_pay_type_name: fund_name(fund_pay_type),
            inscp_scp_amt: fen(totals.inscp)?,
            crt_payb_lmt_amt: Fen::ZERO,
            fund_payamt: Fen::ZERO,
            setl_proc_info: format!(
                "{{\"fund\":\"{}\",\"rule\":\"pharmacy_pooled_fund=false\",\"grade\":\"{}\",\"unverified\":{}}}",
                fund_pay_type,
                policy.pharmacy_pooled_fund.grade.letter(),
                policy.pharmacy_pooled_fund.grade == Grade::C
            ),
        }],
        ..Funds::default()
    })
}

/// Result of walking bands over `[from, to)` of a basis.
struct Walk {
    pay: i64,
    beyond_cap: i64,
    last_ratio: Decimal,
    bands: Vec<String>,
    unverified: bool,
}

/// Walks the bands over `[from, to)`, each band's pay rounded half-up, the running total limited by
/// `cap_left` (`None` = no cap); ratios lowered by `cut`.
fn walk(
    segments: &[Segment],
    from: i64,
    to: i64,
    cut: Decimal,
    mut cap_left: Option<i64>,
) -> Result<Walk, PolicyError> {
    let overflow = || PolicyError::Overflow("fund amount");
    let mut out = Walk {
        pay: 0,
        beyond_cap: 0,
        last_ratio: Decimal::ZERO,
        bands: Vec::new(),
        unverified: false,
    };
    let mut lo = 0_i64;
    for seg in segments {
        let hi = seg.upto.map_or(i64::MAX, Fen::fen);
        let chunk = (hi.min(to) - lo.max(from)).max(0);
        if chunk > 0 {
            let ratio = (seg.ratio.value - cut).max(Decimal::ZERO);
            let mut pay = mul_ratio_half_up(chunk, ratio).ok_or_else(overflow)?;
            if let Some(left) = cap_left.as_mut() {
                if pay > *left {
                    // pay > left >= 0 implies ratio > 0.
                    let covered = div_ratio_half_up(*left, ratio)
                        .ok_or_else(overflow)?
                        .min(chunk);
                    out.beyond_cap += chunk - covered;
                    pay = *left;
                }
                *left -= pay;
            }
            out.pay = out.pay.checked_add(pay).ok_or_else(overflow)?;
            out.last_ratio = ratio;
            out.unverified |= seg.ratio.grade == Grade::C;
            out.bands.push(format!(
                "{{\"from\":\"{}\",\"to\":\"{}\",\"ratio\":\"{}\",\"pay\":\"{}\",\"grade\":\"{}\"}}",
                yuan(lo.max(from)),
                yuan(hi.min(to)),
                ratio,
                yuan(pay),
                seg.ratio.grade.letter()
            ));
        }
        lo = hi;
        if lo >= to {
            break;
        }
    }
    Ok(out)
}

fn basic_and_tier(
    policy: &RegionPolicy,
    rule: &Rule,
    input: &SplitInput,
    acc: &SettingAccumulators,
    totals: &Totals,
) -> Result<Funds, PolicyError> {
    let overflow = || PolicyError::Overflow("fund amount");
    // Deductible.
    let later = input.setting == Setting::Inpatient
        && input.admission_ordinal == AdmissionOrdinal::SecondOrLater;
    let deductible = match (&rule.deductible_later, later) {
        (Some(d), true) => d,
        _ => &rule.deductible_first,
    };
    let remaining = match rule.deductible_scope {
        DeductibleScope::Annual => (deductible.value.fen() - acc.deductible_used.fen()).max(0),
        DeductibleScope::PerAdmission => deductible.value.fen(),
    };
    let act_pay_dedc = remaining.min(totals.inscp);
    // Cross-region cut.
    let cut_applies = input.cross_region.is_some_and(|c| !c.filed && !c.emergency);
    let cut = if cut_applies {
        policy.unfiled_ratio_cut.value
    } else {
        Decimal::ZERO
    };
    // Bands and the basic cap.
    let start = match rule.segment_basis {
        SegmentBasis::Bill => 0,
        SegmentBasis::Year => acc.inscp_sum.fen(),
    };
    let from = start.checked_add(act_pay_dedc).ok_or_else(overflow)?;
    let to = start.checked_add(totals.inscp).ok_or_else(overflow)?;
    let cap_left = rule
        .annual_cap
        .as_ref()
        .map(|c| (c.value.fen() - acc.hifp_paid.fen()).max(0));
    let basic = walk(&rule.segments, from, to, cut, cap_left)?;
    let unverified = basic.unverified
        || deductible.grade == Grade::C
        || (cut_applies && policy.unfiled_ratio_cut.grade == Grade::C)
        || rule
            .annual_cap
            .as_ref()
            .is_some_and(|c| c.grade == Grade::C);
    let basic_trace = format!(
        "{{\"fund\":\"{}\",\"rule\":\"{}/{}/{}/{}\",\"dedc\":{{\"amt\":\"{}\",\"charged\":\"{}\",\"grade\":\"{}\"}},\"cut\":{{\"points\":\"{}\",\"grade\":\"{}\"}},\"cap_left\":{},\"bands\":[{}],\"beyond_cap\":\"{}\",\"unverified\":{}}}",
        rule.fund_pay_type,
        input.insutype.code(),
        input.psn_type.name(),
        input.setting.name(),
        input.hosp_lv.name(),
        yuan(deductible.value.fen()),
        yuan(act_pay_dedc),
        deductible.grade.letter(),
        cut,
        policy.unfiled_ratio_cut.grade.letter(),
        cap_text(cap_left, rule.annual_cap.as_ref().map(|c| c.grade)),
        basic.bands.join(","),
        yuan(basic.beyond_cap),
        unverified,
    );
    let mut funds = Funds {
        act_pay_dedc,
        hifp: basic.pay,
        pool_prop: basic.last_ratio,
        setldetail: vec![SetlDetail {
            fund_pay_type: rule.fund_pay_type,
            fund_pay_type_name: fund_name(rule.fund_pay_type),
            inscp_scp_amt: fen(totals.inscp)?,
            crt_payb_lmt_amt: fen(cap_left.unwrap_or(Fen::MAX.fen()))?,
            fund_payamt: fen(basic.pay)?,
            setl_proc_info: basic_trace,
        }],
        ..Funds::default()
    };
    if let Some(tier) = &rule.tier {
        let share = totals.inscp - basic.pay;
        let (basis_from, basis_to, basis_amount) = match tier.basis {
            TierBasis::BeyondBasicCap => (0, basic.beyond_cap, basic.beyond_cap),
            TierBasis::PersonalInscpYear => {
                let prior = acc.psn_inscp_share_sum.fen();
                (prior, prior.checked_add(share).ok_or_else(overflow)?, share)
            }
        };
        let d = tier.deductible.value.fen();
        let from = basis_from.max(d) - d;
        let to = basis_to.max(d) - d;
        let paid = match tier_fund(tier.fund_pay_type) {
            TierFund::Hifob => acc.hifob_paid.fen(),
            TierFund::Hifmi => acc.hifmi_paid.fen(),
            TierFund::Other => 0,
        };
        let tier_cap_left = tier
            .annual_cap
            .as_ref()
            .map(|c| (c.value.fen() - paid).max(0));
        let walked = walk(&tier.segments, from, to, Decimal::ZERO, tier_cap_left)?;
        let tier_unverified = walked.unverified
            || tier.deductible.grade == Grade::C
            || tier
                .annual_cap
                .as_ref()
                .is_some_and(|c| c.grade == Grade::C);
        match tier_fund(tier.fund_pay_type) {
            TierFund::Hifob => funds.hifob = walked.pay,
            TierFund::Hifmi => funds.hifmi = walked.pay,
            TierFund::Other => funds.oth = walked.pay,
        }
        funds.setldetail.push(SetlDetail {
            fund_pay_type: tier.fund_pay_type,
            fund_pay_type_name: fund_name(tier.fund_pay_type),
            inscp_scp_amt: fen(basis_amount)?,
            crt_payb_lmt_amt: fen(tier_cap_left.unwrap_or(Fen::MAX.fen()))?,
            fund_payamt: fen(walked.pay)?,
            setl_proc_info: format!(
                "{{\"fund\":\"{}\",\"basis\":\"{}\",\"dedc\":{{\"amt\":\"{}\",\"grade\":\"{}\"}},\"cap_left\":{},\"bands\":[{}],\"unverified\":{}}}",
                tier.fund_pay_type,
                match tier.basis {
                    TierBasis::BeyondBasicCap => "beyond_basic_cap",
                    TierBasis::PersonalInscpYear => "personal_inscp_year",
                },
                yuan(d),
                tier.deductible.grade.letter(),
                cap_text(tier_cap_left, tier.annual_cap.as_ref().map(|c| c.grade)),
                walked.bands.join(","),
                tier_unverified,
            ),
        });
    }
    Ok(funds)
}

fn assemble(
    input: &SplitInput,
    totals: &Totals,
    funds: Funds,
    acct_allowed: bool,
) -> Result<Split, PolicyError> {
    let fund_sum = [funds.hifp, funds.hifob, funds.hifmi, funds.oth]
        .iter()
        .try_fold(0_i64, |a, b| a.checked_add(*b))
        .ok_or(PolicyError::Overflow("fund_pay_sumamt"))?;
    let psn_part = totals.medfee - fund_sum;
    let acct_pay = if input.acct_used_flag && acct_allowed {
        input.acct_balance.fen().min(psn_part)
    } else {
        0
    };
    let delta_setting = SettingAccumulators {
        deductible_used: fen(funds.act_pay_dedc)?,
        inscp_sum: fen(totals.inscp)?,
        hifp_paid: fen(funds.hifp)?,
        hifob_paid: fen(funds.hifob)?,
        hifmi_paid: fen(funds.hifmi)?,
        psn_inscp_share_sum: fen(totals.inscp - funds.hifp)?,
    };
    let mut delta = YearAccumulators::default();
    match input.setting {
        Setting::Outpatient => delta.outpatient = delta_setting,
        Setting::Inpatient => delta.inpatient = delta_setting,
    }
    let after = input.accumulators.checked_add(&delta)?;
    let setldetail = funds.setldetail;
    Ok(Split {
        medfee_sumamt: fen(totals.medfee)?,
        fulamt_ownpay_amt: fen(totals.fulamt)?,
        overlmt_selfpay: fen(totals.overlmt)?,
        preselfpay_amt: fen(totals.preselfpay)?,
        inscp_scp_amt: fen(totals.inscp)?,
        act_pay_dedc: fen(funds.act_pay_dedc)?,
        hifp_pay: fen(funds.hifp)?,
        pool_prop_selfpay: funds.pool_prop,
        cvlserv_pay: Fen::ZERO,
        hifes_pay: Fen::ZERO,
        hifmi_pay: fen(funds.hifmi)?,
        hifob_pay: fen(funds.hifob)?,
        hifdm_pay: Fen::ZERO,
        maf_pay: Fen::ZERO,
        oth_pay: fen(funds.oth)?,
        fund_pay_sumamt: fen(fund_sum)?,
        psn_part_amt: fen(psn_part)?,
        acct_pay: fen(acct_pay)?,
        psn_cash_pay: fen(psn_part - acct_pay)?,
        hosp_part_amt: Fen::ZERO,
        balc: fen(input.acct_balance.fen() - acct_pay)?,
        acct_balance: input.acct_balance,
        setldetail,
        accumulators_after: after,
        accumulators_delta: delta,
    })
}

/// Which `setlinfo` field a second tier's payment goes to.
enum TierFund {
    Hifob,
    Hifmi,
    Other,
}

fn tier_fund(code: FundPayType) -> TierFund {
    if code == FundPayType::EMPLOYEE_LARGE_EXPENSE {
        TierFund::Hifob
    } else if code == FundPayType::RESIDENT_SERIOUS_ILLNESS {
        TierFund::Hifmi
    } else {
        TierFund::Other
    }
}

fn fen(value: i64) -> Result<Fen, PolicyError> {
    Fen::from_fen(value).map_err(|_| PolicyError::Overflow("split amount"))
}

fn yuan(value: i64) -> String {
    if value == i64::MAX {
        "none".to_owned()
    } else {
        Decimal::new(value, 2).to_string()
    }
}

fn cap_text(left: Option<i64>, grade: Option<Grade>) -> String {
    match (left, grade) {
        (Some(left), Some(grade)) => format!(
            "{{\"amt\":\"{}\",\"grade\":\"{}\"}}",
            yuan(left),
            grade.letter()
        ),
        _ => "null".to_owned(),
    }
}

/// `fund_pay_type_name` for the codes of medical-settlement.md §1.4 (grade A); other codes are
/// named "其他基金" (the set is open).
fn fund_name(code: FundPayType) -> &'static str {
    match code.to_string().as_str() {
        "310100" => "职工基本医疗保险统筹基金",
        "310200" => "职工基本医疗保险个人账户基金",
        "320100" => "公务员医疗补助基金",
        "330100" => "大额医疗费用补助基金",
        "340100" => "离休人员医疗保障基金",
        "350100" => "一至六级残疾军人医疗补助基金",
        "370100" => "企业补充医疗保险基金",
        "390100" => "城乡居民基本医疗保险基金",
        "390200" => "城乡居民大病医疗保险基金",
        "510100" => "生育基金",
        "610100" => "医疗救助基金",
        "640100" => "政府兜底基金",
        _ => "其他基金",
    }
}
