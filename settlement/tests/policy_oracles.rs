//! Policy engine against oracles. Every expected amount is computed HERE from the figures of the
//! policy tables (fixtures/policy/*.toml, which carry policy-params.csv and medical-settlement.md §4)
//! with integer fen arithmetic written in this file, never with the engine's helpers; the
//! medical-settlement.md §5.4 derived examples are quoted as printed there (grade: valid only if the
//! §4.2 parameters are: seg1 B, seg2/seg3 C; assumption C on the segment basis).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Amounts are written yuan_fen (`2_000_00` = 2 000.00 yuan) so they read like the interface.
#![allow(clippy::inconsistent_digit_grouping)]

mod policy_common;

use policy_common::*;
use settlement::Fen;
use settlement::policy::{
    AdmissionOrdinal, CrossRegion, HospLv, Insutype, PsnType, Setting, SettingAccumulators,
    compute_split,
};

// ---- Beijing inpatient, medical-settlement.md §5.4 (bill 50 000 = 2 000 丙 + 10 000 乙 at 10 %
// self-pay-first + 38 000 甲; preselfpay 1 000, inscp 47 000) ----

fn beijing_54(psn_type: PsnType, ordinal: AdmissionOrdinal) -> settlement::policy::Split {
    let mut input = base_input(
        Insutype::Employee,
        psn_type,
        Setting::Inpatient,
        HospLv::Level3,
    );
    input.admission_ordinal = ordinal;
    input.lines = vec![
        line("c3", 0, 0, 0, 2_000_00, 0), // 丙类 2 000 fully self-paid
        line("c2", 0, 0, 1_000_00, 0, 9_000_00), // 乙类 10 000: 1 000 self-pay-first
        line("c1", 0, 0, 0, 0, 38_000_00), // 甲类 38 000
    ];
    let split = compute_split(policies().region(adm("110000")).unwrap(), &input).unwrap();
    split.check_identities().unwrap();
    assert_eq!(split.medfee_sumamt, fen(50_000_00));
    assert_eq!(split.fulamt_ownpay_amt, fen(2_000_00));
    assert_eq!(split.preselfpay_amt, fen(1_000_00));
    assert_eq!(split.inscp_scp_amt, fen(47_000_00));
    split
}

#[test]
fn beijing_inpatient_in_service_first_admission_54() {
    let split = beijing_54(PsnType::InService, AdmissionOrdinal::First);
    // Independent: (30000-1300)*.85 + (40000-30000)*.90 + (47000-40000)*.95, in fen.
    let expected = (3_000_000 - 130_000) * 85 / 100 + 1_000_000 * 90 / 100 + 700_000 * 95 / 100;
    assert_eq!(expected, 4_004_500);
    // §5.4 oracle (derived, grade per the table rows: seg1 B, seg2-3 C): 40 045.00 / 9 955.00.
    assert_eq!(split.hifp_pay, fen(40_045_00));
    assert_eq!(split.hifp_pay.fen(), expected);
    assert_eq!(split.psn_part_amt, fen(9_955_00));
    assert_eq!(split.act_pay_dedc, fen(1_300_00));
    assert_eq!(split.fund_pay_sumamt, fen(40_045_00));
    assert_eq!(split.hifob_pay, Fen::ZERO);
    assert_eq!(split.pool_prop_selfpay, dec("0.95"));
    // No account use: cash = personal share.
    assert_eq!(split.psn_cash_pay, fen(9_955_00));
    // The trace carries the grades and flags the C figures.
    let trace = &split.setldetail[0].setl_proc_info;
    assert!(
        trace.contains("\"grade\":\"B\"") && trace.contains("\"grade\":\"C\""),
        "{trace}"
    );
    assert!(trace.contains("\"unverified\":true"), "{trace}");
}

#[test]
fn beijing_inpatient_retired_first_admission_54() {
    let split = beijing_54(PsnType::Retired, AdmissionOrdinal::First);
    let expected = 2_870_000 * 91 / 100 + 1_000_000 * 94 / 100 + 700_000 * 97 / 100;
    assert_eq!(expected, 4_230_700);
    assert_eq!(split.hifp_pay, fen(42_307_00)); // §5.4 oracle 42 307.00
    assert_eq!(split.psn_part_amt, fen(7_693_00)); // §5.4: 7 693.00
}

