//! The move log: while a node receives a copy of a shard, the writes for that shard are kept
//! for it here, durably and in the order Miroir accepted them, instead of being sent. Once the
//! copy is in, `fleet/` replays the log over it: every write since the copy began reaches the
//! node after the copy, so no copied page can overwrite a newer write. Kept in the hint store
//! under a key no node id can take (node ids have no `#`).

use miroir_filters::routing::NodeId;
use miroir_handoff::{Hint, Seq};

use super::kept::Kept;
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
    durable(cluster, keep(cluster, node, hint)).await
}

/// Hands a write to `node`'s move log without waiting for the disk.
pub fn keep(cluster: &Cluster, node: &NodeId, hint: Hint) -> Kept {
    Kept::enqueue(cluster, node, &key(node.as_str()), hint, u64::MAX)
}

/// The entry's place once durable; `None` (and the node's moves start over) when it could not
/// be kept.
pub async fn durable(cluster: &Cluster, kept: Kept) -> Option<Seq> {
    let (node, index_uid) = (kept.node.clone(), kept.index_uid.clone());
    let key = key(node.as_str());
    match kept.durable().await {
        Ok(seq) => {
            metrics::set_backlog(&key, cluster.hints.backlog(&key));
            Some(seq)
        }
        Err(e) => {
            log::error!(target: "miroir::fleet", "could not keep a write to `{index_uid}` for node {node}'s shard copy; its copy starts over: {e}");
            cluster.broken_move_logs.insert(node, ());
            None
        }
    }
}
