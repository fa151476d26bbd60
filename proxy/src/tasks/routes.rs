//! The task routes, answered from Miroir's registry: `GET /tasks/{uid}`, `GET /tasks`,
//! `POST /tasks/cancel` and `DELETE /tasks`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use miroir_filters::error::{Code, MiroirError};
use miroir_tasks::{Created, NewTask, Status, TaskQuery, TaskRecord, TaskUid};
use serde_json::{json, Value};

use super::filter::{parse_filter, FilterRoute};
use super::registry::{blocking, create, summary};
use super::view::{delete_when_finished, pending_views, view, view_of, views, TerminalName};
use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::upstream::NodeRequest;

fn is_finished(view: &Value) -> bool {
    view["status"].as_str().is_some_and(Status::parse_terminal)
}

pub async fn get_task(shared: &Shared, rt: &Runtime, inc: &Incoming, raw_uid: &str) -> Reply {
    let access = match shared.authorize(rt, inc, "tasks.get").await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let Ok(uid) = raw_uid.parse::<u64>() else {
        return Reply::error(&MiroirError::new(
            Code::InvalidTaskUids,
            format!("Task uid `{raw_uid}` is invalid. It should only contain numeric characters."),
        ));
    };
    let record = match blocking(&shared.tasks, move |s| s.get(TaskUid(uid))).await {
        // A task the key may not see does not exist for it, as on a node.
        Ok(Some(r)) if access.task_visible(r.index_uid.as_deref(), &r.kind) => r,
        Ok(_) => {
            return Reply::error(&MiroirError::new(
                Code::TaskNotFound,
                format!("Task `{uid}` not found."),
            ))
        }
        Err(e) => return Reply::error(&e),
    };
    match view(shared, rt, &record, inc.auth.as_deref()).await {
        Ok(v) => Reply::json(200, &v),
        Err(e) => Reply::error(&e),
    }
}

