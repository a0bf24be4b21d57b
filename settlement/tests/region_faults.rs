//! Fault tests on real processes (issue 6, must-show 2): three `settlement serve --region`
//! processes, HIS clients settling a stream of cross-region bills over HTTP (and cancelling or
//! reversing some of them as they go), and faults in the middle of the stream:
//! - `nodes_killed_mid_stream_and_restarted`: the Beijing node (insured node of Beijing persons,
//!   treating node of Tianjin persons) is killed with SIGKILL while settlements are in flight,
//!   the stream goes on without it, it restarts on the same database; then the same for Tianjin;
//! - `link_faults_and_a_partition_heal`: every inter-node message passes a proxy that drops,
//!   drops the answer, delays, duplicates and holds back (reorders) messages; then Beijing is cut
//!   off (connection refused) and restored.
//!
//! After the faults heal (the HIS sends 2601 for every bill it got no answer to and resends any
//! 2208/2601 it got no answer to, as the national interface prescribes; outboxes drain,
//! resolvers run, every window closes and its clearing run settles it between the regions), the
//! processes stop and each database is opened here: every bill must stand on both sides exactly
//! when the HIS was told it settled (and it did not cancel it), every ledger verifies, every
//! balance equals the oracle below, every clearing window is final, balanced across the three
//! nodes and sums to the oracle's claims, and each region's net position is its claims less the
//! claims on it (all clearing accounts settled to zero; the positions sum to zero).
//!
//! Oracle (hand arithmetic on fixtures/policy, as in region_e2e.rs):
//! - made-up employees of Beijing and Tianjin (balance 2000.00), bills of 1 × 30.00 of a 甲类
//!   drug at 三级 hospitals, at most 25 each: below every deductible (Beijing 1800, Tianjin ≥
//!   800), so each bill is account 30.00, fund 0, cash 0;
//! - 李淑芬 (Beijing retiree, account 15230.80) first settles 67 × 30.00 = 2010.00 at home (a
//!   Beijing 三级 hospital, before the stream): deductible 1300, ratio 0.85 → fund 603.50,
//!   account 1406.50; her year's deductible is then used up, so each of her stream bills of
//!   50 × 30.00 = 1500.00 at a Tianjin 三级 hospital (at most 8; no temporary-visit cut, 京津冀
//!   视同备案) is fund 1275.00 and account 225.00 whatever the order of settlements and
//!   reversals (the annual cap 20000 is not reached: 603.50 + 8 × 1275.00).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod region_cluster_support;
mod region_support;
mod service_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use region_cluster_support::proxy::{Faults, Proxy, Stats};
use region_cluster_support::{Answer, Bill, His, ProcNode, extra_psn, persons, regions_toml};
use region_support::{BJ, HB, TJ, clearing, institution, personal};
use settlement::region::Regions;
use settlement::{AccountSpec, Admdvs, FundPayType};

const BJ_HOSP: (&str, &str, &str) = (BJ, BJ, "H11010500001");
const TJ_HOSP: (&str, &str, &str) = (TJ, TJ, "H12010100001");
const HB_HOSP: (&str, &str, &str) = (HB, "130100", "H13010200002");
const LI: &str = "11000000000000000002";
const LI_OPENING: i64 = 1_523_080;
const EXTRA_OPENING: i64 = 200_000;
const EXTRA_PER_REGION: usize = 6;

