//! The shard-routed routes: document writes split by shard, deletes by id, and reading one
//! document from a replica of its shard. Splitting is pure (`miroir_filters::write`); this
//! module sends the parts, judges the quorum and records one Miroir task.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use miroir_conf::WriteQuorum;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::{shard_for_key, GroupId, NodeId, NodeIdx, ShardId};
use miroir_filters::write::{self, PayloadFormat, SplitInput};
use miroir_handoff::{Hint, Seq};
use miroir_tasks::{Created, Idempotency, NewTask, NodeTask, Replay, TaskUid};
use serde_json::{json, Value};

use crate::broadcast::{
    self, accepted_task_uid, failure_json, missed, Incoming, NodeResult, Reply,
};
use crate::handoff;
use crate::state::Runtime;
use crate::state::Shared;
use crate::upstream::NodeRequest;

pub const DEGRADED: &str = "X-Miroir-Degraded";
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// One node's part of a write.
struct Part {
    node: NodeIdx,
    path: String,
    body: Vec<Bytes>,
    content_type: Option<String>,
}

/// The outcome of handing the parts to their nodes.
struct Sent {
    parts: Vec<(NodeIdx, NodeResult)>,
    /// Parts kept for replay (hinted handoff) instead of reaching their node.
    hinted: Vec<(NodeIdx, Seq)>,
    /// Parts that neither reached their node nor could be kept for it.
    lost: Vec<NodeIdx>,
}

impl Sent {
    fn accepted(&self, node: NodeIdx) -> bool {
        self.parts
            .iter()
            .any(|(n, r)| *n == node && accepted_task_uid(r).is_some())
    }

    fn hinted(&self, node: NodeIdx) -> bool {
        self.hinted.iter().any(|(n, _)| *n == node)
    }
}

/// Per touched shard: did some group reach the quorum, and which groups missed replicas.
struct QuorumReport {
    failed: Vec<ShardId>,
    degraded: BTreeMap<ShardId, BTreeSet<GroupId>>,
}

fn judge(rt: &Runtime, shards: &BTreeSet<ShardId>, sent: &Sent) -> QuorumReport {
    judge_with(rt, shards, |n| sent.accepted(n), |n| sent.hinted(n))
}

/// The quorum judgement over any notion of "accepted" and "hinted" (actual or hoped for).
fn judge_with(
    rt: &Runtime,
    shards: &BTreeSet<ShardId>,
    accepted: impl Fn(NodeIdx) -> bool,
    hinted: impl Fn(NodeIdx) -> bool,
) -> QuorumReport {
    let p = rt.placement();
    let quorum: WriteQuorum = rt.config.write_quorum;
    let need = quorum.required(rt.config.replication_factor);
    let mut report = QuorumReport {
        failed: Vec::new(),
        degraded: BTreeMap::new(),
    };
    for &shard in shards {
        let mut reached = false;
        for g in 0..p.groups() {
            let group = GroupId(g);
            let replicas = p.replicas(group, shard);
            let acks = replicas.iter().filter(|&&n| accepted(n)).count() as u32;
            // A durably kept hint stands in for its replica (a sloppy quorum), but never
            // alone: some replica must hold the write itself.
            let hints = replicas.iter().filter(|&&n| hinted(n)).count() as u32;
            reached |= acks >= 1 && acks + hints >= need;
            if (acks as usize) < replicas.len() {
                report.degraded.entry(shard).or_default().insert(group);
            }
        }
        if !reached {
            report.failed.push(shard);
        }
    }
    report
}

fn degraded_header(report: &QuorumReport) -> Option<String> {
    if report.degraded.is_empty() {
        return None;
    }
    let shards: Vec<String> = report.degraded.keys().map(|s| s.0.to_string()).collect();
    let groups: BTreeSet<u32> = report.degraded.values().flatten().map(|g| g.0).collect();
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    Some(format!(
        "shards={};groups={}",
        shards.join(","),
        groups.join(",")
    ))
}

