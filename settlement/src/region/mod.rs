//! Cross-region direct settlement between region nodes (issue 6): each region (110000 Beijing,
//! 120000 Tianjin, 130000 Hebei with its cities) is its own `settlement serve` node with its own
//! database and ledger; no transaction spans two databases.
//!
//! The national rule (medical-settlement.md §3.1, 就医地目录、参保地政策、就医地管理):
//! - the TREATING node classified the fee lines with its own catalogue at upload (2204/2301);
//! - at 2207/2304 it asks the INSURED node (`treating::settle` → `POST /region/v1/split`), which
//!   applies its policy to the person's accumulators and account, posts in its own ledger
//!   (funds and personal account → clearing toward the treating region) and answers the split;
//! - the treating node then pays the hospital from its clearing account (a claim on the insured
//!   region) in one posting with the settlement record and the clearing events.
//!
//! Failure handling (anchors-switch.md §6(d)): an intent row precedes every call; a refused
//! connection refuses the settlement at once (nothing posted on either side); a timeout is
//! "unknown" and is resolved at once by `resolve` (query-or-void on the insured node), else by a
//! durable reversal in the outbox (`outbox`), retried until acknowledged; intents left by a crash
//! are abandoned the same way by the resolver task. Cancellations (2208/2305) and reversals (2601)
//! of a cross-region settlement post the mirror locally with a reversal message in the outbox, in
//! the same transaction. The insured node's inbox (`region_inbox`) makes each message take effect
//! once. Clearing (`clearing`): positions per counter-region and fund in the origin's windows,
//! an atomic window close, the net report and the advance-fund (预付金) alert.

mod api;
pub mod auth;
pub mod clearing;
pub mod clearing_run;
pub mod client;
pub mod config;
pub(crate) mod db;
pub mod insured;
mod locks;
pub(crate) mod monthly;
mod outbox;
pub mod status;
pub mod treating;
pub mod wire;

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::ids::Admdvs;
use crate::medical::Medical;

pub use api::router;
pub use config::{Region, Regions};
pub use locks::WindowStamp;

/// Errors of the region layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// The regions file is unusable.
    #[error("regions file: {0}")]
    Config(String),
    /// This node's division is not in the regions file.
    #[error("region {0} is not in the regions file")]
    UnknownRegion(Admdvs),
    /// The peer could not be reached (connection refused or failed before sending).
    #[error("region node {0} unreachable")]
    Unreachable(Admdvs),
    /// The peer did not answer in time or the connection broke after sending: outcome unknown.
    #[error("region node {0}: no answer in time (outcome unknown)")]
    Unknown(Admdvs),
    /// The peer's reply failed authentication or could not be read.
    #[error("region node {0}: bad reply ({1})")]
    BadReply(Admdvs, &'static str),
    /// The peer refused the request (catalogued code and message).
    #[error("region node {0} refused: {1} {2}")]
    Refused(Admdvs, String, String),
    /// Storage.
    #[error("storage: {0}")]
    Storage(String),
}

/// Timeouts and periods of a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Per inter-node request, ms (the HIS waits for the whole round trip).
    pub request_timeout_ms: u64,
    /// Connect timeout, ms (a dead node is refused at once).
    pub connect_timeout_ms: u64,
    /// An intent older than this with no outcome is abandoned by the resolver, ms (the
    /// simulation sets it below 0: every intent not in flight in this process is stale).
    pub intent_stale_ms: i64,
    /// Period of the outbox and resolver task, ms.
    pub tick_ms: u64,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            request_timeout_ms: 3_000,
            connect_timeout_ms: 500,
            intent_stale_ms: 10_000,
            tick_ms: 200,
        }
    }
}