/// What one HIS worker settles: a person, the hospitals it goes to in turn, the bill size.
#[derive(Clone)]
struct Plan {
    psn: String,
    insured: &'static str,
    hospitals: Vec<(&'static str, &'static str, &'static str)>,
    cnt: u32,
    max: usize,
}

fn plans() -> Vec<Plan> {
    let mut plans = vec![Plan {
        psn: LI.to_owned(),
        insured: BJ,
        hospitals: vec![TJ_HOSP],
        cnt: 50,
        max: 8,
    }];
    for k in 0..EXTRA_PER_REGION {
        plans.push(Plan {
            psn: extra_psn(BJ, k),
            insured: BJ,
            hospitals: vec![TJ_HOSP, HB_HOSP],
            cnt: 1,
            max: 25,
        });
        plans.push(Plan {
            psn: extra_psn(TJ, k),
            insured: TJ,
            hospitals: vec![BJ_HOSP, HB_HOSP],
            cnt: 1,
            max: 25,
        });
    }
    plans
}

/// The HIS side of a test: workers settling `plans` until stopped, undoing every fourth bill.
struct Stream {
    his: His,
    urls: HashMap<&'static str, String>,
    bills: Arc<Mutex<Vec<Bill>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Stream {
    fn start(his: His, urls: HashMap<&'static str, String>, workers: usize) -> Stream {
        let bills = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let all = plans();
        let mut handles = Vec::new();
        for w in 0..workers {
            let mine: Vec<Plan> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| i % workers == w)
                .map(|(_, p)| p.clone())
                .collect();
            let (his, urls, bills, stop) = (his.clone(), urls.clone(), bills.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                let mut counts = vec![0usize; mine.len()];
                let mut mine_settled: Vec<usize> = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let k = i % mine.len();
                    i += 1;
                    if counts.iter().zip(&mine).all(|(c, p)| *c >= p.max) {
                        break;
                    }
                    let plan = &mine[k];
                    if counts[k] >= plan.max {
                        continue;
                    }
                    let (treating, area, hosp) = plan.hospitals[counts[k] % plan.hospitals.len()];
                    let Some(bill) = his
                        .bill(
                            &urls[treating],
                            treating,
                            area,
                            hosp,
                            &plan.psn,
                            plan.insured,
                            plan.cnt,
                        )
                        .await
                    else {
                        // The 2201/2204 did not go through (a node down): try again later.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    counts[k] += 1;
                    let index = {
                        let mut all = bills.lock().unwrap();
                        all.push(bill);
                        all.len() - 1
                    };
                    if !bills.lock().unwrap()[index].settled() {
                        continue;
                    }
                    mine_settled.push(index);
                    // At every fourth settled bill of this worker, the one before it is undone:
                    // 2208 or 2601 in turn.
                    if mine_settled.len().is_multiple_of(4) {
                        let target = mine_settled[mine_settled.len() - 2];
                        let (url, env) = {
                            let all = bills.lock().unwrap();
                            let b = &all[target];
                            let env = if target.is_multiple_of(2) {
                                his.cancel_env(b)
                            } else {
                                his.reverse_env(b)
                            };
                            (urls[b.treating].clone(), env)
                        };
                        let reply = his.send(&url, &env).await;
                        let mut all = bills.lock().unwrap();
                        match reply {
                            Some(r) if r["infcode"] == 0 => all[target].undone = true,
                            Some(r) => panic!("undo of {} refused: {r}", all[target].xfer()),
                            None => all[target].undo = Some((url, env)),
                        }
                    }
                }
            }));
        }
        Stream {
            his,
            urls,
            bills,
            stop,
            workers: handles,
        }
    }

    fn count(&self) -> usize {
        self.bills.lock().unwrap().len()
    }

    /// Waits (bounded) until `more` further bills have been recorded.
    async fn wait_more(&self, more: usize) {
        let target = self.count() + more;
        for _ in 0..1200 {
            if self.count() >= target || self.workers.iter().all(|w| w.is_finished()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the stream made no progress: {} bills", self.count());
    }

    async fn stop(mut self) -> (His, HashMap<&'static str, String>, Vec<Bill>) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            w.await.unwrap();
        }
        let bills = self.bills.lock().unwrap().clone();
        (self.his, self.urls, bills)
    }
}

