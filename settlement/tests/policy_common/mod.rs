//! Shared helpers of the policy tests: fixture loading, hand-built classified lines, integer
//! half-up division written independently of the engine.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;
use settlement::catalogue::{ChrgitmLv, ClassifiedLine, LineSign, ListKind};
use settlement::policy::{
    AdmissionOrdinal, HospLv, Insutype, PolicySet, PsnType, Setting, SplitInput, YearAccumulators,
};
use settlement::{Admdvs, Fen};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn policies() -> PolicySet {
    PolicySet::load_dir(&fixtures().join("policy")).unwrap()
}

pub fn adm(code: &str) -> Admdvs {
    Admdvs::parse(code).unwrap()
}

pub fn fen(value: i64) -> Fen {
    Fen::from_fen(value).unwrap()
}

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// `a / b` rounded half-up, integers only (independent of the engine's Decimal rounding).
pub fn half_up_div(a: i64, b: i64) -> i64 {
    (2 * a + b) / (2 * b)
}

/// A classified charge line from its parts (fen): fulamt, overlmt, preselfpay, and in-scope split
/// as given; det is their sum. `c3_full` is extra 丙类 amount.
pub fn line(
    sn: &str,
    fulamt: i64,
    overlmt: i64,
    preselfpay: i64,
    c3_full: i64,
    inscp: i64,
) -> ClassifiedLine {
    let fulamt = fulamt + c3_full;
    ClassifiedLine {
        feedetl_sn: sn.to_owned(),
        init_feedetl_sn: None,
        med_list_codg: "001101000010000".to_owned(),
        sign: LineSign::Charge,
        det_item_fee_sumamt: fen(fulamt + overlmt + preselfpay + inscp),
        fulamt_ownpay_amt: fen(fulamt),
        overlmt_amt: fen(overlmt),
        preselfpay_amt: fen(preselfpay),
        inscp_scp_amt: fen(inscp),
        chrgitm_lv: if fulamt > 0 {
            ChrgitmLv::Class3
        } else {
            ChrgitmLv::Class1
        },
        selfpay_prop: Decimal::ZERO,
        pric_uplmt_amt: None,
        list_type: ListKind::Service,
    }
}

pub fn base_input(
    insutype: Insutype,
    psn_type: PsnType,
    setting: Setting,
    hosp_lv: HospLv,
) -> SplitInput {
    SplitInput {
        insutype,
        psn_type,
        age_years: 50,
        setting,
        hosp_lv,
        admission_ordinal: AdmissionOrdinal::First,
        lines: Vec::new(),
        accumulators: YearAccumulators::default(),
        acct_used_flag: false,
        acct_balance: Fen::ZERO,
        cross_region: None,
    }
}
