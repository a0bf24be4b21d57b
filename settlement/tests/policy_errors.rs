//! Bad policy input: unknown region / insutype / person type / level, a table with a missing or
//! unordered segment, a ratio above 1, overlapping rules, no rule for a combination. Each is a typed
//! error whose message the service can show as `err_msg` (infcode -1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod policy_common;

use policy_common::*;
use settlement::policy::{
    HospLv, Insutype, PolicyError, PsnType, RegionPolicy, Setting, compute_split,
};

const HEAD: &str = r#"
admdvs = "110000"
name = "test"
year = 2024
unfiled_ratio_cut = { value = "0.20", grade = "C", source = "test" }
pharmacy_pooled_fund = { value = false, grade = "C", source = "test" }
"#;

fn rule(segments: &str, hosp: &str) -> String {
    format!(
        r#"
[[rule]]
insutype = "310"
psn_type = ["in_service"]
setting = "inpatient"
hosp_lv = [{hosp}]
fund_pay_type = "310100"
acct_allowed = true
deductible_scope = "per_admission"
deductible_first = {{ yuan = "1300", grade = "B", source = "t" }}
segment_basis = "bill"
{segments}"#
    )
}

fn seg(upto: Option<&str>, ratio: &str) -> String {
    let upto = upto.map_or(String::new(), |u| format!("upto_yuan = \"{u}\"\n"));
    format!("[[rule.segment]]\n{upto}ratio = \"{ratio}\"\ngrade = \"B\"\nsource = \"t\"\n")
}

fn load(text: &str) -> Result<RegionPolicy, PolicyError> {
    RegionPolicy::from_toml(text, "test.toml")
}

#[test]
fn a_valid_table_loads() {
    let text = format!(
        "{HEAD}{}",
        rule(
            &(seg(Some("30000"), "0.85") + &seg(None, "0.90")),
            "\"level3\""
        )
    );
    let policy = load(&text).unwrap();
    assert_eq!(policy.rules.len(), 1);
}

#[test]
fn missing_or_bad_segments_are_refused() {
    let cases = [
        (
            seg(Some("30000"), "0.85") + &seg(Some("40000"), "0.90"),
            "policy file test.toml, rule 1: segment: missing segment above 40000.00 (the last segment must omit upto_yuan)",
        ),
        (
            String::new(),
            "policy file test.toml, rule 1: segment: no segment (at least one band is required)",
        ),
        (
            seg(Some("30000"), "0.85") + &seg(Some("20000"), "0.90") + &seg(None, "0.95"),
            "policy file test.toml, rule 1: segment 2: upto_yuan 20000.00 does not rise above the previous bound 30000.00",
        ),
        (
            seg(None, "0.85") + &seg(None, "0.90"),
            "policy file test.toml, rule 1: segment 1: only the last segment may omit upto_yuan",
        ),
        (
            seg(None, "1.05"),
            "policy file test.toml, rule 1: segment 1: ratio 1.05 is outside 0..=1",
        ),
    ];
    for (segments, message) in cases {
        let text = format!("{HEAD}{}", rule(&segments, "\"level3\""));
        let error = load(&text).unwrap_err();
        assert!(matches!(error, PolicyError::BadTable { .. }), "{error:?}");
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn overlapping_rules_and_bad_fields_are_refused() {
    let one = rule(&seg(None, "0.85"), "\"level3\", \"level2\"");
    let two = rule(&seg(None, "0.90"), "\"level2\"");
    let error = load(&format!("{HEAD}{one}{two}")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy file test.toml, rule 2: overlaps rule 1"
    );
    let bad_level = rule(&seg(None, "0.85"), "\"level9\"");
    let error = load(&format!("{HEAD}{bad_level}")).unwrap_err();
    assert!(error.to_string().contains("hosp_lv \"level9\""), "{error}");
    let error = load("admdvs = \"110000\"").unwrap_err();
    assert!(matches!(error, PolicyError::Parse { .. }), "{error:?}");
}

#[test]
fn unknown_region_insutype_and_no_rule() {
    let set = policies();
    assert_eq!(
        set.region(adm("440300")).unwrap_err().to_string(),
        "no policy for insured region 440300"
    );
    assert_eq!(
        Insutype::parse("320").unwrap_err().to_string(),
        "insutype \"320\" is not 310 (职工) or 390 (居民)"
    );
    assert!(matches!(
        PsnType::parse("student"),
        Err(PolicyError::UnknownPsnType(_))
    ));
    assert!(matches!(
        HospLv::parse("level4"),
        Err(PolicyError::UnknownHospLv(_))
    ));
    // 石家庄 has no row for a retired employee in a level-1 hospital (policy-params.csv omits it).
    let input = base_input(
        Insutype::Employee,
        PsnType::Retired,
        Setting::Inpatient,
        HospLv::Level1,
    );
    let error = compute_split(set.region(adm("130100")).unwrap(), &input).unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy of region 130100 has no rule for insutype 310, retired, inpatient, level1, age 50"
    );
}

#[test]
fn refunds_exceeding_charges_are_refused() {
    let set = policies();
    let mut input = base_input(
        Insutype::Employee,
        PsnType::InService,
        Setting::Outpatient,
        HospLv::Level2,
    );
    let mut refund = line("2", 0, 0, 0, 0, 20_000);
    refund.sign = settlement::catalogue::LineSign::Refund;
    input.lines = vec![line("1", 0, 0, 0, 0, 10_000), refund];
    let error = compute_split(set.region(adm("110000")).unwrap(), &input).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the bill's medfee_sumamt is negative (refund lines exceed charges)"
    );
}
