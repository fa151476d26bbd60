//! `GET /indexes/{uid}/documents/{id}`: one replica of the id's shard, another on failure.

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden::RESERVED_PREFIX;
use miroir_filters::routing::{shard_for_key, GroupId, NodeIdx};
use serde_json::Value;

use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::upstream::NodeRequest;

/// `GET /indexes/{uid}/documents/{id}`: one replica of the id's shard, another on failure.
pub async fn get_one(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    (index_uid, id): (&str, &str),
) -> Reply {
    let shard = shard_for_key(id, shared.cluster.shard_counts.of(index_uid));
    let p = rt.reads();
    // Healthy replicas first, across groups.
    let mut replicas: Vec<NodeIdx> = (0..p.groups())
        .flat_map(|g| p.replicas(GroupId(g), shard).to_vec())
        .collect();
    replicas.sort_by_key(|n| !shared.cluster.is_healthy(p.node(*n)));
    let mut last = None;
    for idx in replicas {
        let node = &rt.nodes[idx.index()];
        let req = NodeRequest::get(&inc.path, inc.auth.as_deref());
        match shared
            .cluster
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
        Some(r) => Reply::json(502, &node_io::failure_json(&r)),
        None => Reply::error(&MiroirError::new(
            Code::ShardUnavailable,
            format!("No replica of shard {} answered.", shard.0),
        )),
    }
}

/// Removes Miroir's own fields from a document.
pub fn strip_reserved(doc: &mut Value) {
    if let Some(obj) = doc.as_object_mut() {
        obj.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
    }
}
