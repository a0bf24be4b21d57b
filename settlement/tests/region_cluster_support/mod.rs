//! Region nodes as real processes: the `settlement serve --region X --regions FILE` binary, one
//! per node (or several per node over one PostgreSQL database), each on its own loopback port
//! and its own database (an SQLite data directory or a PostgreSQL schema), persons imported
//! before the first start. A node can be killed with SIGKILL (`kill9`) and started again on the
//! same port and database; `stop` is a graceful SIGTERM. After the processes stop, `inspect`
//! opens a node's database in this process to read its ledger and transfer states.
//!
//! The HIS side (`His`) talks to the nodes over real HTTP; the inter-node traffic can be sent
//! through `proxy::Proxy` by writing the proxies' URLs in the regions file.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use settlement::medical::{Medical, PersonImport};
use settlement::region::status::{NodeStatus, TransferStatus};
use settlement::region::{Node, NodeOptions, Regions};
use settlement::{AccountSpec, Ledger, LedgerOptions};

use crate::common::{Db, TestDb, pg_url};
use crate::region_support::{NODES, envelope};
use crate::service_support::{fixtures, refdata};

/// The test keys of region_support::regions_toml.
pub fn regions_toml(urls: &[(&str, String)]) -> String {
    let ports: Vec<u16> = vec![0; 3];
    let mut text = crate::region_support::regions_toml(&ports);
    for (admdvs, url) in urls {
        let prefix = &admdvs[0..2];
        text = text.replace(
            &format!(
                "admdvs = \"{admdvs}\"\nname = \"n{admdvs}\"\nurl = \"http://127.0.0.1:0\"\nserves = [\"{prefix}\"]"
            ),
            &format!(
                "admdvs = \"{admdvs}\"\nname = \"n{admdvs}\"\nurl = \"{url}\"\nserves = [\"{prefix}\"]"
            ),
        );
    }
    text
}

/// A free loopback port (bound and released: the node binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The persons of `region` in fixtures/persons/cards.csv plus `extra` made from the region's
/// first fixture person: psn_no `extra_psn(region, k)`, balance `balance_fen`.
pub fn persons(region: &str, extra: usize, balance_fen: i64) -> Vec<PersonImport> {
    let loaded =
        settlement::refdata::load_persons_csv(&fixtures().join("persons/cards.csv")).unwrap();
    let mut out: Vec<PersonImport> = loaded
        .iter()
        .map(PersonImport::from)
        .filter(|p| p.record.insuplc_admdvs[0..2] == region[0..2])
        .collect();
    let template = out
        .iter()
        .find(|p| p.record.psn_no.ends_with("0000001"))
        .unwrap()
        .clone();
    for k in 0..extra {
        let mut p = template.clone();
        p.record.psn_no = extra_psn(region, k);
        p.record.card_no = Some(format!("X{}{k:05}", &region[0..2]));
        p.record.certno = format!("{}{k:015}X", &region[0..2]);
        p.acct_opening = settlement::Fen::from_fen(balance_fen).unwrap();
        out.push(p);
    }
    out
}

/// The psn_no of extra person `k` of `region`.
pub fn extra_psn(region: &str, k: usize) -> String {
    format!("{}0000000000009{k:05}", &region[0..2])
}

/// One node's process and database.
pub struct ProcNode {
    pub admdvs: &'static str,
    pub port: u16,
    pub db: TestDb,
    pub regions_file: PathBuf,
    pub log: PathBuf,
    /// `--region-request-timeout-ms` of this node's processes.
    pub request_timeout_ms: u64,
    child: Option<Running>,
}

/// A child process that is killed if the test drops it (a failing test leaves no process).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How the node processes are tuned for tests (short timeouts, fast resolver).
pub const NODE_ARGS: [&str; 4] = [
    "--region-tick-ms",
    "50",
    "--region-connect-timeout-ms",
    "300",
];

/// The inter-node request timeout of test nodes, ms, unless `ProcNode::request_timeout_ms`
/// says otherwise (the resolver's stale age must stay above it).
pub const REQUEST_TIMEOUT_MS: u64 = 1_000;