/// The HIS finishes what it left open: 2601 for every bill without an answer, a resend of
/// every 2208/2601 without an answer. Every node must answer now.
async fn finish_his(his: &His, urls: &HashMap<&'static str, String>, bills: &mut [Bill]) {
    for b in bills.iter_mut() {
        if b.answer == Answer::Unknown {
            let reply = his
                .send(&urls[b.treating], &his.reverse_env(b))
                .await
                .unwrap_or_else(|| panic!("2601 of {} answered", b.xfer()));
            assert_eq!(reply["infcode"], 0, "2601 of {}: {reply}", b.xfer());
            let rslt = reply["output"]["data"]["rslt"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            assert!(
                ["reversed", "voided", "nothing_settled"].contains(&rslt.as_str()),
                "2601 of an unanswered bill: {rslt}"
            );
            b.answer = Answer::Refused(format!("2601: {rslt}"));
        }
        if let Some((url, env)) = b.undo.take() {
            let reply = his.send(&url, &env).await.expect("the resend is answered");
            assert_eq!(reply["infcode"], 0, "resent undo of {}: {reply}", b.xfer());
            b.undone = true;
        }
    }
}

/// 李淑芬's bill at home before the stream: 67 × 30.00; and its split (fund, account), fen.
const LI_HOME_CNT: u32 = 67;
const LI_HOME: (i64, i64) = (60_350, 140_650);
/// Each of her stream bills at Tianjin, after the deductible: (fund, account), fen.
const LI_STREAM: (i64, i64) = (127_500, 22_500);

/// 李淑芬 uses up her year's deductible at a Beijing hospital (see the module's oracle).
async fn li_home_bill(his: &His, bj_url: &str) {
    let b = his
        .bill(bj_url, BJ, BJ, BJ_HOSP.2, LI, BJ, LI_HOME_CNT)
        .await
        .expect("2201/2204 at home");
    let Answer::Settled(output) = &b.answer else {
        panic!("home bill: {:?}", b.answer);
    };
    let fen = service_support::fen;
    assert_eq!(
        (
            fen(&output["setlinfo"]["hifp_pay"]),
            fen(&output["setlinfo"]["acct_pay"])
        ),
        LI_HOME
    );
}

fn fund_spec(region: &str) -> AccountSpec {
    AccountSpec::fund(Admdvs::parse(region).unwrap(), FundPayType::EMPLOYEE_POOLED)
}

/// Opens every (stopped) node's database and checks bills, balances and windows against the
/// oracle. Returns the count of transfers each treating node abandoned (a reversal was needed).
async fn check_cluster(nodes: &[ProcNode], regions: &Regions, bills: &[Bill]) -> usize {
    let mut views = BTreeMap::new();
    for n in nodes {
        let view = n.inspect(regions).await;
        view.verify(n.admdvs).await;
        views.insert(n.admdvs, view);
    }
    let mut abandoned = 0;
    for b in bills {
        let xfer = b.xfer();
        let t = views[b.treating].transfer(&xfer).await;
        let s = views[b.insured].transfer(&xfer).await;
        abandoned += usize::from(t.treating_states.iter().any(|x| x == "A"));
        assert_eq!(
            (t.live_at_treating(), s.live_at_insured()),
            (b.expected_live(), b.expected_live()),
            "bill {xfer} ({:?}, undone {}): treating {t:?}, insured {s:?}",
            b.answer,
            b.undone
        );
        if let Answer::Settled(output) = &b.answer
            && b.psn != LI
        {
            let s = &output["setlinfo"];
            let fen = service_support::fen;
            assert_eq!(
                (
                    fen(&s["medfee_sumamt"]),
                    fen(&s["hifp_pay"]),
                    fen(&s["acct_pay"])
                ),
                (3_000, 0, 3_000),
                "bill {xfer}"
            );
        }
    }
    let live = |pred: &dyn Fn(&Bill) -> bool| {
        bills
            .iter()
            .filter(|b| b.expected_live() && pred(b))
            .count()
            .try_into()
            .unwrap_or(i64::MAX)
    };
    let n_li = live(&|b| b.psn == LI);
    let (fund, acct_li) = (LI_STREAM.0 * n_li, LI_STREAM.1 * n_li);
    let bj_extra_at = |t: &str| live(&|b| b.insured == BJ && b.psn != LI && b.treating == t);
    let tj_at = |t: &str| live(&|b| b.insured == TJ && b.treating == t);

    // Insured side: personal accounts and Beijing's pooled fund.
    assert_eq!(
        views[BJ].balance(&personal(BJ, LI)).await,
        LI_OPENING - LI_HOME.1 - acct_li
    );
    assert_eq!(views[BJ].balance(&fund_spec(BJ)).await, -(LI_HOME.0 + fund));
    for k in 0..EXTRA_PER_REGION {
        for region in [BJ, TJ] {
            let psn = extra_psn(region, k);
            let n = live(&|b| b.psn == psn);
            assert_eq!(
                views[region].balance(&personal(region, &psn)).await,
                EXTRA_OPENING - 3_000 * n,
                "{psn}"
            );
        }
    }
    // Treating side: the hospitals' receivables.
    assert_eq!(
        views[TJ].balance(&institution(TJ, TJ_HOSP.2)).await,
        150_000 * n_li + 3_000 * bj_extra_at(TJ)
    );
    assert_eq!(
        views[HB].balance(&institution(HB, HB_HOSP.2)).await,
        3_000 * (bj_extra_at(HB) + tj_at(HB))
    );
    assert_eq!(
        views[BJ].balance(&institution(BJ, BJ_HOSP.2)).await,
        3_000 * i64::from(LI_HOME_CNT) + 3_000 * tj_at(BJ)
    );
    // Claims by (treating, insured, fund).
    let mut claims: BTreeMap<(&str, &str, u32), i64> = BTreeMap::new();
    claims.insert((TJ, BJ, 310_100), fund);
    claims.insert((TJ, BJ, 310_200), acct_li + 3_000 * bj_extra_at(TJ));
    claims.insert((HB, BJ, 310_200), 3_000 * bj_extra_at(HB));
    claims.insert((BJ, TJ, 310_200), 3_000 * tj_at(BJ));
    claims.insert((HB, TJ, 310_200), 3_000 * tj_at(HB));
    let claim = |t: &str, i: &str, f: u32| claims.get(&(t, i, f)).copied().unwrap_or(0);
    // Windows: all closed ones final and balanced; their figures add up to the claims.
    for origin in [BJ, TJ, HB] {
        let o = &views[origin];
        let open = o.node.open_window(&o.medical).await.unwrap();
        let mut sums: BTreeMap<(u32, u32), i64> = BTreeMap::new();
        for window in 1..open {
            let mut reports = Vec::new();
            for n in [BJ, TJ, HB] {
                let v = &views[n];
                reports.push(
                    v.node
                        .report(&v.medical, origin.parse().unwrap(), window)
                        .await
                        .unwrap(),
                );
            }
            assert!(
                reports.iter().any(|r| r.final_at_origin),
                "{origin} window {window} final"
            );
            let net = settlement::region::clearing::NetReport::from_reports(&reports);
            assert!(net.balanced(), "{origin} window {window}: {net:?}");
            for f in reports.iter().flat_map(|r| r.figures.iter()) {
                if f.node == o.node.me().code() {
                    *sums.entry((f.counter, f.fund_pay_type)).or_default() += f.fen;
                }
            }
        }
        for counter in [BJ, TJ, HB].into_iter().filter(|c| *c != origin) {
            for fund in [310_100, 310_200] {
                let got = sums
                    .get(&(counter.parse().unwrap(), fund))
                    .copied()
                    .unwrap_or(0);
                assert_eq!(
                    got,
                    claim(origin, counter, fund),
                    "{origin} → {counter} {fund}"
                );
            }
        }
    }
    // The clearing runs settled every window: net positions = claims held less claims owed,
    // summing to zero; every clearing account is back to zero.
    let mut sum = 0;
    for me in [BJ, TJ, HB] {
        let v = &views[me];
        let position = v.node.national_position(&v.medical).await.unwrap();
        let mut want = 0;
        for counter in [BJ, TJ, HB].into_iter().filter(|c| *c != me) {
            for (fund, code) in [(310_100, "310100"), (310_200, "310200")] {
                want += claim(me, counter, fund) - claim(counter, me, fund);
                assert_eq!(v.balance(&clearing(me, counter, code)).await, 0);
            }
        }
        assert_eq!(position, want, "{me} national position");
        sum += position;
    }
    assert_eq!(sum, 0);
    for (_, v) in views {
        v.close().await;
    }
    abandoned
}

/// Three nodes on SQLite with the regions file pointing at `urls_of(node ports)`.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<ProcNode>,
    regions: Regions,
}

