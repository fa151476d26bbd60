//! The background service that carries a topology change through its phases. Each pass
//! reads the durable change, does the next step, and records its outcome before the next;
//! a failed step (a node down, a timeout) is logged and tried again, so a change pauses
//! while a node it needs is away and resumes by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use miroir_filters::hidden;
use miroir_filters::routing::{NodeId, ShardId};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::json;

use super::calls::{CallError, Calls};
use super::{commit, copy, prepare};
use crate::cluster::job_lease::JobLease;
use crate::cluster::node_state::NodeState;
use crate::cluster::shared_topology;
use crate::cluster::topology::{Change, MoveRecord, MoveState, Phase, Topology};
use crate::cluster::{move_log, Cluster, Draft, Runtime, WritesHeld};
use crate::telemetry::metrics;
use crate::upstream::NodePeer;

/// Pause after a failed step before the next attempt.
const RETRY: Duration = Duration::from_secs(1);
/// Between two looks for a node that needs a rebuild, when no change runs.
const IDLE_CHECK: Duration = Duration::from_secs(2);

pub struct ChangeService {
    pub cluster: Arc<Cluster>,
    /// The node found empty at the previous idle check.
    pub empty_seen: std::sync::Mutex<Option<String>>,
    /// The right to carry changes out, when several Miroirs share a Redis: kept while this
    /// Miroir lives, taken over by another once it stops renewing it.
    lease: tokio::sync::Mutex<Option<JobLease>>,
}

