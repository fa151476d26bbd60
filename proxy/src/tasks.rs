//! The task routes, answered from Miroir's registry: a Miroir task is shown as one Meilisearch
//! task aggregated from its node tasks, and cached once it reaches a terminal status.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use miroir_filters::error::{Code, MiroirError};
use miroir_tasks::{
    aggregate, Created, Idempotency, ListQuery, NewTask, NodeView, Status, TaskRecord, TaskStore,
    TaskUid,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::access;
use crate::broadcast::{Incoming, Reply};
use crate::state::{Runtime, Shared};
use crate::upstream::NodeRequest;

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn store_error(e: impl std::fmt::Display) -> MiroirError {
    log::error!(target: "miroir::tasks", "task store: {e}");
    MiroirError::new(Code::Internal, "Miroir's task store failed; see its log.")
}

/// Runs a blocking store call off the async workers (a commit waits for fsync).
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn TaskStore>,
    f: impl FnOnce(&dyn TaskStore) -> Result<T, miroir_tasks::StoreError> + Send + 'static,
) -> Result<T, MiroirError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(store_error)?
        .map_err(store_error)
}

pub async fn create(
    shared: &Shared,
    task: NewTask,
    idem: Option<Idempotency>,
) -> Result<Created, MiroirError> {
    blocking(&shared.tasks, move |s| s.create(task, idem.as_ref())).await
}

/// Meilisearch's 202 answer for an accepted write.
pub fn summary(record: &TaskRecord) -> Value {
    let mut v = json!({
        "taskUid": record.uid.0,
        "indexUid": record.index_uid,
        "status": "enqueued",
        "type": record.kind,
        "enqueuedAt": record.enqueued_at,
    });
    if let (Some(meta), Some(obj)) = (&record.custom_metadata, v.as_object_mut()) {
        obj.insert("customMetadata".into(), json!(meta));
    }
    v
}

/// How many nodes hold each document: per-copy counters divide by it.
fn copies(rt: &Runtime) -> u32 {
    rt.config.replication_factor * rt.config.replica_groups
}

/// The current view of a task, with Miroir's extension listing the replicas whose copy of
/// the write is still waiting for replay (`miroir.pendingReplays`).
async fn view(
    shared: &Shared,
    rt: &Runtime,
    record: &TaskRecord,
    auth: Option<&str>,
) -> Result<Value, MiroirError> {
    let mut view = aggregated_view(shared, rt, record, auth).await?;
    if !record.awaiting.is_empty() {
        settle_deletion(shared, rt, record, &mut view).await?;
    }
    crate::shard_field::strip_task_details(&mut view);
    crate::handoff::decorate(shared, record, &mut view);
    Ok(view)
}