impl Cluster {
    async fn create() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let regions_file = dir.path().join("regions.toml");
        let mut nodes = Vec::new();
        for admdvs in [BJ, TJ, HB] {
            nodes.push(
                ProcNode::create(
                    admdvs,
                    common::Db::Sqlite,
                    &persons(admdvs, EXTRA_PER_REGION, EXTRA_OPENING),
                    &regions_file,
                    dir.path(),
                )
                .await,
            );
        }
        Cluster {
            dir,
            nodes,
            regions: Regions::parse(&regions_toml(&[])).unwrap(),
        }
    }

    /// Writes the regions file with each node reached at `url_of(node)`.
    fn write_regions(&mut self, urls: &[(&str, String)]) {
        let text = regions_toml(urls);
        std::fs::write(self.dir.path().join("regions.toml"), &text).unwrap();
        self.regions = Regions::parse(&text).unwrap();
    }

    fn node(&mut self, admdvs: &str) -> &mut ProcNode {
        self.nodes.iter_mut().find(|n| n.admdvs == admdvs).unwrap()
    }

    fn his_urls(&self) -> HashMap<&'static str, String> {
        self.nodes.iter().map(|n| (n.admdvs, n.url())).collect()
    }

    async fn start_all(&mut self) {
        for n in &mut self.nodes {
            n.start().await;
        }
    }

    fn stop_all(&mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
    }

    async fn finish(self) {
        let Cluster { dir, nodes, .. } = self;
        for n in nodes {
            n.destroy().await;
        }
        drop(dir);
    }
}

