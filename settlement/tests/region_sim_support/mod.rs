//! The seeded simulation's world: three region nodes in this process, each on its own SQLite
//! file, whose inter-node messages travel through `SimNet`, an in-memory network that decides
//! each message's fate from the seed: delivered, lost before arrival, answered but the answer
//! lost, held back and delivered later (reordering), delivered twice (duplicate), refused, the
//! callee crashing before or after handling it, the caller crashing while it waits. A crashed
//! node loses everything in memory (its `Medical`, `Node` and ledger writer are dropped) and is
//! reopened from its database by a later step, as a restarted process would be.
//!
//! Determinism: every step runs to completion before the next one starts and nothing runs in
//! the background (no outbox or resolver task: those are steps), so a seed gives the same
//! sequence of operations and fates every time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use settlement::Ledger;
use settlement::LedgerOptions;
use settlement::medical::{Medical, PersonImport};
use settlement::region::client::{Transport, TransportError, TransportFuture, TransportReply};
use settlement::region::{self, Node, NodeOptions, Regions};
use settlement::service::{AppState, Gateway, GatewayConfig, app};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::common::{Db, TestDb};
use crate::service_support::refdata;

/// SplitMix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    /// Connection refused: the message never left.
    Refuse,
    /// Lost on the way: the caller times out.
    LoseRequest,
    /// Delivered and handled; the answer is lost.
    LoseReply,
    /// Held back: the caller times out; delivered by a later step (after later messages).
    Hold,
    /// Delivered now and once more later.
    Duplicate,
    /// The callee crashes before handling it.
    CrashCalleeBefore,
    /// The callee handles it, then crashes before answering.
    CrashCalleeAfter,
    /// Delivered and handled; the caller crashes while waiting for the answer.
    CrashCaller,
}

/// A message held for later delivery.
#[derive(Debug, Clone)]
pub struct Held {
    pub to: u32,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Debug)]
struct NetState {
    rng: Rng,
    routers: BTreeMap<u32, Router>,
    late: VecDeque<Held>,
    faults: bool,
    /// Nodes that crashed during the current step (torn down after it).
    crashed: Vec<u32>,
    log: Vec<String>,
}

/// The in-memory network shared by the simulated nodes.
#[derive(Debug)]
pub struct SimNet {
    state: Mutex<NetState>,
    /// Wakes the step runner when the caller of the current step crashed.
    pub caller_crashed: Notify,
}