impl ProcNode {
    /// A fresh database for `admdvs` with `persons` imported; not started.
    pub async fn create(
        admdvs: &'static str,
        db: Db,
        persons: &[PersonImport],
        regions_file: &Path,
        log_dir: &Path,
    ) -> ProcNode {
        let test = TestDb::new(db).await;
        let ledger = Arc::new(test.open(LedgerOptions::default()).await);
        let medical = Medical::new(ledger.clone(), refdata());
        medical.import_persons(persons).await.unwrap();
        drop(medical);
        Arc::try_unwrap(ledger).unwrap().close().await;
        ProcNode {
            admdvs,
            port: free_port(),
            db: test,
            regions_file: regions_file.to_owned(),
            log: log_dir.join(format!("node-{admdvs}.log")),
            request_timeout_ms: REQUEST_TIMEOUT_MS,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `DATABASE_URL` for PostgreSQL (the schema as search_path), or the SQLite data directory.
    pub fn store_args(db: &TestDb) -> (Option<String>, PathBuf) {
        match (db.pg_schema(), db.sqlite_path()) {
            (Some(schema), _) => (
                Some(format!("{}?options=-c%20search_path%3D{schema}", pg_url())),
                std::env::temp_dir(),
            ),
            (_, Some(file)) => (None, file.parent().unwrap().to_owned()),
            _ => unreachable!(),
        }
    }

    /// Starts a `settlement serve` process for this node on `port` and waits until it is ready.
    pub async fn spawn_on(
        admdvs: &str,
        port: u16,
        db: &TestDb,
        regions_file: &Path,
        log: &Path,
        request_timeout_ms: u64,
    ) -> Child {
        let (database_url, data) = ProcNode::store_args(db);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_settlement"));
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(&data)
            .arg("--refdata")
            .arg(fixtures())
            .arg("--no-gateway-auth")
            .arg("--region")
            .arg(admdvs)
            .arg("--regions")
            .arg(regions_file)
            .args(NODE_ARGS)
            .arg("--region-request-timeout-ms")
            .arg(request_timeout_ms.to_string())
            .arg("--region-intent-stale-ms")
            .arg((request_timeout_ms + 500).to_string())
            .env("RUST_LOG", "settlement=warn")
            .stdout(Stdio::null())
            .stderr(log_file);
        command.env_remove("DATABASE_URL");
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let mut child = command.spawn().expect("the settlement binary starts");
        let ready = format!("http://127.0.0.1:{port}/ready");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "node {admdvs} exited at start ({status}); see {}",
                    log.display()
                );
            }
            if let Ok(r) = client.get(&ready).send().await
                && r.status().is_success()
            {
                return child;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node {admdvs} not ready in 60 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already runs", self.admdvs);
        self.child = Some(Running(
            ProcNode::spawn_on(
                self.admdvs,
                self.port,
                &self.db,
                &self.regions_file,
                &self.log,
                self.request_timeout_ms,
            )
            .await,
        ));
    }

    /// SIGKILL: the process dies wherever it is; nothing is flushed or finished.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.0.kill().unwrap();
            child.0.wait().unwrap();
        }
    }

    /// SIGTERM and wait (bounded): in-flight requests finish, the ledger writer drains.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, self.admdvs);
        }
    }

    /// Stops the process and removes the database.
    pub async fn destroy(mut self) {
        self.stop();
        self.db.drop_db().await;
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Opens this node's database in this process (the node's processes must be stopped).
    pub async fn inspect(&self, regions: &Regions) -> Inspector {
        let ledger = Arc::new(self.db.open(LedgerOptions::default()).await);
        let medical = Arc::new(Medical::new(ledger.clone(), refdata()));
        let node = Node::new(
            settlement::Admdvs::parse(self.admdvs).unwrap(),
            regions.clone(),
            NodeOptions::default(),
            &medical,
        )
        .await
        .unwrap();
        Inspector {
            ledger,
            medical,
            node,
        }
    }
}

