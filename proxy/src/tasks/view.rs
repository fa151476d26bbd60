//! A Miroir task as one Meilisearch task: aggregated from its node tasks (asked while it is
//! unfinished, cached once terminal), with Miroir's hidden fields removed and the replicas
//! still waiting for their copy listed (`miroir.pendingReplays`). Many tasks are asked about
//! at once, a bounded number at a time, and a node that does not answer is not asked again
//! within the same request: a hanging node costs one timeout, not one per task.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden;
use miroir_tasks::{aggregate, NodeView, Status, TaskQuery, TaskRecord, TaskUid};
use serde_json::{json, Value};

use super::registry::blocking;
use crate::cluster::Runtime;
use crate::repair::handoff;
use crate::shared::Shared;
use crate::upstream::NodeRequest;

/// How many tasks are asked about at once.
const POLL_CONCURRENCY: usize = 16;

/// How many nodes hold each document: per-copy counters divide by it.
fn copies(rt: &Runtime) -> u32 {
    rt.reads().replication_factor() * rt.reads().groups()
}

fn is_terminal(view: &Value) -> bool {
    view["status"].as_str().is_some_and(Status::parse_terminal)
}

/// Whether a view is final and worth caching: a task the nodes canceled is final once its
/// Miroir cancelation is recorded on it (until then it names a node's own task).
fn is_final(record: &TaskRecord, view: &Value) -> bool {
    is_terminal(view) && (record.canceled_by.is_some() || view["status"] != "canceled")
}

/// The nodes that did not answer during one request: their parts count as unknown for the
/// rest of it instead of waiting for each.
#[derive(Default)]
pub(crate) struct Polls {
    silent: Mutex<HashSet<String>>,
}

impl Polls {
    fn skips(&self, node: &str) -> bool {
        self.silent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(node)
    }

    fn silent(&self, node: &str) {
        self.silent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_owned());
    }
}

/// The current view of a task, with Miroir's extension listing the replicas whose copy of
/// the write is still waiting for replay (`miroir.pendingReplays`).
pub(crate) async fn view(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    auth: Option<&str>,
) -> Result<Value, MiroirError> {
    let view = aggregated_view(shared, rt, record, auth).await?;
    finish(shared, rt, record, view).await
}