/// The Meilisearch view of a task, asking the nodes when it is not terminal yet.
async fn aggregated_view(
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
    let (counted, views) = crate::handoff::without_unreachable(shared, rt, record, views);
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

pub async fn get_task(shared: &Shared, rt: &Runtime, inc: &Incoming, raw_uid: &str) -> Reply {
    let access = match access::authorize(shared, rt, inc, "tasks.get").await {
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

/// The filters of `GET /tasks`, `POST /tasks/cancel` and `DELETE /tasks`.
#[derive(Debug, Default)]
struct TaskFilter {
    uids: Option<HashSet<u64>>,
    statuses: Option<HashSet<String>>,
    types: Option<HashSet<String>>,
    index_uids: Option<HashSet<String>>,
    canceled_by: Option<HashSet<u64>>,
    /// `(field, after, before)` bounds on the task's dates.
    dates: Vec<(&'static str, Option<OffsetDateTime>, Option<OffsetDateTime>)>,
    limit: usize,
    from: Option<u64>,
    reverse: bool,
    /// The filter as the client wrote it, for `details.originalFilter`.
    original: String,
    any_filter: bool,
}

const STATUSES: [&str; 5] = ["enqueued", "processing", "succeeded", "failed", "canceled"];

fn parse_list(v: &str) -> Option<HashSet<String>> {
    if v == "*" {
        return None;
    }
    Some(
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn parse_filter(query: &str) -> Result<TaskFilter, MiroirError> {
    let mut f = TaskFilter {
        limit: 20,
        ..TaskFilter::default()
    };
    let mut original = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = miroir_filters::routes::percent_decode(v)
            .map(|c| c.into_owned())
            .unwrap_or_else(|| v.to_owned());
        match k {
            "limit" => {
                f.limit = v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskLimit, format!("Invalid value in parameter `limit`: could not parse `{v}` as a positive integer"))
                })?
            }
            "from" => {
                f.from = Some(v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskFrom, format!("Invalid value in parameter `from`: could not parse `{v}` as a positive integer"))
                })?)
            }
            "reverse" => f.reverse = v == "true",
            "uids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.uids = match parse_list(&v) {
                    None => None,
                    Some(set) => Some(
                        set.iter()
                            .map(|u| u.parse::<u64>())
                            .collect::<Result<HashSet<u64>, _>>()
                            .map_err(|_| MiroirError::new(Code::InvalidTaskUids, format!("Invalid value in parameter `uids`: could not parse `{v}` as a positive integer")))?,
                    ),
                };
            }
            "statuses" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.statuses = parse_list(&v);
                if let Some(bad) = f.statuses.iter().flatten().find(|s| !STATUSES.contains(&s.as_str())) {
                    return Err(MiroirError::new(
                        Code::InvalidTaskStatuses,
                        format!("Invalid value in parameter `statuses`: `{bad}` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`."),
                    ));
                }
            }
            "types" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.types = parse_list(&v);
            }
            "indexUids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.index_uids = parse_list(&v);
            }
            "canceledBy" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.canceled_by = parse_uid_list(&v, "canceledBy", Code::InvalidTaskCanceledBy)?;
            }
            // Miroir runs each task in its own batch, numbered like the task.
            "batchUids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                let batches = parse_uid_list(&v, "batchUids", Code::InvalidTaskUids)?;
                f.uids = match (f.uids.take(), batches) {
                    (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
                    (a, b) => a.or(b),
                };
            }
            name @ ("afterEnqueuedAt" | "beforeEnqueuedAt" | "afterStartedAt" | "beforeStartedAt"
            | "afterFinishedAt" | "beforeFinishedAt") => {
                f.any_filter = true;
                original.push(pair.to_owned());
                let at = parse_date(&v).ok_or_else(|| {
                    MiroirError::new(
                        date_code(name),
                        format!("Invalid value in parameter `{name}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
                    )
                })?;
                let field = if name.ends_with("EnqueuedAt") {
                    "enqueuedAt"
                } else if name.ends_with("StartedAt") {
                    "startedAt"
                } else {
                    "finishedAt"
                };
                let slot = match f.dates.iter().position(|(k, _, _)| *k == field) {
                    Some(i) => i,
                    None => {
                        f.dates.push((field, None, None));
                        f.dates.len() - 1
                    }
                };
                if name.starts_with("after") {
                    f.dates[slot].1 = Some(at);
                } else {
                    f.dates[slot].2 = Some(at);
                }
            }
            _ => {}
        }
    }
    f.original = format!("?{}", original.join("&"));
    Ok(f)
}

impl TaskFilter {
    /// The filters known from the record alone.
    fn matches_record(&self, r: &TaskRecord) -> bool {
        self.uids.as_ref().is_none_or(|u| u.contains(&r.uid.0))
            && self.types.as_ref().is_none_or(|t| t.contains(&r.kind))
            && self
                .index_uids
                .as_ref()
                .is_none_or(|i| r.index_uid.as_ref().is_some_and(|u| i.contains(u)))
    }

    /// The filters that need the task's current view (status, cancelation, dates).
    fn matches_view(&self, view: &Value) -> bool {
        let status = view["status"].as_str().unwrap_or("enqueued");
        let in_range =
            |(field, after, before): &(&str, Option<OffsetDateTime>, Option<OffsetDateTime>)| {
                match view[*field]
                    .as_str()
                    .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
                {
                    Some(t) => after.is_none_or(|a| t > a) && before.is_none_or(|b| t < b),
                    None => false,
                }
            };
        self.statuses.as_ref().is_none_or(|s| s.contains(status))
            && self
                .canceled_by
                .as_ref()
                .is_none_or(|c| view["canceledBy"].as_u64().is_some_and(|u| c.contains(&u)))
            && self.dates.iter().all(in_range)
    }
}