/// SIGTERM a child and wait up to 30 s for it (then SIGKILL).
pub fn terminate(mut running: Running, what: &str) {
    let child = &mut running.0;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("node {what} did not stop within 30 s of SIGTERM");
}

/// A stopped node's database, opened in this process.
pub struct Inspector {
    pub ledger: Arc<Ledger>,
    pub medical: Arc<Medical>,
    pub node: Node,
}

impl Inspector {
    pub async fn balance(&self, spec: &AccountSpec) -> i64 {
        let account = self.ledger.create_account(spec).await.unwrap();
        self.ledger
            .balance(account.id)
            .await
            .unwrap()
            .credit_balance_fen()
    }

    pub async fn transfer(&self, xfer: &str) -> TransferStatus {
        self.node.transfer(&self.medical, xfer).await.unwrap()
    }

    pub async fn verify(&self, what: &str) {
        let report = self.ledger.verify().await.unwrap();
        assert!(report.is_consistent(), "{what}: {:?}", report.problems);
    }

    pub async fn close(self) {
        drop(self.node);
        drop(self.medical);
        if let Ok(ledger) = Arc::try_unwrap(self.ledger) {
            ledger.close().await;
        }
    }
}

/// What the HIS was told about one 2207.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Settled(Value),
    Refused(String),
    /// No answer (the treating node died or the connection broke).
    Unknown,
}

/// One bill the HIS tried to settle.
#[derive(Debug, Clone)]
pub struct Bill {
    pub treating: &'static str,
    pub area: &'static str,
    pub hosp: &'static str,
    pub psn: String,
    pub insured: &'static str,
    pub cnt: u32,
    pub msgid: String,
    pub mdtrt_id: String,
    pub answer: Answer,
    /// Cancelled (2208) or reversed (2601) with an answer.
    pub undone: bool,
    /// A 2208/2601 sent without an answer: the HIS resends it (same msgid) once it can.
    pub undo: Option<(String, Value)>,
}

impl Bill {
    pub fn xfer(&self) -> String {
        settlement::region::xfer_id(
            settlement::Admdvs::parse(self.treating).unwrap(),
            &self.msgid,
        )
    }

    pub fn settled(&self) -> bool {
        matches!(self.answer, Answer::Settled(_))
    }

    /// The HIS believes this bill is paid.
    pub fn expected_live(&self) -> bool {
        self.settled() && !self.undone
    }
}

/// A HIS over real HTTP to the nodes' envelope endpoints.
#[derive(Clone)]
pub struct His {
    pub http: reqwest::Client,
    serial: Arc<AtomicU32>,
    prefix: u32,
}

impl His {
    pub fn new(prefix: u32) -> His {
        His {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            serial: Arc::new(AtomicU32::new(1)),
            prefix,
        }
    }