/// The current views of many tasks (in their order), their nodes asked concurrently; the
/// final views of those that finished are cached in one store write.
pub(crate) async fn views(
    shared: &Shared,
    rt: &Runtime,
    records: &[TaskRecord],
    auth: Option<&str>,
) -> Result<Vec<Value>, MiroirError> {
    let polls = Polls::default();
    // By position, not by `&TaskRecord`: a closure over references makes the future
    // higher-ranked, which the async workers' `Send` bound cannot prove.
    let polls = &polls;
    let aggregated: Vec<Result<Value, MiroirError>> = futures::stream::iter(0..records.len())
        .map(|i| poll(shared, rt, &records[i], auth, polls))
        .buffered(POLL_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::with_capacity(records.len());
    let mut done = Vec::new();
    for (record, view) in records.iter().zip(aggregated) {
        let view = view?;
        if record.terminal.is_none() && is_final(record, &view) {
            done.push((record.uid, view.clone()));
        }
        out.push(view);
    }
    cache(shared, done).await;
    let mut finished = Vec::with_capacity(out.len());
    for (record, view) in records.iter().zip(out) {
        finished.push(finish(shared, rt, record, view).await?);
    }
    Ok(finished)
}

/// Caches final views, and hands the tasks this call settled to the webhooks (each task is
/// settled once). A failure only means asking the nodes again later.
async fn cache(shared: &Shared, mut done: Vec<(TaskUid, Value)>) {
    if done.is_empty() {
        return;
    }
    // The settings a search merges by may have been read while a task changing them was
    // still queued on the nodes: read them again (the next search of the index does).
    const CHANGE_CONTEXT: [&str; 3] = ["settingsUpdate", "indexUpdate", "indexCreation"];
    for (_, view) in &done {
        match (view["type"].as_str(), view["indexUid"].as_str()) {
            (Some("indexSwap"), _) => shared.cluster.indexes.forget_all(),
            (Some(kind), Some(index)) if CHANGE_CONTEXT.contains(&kind) => {
                shared.cluster.indexes.forget_context(index)
            }
            _ => {}
        }
    }
    // Copies for the webhooks only when there are any.
    let announced = shared.webhooks.any().then(|| {
        done.sort_by_key(|(uid, _)| *uid);
        done.clone()
    });
    match blocking(&shared.tasks, move |s| s.settle(done)).await {
        Ok(settled) => {
            if let Some(views) = announced {
                let views = views
                    .into_iter()
                    .filter(|(uid, _)| settled.contains(uid))
                    .map(|(_, mut view)| {
                        hidden::strip_task_details(&mut view);
                        view
                    })
                    .collect();
                shared.webhooks.finished(views);
            }
        }
        Err(e) => log::warn!(target: "miroir::tasks", "could not cache finished tasks: {e}"),
    }
}

/// What a view needs besides its aggregation: a deletion's wait, hidden fields removed,
/// pending replays listed.
async fn finish(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    mut view: Value,
) -> Result<Value, MiroirError> {
    if !record.awaiting.is_empty() {
        settle_deletion(shared, rt, record, &mut view).await?;
    }
    hidden::strip_task_details(&mut view);
    handoff::decorate(&shared.cluster, record, &mut view);
    Ok(view)
}

/// The Meilisearch view of a task, asking the nodes when it is not terminal yet, and caching
/// it once it is.
pub(crate) async fn aggregated_view(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    auth: Option<&str>,
) -> Result<Value, MiroirError> {
    let view = poll(shared, rt, record, auth, &Polls::default()).await?;
    if record.terminal.is_none() && is_final(record, &view) {
        cache(shared, vec![(record.uid, view.clone())]).await;
    }
    Ok(view)
}

/// The aggregated view of a task: its cached one, or from its nodes' answers now.
async fn poll(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    auth: Option<&str>,
    polls: &Polls,
) -> Result<Value, MiroirError> {
    if let Some(done) = &record.terminal {
        return Ok(done.clone());
    }
    let record = &*without_departed(rt, record);
    // The client was authorized already (`access`); its key may not open every node task
    // behind a Miroir task, Miroir's own does.
    let auth = rt.node_key().or(auth);
    let timeout = rt.config.scatter.node_timeout;
    let fetches = record.node_tasks.iter().map(|part| async move {
        let (Some(uid), Some(node)) = (
            part.task_uid,
            rt.nodes.iter().find(|n| n.id.as_str() == part.node),
        ) else {
            return Ok(NodeView::Unknown);
        };
        if polls.skips(&part.node) {
            return Ok(NodeView::Unknown);
        }
        let path = format!("/tasks/{uid}");
        match shared
            .cluster
            .client
            .send(node, &NodeRequest::get(&path, auth), timeout)
            .await
        {
            Ok(resp) if resp.status == 200 => {
                Ok(resp.json().map_or(NodeView::Unknown, NodeView::Task))
            }
            // The client's credentials do not open tasks on the nodes.
            Ok(resp) if resp.status == 401 || resp.status == 403 => Err(resp),
            Ok(_) => Ok(NodeView::Unknown),
            Err(_) => {
                polls.silent(&part.node);
                Ok(NodeView::Unknown)
            }
        }
    });
    let mut views = Vec::with_capacity(record.node_tasks.len());
    for result in futures::future::join_all(fetches).await {
        match result {
            Ok(v) => views.push(v),
            Err(resp) => {
                let body = resp.json().unwrap_or(Value::Null);
                return Err(MiroirError::new(
                    Code::InvalidApiKey,
                    body["message"]
                        .as_str()
                        .unwrap_or("The provided API key is invalid."),
                ));
            }
        }
    }
    let (counted, views) = handoff::without_unreachable(&shared.cluster, rt, record, views);
    Ok(aggregate(&counted, &views, copies(rt)))
}

/// The current views of the unfinished tasks that pass `query`'s record filters, when its
/// view filters need them (or `always`): unfinished tasks are few, the others carry their
/// final view.
pub(crate) async fn pending_views(
    shared: &Shared,
    rt: &Runtime,
    query: &TaskQuery,
    auth: Option<&str>,
    always: bool,
) -> Result<BTreeMap<u64, Value>, MiroirError> {
    if !always && !query.needs_views() {
        return Ok(BTreeMap::new());
    }
    let q = TaskQuery {
        from: None,
        ..query.clone()
    };
    let records = blocking(&shared.tasks, move |s| s.unsettled(&q, usize::MAX)).await?;
    let views = views(shared, rt, &records, auth).await?;
    Ok(records.iter().map(|r| r.uid.0).zip(views).collect())
}

pub(crate) fn view_of<'a>(r: &'a TaskRecord, pending: &'a BTreeMap<u64, Value>) -> &'a Value {
    static ENQUEUED: Value = Value::Null;
    r.terminal
        .as_ref()
        .or_else(|| pending.get(&r.uid.0))
        .unwrap_or(&ENQUEUED)
}

/// A task deletion's view: not finished while tasks it matched are unfinished, and those that
/// finished are deleted first, so a client that waited for the deletion finds them gone.
pub(crate) async fn settle_deletion(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    view: &mut Value,
) -> Result<(), MiroirError> {
    let mut still = Vec::new();
    let mut finished = Vec::new();
    for uid in &record.awaiting {
        let stored = *uid;
        let Some(task) = blocking(&shared.tasks, move |s| s.get(stored)).await? else {
            continue;
        };
        let done = aggregated_view(shared, rt, &task, rt.node_key())
            .await
            .is_ok_and(|v| is_terminal(&v))
            // The nodes' own deletions removed its node tasks: they had finished.
            || deleted_on_nodes(shared, rt, &task).await;
        if done {
            finished.push(*uid);
        } else {
            still.push(*uid);
        }
    }
    if !finished.is_empty() {
        blocking(&shared.tasks, move |s| s.delete(&finished)).await?;
    }
    if still.is_empty() {
        // Best effort: a failure only means settling again on the next read.
        let uid = record.uid;
        let _ = blocking(&shared.tasks, move |s| {
            s.modify(uid, &mut |r| r.awaiting.clear())
        })
        .await;
    } else if is_terminal(view) {
        view["status"] = json!("processing");
        view["finishedAt"] = Value::Null;
        view["duration"] = Value::Null;
    }
    Ok(())
}

/// `record` without the parts of nodes a topology change removed or rebuilt since: their
/// copies of the write went with them, and the other owners hold it. Kept when no other part
/// is left.
fn without_departed<'r>(rt: &Runtime, record: &'r TaskRecord) -> std::borrow::Cow<'r, TaskRecord> {
    // A node rebuilt since the task was accepted no longer has (or never had) its node task:
    // its copy of the write came back with the rebuild.
    let enqueued_ms = time::OffsetDateTime::parse(
        &record.enqueued_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as u64)
    .unwrap_or(u64::MAX);
    let present = |node: &str| {
        rt.nodes.iter().any(|n| n.id.as_str() == node)
            && rt.rebuilt_at(node).is_none_or(|at| enqueued_ms >= at)
    };
    let departed = record.node_tasks.iter().any(|t| !present(&t.node))
        || record.replays.iter().any(|r| !present(&r.node));
    if !departed || !record.node_tasks.iter().any(|t| present(&t.node)) {
        return std::borrow::Cow::Borrowed(record);
    }
    let mut kept = record.clone();
    kept.node_tasks.retain(|t| present(&t.node));
    kept.replays.retain(|r| present(&r.node));
    std::borrow::Cow::Owned(kept)
}

