//! Several stateless processes per region over one database (issue 6 scope): the Beijing node is
//! TWO `settlement serve --region 110000` processes on one PostgreSQL database; Tianjin is one
//! process on SQLite. Under concurrent load every Beijing person is settled from three streams at
//! once: at a Beijing hospital through process 1, through process 2, and at a Tianjin hospital
//! (whose splits reach the Beijing processes round robin through a proxy); Tianjin persons are
//! settled at the Beijing hospital through both processes; settlements made through one process
//! are cancelled through the other; both nodes' clearing windows are closed, alternately through
//! each Beijing process, while the load runs. Afterwards every balance must equal the oracle and
//! every clearing window must be final and balanced.
//!
//! Oracle (fixtures/policy/110000.toml, Beijing employee outpatient at a 三级 hospital: annual
//! deductible 1800, ratio 0.70, B; no temporary-visit cut for 京津冀): every Beijing bill is
//! 10 × 30.00 = 300.00 of a 甲类 drug. While the load runs nothing is cancelled, so whatever the
//! order, the N bills of a person must have been paid 0.70 × max(0, 300 N − 1800) by the fund in
//! total (each split must see the accumulators every earlier commit left, in either process; two
//! splits computed from the same stale year-to-date would both stop at the deductible's edge).
//! The cancellations after the load each take back exactly what their bill's reply said it paid.
//! Balances 20000.00 cover every personal share. Tianjin bills are 1 × 30.00, below Tianjin's
//! deductible: account 30.00 each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod region_cluster_support;
mod region_support;
mod service_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use region_cluster_support::proxy::Proxy;
use region_cluster_support::{
    Answer, Bill, His, ProcNode, Running, extra_psn, persons, regions_toml,
};
use region_support::{BJ, HB, TJ, clearing, institution, personal};
use settlement::region::Regions;
use settlement::region::clearing::NetReport;
use settlement::{AccountSpec, Admdvs, FundPayType};
use tokio::sync::Mutex;

const BJ_PERSONS: usize = 6;
const TJ_PERSONS: usize = 4;
const BILLS_PER_STREAM: usize = 4;
const BJ_OPENING: i64 = 2_000_000;
const TJ_OPENING: i64 = 200_000;
const BJ_HOSP: &str = "H11010500001";
const TJ_HOSP: &str = "H12010100001";