fn shard_list(shards: &[ShardId]) -> String {
    shards
        .iter()
        .map(|s| s.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Hands each part to its node, in the index's write order: sent, or kept as a hint when the
/// node is down, behind on older writes, or misses it now (no answer, 5xx).
async fn send_parts(
    shared: &Shared,
    rt: &Runtime,
    (inc, auth): (&Incoming, Option<&str>),
    (index_uid, shards): (&str, &BTreeSet<ShardId>),
    method: &str,
    parts: Vec<Part>,
) -> Sent {
    let order = shared.write_order(index_uid);
    let _turn = order.lock().await;
    let timeout = rt.config.scatter.node_timeout;
    let (queued, direct): (Vec<&Part>, Vec<&Part>) = parts
        .iter()
        .partition(|part| handoff::must_queue(shared, &rt.nodes[part.node.index()].id));
    let mut sent = Sent {
        parts: Vec::with_capacity(direct.len()),
        hinted: Vec::new(),
        lost: Vec::new(),
    };
    for part in queued {
        keep_for_later(shared, rt, index_uid, method, part, &mut sent);
    }
    // A write that cannot reach its quorum even if every reachable node accepts it (replicas
    // down and their hint queues full) is refused before any node is touched.
    let reachable: Vec<NodeIdx> = direct.iter().map(|p| p.node).collect();
    if !judge_with(rt, shards, |n| reachable.contains(&n), |n| sent.hinted(n))
        .failed
        .is_empty()
    {
        return sent;
    }
    let sends = direct.iter().map(|part| {
        let req = NodeRequest {
            method,
            path: &part.path,
            auth,
            content_type: part.content_type.as_deref(),
            body: &part.body,
            request_id: Some(&inc.request_id),
        };
        let node = &rt.nodes[part.node.index()];
        async move { (*part, shared.client.send(node, &req, timeout).await) }
    });
    for (part, result) in futures::future::join_all(sends).await {
        let answered = !missed(&result);
        shared.observe(rt, &rt.nodes[part.node.index()].id, answered, false);
        if !answered {
            keep_for_later(shared, rt, index_uid, method, part, &mut sent);
        }
        sent.parts.push((part.node, result));
    }
    sent
}

/// Keeps a part its node missed as a hint, replayed when the node is back.
fn keep_for_later(
    shared: &Shared,
    rt: &Runtime,
    index_uid: &str,
    method: &str,
    part: &Part,
    sent: &mut Sent,
) {
    let hint = Hint {
        index_uid: index_uid.to_owned(),
        method: method.to_owned(),
        path: part.path.clone(),
        content_type: part.content_type.clone(),
        body: part.body.concat(),
    };
    match handoff::hint(shared, &rt.nodes[part.node.index()].id, &hint) {
        Some(seq) => sent.hinted.push((part.node, seq)),
        None => sent.lost.push(part.node),
    }
}

/// What a write was, for recording its task.
struct Write<'a> {
    inc: &'a Incoming,
    index_uid: &'a str,
    /// The shards the write touched.
    shards: &'a BTreeSet<ShardId>,
    /// Details Miroir knows itself.
    details: Value,
    idempotency: Option<Idempotency>,
}

/// Turns the parts' answers into the client's answer: a relayed refusal, a quorum failure, or
/// one recorded Miroir task.
async fn conclude(shared: &Shared, rt: &Runtime, write: Write<'_>, sent: Sent) -> Reply {
    let hints: Vec<(NodeId, Seq)> = sent
        .hinted
        .iter()
        .map(|(n, seq)| (rt.nodes[n.index()].id.clone(), *seq))
        .collect();
    let reply = judge_and_record(shared, rt, write, &sent).await;
    if reply.status == 202 {
        for n in &sent.lost {
            handoff::lost(shared, &rt.nodes[n.index()].id);
        }
    } else {
        // Not acknowledged: the client may not even be allowed to write; nothing is replayed.
        handoff::forget(shared, &hints);
    }
    reply
}

async fn judge_and_record(shared: &Shared, rt: &Runtime, write: Write<'_>, sent: &Sent) -> Reply {
    let Write {
        inc,
        index_uid,
        shards,
        details,
        idempotency,
    } = write;
    let received_at = inc.received_at.as_str();
    if !sent
        .parts
        .iter()
        .any(|(_, r)| accepted_task_uid(r).is_some())
    {
        // Nobody accepted: a refusal every node shares (auth, validation) is the answer.
        if let Some(resp) = sent
            .parts
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .find(|r| (400..500).contains(&r.status))
        {
            return Reply::relay(resp);
        }
    }
    let report = judge(rt, shards, sent);
    if !report.failed.is_empty() {
        return Reply::error(&MiroirError::new(
            Code::NoQuorum,
            format!(
                "The write did not reach its quorum for shards {}; it may have been applied on some of their replicas.",
                shard_list(&report.failed)
            ),
        ));
    }
    let degraded = degraded_header(&report);
    if let Some(d) = &degraded {
        log::warn!(target: "miroir::write", "degraded write to `{index_uid}`: {d}");
    }
    let first = sent.parts.iter().find_map(|(_, r)| {
        accepted_task_uid(r)
            .and(r.as_ref().ok())
            .and_then(|r| r.json())
    });
    let first = first.unwrap_or(Value::Null);
    let node_tasks = sent
        .parts
        .iter()
        .filter_map(|(n, r)| {
            // Replicas that missed the write do not fail the task: the quorum holds it.
            accepted_task_uid(r).map(|uid| NodeTask {
                node: rt.nodes[n.index()].id.to_string(),
                task_uid: Some(uid),
                error: None,
            })
        })
        .collect();
    let task = NewTask {
        index_uid: Some(index_uid.to_owned()),
        kind: first["type"]
            .as_str()
            .unwrap_or("documentAdditionOrUpdate")
            .to_owned(),
        enqueued_at: received_at.to_owned(),
        node_tasks,
        custom_metadata: first["customMetadata"].as_str().map(str::to_owned),
        details: Some(details),
    };
    let reply = match crate::tasks::create(shared, task, idempotency).await {
        Ok(Created::New(mut r)) => {
            r.replays = sent
                .hinted
                .iter()
                .map(|(n, seq)| Replay {
                    node: rt.nodes[n.index()].id.to_string(),
                    seq: seq.0,
                })
                .collect();
            if !r.replays.is_empty() {
                if let Err(e) = shared.tasks.update(&r) {
                    log::error!(target: "miroir::write", "task {}: could not record its pending replays: {e}", r.uid.0);
                }
            }
            Reply::json(202, &crate::tasks::summary(&r))
        }
        Ok(Created::Replayed(r)) => Reply::json(202, &crate::tasks::summary(&r)),
        Ok(Created::KeyReused { original }) => return key_reused(original),
        Err(e) => return Reply::error(&e),
    };
    match degraded {
        Some(d) => reply.with_header(DEGRADED, d),
        None => reply,
    }
}

fn key_reused(original: TaskUid) -> Reply {
    Reply::error(&MiroirError::new(
        Code::IdempotencyKeyReused,
        format!(
            "This Idempotency-Key was used for task {} with a different request.",
            original.0
        ),
    ))
}

/// The request's query string with `primaryKey` set to `pk` (nodes must not infer their own).
fn query_with_primary_key(path: &str, pk: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("primaryKey"))
        .map(str::to_owned)
        .collect();
    pairs.push(format!("primaryKey={}", percent_encode(pk)));
    format!("{base}?{}", pairs.join("&"))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query_param<'a>(path: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            miroir_filters::routes::percent_decode(v).unwrap_or(std::borrow::Cow::Borrowed(v))
        })
    })
}