impl ChangeService {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self {
            cluster,
            empty_seen: std::sync::Mutex::new(None),
            lease: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether this Miroir carries changes out (always, alone).
    async fn leads(&self) -> bool {
        let mut lease = self.lease.lock().await;
        if lease.as_ref().is_some_and(JobLease::held) {
            return true;
        }
        *lease = JobLease::take(&self.cluster.hints, "topology").await;
        let leads = lease.is_some();
        if leads && self.cluster.hints.shared() {
            log::info!(target: "miroir::fleet", "this Miroir carries out topology changes for the Miroirs sharing its Redis");
        }
        leads
    }
}

#[async_trait]
impl BackgroundService for ChangeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if !self.leads().await {
                if self.cluster.topology().change.is_some() {
                    self.cluster
                        .change
                        .set_step("carried out by another Miroir sharing this Redis");
                }
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_CHECK) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            let more = match self.step().await {
                Ok(more) => more,
                Err(e) => {
                    self.cluster.change.set_step(format!("waiting: {e}"));
                    log::warn!(target: "miroir::fleet", "topology change paused: {e}; trying again");
                    metrics::get().topology_step_failures.inc();
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            };
            if !more {
                tokio::select! {
                    _ = self.cluster.change.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_CHECK) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Why a step could not finish.
#[derive(Debug)]
enum StepError {
    Node(CallError),
    /// A node the step needs is not in the snapshot, or not healthy.
    Unavailable(String),
    Store(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Node(e) => e.fmt(f),
            Self::Unavailable(why) | Self::Store(why) => f.write_str(why),
        }
    }
}

impl From<CallError> for StepError {
    fn from(e: CallError) -> Self {
        Self::Node(e)
    }
}

impl ChangeService {
    /// One step of the change in progress; `Ok(true)` when there is more to do at once.
    async fn step(&self) -> Result<bool, StepError> {
        let topology = self.cluster.topology();
        let Some(change) = topology.change.clone() else {
            if let Err(e) = super::widen(&self.cluster).await {
                log::warn!(target: "miroir::topology", "widening the placement: {e}");
            }
            self.resync_if_needed(&topology).await;
            return Ok(false);
        };
        metrics::get().topology_moving.set(
            change
                .moves
                .iter()
                .filter(|m| m.state != MoveState::CutOver)
                .count() as i64,
        );
        match change.phase {
            Phase::Preparing => self.prepare(&change).await?,
            Phase::Moving => self.moving(&change).await?,
            Phase::Cleaning => self.clean(&change).await?,
        }
        Ok(true)
    }

    /// Starts a resync of a node that needs one: marked `needsResync` (it missed a write no
    /// hint holds), or found empty twice in a row while other nodes hold indexes (replaced by
    /// a new, empty machine under the same id).
    async fn resync_if_needed(&self, topology: &Topology) {
        let rt = self.cluster.runtime();
        let mut wanted = topology
            .layout
            .nodes
            .iter()
            .find(|n| self.cluster.hints.backlog(&n.id).needs_resync)
            .map(|n| (n.id.clone(), "its hint queue overflowed"));
        if wanted.is_none() {
            wanted = self
                .empty_node(&rt, topology)
                .await
                .map(|id| (id, "it holds no index, unlike the others"));
        }
        let Some((node, why)) = wanted else {
            return;
        };
        let answers = rt
            .node(&node)
            .is_some_and(|n| self.cluster.node_state(&n.id) != NodeState::Failed);
        if !answers {
            return;
        }
        match super::resync(&self.cluster, &rt, &node).await {
            Ok(_) => {
                log::warn!(target: "miroir::fleet", "node {node}: rebuilding it, because {why}")
            }
            Err(e) => {
                log::error!(target: "miroir::fleet", "node {node} needs a rebuild ({why}) but cannot have one: {}", e.message)
            }
        }
    }

    /// A healthy node with no index while another node has some, seen on two checks in a row.
    async fn empty_node(&self, rt: &Runtime, topology: &Topology) -> Option<String> {
        let calls = self.calls(rt);
        let mut empty = Vec::new();
        let mut any_full = false;
        for n in &topology.layout.nodes {
            let Some(peer) = rt.node(&n.id).filter(|p| self.cluster.is_healthy(&p.id)) else {
                continue;
            };
            match calls.get(peer, "/indexes?limit=1").await {
                Ok(Some(v)) if v["total"].as_u64() == Some(0) => empty.push(n.id.clone()),
                Ok(Some(_)) => any_full = true,
                _ => {}
            }
        }
        let candidate = empty.into_iter().next().filter(|_| any_full);
        let mut last = self.empty_seen.lock().unwrap_or_else(|e| e.into_inner());
        let confirmed = candidate.is_some() && *last == candidate;
        *last = candidate.clone();
        candidate.filter(|_| confirmed)
    }

    fn calls<'a>(&'a self, rt: &'a Runtime) -> Calls<'a> {
        Calls {
            cluster: &self.cluster,
            rt,
        }
    }

    /// A healthy node of the applied layout, not being rebuilt, to read indexes and keys from.
    fn any_source<'a>(&self, rt: &'a Runtime, change: &Change) -> Result<&'a NodePeer, StepError> {
        rt.nodes
            .iter()
            .filter(|n| change.from.nodes.iter().any(|o| o.id == n.id.as_str()))
            .filter(|n| !change.rebuilding.iter().any(|r| r == n.id.as_str()))
            .find(|n| self.cluster.is_healthy(&n.id))
            .ok_or_else(|| StepError::Unavailable("no node of the applied topology answers".into()))
    }