/// Heals and checks: the HIS finishes, the cluster quiesces, every window closes, the nodes stop
/// and their databases are checked.
async fn heal_and_check(cluster: &mut Cluster, stream: Stream) -> (Vec<Bill>, usize) {
    let (his, urls, mut bills) = stream.stop().await;
    let all: Vec<String> = urls.values().cloned().collect();
    finish_his(&his, &urls, &mut bills).await;
    his.wait_quiet(&all, Duration::from_secs(60)).await;
    for url in &all {
        his.close_window(url).await;
    }
    his.wait_quiet(&all, Duration::from_secs(60)).await;
    for url in &all {
        his.clear_windows(url).await;
    }
    his.wait_quiet(&all, Duration::from_secs(60)).await;
    cluster.stop_all();
    let abandoned = check_cluster(&cluster.nodes, &cluster.regions, &bills).await;
    (bills, abandoned)
}

fn summary(what: &str, bills: &[Bill], abandoned: usize) -> (usize, usize) {
    let settled = bills.iter().filter(|b| b.settled()).count();
    let refused = bills
        .iter()
        .filter(|b| matches!(b.answer, Answer::Refused(_)))
        .count();
    eprintln!(
        "{what}: {} bills, {settled} settled, {refused} refused or unanswered, {} undone, \
         {abandoned} abandoned by the treating node (reversal needed)",
        bills.len(),
        bills.iter().filter(|b| b.undone).count()
    );
    (settled, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_killed_mid_stream_and_restarted() {
    let mut cluster = Cluster::create().await;
    let urls: Vec<(&str, String)> = cluster.nodes.iter().map(|n| (n.admdvs, n.url())).collect();
    cluster.write_regions(&urls);
    cluster.start_all().await;
    li_home_bill(&His::new(4), &cluster.his_urls()[BJ]).await;
    let stream = Stream::start(His::new(1), cluster.his_urls(), 5);
    stream.wait_more(25).await;
    cluster.node(BJ).kill9();
    stream.wait_more(15).await;
    cluster.node(BJ).start().await;
    stream.wait_more(20).await;
    cluster.node(TJ).kill9();
    stream.wait_more(10).await;
    cluster.node(TJ).start().await;
    stream.wait_more(15).await;
    let (bills, abandoned) = heal_and_check(&mut cluster, stream).await;
    let (settled, refused) = summary("kill -9", &bills, abandoned);
    assert!(
        settled > 20 && refused > 0,
        "the stream settled and saw the outage"
    );
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_faults_and_a_partition_heal() {
    let mut cluster = Cluster::create().await;
    let mut proxies = BTreeMap::new();
    for (i, n) in cluster.nodes.iter().enumerate() {
        proxies.insert(
            n.admdvs,
            Proxy::start(vec![n.url()], 17 + u64::try_from(i).unwrap()).await,
        );
    }
    let urls: Vec<(&str, String)> = proxies.iter().map(|(a, p)| (*a, p.url())).collect();
    cluster.write_regions(&urls);
    cluster.start_all().await;
    let faults = Faults {
        drop_pm: 60,
        drop_reply_pm: 60,
        delay_pm: 100,
        delay_ms_max: 700,
        duplicate_pm: 100,
        hold_pm: 60,
        hold_ms: 1_300,
    };
    for p in proxies.values() {
        p.set_faults(faults);
    }
    li_home_bill(&His::new(5), &cluster.his_urls()[BJ]).await;
    let stream = Stream::start(His::new(2), cluster.his_urls(), 5);
    stream.wait_more(40).await;
    proxies[BJ].cut();
    stream.wait_more(15).await;
    proxies[BJ].restore().await;
    stream.wait_more(25).await;
    for p in proxies.values() {
        p.set_faults(Faults::default());
    }
    let (bills, abandoned) = heal_and_check(&mut cluster, stream).await;
    let (settled, refused) = summary("link faults", &bills, abandoned);
    let mut total = Stats::default();
    for p in proxies.values() {
        let s = p.stats();
        total.dropped += s.dropped;
        total.replies_dropped += s.replies_dropped;
        total.delayed += s.delayed;
        total.duplicated += s.duplicated;
        total.held += s.held;
        total.forwarded += s.forwarded;
    }
    eprintln!("proxies: {total:?}");
    assert!(settled > 20 && refused > 0);
    assert!(
        total.dropped > 0
            && total.replies_dropped > 0
            && total.delayed > 0
            && total.duplicated > 0
            && total.held > 0,
        "every kind of fault happened: {total:?}"
    );
    drop(proxies);
    cluster.finish().await;
}
