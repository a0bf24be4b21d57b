//! Crash test, on SQLite (a data directory) and PostgreSQL (`DATABASE_URL`, a fresh schema): the
//! real `settlement serve` binary, three HIS clients
//! streaming whole visits (2201 + 2204 + 2207), `kill -9` in the middle of the stream, a restart on
//! the same directory, and a resend of every message the clients did not see answered. Then:
//! every settlement msgid has exactly one settlement record, every resent 2207 answers infcode 0,
//! and the ledger verifies (balances = replay of the journal, every posting balanced).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod service_support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use service_support::{envelope, fixtures};
use settlement::medical::{Medical, RefData};
use settlement::{Ledger, LedgerOptions};
use tokio::sync::Mutex;

const FIX: &str = "H11010500001";
const PERSONS: [&str; 3] = [
    "11000000000000000001",
    "11000000000000000002",
    "11000000000000000003",
];
const VISITS_PER_CLIENT: u32 = 60;
/// Settlements answered (all clients) before the kill.
const KILL_AFTER_SETTLED: u32 = 40;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the binary keeps its data: `--data DIR`, plus `DATABASE_URL` for PostgreSQL.
struct Target {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Target {
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_settlement"));
        match &self.database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        command
    }
}

fn start(target: &Target, port: u16) -> Child {
    let mut command = target.command();
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-gateway-auth",
        ])
        .arg("--data")
        .arg(target.dir.path())
        .arg("--refdata")
        .arg(fixtures())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(client: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server not ready");
}

/// The messages of visit `v` of client `c` (msgids deterministic, so a resend is the same).
fn msgid(c: usize, v: u32, step: u32) -> String {
    format!("{FIX}20261130{c:02}{v:04}{step:04}")
}

/// Sends one envelope; `None` if no answer arrived (connection died).
async fn send(client: &reqwest::Client, port: u16, body: &Value) -> Option<Value> {
    let url = format!(
        "http://127.0.0.1:{port}{}",
        settlement::service::CALL_SERVICE_PATH
    );
    let response = client.post(url).json(body).send().await.ok()?;
    response.json::<Value>().await.ok()
}

/// Runs visits `from..VISITS_PER_CLIENT` of client `c`; returns the first visit not fully answered.
async fn run_client(
    client: reqwest::Client,
    port: u16,
    c: usize,
    from: u32,
    settled: Arc<AtomicU32>,
) -> u32 {
    let psn = PERSONS[c];
    for v in from..VISITS_PER_CLIENT {
        let reg = envelope(
            "2201",
            &msgid(c, v, 1),
            FIX,
            "110000",
            json!({"data": {"psn_no": psn, "insutype": "310", "begntime": "2026-11-30 09:00:00"}}),
        );
        let Some(reply) = send(&client, port, &reg).await else {
            return v;
        };
        assert_eq!(reply["infcode"], 0, "{reply}");
        let mdtrt_id = reply["output"]["data"]["mdtrt_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let fee = envelope(
            "2204",
            &msgid(c, v, 2),
            FIX,
            "110000",
            json!({"feedetail": [{
            "feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": psn, "chrg_bchno": "B1",
            "med_list_codg": "XJ01CAA001A000000007919", "det_item_fee_sumamt": "300.00",
            "cnt": 10, "pric": "30.00"}]}),
        );
        let Some(reply) = send(&client, port, &fee).await else {
            return v;
        };
        assert_eq!(reply["infcode"], 0, "{reply}");
        let settle = envelope(
            "2207",
            &msgid(c, v, 3),
            FIX,
            "110000",
            json!({"data": {
            "psn_no": psn, "mdtrt_id": mdtrt_id, "medfee_sumamt": "300.00", "insutype": "310",
            "acct_used_flag": "1", "med_type": "11"}}),
        );
        let Some(reply) = send(&client, port, &settle).await else {
            return v;
        };
        assert_eq!(reply["infcode"], 0, "{reply}");
        settled.fetch_add(1, Ordering::SeqCst);
    }
    VISITS_PER_CLIENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_resend_settles_each_exactly_once() {
    for db in common::BOTH {
        crash_and_resend(db).await;
    }
}

async fn crash_and_resend(db: common::Db) {
    let test = common::TestDb::new(db).await;
    let target = Target {
        dir: tempfile::tempdir().unwrap(),
        database_url: test
            .pg_schema()
            .map(|schema| format!("{}?options[search_path]={schema}", common::pg_url())),
    };
    if db == common::Db::Sqlite {
        // The SQLite file lives in the binary's data directory, not in TestDb's.
        test.drop_db().await;
        return crash_and_resend_on(target, None).await;
    }
    crash_and_resend_on(target, Some(test)).await;
}

async fn crash_and_resend_on(target: Target, pg: Option<common::TestDb>) {
    let status = target
        .command()
        .arg("import-persons")
        .arg(fixtures().join("persons/cards.csv"))
        .arg("--data")
        .arg(target.dir.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let port = free_port();
    let server = Arc::new(Mutex::new(start(&target, port)));
    wait_ready(&client, port).await;
    let settled = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..PERSONS.len())
        .map(|c| tokio::spawn(run_client(client.clone(), port, c, 0, settled.clone())))
        .collect();
    // Let the stream run, then kill -9 in the middle of it.
    while settled.load(Ordering::SeqCst) < KILL_AFTER_SETTLED {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.lock().await.kill().unwrap();
    server.lock().await.wait().unwrap();
    let mut stopped_at = Vec::new();
    for task in tasks {
        stopped_at.push(task.await.unwrap());
    }
    assert!(
        stopped_at.iter().any(|v| *v < VISITS_PER_CLIENT),
        "the kill must land mid-stream: {stopped_at:?}"
    );

    // Restart on the same data directory and resend from the first unanswered visit on.
    let port = free_port();
    let mut server = start(&target, port);
    wait_ready(&client, port).await;
    let tasks: Vec<_> = stopped_at
        .iter()
        .enumerate()
        .map(|(c, from)| tokio::spawn(run_client(client.clone(), port, c, *from, settled.clone())))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), VISITS_PER_CLIENT);
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let ledger = Arc::new(match &pg {
        Some(test) => test.open(LedgerOptions::default()).await,
        None => Ledger::open_data_dir(target.dir.path(), LedgerOptions::default())
            .await
            .unwrap(),
    });
    let medical = Medical::new(ledger.clone(), RefData::default());
    for c in 0..PERSONS.len() {
        for v in 0..VISITS_PER_CLIENT {
            let n = medical.settlements_made_by(&msgid(c, v, 3)).await.unwrap();
            assert_eq!(n, 1, "client {c} visit {v}");
        }
    }
    let report = ledger.verify().await.unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    // One posting per settlement + the 5 non-zero opening balances of fixtures/persons/cards.csv
    // (3560.25, 1288.00, 15230.80, 8800.00, 12.34); nothing else was posted.
    let settlements = u64::try_from(PERSONS.len()).unwrap() * u64::from(VISITS_PER_CLIENT);
    assert_eq!(report.postings_posted, settlements + 5);
    drop(medical);
    if let Ok(ledger) = Arc::try_unwrap(ledger) {
        ledger.close().await;
    }
    if let Some(test) = pg {
        test.drop_db().await;
    }
}