#[test]
fn beijing_inpatient_second_admission_54() {
    let split = beijing_54(PsnType::InService, AdmissionOrdinal::SecondOrLater);
    // Deductible 650 (B): (30000-650)*.85 + 9000 + 6650.
    let expected = (3_000_000 - 65_000) * 85 / 100 + 900_000 + 665_000;
    assert_eq!(expected, 4_059_750);
    assert_eq!(split.hifp_pay, fen(40_597_50)); // §5.4 oracle 40 597.50
    assert_eq!(split.psn_part_amt, fen(9_402_50)); // §5.4: 9 402.50
    assert_eq!(split.act_pay_dedc, fen(650_00));
}

// ---- Beijing outpatient, §5.4: 3 000 in scope, first visit of the year ----

fn beijing_outpatient(psn_type: PsnType, hosp_lv: HospLv, used: i64) -> settlement::policy::Split {
    let mut input = base_input(Insutype::Employee, psn_type, Setting::Outpatient, hosp_lv);
    input.lines = vec![line("o1", 0, 0, 0, 0, 3_000_00)];
    input.accumulators.outpatient.deductible_used = fen(used);
    let split = compute_split(policies().region(adm("110000")).unwrap(), &input).unwrap();
    split.check_identities().unwrap();
    split
}

#[test]
fn beijing_outpatient_54() {
    // In service, hospital: (3000-1800)*.70 = 840.00 (§5.4, B).
    let s = beijing_outpatient(PsnType::InService, HospLv::Level2, 0);
    assert_eq!(s.hifp_pay, fen(840_00));
    assert_eq!(s.hifp_pay.fen(), (300_000 - 180_000) * 70 / 100);
    assert_eq!(s.psn_part_amt, fen(2_160_00));
    // In service, 社区: 1200*.90 = 1 080.00 (§5.4, B).
    let s = beijing_outpatient(PsnType::InService, HospLv::Community, 0);
    assert_eq!(s.hifp_pay, fen(1_080_00));
    // Retired, hospital: (3000-1300)*.85 = 1 445.00 (§5.4, B).
    let s = beijing_outpatient(PsnType::Retired, HospLv::Level3, 0);
    assert_eq!(s.hifp_pay, fen(1_445_00));
    assert_eq!(s.hifp_pay.fen(), (300_000 - 130_000) * 85 / 100);
}

#[test]
fn deductible_partly_used_earlier_in_the_year() {
    // 1 000 of the 1 800 used: 800 left; (3000-800)*.70 = 1540.00.
    let s = beijing_outpatient(PsnType::InService, HospLv::Level2, 1_000_00);
    assert_eq!(s.act_pay_dedc, fen(800_00));
    assert_eq!(s.hifp_pay.fen(), (300_000 - 80_000) * 70 / 100);
    assert_eq!(
        s.accumulators_after.outpatient.deductible_used,
        fen(1_800_00)
    );
    // Fully used: the whole 3 000 at 70 %.
    let s = beijing_outpatient(PsnType::InService, HospLv::Level2, 1_800_00);
    assert_eq!(s.act_pay_dedc, Fen::ZERO);
    assert_eq!(s.hifp_pay.fen(), 300_000 * 70 / 100);
}

#[test]
fn rounding_half_up_on_a_band() {
    // 1800 deductible, then 0.03 yuan at 70 % = 2.1 fen → 2 fen; 0.05 → 3.5 → 4 fen (half-up).
    for (extra, expected) in [(3_i64, 2_i64), (5, 4), (1, 1)] {
        let mut input = base_input(
            Insutype::Employee,
            PsnType::InService,
            Setting::Outpatient,
            HospLv::Level1,
        );
        input.lines = vec![line("r", 0, 0, 0, 0, 1_800_00 + extra)];
        let s = compute_split(policies().region(adm("110000")).unwrap(), &input).unwrap();
        s.check_identities().unwrap();
        assert_eq!(s.hifp_pay.fen(), expected, "extra {extra} fen");
    }
}

// ---- annual caps ----

#[test]
fn basic_cap_reached_mid_bill_tianjin() {
    // 天津 职工 在职 住院 三级: deductible 1700, 80 %, cap 350 000 (all C). 349 000 paid already.
    let mut input = base_input(
        Insutype::Employee,
        PsnType::InService,
        Setting::Inpatient,
        HospLv::Level3,
    );
    input.lines = vec![line("t", 0, 0, 0, 0, 10_000_00)];
    input.accumulators.inpatient.hifp_paid = fen(349_000_00);
    let s = compute_split(policies().region(adm("120000")).unwrap(), &input).unwrap();
    s.check_identities().unwrap();
    // Uncapped (10000-1700)*.8 = 6640 > 1000 left: pays 1000, no second tier in 天津's table.
    assert_eq!(s.hifp_pay, fen(1_000_00));
    assert_eq!(s.setldetail[0].crt_payb_lmt_amt, fen(1_000_00));
    assert_eq!(s.psn_part_amt, fen(9_000_00));
    assert_eq!(s.accumulators_after.inpatient.hifp_paid, fen(350_000_00));
}

