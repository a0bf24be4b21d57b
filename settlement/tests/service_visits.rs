//! Whole visits replayed as HIS sends them (fixtures/his/*.json) through the app, on SQLite and
//! PostgreSQL: every money field checked against an independent computation written here from
//! the policy table (fixtures/policy/110000.toml, figures of medical-settlement.md §4.2 and the
//! worked example §5.4), the interface's identities checked on every settlement reply, the ledger
//! verified, and resends of every msgid answered with the first outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::inconsistent_digit_grouping)]

mod common;
mod service_support;

use common::BOTH;
use serde_json::Value;
use service_support::{Harness, check_identities, fen, fixtures};

/// Replays a visit file; returns the outputs by infno (last one wins).
async fn replay(h: &Harness, file: &str) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(fixtures().join("his").join(file)).unwrap();
    let steps: Vec<Value> = serde_json::from_str(&text).unwrap();
    let (mut mdtrt_id, mut sign_no) = (String::new(), String::new());
    let mut outputs = Vec::new();
    for step in steps {
        let text = step
            .to_string()
            .replace("${mdtrt_id}", &mdtrt_id)
            .replace("${sign_no}", &sign_no);
        let envelope: Value = serde_json::from_str(&text).unwrap();
        let infno = envelope["infno"].as_str().unwrap().to_owned();
        let output = h.ok(&envelope).await;
        // A resend of the same envelope gets the same output (msgid idempotency).
        if infno != "1101" && infno != "2206" && infno != "2303" {
            assert_eq!(h.ok(&envelope).await, output, "resend of {infno}");
        }
        if let Some(id) = output["data"]["mdtrt_id"]
            .as_str()
            .or(output["result"]["mdtrt_id"].as_str())
        {
            mdtrt_id = id.to_owned();
        }
        if let Some(no) = output["signinoutb"]["sign_no"].as_str() {
            sign_no = no.to_owned();
        }
        if output.get("setlinfo").is_some() {
            check_identities(&output);
        }
        outputs.push((infno, output));
    }
    outputs
}

fn output<'a>(outputs: &'a [(String, Value)], infno: &str) -> &'a Value {
    &outputs.iter().rev().find(|(i, _)| i == infno).unwrap().1
}

