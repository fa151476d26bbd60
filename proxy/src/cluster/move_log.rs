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

/// Where a broken log is marked, with a shared store: a queue that never holds a hint (the
/// mark on the log's own queue would refuse its appends).
fn broken_key(node: &str) -> String {
    format!("{node}#move-broken")
}

/// Appends a write `node` will receive after its copy and waits until it is durable. A write
/// that cannot be kept breaks the copy's guarantee: the node's moves start over (see
/// [`break_log`]).
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
            break_log(cluster, &node).await;
            None
        }
    }
}

/// `node`'s move log missed a write (or holds one that must not be replayed over a copy):
/// its copies start over. With a shared store, the mark is in Redis, so the Miroir carrying
/// the change out sees it whichever Miroir set it.
pub async fn break_log(cluster: &Cluster, node: &NodeId) {
    cluster.broken_move_logs.insert(node.clone(), ());
    if !cluster.hints.shared() {
        return;
    }
    let (store, key) = (cluster.hints.clone(), broken_key(node.as_str()));
    let marked = tokio::task::spawn_blocking(move || store.mark_resync(&key)).await;
    if !matches!(marked, Ok(Ok(()))) {
        log::error!(target: "miroir::fleet", "could not mark node {node}'s move log as broken in Redis");
    }
}

/// Whether `node`'s move log is broken (see [`break_log`]), as Redis holds it now.
pub async fn broken(cluster: &Cluster, node: &NodeId) -> bool {
    if cluster.broken_move_logs.contains_key(node) {
        return true;
    }
    if !cluster.hints.shared() {
        return false;
    }
    let store = cluster.hints.clone();
    let _ = tokio::task::spawn_blocking(move || store.refresh()).await;
    cluster
        .hints
        .backlog(&broken_key(node.as_str()))
        .needs_resync
}

/// Forgets that `node`'s move log was broken (its copies start afresh, the log emptied).
pub async fn mend(cluster: &Cluster, node: &NodeId) -> Result<(), String> {
    cluster.broken_move_logs.remove(node);
    if !cluster.hints.shared() {
        return Ok(());
    }
    let (store, key) = (cluster.hints.clone(), broken_key(node.as_str()));
    tokio::task::spawn_blocking(move || store.clear_resync(&key))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