/// The current views of every non-terminal task, so view filters can run over the registry.
/// Non-terminal tasks are few: the others carry their final view.
async fn refresh_pending(
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

fn view_of<'a>(r: &'a TaskRecord, pending: &'a BTreeMap<u64, Value>) -> &'a Value {
    static ENQUEUED: Value = Value::Null;
    r.terminal
        .as_ref()
        .or_else(|| pending.get(&r.uid.0))
        .unwrap_or(&ENQUEUED)
}

fn date_code(param: &str) -> Code {
    match param {
        "afterEnqueuedAt" => Code::InvalidTaskAfterEnqueuedAt,
        "beforeEnqueuedAt" => Code::InvalidTaskBeforeEnqueuedAt,
        "afterStartedAt" => Code::InvalidTaskAfterStartedAt,
        "beforeStartedAt" => Code::InvalidTaskBeforeStartedAt,
        "afterFinishedAt" => Code::InvalidTaskAfterFinishedAt,
        _ => Code::InvalidTaskBeforeFinishedAt,
    }
}

fn parse_date(v: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    let date =
        time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc())
}

fn parse_uid_list(v: &str, name: &str, code: Code) -> Result<Option<HashSet<u64>>, MiroirError> {
    match parse_list(v) {
        None => Ok(None),
        Some(set) => set
            .iter()
            .map(|u| u.parse::<u64>())
            .collect::<Result<HashSet<u64>, _>>()
            .map(Some)
            .map_err(|_| {
                MiroirError::new(code, format!("Invalid value in parameter `{name}`: could not parse `{v}` as a positive integer"))
            }),
    }
}

