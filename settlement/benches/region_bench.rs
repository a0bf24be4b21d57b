//! Cross-region settlements per second and their latency through region nodes, beside the
//! same-region figure, on this machine (issue 6, must-show 3).
//!
//! Three `settlement serve --region X` processes (release build; 北京 110000, 天津 120000, 河北
//! 130000 on loopback ports, each its own SQLite file or PostgreSQL schema) and HIS clients in
//! this process over loopback HTTP. Setup (untimed): Beijing persons imported into the Beijing
//! node, one visit per settlement (2201 + 2204: 10 × 30.00 of a 甲类 drug, each for another
//! person). Timed: the 2207s only, `--clients` at a time, closed loop:
//! - same-region: Beijing persons at a Beijing hospital, settled by the Beijing node alone;
//! - cross-region: other Beijing persons at a Tianjin hospital: the Tianjin node asks the Beijing
//!   node for the split over signed HTTP (intent row, split posted at Beijing, local posting with
//!   the claim at Tianjin).
//!
//! Every 2207 must answer infcode 0. Prints settlements/s and p50/p99/max of the 2207 round
//! trip for each, with the machine's cores and the load average before each phase (the
//! conditions). Client and nodes share the machine's cores.
//!
//! `cargo bench -p settlement --bench region_bench -- [--db sqlite|postgres|both]
//!  [--clients 32] [--settlements 3000]`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use settlement::catalogue::CatalogueSet;
use settlement::medical::{Medical, PersonImport, RefData};
use settlement::policy::PolicySet;
use settlement::{Fen, Ledger, LedgerOptions, PgConnectOptions};
use sqlx::Connection;

const NODES: [&str; 3] = ["110000", "120000", "130000"];
const BJ_HOSP: &str = "H11010500001";
const TJ_HOSP: &str = "H12010100001";
const DRUG: &str = "XJ01CAA001A000000007919";
const KEYS: [(&str, &str, &str); 3] = [
    (
        "110000",
        "120000",
        "1111111111111111111111111111111111111111111111111111111111111112",
    ),
    (
        "110000",
        "130000",
        "1111111111111111111111111111111111111111111111111111111111111113",
    ),
    (
        "120000",
        "130000",
        "1111111111111111111111111111111111111111111111111111111111111123",
    ),
];

struct Args {
    db: String,
    clients: usize,
    settlements: usize,
}

fn args() -> Args {
    let mut parsed = Args {
        db: "sqlite".into(),
        clients: 32,
        settlements: 3_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("flag value");
        match flag.as_str() {
            "--db" => parsed.db = value(),
            "--clients" => parsed.clients = value().parse().expect("--clients N"),
            "--settlements" => parsed.settlements = value().parse().expect("--settlements N"),
            _ => {}
        }
    }
    parsed
}

