//! Broadcast: one client request applied to every node, answered as one Meilisearch response.
//! Task-creating routes become one Miroir task over the node tasks; synchronous routes
//! (keys, experimental features) answer as one node would when every node agrees.

use std::time::Duration;

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_handoff::{Hint, Seq};
use miroir_tasks::{Created, NewTask, NodeTask, Replay};
use serde_json::{json, Value};

use crate::state::{Runtime, Shared};
use crate::upstream::{NodeRequest, NodeResponse, UpstreamError};
use crate::{handoff, index_lifecycle, settings_sync, shard_field};

/// A client request Miroir handles itself, with its body read and credentials translated.
pub struct Incoming {
    pub method: String,
    /// Path and query string.
    pub path: String,
    /// The bearer token to present to nodes.
    pub auth: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub request_id: String,
    /// The `Idempotency-Key` request header.
    pub idempotency_key: Option<String>,
    /// When Miroir received the request (RFC 3339): a task's `enqueuedAt`, which must not be
    /// later than its nodes' `startedAt`.
    pub received_at: String,
    /// The route's name in the route table.
    pub route: &'static str,
    /// The index the route names, if any.
    pub index_uid: Option<String>,
}

impl Incoming {
    pub fn node_request<'a>(&'a self, body: &'a [Bytes]) -> NodeRequest<'a> {
        NodeRequest {
            method: &self.method,
            path: &self.path,
            auth: self.auth.as_deref(),
            content_type: self.content_type.as_deref(),
            body,
            request_id: Some(&self.request_id),
        }
    }
}