    fn node<'a>(&self, rt: &'a Runtime, id: &str) -> Result<&'a NodePeer, StepError> {
        rt.node(id)
            .ok_or_else(|| StepError::Unavailable(format!("node {id} is not in the snapshot")))
    }

    async fn save(&self, rt: &Runtime, next: Draft) -> Result<(), StepError> {
        commit(&self.cluster, rt, next)
            .await
            .map_err(|e| StepError::Store(e.to_string()))
    }

    /// Every write of the fleet held (see `Cluster::hold_writes`).
    async fn hold_writes(&self) -> Result<WritesHeld<'_>, StepError> {
        self.cluster
            .hold_writes()
            .await
            .map_err(StepError::Unavailable)
    }

    /// Joining nodes receive every index and key, then writes start reaching new owners.
    async fn prepare(&self, change: &Change) -> Result<(), StepError> {
        let rt = self.cluster.runtime();
        let calls = self.calls(&rt);
        let source = self.any_source(&rt, change)?;
        for joining in change.to_prepare() {
            self.cluster
                .change
                .set_step(format!("preparing node {}", joining.id));
            let target = self.node(&rt, &joining.id)?;
            let indexes = prepare::copy_indexes(&calls, source, target).await?;
            let keys = prepare::copy_keys(&calls, source, target).await?;
            log::info!(target: "miroir::fleet", "node {}: {indexes} indexes and {keys} keys in place", joining.id);
        }
        // From the next snapshot on, writes for moving shards reach the new owners' move
        // logs: switched with the gate closed, so no write misses both.
        let _gate = self.hold_writes().await?;
        let _mutating = self.cluster.change.mutate.lock().await;
        // An index created while this step ran reached the joining nodes too: they are in
        // every snapshot since the change began.
        let mut next = self.cluster.draft();
        if let Some(c) = next.change.as_mut() {
            c.phase = Phase::Moving;
        }
        // A rebuilt node's queued writes are superseded by its copies and move log.
        for node in &change.rebuilding {
            self.clear_hints(node).await?;
        }
        self.save(&rt, next).await?;
        log::info!(target: "miroir::fleet", "moving {} shard(s)", change.moves.len());
        Ok(())
    }

    /// Empties `node`'s move log and forgets that it was broken. The caller holds the gate.
    async fn broken_move_logs_clear(&self, node: &NodeId) -> Result<(), StepError> {
        self.clear_hints(&move_log::key(node.as_str())).await?;
        move_log::mend(&self.cluster, node)
            .await
            .map_err(StepError::Store)
    }

    async fn clear_hints(&self, node: &str) -> Result<(), StepError> {
        let store = self.cluster.hints.clone();
        let node = node.to_owned();
        let dropped = tokio::task::spawn_blocking(move || {
            let mut dropped = 0u64;
            while let Some((seq, _)) = store.first(&node).map_err(|e| e.to_string())? {
                store.remove(&node, seq).map_err(|e| e.to_string())?;
                dropped += 1;
            }
            Ok::<_, String>((node, dropped))
        })
        .await
        .map_err(|e| StepError::Store(e.to_string()))?
        .map_err(StepError::Store)?;
        if dropped.1 > 0 {
            log::info!(target: "miroir::fleet", "node {}: {} queued write(s) superseded by its rebuild", dropped.0, dropped.1);
        }
        metrics::set_backlog(&dropped.0, self.cluster.hints.backlog(&dropped.0));
        Ok(())
    }

    /// Copies, replays and verifies each new owner's shards, then cuts reads over; once every
    /// move is cut over the new layout is applied.
    async fn moving(&self, change: &Change) -> Result<(), StepError> {
        let mut by_target: BTreeMap<&str, Vec<&MoveRecord>> = BTreeMap::new();
        for m in &change.moves {
            for node in &m.to {
                by_target.entry(node).or_default().push(m);
            }
        }
        let pending: Vec<(&str, Vec<&MoveRecord>)> = by_target
            .into_iter()
            .filter(|(_, moves)| moves.iter().any(|m| m.state != MoveState::CutOver))
            .collect();
        if pending.is_empty() {
            return self.finish(change).await;
        }
        // New owners side by side: each has its own move log and copies.
        let units = pending
            .iter()
            .map(|(target, moves)| self.move_to(target, moves));
        let results = futures::future::join_all(units).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    /// One new owner: copy every shard it gains (unless already copied), replay its move log,
    /// flip its writes to direct, reconcile, and cut its reads over.
    async fn move_to(&self, target_id: &str, moves: &[&MoveRecord]) -> Result<(), StepError> {
        let rt = self.cluster.runtime();
        let calls = self.calls(&rt);
        let target = self.node(&rt, target_id)?;
        // A node being rebuilt may be `recovering` (its hint queue overflowed): it answers.
        if self.cluster.node_state(&target.id) == NodeState::Failed {
            return Err(StepError::Unavailable(format!("node {target_id} is down")));
        }
        let indexes = prepare::indexes(&calls, self.any_source(&rt, &self.current()?)?).await?;
        let node_id = NodeId::new(target_id).map_err(|e| StepError::Unavailable(e.to_string()))?;
        if moves.iter().any(|m| m.state == MoveState::Copying) {
            // Each attempt copies afresh: with writes held, the move log starts empty; every
            // write before this point is on the source, which the copy waits for, and every
            // write after it is in the log.
            {
                let _gate = self.hold_writes().await?;
                self.broken_move_logs_clear(&node_id).await?;
            }
            self.cluster
                .change
                .set_step(format!("copying {} shard(s) to {target_id}", moves.len()));
            let throttle = copy::Throttle::new(rt.config.topology.max_copy_bytes_per_sec);
            let mut copies = Vec::new();
            for m in moves.iter().filter(|m| m.state == MoveState::Copying) {
                copies.push(self.copy_move(&calls, &indexes, (target, m), &throttle));
            }
            let parallel = rt.config.topology.max_concurrent_moves_per_node.max(1) as usize;
            let results: Vec<Result<(), StepError>> = futures::stream::iter(copies)
                .buffer_unordered(parallel)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            self.cluster
                .change
                .set_step(format!("replaying {target_id}'s move log"));
            copy::replay_log(&calls, target).await?;
            // The rest of the log, and the switch to direct writes, with writes held.
            let gate = self.hold_writes().await?;
            if move_log::broken(&self.cluster, &node_id).await {
                drop(gate);
                return Err(StepError::Unavailable(format!(
                    "node {target_id}'s copy was overtaken (a write its move log could not \
                     keep, an edit by function, an index deleted or swapped); copying again"
                )));
            }
            copy::replay_log(&calls, target).await?;
            self.set_state(&rt, target_id, MoveState::Copying, MoveState::Replayed)
                .await?;
            drop(gate);
            let key = move_log::key(target_id);
            metrics::set_backlog(&key, self.cluster.hints.backlog(&key));
        }
        for m in moves.iter().filter(|m| m.state != MoveState::CutOver) {
            self.cluster
                .change
                .set_step(format!("verifying shard {} on {target_id}", m.shard));
            let from = self.source(&rt, m)?;
            let mut repaired = 0;
            for index in super::with_shard(&self.cluster, &indexes, m.shard) {
                repaired +=
                    copy::reconcile(&calls, index, ShardId(m.shard), (from, target)).await?;
            }
            if repaired > 0 {
                log::info!(target: "miroir::fleet", "shard {} on {target_id}: {repaired} document(s) reconciled with {}", m.shard, from.id);
            }
        }
        // A copied page may have landed after its index was deleted, and brought it back.
        let source = self.any_source(&rt, &self.current()?)?;
        let gone = copy::drop_extra_indexes(&calls, (source, target)).await?;
        if !gone.is_empty() {
            log::info!(target: "miroir::fleet", "node {target_id}: deleted {} index(es) its copy had brought back: {}", gone.len(), gone.join(", "));
        }
        self.set_state(&rt, target_id, MoveState::Replayed, MoveState::CutOver)
            .await?;
        log::info!(target: "miroir::fleet", "node {target_id}: {} shard(s) cut over", moves.len());
        Ok(())
    }

    /// A healthy old owner with no writes waiting for it: it holds the whole shard.
    fn source<'a>(&self, rt: &'a Runtime, m: &MoveRecord) -> Result<&'a NodePeer, StepError> {
        m.kept
            .iter()
            .chain(&m.from)
            .filter_map(|id| rt.node(id))
            .find(|n| {
                self.cluster.is_healthy(&n.id)
                    && self.cluster.hints.backlog(n.id.as_str()).hints == 0
            })
            .ok_or_else(|| {
                StepError::Unavailable(format!("no complete copy of shard {} answers", m.shard))
            })
    }

    /// Copies one moving shard, every index, to `target`.
    async fn copy_move(
        &self,
        calls: &Calls<'_>,
        indexes: &[prepare::IndexInfo],
        (target, m): (&NodePeer, &MoveRecord),
        throttle: &copy::Throttle,
    ) -> Result<(), StepError> {
        let progress = self
            .cluster
            .change
            .restart(target.id.as_str(), m.group, m.shard);
        let from = self.source(calls.rt, m)?;
        for index in super::with_shard(&self.cluster, indexes, m.shard) {
            let shard = ShardId(m.shard);
            copy::copy_shard(calls, index, shard, (from, target), (&progress, throttle)).await?;
        }
        Ok(())
    }

    fn current(&self) -> Result<Change, StepError> {
        self.cluster
            .topology()
            .change
            .ok_or_else(|| StepError::Store("the change disappeared".into()))
    }

    /// Moves `target`'s moves from one state to the next, durably.
    async fn set_state(
        &self,
        rt: &Runtime,
        target: &str,
        from: MoveState,
        to: MoveState,
    ) -> Result<(), StepError> {
        let _mutating = self.cluster.change.mutate.lock().await;
        let mut next = self.cluster.draft();
        let Some(change) = next.change.as_mut() else {
            return Err(StepError::Store("the change disappeared".into()));
        };
        for m in change
            .moves
            .iter_mut()
            .filter(|m| m.to.iter().any(|n| n == target))
        {
            if m.state == from {
                m.state = to;
            }
        }
        self.save(rt, next).await
    }

    /// Every move is cut over: the new layout is the applied one; old owners clean up next.
    async fn finish(&self, change: &Change) -> Result<(), StepError> {
        let rt = self.cluster.runtime();
        // Writes switch to the new owners only: with the gate closed, as every switch.
        let _gate = self.hold_writes().await?;
        let _mutating = self.cluster.change.mutate.lock().await;
        let mut next = self.cluster.draft();
        next.layout = change.to.clone();
        if let Some(c) = next.change.as_mut() {
            c.phase = Phase::Cleaning;
        }
        self.save(&rt, next).await?;
        for node in &change.rebuilding {
            let _ = self.cluster.hints.clear_resync(node);
            metrics::set_backlog(node, self.cluster.hints.backlog(node));
            log::info!(target: "miroir::fleet", "node {node}: rebuilt; it serves reads again");
        }
        log::info!(target: "miroir::fleet", "topology version {} applied", change.to.version);
        Ok(())
    }

    /// Old owners drop the shards they no longer own, once searches that started before the
    /// new layout have had time to finish.
    async fn clean(&self, change: &Change) -> Result<(), StepError> {
        let rt = self.cluster.runtime();
        self.cluster.change.set_step("old owners drop moved shards");
        // Every Miroir reads from the new owners before the old ones drop anything.
        shared_topology::all_installed(&self.cluster, self.cluster.topology_generation())
            .await
            .map_err(StepError::Unavailable)?;
        tokio::time::sleep(rt.config.scatter.node_timeout).await;
        let calls = self.calls(&rt);
        let mut lost: BTreeMap<&str, Vec<ShardId>> = BTreeMap::new();
        for m in &change.moves {
            for n in &m.from {
                lost.entry(n).or_default().push(ShardId(m.shard));
            }
        }
        let old_nodes = change.from.resolve().map_err(StepError::Unavailable)?;
        for (node_id, shards) in lost {
            let Some(conf) = old_nodes.iter().find(|n| n.id.as_str() == node_id) else {
                continue;
            };
            let peer = NodePeer::new(conf, &rt.config.upstream);
            let indexes = match prepare::indexes(&calls, &peer).await {
                Ok(i) => i,
                // A removed node that is gone already holds nothing anyone reads.
                Err(CallError::Unreachable { .. }) if rt.node(node_id).is_none() => continue,
                Err(e) => return Err(e.into()),
            };
            let mut last = None;
            for index in &indexes {
                let s = self.cluster.shard_counts.of(&index.uid);
                let held: Vec<ShardId> = shards.iter().copied().filter(|k| k.0 < s).collect();
                if held.is_empty() {
                    continue;
                }
                let filter = hidden::shard_clause(&held);
                let path = format!("/indexes/{}/documents/delete", index.uid);
                let body = bytes::Bytes::from(json!({ "filter": filter }).to_string());
                last = calls
                    .enqueue(&peer, ("POST", &path), body, &[])
                    .await?
                    .or(last);
            }
            if let Some(uid) = last {
                calls.wait_task(&peer, uid).await?;
            }
        }
        let _mutating = self.cluster.change.mutate.lock().await;
        let mut next = self.cluster.draft();
        next.change = None;
        self.save(&rt, next).await?;
        self.cluster.change.set_step("");
        log::info!(target: "miroir::fleet", "topology change to version {} done", change.to.version);
        Ok(())
    }
}
