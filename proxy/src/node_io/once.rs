//! Writes applied at most once. When a node's answer to a write is lost after the whole
//! request went out (`UpstreamError::Unanswered`), the node may have enqueued it: Miroir looks
//! for its task on the node and adopts it, sends the write again only when the node shows it
//! has none, and otherwise leaves the outcome open (the caller keeps the write in the node's
//! log marked as maybe applied, and the replay looks again before sending it).
//!
//! How the task is recognised: a document write carries Miroir's marker in `customMetadata`
//! (Meilisearch 1.50 keeps it on document tasks only; the client's own value is what the
//! Miroir task shows). Another task is the first one of its type on its index after the one
//! that was the index's newest before the send: the caller holds the index's write order, so
//! no other Miroir write of the index comes between.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use miroir_filters::query;
use serde_json::{json, Value};

use crate::cluster::{Cluster, Runtime};
use crate::upstream::{NodePeer, NodeRequest, NodeResponse, NodeResult, UpstreamError};

const MARKER: &str = "customMetadata";
const MARKER_PREFIX: &str = "miroir:";

/// How long a node may still be registering a request whose connection it lost: a task not
/// found is looked for once more after this before the write is sent again.
const SETTLE: Duration = Duration::from_millis(200);

/// Sends beyond the first, each only after the node showed it has no task of the write.
const RESENDS: usize = 2;

/// The index a document-write path names (`/indexes/{uid}/documents[/…]`), reads excluded.
fn document_write<'p>(method: &str, path: &'p str) -> Option<&'p str> {
    if matches!(method, "GET" | "HEAD") {
        return None;
    }
    let path = path.split('?').next().unwrap_or("");
    let rest = path.strip_prefix("/indexes/")?;
    let (index, tail) = rest.split_once('/')?;
    let doc_route = tail == "documents" || tail.starts_with("documents/");
    (doc_route && tail != "documents/fetch").then_some(index)
}

/// A document write's path with a fresh Miroir marker as its `customMetadata` (replacing the
/// client's, which the Miroir task keeps); any other path as it is.
pub fn tagged<'p>(method: &str, path: &'p str) -> Cow<'p, str> {
    if document_write(method, path).is_none() {
        return Cow::Borrowed(path);
    }
    let marker = format!("{MARKER_PREFIX}{}", uuid::Uuid::new_v4().simple());
    Cow::Owned(query::with_param(path, MARKER, &marker))
}

/// How the task a write may have created is recognised on its node.
enum Trace {
    /// Miroir's marker in the task's `customMetadata`.
    Marker { index: String, marker: String },
    /// The first task of `kind` on `index` newer than the index's newest task before the
    /// send (`None`: the index had none).
    After {
        index: String,
        kind: &'static str,
        newest: Option<u64>,
    },
}

/// The task type a non-document write creates, and its index.
fn task_kind<'r>(req: &'r NodeRequest<'_>) -> Option<(&'static str, Cow<'r, str>)> {
    let path = req.path.split('?').next().unwrap_or("");
    if req.method == "POST" && path == "/indexes" {
        let body = req.body.first()?;
        let uid = serde_json::from_slice::<Value>(body).ok()?["uid"]
            .as_str()?
            .to_owned();
        return Some(("indexCreation", Cow::Owned(uid)));
    }
    let rest = path.strip_prefix("/indexes/")?;
    let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let kind = match (req.method, tail) {
        ("PATCH", "") => "indexUpdate",
        ("DELETE", "") => "indexDeletion",
        ("GET" | "HEAD", _) => return None,
        (_, t) if t == "settings" || t.starts_with("settings/") => "settingsUpdate",
        _ => return None,
    };
    Some((kind, Cow::Borrowed(index)))
}

/// What identifies the write's task; `None` when nothing can (keys, swaps: no task, or no
/// index to look in) or the node did not say what its newest task is.
async fn trace(
    cluster: &Cluster,
    rt: &Runtime,
    node: &NodePeer,
    req: &NodeRequest<'_>,
) -> Option<Trace> {
    if let Some(index) = document_write(req.method, req.path) {
        let marker = query::param(req.path, MARKER)?;
        return marker.starts_with(MARKER_PREFIX).then(|| Trace::Marker {
            index: index.to_owned(),
            marker: marker.into_owned(),
        });
    }
    let (kind, index) = task_kind(req)?;
    let path = format!("/tasks?indexUids={}&limit=1", query::encode(&index));
    let tasks = tasks_on(cluster, rt, node, &path).await?;
    Some(Trace::After {
        index: index.into_owned(),
        kind,
        newest: tasks.first().and_then(|t| t["uid"].as_u64()),
    })
}

/// A node's task list, newest first; `None` when the node gave none.
async fn tasks_on(
    cluster: &Cluster,
    rt: &Runtime,
    node: &NodePeer,
    path: &str,
) -> Option<Vec<Value>> {
    let resp = cluster
        .client
        .send(
            node,
            &NodeRequest::get(path, rt.node_key()),
            rt.config.scatter.node_timeout,
        )
        .await
        .ok()?;
    if resp.status != 200 {
        return None;
    }
    match resp.json()?.get_mut("results")?.take() {
        Value::Array(tasks) => Some(tasks),
        _ => None,
    }
}

/// What the node holds of the write.
enum Found {
    Task(Value),
    Absent,
    Unknown,
}

