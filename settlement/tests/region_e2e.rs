//! Three-node end-to-end cross-region settlement (issue 6, must-show 1), on SQLite and
//! PostgreSQL: a Beijing-insured person settles in Tianjin and in Shijiazhuang, a Tianjin person
//! in Beijing; each is cancelled (2208) or reversed (2601) and settled again; every amount on
//! each side is checked against hand arithmetic on the policy tables, and after the window close
//! each origin's net report sums to zero per fund across the three nodes.
//!
//! Oracles (hand arithmetic, medical-settlement.md §4.2 and fixtures/policy/110000.toml):
//! - 李淑芬 (11000000000000000002, 北京 职工 退休, account 15230.80) at a Tianjin 三级 hospital,
//!   50 × 30.00 of a 甲类 drug (fixtures/catalogue/120000.csv: 01, no cap, self-pay 0) = 1500.00
//!   in scope; Beijing retiree outpatient deductible 1300 (B), ratio 0.85 above it (B); 京津冀
//!   视同备案 → no temporary-visit cut (§3.2): hifp 200 × 0.85 = 170.00; personal share 1330.00,
//!   all from the account (balance suffices): acct 1330.00, cash 0.00.
//! - 陈晓 (11000000000000000003, 北京 职工 在职, account 12.34) at a 石家庄 三级 hospital, 1 × 30.00:
//!   below the 1800 deductible → fund 0; acct 12.34 (the whole balance), cash 17.66.
//!   Once its account is empty, a third such bill is all cash (5206: deductible used 60.00).
//! - 赵文博 (12000000000000000001, 天津 职工 在职, account 1288.00) at a Beijing 三级 hospital,
//!   1 × 30.00: below Tianjin's outpatient deductible (≥ 800 in every level's row of
//!   fixtures/policy/120000.toml) → fund 0; acct 30.00, cash 0.00.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod region_support;
mod service_support;

use region_support::{BJ, Cluster, HB, NODES, TJ, clearing, envelope, institution, personal};
use serde_json::json;
use service_support::fen;
use settlement::region::clearing::NetReport;

const TJ_HOSP: &str = "H12010100001";
const SJZ_HOSP: &str = "H13010200002";
const BJ_HOSP: &str = "H11010500001";
const LI: &str = "11000000000000000002";
const CHEN: &str = "11000000000000000003";
const ZHAO: &str = "12000000000000000001";

fn split_of(output: &serde_json::Value) -> (i64, i64, i64, i64) {
    let s = &output["setlinfo"];
    (
        fen(&s["medfee_sumamt"]),
        fen(&s["hifp_pay"]),
        fen(&s["acct_pay"]),
        fen(&s["psn_cash_pay"]),
    )
}

