//! Replaying the log of nodes that answer again (document writes, settings, index and key
//! changes alike), strictly in acceptance order, each entry under its write-order lock, then
//! waiting until the node has processed them before it serves reads again.
//!
//! With a shared hint store (Redis) every Miroir sees every node's log, and the one holding
//! the node's lease replays it: a log kept by a Miroir that died is replayed by another.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use miroir_filters::hidden::SHARD_FIELD;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::json;

use super::handoff;
use crate::cluster::node_state::NodeState;
use crate::cluster::{Cluster, Runtime};
use crate::node_io::{once, wait_processed};
use crate::telemetry::metrics;
use crate::upstream::{NodePeer, NodeRequest};

/// Replays hints to nodes that answer again.
pub struct Replayer {
    pub cluster: Arc<Cluster>,
}

/// How long a recovering node's replayed tasks may take before the replayer looks again.
const CATCH_UP_WAIT: Duration = Duration::from_secs(120);

impl Replayer {
    /// Drains every node that answers again, side by side: one slow node does not hold back
    /// another's catch-up.
    async fn replay_all(&self) {
        let rt = self.cluster.runtime();
        let mut drains = Vec::new();
        for (id, backlog) in self.cluster.hints.backlogs() {
            metrics::set_backlog(&id, backlog);
            let Some(node) = rt.nodes.iter().find(|n| n.id.as_str() == id) else {
                continue;
            };
            if backlog.hints == 0 || self.cluster.node_state(&node.id) == NodeState::Failed {
                continue;
            }
            // Another Miroir's hints: out of reads here too until they are replayed.
            if self.cluster.node_state(&node.id) == NodeState::Active {
                self.cluster.fell_behind(&node.id);
            }
            drains.push(self.drain(&rt, node));
        }
        futures::future::join_all(drains).await;
    }

    /// Replays `node`'s hints in order until none is left or the node stops answering; then
    /// waits for the node to have processed them before it serves reads again.
    async fn drain(&self, rt: &Runtime, node: &NodePeer) {
        let cluster = &self.cluster;
        let id = node.id.as_str();
        // Another Miroir replays it (shared store), or Redis does not answer: next round.
        if !matches!(handoff::lease(cluster, id).await, Ok(true)) {
            return;
        }
        cluster.replaying.insert(node.id.clone(), ());
        let mut last_task: Option<u64> = None;
        let mut indexes = BTreeSet::new();
        let started = Instant::now();
        let mut replayed = 0u64;
        let caught_up = loop {
            let (seq, hint) = match handoff::first(cluster, id).await {
                Ok(Some(next)) => next,
                Ok(None) => break true,
                Err(e) => {
                    log::error!(target: "miroir::handoff", "reading hints of node {id}: {e}");
                    break false;
                }
            };
            // Through the write gate: a topology change that rebuilds this node clears its
            // queue with the gate closed, and a hint it cleared must not be sent after.
            let _gate = cluster.write_gate.read().await;
            if !cluster.hints.contains(id, seq) {
                continue;
            }
            let turn = cluster.write_turn(&hint.index_uid).await;
            let req = NodeRequest {
                method: &hint.method,
                path: &hint.path,
                auth: rt.node_key(),
                content_type: hint.content_type.as_deref(),
                body: &hint.body,
                request_id: None,
                budget: None,
                relay: None,
            };
            let outcome = once::send(cluster, rt, node, &req, hint.maybe_applied).await;
            match outcome {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    if let Some(uid) = resp.json().and_then(|v| v["taskUid"].as_u64()) {
                        last_task = Some(uid);
                    }
                    // Instance-wide entries (keys, swaps) name no index to check.
                    if !hint.index_uid.is_empty() {
                        indexes.insert(hint.index_uid.clone());
                    }
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
                    cluster.observe(rt, &node.id, false, false);
                    break false;
                }
            }
            // The entry still counts in the node's backlog until it is removed, so a new write
            // of the index queues behind it: the index's writers need not wait for this commit.
            drop(turn);
            if let Err(e) = handoff::remove_leased(cluster, id, seq).await {
                log::error!(target: "miroir::handoff", "could not drop replayed hint {} of node {id}: {e}", seq.0);
                break false;
            }
            metrics::set_backlog(id, cluster.hints.backlog(id));
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
                if let Some(uid) = keep_shard_field(cluster, rt, node, index).await {
                    last_task = Some(last_task.map_or(uid, |t| t.max(uid)));
                }
            }
            let processed = match last_task {
                Some(uid) => wait_processed(cluster, rt, node, uid, CATCH_UP_WAIT).await,
                None => true,
            };
            let backlog = cluster.hints.backlog(id);
            if processed && backlog.hints == 0 && !backlog.needs_resync {
                cluster.replaying.remove(&node.id);
                cluster.caught_up(rt, &node.id);
                handoff::release(cluster, id).await;
                return;
            }
        }
        cluster.replaying.remove(&node.id);
        handoff::release(cluster, id).await;
    }
}

/// A node that was down when an index got `_miroir_shard` filterable gets it now (reads
/// filter on it). The node's settings task uid, when one was needed.
async fn keep_shard_field(
    cluster: &Cluster,
    rt: &Runtime,
    node: &NodePeer,
    index: &str,
) -> Option<u64> {
    let path = format!("/indexes/{index}/settings/filterable-attributes");
    let timeout = rt.config.scatter.node_timeout;
    let resp = cluster
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
    let req = NodeRequest::json("PATCH", &path, rt.node_key(), &body);
    let resp = cluster.client.send(node, &req, timeout).await.ok()?;
    resp.json()?["taskUid"].as_u64()
}

#[async_trait]
impl BackgroundService for Replayer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.replay_all().await;
            let interval = self.cluster.runtime().config.handoff.replay_interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
