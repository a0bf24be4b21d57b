//! Settlement load benchmark over loopback HTTP: N concurrent simulated HIS clients each run
//! visits as 2204 (fee upload) + 2207 (settlement) against the real app (`service::app`) served on
//! 127.0.0.1, on SQLite (WAL, synchronous=FULL) and PostgreSQL (synchronous_commit on): durable
//! commits. Registration (2201) of the visits is setup, not timed. Persons come from the
//! deterministic generated population (`refdata::generate_persons`, seed 1), imported with their
//! personal accounts; each visit goes to a different person.
//!
//! Run: `cargo bench -p settlement --bench settle_bench -- [--db sqlite|postgres|both]
//!       [--clients 64] [--settlements 20000] [--persons 100000] [--connections 16]`
//! PostgreSQL at `LEDGER_TEST_PG_URL` (default postgres://postgres@127.0.0.1:5432/test), in a
//! schema of its own, dropped at the end. Prints settlements/s and p50/p99/p999 of the
//! 2204+2207 pair and of 2207 alone (client-side, closed loop: coordinated omission understates
//! the tail). Client and server share the machine's cores; the clients run on one thread of their
//! own (a current-thread runtime), so the load generator takes at most one core's share, each
//! on one keep-alive connection through hyper's connection API (no reqwest layers per request),
//! and their request bodies are serialised before the timed phase. The load
//! average is printed before the clients start and after the timed phase, and the CPU the timed
//! phase cost per settlement (Linux `/proc`): this process (service + clients), the local
//! PostgreSQL server's processes, and how idle the machine stayed. Those figures move much less
//! from run to run than settlements/s on a shared machine, so compare changes by them.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

/// The service binary's allocator (src/bin/settlement.rs), so the figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use settlement::catalogue::CatalogueSet;
use settlement::medical::{Medical, PersonImport, RefData};
use settlement::policy::PolicySet;
use settlement::service::{AppState, CALL_SERVICE_PATH, Gateway, GatewayConfig, app};
use settlement::{Ledger, LedgerOptions, PgConnectOptions};
use sqlx::Connection;

struct Args {
    db: String,
    connections: u32,
    clients: usize,
    settlements: usize,
    persons: u64,
}

fn args() -> Args {
    let mut parsed = Args {
        db: "both".into(),
        connections: 16,
        clients: 64,
        settlements: 20_000,
        persons: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("flag value");
        match flag.as_str() {
            "--db" => parsed.db = value(),
            "--connections" => parsed.connections = value().parse().expect("number"),
            "--clients" => parsed.clients = value().parse().expect("number"),
            "--settlements" => parsed.settlements = value().parse().expect("number"),
            "--persons" => parsed.persons = value().parse().expect("number"),
            _ => {}
        }
    }
    parsed
}

fn pg_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
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

/// The level-3 hospital of each fixture region (fixtures/institutions/institutions.csv).
fn hospital(admdvs: &str) -> &'static str {
    match admdvs {
        "110000" => "H11010500001",
        "120000" => "H12010100001",
        _ => "H13010200002",
    }
}

/// A 甲类 drug code present in every fixture catalogue (fixtures/catalogue/*.csv).
const DRUG: &str = "XJ01CAA001A000000007919";

fn envelope(infno: &str, msgid: &str, admdvs: &str, input: Value) -> Value {
    json!({"infno": infno, "msgid": msgid, "mdtrtarea_admvs": admdvs, "insuplc_admdvs": admdvs,
        "opter": "BENCH", "inf_time": "2026-11-30 10:00:00", "fixmedins_code": hospital(admdvs),
        "input": input})
}

/// The part of a reply the timed phase checks. The clients stand for HIS systems on other
/// machines, so they read no more of the reply than this: a `serde_json::Value` of the whole
/// 2207 output (about 40 fields) cost the shared cores more than the server's own parsing.
#[derive(serde::Deserialize)]
struct Verdict {
    infcode: i64,
    #[serde(default)]
    err_msg: Option<String>,
}

/// One simulated HIS's keep-alive HTTP/1.1 connection to the service, on hyper's connection
/// API: its requests are built from a pre-serialised body and a fixed path, with none of
/// reqwest's per-request layers (URL parsing, redirect and retry policies, the pool), which
/// cost the shared cores ~1/4 of this process's CPU. The HIS systems stand for other machines.
struct HisConnection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    host: http::HeaderValue,
}

impl HisConnection {
    async fn open(addr: std::net::SocketAddr) -> HisConnection {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        HisConnection {
            sender,
            host: http::HeaderValue::from_str(&addr.to_string()).unwrap(),
        }
    }