/// A complete answer to the client.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The body, unless `parts` holds it ([`Reply::bytes`] reads either).
    pub body: Vec<u8>,
    /// A body in pieces, `body` then empty: a merged search answer, mostly slices of the node
    /// answers, written without being copied together (chunked when large).
    pub parts: Option<Vec<Bytes>>,
    /// Extra response headers (for example `X-Miroir-Degraded`).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn raw(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            body,
            parts: None,
            headers: Vec::new(),
        }
    }

    /// A body in pieces, sent in order.
    pub fn parts(status: u16, parts: Vec<Bytes>) -> Self {
        Self {
            status,
            body: Vec::new(),
            parts: Some(parts),
            headers: Vec::new(),
        }
    }

    /// The whole body, copied together when it is in pieces.
    pub fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.parts {
            Some(parts) => std::borrow::Cow::Owned(parts.concat()),
            None => std::borrow::Cow::Borrowed(&self.body),
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Self::raw(status, value.to_string().into_bytes())
    }

    pub fn error(err: &MiroirError) -> Self {
        Self::raw(err.status(), err.to_body())
    }

    pub fn relay(resp: &NodeResponse) -> Self {
        Self::raw(resp.status, resp.body.to_vec())
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

pub type NodeResult = Result<NodeResponse, UpstreamError>;

/// Sends `req` to every node of `rt` in parallel.
pub async fn to_all(
    shared: &Shared,
    rt: &Runtime,
    req: NodeRequest<'_>,
    timeout: Duration,
) -> Vec<NodeResult> {
    let sends = rt
        .nodes
        .iter()
        .map(|node| shared.client.send(node, &req, timeout));
    futures::future::join_all(sends).await
}

/// A read any node can answer: the first answer that is not a server error. The next healthy
/// node is asked too when one fails, or is slower than the hedge delay (a hanging node must
/// not hold the read until the node timeout). `Err` when no node answered.
pub async fn read_any(
    shared: &Shared,
    rt: &Runtime,
    path: &str,
    auth: Option<&str>,
) -> Result<NodeResponse, Reply> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let hedge_after = rt
        .config
        .scatter
        .hedge_after_floor
        .max(Duration::from_millis(50));
    let req = NodeRequest::get(path, auth);
    let send = |i: usize| {
        let req = &req;
        async move {
            let result = shared
                .client
                .send(&rt.nodes[i], req, rt.config.scatter.node_timeout)
                .await;
            shared.observe(
                rt,
                &rt.nodes[i].id,
                matches!(&result, Ok(r) if r.judged()),
                false,
            );
            result
        }
    };
    let mut tried = Vec::new();
    let mut pending = FuturesUnordered::new();
    loop {
        let next = shared.pick_node(rt, &tried);
        if let Some(i) = next {
            tried.push(i);
            pending.push(send(i));
        } else if pending.is_empty() {
            break;
        }
        let more = next.is_some() && tried.len() < rt.nodes.len();
        tokio::select! {
            answer = pending.next() => match answer {
                Some(Ok(resp)) if resp.judged() => return Ok(resp),
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep(hedge_after), if more => {}
        }
    }
    Err(Reply::error(&MiroirError::new(
        Code::NoNodeAvailable,
        "No Meilisearch node answered.",
    )))
}

/// The error JSON a node's failure stands for in a task.
pub fn failure_json(result: &NodeResult) -> Value {
    match result {
        Ok(resp) => resp
            .json()
            .filter(|v| v.get("code").is_some())
            .unwrap_or_else(|| {
                MiroirError::new(
                    Code::NodeUnreachable,
                    format!("The node answered HTTP {}.", resp.status),
                )
                .to_json()
            }),
        Err(e) => MiroirError::new(
            Code::NodeUnreachable,
            format!("The node did not answer: {e}."),
        )
        .to_json(),
    }
}

/// The node's task uid when it accepted the request (202).
pub fn accepted_task_uid(result: &NodeResult) -> Option<u64> {
    match result {
        Ok(resp) if resp.status == 202 => resp.json().and_then(|v| v["taskUid"].as_u64()),
        _ => None,
    }
}

/// No answer, or a server error: the node did not judge the request, so it missed it.
pub fn missed(result: &NodeResult) -> bool {
    result.as_ref().map_or(true, |resp| !resp.judged())
}

/// `POST /keys` without a `uid` would give each node its own random uid, hence a different
/// key string per node; Miroir picks the uid so every node derives the same key.
fn with_key_uid(inc: &Incoming) -> Bytes {
    if inc.method != "POST" || inc.path.split('?').next() != Some("/keys") {
        return inc.body.clone();
    }
    match serde_json::from_slice::<Value>(&inc.body) {
        Ok(Value::Object(mut obj)) if !obj.contains_key("uid") => {
            obj.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            Bytes::from(Value::Object(obj).to_string())
        }
        // Anything else is the nodes' to judge (and reject) identically.
        _ => inc.body.clone(),
    }
}

pub async fn broadcast(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    let body = [shard_field::rewrite_update(inc.route, &with_key_uid(inc))];
    let chunks: &[Bytes] = if body[0].is_empty() { &[] } else { &body };
    let (results, hinted) = match (handoff::hinted_route(inc.route), &inc.index_uid) {
        (true, Some(index)) => send_or_hint(shared, rt, inc, index, chunks).await,
        _ => {
            let results = to_all(
                shared,
                rt,
                inc.node_request(chunks),
                rt.config.scatter.node_timeout,
            )
            .await;
            (results, Vec::new())
        }
    };
    let lost: Vec<usize> = (0..rt.nodes.len())
        .filter(|i| {
            handoff::hinted_route(inc.route)
                && missed(&results[*i])
                && !hinted.iter().any(|(h, _)| h == i)
        })
        .collect();
    let reply = broadcast_outcome(shared, rt, inc, &body, results, &hinted).await;
    if reply.status == 202 {
        for i in lost {
            handoff::lost(shared, &rt.nodes[i].id);
        }
    } else {
        // Not acknowledged: nothing of it is replayed later.
        let hints: Vec<_> = hinted
            .iter()
            .map(|(i, seq)| (rt.nodes[*i].id.clone(), *seq))
            .collect();
        handoff::forget(shared, &hints);
    }
    reply
}

/// Index writes a node may miss and get later as a hint: document deletions and edits, and
/// settings. Index creation, deletion and swaps are not (see `index_lifecycle`).
async fn send_or_hint(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    chunks: &[Bytes],
) -> (Vec<NodeResult>, Vec<(usize, Seq)>) {
    let order = shared.write_order(index_uid);
    let _turn = order.lock().await;
    let timeout = rt.config.scatter.node_timeout;
    let req = inc.node_request(chunks);
    let sends = rt.nodes.iter().map(|node| {
        let req = &req;
        async move {
            if handoff::must_queue(shared, &node.id) {
                return Err(UpstreamError::Connect(
                    "queued behind earlier writes".into(),
                ));
            }
            let result = shared.client.send(node, req, timeout).await;
            let answered = !missed(&result);
            shared.observe(rt, &node.id, answered, false);
            result
        }
    });
    let results = futures::future::join_all(sends).await;
    let mut hinted = Vec::new();
    for (i, result) in results.iter().enumerate() {
        if !missed(result) {
            continue;
        }
        let hint = Hint {
            index_uid: index_uid.to_owned(),
            method: inc.method.clone(),
            path: inc.path.clone(),
            content_type: inc.content_type.clone(),
            body: chunks.concat(),
        };
        if let Some(seq) = handoff::hint(shared, &rt.nodes[i].id, &hint) {
            hinted.push((i, seq));
        }
    }
    (results, hinted)
}

async fn broadcast_outcome(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    body: &[Bytes; 1],
    results: Vec<NodeResult>,
    hinted: &[(usize, Seq)],
) -> Reply {
    forget_index_state(shared, inc);
    let accepted = results
        .iter()
        .filter(|r| accepted_task_uid(r).is_some())
        .count();
    if accepted > 0 {
        if let (true, Some(index)) = (shard_field::resets(inc.route), &inc.index_uid) {
            shard_field::restore(shared, rt, inc, index).await;
        }
        // A settings update carrying the filterable attributes now includes the shard field
        // on every node that accepted it: later writes must not re-send it, or their update
        // would land after (and replace) the client's queued one.
        if accepted == results.len() && shard_field::sets_filterable(inc.route, &inc.body) {
            if let Some(index) = &inc.index_uid {
                shared.shard_filterable.insert(index.clone(), ());
            }
        }
        // A new index gets `_miroir_shard` filterable before any document can arrive: the
        // settings task queues right behind the creation on every node. A creation some
        // node refused is undone instead, before the client hears of the (failed) task.
        if inc.route == "indexes.create" {
            let created = serde_json::from_slice::<Value>(&inc.body).ok();
            if let Some(uid) = created.as_ref().and_then(|v| v["uid"].as_str()) {
                if accepted == results.len() {
                    shard_field::after_creation(shared, rt, inc, uid).await;
                } else {
                    shared.shard_filterable.remove(uid);
                }
            }
            index_lifecycle::after_creation(shared, rt, inc, &results).await;
        }
        index_lifecycle::after_change(shared, rt, inc, &body[0], &results);
        settings_sync::after_update(shared, rt, inc, &results);
        return record_task(shared, rt, inc, &results, hinted).await;
    }
    let ok = |r: &&NodeResult| {
        r.as_ref()
            .is_ok_and(|resp| (200..300).contains(&resp.status))
    };
    let oks = results.iter().filter(ok).count();
    if oks == results.len() {
        // Every node applied it synchronously: they agree, answer as one of them.
        return results.iter().find_map(|r| r.as_ref().ok()).map_or_else(
            || {
                Reply::error(&MiroirError::new(
                    Code::NoNodeAvailable,
                    "No Meilisearch node is configured.",
                ))
            },
            Reply::relay,
        );
    }
    if oks > 0 {
        let missed: Vec<&str> = rt
            .nodes
            .iter()
            .zip(&results)
            .filter(|(_, r)| !ok(r))
            .map(|(n, _)| n.id.as_str())
            .collect();
        log::warn!(
            target: "miroir::broadcast",
            "request {}: {} {} applied on some nodes but not on {}",
            inc.request_id,
            inc.method,
            inc.path.split('?').next().unwrap_or(""),
            missed.join(", ")
        );
        return Reply::error(&MiroirError::new(
            Code::NoQuorum,
            format!(
                "The change was applied on some nodes but not on {}; retry it.",
                missed.join(", ")
            ),
        ));
    }
    // Nobody accepted: a client error (or 501) every node agrees on is the answer.
    if let Some(resp) = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .find(|r| r.judged())
    {
        return Reply::relay(resp);
    }
    Reply::error(&MiroirError::new(
        Code::NoNodeAvailable,
        "No Meilisearch node accepted the request.",
    ))
}

/// Cached per-index knowledge a broadcast may have made stale.
fn forget_index_state(shared: &Shared, inc: &Incoming) {
    match &inc.index_uid {
        Some(index) => {
            shared.contexts.remove(index);
            if inc.method == "DELETE" && inc.route == "index.delete" {
                shared.shard_filterable.remove(index);
            }
        }
        // Swaps and other global changes: forget everything.
        None => {
            shared.contexts.clear();
            shared.shard_filterable.clear();
        }
    }
}

/// Records one Miroir task over the node tasks and answers Meilisearch's 202 summary.
async fn record_task(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    results: &[NodeResult],
    hinted: &[(usize, Seq)],
) -> Reply {
    let first = results.iter().find_map(|r| {
        accepted_task_uid(r)
            .and(r.as_ref().ok())
            .and_then(NodeResponse::json)
    });
    let first = first.unwrap_or(Value::Null);
    let node_tasks: Vec<NodeTask> = rt
        .nodes
        .iter()
        .zip(results)
        .enumerate()
        // A node that gets the write as a hint later has no part of its own yet.
        .filter(|(i, _)| !hinted.iter().any(|(h, _)| h == i))
        .map(|(_, (node, r))| match accepted_task_uid(r) {
            Some(uid) => NodeTask {
                node: node.id.to_string(),
                task_uid: Some(uid),
                error: None,
            },
            None => NodeTask {
                node: node.id.to_string(),
                task_uid: None,
                error: Some(failure_json(r)),
            },
        })
        .collect();
    let task = NewTask {
        index_uid: first["indexUid"].as_str().map(str::to_owned),
        kind: first["type"].as_str().unwrap_or("unknown").to_owned(),
        enqueued_at: inc.received_at.clone(),
        node_tasks,
        custom_metadata: first["customMetadata"].as_str().map(str::to_owned),
        details: None,
    };
    match crate::tasks::create(shared, task, None).await {
        Ok(Created::New(mut record)) => {
            if !hinted.is_empty() {
                record.replays = hinted
                    .iter()
                    .map(|(i, seq)| Replay {
                        node: rt.nodes[*i].id.to_string(),
                        seq: seq.0,
                    })
                    .collect();
                if let Err(e) = shared.tasks.update(&record) {
                    log::error!(target: "miroir::broadcast", "task {}: could not record its pending replays: {e}", record.uid.0);
                }
            }
            Reply::json(202, &crate::tasks::summary(&record))
        }
        Ok(Created::Replayed(record)) => Reply::json(202, &crate::tasks::summary(&record)),
        Ok(Created::KeyReused { .. }) => Reply::error(&MiroirError::new(
            Code::Internal,
            "unexpected idempotency state",
        )),
        Err(e) => Reply::error(&e),
    }
}
