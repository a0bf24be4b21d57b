//! Harness of the region tests: three in-process region nodes (110000, 120000, 130000), each
//! with its own fresh database (`common::TestDb`), its own persons only (fixtures/persons/
//! cards.csv filtered by insured region), the fixture reference data, and its own axum server on
//! a loopback port; the regions file is written with those ports and test keys. HIS traffic goes
//! over real HTTP to each node's envelope endpoint.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde_json::{Value, json};
use settlement::medical::{Medical, PersonImport};
use settlement::region::{self, Node, NodeOptions};
use settlement::service::{AppState, Gateway, GatewayConfig, app};
use settlement::{Account, AccountFlags, AccountKind, AccountSpec, Ledger, LedgerOptions};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::common::{Db, TestDb};
use crate::service_support::{fixtures, refdata};

pub const BJ: &str = "110000";
pub const TJ: &str = "120000";
pub const HB: &str = "130000";
pub const NODES: [&str; 3] = [BJ, TJ, HB];

const KEYS: [(&str, &str, &str); 3] = [
    (
        BJ,
        TJ,
        "1111111111111111111111111111111111111111111111111111111111111112",
    ),
    (
        BJ,
        HB,
        "1111111111111111111111111111111111111111111111111111111111111113",
    ),
    (
        TJ,
        HB,
        "1111111111111111111111111111111111111111111111111111111111111123",
    ),
];

pub struct NodeH {
    pub admdvs: &'static str,
    pub test: TestDb,
    pub ledger: Arc<Ledger>,
    pub medical: Arc<Medical>,
    pub node: Arc<Node>,
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub struct Cluster {
    pub nodes: Vec<NodeH>,
    pub regions_file: tempfile::TempDir,
    pub http: reqwest::Client,
    serial: AtomicU32,
}

pub fn options() -> NodeOptions {
    NodeOptions {
        request_timeout_ms: 1_500,
        connect_timeout_ms: 300,
        intent_stale_ms: 2_000,
        tick_ms: 50,
    }
}

pub fn regions_toml(ports: &[u16]) -> String {
    let mut text = String::new();
    for (admdvs, port) in NODES.iter().zip(ports) {
        let prefix = &admdvs[0..2];
        text.push_str(&format!(
            "[[region]]\nadmdvs = \"{admdvs}\"\nname = \"n{admdvs}\"\nurl = \"http://127.0.0.1:{port}\"\n\
             serves = [\"{prefix}\"]\nadvance_fen = 100000\nalert_pct = 80\n\n"
        ));
    }
    for (a, b, key) in KEYS {
        text.push_str(&format!(
            "[[link]]\na = \"{a}\"\nb = \"{b}\"\nkey_hex = \"{key}\"\n\n"
        ));
    }
    text
}

impl Cluster {
    pub async fn start(db: Db) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("settlement=warn")
            .with_test_writer()
            .try_init();
        let mut listeners = Vec::new();
        for _ in NODES {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("regions.toml"), regions_toml(&ports)).unwrap();
        let persons =
            settlement::refdata::load_persons_csv(&fixtures().join("persons/cards.csv")).unwrap();
        let mut nodes = Vec::new();
        for (admdvs, listener) in NODES.iter().zip(listeners) {
            let test = TestDb::new(db).await;
            let ledger = Arc::new(test.open(LedgerOptions::default()).await);
            let medical = Arc::new(Medical::new(ledger.clone(), refdata()));
            let mine: Vec<PersonImport> = persons
                .iter()
                .map(PersonImport::from)
                .filter(|p| p.record.insuplc_admdvs[0..2] == admdvs[0..2])
                .collect();
            medical.import_persons(&mine).await.unwrap();
            let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
            let (node, stop, server) = serve(&medical, admdvs, listener, dir.path()).await;
            nodes.push(NodeH {
                admdvs,
                test,
                ledger,
                medical,
                node,
                url,
                stop: Some(stop),
                server: Some(server),
            });
        }
        Cluster {
            nodes,
            regions_file: dir,
            http: reqwest::Client::new(),
            serial: AtomicU32::new(1),
        }
    }

    pub fn node(&self, admdvs: &str) -> &NodeH {
        self.nodes.iter().find(|n| n.admdvs == admdvs).unwrap()
    }

    pub fn node_mut(&mut self, admdvs: &str) -> &mut NodeH {
        self.nodes.iter_mut().find(|n| n.admdvs == admdvs).unwrap()
    }