    /// Posts `body` (already serialised) to the envelope endpoint and checks that the reply
    /// says `infcode` 0.
    async fn post_checked(&mut self, body: bytes::Bytes) {
        use http_body_util::BodyExt;
        self.sender.ready().await.unwrap();
        let request = http::Request::post(CALL_SERVICE_PATH)
            .header(http::header::HOST, self.host.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(body))
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        let reply = response.into_body().collect().await.unwrap().to_bytes();
        let verdict: Verdict = serde_json::from_slice(&reply).unwrap();
        assert_eq!(verdict.infcode, 0, "{:?}", verdict.err_msg);
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let reply: Value = client
        .post(url)
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

/// The `per_mille`-th per-mille of `sorted` (nearest rank), in ms.
fn percentile(sorted: &[Duration], per_mille: usize) -> f64 {
    let index = (sorted.len().saturating_sub(1) * per_mille).div_ceil(1_000);
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

async fn run(db: &str, args: &Args) {
    let schema = format!("settle_bench_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let mut options = LedgerOptions::default();
    options.store.connections_max = args.connections;
    let ledger = match db {
        "sqlite" => Ledger::open_data_dir(dir.path(), options).await.unwrap(),
        _ => {
            let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let connect = PgConnectOptions::from_str(&pg_url())
                .unwrap()
                .options([("search_path", schema.as_str())]);
            Ledger::open_postgres(connect, options).await.unwrap()
        }
    };
    let ledger = Arc::new(ledger);
    let medical = Arc::new(Medical::new(ledger.clone(), refdata()));
    let started = Instant::now();
    let persons: Vec<settlement::refdata::Person> =
        settlement::refdata::generate_persons(args.persons, 1).collect();
    let imports: Vec<PersonImport> = persons.iter().map(PersonImport::from).collect();
    medical.import_persons(&imports).await.unwrap();
    println!(
        "[{db}] imported {} persons in {:.1} s",
        imports.len(),
        started.elapsed().as_secs_f64()
    );

    let state = Arc::new(AppState {
        medical: medical.clone(),
        gateway: Gateway::new(GatewayConfig::default()),
        ready: AtomicBool::new(true),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}{CALL_SERVICE_PATH}");
    let server = tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    let count = args.settlements.min(persons.len());
    let people: Arc<Vec<(String, String, String)>> = Arc::new(
        persons
            .iter()
            .take(count)
            .map(|p| {
                (
                    p.psn_no.clone(),
                    p.insutype.code().to_owned(),
                    p.insuplc_admdvs.to_string(),
                )
            })
            .collect(),
    );
    let clients = args.clients.max(1);
    println!(
        "[{db}] load average before the clients start (1/5/15 min): {}",
        load_average()
    );
    // The simulated HIS clients run on ONE thread of their own (a current-thread runtime), so the
    // load generator takes at most one core's share and the server's runtime keeps its workers.
    let (mut pair, mut settle, elapsed, cpu) = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(drive(url, addr, people, clients))
    })
    .await
    .unwrap();
    pair.sort();
    settle.sort();
    println!(
        "[{db}] load average after the timed phase (1/5/15 min): {}",
        load_average()
    );
    println!(
        "[{db}] {} settlements (2204+2207) by {clients} clients in {elapsed:.2} s: {:.0} settlements/s",
        pair.len(),
        pair.len() as f64 / elapsed
    );
    println!(
        "[{db}] 2204+2207 latency ms: p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}",
        percentile(&pair, 500),
        percentile(&pair, 990),
        percentile(&pair, 999),
        percentile(&pair, 1_000)
    );
    println!(
        "[{db}] 2207 alone latency ms: p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}",
        percentile(&settle, 500),
        percentile(&settle, 990),
        percentile(&settle, 999),
        percentile(&settle, 1_000)
    );
    if let Some(cpu) = cpu {
        let per = |ticks: u64| ticks as f64 * 1e6 / USER_HZ / pair.len().max(1) as f64;
        println!(
            "[{db}] CPU per settlement µs: this process (service + clients) {:.0}, PostgreSQL \
             processes {:.0}; machine idle {:.0} % of the timed phase",
            per(cpu.process),
            per(cpu.postgres),
            100.0 * cpu.idle as f64 / cpu.total.max(1) as f64
        );
    }
    server.abort();
    let report = ledger.verify().await.unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    drop(medical);
    if let Ok(ledger) = Arc::try_unwrap(ledger) {
        ledger.close().await;
    }
    if db != "sqlite" {
        let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// Runs the clients: registers the visits (untimed), then 2204 + 2207 per visit (timed).
/// Returns the pair and 2207 latencies, the timed phase's seconds and the CPU it cost.
async fn drive(
    url: String,
    addr: std::net::SocketAddr,
    people: Arc<Vec<(String, String, String)>>,
    clients: usize,
) -> (Vec<Duration>, Vec<Duration>, f64, Option<CpuTicks>) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();

    // Setup (untimed): register one visit per settlement, each for another person.
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url, people) = (client.clone(), url.clone(), people.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (c..people.len()).step_by(clients) {
                let (psn, insutype, admdvs) = &people[i];
                let input = json!({"data": {"psn_no": psn, "insutype": insutype,
                    "begntime": "2026-11-30 09:00:00"}});
                let reply = post(
                    &client,
                    &url,
                    &envelope("2201", &msgid(admdvs, 1, i), admdvs, input),
                )
                .await;
                mine.push((
                    i,
                    reply["output"]["data"]["mdtrt_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ));
            }
            mine
        }));
    }
    let mut visits = Vec::new();
    for task in tasks {
        visits.push(task.await.unwrap());
    }

    // The request bodies, serialised before the timed phase as a load generator does: the
    // clients stand for HIS systems on other machines, so building their JSON is not charged
    // to the shared cores.
    let bodies: Vec<Vec<(bytes::Bytes, bytes::Bytes)>> = visits
        .into_iter()
        .map(|mine| {
            mine.into_iter()
                .map(|(i, mdtrt_id)| {
                    let (psn, insutype, admdvs) = &people[i];
                    let fee = json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id,
                        "psn_no": psn, "chrg_bchno": "B1", "med_list_codg": DRUG,
                        "det_item_fee_sumamt": "300.00", "cnt": 10, "pric": "30.00"}]});
                    let fee = envelope("2204", &msgid(admdvs, 2, i), admdvs, fee);
                    let data = json!({"data": {"psn_no": psn, "mdtrt_id": mdtrt_id,
                        "medfee_sumamt": "300.00", "insutype": insutype, "acct_used_flag": "1",
                        "med_type": "11"}});
                    let request = envelope("2207", &msgid(admdvs, 3, i), admdvs, data);
                    (
                        serde_json::to_vec(&fee).unwrap().into(),
                        serde_json::to_vec(&request).unwrap().into(),
                    )
                })
                .collect()
        })
        .collect();

    // One connection per client, opened before the timed phase (as reqwest's pool held them).
    let mut connections = Vec::with_capacity(bodies.len());
    for _ in &bodies {
        connections.push(HisConnection::open(addr).await);
    }

    // Timed: 2204 + 2207 per visit.
    let cpu_before = CpuTicks::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mine in bodies {
        let mut his = connections.pop().unwrap();
        tasks.push(tokio::spawn(async move {
            let mut pair = Vec::with_capacity(mine.len());
            let mut settle = Vec::with_capacity(mine.len());
            for (fee, request) in mine {
                let t0 = Instant::now();
                his.post_checked(fee).await;
                let t1 = Instant::now();
                his.post_checked(request).await;
                pair.push(t0.elapsed());
                settle.push(t1.elapsed());
            }
            (pair, settle)
        }));
    }
    let (mut pair, mut settle) = (Vec::new(), Vec::new());
    for task in tasks {
        let (p, s) = task.await.unwrap();
        pair.extend(p);
        settle.extend(s);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(CpuTicks::now())
        .map(|(before, after)| after.since(&before));
    (pair, settle, elapsed, cpu)
}