/// What the nodes know of an index before a write.
struct IndexState {
    exists: bool,
    primary_key: Option<String>,
}

/// Reads the index with Miroir's own credential (the client's key may only allow writes).
async fn index_state(shared: &Shared, rt: &Runtime, index_uid: &str) -> Result<IndexState, Reply> {
    let path = format!("/indexes/{index_uid}");
    let resp = broadcast::read_any(shared, rt, &path, rt.node_key()).await?;
    match resp.status {
        200 => Ok(IndexState {
            exists: true,
            primary_key: resp
                .json()
                .and_then(|v| v["primaryKey"].as_str().map(str::to_owned)),
        }),
        404 => Ok(IndexState {
            exists: false,
            primary_key: None,
        }),
        _ => Err(Reply::relay(&resp)),
    }
}

/// Nodes that received no document of a write that set the primary key must still know the
/// index and its key, or reads landing on them would disagree. Sent once the other nodes
/// accepted the write (the client is then known to be allowed to create the index); their
/// tasks become part of the write's task, and a node that misses it gets it as a hint.
async fn primary_key_elsewhere(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    exists: bool,
    primary_key: &str,
    sent: &mut Sent,
) {
    let p = rt.placement();
    let idle: Vec<NodeIdx> = p
        .nodes()
        .iter()
        .filter_map(|id| p.index_of(id.as_str()))
        .filter(|n| !sent.parts.iter().any(|(m, _)| m == n) && !sent.hinted(*n))
        .collect();
    let (method, path, body) = if exists {
        (
            "PATCH",
            format!("/indexes/{index_uid}"),
            json!({ "primaryKey": primary_key }),
        )
    } else {
        (
            "POST",
            "/indexes".to_owned(),
            json!({ "uid": index_uid, "primaryKey": primary_key }),
        )
    };
    let body = Bytes::from(body.to_string());
    let parts = idle
        .into_iter()
        .map(|node| Part {
            node,
            path: path.clone(),
            body: vec![body.clone()],
            content_type: Some("application/json".into()),
        })
        .collect();
    // Miroir's own credential; no shard quorum: these nodes hold none of the documents.
    let fixups = send_parts(
        shared,
        rt,
        (inc, rt.node_key()),
        (index_uid, &BTreeSet::new()),
        method,
        parts,
    )
    .await;
    sent.parts.extend(fixups.parts);
    sent.hinted.extend(fixups.hinted);
    sent.lost.extend(fixups.lost);
}

