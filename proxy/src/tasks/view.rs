//! A Miroir task as one Meilisearch task: aggregated from its node tasks (asked while it is
//! unfinished, cached once terminal), with Miroir's hidden fields removed and the replicas
//! still waiting for their copy listed (`miroir.pendingReplays`).

use std::collections::BTreeMap;
use std::sync::Arc;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden;
use miroir_tasks::{aggregate, ListQuery, NodeView, Status, TaskRecord, TaskUid};
use serde_json::{json, Value};

use super::registry::blocking;
use crate::cluster::Runtime;
use crate::repair::handoff;
use crate::shared::Shared;
use crate::upstream::NodeRequest;

/// How many nodes hold each document: per-copy counters divide by it.
fn copies(rt: &Runtime) -> u32 {
    rt.reads().replication_factor() * rt.reads().groups()
}

/// The current view of a task, with Miroir's extension listing the replicas whose copy of
/// the write is still waiting for replay (`miroir.pendingReplays`).
pub(crate) async fn view(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    auth: Option<&str>,
) -> Result<Value, MiroirError> {
    let mut view = aggregated_view(shared, rt, record, auth).await?;
    if !record.awaiting.is_empty() {
        settle_deletion(shared, rt, record, &mut view).await?;
    }
    hidden::strip_task_details(&mut view);
    handoff::decorate(&shared.cluster, record, &mut view);
    Ok(view)
}

/// The Meilisearch view of a task, asking the nodes when it is not terminal yet.
pub(crate) async fn aggregated_view(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    auth: Option<&str>,
) -> Result<Value, MiroirError> {
    if let Some(done) = &record.terminal {
        return Ok(done.clone());
    }
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
            _ => Ok(NodeView::Unknown),
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
    let view = aggregate(&counted, &views, copies(rt));
    let terminal = view["status"]
        .as_str()
        .is_some_and(|s| matches!(s, "succeeded" | "failed" | "canceled"));
    if terminal {
        let mut done = record.clone();
        done.terminal = Some(view.clone());
        // Caching is an optimisation: a failure only means asking the nodes again later.
        if let Err(e) = blocking(&shared.tasks, move |s| s.update(&done)).await {
            log::warn!(target: "miroir::tasks", "could not cache task {}: {e}", record.uid.0);
        }
    }
    Ok(view)
}

/// The current views of every non-terminal task, so view filters can run over the registry.
/// Non-terminal tasks are few: the others carry their final view.
pub(crate) async fn refresh_pending(
    shared: &Shared,
    rt: &Runtime,
    auth: Option<&str>,
) -> Result<BTreeMap<u64, Value>, MiroirError> {
    let pending = |r: &TaskRecord| r.terminal.is_none();
    let page = blocking(&shared.tasks, move |s| {
        s.list(&ListQuery {
            from: None,
            limit: usize::MAX,
            reverse: false,
            filter: &pending,
        })
    })
    .await?;
    let mut views = BTreeMap::new();
    for record in page.results {
        let v = view(shared, rt, &record, auth).await?;
        views.insert(record.uid.0, v);
    }
    Ok(views)
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
            .is_ok_and(|v| v["status"].as_str().is_some_and(Status::parse_terminal))
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
        let mut settled = record.clone();
        settled.awaiting.clear();
        // Best effort: a failure only means settling again on the next read.
        let _ = blocking(&shared.tasks, move |s| s.update(&settled)).await;
    } else if view["status"].as_str().is_some_and(Status::parse_terminal) {
        view["status"] = json!("processing");
        view["finishedAt"] = Value::Null;
        view["duration"] = Value::Null;
    }
    Ok(())
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
            let Ok(Some(record)) = shared.tasks.get(*uid) else {
                finished.push(*uid);
                continue;
            };
            let terminal = match view(&shared, &rt, &record, rt.node_key()).await {
                Ok(v) => v["status"].as_str().is_some_and(Status::parse_terminal),
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
