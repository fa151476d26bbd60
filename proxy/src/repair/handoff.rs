//! Hinted handoff: keeping the writes a replica missed (`hint`), knowing when a node must get
//! new writes behind them (`must_queue`), and showing what is still pending on the tasks they
//! belong to (`decorate`). `replay` sends them once the node answers again.
//!
//! Order: every write to an index is handed to its nodes under that index's write-order lock,
//! and a node with hints waiting gets new writes appended to its queue instead of directly, so
//! each replica applies an index's writes in the order Miroir accepted them, replays included.

use std::borrow::Cow;

use miroir_filters::error::MiroirError;
use miroir_filters::routing::{GroupId, NodeId};
use miroir_handoff::{Hint, HintError, HintStore, Seq};
use miroir_tasks::{NodeView, TaskRecord};
use serde_json::{json, Value};

use crate::cluster::kept::Kept;
use crate::cluster::node_state::NodeState;
use crate::cluster::{Cluster, Runtime};
use crate::node_io::{missed, once};
use crate::telemetry::metrics;
use crate::upstream::{NodeRequest, NodeResult, UpstreamError};

/// Broadcast routes whose missed copies go into the node's log (the hint store) and are
/// replayed in acceptance order with its document writes: document deletions and edits,
/// settings, index creation, update, deletion and swap, and keys.
pub fn logged_route(route: &str) -> bool {
    matches!(
        route,
        "documents.clear"
            | "documents.delete_by_filter"
            | "documents.edit"
            | "indexes.create"
            | "index.update"
            | "index.delete"
            | "swap_indexes"
            | "keys.create"
            | "key.update"
            | "key.delete"
    ) || route.starts_with("settings.")
}

/// The write order a logged request takes: its index's (an index creation names it in its
/// body), or the instance-wide one (keys, swaps).
pub fn log_scope(route: &str, index_uid: Option<&str>, body: &[u8]) -> String {
    if let Some(index) = index_uid {
        return index.to_owned();
    }
    if route == "indexes.create" {
        if let Some(uid) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["uid"].as_str().map(str::to_owned))
        {
            return uid;
        }
    }
    String::new()
}

/// Whether a write for `node` goes to its hint queue rather than to the node: the node is
/// known down, or older writes are still waiting for it (sending now would overtake them).
pub fn must_queue(cluster: &Cluster, node: &NodeId) -> bool {
    cluster.node_state(node) == NodeState::Failed || cluster.hints.backlog(node.as_str()).hints > 0
}

/// Keeps a write `node` missed and waits until it is durable. `None` when it could not be
/// kept (queue full, store error): if the write is acknowledged anyway, [`lost`] records that
/// the node needs a full resync.
pub async fn hint(cluster: &Cluster, node: &NodeId, hint: Hint) -> Option<Seq> {
    durable(cluster, keep(cluster, node, hint)).await
}

/// Hands a write `node` missed to its hint queue without waiting for the disk.
pub fn keep(cluster: &Cluster, node: &NodeId, hint: Hint) -> Kept {
    let cap = cluster.runtime().config.handoff.max_bytes_per_node;
    let kept = Kept::enqueue(cluster, node, node.as_str(), hint, cap);
    // Out of reads from now: it lacks a write, kept or not.
    cluster.fell_behind(node);
    kept
}

/// The hint's place once durable; `None` when it could not be kept.
pub async fn durable(cluster: &Cluster, kept: Kept) -> Option<Seq> {
    let (node, index_uid) = (kept.node.clone(), kept.index_uid.clone());
    let m = metrics::get();
    let seq = match kept.durable().await {
        Ok(seq) => {
            m.hints.with_label_values(&[node.as_str(), "stored"]).inc();
            Some(seq)
        }
        Err(HintError::Full { cap, .. }) => {
            m.hints.with_label_values(&[node.as_str(), "full"]).inc();
            log::warn!(
                target: "miroir::handoff",
                "hint queue of node {node} is full ({cap} bytes, or the node awaits a resync): a write to `{index_uid}` cannot be kept for it"
            );
            None
        }
        Err(e) => {
            log::error!(target: "miroir::handoff", "could not keep a write for node {node}: {e}");
            None
        }
    };
    metrics::set_backlog(node.as_str(), cluster.hints.backlog(node.as_str()));
    seq
}

