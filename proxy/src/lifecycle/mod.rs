//! Changes every node must apply: index creation, update, deletion and swap, settings, keys,
//! document deletions by filter (`broadcast`), and what Miroir keeps on the nodes' settings
//! for itself: `_miroir_shard` filterable (`shard_field`), the displayed attributes the merge
//! needs (`display`), a widened `maxValuesPerFacet` (`facet_limit`), keys with one uid
//! everywhere (`keys`).

pub mod broadcast;
mod display;
pub mod facet_limit;
mod index_shards;
pub mod keys;
pub mod shard_field;

/// Applies `inc` on every node (see `broadcast`), keeping each index's shard count in step.
pub async fn broadcast(
    shared: &crate::shared::Shared,
    rt: &crate::cluster::Runtime,
    inc: &crate::request::Incoming,
) -> crate::request::Reply {
    index_shards::around(shared, rt, inc, broadcast::broadcast(shared, rt, inc)).await
}

/// Sends a settings update of Miroir's own (`body`) to every node of `index_uid`, a settings
/// task each, queued behind what the nodes already have (a node that misses it gets it from
/// its log, in order); whether every node accepted it or keeps it in its log.
async fn patch_every_node(
    shared: &crate::shared::Shared,
    rt: &crate::cluster::Runtime,
    inc: &crate::request::Incoming,
    index_uid: &str,
    body: &serde_json::Value,
) -> bool {
    let body = bytes::Bytes::from(body.to_string());
    let chunks = [body.clone()];
    let path = format!("/indexes/{index_uid}/settings");
    let req = crate::upstream::NodeRequest::json("PATCH", &path, rt.node_key(), &chunks)
        .for_request(&inc.request_id);
    let _turn = shared.cluster.write_turn(index_uid).await;
    let hint = || miroir_handoff::Hint {
        index_uid: index_uid.to_owned(),
        method: "PATCH".into(),
        path: path.clone(),
        content_type: Some("application/json".into()),
        body: vec![body.clone()],
        maybe_applied: false,
    };
    let (results, logged) =
        crate::repair::handoff::send_every(&shared.cluster, rt, &req, hint).await;
    results.iter().enumerate().all(|(i, r)| {
        r.as_ref().is_ok_and(|resp| resp.status == 202) || logged.iter().any(|(l, _)| *l == i)
    })
}