#[tokio::test]
async fn outpatient_visit_beijing_employee() {
    for db in BOTH {
        let h = Harness::new(db).await;
        let outputs = replay(&h, "outpatient-beijing-310.json").await;

        // 1101 by card B10020032: the fixture person 陈晓, balance 12.34 (fixtures/persons/cards.csv).
        let info = output(&outputs, "1101");
        assert_eq!(info["baseinfo"]["psn_no"], "11000000000000000003");
        assert_eq!(fen(&info["insuinfo"][0]["balc"]), 12_34);
        assert_eq!(info["insuinfo"][0]["insuplc_admdvs"], "110000");

        // 2204 classification (catalogue 110000.csv): line 0001 甲类 100 × 30.00 all in scope;
        // line 0002 乙类 10 × 15.00 with cap 12.00 and 先行自付 0.10: over the cap 10 × 3.00 = 30.00,
        // 先行自付 0.10 × 120.00 = 12.00, in scope 108.00.
        let lines = output(&outputs, "2204")["result"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(fen(&lines[0]["inscp_scp_amt"]), 3000_00);
        assert_eq!(lines[0]["chrgitm_lv"], "01");
        assert_eq!(
            (
                fen(&lines[1]["overlmt_amt"]),
                fen(&lines[1]["preselfpay_amt"]),
                fen(&lines[1]["inscp_scp_amt"])
            ),
            (30_00, 12_00, 108_00)
        );

        // Independent split (110000.toml: 职工 在职 门诊 level3, annual deductible 1800, ratio 0.70,
        // medical-settlement.md §4.2 grade B): in scope 3108.00, first visit of the year:
        // hifp = (3108.00 - 1800.00) × 0.70 = 915.60; personal 3150.00 - 915.60 = 2234.40; the
        // account pays its whole balance 12.34, cash 2222.06.
        let medfee = 3150_00;
        let inscp = 3108_00;
        let dedc = 1800_00;
        let hifp = (inscp - dedc) * 70 / 100;
        let acct = 12_34;
        for infno in ["2206", "2207"] {
            let s = &output(&outputs, infno)["setlinfo"];
            assert_eq!(fen(&s["medfee_sumamt"]), medfee, "{infno}");
            assert_eq!(fen(&s["fulamt_ownpay_amt"]), 0);
            assert_eq!(fen(&s["overlmt_selfpay"]), 30_00);
            assert_eq!(fen(&s["preselfpay_amt"]), 12_00);
            assert_eq!(fen(&s["inscp_scp_amt"]), inscp);
            assert_eq!(fen(&s["act_pay_dedc"]), dedc);
            assert_eq!(fen(&s["hifp_pay"]), hifp);
            assert_eq!(hifp, 915_60);
            assert_eq!(fen(&s["fund_pay_sumamt"]), hifp);
            assert_eq!(fen(&s["psn_part_amt"]), medfee - hifp);
            assert_eq!(fen(&s["acct_pay"]), acct);
            assert_eq!(fen(&s["psn_cash_pay"]), medfee - hifp - acct);
            assert_eq!(fen(&s["balc"]), 0);
        }
        let setl = &output(&outputs, "2207")["setlinfo"];
        assert_eq!(setl["setl_id"].as_str().unwrap().len(), 30);
        assert_eq!(output(&outputs, "2206")["setlinfo"]["setl_id"], "");

        // After the settlement, 1101 shows the emptied account and 5206 the year's figures.
        let again = service_support::envelope(
            "1101",
            "H110105000012026113009990001",
            "H11010500001",
            "110000",
            serde_json::json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": "B10020032"}}),
        );
        assert_eq!(fen(&h.ok(&again).await["insuinfo"][0]["balc"]), 0);
        h.verify().await;
        h.finish().await;
    }
}

#[tokio::test]
async fn inpatient_visit_beijing_employee() {
    for db in BOTH {
        let h = Harness::new(db).await;
        let outputs = replay(&h, "inpatient-beijing-310.json").await;
        // medical-settlement.md §5.4, in service, 三级, first admission: bill 50 000 = 2 000 丙类
        // (2 100 less a 100 refund line) + 10 000 乙类 at 10 % 先行自付 + 38 000 甲类; in scope 47 000;
        // 110000.toml segments (per admission, deductible 1300 inside the first band):
        // 28 700 × 0.85 + 10 000 × 0.90 + 7 000 × 0.95 = 24 395 + 9 000 + 6 650 = 40 045.00.
        let hifp = (30_000_00 - 1_300_00) * 85 / 100 + 10_000_00 * 90 / 100 + 7_000_00 * 95 / 100;
        assert_eq!(hifp, 40_045_00);
        let medfee = 50_000_00;
        // The account (3 560.25, cards.csv) pays what it can of the personal share 9 955.00.
        let acct = 3_560_25;
        for infno in ["2303", "2304"] {
            let s = &output(&outputs, infno)["setlinfo"];
            assert_eq!(fen(&s["medfee_sumamt"]), medfee, "{infno}");
            assert_eq!(fen(&s["fulamt_ownpay_amt"]), 2_000_00);
            assert_eq!(fen(&s["preselfpay_amt"]), 1_000_00);
            assert_eq!(fen(&s["inscp_scp_amt"]), 47_000_00);
            assert_eq!(fen(&s["act_pay_dedc"]), 1_300_00);
            assert_eq!(fen(&s["hifp_pay"]), hifp);
            assert_eq!(fen(&s["hifob_pay"]), 0);
            assert_eq!(fen(&s["psn_part_amt"]), medfee - hifp);
            assert_eq!(fen(&s["acct_pay"]), acct);
            assert_eq!(fen(&s["psn_cash_pay"]), medfee - hifp - acct);
            assert_eq!(fen(&s["balc"]), 0);
            assert_eq!(s["clr_type"], "21");
        }
        h.verify().await;
        h.finish().await;
    }
}