#[test]
fn beijing_large_fund_pays_beyond_the_basic_cap() {
    // 北京 职工 在职 住院 三级, basic cap 100 000 (C), 99 000 paid: 1 000 left. In scope 20 000.
    let mut input = base_input(
        Insutype::Employee,
        PsnType::InService,
        Setting::Inpatient,
        HospLv::Level3,
    );
    input.lines = vec![line("b", 0, 0, 0, 0, 20_000_00)];
    input.accumulators.inpatient.hifp_paid = fen(99_000_00);
    let s = compute_split(policies().region(adm("110000")).unwrap(), &input).unwrap();
    s.check_identities().unwrap();
    // Band 1 cost 20000-1300 = 18700 would pay 15895 > 1000. The 1000 covers 1000/.85 = 1176.4705…
    // yuan of cost → 117 647 fen (half-up); beyond = 1 870 000 - 117 647 = 1 752 353 fen, and
    // 大额互助 pays 85 % (C) of it: 1 489 500.05 → 1 489 500 fen.
    let covered = half_up_div(100_000 * 100, 85);
    assert_eq!(covered, 117_647);
    let beyond = 1_870_000 - covered;
    let hifob = half_up_div(beyond * 85, 100);
    assert_eq!(s.hifp_pay, fen(1_000_00));
    assert_eq!(s.hifob_pay.fen(), hifob);
    assert_eq!(s.setldetail[1].inscp_scp_amt.fen(), beyond);
    assert_eq!(s.fund_pay_sumamt.fen(), 100_000 + hifob);
    assert_eq!(s.setldetail.len(), 2);
}

#[test]
fn shijiazhuang_resident_serious_illness_tier() {
    // 石家庄 居民 住院 市属三级: 1000 / 65 %, 大病 390200 from 13 400 at 60 % (all C).
    let mut input = base_input(
        Insutype::Resident,
        PsnType::InService,
        Setting::Inpatient,
        HospLv::Level3,
    );
    input.lines = vec![line("s", 0, 0, 0, 0, 50_000_00)];
    input.accumulators.inpatient.psn_inscp_share_sum = fen(10_000_00);
    let s = compute_split(policies().region(adm("130100")).unwrap(), &input).unwrap();
    s.check_identities().unwrap();
    let hifp = (5_000_000 - 100_000) * 65 / 100; // 31 850.00
    let share = 5_000_000 - hifp; // 18 150.00 personal in-scope share
    let above = (1_000_000 + share) - 1_340_000; // cumulative 28 150 - 13 400
    assert_eq!(s.hifp_pay.fen(), hifp);
    assert_eq!(s.hifmi_pay.fen(), above * 60 / 100);
    assert_eq!(s.hifob_pay, Fen::ZERO);
    assert_eq!(
        s.accumulators_after.inpatient.psn_inscp_share_sum.fen(),
        1_000_000 + share
    );
}

// ---- personal account ----

#[test]
fn personal_account_flag_and_balances() {
    let region = policies();
    let region = region.region(adm("110000")).unwrap();
    let mut input = base_input(
        Insutype::Employee,
        PsnType::InService,
        Setting::Outpatient,
        HospLv::Level2,
    );
    input.lines = vec![line("a", 0, 0, 0, 0, 3_000_00)];
    let psn = 300_000 - (300_000 - 180_000) * 70 / 100; // 2 160.00
    // Flag 0: no account payment even with a large balance.
    input.acct_balance = fen(5_000_00);
    let s = compute_split(region, &input).unwrap();
    assert_eq!(
        (s.acct_pay.fen(), s.psn_cash_pay.fen(), s.balc.fen()),
        (0, psn, 500_000)
    );
    // Flag 1, small balance 12.34: all of it, the rest in cash.
    input.acct_used_flag = true;
    input.acct_balance = fen(12_34);
    let s = compute_split(region, &input).unwrap();
    s.check_identities().unwrap();
    assert_eq!(
        (s.acct_pay.fen(), s.psn_cash_pay.fen(), s.balc.fen()),
        (1_234, psn - 1_234, 0)
    );
    // Flag 1, large balance: the whole personal share (§5.4 last line), cash 0.
    input.acct_balance = fen(5_000_00);
    let s = compute_split(region, &input).unwrap();
    s.check_identities().unwrap();
    assert_eq!(
        (s.acct_pay.fen(), s.psn_cash_pay.fen(), s.balc.fen()),
        (psn, 0, 500_000 - psn)
    );
    // Residents have no personal account in the tables (acct_allowed = false).
    let mut resident = base_input(
        Insutype::Resident,
        PsnType::InService,
        Setting::Outpatient,
        HospLv::Level2,
    );
    resident.lines = vec![line("a", 0, 0, 0, 0, 3_000_00)];
    resident.acct_used_flag = true;
    resident.acct_balance = fen(5_000_00);
    let s = compute_split(region, &resident).unwrap();
    assert_eq!(s.acct_pay, Fen::ZERO);
    // Resident outpatient 二级: (3000-550)*.50 = 1225.00 (B).
    assert_eq!(s.hifp_pay.fen(), (300_000 - 55_000) * 50 / 100);
}

