//! API keys that work on every node. A key created through Miroir gets one uid everywhere
//! (`with_key_uid`), so nodes sharing a master key derive the same key string. Meilisearch's
//! default keys, though, get a random uid on each node: Miroir copies the first node's
//! defaults to every other node (same uid, hence same key string) and answers key reads from
//! that first node, so the default keys a client lists work for every request.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use serde_json::{json, Value};

use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::upstream::{NodeRequest, NodeResult};

/// The config generation whose default keys were last made consistent (0 = never).
static SYNCED_GENERATION: AtomicU64 = AtomicU64::new(0);

/// `POST /keys` without a `uid` would give each node its own random uid, hence a different
/// key string per node; Miroir picks the uid so every node derives the same key. Under an
/// `Idempotency-Key` the uid follows from it and the body, so a retry of a request that
/// reached some nodes names the same key instead of making another.
pub fn with_key_uid(inc: &Incoming) -> Bytes {
    if inc.method != "POST" || inc.path_only() != "/keys" {
        return inc.body.clone();
    }
    match serde_json::from_slice::<Value>(&inc.body) {
        Ok(Value::Object(mut obj)) if !obj.contains_key("uid") => {
            let uid = match &inc.idempotency_key {
                Some(key) => retry_uid(key, &inc.body),
                None => uuid::Uuid::new_v4(),
            };
            obj.insert("uid".into(), json!(uid.to_string()));
            Bytes::from(Value::Object(obj).to_string())
        }
        // Anything else is the nodes' to judge (and reject) identically.
        _ => inc.body.clone(),
    }
}

/// The uid of a key created under `idempotency_key` with `body`: the same for a retry.
fn retry_uid(idempotency_key: &str, body: &[u8]) -> uuid::Uuid {
    let mut input = Vec::with_capacity(idempotency_key.len() + 1 + body.len());
    input.extend_from_slice(idempotency_key.as_bytes());
    input.push(0);
    input.extend_from_slice(body);
    let digest = xxhash_rust::xxh3::xxh3_128(&input).to_le_bytes();
    uuid::Builder::from_random_bytes(digest).into_uuid()
}

/// A key creation some node refused: deletes the key again on the nodes that created it,
/// so no node keeps an orphan. Whether every one of them deleted it.
pub async fn undo_creation(
    shared: &Shared,
    rt: &Runtime,
    body: &Bytes,
    results: &[NodeResult],
) -> bool {
    let Some(uid) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["uid"].as_str().map(str::to_owned))
    else {
        return false;
    };
    let path = format!("/keys/{uid}");
    let req = NodeRequest {
        method: "DELETE",
        ..NodeRequest::get(&path, rt.node_key())
    };
    let timeout = rt.config.scatter.node_timeout;
    let undo = rt.nodes.iter().zip(results).filter(|(_, r)| {
        r.as_ref()
            .is_ok_and(|resp| (200..300).contains(&resp.status))
    });
    let deletes = undo.map(|(node, _)| shared.cluster.client.send(node, &req, timeout));
    let all = futures::future::join_all(deletes).await;
    let undone = all.iter().all(|r| {
        r.as_ref()
            .is_ok_and(|resp| matches!(resp.status, 204 | 404))
    });
    if !undone {
        log::warn!(target: "miroir::keys", "key {uid} could not be deleted again on every node that created it");
    }
    undone
}

/// The node whose keys are authoritative: the first node (in placement order) that answers,
/// with its keys.
async fn authority(shared: &Shared, rt: &Runtime, auth: Option<&str>) -> Option<(usize, Value)> {
    let req = NodeRequest::get("/keys?limit=10000", auth);
    let (i, resp) = node_io::in_order(&shared.cluster, rt, &req, |r| r.status == 200).await?;
    Some((i, resp.json().unwrap_or(Value::Null)))
}

/// Copies the authority's default keys to every other node, once per configuration.
async fn sync_defaults(shared: &Shared, rt: &Runtime) {
    if SYNCED_GENERATION.load(Ordering::Relaxed) == rt.generation {
        return;
    }
    let master = rt.config.node_master_key.as_ref().map(|k| k.expose());
    let Some((first, keys)) = authority(shared, rt, master).await else {
        return;
    };
    let defaults: Vec<&Value> = keys["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| {
            k["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Default "))
        })
        .collect();
    let mut complete = true;
    for (i, node) in rt.nodes.iter().enumerate() {
        if i == first {
            continue;
        }
        for key in &defaults {
            let body = json!({
                "uid": key["uid"],
                "name": key["name"],
                "description": key["description"],
                "actions": key["actions"],
                "indexes": key["indexes"],
                "expiresAt": key["expiresAt"],
            });
            let body = [Bytes::from(body.to_string())];
            let req = NodeRequest::json("POST", "/keys", master, &body);
            match shared
                .cluster
                .client
                .send(node, &req, rt.config.scatter.node_timeout)
                .await
            {
                // 409: the node has it already.
                Ok(resp) if resp.status == 201 || resp.status == 409 => {}
                _ => complete = false,
            }
        }
    }
    if complete {
        SYNCED_GENERATION.store(rt.generation, Ordering::Relaxed);
    }
}

/// `GET /keys` and `GET /keys/{key}`, answered by the authority node.
pub async fn read(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    sync_defaults(shared, rt).await;
    let req = NodeRequest::get(&inc.path, inc.auth.as_deref());
    match node_io::in_order(&shared.cluster, rt, &req, |r| r.status < 500).await {
        Some((_, resp)) => Reply::relay(&resp),
        None => Reply::error(&MiroirError::new(
            Code::NoNodeAvailable,
            "No Meilisearch node answered.",
        )),
    }
}