/// One region node: its identity, the region set, the HTTP client, the clearing window and the
/// per-transfer locks.
#[derive(Debug)]
pub struct Node {
    me: Admdvs,
    regions: Regions,
    options: NodeOptions,
    transport: Arc<dyn client::Transport>,
    /// The open clearing window of this node as origin; settlements hold it shared from stamping
    /// to commit, closing takes it exclusively (the atomic cut).
    window: locks::WindowGate,
    xfers: locks::KeyedLocks,
    /// One delivery round at a time (the background task and `flush_outbox`).
    outbox_turn: tokio::sync::Mutex<()>,
}

impl Node {
    /// Node `me` of `regions`. Errors: `UnknownRegion`, `Config` (HTTP client).
    pub async fn new(
        me: Admdvs,
        regions: Regions,
        options: NodeOptions,
        medical: &Medical,
    ) -> Result<Node, RegionError> {
        let transport = Arc::new(client::HttpTransport::new(
            options.connect_timeout_ms,
            options.request_timeout_ms,
        )?);
        Node::with_transport(me, regions, options, medical, transport).await
    }

    /// Node `me` of `regions` whose inter-node messages go through `transport` (the seeded
    /// simulation's network; `new` uses HTTP). Errors: `UnknownRegion`, storage.
    pub async fn with_transport(
        me: Admdvs,
        regions: Regions,
        options: NodeOptions,
        medical: &Medical,
        transport: Arc<dyn client::Transport>,
    ) -> Result<Node, RegionError> {
        if regions.get(me).is_none() {
            return Err(RegionError::UnknownRegion(me));
        }
        let open = db::open_window(medical.ledger()).await?;
        Ok(Node {
            me,
            regions,
            options,
            transport,
            window: locks::WindowGate::new(open, medical.shared_locks().cloned()),
            xfers: locks::KeyedLocks::new(medical.shared_locks().cloned()),
            outbox_turn: tokio::sync::Mutex::new(()),
        })
    }

    /// This node's division.
    pub fn me(&self) -> Admdvs {
        self.me
    }

    /// The region set.
    pub fn regions(&self) -> &Regions {
        &self.regions
    }

    /// True if this node is the insured node for division `insured`.
    pub fn serves(&self, insured: Admdvs) -> bool {
        self.regions
            .route(insured)
            .is_some_and(|r| r.admdvs == self.me)
    }

    /// Spawns the outbox delivery and intent resolver task; it stops when `medical` is dropped.
    pub fn spawn_tasks(self: &Arc<Self>, medical: &Arc<Medical>) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        let medical: Weak<Medical> = Arc::downgrade(medical);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(node.options.tick_ms));
            loop {
                tick.tick().await;
                let Some(medical) = medical.upgrade() else {
                    return;
                };
                if let Err(error) = treating::resolve_stale(&node, &medical).await {
                    tracing::warn!(%error, "region resolver");
                }
                if let Err(error) = outbox::deliver(&node, &medical).await {
                    tracing::warn!(%error, "region outbox");
                }
            }
        })
    }
}

/// The transfer id of a settlement made at `treating` by HIS message `msgid`.
pub fn xfer_id(treating: Admdvs, msgid: &str) -> String {
    format!("{treating}-{msgid}")
}

/// Makes `medical` the node `region` of the regions file `regions`: loads the file, sets the
/// node on the core, spawns the outbox/resolver task and returns the `/region/v1/*` routes to
/// merge into the service app. Errors: `Config`, `UnknownRegion`, storage.
pub async fn attach(
    medical: &Arc<Medical>,
    app: Arc<crate::service::AppState>,
    region: &str,
    regions: &std::path::Path,
    options: NodeOptions,
) -> Result<(Arc<Node>, axum::Router), RegionError> {
    let me = Admdvs::parse(region).map_err(|e| RegionError::Config(e.to_string()))?;
    let regions = Regions::load(regions)?;
    let node = Arc::new(Node::new(me, regions, options, medical).await?);
    medical.set_region(node.clone());
    node.spawn_tasks(medical);
    let routes = router(app, node.clone());
    Ok((node, routes))
}