pub async fn list_tasks(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    let access = match access::authorize(shared, rt, inc, "tasks.get").await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let query = inc.path.split_once('?').map_or("", |(_, q)| q);
    let filter = match parse_filter(query) {
        Ok(f) => f,
        Err(e) => return Reply::error(&e),
    };
    let pending = match refresh_pending(shared, rt, inc.auth.as_deref()).await {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let filter = Arc::new(filter);
    let (f2, p2) = (filter.clone(), pending.clone());
    // As Meilisearch does it: the page (one more task than asked, to know the next one) and
    // the total are taken over the tasks the query matches, then the tasks the key may not
    // see are removed from the page. The total still counts them, and a page can come out
    // short or empty.
    let page = blocking(&shared.tasks, move |s| {
        let matches = |r: &TaskRecord| f2.matches_record(r) && f2.matches_view(view_of(r, &p2));
        s.list(&ListQuery {
            from: f2.from,
            limit: f2.limit.saturating_add(1),
            reverse: f2.reverse,
            filter: &matches,
        })
    })
    .await;
    let page = match page {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let mut records: Vec<&TaskRecord> = page
        .results
        .iter()
        .filter(|r| access.task_visible(r.index_uid.as_deref(), &r.kind))
        .collect();
    let next = if records.len() > filter.limit {
        records.pop().map(|r| r.uid.0)
    } else {
        None
    };
    let mut results = Vec::with_capacity(records.len());
    for record in &records {
        match view(shared, rt, record, inc.auth.as_deref()).await {
            Ok(v) => results.push(v),
            Err(e) => return Reply::error(&e),
        }
    }
    let from = records.first().map(|r| r.uid.0);
    Reply::json(
        200,
        &json!({ "results": results, "total": page.total, "limit": filter.limit, "from": from, "next": next }),
    )
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
    let access = match access::authorize(shared, rt, inc, action).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let query = inc.path.split_once('?').map_or("", |(_, q)| q);
    let filter = match parse_filter(query) {
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
    let pending = match refresh_pending(shared, rt, inc.auth.as_deref()).await {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let filter = Arc::new(filter);
    let (f2, p2) = (filter.clone(), pending.clone());
    let matched = blocking(&shared.tasks, move |s| {
        let matches = |r: &TaskRecord| {
            // Only the tasks the key may see are touched.
            if !access.task_visible(r.index_uid.as_deref(), &r.kind) {
                return false;
            }
            let view = view_of(r, &p2);
            let status = view["status"].as_str().unwrap_or("enqueued");
            // Only unfinished tasks can be canceled. A deletion matches unfinished tasks too:
            // Meilisearch deletes those that are finished once it processes the deletion.
            let eligible = delete || !Status::parse_terminal(status);
            eligible && f2.matches_record(r) && f2.matches_view(view)
        };
        s.list(&ListQuery {
            from: None,
            limit: usize::MAX,
            reverse: false,
            filter: &matches,
        })
    })
    .await;
    let matched = match matched {
        Ok(p) => p.results,
        Err(e) => return Reply::error(&e),
    };

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
            };
            (
                node.id.to_string(),
                shared.client.send(node, &req, timeout).await,
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
                },
                None => miroir_tasks::NodeTask {
                    node,
                    task_uid: None,
                    error: Some(crate::broadcast::failure_json(&result)),
                },
            }
        })
        .collect();

    let mut awaiting: Vec<TaskUid> = Vec::new();
    if delete {
        let (done, unfinished): (Vec<&TaskRecord>, Vec<&TaskRecord>) =
            matched.iter().partition(|r| {
                view_of(r, &pending)["status"]
                    .as_str()
                    .is_some_and(Status::parse_terminal)
            });
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
    let details = json!({ "matchedTasks": matched.len(), count_key: matched.len(), "originalFilter": filter.original });
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

/// A task deletion's view: not finished while tasks it matched are unfinished, and those that
/// finished are deleted first, so a client that waited for the deletion finds them gone.
async fn settle_deletion(
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
async fn deleted_on_nodes(shared: &Shared, rt: &Runtime, record: &TaskRecord) -> bool {
    let timeout = rt.config.scatter.node_timeout;
    let asks = record.node_tasks.iter().filter_map(|part| {
        let uid = part.task_uid?;
        let node = rt.nodes.iter().find(|n| n.id.as_str() == part.node)?;
        Some(async move {
            let path = format!("/tasks/{uid}");
            matches!(
                shared
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
async fn delete_when_finished(shared: Arc<Shared>, mut uids: Vec<TaskUid>) {
    let deadline = std::time::Instant::now() + DELETION_WAIT;
    while !uids.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let rt = shared.runtime();
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

trait TerminalName {
    fn parse_terminal(s: &str) -> bool;
}

impl TerminalName for Status {
    fn parse_terminal(s: &str) -> bool {
        matches!(s, "succeeded" | "failed" | "canceled")
    }
}

/// A Miroir task seen as a Meilisearch batch: Miroir batches nothing, so each task is its own
/// batch with the task's uid.
fn batch_of(task: &Value) -> Value {
    let status = task["status"].as_str().unwrap_or("enqueued");
    let mut index_uids = serde_json::Map::new();
    if let Some(uid) = task["indexUid"].as_str() {
        index_uids.insert(uid.to_owned(), json!(1));
    }
    json!({
        "uid": task["uid"],
        "progress": null,
        "details": task["details"],
        "stats": {
            "totalNbTasks": 1,
            "status": { status: 1 },
            "types": { task["type"].as_str().unwrap_or("unknown"): 1 },
            "indexUids": index_uids,
        },
        "duration": task["duration"],
        "startedAt": task["startedAt"],
        "finishedAt": task["finishedAt"],
        "batchStrategy": "Miroir runs each task in its own batch",
    })
}

/// `GET /batches` and `GET /batches/{uid}`, derived from the task registry.
pub async fn batches(shared: &Shared, rt: &Runtime, inc: &Incoming, uid: Option<&str>) -> Reply {
    match uid {
        Some(raw) => {
            let reply = get_task(shared, rt, inc, raw).await;
            if reply.status != 200 {
                // Meilisearch names the batch, not the task, in these errors.
                return match raw.parse::<u64>() {
                    Ok(n) if reply.status == 404 => Reply::error(&MiroirError::new(
                        Code::BatchNotFound,
                        format!("Batch `{n}` not found."),
                    )),
                    Err(_) if reply.status == 400 => Reply::error(&MiroirError::new(
                        Code::InvalidBatchUids,
                        format!(
                            "Batch uid `{raw}` is invalid. It should only contain numeric characters."
                        ),
                    )),
                    _ => reply,
                };
            }
            let task: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            Reply::json(200, &batch_of(&task))
        }
        None => {
            let reply = list_tasks(shared, rt, inc).await;
            if reply.status != 200 {
                return reply;
            }
            let mut page: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            if let Some(results) = page["results"].as_array_mut() {
                for r in results.iter_mut() {
                    *r = batch_of(r);
                }
            }
            Reply::json(200, &page)
        }
    }
}
