//! `/tasks` (list, get, cancel, delete) and `/batches`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meili_sim_engine::MeiliError;
use serde_json::{json, Value};

use super::{auth, AppState, Params};
use crate::auth::Access;
use crate::error::{batch_not_found, task_not_found, ApiResult};
use crate::task_query::{parse_filter, parse_list_query, Page, FILTERS};
use crate::tasks::{details, Op, Status, Task};

/// Task types that concern exactly one index (Meilisearch's `Kind::related_to_one_index`).
const ONE_INDEX_KINDS: &[&str] = &[
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexCompaction",
];

/// As Meilisearch decides it: a key that does not cover every index sees only the tasks of
/// one index it covers (no swaps, dumps, task cancelations or deletions).
fn visible(access: &Access, t: &Task) -> bool {
    access.all_indexes_visible()
        || (ONE_INDEX_KINDS.contains(&t.kind)
            && t.index_uid
                .as_deref()
                .is_some_and(|i| access.is_index_visible(i)))
}

/// Pages `(key, visible, item)` triples: newest first unless `reverse`, from `from` inclusive.
/// As Meilisearch does it, the page (and `total`) are taken over every item the query
/// matches, and the items the key may not see are removed from the page afterwards: the
/// total still counts them and a page can come out short.
fn paginate(mut items: Vec<(u32, bool, Value)>, p: &Page) -> Value {
    items.sort_by_key(|(k, _, _)| *k);
    if !p.reverse {
        items.reverse();
    }
    let total = items.len();
    let start = match p.from {
        Some(from) => items
            .iter()
            .position(|(k, _, _)| if p.reverse { *k >= from } else { *k <= from })
            .unwrap_or(items.len()),
        None => 0,
    };
    let limit = p.limit as usize;
    let mut page: Vec<&(u32, bool, Value)> = items
        .iter()
        .skip(start)
        .take(limit.saturating_add(1))
        .filter(|(_, visible, _)| *visible)
        .collect();
    let next = if page.len() > limit {
        page.pop().map(|(k, _, _)| *k)
    } else {
        None
    };
    let from = page.first().map(|(k, _, _)| *k);
    let results: Vec<Value> = page.iter().map(|(_, _, v)| v.clone()).collect();
    json!({ "results": results, "total": total, "limit": p.limit, "from": from, "next": next })
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "tasks.get", None)?;
    let (filter, page) = parse_list_query(&params.0)?;
    let db = s.db();
    let items = db
        .tasks
        .values()
        .filter(|t| filter.matches(t))
        .map(|t| (t.uid, visible(&access, t), t.view()))
        .collect();
    super::ok(paginate(items, &page))
}

/// A task or batch uid from the path; `what` is "Task" or "Batch".
fn parse_uid(raw: &str, code: &str, what: &str) -> Result<u32, MeiliError> {
    raw.parse::<u32>().map_err(|_| {
        MeiliError::invalid(
            code,
            format!("{what} uid `{raw}` is invalid. It should only contain numeric characters."),
        )
    })
}

pub async fn get_one(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "tasks.get", None)?;
    let uid = parse_uid(&raw, "invalid_task_uids", "Task")?;
    let db = s.db();
    let task = db
        .tasks
        .get(&uid)
        .filter(|t| visible(&access, t))
        .ok_or_else(|| task_not_found(&raw))?;
    super::ok(task.view())
}

/// `GET /tasks/{uid}/documents`: with the `getTaskDocumentsRoute` feature, a document
/// addition's documents while it waits, written one after another as `application/x-ndjson`.
pub async fn documents(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "tasks.get", None)?;
    let db = s.db();
    if db.features.get("getTaskDocumentsRoute") != Some(&Value::Bool(true)) {
        return Err(MeiliError::invalid(
            "feature_not_enabled",
            "Getting the documents of an enqueued task requires enabling the `get task documents route` experimental feature. See https://github.com/orgs/meilisearch/discussions/808",
        )
        .into());
    }
    let uid = parse_uid(&raw, "invalid_task_uids", "Task")?;
    let task = db
        .tasks
        .get(&uid)
        .filter(|t| visible(&access, t))
        .ok_or_else(|| task_not_found(&raw))?;
    let waiting = matches!(task.status, Status::Enqueued | Status::Processing);
    let docs = match &task.op {
        Some(Op::AddDocuments { docs, .. }) if waiting => docs,
        _ => {
            return Err(MeiliError {
                status: 404,
                ..MeiliError::invalid(
                    "task_file_not_found",
                    format!("Task `{uid}` does not contain any documents. Only `documentAdditionOrUpdate` tasks with the statuses `enqueued` or `processing` contain documents"),
                )
            }
            .into())
        }
    };
    let body: String = docs
        .iter()
        .map(|d| Value::Object(d.clone()).to_string())
        .collect();
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

/// `POST /tasks/cancel` and `DELETE /tasks` share their filters and their missing-filter error.
fn matched(s: &AppState, access: &Access, params: &Params, verb: &str) -> ApiResult<Vec<u32>> {
    let filter = parse_filter(&params.0, FILTERS)?;
    if !filter.any_given {
        return Err(MeiliError::invalid(
            "missing_task_filters",
            format!("Query parameters to filter the tasks to {verb} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."),
        )
        .into());
    }
    let db = s.db();
    Ok(db
        .tasks
        .values()
        .filter(|t| visible(access, t) && filter.matches(t))
        .map(|t| t.uid)
        .collect())
}

fn original_filter(uri: &Uri) -> String {
    format!("?{}", uri.query().unwrap_or_default())
}

pub async fn cancel(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "tasks.cancel", None)?;
    let matched = matched(&s, &access, &params, "cancel")?;
    let details = details(&[
        ("matchedTasks", json!(matched.len())),
        ("canceledTasks", Value::Null),
        ("originalFilter", json!(original_filter(&uri))),
    ]);
    // Meilisearch answers task cancelation and deletion with 200, not 202.
    Ok(super::json(
        StatusCode::OK,
        s.enqueue(None, Op::Cancel { matched }, details, None),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "tasks.delete", None)?;
    let matched = matched(&s, &access, &params, "delete")?;
    let details = details(&[
        ("matchedTasks", json!(matched.len())),
        ("deletedTasks", Value::Null),
        ("originalFilter", json!(original_filter(&uri))),
    ]);
    Ok(super::json(
        StatusCode::OK,
        s.enqueue(None, Op::Delete { matched }, details, None),
    ))
}

pub async fn list_batches(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "tasks.get", None)?;
    let (mut filter, page) = parse_list_query(&params.0)?;
    // On `/batches`, `uids` names batches.
    if let Some(uids) = filter.uids.take() {
        filter.batch_uids = Some(uids);
    }
    let db = s.db();
    let items = db
        .tasks
        .values()
        .filter(|t| filter.matches(t))
        .filter_map(|t| Some((t.batch_uid?, visible(&access, t), t.batch_view()?)))
        .collect();
    super::ok(paginate(items, &page))
}

pub async fn get_batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "tasks.get", None)?;
    let uid = parse_uid(&raw, "invalid_batch_uids", "Batch")?;
    let db = s.db();
    let batch = db
        .tasks
        .values()
        .find(|t| t.batch_uid == Some(uid) && visible(&access, t))
        .and_then(Task::batch_view)
        .ok_or_else(|| batch_not_found(&raw))?;
    super::ok(batch)
}