async fn run(db: common::Db) {
    let c = Cluster::start(db).await;

    // --- 1. Beijing retiree in Tianjin: settle, cancel (2208), settle again.
    let v1 = c.visit(TJ, TJ, TJ_HOSP, LI, BJ, 50).await;
    let out = c.ok(TJ, &c.settle_env(TJ, TJ_HOSP, LI, BJ, &v1, 50)).await;
    assert_eq!(split_of(&out), (150_000, 17_000, 133_000, 0));
    service_support::check_identities(&out);
    assert_eq!(
        c.node(BJ).balance(&personal(BJ, LI)).await,
        1_523_080 - 133_000
    );
    let setl_id = out["setlinfo"]["setl_id"].as_str().unwrap().to_owned();
    c.ok(
        TJ,
        &envelope(
            "2208",
            &c.msgid(TJ_HOSP),
            TJ_HOSP,
            TJ,
            BJ,
            json!({"data": {"setl_id": setl_id, "mdtrt_id": v1, "psn_no": LI}}),
        ),
    )
    .await;
    c.drain().await;
    assert_eq!(c.node(BJ).balance(&personal(BJ, LI)).await, 1_523_080);
    // The insured side's accumulators were restored: the same bill splits the same again.
    let v1b = c.visit(TJ, TJ, TJ_HOSP, LI, BJ, 50).await;
    let out = c.ok(TJ, &c.settle_env(TJ, TJ_HOSP, LI, BJ, &v1b, 50)).await;
    assert_eq!(split_of(&out), (150_000, 17_000, 133_000, 0));

    // --- 2. Beijing employee in Shijiazhuang: settle, reverse (2601), settle again.
    let v2 = c.visit(HB, "130100", SJZ_HOSP, CHEN, BJ, 1).await;
    let settle = c.settle_env("130100", SJZ_HOSP, CHEN, BJ, &v2, 1);
    let out = c.ok(HB, &settle).await;
    assert_eq!(split_of(&out), (3_000, 0, 1_234, 1_766));
    assert_eq!(c.node(BJ).balance(&personal(BJ, CHEN)).await, 0);
    let reply = c
        .ok(
            HB,
            &envelope(
                "2601",
                &c.msgid(SJZ_HOSP),
                SJZ_HOSP,
                "130100",
                BJ,
                json!({"data": {"psn_no": CHEN, "omsgid": settle["msgid"], "oinfno": "2207"}}),
            ),
        )
        .await;
    assert_eq!(reply["data"]["rslt"], "reversed");
    c.drain().await;
    assert_eq!(c.node(BJ).balance(&personal(BJ, CHEN)).await, 1_234);
    let v2b = c.visit(HB, "130100", SJZ_HOSP, CHEN, BJ, 1).await;
    let out = c
        .ok(HB, &c.settle_env("130100", SJZ_HOSP, CHEN, BJ, &v2b, 1))
        .await;
    assert_eq!(split_of(&out), (3_000, 0, 1_234, 1_766));

    // --- 3. Tianjin employee in Beijing: settle, cancel, settle again.
    let v3 = c.visit(BJ, BJ, BJ_HOSP, ZHAO, TJ, 1).await;
    let out = c.ok(BJ, &c.settle_env(BJ, BJ_HOSP, ZHAO, TJ, &v3, 1)).await;
    assert_eq!(split_of(&out), (3_000, 0, 3_000, 0));
    let setl_id = out["setlinfo"]["setl_id"].as_str().unwrap().to_owned();
    c.ok(
        BJ,
        &envelope(
            "2208",
            &c.msgid(BJ_HOSP),
            BJ_HOSP,
            BJ,
            TJ,
            json!({"data": {"setl_id": setl_id, "mdtrt_id": v3, "psn_no": ZHAO}}),
        ),
    )
    .await;
    c.drain().await;
    assert_eq!(c.node(TJ).balance(&personal(TJ, ZHAO)).await, 128_800);
    let v3b = c.visit(BJ, BJ, BJ_HOSP, ZHAO, TJ, 1).await;
    c.ok(BJ, &c.settle_env(BJ, BJ_HOSP, ZHAO, TJ, &v3b, 1))
        .await;
    c.drain().await;

    // --- Money on each side (credit balances; a debit balance is negative).
    let tj = c.node(TJ);
    let bj = c.node(BJ);
    let hb = c.node(HB);
    assert_eq!(tj.balance(&institution(TJ, TJ_HOSP)).await, 150_000);
    assert_eq!(tj.balance(&clearing(TJ, BJ, "310100")).await, -17_000);
    // One clearing account per counter-region and fund holds both directions (bilateral net):
    // Tianjin's claim for 李淑芬 (133000) less its debt for 赵文博's care in Beijing (3000).
    assert_eq!(
        tj.balance(&clearing(TJ, BJ, "310200")).await,
        -(133_000 - 3_000)
    );
    assert_eq!(bj.balance(&clearing(BJ, TJ, "310100")).await, 17_000);
    assert_eq!(
        bj.balance(&clearing(BJ, TJ, "310200")).await,
        133_000 - 3_000
    );
    assert_eq!(bj.balance(&personal(BJ, LI)).await, 1_523_080 - 133_000);
    assert_eq!(hb.balance(&institution(HB, SJZ_HOSP)).await, 3_000);
    assert_eq!(hb.balance(&clearing(HB, BJ, "310200")).await, -1_234);
    assert_eq!(bj.balance(&clearing(BJ, HB, "310200")).await, 1_234);
    assert_eq!(bj.balance(&personal(BJ, CHEN)).await, 0);
    assert_eq!(bj.balance(&institution(BJ, BJ_HOSP)).await, 3_000);
    assert_eq!(tj.balance(&personal(TJ, ZHAO)).await, 128_800 - 3_000);
    for n in &c.nodes {
        n.verify().await;
    }

    // --- Window close (atomic cut at each origin) and the net report.
    let mut expected = std::collections::BTreeMap::new();
    expected.insert(
        TJ,
        vec![(TJ, BJ, 310_100, 17_000), (TJ, BJ, 310_200, 133_000)],
    );
    expected.insert(HB, vec![(HB, BJ, 310_200, 1_234)]);
    expected.insert(BJ, vec![(BJ, TJ, 310_200, 3_000)]);
    for origin in NODES {
        let o = c.node(origin);
        let closed = o.node.close_window(&o.medical).await.unwrap();
        assert_eq!(closed, 1);
        let mut reports = Vec::new();
        for n in &c.nodes {
            reports.push(
                n.node
                    .report(&n.medical, origin.parse().unwrap(), 1)
                    .await
                    .unwrap(),
            );
        }
        assert!(
            reports.iter().any(|r| r.final_at_origin),
            "origin {origin} not final"
        );
        let net = NetReport::from_reports(&reports);
        assert!(net.balanced(), "origin {origin}: {net:?}");
        let want: Vec<(u32, u32, u32, i64)> = expected[origin]
            .iter()
            .map(|(a, b, f, v)| (a.parse().unwrap(), b.parse().unwrap(), *f, *v))
            .collect();
        assert_eq!(net.owed, want, "origin {origin}");
    }

    // --- 4. 陈晓's account is empty now: one more 30.00 bill in Shijiazhuang is all cash, nothing
    // owed between the nodes, yet it counts toward the deductible at the insured node, whose
    // 5206 shows the two live bills below it (v2 was reversed): 2 × 30.00.
    let v2c = c.visit(HB, "130100", SJZ_HOSP, CHEN, BJ, 1).await;
    let out = c
        .ok(HB, &c.settle_env("130100", SJZ_HOSP, CHEN, BJ, &v2c, 1))
        .await;
    assert_eq!(split_of(&out), (3_000, 0, 0, 3_000));
    let cum = c
        .ok(
            BJ,
            &envelope(
                "5206",
                &c.msgid(BJ_HOSP),
                BJ_HOSP,
                BJ,
                BJ,
                json!({"data": {"psn_no": CHEN}}),
            ),
        )
        .await;
    let deductible_used = cum["cuminfo"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cum_type_code"] == "outpatient.deductible_used")
        .map(|c| fen(&c["cum"]));
    assert_eq!(deductible_used, Some(6_000), "{cum}");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_settle_cancel_reverse_and_clear_sqlite() {
    run(common::Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_settle_cancel_reverse_and_clear_postgres() {
    run(common::Db::Postgres).await;
}