/// One request for every node of `rt`, handed over in order: sent to the nodes that can take
/// it now, kept in the log of the others (down, behind on older writes, or missing it now).
/// The caller holds the write order of the request's scope. The results in node order (a
/// queued node's is a connection error it never saw), and the nodes whose log kept it.
pub async fn send_every(
    cluster: &Cluster,
    rt: &Runtime,
    req: &NodeRequest<'_>,
    as_hint: impl Fn() -> Hint,
) -> (Vec<NodeResult>, Vec<(usize, Seq)>) {
    let sends = rt.nodes.iter().map(|node| async move {
        if must_queue(cluster, &node.id) {
            return Err(UpstreamError::Connect(
                "queued behind earlier writes".into(),
            ));
        }
        let result = once::send(cluster, rt, node, req, false).await;
        cluster.observe(rt, &node.id, !missed(&result), false);
        result
    });
    let results = futures::future::join_all(sends).await;
    let mut hinted = Vec::new();
    for (i, result) in results.iter().enumerate() {
        if missed(result) {
            let mut entry = as_hint();
            entry.maybe_applied = once::uncertain(result);
            if let Some(seq) = hint(cluster, &rt.nodes[i].id, entry).await {
                hinted.push((i, seq));
            }
        }
    }
    (results, hinted)
}

/// An acknowledged write missed `node` and no hint holds it: the node needs a full resync,
/// and stays out of reads until it had one.
pub async fn lost(cluster: &Cluster, node: &NodeId) {
    if cluster.hints.backlog(node.as_str()).needs_resync {
        return;
    }
    log::error!(
        target: "miroir::handoff",
        "node {node} missed an acknowledged write that could not be kept for it: it needs a full resync"
    );
    let (store, key) = (cluster.hints.clone(), node.as_str().to_owned());
    let marked = tokio::task::spawn_blocking(move || store.mark_resync(&key))
        .await
        .unwrap_or_else(|e| Err(HintError::Backend(e.to_string())));
    if let Err(e) = marked {
        log::error!(target: "miroir::handoff", "could not record that node {node} needs a resync: {e}");
    }
    metrics::set_backlog(node.as_str(), cluster.hints.backlog(node.as_str()));
    cluster.fell_behind(node);
}

/// The error of a write some node applied: it says that the write is not undone but rolled
/// forward to every replica (the missed ones get it from their log).
pub fn rolled_forward(mut error: MiroirError) -> MiroirError {
    error.message.push_str(
        " The write was applied on some nodes and is being rolled forward to every replica: it will take effect everywhere.",
    );
    error
}

/// Drops hints of a write that reached no node (refused or failed as a whole): nothing of it
/// is to be rolled forward.
pub async fn forget(cluster: &Cluster, hints: &[(NodeId, Seq)]) {
    for (node, seq) in hints {
        if let Err(e) = remove(cluster, node.as_str(), *seq).await {
            log::error!(target: "miroir::handoff", "could not drop hint {} of node {node}: {e}", seq.0);
        }
        metrics::set_backlog(node.as_str(), cluster.hints.backlog(node.as_str()));
    }
}

/// Runs `f` on the hint store off the async workers (the shared store answers over the
/// network, the embedded one may wait for the disk).
async fn off_workers<T: Send + 'static>(
    cluster: &Cluster,
    node: &str,
    f: impl FnOnce(&HintStore, &str) -> Result<T, HintError> + Send + 'static,
) -> Result<T, HintError> {
    let (store, key) = (cluster.hints.clone(), node.to_owned());
    tokio::task::spawn_blocking(move || f(&store, &key))
        .await
        .unwrap_or_else(|e| Err(HintError::Backend(e.to_string())))
}

/// Drops one entry of a node's log (replayed, or abandoned).
pub async fn remove(cluster: &Cluster, node: &str, seq: Seq) -> Result<bool, HintError> {
    off_workers(cluster, node, move |s, n| s.remove(n, seq)).await
}

/// Drops a replayed entry while this Miroir holds the node's lease (see
/// [`HintStore::remove_leased`]).
pub async fn remove_leased(cluster: &Cluster, node: &str, seq: Seq) -> Result<bool, HintError> {
    off_workers(cluster, node, move |s, n| s.remove_leased(n, seq)).await
}

/// The oldest entry of a node's log.
pub async fn first(cluster: &Cluster, node: &str) -> Result<Option<(Seq, Hint)>, HintError> {
    off_workers(cluster, node, |s, n| s.first(n)).await
}

/// Takes or renews the right to replay the node's log (one Miroir at a time).
pub async fn lease(cluster: &Cluster, node: &str) -> Result<bool, HintError> {
    off_workers(cluster, node, |s, n| s.lease(n)).await
}

/// Gives the node's replay lease back; a failure only delays another Miroir's turn.
pub async fn release(cluster: &Cluster, node: &str) {
    if let Err(e) = off_workers(cluster, node, |s, n| s.release(n)).await {
        log::warn!(target: "miroir::handoff", "releasing the replay lease of node {node}: {e}");
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
