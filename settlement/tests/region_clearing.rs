//! The clearing windows and the monthly clearing run between regions (issue 6), on SQLite and
//! PostgreSQL, three in-process nodes over real HTTP (`region_support`):
//! - closing a window and running its clearing posts the settlement between regions at both
//!   ends: every claim of the window is settled against each region's national clearing account,
//!   the counter-regions confirmed every line first, and the regions' net positions sum to zero
//!   and equal the standing claims computed here by hand;
//! - a reversal in a later window of a claim settled in an earlier one flows back in the later
//!   window's run;
//! - a counter node whose events disagree with the statement does not confirm: nothing is posted;
//! - a window that is open or not final cannot be cleared;
//! - the hospitals' monthly detail (3260), its confirmation (3261) and rollback (3262).
//!
//! Oracle (hand arithmetic, as in region_e2e.rs, fixtures/policy): 李淑芬 (Beijing retiree) 50 ×
//! 30.00 at a Tianjin 三级 hospital: first bill of the year fund 170.00, account 1330.00; the next
//! ones (deductible used) fund 1275.00, account 225.00. 陈晓 (Beijing, account 12.34) 1 × 30.00 at
//! 石家庄: account 12.34, cash 17.66. 赵文博 (Tianjin, account 1288.00) 1 × 30.00 at Beijing and at
//! 石家庄: account 30.00 each (below Tianjin's deductible).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod region_support;
mod service_support;

use region_support::{BJ, Cluster, HB, TJ, clearing, envelope};
use serde_json::{Value, json};
use service_support::fen;
use settlement::region::clearing_run::{ClearingRun, FundFen};

const TJ_HOSP: &str = "H12010100001";
const SJZ_HOSP: &str = "H13010200002";
const BJ_HOSP: &str = "H11010500001";
const LI: &str = "11000000000000000002";
const CHEN: &str = "11000000000000000003";
const ZHAO: &str = "12000000000000000001";
const LI_CERTNO: &str = "110108195602143020";

async fn settle(
    c: &Cluster,
    at: &str,
    area: &str,
    hosp: &str,
    psn: &str,
    ins: &str,
    cnt: u32,
) -> Value {
    let v = c.visit(at, area, hosp, psn, ins, cnt).await;
    c.ok(at, &c.settle_env(area, hosp, psn, ins, &v, cnt)).await
}

fn amounts(run: &ClearingRun, counter: &str) -> Vec<(u32, i64)> {
    run.counters
        .iter()
        .find(|r| r.counter.to_string() == counter)
        .map(|r| {
            r.amounts
                .iter()
                .map(|FundFen { fund_pay_type, fen }| (*fund_pay_type, *fen))
                .collect()
        })
        .unwrap_or_default()
}

async fn clear(c: &Cluster, origin: &str, window: i64) -> ClearingRun {
    let n = c.node(origin);
    let run = n.node.clear_window(&n.medical, window).await.unwrap();
    c.drain().await;
    run
}

/// Runs `sql` on a node's database behind its back (to damage it).
async fn raw_sql(test: &common::TestDb, sql: &str) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if let Some(path) = test.sqlite_path() {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let schema = test.pg_schema().unwrap();
        let options =
            <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&common::pg_url())
                .unwrap()
                .options([("search_path", schema)]);
        let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

async fn positions(c: &Cluster) -> [i64; 3] {
    let mut out = [0; 3];
    for (i, a) in [BJ, TJ, HB].into_iter().enumerate() {
        let n = c.node(a);
        out[i] = n.node.national_position(&n.medical).await.unwrap();
    }
    out
}

async fn close_all(c: &Cluster) {
    c.drain().await;
    for n in &c.nodes {
        n.node.close_window(&n.medical).await.unwrap();
    }
    c.drain().await;
}