#[test]
fn pharmacy_pays_no_fund() {
    let mut input = base_input(
        Insutype::Employee,
        PsnType::InService,
        Setting::Outpatient,
        HospLv::Pharmacy,
    );
    input.lines = vec![line("p", 0, 0, 0, 0, 100_00)];
    input.acct_used_flag = true;
    input.acct_balance = fen(1_000_00);
    let s = compute_split(policies().region(adm("110000")).unwrap(), &input).unwrap();
    s.check_identities().unwrap();
    assert_eq!(s.fund_pay_sumamt, Fen::ZERO);
    assert_eq!(s.acct_pay, fen(100_00));
    assert!(
        s.setldetail[0]
            .setl_proc_info
            .contains("\"unverified\":true")
    );
}

// ---- cross-region: 石家庄 insured (参保地政策) treated in Beijing ----

#[test]
fn cross_region_filed_unfiled_emergency() {
    let set = policies();
    let sjz = set.region(adm("130100")).unwrap();
    let run = |cross: Option<CrossRegion>| {
        let mut input = base_input(
            Insutype::Employee,
            PsnType::InService,
            Setting::Inpatient,
            HospLv::Level3,
        );
        input.lines = vec![line("x", 0, 0, 0, 0, 10_000_00)];
        input.cross_region = cross;
        let s = compute_split(sjz, &input).unwrap();
        s.check_identities().unwrap();
        s
    };
    // 石家庄 职工 在职 住院 市属三级: 600 / 85 % (C).
    let filed = (1_000_000 - 60_000) * 85 / 100;
    // Unfiled non-emergency: 85 - 20 points (C) = 65 %.
    let unfiled = (1_000_000 - 60_000) * 65 / 100;
    assert_eq!(run(None).hifp_pay.fen(), filed);
    let f = |filed, emergency| Some(CrossRegion { filed, emergency });
    assert_eq!(run(f(true, false)).hifp_pay.fen(), filed);
    assert_eq!(run(f(false, true)).hifp_pay.fen(), filed); // emergency counts as filed (B)
    let s = run(f(false, false));
    assert_eq!(s.hifp_pay.fen(), unfiled);
    assert_eq!(s.pool_prop_selfpay, dec("0.65"));
    assert!(
        s.setldetail[0]
            .setl_proc_info
            .contains("\"points\":\"0.20\"")
    );
    // 京津冀 视同备案 (C): 130100 insured in 110000 is deemed filed; Beijing-in-Beijing is local.
    assert!(settlement::policy::jingjinji_deemed_filed(
        adm("130100"),
        adm("110000")
    ));
    assert!(!settlement::policy::jingjinji_deemed_filed(
        adm("110000"),
        adm("110000")
    ));
    assert!(!settlement::policy::jingjinji_deemed_filed(
        adm("310000"),
        adm("110000")
    ));
}

#[test]
fn accumulator_delta_reverts_exactly() {
    let mut input = base_input(
        Insutype::Employee,
        PsnType::InService,
        Setting::Outpatient,
        HospLv::Level2,
    );
    input.lines = vec![line("d", 0, 0, 0, 0, 3_000_00)];
    input.accumulators.outpatient = SettingAccumulators {
        deductible_used: fen(100_00),
        ..SettingAccumulators::default()
    };
    let s = compute_split(policies().region(adm("110000")).unwrap(), &input).unwrap();
    assert_eq!(
        s.accumulators_after
            .checked_sub(&s.accumulators_delta)
            .unwrap(),
        input.accumulators
    );
    assert!(
        input
            .accumulators
            .checked_sub(&s.accumulators_delta)
            .is_err()
    );
}