impl Trace {
    /// The node's tasks to look among.
    fn query(&self) -> String {
        match self {
            Trace::Marker { index, .. } => {
                format!("/tasks?indexUids={}&limit=50", query::encode(index))
            }
            Trace::After { index, kind, .. } => {
                format!(
                    "/tasks?indexUids={}&types={kind}&limit=50",
                    query::encode(index)
                )
            }
        }
    }

    fn matches(&self, task: &Value) -> bool {
        match self {
            Trace::Marker { marker, .. } => task["customMetadata"] == marker.as_str(),
            Trace::After { newest, .. } => task["uid"]
                .as_u64()
                .is_some_and(|uid| newest.is_none_or(|n| uid > n)),
        }
    }
}

async fn find(cluster: &Cluster, rt: &Runtime, node: &NodePeer, trace: &Trace) -> Found {
    let Some(tasks) = tasks_on(cluster, rt, node, &trace.query()).await else {
        return Found::Unknown;
    };
    // Newest first: the last match is the first task after the send.
    match tasks.into_iter().rev().find(|t| trace.matches(t)) {
        Some(task) => Found::Task(task),
        None => Found::Absent,
    }
}

/// The node's task as the answer it would have given when it enqueued it.
fn adopted(task: &Value) -> NodeResponse {
    let summary = json!({
        "taskUid": task["uid"],
        "indexUid": task["indexUid"],
        "status": "enqueued",
        "type": task["type"],
        "enqueuedAt": task["enqueuedAt"],
    });
    NodeResponse {
        status: 202,
        headers: Vec::new(),
        body: Bytes::from(summary.to_string()),
    }
}

/// The answer was lost: the node may have applied the write.
pub fn uncertain(result: &NodeResult) -> bool {
    matches!(
        result,
        Err(UpstreamError::Unanswered(_) | UpstreamError::Timeout)
    )
}

/// Sends a write to `node` so that it is applied at most once: a lost answer is settled by
/// looking for the write's task on the node. With `maybe_applied` (a replay of a write whose
/// first send was left open), the node is asked before anything is sent.
pub async fn send(
    cluster: &Cluster,
    rt: &Runtime,
    node: &NodePeer,
    req: &NodeRequest<'_>,
    maybe_applied: bool,
) -> NodeResult {
    let timeout = rt.config.scatter.node_timeout;
    let trace = trace(cluster, rt, node, req).await;
    // Only a marker outlives the first send: the newest task before it is not known now.
    if let (true, Some(trace @ Trace::Marker { .. })) = (maybe_applied, &trace) {
        if let Found::Task(task) = settle(cluster, rt, node, trace).await {
            return Ok(adopted(&task));
        }
    }
    let mut result = cluster.client.send(node, req, timeout).await;
    let Some(trace) = trace else { return result };
    for _ in 0..RESENDS {
        if !matches!(result, Err(UpstreamError::Unanswered(_))) {
            break;
        }
        match settle(cluster, rt, node, &trace).await {
            Found::Task(task) => {
                log::warn!(
                    target: "miroir::once",
                    "node {}: answer to {} {} lost; adopted its task {}",
                    node.id,
                    req.method,
                    req.path.split('?').next().unwrap_or(""),
                    task["uid"]
                );
                return Ok(adopted(&task));
            }
            Found::Absent => result = cluster.client.send(node, req, timeout).await,
            Found::Unknown => break,
        }
    }
    result
}

/// Looks for the write's task; a task not found is looked for again once the node had time
/// to finish registering a request whose connection it lost.
async fn settle(cluster: &Cluster, rt: &Runtime, node: &NodePeer, trace: &Trace) -> Found {
    match find(cluster, rt, node, trace).await {
        Found::Absent => {
            tokio::time::sleep(SETTLE).await;
            find(cluster, rt, node, trace).await
        }
        found => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_writes_are_tagged_and_the_clients_metadata_replaced() {
        let path = tagged(
            "POST",
            "/indexes/m/documents?primaryKey=id&customMetadata=mine",
        );
        assert_eq!(query::param(&path, "primaryKey").as_deref(), Some("id"));
        let marker = query::param(&path, MARKER).unwrap();
        assert!(marker.starts_with(MARKER_PREFIX) && marker.len() > 20);
        assert_ne!(
            tagged("POST", "/indexes/m/documents/edit"),
            tagged("POST", "/indexes/m/documents/edit")
        );
        for (method, path) in [
            ("POST", "/indexes/m/documents/fetch"),
            ("GET", "/indexes/m/documents"),
            ("POST", "/indexes"),
            ("PATCH", "/indexes/m/settings"),
        ] {
            assert_eq!(tagged(method, path), path, "{method} {path}");
        }
        assert!(document_write("DELETE", "/indexes/m/documents/7").is_some());
    }

    #[test]
    fn other_writes_are_known_by_type_and_index() {
        let body = [Bytes::from_static(br#"{"uid":"movies"}"#)];
        let req = NodeRequest::json("POST", "/indexes", None, &body);
        assert_eq!(
            task_kind(&req).unwrap(),
            ("indexCreation", Cow::Borrowed("movies"))
        );
        let req = NodeRequest::json("PUT", "/indexes/m/settings/stop-words", None, &[]);
        assert_eq!(task_kind(&req).unwrap().0, "settingsUpdate");
        let req = NodeRequest::json("DELETE", "/indexes/m", None, &[]);
        assert_eq!(task_kind(&req).unwrap().0, "indexDeletion");
        let req = NodeRequest::json("POST", "/keys", None, &[]);
        assert!(task_kind(&req).is_none());
    }
}
