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
use crate::upstream::NodeRequest;

/// The config generation whose default keys were last made consistent (0 = never).
static SYNCED_GENERATION: AtomicU64 = AtomicU64::new(0);

/// `POST /keys` without a `uid` would give each node its own random uid, hence a different
/// key string per node; Miroir picks the uid so every node derives the same key.
pub fn with_key_uid(inc: &Incoming) -> Bytes {
    if inc.method != "POST" || inc.path_only() != "/keys" {
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