/// A digest of what makes a request the same request, for idempotency keys.
fn request_digest(inc: &Incoming) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(inc.method.as_bytes());
    h.update(b"\0");
    h.update(inc.path.as_bytes());
    h.update(b"\0");
    h.update(&inc.body);
    format!("{:032x}", h.digest128())
}

/// `POST`/`PUT /indexes/{uid}/documents`.
pub async fn documents(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let idempotency = inc.idempotency_key.as_ref().map(|key| Idempotency {
        key: key.clone(),
        request_digest: request_digest(inc),
    });
    if let Some(idem) = &idempotency {
        let key = idem.key.clone();
        match shared.tasks.idempotency(&key) {
            Ok(Some((digest, uid))) if digest == idem.request_digest => {
                // The original request was authorized; this one must be too.
                if let Err(refused) =
                    crate::access::authorize_on(shared, rt, inc, "documents.add", index_uid).await
                {
                    return refused;
                }
                return match shared.tasks.get(uid) {
                    Ok(Some(record)) => Reply::json(202, &crate::tasks::summary(&record)),
                    _ => key_reused(uid),
                };
            }
            Ok(Some((_, uid))) => return key_reused(uid),
            Ok(None) => {}
            Err(e) => {
                return Reply::error(&MiroirError::new(
                    Code::Internal,
                    format!("task store: {e}"),
                ))
            }
        }
    }

    let csv_delimiter = match query_param(&inc.path, "csvDelimiter") {
        Some(d) => match write::csv_delimiter(&d) {
            Ok(d) => Some(d),
            Err(e) => return Reply::error(&e),
        },
        None => None,
    };
    let format = match PayloadFormat::from_request(
        inc.content_type.as_deref().map(str::as_bytes),
        csv_delimiter,
    ) {
        Ok(f) => f,
        Err(e) => return Reply::error(&e),
    };
    let index = match index_state(shared, rt, index_uid).await {
        Ok(state) => state,
        Err(reply) => return reply,
    };
    let index_pk = index.primary_key;
    let param_pk = query_param(&inc.path, "primaryKey");
    let split = match write::split(SplitInput {
        body: &inc.body,
        format,
        index_primary_key: index_pk.as_deref(),
        param_primary_key: param_pk.as_deref(),
        shards: rt.config.shards,
    }) {
        Ok(s) => s,
        Err(e) => return Reply::error(&e),
    };

    // An existing index gets the shard field before the documents. A new one is created by
    // the write itself, and only once the nodes accepted it from this client (Miroir's own
    // credential must not create indexes for a client that may not).
    if index.exists {
        crate::shard_field::ensure(shared, rt, inc, index_uid).await;
    }
    let p = rt.placement();
    let path = query_with_primary_key(&inc.path, &split.primary_key);
    let mut touched = BTreeSet::new();
    let mut parts = Vec::new();
    for (i, _) in rt.nodes.iter().enumerate() {
        let Some(idx) = p.index_of(rt.nodes[i].id.as_str()) else {
            continue;
        };
        let owned = p.shards_of(idx);
        if split.node_docs(owned) == 0 {
            continue;
        }
        touched.extend(owned.iter().filter(|s| split.shard_docs(**s) > 0));
        let (body, _len) = split.node_body(owned);
        parts.push(Part {
            node: idx,
            path: path.clone(),
            body,
            content_type: Some(format.content_type().to_owned()),
        });
    }
    if parts.is_empty() {
        // An empty batch: Meilisearch still records a task; any node can.
        let Some(i) = shared.pick_node(rt, &[]) else {
            return Reply::error(&MiroirError::new(
                Code::NoNodeAvailable,
                "No Meilisearch node is available.",
            ));
        };
        let Some(idx) = p.index_of(rt.nodes[i].id.as_str()) else {
            return Reply::error(&MiroirError::new(
                Code::Internal,
                "node missing from the placement",
            ));
        };
        parts.push(Part {
            node: idx,
            path: path.clone(),
            body: vec![inc.body.clone()],
            content_type: inc.content_type.clone(),
        });
    }
    let mut sent = send_parts(
        shared,
        rt,
        (inc, inc.auth.as_deref()),
        (index_uid, &touched),
        &inc.method,
        parts,
    )
    .await;
    if index_pk.is_none()
        && sent
            .parts
            .iter()
            .any(|(_, r)| accepted_task_uid(r).is_some())
    {
        primary_key_elsewhere(
            shared,
            rt,
            inc,
            index_uid,
            index.exists,
            &split.primary_key,
            &mut sent,
        )
        .await;
    }
    let details = json!({ "receivedDocuments": split.documents, "indexedDocuments": null });
    let reply = conclude(
        shared,
        rt,
        Write {
            inc,
            index_uid,
            shards: &touched,
            details,
            idempotency,
        },
        sent,
    )
    .await;
    if !index.exists && reply.status == 202 {
        crate::shard_field::ensure(shared, rt, inc, index_uid).await;
    }
    reply
}

