//! `GET /tasks/{uid}/documents`: the documents of a document write still waiting on the nodes,
//! gathered from the node tasks behind the Miroir task. Meilisearch serves the route only with
//! the `getTaskDocumentsRoute` experimental feature, which Miroir sets on every node alike, so
//! one node's features decide.

use std::collections::HashSet;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden::SHARD_FIELD;
use miroir_tasks::{TaskRecord, TaskUid};
use serde_json::Value;

use super::registry::blocking;
use super::view::view;
use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::upstream::NodeRequest;

pub async fn task_documents(shared: &Shared, rt: &Runtime, inc: &Incoming, raw_uid: &str) -> Reply {
    match documents(shared, rt, inc, raw_uid).await {
        Ok(reply) => reply,
        Err(e) => Reply::error(&e),
    }
}

async fn documents(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    raw_uid: &str,
) -> Result<Reply, MiroirError> {
    let access = match shared.authorize(rt, inc, "tasks.get").await {
        Ok(a) => a,
        Err(refused) => return Ok(refused),
    };
    // As on a node: the feature is checked before the uid is read.
    let features = node_io::any(&shared.cluster, rt, "/experimental-features", rt.node_key())
        .await?
        .json()
        .unwrap_or(Value::Null);
    if features["getTaskDocumentsRoute"] != Value::Bool(true) {
        return Err(MiroirError::new(
            Code::FeatureNotEnabled,
            "Getting the documents of an enqueued task requires enabling the `get task documents route` experimental feature. See https://github.com/orgs/meilisearch/discussions/808",
        ));
    }
    let Ok(uid) = raw_uid.parse::<u64>() else {
        return Err(MiroirError::new(
            Code::InvalidTaskUids,
            format!("Task uid `{raw_uid}` is invalid. It should only contain numeric characters."),
        ));
    };
    let record = match blocking(&shared.tasks, move |s| s.get(TaskUid(uid))).await? {
        Some(r) if access.task_visible(r.index_uid.as_deref(), &r.kind) => r,
        _ => {
            return Err(MiroirError::new(
                Code::TaskNotFound,
                format!("Task `{uid}` not found."),
            ))
        }
    };
    let no_documents = || {
        MiroirError::new(
            Code::TaskFileNotFound,
            format!("Task `{uid}` does not contain any documents. Only `documentAdditionOrUpdate` tasks with the statuses `enqueued` or `processing` contain documents"),
        )
    };
    if record.kind != "documentAdditionOrUpdate" {
        return Err(no_documents());
    }
    let current = view(shared, rt, &record, inc.auth.as_deref()).await?;
    if !matches!(current["status"].as_str(), Some("enqueued" | "processing")) {
        return Err(no_documents());
    }
    let body = gather(shared, rt, &record).await;
    if body.is_empty() {
        // Every node finished its part meanwhile: the task no longer holds documents.
        return Err(no_documents());
    }
    Ok(Reply::raw(200, body).with_header("Content-Type", "application/x-ndjson".into()))
}

/// The documents the node tasks still hold, each once (replicas hold the same copy), without
/// the shard field, written one after another as a node writes them. Node by node, so a
/// document's position follows its node, not the client's payload.
async fn gather(shared: &Shared, rt: &Runtime, record: &TaskRecord) -> Vec<u8> {
    let timeout = rt.config.scatter.node_timeout;
    let asks = record.node_tasks.iter().filter_map(|part| {
        let uid = part.task_uid?;
        let node = rt.nodes.iter().find(|n| n.id.as_str() == part.node)?;
        Some(async move {
            let path = format!("/tasks/{uid}/documents");
            shared
                .cluster
                .client
                .send(node, &NodeRequest::get(&path, rt.node_key()), timeout)
                .await
                .ok()
                .filter(|resp| resp.status == 200)
        })
    });
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for resp in futures::future::join_all(asks).await.into_iter().flatten() {
        let docs = serde_json::Deserializer::from_slice(&resp.body).into_iter::<Value>();
        for mut doc in docs.map_while(Result::ok) {
            if let Some(obj) = doc.as_object_mut() {
                obj.remove(SHARD_FIELD);
            }
            let text = doc.to_string();
            if seen.insert(text.clone()) {
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}