fn fund_of(n: i64) -> i64 {
    (30_000 * n - 180_000).max(0) * 70 / 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_serve_one_region_database_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let regions_file = dir.path().join("regions.toml");
    let mut bj = ProcNode::create(
        BJ,
        common::Db::Postgres,
        &persons(BJ, BJ_PERSONS, BJ_OPENING),
        &regions_file,
        dir.path(),
    )
    .await;
    let mut tj = ProcNode::create(
        TJ,
        common::Db::Sqlite,
        &persons(TJ, TJ_PERSONS, TJ_OPENING),
        &regions_file,
        dir.path(),
    )
    .await;
    let hb = ProcNode::create(HB, common::Db::Sqlite, &[], &regions_file, dir.path()).await;
    // Not a fault test: every split is answered (contention only makes it wait).
    bj.request_timeout_ms = 10_000;
    tj.request_timeout_ms = 10_000;
    let port2 = region_cluster_support::free_port();
    let p2_url = format!("http://127.0.0.1:{port2}");
    let proxy = Proxy::start(vec![bj.url(), p2_url.clone()], 5).await;
    let text = regions_toml(&[(BJ, proxy.url()), (TJ, tj.url()), (HB, hb.url())]);
    std::fs::write(&regions_file, &text).unwrap();
    let regions = Regions::parse(&text).unwrap();
    bj.start().await;
    let p2 = Running(
        ProcNode::spawn_on(
            BJ,
            port2,
            &bj.db,
            &regions_file,
            &dir.path().join("node-110000-p2.log"),
            10_000,
        )
        .await,
    );
    tj.start().await;
    let p1_url = bj.url();
    let bj_urls = [p1_url.clone(), p2_url.clone()];

    let his = His::new(3);
    let bills: Arc<Mutex<Vec<Bill>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // Beijing persons: three streams each (process 1, process 2, Tianjin).
    for k in 0..BJ_PERSONS {
        let psn = extra_psn(BJ, k);
        let streams: [(String, &'static str, &'static str, &'static str); 3] = [
            (p1_url.clone(), BJ, BJ, BJ_HOSP),
            (p2_url.clone(), BJ, BJ, BJ_HOSP),
            (tj.url(), TJ, TJ, TJ_HOSP),
        ];
        for (url, treating, area, hosp) in streams {
            let (his, bills, psn) = (his.clone(), bills.clone(), psn.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..BILLS_PER_STREAM {
                    let bill = his
                        .bill(&url, treating, area, hosp, &psn, BJ, 10)
                        .await
                        .expect("2201/2204 answered");
                    bills.lock().await.push(bill);
                }
            }));
        }
    }
    // Tianjin persons at the Beijing hospital through both processes.
    for k in 0..TJ_PERSONS {
        let psn = extra_psn(TJ, k);
        for url in bj_urls.clone() {
            let (his, bills, psn) = (his.clone(), bills.clone(), psn.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..BILLS_PER_STREAM {
                    let bill = his
                        .bill(&url, BJ, BJ, BJ_HOSP, &psn, TJ, 1)
                        .await
                        .expect("2201/2204 answered");
                    bills.lock().await.push(bill);
                }
            }));
        }
    }
    // Window closes while the load runs, through either Beijing process, and at Tianjin.
    let closer = {
        let (his, urls, tj_url) = (his.clone(), bj_urls.clone(), tj.url());
        tokio::spawn(async move {
            let mut closed = Vec::new();
            for i in 0..6 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                closed.push(his.close_window(&urls[i % 2]).await);
                if i % 2 == 1 {
                    his.close_window(&tj_url).await;
                }
            }
            closed
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    let closed = closer.await.unwrap();
    let mut sorted = closed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        closed.len(),
        "each close cut its own window: {closed:?}"
    );

    // Cancel, through the other process, one settlement per person made through process 1.
    let mut bills = Arc::try_unwrap(bills).unwrap().into_inner();
    for b in &bills {
        assert!(b.settled(), "{} was not settled: {:?}", b.xfer(), b.answer);
    }
    let mut cancelled_for: BTreeMap<String, usize> = BTreeMap::new();
    for b in bills.iter_mut() {
        if b.treating != BJ || cancelled_for.contains_key(&b.psn) {
            continue;
        }
        let env = his.cancel_env(b);
        let reply = his.send(&p2_url, &env).await.unwrap();
        assert_eq!(
            reply["infcode"],
            0,
            "cancel of {} through process 2: {reply}",
            b.xfer()
        );
        b.undone = true;
        cancelled_for.insert(b.psn.clone(), 1);
    }
    let urls = vec![p1_url.clone(), p2_url.clone(), tj.url()];
    his.wait_quiet(&urls, Duration::from_secs(60)).await;
    for url in [&p1_url, &tj.url()] {
        his.close_window(url).await;
    }
    his.wait_quiet(&urls, Duration::from_secs(60)).await;
    region_cluster_support::terminate(p2, "110000 p2");
    bj.stop();
    tj.stop();

    // --- The oracle.
    let live = |pred: &dyn Fn(&Bill) -> bool| -> i64 {
        bills
            .iter()
            .filter(|b| b.expected_live() && pred(b))
            .count()
            .try_into()
            .unwrap()
    };
    let bjv = bj.inspect(&regions).await;
    let tjv = tj.inspect(&regions).await;
    bjv.verify("110000").await;
    tjv.verify("120000").await;
    for b in &bills {
        let t = if b.treating == BJ { &bjv } else { &tjv };
        let s = if b.insured == BJ { &bjv } else { &tjv };
        let (t, s) = (t.transfer(&b.xfer()).await, s.transfer(&b.xfer()).await);
        if b.treating != b.insured {
            assert_eq!(
                (t.live_at_treating(), s.live_at_insured()),
                (b.expected_live(), b.expected_live()),
                "{}: {t:?} {s:?}",
                b.xfer()
            );
        }
        if let (Answer::Settled(output), TJ) = (&b.answer, b.insured) {
            assert_eq!(service_support::fen(&output["setlinfo"]["acct_pay"]), 3_000);
        }
    }
    let paid = |b: &Bill, field: &str| match &b.answer {
        Answer::Settled(output) => service_support::fen(&output["setlinfo"][field]),
        _ => 0,
    };
    let (mut fund_total, mut fund_back) = (0, 0);
    for k in 0..BJ_PERSONS {
        let psn = extra_psn(BJ, k);
        let mine: Vec<&Bill> = bills.iter().filter(|b| b.psn == psn).collect();
        let n: i64 = mine.len().try_into().unwrap();
        let replies_fund: i64 = mine.iter().map(|b| paid(b, "hifp_pay")).sum();
        assert_eq!(
            replies_fund,
            fund_of(n),
            "{psn}: {n} bills settled under load, the fund paid {replies_fund}"
        );
        let back_fund: i64 = mine
            .iter()
            .filter(|b| b.undone)
            .map(|b| paid(b, "hifp_pay"))
            .sum();
        let back_acct: i64 = mine
            .iter()
            .filter(|b| b.undone)
            .map(|b| paid(b, "acct_pay"))
            .sum();
        fund_total += fund_of(n);
        fund_back += back_fund;
        assert_eq!(
            bjv.balance(&personal(BJ, &psn)).await,
            BJ_OPENING - (30_000 * n - fund_of(n)) + back_acct,
            "{psn}: {n} bills settled, one cancelled"
        );
    }
    let pooled = AccountSpec::fund(Admdvs::parse(BJ).unwrap(), FundPayType::EMPLOYEE_POOLED);
    assert_eq!(bjv.balance(&pooled).await, -(fund_total - fund_back));
    for k in 0..TJ_PERSONS {
        let psn = extra_psn(TJ, k);
        let n = live(&|b| b.psn == psn);
        assert_eq!(
            tjv.balance(&personal(TJ, &psn)).await,
            TJ_OPENING - 3_000 * n
        );
    }
    let bj_local = live(&|b| b.insured == BJ && b.treating == BJ);
    let bj_remote = live(&|b| b.insured == BJ && b.treating == TJ);
    let tj_at_bj = live(&|b| b.insured == TJ);
    assert_eq!(
        bjv.balance(&institution(BJ, BJ_HOSP)).await,
        30_000 * bj_local + 3_000 * tj_at_bj
    );
    assert_eq!(
        tjv.balance(&institution(TJ, TJ_HOSP)).await,
        30_000 * bj_remote
    );
    let mut bj_clearing = 0;
    for fund in ["310100", "310200"] {
        let b = bjv.balance(&clearing(BJ, TJ, fund)).await;
        let t = tjv.balance(&clearing(TJ, BJ, fund)).await;
        assert_eq!(b, -t, "fund {fund}: the two sides mirror each other");
        bj_clearing += b;
    }
    assert_eq!(bj_clearing, 30_000 * bj_remote - 3_000 * tj_at_bj);
    // Windows: every closed window of both origins final and balanced across the nodes.
    let hbv = hb.inspect(&regions).await;
    for (origin, o) in [(BJ, &bjv), (TJ, &tjv)] {
        let open = o.node.open_window(&o.medical).await.unwrap();
        assert!(open > 2, "{origin}: windows were closed under load");
        for window in 1..open {
            let mut reports = Vec::new();
            for v in [&bjv, &tjv, &hbv] {
                reports.push(
                    v.node
                        .report(&v.medical, origin.parse().unwrap(), window)
                        .await
                        .unwrap(),
                );
            }
            assert!(
                reports.iter().any(|r| r.final_at_origin),
                "{origin} {window}"
            );
            let net = NetReport::from_reports(&reports);
            assert!(net.balanced(), "{origin} window {window}: {net:?}");
        }
    }
    eprintln!(
        "shared database: {} bills ({bj_local} local and {bj_remote} cross-region Beijing, \
         {tj_at_bj} Tianjin at Beijing stand), windows closed {closed:?}",
        bills.len()
    );
    for v in [bjv, tjv, hbv] {
        v.close().await;
    }
    drop(proxy);
    for n in [bj, tj, hb] {
        n.destroy().await;
    }
}
