//! Hinted handoff: keeping the writes a replica missed (`hint`), knowing when a node must get
//! new writes behind them (`must_queue`), and showing what is still pending on the tasks they
//! belong to (`decorate`). `replay` sends them once the node answers again.
//!
//! Order: every write to an index is handed to its nodes under that index's write-order lock,
//! and a node with hints waiting gets new writes appended to its queue instead of directly, so
//! each replica applies an index's writes in the order Miroir accepted them, replays included.

use std::borrow::Cow;

use miroir_filters::routing::{GroupId, NodeId};
use miroir_handoff::{Hint, HintError, Seq};
use miroir_tasks::{NodeView, TaskRecord};
use serde_json::{json, Value};

use crate::cluster::node_state::NodeState;
use crate::cluster::{Cluster, Runtime};
use crate::telemetry::metrics;

/// Broadcast routes whose missed copies are kept as hints: an index's document deletions and
/// edits, and its settings.
pub fn hinted_route(route: &str) -> bool {
    matches!(
        route,
        "documents.clear" | "documents.delete_by_filter" | "documents.edit"
    ) || route.starts_with("settings.")
}

/// Whether a write for `node` goes to its hint queue rather than to the node: the node is
/// known down, or older writes are still waiting for it (sending now would overtake them).
pub fn must_queue(cluster: &Cluster, node: &NodeId) -> bool {
    cluster.node_state(node) == NodeState::Failed || cluster.hints.backlog(node.as_str()).hints > 0
}

/// Keeps a write `node` missed. `None` when it could not be kept (queue full, store error):
/// if the write is acknowledged anyway, [`lost`] records that the node needs a full resync.
pub fn hint(cluster: &Cluster, node: &NodeId, hint: &Hint) -> Option<Seq> {
    let cap = cluster.runtime().config.handoff.max_bytes_per_node;
    let outcome = cluster.hints.append(node.as_str(), hint, cap);
    let m = metrics::get();
    let seq = match outcome {
        Ok(seq) => {
            m.hints.with_label_values(&[node.as_str(), "stored"]).inc();
            Some(seq)
        }
        Err(HintError::Full { cap, .. }) => {
            m.hints.with_label_values(&[node.as_str(), "full"]).inc();
            log::warn!(
                target: "miroir::handoff",
                "hint queue of node {node} is full ({cap} bytes, or the node awaits a resync): a write to `{}` cannot be kept for it",
                hint.index_uid
            );
            None
        }
        Err(e) => {
            log::error!(target: "miroir::handoff", "could not keep a write for node {node}: {e}");
            None
        }
    };
    metrics::set_backlog(node.as_str(), cluster.hints.backlog(node.as_str()));
    cluster.fell_behind(node);
    seq
}

/// An acknowledged write missed `node` and no hint holds it: the node needs a full resync,
/// and stays out of reads until it had one.
pub fn lost(cluster: &Cluster, node: &NodeId) {
    if cluster.hints.backlog(node.as_str()).needs_resync {
        return;
    }
    log::error!(
        target: "miroir::handoff",
        "node {node} missed an acknowledged write that could not be kept for it: it needs a full resync"
    );
    if let Err(e) = cluster.hints.mark_resync(node.as_str()) {
        log::error!(target: "miroir::handoff", "could not record that node {node} needs a resync: {e}");
    }
    metrics::set_backlog(node.as_str(), cluster.hints.backlog(node.as_str()));
    cluster.fell_behind(node);
}

/// Drops hints of a write that was not acknowledged to the client (it failed as a whole).
pub fn forget(cluster: &Cluster, hints: &[(NodeId, Seq)]) {
    for (node, seq) in hints {
        if let Err(e) = cluster.hints.remove(node.as_str(), *seq) {
            log::error!(target: "miroir::handoff", "could not drop hint {} of node {node}: {e}", seq.0);
        }
        metrics::set_backlog(node.as_str(), cluster.hints.backlog(node.as_str()));
    }
}

/// The nodes a task's write still waits for, as its `miroir.pendingReplays` extension shows.
pub fn pending_replays(cluster: &Cluster, record: &TaskRecord) -> Vec<String> {
    let mut nodes: Vec<String> = record
        .replays
        .iter()
        .filter(|r| cluster.hints.contains(&r.node, Seq(r.seq)))
        .map(|r| r.node.clone())
        .collect();
    nodes.dedup();
    nodes
}

/// Adds (or removes) the Miroir extension field of a task view: SDKs ignore it.
pub fn decorate(cluster: &Cluster, record: &TaskRecord, view: &mut Value) {
    if record.replays.is_empty() {
        return;
    }
    let pending = pending_replays(cluster, record);
    if let Some(obj) = view.as_object_mut() {
        obj.insert("miroir".into(), json!({ "pendingReplays": pending }));
    }
}

/// A task's node parts without those Miroir cannot ask because their node is down, when
/// other replicas hold every shard of theirs: a write is done once its quorum is, and the down
/// node processes its copy when it is back. Parts of a node that is merely slow to answer
/// (still serving) stay, so the task waits for them.
pub fn without_unreachable<'r>(
    cluster: &Cluster,
    rt: &Runtime,
    record: &'r TaskRecord,
    views: Vec<NodeView>,
) -> (Cow<'r, TaskRecord>, Vec<NodeView>) {
    let p = rt.writes();
    let succeeded = |node: &str| {
        record.node_tasks.iter().zip(&views).any(|(part, view)| {
            part.node == node && matches!(view, NodeView::Task(t) if t["status"] == "succeeded")
        })
    };
    let had_part = |node: &str| {
        record.node_tasks.iter().any(|t| t.node == node)
            || record.replays.iter().any(|r| r.node == node)
    };
    // The index's shards only: the placement may be wider than its S.
    let shards = record
        .index_uid
        .as_deref()
        .map_or(p.shards(), |uid| cluster.shard_counts.of(uid));
    let covered = |node: &str| {
        let Some(idx) = p.index_of(node) else {
            return false;
        };
        p.shards_of(idx)
            .iter()
            .filter(|s| s.0 < shards)
            .all(|&shard| {
                (0..p.groups()).any(|g| {
                    p.replicas(GroupId(g), shard).iter().any(|&r| {
                        let other = p.node(r).as_str();
                        r != idx && (succeeded(other) || !had_part(other))
                    })
                })
            })
    };
    let drop: Vec<bool> = record
        .node_tasks
        .iter()
        .zip(&views)
        .map(|(part, view)| {
            matches!(view, NodeView::Unknown)
                && part.task_uid.is_some()
                && rt
                    .nodes
                    .iter()
                    .find(|n| n.id.as_str() == part.node)
                    .is_some_and(|n| !cluster.node_state(&n.id).serves_reads())
                && covered(&part.node)
        })
        .collect();
    if !drop.contains(&true) {
        return (Cow::Borrowed(record), views);
    }
    let mut kept = record.clone();
    kept.node_tasks = record
        .node_tasks
        .iter()
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|(t, _)| t.clone())
        .collect();
    let views = views
        .into_iter()
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|(v, _)| v)
        .collect();
    (Cow::Owned(kept), views)
}
