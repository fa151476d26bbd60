//! Index creations without silent half-states: a creation some nodes refused is undone on
//! the nodes that made it, and one whose task fails on some nodes after every node accepted
//! it is undone too. (What a node merely missed, a creation, update, deletion or swap, is in
//! its log and replayed in order with its other writes: `handoff`, `replay`.) Jobs live in
//! memory and run in order per node; what they cannot repair is logged and counted as
//! divergence.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::Value;
use tokio::sync::Notify;

use crate::cluster::{Cluster, Runtime};
use crate::node_io::{accepted_task_uid, missed, task_state, TaskState};
use crate::request::Incoming;
use crate::telemetry::metrics;
use crate::upstream::{NodeRequest, NodeResult};

/// A job older than this is dropped as divergence: the node has been away too long for a
/// replay to be what the others still expect.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long a creation is watched for node tasks that fail after being accepted.
const WATCH_CREATION_FOR: Duration = Duration::from_secs(600);
/// How long the request that created a partial index waits for its rollback.
const SYNC_ROLLBACK_MAX: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A request Miroir sends to one node on its own behalf (with the node key).
#[derive(Debug, Clone)]
struct Replay {
    method: &'static str,
    path: String,
    body: Bytes,
}

#[derive(Debug, Clone)]
enum Job {
    /// Undo, or redo, one operation on one node.
    Node(NodeJob),
    /// Every node accepted a creation: if some of their tasks fail and others succeed, the
    /// index is deleted where it was created.
    WatchCreation {
        index: String,
        parts: Vec<(String, u64)>,
        since: Instant,
    },
}

#[derive(Debug, Clone)]
struct NodeJob {
    node: String,
    /// Metric label: `index_creation_rollback`.
    operation: &'static str,
    index: Option<String>,
    /// A node task to see finish first. With `then` set it is the operation to undo (a
    /// creation: only a successful one is undone); without, it is the repair itself.
    waiting_on: Option<u64>,
    then: Option<Replay>,
    since: Instant,
    /// Failed attempts in a row, and when to try again: a node answering server errors is
    /// not hammered.
    attempts: u32,
    not_before: Instant,
}

impl NodeJob {
    fn back_off(mut self) -> Self {
        self.attempts = self.attempts.saturating_add(1);
        let delay = POLL
            .saturating_mul(1 << self.attempts.min(12))
            .min(MAX_BACKOFF);
        self.not_before = Instant::now() + delay;
        self
    }
}

/// The queue of lifecycle jobs, drained by [`LifecycleRepairer`].
#[derive(Default)]
pub struct Jobs {
    queue: std::sync::Mutex<Vec<Job>>,
    notify: Notify,
}

