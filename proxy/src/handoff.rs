//! Hinted handoff on the proxy side: keeping the writes a replica missed (`hint`), replaying
//! them in order once the node answers again (`Replayer`), and showing what is still pending
//! on the tasks they belong to (`pending_replays`).
//!
//! Order: every write to an index is handed to its nodes under that index's write-order lock,
//! and a node with hints waiting gets new writes appended to its queue instead of directly, so
//! each replica applies an index's writes in the order Miroir accepted them, replays included.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use miroir_filters::routing::{GroupId, NodeId};
use miroir_filters::write::SHARD_FIELD;
use miroir_handoff::{Hint, HintError, Seq};
use miroir_tasks::{NodeView, TaskRecord};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::{json, Value};

use crate::metrics;
use crate::node_state::NodeState;
use crate::state::{NodeRuntime, Runtime, Shared};
use crate::upstream::NodeRequest;

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
pub fn must_queue(shared: &Shared, node: &NodeId) -> bool {
    shared.node_state(node) == NodeState::Failed || shared.hints.backlog(node.as_str()).hints > 0
}

/// Keeps a write `node` missed. `None` when it could not be kept (queue full, store error):
/// if the write is acknowledged anyway, [`lost`] records that the node needs a full resync.
pub fn hint(shared: &Shared, node: &NodeId, hint: &Hint) -> Option<Seq> {
    let cap = shared.runtime().config.handoff.max_bytes_per_node;
    let outcome = shared.hints.append(node.as_str(), hint, cap);
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
    metrics::set_backlog(node.as_str(), shared.hints.backlog(node.as_str()));
    shared.fell_behind(node);
    seq
}

/// An acknowledged write missed `node` and no hint holds it: the node needs a full resync,
/// and stays out of reads until it had one.
pub fn lost(shared: &Shared, node: &NodeId) {
    if shared.hints.backlog(node.as_str()).needs_resync {
        return;
    }
    log::error!(
        target: "miroir::handoff",
        "node {node} missed an acknowledged write that could not be kept for it: it needs a full resync"
    );
    if let Err(e) = shared.hints.mark_resync(node.as_str()) {
        log::error!(target: "miroir::handoff", "could not record that node {node} needs a resync: {e}");
    }
    metrics::set_backlog(node.as_str(), shared.hints.backlog(node.as_str()));
    shared.fell_behind(node);
}

/// Drops hints of a write that was not acknowledged to the client (it failed as a whole).
pub fn forget(shared: &Shared, hints: &[(NodeId, Seq)]) {
    for (node, seq) in hints {
        if let Err(e) = shared.hints.remove(node.as_str(), *seq) {
            log::error!(target: "miroir::handoff", "could not drop hint {} of node {node}: {e}", seq.0);
        }
        metrics::set_backlog(node.as_str(), shared.hints.backlog(node.as_str()));
    }
}

/// The nodes a task's write still waits for, as its `miroir.pendingReplays` extension shows.
pub fn pending_replays(shared: &Shared, record: &TaskRecord) -> Vec<String> {
    let mut nodes: Vec<String> = record
        .replays
        .iter()
        .filter(|r| shared.hints.contains(&r.node, Seq(r.seq)))
        .map(|r| r.node.clone())
        .collect();
    nodes.dedup();
    nodes
}

/// Adds (or removes) the Miroir extension field of a task view: SDKs ignore it.
pub fn decorate(shared: &Shared, record: &TaskRecord, view: &mut Value) {
    if record.replays.is_empty() {
        return;
    }
    let pending = pending_replays(shared, record);
    if let Some(obj) = view.as_object_mut() {
        obj.insert("miroir".into(), json!({ "pendingReplays": pending }));
    }
}