/// `POST /indexes/{uid}/documents/delete-batch`.
pub async fn delete_batch(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let by_shard = match write::split_ids(&inc.body, rt.config.shards) {
        Ok(m) => m,
        Err(e) => return Reply::error(&e),
    };
    let provided: usize = by_shard.values().map(Vec::len).sum();
    let p = rt.placement();
    let touched: BTreeSet<ShardId> = by_shard.keys().copied().collect();
    let mut parts = Vec::new();
    for node in p.nodes() {
        let Some(idx) = p.index_of(node.as_str()) else {
            continue;
        };
        let ids: Vec<&Value> = p
            .shards_of(idx)
            .iter()
            .filter_map(|s| by_shard.get(s))
            .flatten()
            .collect();
        if ids.is_empty() {
            continue;
        }
        let body = Bytes::from(serde_json::to_vec(&ids).unwrap_or_default());
        parts.push(Part {
            node: idx,
            path: inc.path.clone(),
            body: vec![body],
            content_type: Some("application/json".into()),
        });
    }
    if parts.is_empty() {
        // No ids: every node would record an empty deletion; one is enough.
        if let Some(idx) = p.group_members(GroupId(0)).next() {
            parts.push(Part {
                node: idx,
                path: inc.path.clone(),
                body: vec![inc.body.clone()],
                content_type: inc.content_type.clone(),
            });
        }
    }
    let sent = send_parts(
        shared,
        rt,
        (inc, inc.auth.as_deref()),
        (index_uid, &touched),
        "POST",
        parts,
    )
    .await;
    let details = json!({ "providedIds": provided, "deletedDocuments": null });
    conclude(
        shared,
        rt,
        Write {
            inc,
            index_uid,
            shards: &touched,
            details,
            idempotency: None,
        },
        sent,
    )
    .await
}

