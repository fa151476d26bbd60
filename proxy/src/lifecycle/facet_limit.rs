//! Keeping the nodes' `faceting.maxValuesPerFacet` widened above the client's (see
//! `miroir_filters::search::facet_limit`): client updates carrying a value are widened as
//! they pass (`shard_field::rewrite_update`); this module widens what Meilisearch sets by
//! itself, its default on a new index and after a reset.

use miroir_filters::search::facet_limit;
use serde_json::Value;

use super::patch_every_node;
use crate::cluster::Runtime;
use crate::request::Incoming;
use crate::shared::Shared;
use crate::upstream::NodeRequest;

/// Sends the widening of `client` to every node (a settings task each, queued behind what the
/// nodes already have), remembered once every node accepted it.
async fn widen(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str, client: u64) {
    let all_ok = patch_every_node(shared, rt, inc, index_uid, &facet_limit::widening(client)).await;
    if all_ok {
        shared
            .cluster
            .indexes
            .set_facet_limit_widened(index_uid, true);
    } else {
        log::warn!(target: "miroir::settings", "could not widen `maxValuesPerFacet` of `{index_uid}` on every node; facet counts may be inexact until the next write retries");
    }
}

/// After a client's settings update the nodes accepted: one that put Meilisearch's default
/// limit back (a reset) gets the default widened, queued right behind it; any other makes
/// sure the index is widened at all (the first update may have created it).
pub async fn after_update(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    if facet_limit::resets(inc.route, &inc.body) {
        shared
            .cluster
            .indexes
            .set_facet_limit_widened(index_uid, false);
        widen(shared, rt, inc, index_uid, facet_limit::DEFAULT_MAX_VALUES).await;
    } else {
        ensure(shared, rt, inc, index_uid).await;
    }
}

/// Makes sure the nodes' limit of `index_uid` is widened (a new index, or one Miroir has not
/// widened yet): computed from one node's settings with its queued settings updates applied,
/// queued behind them. The queue is read before the settings, from the same node: an update
/// finishing between the two reads is then counted twice (harmless: updates assign), never
/// missed. Right unless another settings update reaches the nodes between those reads and
/// this update.
pub async fn ensure(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    let cluster = &shared.cluster;
    if cluster.indexes.facet_limit_widened(index_uid) {
        return;
    }
    let Some(node) = cluster.pick_node(rt, &[]).map(|i| &rt.nodes[i]) else {
        return;
    };
    let read = |path: String| async move {
        let req = NodeRequest::get(&path, rt.node_key());
        cluster
            .client
            .send(node, &req, rt.config.scatter.node_timeout)
            .await
            .ok()
    };
    let queued = format!(
        "/tasks?indexUids={index_uid}&types=settingsUpdate&statuses=enqueued,processing&limit=1000"
    );
    let Some(resp) = read(queued).await.filter(|r| r.status == 200) else {
        return;
    };
    let mut tasks: Vec<(u64, Value)> = resp
        .json()
        .and_then(|v| v["results"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| Some((t["uid"].as_u64()?, t["details"].clone())))
        .collect();
    tasks.sort_unstable_by_key(|t| t.0);
    let Some(resp) = read(format!("/indexes/{index_uid}/settings/faceting")).await else {
        return;
    };
    let current = match resp.status {
        200 => resp
            .json()
            .and_then(|v| v["maxValuesPerFacet"].as_u64())
            .unwrap_or(facet_limit::DEFAULT_MAX_VALUES),
        // To be created by a queued task: Meilisearch's default.
        404 => facet_limit::DEFAULT_MAX_VALUES,
        _ => return,
    };
    let after = facet_limit::after_queued(current, tasks.iter().map(|t| &t.1));
    if facet_limit::is_widened(after) {
        cluster.indexes.set_facet_limit_widened(index_uid, true);
        return;
    }
    widen(shared, rt, inc, index_uid, after).await;
}