/// A task's node parts without those Miroir cannot ask because their node is down, when
/// other replicas hold every shard of theirs: a write is done once its quorum is, and the down
/// node processes its copy when it is back. Parts of a node that is merely slow to answer
/// (still serving) stay, so the task waits for them.
pub fn without_unreachable<'r>(
    shared: &Shared,
    rt: &Runtime,
    record: &'r TaskRecord,
    views: Vec<NodeView>,
) -> (Cow<'r, TaskRecord>, Vec<NodeView>) {
    let p = rt.placement();
    let succeeded = |node: &str| {
        record.node_tasks.iter().zip(&views).any(|(part, view)| {
            part.node == node && matches!(view, NodeView::Task(t) if t["status"] == "succeeded")
        })
    };
    let had_part = |node: &str| {
        record.node_tasks.iter().any(|t| t.node == node)
            || record.replays.iter().any(|r| r.node == node)
    };
    let covered = |node: &str| {
        let Some(idx) = p.index_of(node) else {
            return false;
        };
        p.shards_of(idx).iter().all(|&shard| {
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
                    .is_some_and(|n| !shared.node_state(&n.id).serves_reads())
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

/// Replays hints to nodes that answer again.
pub struct Replayer {
    pub shared: Arc<Shared>,
}

/// How long a recovering node's replayed tasks may take before the replayer looks again.
const CATCH_UP_WAIT: Duration = Duration::from_secs(120);

impl Replayer {
    /// Drains every node that answers again, side by side: one slow node does not hold back
    /// another's catch-up.
    async fn replay_all(&self) {
        let rt = self.shared.runtime();
        let mut drains = Vec::new();
        for (id, backlog) in self.shared.hints.backlogs() {
            metrics::set_backlog(&id, backlog);
            let Some(node) = rt.nodes.iter().find(|n| n.id.as_str() == id) else {
                continue;
            };
            if backlog.hints == 0 || self.shared.node_state(&node.id) == NodeState::Failed {
                continue;
            }
            drains.push(self.drain(&rt, node));
        }
        futures::future::join_all(drains).await;
    }

    /// Replays `node`'s hints in order until none is left or the node stops answering; then
    /// waits for the node to have processed them before it serves reads again.
    async fn drain(&self, rt: &Runtime, node: &NodeRuntime) {
        let shared = &self.shared;
        let id = node.id.as_str();
        shared.replaying.insert(node.id.clone(), ());
        let mut last_task: Option<u64> = None;
        let mut indexes = BTreeSet::new();
        let started = Instant::now();
        let mut replayed = 0u64;
        let caught_up = loop {
            let (seq, hint) = match shared.hints.first(id) {
                Ok(Some(next)) => next,
                Ok(None) => break true,
                Err(e) => {
                    log::error!(target: "miroir::handoff", "reading hints of node {id}: {e}");
                    break false;
                }
            };
            let order = shared.write_order(&hint.index_uid);
            let _turn = order.lock().await;
            let body = [Bytes::from(hint.body)];
            let req = NodeRequest {
                method: &hint.method,
                path: &hint.path,
                auth: rt.node_key(),
                content_type: hint.content_type.as_deref(),
                body: if body[0].is_empty() { &[] } else { &body },
                request_id: None,
            };
            let outcome = shared
                .client
                .send(node, &req, rt.config.scatter.node_timeout)
                .await;
            match outcome {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    if let Some(uid) = resp.json().and_then(|v| v["taskUid"].as_u64()) {
                        last_task = Some(uid);
                    }
                    indexes.insert(hint.index_uid.clone());
                    replayed += 1;
                    metrics::get()
                        .hints
                        .with_label_values(&[id, "replayed"])
                        .inc();
                }
                Ok(resp) if matches!(resp.status, 401 | 403) => {
                    log::error!(target: "miroir::handoff", "node {id} refused Miroir's key while replaying; check node_master_key");
                    break false;
                }
                Ok(resp) if resp.judged() => {
                    // The node judges the request invalid now (the index was deleted and
                    // recreated differently, say): replaying it again would not change that.
                    log::warn!(
                        target: "miroir::handoff",
                        "node {id} refused a replayed {} {} with HTTP {}; dropping it",
                        hint.method,
                        hint.path.split('?').next().unwrap_or(""),
                        resp.status
                    );
                    metrics::get()
                        .hints
                        .with_label_values(&[id, "dropped"])
                        .inc();
                }
                _ => {
                    shared.observe(rt, &node.id, false, false);
                    break false;
                }
            }
            if let Err(e) = shared.hints.remove(id, seq) {
                log::error!(target: "miroir::handoff", "could not drop replayed hint {} of node {id}: {e}", seq.0);
                break false;
            }
            metrics::set_backlog(id, shared.hints.backlog(id));
        };
        if replayed > 0 {
            log::info!(
                target: "miroir::handoff",
                "replayed {replayed} writes to node {id} in {} ms",
                started.elapsed().as_millis()
            );
        }
        if caught_up {
            for index in &indexes {
                if let Some(uid) = keep_shard_field(shared, rt, node, index).await {
                    last_task = Some(last_task.map_or(uid, |t| t.max(uid)));
                }
            }
            let processed = match last_task {
                Some(uid) => wait_processed(shared, rt, node, uid).await,
                None => true,
            };
            let backlog = shared.hints.backlog(id);
            if processed && backlog.hints == 0 && !backlog.needs_resync {
                shared.replaying.remove(&node.id);
                shared.caught_up(rt, &node.id);
                return;
            }
        }
        shared.replaying.remove(&node.id);
    }
}

/// A node that was down when an index got `_miroir_shard` filterable gets it now (reads
/// filter on it). The node's settings task uid, when one was needed.
async fn keep_shard_field(
    shared: &Shared,
    rt: &Runtime,
    node: &NodeRuntime,
    index: &str,
) -> Option<u64> {
    let path = format!("/indexes/{index}/settings/filterable-attributes");
    let timeout = rt.config.scatter.node_timeout;
    let resp = shared
        .client
        .send(node, &NodeRequest::get(&path, rt.node_key()), timeout)
        .await
        .ok()?;
    let mut list = match resp.status {
        200 => resp.json()?.as_array()?.clone(),
        _ => return None,
    };
    if list.iter().any(|r| r == SHARD_FIELD) {
        return None;
    }
    list.push(json!(SHARD_FIELD));
    let body = [Bytes::from(
        json!({ "filterableAttributes": list }).to_string(),
    )];
    let path = format!("/indexes/{index}/settings");
    let req = NodeRequest {
        method: "PATCH",
        path: &path,
        auth: rt.node_key(),
        content_type: Some("application/json"),
        body: &body,
        request_id: None,
    };
    let resp = shared.client.send(node, &req, timeout).await.ok()?;
    resp.json()?["taskUid"].as_u64()
}

/// Waits (bounded) until the node finished its task `uid`, and so everything before it.
async fn wait_processed(shared: &Shared, rt: &Runtime, node: &NodeRuntime, uid: u64) -> bool {
    let path = format!("/tasks/{uid}");
    let deadline = Instant::now() + CATCH_UP_WAIT;
    while Instant::now() < deadline {
        let resp = shared
            .client
            .send(
                node,
                &NodeRequest::get(&path, rt.node_key()),
                rt.config.scatter.node_timeout,
            )
            .await;
        match resp.ok().and_then(|r| r.json()) {
            Some(task)
                if matches!(
                    task["status"].as_str(),
                    Some("succeeded" | "failed" | "canceled")
                ) =>
            {
                return true
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            None => return false,
        }
    }
    false
}

#[async_trait]
impl BackgroundService for Replayer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.replay_all().await;
            let interval = self.shared.runtime().config.handoff.replay_interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