impl Jobs {
    fn push(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.extend(jobs);
        drop(queue);
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<Job> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts unfinished jobs back in front of any that arrived meanwhile, keeping their order.
    fn put_back(&self, mut jobs: Vec<Job>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        jobs.append(&mut queue);
        *queue = jobs;
    }

    /// Jobs not finished yet.
    pub fn len(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// After a creation broadcast. Some nodes refused it: the task fails with their error, and
/// the nodes that did create it delete it again, waited for here (bounded) so the client sees
/// the cluster as it was; `true` then (the nodes whose log keeps the creation must not get it).
/// Every node accepted it or keeps it in its log: the creation is watched in the background in
/// case some node's task fails.
pub async fn after_creation(
    cluster: &Cluster,
    jobs: &Jobs,
    rt: &Runtime,
    inc: &Incoming,
    results: &[NodeResult],
    logged: &[usize],
) -> bool {
    let Some(index) = serde_json::from_slice::<Value>(&inc.body)
        .ok()
        .and_then(|v| v["uid"].as_str().map(str::to_owned))
    else {
        return false;
    };
    let parts: Vec<(String, u64)> = rt
        .nodes
        .iter()
        .zip(results)
        .filter_map(|(n, r)| accepted_task_uid(r).map(|uid| (n.id.to_string(), uid)))
        .collect();
    if parts.len() + logged.len() == results.len() {
        jobs.push([Job::WatchCreation {
            index,
            parts,
            since: Instant::now(),
        }]);
        return false;
    }
    let refused: Vec<&str> = rt
        .nodes
        .iter()
        .zip(results)
        .enumerate()
        .filter(|(i, (_, r))| accepted_task_uid(r).is_none() && !logged.contains(i))
        .map(|(_, (n, _))| n.id.as_str())
        .collect();
    log::warn!(
        target: "miroir::lifecycle",
        "request {}: index `{index}` was not created on {}; undoing it on the other nodes",
        inc.request_id,
        refused.join(", ")
    );
    let mut pending: Vec<NodeJob> = parts
        .into_iter()
        .map(|(node, uid)| rollback_job(node, &index, Some(uid)))
        .collect();
    let deadline = Instant::now() + rt.config.scatter.node_timeout.min(SYNC_ROLLBACK_MAX);
    while !pending.is_empty() && Instant::now() < deadline {
        let steps = pending.into_iter().map(|job| step(cluster, rt, job));
        pending = futures::future::join_all(steps)
            .await
            .into_iter()
            .flatten()
            .collect();
        if !pending.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
    if !pending.is_empty() {
        log::warn!(
            target: "miroir::lifecycle",
            "index `{index}`: rollback still running on {} node(s); continuing in the background",
            pending.len()
        );
        jobs.push(pending.into_iter().map(Job::Node));
    }
    true
}

fn rollback_job(node: String, index: &str, creation: Option<u64>) -> NodeJob {
    NodeJob {
        node,
        operation: "index_creation_rollback",
        index: Some(index.to_owned()),
        waiting_on: creation,
        then: Some(Replay {
            method: "DELETE",
            path: format!("/indexes/{index}"),
            body: Bytes::new(),
        }),
        since: Instant::now(),
        attempts: 0,
        not_before: Instant::now(),
    }
}

fn diverged(job: &NodeJob, why: &str) {
    metrics::get()
        .index_divergence
        .with_label_values(&[job.operation])
        .inc();
    log::warn!(
        target: "miroir::lifecycle",
        "node {} diverges from the others on index `{}` ({}): {why}",
        job.node,
        job.index.as_deref().unwrap_or("*"),
        job.operation
    );
}

fn repaired(job: &NodeJob) {
    metrics::get()
        .index_repairs
        .with_label_values(&[job.operation, "applied"])
        .inc();
    log::info!(
        target: "miroir::lifecycle",
        "node {}: {} of index `{}` applied",
        job.node,
        job.operation,
        job.index.as_deref().unwrap_or("*")
    );
}

/// Advances one node job as far as it can go now; `Some` = not finished, try again later.
async fn step(cluster: &Cluster, rt: &Runtime, mut job: NodeJob) -> Option<NodeJob> {
    let Some(target) = rt.node(&job.node) else {
        diverged(&job, "the node left the configuration");
        return None;
    };
    if Instant::now() < job.not_before {
        return Some(job);
    }
    if job.since.elapsed() > GIVE_UP_AFTER {
        diverged(&job, "gave up waiting for the node");
        return None;
    }
    if let Some(uid) = job.waiting_on {
        match task_state(cluster, rt, target, uid).await {
            TaskState::Pending => return Some(job),
            TaskState::Unknown => return Some(job.back_off()),
            // The creation to undo did not happen there: nothing to undo.
            TaskState::Failed(_) if job.then.is_some() => return None,
            TaskState::Succeeded if job.then.is_some() => job.waiting_on = None,
            TaskState::Succeeded => {
                repaired(&job);
                return None;
            }
            // A deletion that finds no index left the node as the others are.
            TaskState::Failed(Some(code))
                if code == "index_not_found" && job.operation != "index_update" =>
            {
                repaired(&job);
                return None;
            }
            TaskState::Failed(code) => {
                let why = format!("its task failed ({})", code.as_deref().unwrap_or("no code"));
                diverged(&job, &why);
                return None;
            }
        }
    }
    let replay = job.then.clone()?;
    if !cluster.is_healthy(&target.id) {
        return Some(job);
    }
    let body = [replay.body.clone()];
    let chunks: &[Bytes] = if replay.body.is_empty() { &[] } else { &body };
    let req = NodeRequest {
        method: replay.method,
        path: &replay.path,
        auth: rt.node_key(),
        content_type: (!chunks.is_empty()).then_some("application/json"),
        body: chunks,
        request_id: None,
        budget: None,
        relay: None,
    };
    let result = cluster
        .client
        .send(target, &req, rt.config.scatter.node_timeout)
        .await;
    match accepted_task_uid(&result) {
        Some(uid) => {
            job.waiting_on = Some(uid);
            job.then = None;
            job.attempts = 0;
            if let Some(index) = &job.index {
                cluster.indexes.forget_context(index);
            }
            Some(job)
        }
        None if missed(&result) => Some(job.back_off()),
        None => {
            let status = result.as_ref().map_or(0, |r| r.status);
            diverged(
                &job,
                &format!("the node refused the request (HTTP {status})"),
            );
            None
        }
    }
}

/// A watched creation: `None` when settled, `Some` to look again later.
async fn watch_creation(
    cluster: &Cluster,
    jobs: &Jobs,
    rt: &Runtime,
    index: String,
    parts: Vec<(String, u64)>,
    since: Instant,
) -> Option<Job> {
    let states = parts.iter().map(|(node_id, uid)| async move {
        match rt.node(node_id) {
            Some(n) => Some(task_state(cluster, rt, n, *uid).await),
            None => None,
        }
    });
    let states = futures::future::join_all(states).await;
    if states
        .iter()
        .any(|s| matches!(s, Some(TaskState::Pending | TaskState::Unknown)))
    {
        if since.elapsed() > WATCH_CREATION_FOR {
            return None;
        }
        return Some(Job::WatchCreation {
            index,
            parts,
            since,
        });
    }
    let succeeded = |s: &Option<TaskState>| matches!(s, Some(TaskState::Succeeded));
    let failed: Vec<&str> = parts
        .iter()
        .zip(&states)
        .filter(|(_, s)| !succeeded(s))
        .map(|((n, _), _)| n.as_str())
        .collect();
    if failed.is_empty() || failed.len() == parts.len() {
        return None;
    }
    log::warn!(
        target: "miroir::lifecycle",
        "index `{index}` was not created on {}; undoing it on the other nodes",
        failed.join(", ")
    );
    // Every node deletes it, except one that already held the index before: where the
    // creation failed otherwise, the settings task queued behind it (the shard field) may
    // have created the index, and the deletion queues behind that task.
    let rollbacks: Vec<Job> = parts
        .into_iter()
        .zip(states)
        .filter(|(_, s)| {
            !matches!(s, Some(TaskState::Failed(Some(code))) if code == "index_already_exists")
        })
        .map(|((node, _), _)| Job::Node(rollback_job(node, &index, None)))
        .collect();
    cluster.indexes.forget(&index);
    jobs.push(rollbacks);
    None
}

/// Runs the lifecycle jobs: each round advances every job once, in order per node.
pub struct LifecycleRepairer {
    pub cluster: Arc<Cluster>,
    pub jobs: Arc<Jobs>,
}

impl LifecycleRepairer {
    async fn round(&self) {
        let rt = self.cluster.runtime();
        let mut left = Vec::new();
        // A node's jobs run in the order they were queued: a later one waits for the earlier.
        let mut busy: HashSet<String> = HashSet::new();
        for job in self.jobs.take() {
            match job {
                Job::Node(job) if busy.contains(&job.node) => left.push(Job::Node(job)),
                Job::Node(job) => {
                    let node_id = job.node.clone();
                    if let Some(job) = step(&self.cluster, &rt, job).await {
                        busy.insert(node_id);
                        left.push(Job::Node(job));
                    }
                }
                Job::WatchCreation {
                    index,
                    parts,
                    since,
                } => {
                    if let Some(job) =
                        watch_creation(&self.cluster, &self.jobs, &rt, index, parts, since).await
                    {
                        left.push(job);
                    }
                }
            }
        }
        self.jobs.put_back(left);
    }
}

#[async_trait]
impl BackgroundService for LifecycleRepairer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.round().await;
            let pause = if self.jobs.is_empty() {
                Duration::from_secs(3600)
            } else {
                // Waiting on node tasks or on a node coming back.
                Duration::from_millis(100)
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.jobs.notify.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
