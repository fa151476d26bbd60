//! Deleting documents by id: each id's shard, every replica of it.

use std::collections::BTreeSet;

use bytes::Bytes;
use miroir_filters::routing::{shard_for_key, GroupId, ShardId};
use miroir_filters::{transfer, write};
use serde_json::{json, Value};

use super::record::{conclude, Write};
use super::send::{send_parts, Part};
use crate::cluster::Runtime;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

/// `POST /indexes/{uid}/documents/delete-batch`.
pub async fn delete_batch(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let shards = shared.cluster.shard_counts.of(index_uid);
    let by_shard = match write::split_ids(&inc.body, shards) {
        Ok(m) => m,
        Err(e) => return Reply::error(&e),
    };
    let provided: usize = by_shard.values().map(Vec::len).sum();
    let ids = by_shard
        .values()
        .flatten()
        .filter_map(transfer::document_id)
        .collect();
    shared.anti_entropy.deleted_ids(index_uid, ids).await;
    let p = rt.writes();
    let touched: BTreeSet<ShardId> = by_shard.keys().copied().collect();
    let mut parts = Vec::new();
    for node in p.nodes() {
        let Some(idx) = p.index_of(node.as_str()) else {
            continue;
        };
        let sets = rt.write_sets(idx);
        for (shards, move_log) in [(&sets.direct, false), (&sets.logged, true)] {
            let ids: Vec<&Value> = shards
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
                move_log,
                items: ids.len() as u64,
            });
        }
    }
    if parts.is_empty() {
        // No ids: every node would record an empty deletion; one is enough.
        if let Some(idx) = p.group_members(GroupId(0)).next() {
            parts.push(Part {
                node: idx,
                path: inc.path.clone(),
                body: vec![inc.body.clone()],
                content_type: inc.content_type.clone(),
                move_log: false,
                items: 0,
            });
        }
    }
    let sent = send_parts(
        &shared.cluster,
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
    let shard = shard_for_key(id, shared.cluster.shard_counts.of(index_uid));
    shared
        .anti_entropy
        .deleted_ids(index_uid, vec![id.to_owned()])
        .await;
    let p = rt.writes();
    let parts = p
        .write_targets(shard)
        .map(|idx| Part {
            node: idx,
            path: inc.path.clone(),
            body: Vec::new(),
            content_type: None,
            move_log: rt.write_sets(idx).logged.contains(&shard),
            items: 1,
        })
        .collect();
    let shards = BTreeSet::from([shard]);
    let sent = send_parts(
        &shared.cluster,
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
