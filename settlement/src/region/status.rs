//! What an operator (and the fault tests) can see of a node: the state of one transfer as this
//! node knows it (treating-side states, insured-side inbox), and the node's open items (messages
//! not yet acknowledged, intents not yet resolved). Served under `/region/v1/admin/`.

use serde::{Deserialize, Serialize};

use crate::medical::Medical;

use super::wire::Decision;
use super::{Node, RegionError, db};

/// One transfer (`xfer_id` = `{treating}-{msgid}`) as this node knows it. The treating node
/// fills `treating_states`, the insured node `decision` and `reversal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStatus {
    /// Treating-side states reached, in lifecycle order: `I` intent, `S` settled here, `F`
    /// finished without money, `A` abandoned (reversal queued), `C` cancelled after settling.
    pub treating_states: Vec<String>,
    /// Insured side: `settled` (posted) or `voided` (never posted, late requests refused).
    pub decision: Option<String>,
    /// Insured side: `reversed` (the posting was mirrored) or `voided` (nothing to mirror).
    pub reversal: Option<String>,
}

impl TransferStatus {
    /// The treating node holds the settlement (settled here, not cancelled or reversed).
    pub fn live_at_treating(&self) -> bool {
        self.has("S") && !self.has("C")
    }

    /// The insured node's posting stands (settled, not reversed).
    pub fn live_at_insured(&self) -> bool {
        self.decision.as_deref() == Some("settled") && self.reversal.is_none()
    }

    fn has(&self, state: &str) -> bool {
        self.treating_states.iter().any(|s| s == state)
    }
}

/// A node's open items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node's division.
    pub admdvs: u32,
    /// The open clearing window of this node as origin.
    pub open_window: i64,
    /// Outbox messages not yet acknowledged by their node.
    pub outbox_pending: i64,
    /// Intents with no outcome yet (in flight, or left by a crash for the resolver).
    pub intents_open: i64,
    /// Net position toward the national platform after the clearing runs so far, fen (+ this
    /// region receives, − it pays).
    pub national_position_fen: i64,
}

impl NodeStatus {
    /// Nothing left to deliver or resolve.
    pub fn quiet(&self) -> bool {
        self.outbox_pending == 0 && self.intents_open == 0
    }
}

fn decision_name(reply: &str) -> Result<String, RegionError> {
    let decision: Decision =
        serde_json::from_str(reply).map_err(|e| RegionError::Storage(e.to_string()))?;
    Ok(match decision {
        Decision::Settled(_) => "settled",
        Decision::Voided => "voided",
        Decision::Reversed => "reversed",
    }
    .to_owned())
}

impl Node {
    /// Transfer `xfer_id` as this node knows it. Errors: storage.
    pub async fn transfer(
        &self,
        med: &Medical,
        xfer_id: &str,
    ) -> Result<TransferStatus, RegionError> {
        let mut status = TransferStatus::default();
        let order = ["I", "S", "F", "A", "C"];
        let mut states: Vec<String> = db::xfer_states(med.ledger(), xfer_id)
            .await?
            .into_iter()
            .map(|(state, ..)| state)
            .collect();
        states.sort_by_key(|s| order.iter().position(|o| o == s));
        status.treating_states = states;
        for (kind, _, reply) in db::inbox(med.ledger(), xfer_id).await? {
            match kind.as_str() {
                "D" => status.decision = Some(decision_name(&reply)?),
                _ => status.reversal = Some(decision_name(&reply)?),
            }
        }
        Ok(status)
    }

    /// This node's open items. Errors: storage.
    pub async fn status(&self, med: &Medical) -> Result<NodeStatus, RegionError> {
        let (outbox_pending, intents_open) = db::open_counts(med.ledger()).await?;
        Ok(NodeStatus {
            admdvs: self.me.code(),
            open_window: self.open_window(med).await?,
            outbox_pending,
            intents_open,
            national_position_fen: self.national_position(med).await?,
        })
    }
}