    /// A fresh msgid of `fixmedins` (documented layout).
    pub fn msgid(&self, fixmedins: &str) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        format!("{fixmedins}20261130{:06}{:04}", n / 10_000, n % 10_000)
    }

    /// Sends an envelope to node `at`; returns the whole reply envelope.
    pub async fn send(&self, at: &str, env: &Value) -> Value {
        let url = format!(
            "{}{}",
            self.node(at).url,
            settlement::service::CALL_SERVICE_PATH
        );
        let reply = self.http.post(url).json(env).send().await.unwrap();
        reply.json().await.unwrap()
    }

    pub async fn ok(&self, at: &str, env: &Value) -> Value {
        let reply = self.send(at, env).await;
        assert_eq!(reply["infcode"], 0, "{reply}");
        reply["output"].clone()
    }

    /// One outpatient visit at `fixmedins` (treating division `area`, the node `at`) for
    /// `psn` insured in `insuplc`: 2201 + 2204 of `cnt` × 30.00 (甲类 drug), returns mdtrt_id.
    pub async fn visit(
        &self,
        at: &str,
        area: &str,
        fixmedins: &str,
        psn: &str,
        insuplc: &str,
        cnt: u32,
    ) -> String {
        let reg = self
            .ok(
                at,
                &envelope(
                    "2201",
                    &self.msgid(fixmedins),
                    fixmedins,
                    area,
                    insuplc,
                    json!({"data": {"psn_no": psn, "insutype": "310",
                                "begntime": "2026-11-30 09:00:00"}}),
                ),
            )
            .await;
        let mdtrt_id = reg["data"]["mdtrt_id"].as_str().unwrap().to_owned();
        self.ok(
            at,
            &envelope(
                "2204",
                &self.msgid(fixmedins),
                fixmedins,
                area,
                insuplc,
                json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": psn,
                "chrg_bchno": "B1", "med_list_codg": "XJ01CAA001A000000007919",
                "det_item_fee_sumamt": format!("{}.00", cnt * 30), "cnt": cnt,
                "pric": "30.00"}]}),
            ),
        )
        .await;
        mdtrt_id
    }

    pub fn settle_env(
        &self,
        area: &str,
        fixmedins: &str,
        psn: &str,
        insuplc: &str,
        mdtrt_id: &str,
        cnt: u32,
    ) -> Value {
        envelope(
            "2207",
            &self.msgid(fixmedins),
            fixmedins,
            area,
            insuplc,
            json!({"data": {"psn_no": psn, "mdtrt_id": mdtrt_id,
                "medfee_sumamt": format!("{}.00", cnt * 30), "insutype": "310",
                "acct_used_flag": "1", "med_type": "11"}}),
        )
    }

    /// Delivers every node's outbox until all are empty.
    pub async fn drain(&self) {
        for _ in 0..50 {
            let mut sent = 0;
            for n in &self.nodes {
                sent += n.node.flush_outbox(&n.medical).await.unwrap();
            }
            if sent == 0 {
                return;
            }
        }
        panic!("outboxes did not drain");
    }

    pub async fn finish(mut self) {
        for n in self.nodes.drain(..) {
            n.finish().await;
        }
    }
}

async fn serve(
    medical: &Arc<Medical>,
    admdvs: &str,
    listener: tokio::net::TcpListener,
    dir: &std::path::Path,
) -> (Arc<Node>, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let state = Arc::new(AppState {
        medical: medical.clone(),
        gateway: Gateway::new(GatewayConfig::default()),
        ready: AtomicBool::new(true),
    });
    let (node, routes) = region::attach(
        medical,
        state.clone(),
        admdvs,
        &dir.join("regions.toml"),
        options(),
    )
    .await
    .unwrap();
    let router = app(state).merge(routes);
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (node, tx, server)
}

impl NodeH {
    /// Stops accepting connections (the node becomes unreachable).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn balance(&self, spec: &AccountSpec) -> i64 {
        let account: Account = self.ledger.create_account(spec).await.unwrap();
        self.ledger
            .balance(account.id)
            .await
            .unwrap()
            .credit_balance_fen()
    }

    pub async fn verify(&self) {
        let report = self.ledger.verify().await.unwrap();
        assert!(
            report.is_consistent(),
            "{}: {:?}",
            self.admdvs,
            report.problems
        );
    }

    async fn finish(mut self) {
        self.stop().await;
        let test = self.test;
        drop(self.node);
        drop(self.medical);
        if let Ok(ledger) = Arc::try_unwrap(self.ledger) {
            ledger.close().await;
        }
        test.drop_db().await;
    }
}

/// An envelope as a HIS of treating division `area` sends it for a person insured in `insuplc`.
pub fn envelope(
    infno: &str,
    msgid: &str,
    fixmedins: &str,
    area: &str,
    insuplc: &str,
    input: Value,
) -> Value {
    json!({
        "infno": infno, "msgid": msgid, "mdtrtarea_admvs": area, "insuplc_admdvs": insuplc,
        "recer_sys_code": "HIS", "infver": "V1.0", "opter_type": "1", "opter": "OP001",
        "opter_name": "收费员", "inf_time": "2026-11-30 10:00:00", "fixmedins_code": fixmedins,
        "fixmedins_name": "示例医院", "sign_no": "", "input": input,
    })
}

/// The personal account of `psn_no` insured in `region`: code re-derived here from the
/// documented rule (medical::person: `P` + 31 hex digits of SHA-256("nhsa-acct-v1\0" | psn_no)).
pub fn personal(region: &str, psn_no: &str) -> AccountSpec {
    let digest = Sha256::digest([b"nhsa-acct-v1\0".as_slice(), psn_no.as_bytes()].concat());
    let code = format!("P{}", &hex::encode(digest)[..31]);
    AccountSpec {
        admdvs: settlement::Admdvs::parse(region).unwrap(),
        kind: AccountKind::Personal,
        code: settlement::AccountCode::parse(&code).unwrap(),
        flags: AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    }
}

/// A clearing account `{counter}-{fund}` in `ledger_region`'s books.
pub fn clearing(ledger_region: &str, counter: &str, fund: &str) -> AccountSpec {
    AccountSpec {
        admdvs: settlement::Admdvs::parse(ledger_region).unwrap(),
        kind: AccountKind::Clearing,
        code: settlement::AccountCode::parse(&format!("{counter}-{fund}")).unwrap(),
        flags: AccountFlags::default(),
    }
}

/// An institution receivable in `region`'s books.
pub fn institution(region: &str, fixmedins: &str) -> AccountSpec {
    AccountSpec {
        admdvs: settlement::Admdvs::parse(region).unwrap(),
        kind: AccountKind::InstitutionReceivable,
        code: settlement::AccountCode::parse(fixmedins).unwrap(),
        flags: AccountFlags::default(),
    }
}