/// Whether every node task behind `record` is gone from its node (404).
pub(crate) async fn deleted_on_nodes(shared: &Shared, rt: &Runtime, record: &TaskRecord) -> bool {
    let timeout = rt.config.scatter.node_timeout;
    let asks = record.node_tasks.iter().filter_map(|part| {
        let uid = part.task_uid?;
        let node = rt.nodes.iter().find(|n| n.id.as_str() == part.node)?;
        Some(async move {
            let path = format!("/tasks/{uid}");
            matches!(
                shared
                    .cluster
                    .client
                    .send(node, &NodeRequest::get(&path, rt.node_key()), timeout)
                    .await,
                Ok(resp) if resp.status == 404
            )
        })
    });
    let answers = futures::future::join_all(asks).await;
    !answers.is_empty() && answers.into_iter().all(|gone| gone)
}

/// How long a deletion waits for the unfinished tasks it matched.
const DELETION_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Deletes matched tasks from the registry as they finish, as Meilisearch deletes the tasks a
/// deletion matched once it processes it (after the batch running when it was enqueued).
pub(crate) async fn delete_when_finished(shared: Arc<Shared>, mut uids: Vec<TaskUid>) {
    let deadline = std::time::Instant::now() + DELETION_WAIT;
    while !uids.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let rt = shared.cluster.runtime();
        let mut finished = Vec::new();
        for uid in &uids {
            let stored = *uid;
            let Ok(Some(record)) = blocking(&shared.tasks, move |s| s.get(stored)).await else {
                finished.push(*uid);
                continue;
            };
            let terminal = match view(&shared, &rt, &record, rt.node_key()).await {
                Ok(v) => is_terminal(&v),
                Err(_) => false,
            } || deleted_on_nodes(&shared, &rt, &record).await;
            if terminal {
                finished.push(*uid);
            }
        }
        if finished.is_empty() {
            continue;
        }
        let gone = finished.clone();
        if let Err(e) = blocking(&shared.tasks, move |s| s.delete(&gone)).await {
            log::warn!(target: "miroir::tasks", "deleting finished tasks: {e}");
            return;
        }
        uids.retain(|u| !finished.contains(u));
    }
}

pub(crate) trait TerminalName {
    fn parse_terminal(s: &str) -> bool;
}

impl TerminalName for Status {
    fn parse_terminal(s: &str) -> bool {
        matches!(s, "succeeded" | "failed" | "canceled")
    }
}