pub async fn list_tasks(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    let access = match shared.authorize(rt, inc, "tasks.get").await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let query = inc.path.split_once('?').map_or("", |(_, q)| q);
    let filter = match parse_filter(query, FilterRoute::List) {
        Ok(f) => f,
        Err(e) => return Reply::error(&e),
    };
    let limit = filter.query.limit;
    // As Meilisearch does it: the page (one more task than asked, to know the next one) and
    // the total are taken over the tasks the query matches, then the tasks the key may not
    // see are removed from the page. The total still counts them, and a page can come out
    // short or empty.
    let q = TaskQuery {
        limit: limit.saturating_add(1),
        ..filter.query
    };
    let pending = match pending_views(shared, rt, &q, inc.auth.as_deref(), false).await {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let matching = passing(&q, &pending);
    let page = match blocking(&shared.tasks, move |s| s.list(&q, &matching)).await {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let mut records: Vec<TaskRecord> = page
        .results
        .into_iter()
        .filter(|r| access.task_visible(r.index_uid.as_deref(), &r.kind))
        .collect();
    let next = if records.len() > limit {
        records.pop().map(|r| r.uid.0)
    } else {
        None
    };
    // The views asked for already are reused; the others are cached or asked for now.
    let unknown: Vec<TaskRecord> = records
        .iter()
        .filter(|r| !pending.contains_key(&r.uid.0))
        .cloned()
        .collect();
    let mut asked = match views(shared, rt, &unknown, inc.auth.as_deref()).await {
        Ok(v) => v.into_iter(),
        Err(e) => return Reply::error(&e),
    };
    let results: Vec<Value> = records
        .iter()
        .filter_map(|r| match pending.get(&r.uid.0) {
            Some(v) => Some(v.clone()),
            None => asked.next(),
        })
        .collect();
    let from = records.first().map(|r| r.uid.0);
    Reply::json(
        200,
        &json!({ "results": results, "total": page.total, "limit": limit, "from": from, "next": next }),
    )
}

/// The unfinished tasks whose current view passes the query's view filters.
fn passing(q: &TaskQuery, pending: &BTreeMap<u64, Value>) -> BTreeSet<u64> {
    pending
        .iter()
        .filter(|(_, view)| q.matches_view(view))
        .map(|(uid, _)| *uid)
        .collect()
}

/// `POST /tasks/cancel` and `DELETE /tasks`: matched against Miroir's registry, applied to the
/// node tasks behind the matched tasks, answered as one Miroir task.
pub async fn cancel_or_delete(
    shared: &Arc<Shared>,
    rt: &Runtime,
    inc: &Incoming,
    delete: bool,
) -> Reply {
    let action = if delete {
        "tasks.delete"
    } else {
        "tasks.cancel"
    };
    let access = match shared.authorize(rt, inc, action).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let query = inc.path.split_once('?').map_or("", |(_, q)| q);
    let filter = match parse_filter(query, FilterRoute::CancelOrDelete) {
        Ok(f) if f.any_filter => f,
        Ok(_) => {
            let what = if delete { "delete" } else { "cancel" };
            return Reply::error(&MiroirError::new(
                Code::MissingTaskFilters,
                format!("Query parameters to filter the tasks to {what} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."),
            ));
        }
        Err(e) => return Reply::error(&e),
    };
    // Every match, whatever its place: the unfinished ones' views tell which can be canceled.
    let q = TaskQuery {
        from: None,
        limit: usize::MAX,
        reverse: false,
        ..filter.query.clone()
    };
    let pending = match pending_views(shared, rt, &q, inc.auth.as_deref(), true).await {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let matching = passing(&q, &pending);
    let matched = match blocking(&shared.tasks, move |s| s.list(&q, &matching)).await {
        Ok(page) => page.results,
        Err(e) => return Reply::error(&e),
    };
    // Only the tasks the key may see are touched; a node counts them all as matched.
    let matched: Vec<TaskRecord> = matched
        .into_iter()
        .filter(|r| access.task_visible(r.index_uid.as_deref(), &r.kind))
        .collect();
    let matched_count = matched.len();
    // Only unfinished tasks can be canceled; a deletion takes unfinished tasks too:
    // Meilisearch deletes those that are finished once it processes the deletion.
    let matched: Vec<TaskRecord> = matched
        .into_iter()
        .filter(|r| delete || !is_finished(view_of(r, &pending)))
        .collect();

    // Each node gets the uids of its own tasks behind the matched Miroir tasks.
    let mut per_node: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for record in &matched {
        for part in &record.node_tasks {
            if let Some(uid) = part.task_uid {
                per_node.entry(part.node.as_str()).or_default().push(uid);
            }
        }
    }
    let method = if delete { "DELETE" } else { "POST" };
    let path_base = if delete { "/tasks" } else { "/tasks/cancel" };
    let timeout = rt.config.scatter.node_timeout;
    let sends = rt.nodes.iter().filter_map(|node| {
        let uids = per_node.get(node.id.as_str())?;
        let list: Vec<String> = uids.iter().map(u64::to_string).collect();
        let path = format!("{path_base}?uids={}", list.join(","));
        let auth = inc.auth.clone();
        Some(async move {
            let req = NodeRequest {
                method,
                path: &path,
                auth: auth.as_deref(),
                content_type: None,
                body: &[],
                request_id: None,
                budget: None,
                relay: None,
            };
            (
                node.id.to_string(),
                shared.cluster.client.send(node, &req, timeout).await,
            )
        })
    });
    let results = futures::future::join_all(sends).await;
    // A node refusing the client's key (no `tasks.cancel`/`tasks.delete`): refuse it all, and
    // leave the registry as it was.
    if let Some(refused) = results.iter().find_map(|(_, r)| {
        r.as_ref()
            .ok()
            .filter(|resp| matches!(resp.status, 401 | 403))
    }) {
        return Reply::relay(refused);
    }
    let node_tasks = results
        .into_iter()
        .map(|(node, result)| {
            let uid = result
                .as_ref()
                .ok()
                .filter(|r| r.status == 200 || r.status == 202)
                .and_then(|r| r.json())
                .and_then(|v| v["taskUid"].as_u64());
            match uid {
                Some(uid) => miroir_tasks::NodeTask {
                    node,
                    task_uid: Some(uid),
                    error: None,
                    share: 0,
                },
                None => miroir_tasks::NodeTask {
                    node,
                    task_uid: None,
                    error: Some(node_io::failure_json(&result)),
                    share: 0,
                },
            }
        })
        .collect();

    let mut awaiting: Vec<TaskUid> = Vec::new();
    if delete {
        let (done, unfinished): (Vec<&TaskRecord>, Vec<&TaskRecord>) = matched
            .iter()
            .partition(|r| is_finished(view_of(r, &pending)));
        let uids: Vec<TaskUid> = done.iter().map(|r| r.uid).collect();
        if let Err(e) = blocking(&shared.tasks, move |s| s.delete(&uids)).await {
            return Reply::error(&e);
        }
        awaiting = unfinished.iter().map(|r| r.uid).collect();
    }
    let (kind, count_key) = if delete {
        ("taskDeletion", "deletedTasks")
    } else {
        ("taskCancelation", "canceledTasks")
    };
    let details = json!({ "matchedTasks": matched_count, count_key: matched.len(), "originalFilter": filter.original });
    let task = NewTask {
        index_uid: None,
        kind: kind.to_owned(),
        enqueued_at: inc.received_at.clone(),
        node_tasks,
        custom_metadata: None,
        details: Some(details),
    };
    match create(shared, task, None).await {
        Ok(Created::New(mut record)) => {
            if !delete && !matched.is_empty() {
                // Each canceled task names this cancelation, not the nodes' own.
                let by = record.uid;
                let uids: Vec<TaskUid> = matched.iter().map(|r| r.uid).collect();
                let marked = blocking(&shared.tasks, move |s| {
                    for uid in uids {
                        s.modify(uid, &mut |r| r.canceled_by = Some(by))?;
                    }
                    Ok(())
                })
                .await;
                if let Err(e) = marked {
                    return Reply::error(&e);
                }
            }
            if !awaiting.is_empty() {
                record.awaiting = awaiting.clone();
                let stored = record.clone();
                if let Err(e) = blocking(&shared.tasks, move |s| s.update(&stored)).await {
                    return Reply::error(&e);
                }
                // Nobody may look at the deletion: its tasks still go once they finish.
                tokio::spawn(delete_when_finished(shared.clone(), awaiting));
            }
            Reply::json(200, &summary(&record))
        }
        Ok(Created::Replayed(record)) => Reply::json(200, &summary(&record)),
        Ok(Created::KeyReused { .. }) => Reply::error(&MiroirError::new(
            Code::Internal,
            "unexpected idempotency state",
        )),
        Err(e) => Reply::error(&e),
    }
}
