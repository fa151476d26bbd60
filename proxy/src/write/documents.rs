//! `POST`/`PUT /indexes/{uid}/documents`: the body validated and split by shard before any
//! node is touched (`miroir_filters::write`), each node sent one request with its shards'
//! documents, the primary key decided once for every node.

use std::collections::BTreeSet;

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::query;
use miroir_filters::routing::NodeIdx;
use miroir_filters::write::{self, PayloadFormat, SplitInput};
use miroir_tasks::Idempotency;
use serde_json::json;

use super::record::{conclude, key_reused, Write};
use super::send::{send_parts, Part, Sent};
use crate::cluster::Runtime;
use crate::lifecycle::shard_field;
use crate::node_io::{self, accepted_task_uid};
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::tasks;

/// What the nodes know of an index before a write.
struct IndexState {
    exists: bool,
    primary_key: Option<String>,
}

/// Reads the index with Miroir's own credential (the client's key may only allow writes).
async fn index_state(shared: &Shared, rt: &Runtime, index_uid: &str) -> Result<IndexState, Reply> {
    let path = format!("/indexes/{index_uid}");
    let resp = node_io::any(&shared.cluster, rt, &path, rt.node_key()).await?;
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
        &shared.cluster,
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
                if let Err(refused) = shared
                    .authorize_on(rt, inc, "documents.add", index_uid)
                    .await
                {
                    return refused;
                }
                return match shared.tasks.get(uid) {
                    Ok(Some(record)) => Reply::json(202, &tasks::summary(&record)),
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

    let csv_delimiter = match query::param(&inc.path, "csvDelimiter") {
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
    let param_pk = query::param(&inc.path, "primaryKey");
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
        shard_field::ensure(shared, rt, inc, index_uid).await;
    }
    let p = rt.placement();
    // The nodes must not infer a primary key of their own.
    let path = query::with_param(&inc.path, "primaryKey", &split.primary_key);
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
        let Some(i) = shared.cluster.pick_node(rt, &[]) else {
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
        &shared.cluster,
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
        shard_field::ensure(shared, rt, inc, index_uid).await;
    }
    reply
}
