//! Delivery of the outbox: every unacknowledged message (reversals, clearing settlements) is
//! POSTed to its node, oldest first, on each tick, until the peer answers with a verified 200
//! reply; then an acknowledgement row is written. At least once here, exactly-once effect at the receiver (its inbox).
//! Source: anchors-switch.md §6(d) ("Outbox table with a delivered flag; retry until
//! acknowledged"; "Durable reversal queue with retry until a final acknowledgement").

use crate::ids::Admdvs;
use crate::medical::Medical;
use crate::medical::ids::now_ms;

use super::{Node, RegionError, db};

/// Most messages sent per tick.
pub const OUTBOX_BATCH_MAX: i64 = 64;

/// One delivery round. Errors: storage (delivery failures are logged and retried next tick).
pub(crate) async fn deliver(node: &Node, med: &Medical) -> Result<usize, RegionError> {
    let _turn = node.outbox_turn.lock().await;
    let pending = db::pending_outbox(med.ledger(), OUTBOX_BATCH_MAX).await?;
    let mut acked = Vec::new();
    for (msg_id, to, path, body) in pending {
        let to = Admdvs::from_code(to).map_err(|e| RegionError::Storage(e.to_string()))?;
        match node
            .call_raw::<serde_json::Value>(to, &path, body.into_bytes())
            .await
        {
            Ok(_) => acked.push(msg_id),
            Err(error) => {
                tracing::info!(%error, msg_id, "outbox delivery failed; will retry");
            }
        }
    }
    let count = acked.len();
    if count > 0 {
        db::ack_outbox(med.ledger(), &acked, now_ms()).await?;
    }
    Ok(count)
}

impl Node {
    /// Delivers the outbox now (tests and operators; the background task does it every tick).
    pub async fn flush_outbox(&self, med: &Medical) -> Result<usize, RegionError> {
        deliver(self, med).await
    }
}
