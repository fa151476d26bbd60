//! The move log: while a node receives a copy of a shard, the writes for that shard are kept
//! for it here, durably and in the order Miroir accepted them, instead of being sent. Once the
//! copy is in, `fleet/` replays the log over it: every write since the copy began reaches the
//! node after the copy, so no copied page can overwrite a newer write. Kept in the hint store
//! under a key no node id can take (node ids have no `#`).

use miroir_filters::routing::NodeId;
use miroir_handoff::{Hint, HintError, Seq, Ticket};

use super::Cluster;
use crate::telemetry::metrics;

/// The hint-store queue of `node`'s move log.
pub fn key(node: &str) -> String {
    format!("{node}#move")
}

/// Appends a write `node` will receive after its copy and waits until it is durable. A write
/// that cannot be kept breaks the copy's guarantee: the node's moves start over (see
/// `Cluster::broken_move_logs`).
pub async fn append(cluster: &Cluster, node: &NodeId, hint: Hint) -> Option<Seq> {
    keep(cluster, node, hint).durable(cluster).await
}

/// A write handed to `node`'s move log, in its place in the log's order, on its way to disk.
pub struct Logged {
    node: NodeId,
    index_uid: String,
    ticket: Result<Ticket, HintError>,
}

/// Hands a write to `node`'s move log without waiting for the disk (see `handoff::keep`).
pub fn keep(cluster: &Cluster, node: &NodeId, hint: Hint) -> Logged {
    let index_uid = hint.index_uid.clone();
    let ticket = cluster.hints.enqueue(&key(node.as_str()), hint, u64::MAX);
    Logged {
        node: node.clone(),
        index_uid,
        ticket,
    }
}

impl Logged {
    /// Whether the store took it (it may still fail to commit).
    pub fn taken(&self) -> bool {
        self.ticket.is_ok()
    }

    /// The entry's place once durable; `None` (and the node's moves start over) when it could
    /// not be kept.
    pub async fn durable(self, cluster: &Cluster) -> Option<Seq> {
        let outcome = match self.ticket {
            Ok(ticket) => ticket.durable().await,
            Err(e) => Err(e),
        };
        let (node, key) = (&self.node, key(self.node.as_str()));
        match outcome {
            Ok(seq) => {
                metrics::set_backlog(&key, cluster.hints.backlog(&key));
                Some(seq)
            }
            Err(e) => {
                log::error!(target: "miroir::fleet", "could not keep a write to `{}` for node {node}'s shard copy; its copy starts over: {e}", self.index_uid);
                cluster.broken_move_logs.insert(node.clone(), ());
                None
            }
        }
    }
}