fn pg_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn refdata() -> RefData {
    let dir = fixtures();
    let institutions =
        settlement::refdata::load_institutions(&dir.join("institutions/institutions.csv")).unwrap();
    RefData {
        catalogues: CatalogueSet::load_dir(&dir.join("catalogue")).unwrap(),
        policies: PolicySet::load_dir(&dir.join("policy")).unwrap(),
        institutions: institutions
            .into_iter()
            .map(|i| (i.fixmedins_code, i.hosp_lv))
            .collect(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn regions_toml(ports: &[u16]) -> String {
    let mut text = String::new();
    for (admdvs, port) in NODES.iter().zip(ports) {
        text.push_str(&format!(
            "[[region]]\nadmdvs = \"{admdvs}\"\nname = \"n{admdvs}\"\n\
             url = \"http://127.0.0.1:{port}\"\nserves = [\"{}\"]\nadvance_fen = 1000000000\n\
             alert_pct = 80\n\n",
            &admdvs[0..2]
        ));
    }
    for (a, b, key) in KEYS {
        text.push_str(&format!(
            "[[link]]\na = \"{a}\"\nb = \"{b}\"\nkey_hex = \"{key}\"\n\n"
        ));
    }
    text
}

/// The persons of `region` in the fixtures, plus `extra` Beijing employees made from the first
/// fixture person (balance 5000.00) when `region` is Beijing.
fn persons(region: &str, extra: usize) -> Vec<PersonImport> {
    let loaded =
        settlement::refdata::load_persons_csv(&fixtures().join("persons/cards.csv")).unwrap();
    let mut out: Vec<PersonImport> = loaded
        .iter()
        .map(PersonImport::from)
        .filter(|p| p.record.insuplc_admdvs[0..2] == region[0..2])
        .collect();
    if region == "110000" {
        let template = out[0].clone();
        for k in 0..extra {
            let mut p = template.clone();
            p.record.psn_no = bench_psn(k);
            p.record.card_no = Some(format!("BB{k:08}"));
            p.record.certno = format!("11{k:015}X");
            p.acct_opening = Fen::from_fen(500_000).unwrap();
            out.push(p);
        }
    }
    out
}

fn bench_psn(k: usize) -> String {
    format!("118{k:017}")
}

/// Where a node keeps its data: a directory (SQLite) or a PostgreSQL schema.
struct Store {
    dir: PathBuf,
    schema: Option<String>,
}

impl Store {
    async fn create(db: &str, root: &Path, admdvs: &str) -> Store {
        let dir = root.join(admdvs);
        std::fs::create_dir_all(&dir).unwrap();
        if db == "sqlite" {
            return Store { dir, schema: None };
        }
        let schema = format!("region_bench_{}_{admdvs}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .unwrap();
        Store {
            dir,
            schema: Some(schema),
        }
    }

    async fn open(&self) -> Ledger {
        match &self.schema {
            None => Ledger::open_data_dir(&self.dir, LedgerOptions::default())
                .await
                .unwrap(),
            Some(schema) => {
                let connect = PgConnectOptions::from_str(&pg_url())
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                Ledger::open_postgres(connect, LedgerOptions::default())
                    .await
                    .unwrap()
            }
        }
    }

    async fn drop_schema(&self) {
        if let Some(schema) = &self.schema {
            let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..600 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn(admdvs: &str, port: u16, store: &Store, regions: &Path) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_settlement"));
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(&store.dir)
        .arg("--refdata")
        .arg(fixtures())
        .arg("--no-gateway-auth")
        .arg("--region")
        .arg(admdvs)
        .arg("--regions")
        .arg(regions)
        .arg("--sole-process")
        .env("RUST_LOG", "settlement=warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(schema) = &store.schema {
        command.env(
            "DATABASE_URL",
            format!("{}?options=-c%20search_path%3D{schema}", pg_url()),
        );
    }
    let child = Running(command.spawn().expect("the settlement binary"));
    let client = reqwest::Client::new();
    for _ in 0..1200 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            && r.status().is_success()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {admdvs} not ready in 60 s");
}

fn envelope(infno: &str, msgid: &str, hosp: &str, area: &str, input: Value) -> Value {
    json!({"infno": infno, "msgid": msgid, "mdtrtarea_admvs": area, "insuplc_admdvs": "110000",
        "opter": "BENCH", "inf_time": "2026-11-30 10:00:00", "fixmedins_code": hosp,
        "input": input})
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let reply: Value = client
        .post(format!("{url}{}", settlement::service::CALL_SERVICE_PATH))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["infcode"], 0, "{reply}");
    reply
}

fn msgid(hosp: &str, phase: u8, step: u8, i: usize) -> String {
    format!("{hosp}2026113{phase}{step}{i:09}")
}

/// The 1/5/15-minute load averages, as /proc/loadavg gives them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn percentile(sorted: &[Duration], per_mille: usize) -> f64 {
    let index = (sorted.len().saturating_sub(1) * per_mille).div_ceil(1_000);
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// One phase: visits for persons `first..first + count` at `hosp` of the node at `url`, then
/// the timed 2207s. Returns (settlements/s, sorted latencies).
#[allow(clippy::too_many_arguments)]
async fn phase(
    client: &reqwest::Client,
    url: &str,
    hosp: &'static str,
    area: &'static str,
    phase_no: u8,
    first: usize,
    count: usize,
    clients: usize,
) -> (f64, Vec<Duration>) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (c..count).step_by(clients) {
                let psn = bench_psn(first + i);
                let reg = json!({"data": {"psn_no": psn, "insutype": "310",
                    "begntime": "2026-11-30 09:00:00"}});
                let reply = post(
                    &client,
                    &url,
                    &envelope("2201", &msgid(hosp, phase_no, 1, i), hosp, area, reg),
                )
                .await;
                let mdtrt_id = reply["output"]["data"]["mdtrt_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let fee = json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id,
                    "psn_no": psn, "chrg_bchno": "B1", "med_list_codg": DRUG,
                    "det_item_fee_sumamt": "300.00", "cnt": 10, "pric": "30.00"}]});
                post(
                    &client,
                    &url,
                    &envelope("2204", &msgid(hosp, phase_no, 2, i), hosp, area, fee),
                )
                .await;
                mine.push((i, psn, mdtrt_id));
            }
            mine
        }));
    }
    let mut visits = Vec::new();
    for task in tasks {
        visits.push(task.await.unwrap());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mine in visits {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(mine.len());
            for (i, psn, mdtrt_id) in mine {
                let data = json!({"data": {"psn_no": psn, "mdtrt_id": mdtrt_id,
                    "medfee_sumamt": "300.00", "insutype": "310", "acct_used_flag": "1",
                    "med_type": "11"}});
                let t0 = Instant::now();
                post(
                    &client,
                    &url,
                    &envelope("2207", &msgid(hosp, phase_no, 3, i), hosp, area, data),
                )
                .await;
                times.push(t0.elapsed());
            }
            times
        }));
    }
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort();
    (times.len() as f64 / elapsed, times)
}