/// `DELETE /indexes/{uid}/documents/{id}`: every replica of the id's shard.
pub async fn delete_one(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    id: &str,
) -> Reply {
    let shard = shard_for_key(id, rt.config.shards);
    let p = rt.placement();
    let parts = p
        .write_targets(shard)
        .map(|idx| Part {
            node: idx,
            path: inc.path.clone(),
            body: Vec::new(),
            content_type: None,
        })
        .collect();
    let shards = BTreeSet::from([shard]);
    let sent = send_parts(
        shared,
        rt,
        (inc, inc.auth.as_deref()),
        (index_uid, &shards),
        "DELETE",
        parts,
    )
    .await;
    let details = json!({ "providedIds": 1, "deletedDocuments": null });
    conclude(
        shared,
        rt,
        Write {
            inc,
            index_uid,
            shards: &shards,
            details,
            idempotency: None,
        },
        sent,
    )
    .await
}

/// `GET /indexes/{uid}/documents/{id}`: one replica of the id's shard, another on failure.
pub async fn get_one(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    _index_uid: &str,
    id: &str,
) -> Reply {
    let shard = shard_for_key(id, rt.config.shards);
    let p = rt.placement();
    // Healthy replicas first, across groups.
    let mut replicas: Vec<NodeIdx> = (0..p.groups())
        .flat_map(|g| p.replicas(GroupId(g), shard).to_vec())
        .collect();
    replicas.sort_by_key(|n| !shared.is_healthy(p.node(*n)));
    let mut last = None;
    for idx in replicas {
        let node = &rt.nodes[idx.index()];
        let req = NodeRequest::get(&inc.path, inc.auth.as_deref());
        match shared
            .client
            .send(node, &req, rt.config.scatter.node_timeout)
            .await
        {
            Ok(resp) if resp.status == 200 => {
                return match resp.json() {
                    Some(mut doc) => {
                        strip_reserved(&mut doc);
                        Reply::json(200, &doc)
                    }
                    None => Reply::relay(&resp),
                };
            }
            Ok(resp) if resp.status < 500 => return Reply::relay(&resp),
            other => last = Some(other),
        }
    }
    match last {
        Some(r) => Reply::json(502, &failure_json(&r)),
        None => Reply::error(&MiroirError::new(
            Code::ShardUnavailable,
            format!("No replica of shard {} answered.", shard.0),
        )),
    }
}

/// Removes Miroir's own fields from a document.
pub fn strip_reserved(doc: &mut Value) {
    if let Some(obj) = doc.as_object_mut() {
        obj.retain(|k, _| !k.starts_with(write::RESERVED_PREFIX));
    }
}

/// The `Idempotency-Key` header, when present.
pub fn idempotency_key(session: &pingora_proxy::Session) -> Option<String> {
    session
        .get_header(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