fn header(headers: &HeaderMap, name: &str) -> u32 {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl SimNet {
    pub fn new(seed: u64) -> Arc<SimNet> {
        Arc::new(SimNet {
            state: Mutex::new(NetState {
                rng: Rng::new(seed ^ 0x0005_EED0_F7E7),
                routers: BTreeMap::new(),
                late: VecDeque::new(),
                faults: true,
                crashed: Vec::new(),
                log: Vec::new(),
            }),
            caller_crashed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_faults(&self, on: bool) {
        self.lock().faults = on;
    }

    pub fn attach(&self, code: u32, router: Router) {
        self.lock().routers.insert(code, router);
    }

    pub fn detach(&self, code: u32) {
        self.lock().routers.remove(&code);
    }

    pub fn take_crashed(&self) -> Vec<u32> {
        std::mem::take(&mut self.lock().crashed)
    }

    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().log)
    }

    pub fn late_len(&self) -> usize {
        self.lock().late.len()
    }

    /// Removes held message `index` (reordering: any of them, not only the oldest).
    pub fn take_late(&self, index: usize) -> Option<Held> {
        self.lock().late.remove(index)
    }

    fn choose(&self, to: u32) -> Option<Fate> {
        let mut st = self.lock();
        if !st.routers.contains_key(&to) {
            return None;
        }
        if !st.faults {
            return Some(Fate::Deliver);
        }
        let roll = st.rng.below(1000);
        Some(match roll {
            0..=579 => Fate::Deliver,
            580..=619 => Fate::Refuse,
            620..=679 => Fate::LoseRequest,
            680..=749 => Fate::LoseReply,
            750..=819 => Fate::Hold,
            820..=889 => Fate::Duplicate,
            890..=919 => Fate::CrashCalleeBefore,
            920..=949 => Fate::CrashCalleeAfter,
            _ => Fate::CrashCaller,
        })
    }

    /// Hands a message to node `to`'s router (if it is up) and returns its answer.
    pub async fn deliver(&self, held: &Held) -> Option<TransportReply> {
        let router = self.lock().routers.get(&held.to).cloned()?;
        let mut request = Request::builder().method("POST").uri(held.path.as_str());
        for (name, value) in &held.headers {
            request = request.header(name, value);
        }
        let request = request.body(Body::from(held.body.clone())).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 8 * 1024 * 1024)
            .await
            .unwrap();
        Some(TransportReply {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    fn crash(&self, code: u32) {
        let mut st = self.lock();
        st.routers.remove(&code);
        st.crashed.push(code);
    }

    fn note(&self, line: String) {
        self.lock().log.push(line);
    }
}

/// A `Transport` handle on the shared network.
#[derive(Debug, Clone)]
pub struct SimTransport(pub Arc<SimNet>);

impl Transport for SimTransport {
    fn post(&self, url: String, headers: HeaderMap, body: Vec<u8>) -> TransportFuture<'_> {
        Box::pin(async move {
            let net = &self.0;
            let from = header(&headers, region::auth::H_FROM);
            let to = header(&headers, region::auth::H_TO);
            let path = url
                .find("/region/")
                .map(|i| url[i..].to_owned())
                .unwrap_or(url);
            let held = Held {
                to,
                path: path.clone(),
                headers,
                body,
            };
            let Some(fate) = net.choose(to) else {
                net.note(format!("  net {from}->{to} {path}: node down"));
                return Err(TransportError::NotSent);
            };
            net.note(format!("  net {from}->{to} {path}: {fate:?}"));
            match fate {
                Fate::Deliver => net.deliver(&held).await.ok_or(TransportError::NotSent),
                Fate::Refuse => Err(TransportError::NotSent),
                Fate::LoseRequest => Err(TransportError::NoAnswer),
                Fate::LoseReply => {
                    net.deliver(&held).await;
                    Err(TransportError::NoAnswer)
                }
                Fate::Hold => {
                    net.lock().late.push_back(held);
                    Err(TransportError::NoAnswer)
                }
                Fate::Duplicate => {
                    net.lock().late.push_back(held.clone());
                    net.deliver(&held).await.ok_or(TransportError::NotSent)
                }
                Fate::CrashCalleeBefore => {
                    net.crash(to);
                    Err(TransportError::NoAnswer)
                }
                Fate::CrashCalleeAfter => {
                    net.deliver(&held).await;
                    net.crash(to);
                    Err(TransportError::NoAnswer)
                }
                Fate::CrashCaller => {
                    net.deliver(&held).await;
                    net.crash(from);
                    net.caller_crashed.notify_one();
                    std::future::pending().await
                }
            }
        })
    }
}

/// One running node.
pub struct Live {
    pub ledger: Arc<Ledger>,
    pub medical: Arc<Medical>,
    pub node: Arc<Node>,
    pub router: Router,
}

/// A node of the simulation: its database and, while it is up, its process state.
pub struct SimNode {
    pub admdvs: &'static str,
    pub code: u32,
    pub test: TestDb,
    pub live: Option<Live>,
}

pub fn sim_options() -> NodeOptions {
    NodeOptions {
        request_timeout_ms: 1_000,
        connect_timeout_ms: 100,
        // Below zero: every intent not in flight is stale when the resolver step runs.
        intent_stale_ms: -1_000,
        tick_ms: 1_000,
    }
}

impl SimNode {
    pub async fn create(admdvs: &'static str, persons: &[PersonImport]) -> SimNode {
        let test = TestDb::new(Db::Sqlite).await;
        let ledger = test.open(LedgerOptions::default()).await;
        let medical = Medical::new(Arc::new(ledger), refdata());
        medical.import_persons(persons).await.unwrap();
        let ledger = medical.ledger().clone();
        drop(medical);
        Arc::try_unwrap(ledger).unwrap().close().await;
        SimNode {
            admdvs,
            code: admdvs.parse().unwrap(),
            test,
            live: None,
        }
    }

    pub async fn start(&mut self, regions: &Regions, net: &Arc<SimNet>) {
        assert!(self.live.is_none());
        let ledger = Arc::new(self.test.open(LedgerOptions::default()).await);
        let medical = Arc::new(Medical::new(ledger.clone(), refdata()));
        let node = Arc::new(
            Node::with_transport(
                settlement::Admdvs::parse(self.admdvs).unwrap(),
                regions.clone(),
                sim_options(),
                &medical,
                Arc::new(SimTransport(net.clone())),
            )
            .await
            .unwrap(),
        );
        assert!(medical.set_region(node.clone()));
        let state = Arc::new(AppState {
            medical: medical.clone(),
            gateway: Gateway::new(GatewayConfig::default()),
            ready: AtomicBool::new(true),
        });
        let router = app(state.clone()).merge(region::router(state, node.clone()));
        net.attach(self.code, router.clone());
        self.live = Some(Live {
            ledger,
            medical,
            node,
            router,
        });
    }

    /// Drops everything this node holds in memory and closes its database, as a killed process.
    pub async fn stop(&mut self, net: &SimNet) {
        net.detach(self.code);
        let Some(live) = self.live.take() else {
            return;
        };
        let Live {
            ledger,
            medical,
            node,
            router,
        } = live;
        drop(router);
        drop(node);
        drop(medical);
        match Arc::try_unwrap(ledger) {
            Ok(ledger) => ledger.close().await,
            Err(_) => panic!(
                "node {}: ledger still referenced after a crash",
                self.admdvs
            ),
        }
    }

    pub fn up(&self) -> bool {
        self.live.is_some()
    }

    pub fn live(&self) -> &Live {
        self.live.as_ref().expect("node is up")
    }
}