async fn run(db: &str, args: &Args) {
    let root = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
    let regions = root.path().join("regions.toml");
    std::fs::write(&regions, regions_toml(&ports)).unwrap();
    let mut stores = Vec::new();
    for admdvs in NODES {
        let store = Store::create(db, root.path(), admdvs).await;
        let ledger = Arc::new(store.open().await);
        let medical = Medical::new(ledger.clone(), refdata());
        medical
            .import_persons(&persons(admdvs, 2 * args.settlements))
            .await
            .unwrap();
        drop(medical);
        if let Ok(ledger) = Arc::try_unwrap(ledger) {
            ledger.close().await;
        }
        stores.push(store);
    }
    let mut nodes = Vec::new();
    for ((admdvs, port), store) in NODES.iter().zip(&ports).zip(&stores) {
        nodes.push(spawn(admdvs, *port, store, &regions).await);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()
        .unwrap();
    let bj = format!("http://127.0.0.1:{}", ports[0]);
    let tj = format!("http://127.0.0.1:{}", ports[1]);
    let n = args.settlements;
    let clients = args.clients.max(1);
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    for (name, url, hosp, area, phase_no, first) in [
        (
            "same-region (Beijing at Beijing)",
            &bj,
            BJ_HOSP,
            "110000",
            1,
            0,
        ),
        (
            "cross-region (Beijing at Tianjin)",
            &tj,
            TJ_HOSP,
            "120000",
            2,
            n,
        ),
    ] {
        let load = load_average();
        let (rate, times) = phase(&client, url, hosp, area, phase_no, first, n, clients).await;
        println!(
            "[{db}] {name}: {} settlements (2207) by {clients} clients: {rate:.0}/s, \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (load average before: {load}; {cores} cores)",
            times.len(),
            percentile(&times, 500),
            percentile(&times, 990),
            percentile(&times, 1_000)
        );
    }
    drop(nodes);
    for store in &stores {
        store.drop_schema().await;
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let dbs: Vec<&str> = match args.db.as_str() {
        "both" => vec!["sqlite", "postgres"],
        "postgres" => vec!["postgres"],
        _ => vec!["sqlite"],
    };
    for db in dbs {
        run(db, &args).await;
    }
}