    pub fn msgid(&self, hosp: &str) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        format!("{hosp}2026113{}{n:010}", self.prefix % 10)
    }

    /// Posts an envelope; `None` when no HTTP answer came.
    pub async fn send(&self, url: &str, env: &Value) -> Option<Value> {
        let reply = self
            .http
            .post(format!("{url}{}", settlement::service::CALL_SERVICE_PATH))
            .json(env)
            .send()
            .await
            .ok()?;
        reply.json().await.ok()
    }

    /// 2201 + 2204 (`cnt` × 30.00 of a 甲类 drug) + 2207 at the node at `url`. `None` if the
    /// bill did not get as far as the 2207.
    #[allow(clippy::too_many_arguments)]
    pub async fn bill(
        &self,
        url: &str,
        treating: &'static str,
        area: &'static str,
        hosp: &'static str,
        psn: &str,
        insured: &'static str,
        cnt: u32,
    ) -> Option<Bill> {
        let reg = envelope(
            "2201",
            &self.msgid(hosp),
            hosp,
            area,
            insured,
            json!({"data": {"psn_no": psn, "insutype": "310", "begntime": "2026-11-30 09:00:00"}}),
        );
        let reply = self.send(url, &reg).await?;
        if reply["infcode"] != 0 {
            return None;
        }
        let mdtrt_id = reply["output"]["data"]["mdtrt_id"].as_str()?.to_owned();
        let fees = envelope(
            "2204",
            &self.msgid(hosp),
            hosp,
            area,
            insured,
            json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": psn,
                "chrg_bchno": "B1", "med_list_codg": "XJ01CAA001A000000007919",
                "det_item_fee_sumamt": format!("{}.00", cnt * 30), "cnt": cnt,
                "pric": "30.00"}]}),
        );
        let reply = self.send(url, &fees).await?;
        if reply["infcode"] != 0 {
            return None;
        }
        let msgid = self.msgid(hosp);
        let settle = envelope(
            "2207",
            &msgid,
            hosp,
            area,
            insured,
            json!({"data": {"psn_no": psn, "mdtrt_id": mdtrt_id,
                "medfee_sumamt": format!("{}.00", cnt * 30), "insutype": "310",
                "acct_used_flag": "1", "med_type": "11"}}),
        );
        let answer = match self.send(url, &settle).await {
            None => Answer::Unknown,
            Some(r) if r["infcode"] == 0 => Answer::Settled(r["output"].clone()),
            Some(r) => Answer::Refused(r["err_msg"].as_str().unwrap_or("").to_owned()),
        };
        Some(Bill {
            treating,
            area,
            hosp,
            psn: psn.to_owned(),
            insured,
            cnt,
            msgid,
            mdtrt_id,
            answer,
            undone: false,
            undo: None,
        })
    }

    /// The 2208 of a settled bill.
    pub fn cancel_env(&self, b: &Bill) -> Value {
        let setl_id = match &b.answer {
            Answer::Settled(output) => output["setlinfo"]["setl_id"].clone(),
            _ => Value::Null,
        };
        envelope(
            "2208",
            &self.msgid(b.hosp),
            b.hosp,
            b.area,
            b.insured,
            json!({"data": {"setl_id": setl_id, "mdtrt_id": b.mdtrt_id, "psn_no": b.psn}}),
        )
    }

    /// The 2601 of a bill's 2207.
    pub fn reverse_env(&self, b: &Bill) -> Value {
        envelope(
            "2601",
            &self.msgid(b.hosp),
            b.hosp,
            b.area,
            b.insured,
            json!({"data": {"psn_no": b.psn, "omsgid": b.msgid, "oinfno": "2207"}}),
        )
    }

    /// A node's open items (`GET /region/v1/admin/status`).
    pub async fn status(&self, url: &str) -> Option<NodeStatus> {
        let r = self
            .http
            .get(format!("{url}/region/v1/admin/status"))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Closes the node's open window (`POST /region/v1/admin/close-window`).
    pub async fn close_window(&self, url: &str) -> i64 {
        let r: Value = self
            .http
            .post(format!("{url}/region/v1/admin/close-window"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["closed"].as_i64().unwrap()
    }

    /// Runs the clearing of every closed window of the node at `url`
    /// (`POST /region/v1/admin/clear-window`); each run must settle.
    pub async fn clear_windows(&self, url: &str) {
        let open = self.status(url).await.expect("status").open_window;
        for window in 1..open {
            let reply = self
                .http
                .post(format!("{url}/region/v1/admin/clear-window"))
                .json(&json!({"window_id": window}))
                .send()
                .await
                .unwrap();
            let status = reply.status();
            let run: Value = reply.json().await.unwrap();
            assert!(
                status.is_success() && run["settled"] == true,
                "clearing {url} window {window}: {status} {run}"
            );
        }
    }

    /// Waits (bounded) until every node at `urls` has nothing left to deliver or resolve.
    pub async fn wait_quiet(&self, urls: &[String], limit: Duration) {
        let started = Instant::now();
        loop {
            let mut quiet = true;
            let mut seen = Vec::new();
            for url in urls {
                let status = self.status(url).await;
                quiet &= status.as_ref().is_some_and(NodeStatus::quiet);
                seen.push(status);
            }
            if quiet {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "the cluster did not quiesce in {limit:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The three node codes.
pub fn nodes() -> [&'static str; 3] {
    NODES
}