async fn run(db: common::Db) {
    let c = Cluster::start(db).await;

    // --- Window 1 of every origin.
    let li1 = settle(&c, TJ, TJ, TJ_HOSP, LI, BJ, 50).await;
    assert_eq!(
        (
            fen(&li1["setlinfo"]["hifp_pay"]),
            fen(&li1["setlinfo"]["acct_pay"])
        ),
        (17_000, 133_000)
    );
    let chen = settle(&c, HB, "130100", SJZ_HOSP, CHEN, BJ, 1).await;
    assert_eq!(fen(&chen["setlinfo"]["acct_pay"]), 1_234);
    settle(&c, BJ, BJ, BJ_HOSP, ZHAO, TJ, 1).await;
    let v_zhao_hb = c.visit(HB, "130100", SJZ_HOSP, ZHAO, TJ, 1).await;
    let zhao_hb = c
        .ok(
            HB,
            &c.settle_env("130100", SJZ_HOSP, ZHAO, TJ, &v_zhao_hb, 1),
        )
        .await;
    assert_eq!(fen(&zhao_hb["setlinfo"]["acct_pay"]), 3_000);

    // An open window cannot be cleared.
    let tj = c.node(TJ);
    assert!(tj.node.clear_window(&tj.medical, 1).await.is_err());

    close_all(&c).await;
    assert_eq!(
        positions(&c).await,
        [0, 0, 0],
        "nothing settled before the runs"
    );
    let run_tj = clear(&c, TJ, 1).await;
    assert!(run_tj.settled);
    assert_eq!(
        amounts(&run_tj, BJ),
        vec![(310_100, 17_000), (310_200, 133_000)]
    );
    let run_hb = clear(&c, HB, 1).await;
    assert!(run_hb.settled);
    assert_eq!(amounts(&run_hb, BJ), vec![(310_200, 1_234)]);
    assert_eq!(amounts(&run_hb, TJ), vec![(310_200, 3_000)]);
    let run_bj = clear(&c, BJ, 1).await;
    assert_eq!(amounts(&run_bj, TJ), vec![(310_200, 3_000)]);
    for run in [&run_tj, &run_hb, &run_bj] {
        assert!(
            run.counters.iter().all(|r| r.confirmation.confirmed),
            "{run:?}"
        );
    }
    // Positions: TJ receives 1500.00 from BJ, pays BJ 30.00 and HB 30.00; BJ pays TJ 1500.00
    // and HB 12.34, receives 30.00; HB receives 12.34 and 30.00.
    let p = positions(&c).await;
    assert_eq!(p, [-148_234, 144_000, 4_234]);
    assert_eq!(p.iter().sum::<i64>(), 0);
    // Every claim of window 1 is settled: the clearing accounts are back to zero.
    for (me, counter) in [(BJ, TJ), (TJ, BJ), (BJ, HB), (HB, BJ), (TJ, HB), (HB, TJ)] {
        for fund in ["310100", "310200"] {
            assert_eq!(
                c.node(me).balance(&clearing(me, counter, fund)).await,
                0,
                "{me} toward {counter} {fund}"
            );
        }
    }
    // A second run of a settled window changes nothing.
    let again = clear(&c, TJ, 1).await;
    assert!(again.settled);
    assert_eq!(positions(&c).await, p);

    // --- Window 2: 赵文博's 石家庄 bill (cleared in window 1) is cancelled; 李淑芬 again.
    let setl_id = zhao_hb["setlinfo"]["setl_id"].clone();
    c.ok(
        HB,
        &envelope(
            "2208",
            &c.msgid(SJZ_HOSP),
            SJZ_HOSP,
            "130100",
            TJ,
            json!({"data": {"setl_id": setl_id, "mdtrt_id": v_zhao_hb, "psn_no": ZHAO}}),
        ),
    )
    .await;
    let li2 = settle(&c, TJ, TJ, TJ_HOSP, LI, BJ, 50).await;
    assert_eq!(
        (
            fen(&li2["setlinfo"]["hifp_pay"]),
            fen(&li2["setlinfo"]["acct_pay"])
        ),
        (127_500, 22_500)
    );
    close_all(&c).await;
    let run = clear(&c, HB, 2).await;
    assert_eq!(
        amounts(&run, TJ),
        vec![(310_200, -3_000)],
        "the reversal flows back"
    );
    let run = clear(&c, TJ, 2).await;
    assert_eq!(
        amounts(&run, BJ),
        vec![(310_100, 127_500), (310_200, 22_500)]
    );
    clear(&c, BJ, 2).await;
    // Independent: the standing claims. TJ holds 李淑芬's two bills (3000.00) and owes BJ 30.00;
    // BJ owes TJ 3000.00 and HB 12.34 and holds 30.00 on TJ; HB holds 12.34 on BJ.
    let p = positions(&c).await;
    assert_eq!(p, [-300_000 - 1_234 + 3_000, 300_000 - 3_000, 1_234]);
    assert_eq!(p.iter().sum::<i64>(), 0);

    // --- Window 3 at Tianjin: the Beijing node's figures are damaged before the run: it does
    // not confirm and nothing is posted.
    let li3 = settle(&c, TJ, TJ, TJ_HOSP, LI, BJ, 50).await;
    close_all(&c).await;
    let xfer = settlement::region::xfer_id(
        settlement::Admdvs::parse(TJ).unwrap(),
        li3["setlinfo"]["medins_setl_id"].as_str().unwrap(),
    );
    raw_sql(
        &c.node(BJ).test,
        &format!("DELETE FROM region_events WHERE xfer_id = '{xfer}'"),
    )
    .await;
    let run = clear(&c, TJ, 3).await;
    assert!(!run.settled);
    let bj_run = run
        .counters
        .iter()
        .find(|r| r.counter.to_string() == BJ)
        .unwrap();
    assert!(!bj_run.confirmation.confirmed);
    assert_eq!(bj_run.confirmation.mismatches.len(), 2, "{bj_run:?}");
    assert!(
        bj_run
            .confirmation
            .mismatches
            .iter()
            .all(|m| m.xfer_id == xfer && m.counter_fen == 0)
    );
    assert_eq!(
        positions(&c).await,
        p,
        "nothing posted without confirmation"
    );

    // --- The hospitals' monthly detail.
    let setl_time = li1["setlinfo"]["setl_time"].as_str().unwrap().to_owned();
    let (year, month) = (&setl_time[0..4], &setl_time[5..7]);
    let page = |start: u32| {
        envelope(
            "3260",
            &c.msgid(TJ_HOSP),
            TJ_HOSP,
            TJ,
            BJ,
            json!({"data": {"trt_year": year, "trt_month": month, "startrow": start}}),
        )
    };
    let rows = c.ok(TJ, &page(1)).await["data"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["seqno"], i + 1);
        assert_eq!(row["certno"], LI_CERTNO);
        assert_eq!(row["medins_no"], TJ_HOSP);
        assert_eq!(row["fulamt_advpay_flag"], "0");
        assert_eq!(
            (fen(&row["medfee_sumamt"]), fen(&row["optins_pay_sumamt"])),
            (150_000, 150_000)
        );
    }
    let rest = c.ok(TJ, &page(2)).await["data"].as_array().unwrap().len();
    assert_eq!(rest, 2);
    // 石家庄: 陈晓 (30.00, of which 12.34 paid by Beijing), 赵文博 (30.00) and its cancellation.
    let hb_page = envelope(
        "3260",
        &c.msgid(SJZ_HOSP),
        SJZ_HOSP,
        "130100",
        BJ,
        json!({"data": {"trt_year": year, "trt_month": month, "startrow": 1}}),
    );
    let rows = c.ok(HB, &hb_page).await["data"].as_array().unwrap().clone();
    let mut figures: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (fen(&r["medfee_sumamt"]), fen(&r["optins_pay_sumamt"])))
        .collect();
    figures.sort_unstable();
    assert_eq!(
        figures,
        vec![(-3_000, -3_000), (3_000, 1_234), (3_000, 3_000)]
    );
    let detail: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"certno": r["certno"], "mdtrt_id": r["mdtrt_id"],
                "mdtrt_setl_time": r["mdtrt_setl_time"], "setl_sn": r["setl_sn"],
                "medfee_sumamt": r["medfee_sumamt"], "optins_pay_sumamt": r["optins_pay_sumamt"],
                "cnfm_flag": if i == 2 { "0" } else { "1" }})
        })
        .collect();
    let confirm = envelope(
        "3261",
        &c.msgid(SJZ_HOSP),
        SJZ_HOSP,
        "130100",
        BJ,
        json!({"data": {"trt_year": year, "trt_month": month, "totalrow": 3}, "detail": detail}),
    );
    let out = c.ok(HB, &confirm).await;
    assert_eq!(
        (
            out["data"]["cnfm_cnt"].clone(),
            out["data"]["dspt_cnt"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(c.ok(HB, &confirm).await, out, "a resend answers the same");
    // A line whose amount differs from the detail, or a wrong count, is refused.
    let mut wrong = detail.clone();
    wrong[0]["medfee_sumamt"] = json!("31.00");
    for (lines, total) in [(wrong, 3), (detail.clone(), 2)] {
        let reply = c
            .send(
                HB,
                &envelope(
                    "3261",
                    &c.msgid(SJZ_HOSP),
                    SJZ_HOSP,
                    "130100",
                    BJ,
                    json!({"data": {"trt_year": year, "trt_month": month, "totalrow": total},
                        "detail": lines}),
                ),
            )
            .await;
        assert_eq!(reply["infcode"], -1, "{reply}");
    }
    let back = c
        .ok(
            HB,
            &envelope(
                "3262",
                &c.msgid(SJZ_HOSP),
                SJZ_HOSP,
                "130100",
                BJ,
                json!({"trt_year": year, "trt_month": month, "otransid": "0"}),
            ),
        )
        .await;
    assert_eq!(back["data"]["rolled_back"], 3);

    for n in &c.nodes {
        n.verify().await;
    }
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_runs_settle_between_regions_sqlite() {
    run(common::Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_runs_settle_between_regions_postgres() {
    run(common::Db::Postgres).await;
}