/// The unit of `/proc`'s CPU times: USER_HZ, 100 on every Linux architecture this runs on
/// (`sysconf(_SC_CLK_TCK)`).
const USER_HZ: f64 = 100.0;

/// CPU clock ticks from Linux `/proc`: this process, every process named `postgres`, and the
/// machine's idle (idle + iowait) and total.
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    process: u64,
    postgres: u64,
    idle: u64,
    total: u64,
}

impl CpuTicks {
    /// Now; `None` where `/proc` is not Linux's.
    fn now() -> Option<CpuTicks> {
        // utime + stime: fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends
        // the command name (which may contain spaces).
        fn process_ticks(stat: &str) -> Option<u64> {
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        }
        let process = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let mut postgres = 0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let path = entry.path();
            let is_postgres = std::fs::read_to_string(path.join("comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres");
            if is_postgres
                && let Some(ticks) = std::fs::read_to_string(path.join("stat"))
                    .ok()
                    .and_then(|stat| process_ticks(&stat))
            {
                postgres += ticks;
            }
        }
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = machine
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        Some(CpuTicks {
            process,
            postgres,
            idle: cpu.get(3)? + cpu.get(4)?,
            total: cpu.iter().take(8).sum(),
        })
    }

    /// The ticks spent between `before` and `self`.
    fn since(&self, before: &CpuTicks) -> CpuTicks {
        CpuTicks {
            process: self.process.saturating_sub(before.process),
            postgres: self.postgres.saturating_sub(before.postgres),
            idle: self.idle.saturating_sub(before.idle),
            total: self.total.saturating_sub(before.total),
        }
    }
}

/// `/proc/loadavg`'s three load averages (the machine is shared: say how busy it was).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A msgid in the documented layout (institution 12 + yyyyMMddHHmmss + 4 digits), time-ordered:
/// visit `i`'s step `step` at 2026-11-30 10:00:00 + (i / 10 000) s + step hours.
fn msgid(admdvs: &str, step: usize, i: usize) -> String {
    let seconds = i / 10_000;
    format!(
        "{}20261130{:02}{:02}{:02}{:04}",
        hospital(admdvs),
        10 + step,
        seconds / 60,
        seconds % 60,
        i % 10_000
    )
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dbs: Vec<&str> = match args.db.as_str() {
        "both" => vec!["sqlite", "postgres"],
        one => vec![if one == "sqlite" {
            "sqlite"
        } else {
            "postgres"
        }],
    };
    for db in dbs {
        runtime.block_on(run(db, &args));
    }
}
