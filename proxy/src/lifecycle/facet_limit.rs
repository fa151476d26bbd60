//! Keeping the nodes' `faceting.maxValuesPerFacet` widened above the client's (see
//! `miroir_filters::search::facet_limit`): client updates carrying a value are widened as
//! they pass (`shard_field::rewrite_update`); this module widens what Meilisearch sets by
//! itself, its default on a new index and after a reset.

use miroir_filters::search::facet_limit;
use serde_json::Value;

use super::patch_every_node;
use crate::cluster::Runtime;
use crate::node_io;
use crate::request::Incoming;
use crate::shared::Shared;

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
/// widened yet): computed from the nodes' settings with their queued settings updates applied,
/// queued behind them. Right unless another settings update reaches the nodes between that
/// read and this update.
pub async fn ensure(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    let cluster = &shared.cluster;
    if cluster.indexes.facet_limit_widened(index_uid) {
        return;
    }
    let path = format!("/indexes/{index_uid}/settings/faceting");
    let Ok(resp) = node_io::any(cluster, rt, &path, rt.node_key()).await else {
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
    let queued = format!(
        "/tasks?indexUids={index_uid}&types=settingsUpdate&statuses=enqueued,processing&limit=1000"
    );
    let Ok(resp) = node_io::any(cluster, rt, &queued, rt.node_key()).await else {
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
    let after = facet_limit::after_queued(current, tasks.iter().map(|t| &t.1));
    if facet_limit::is_widened(after) {
        cluster.indexes.set_facet_limit_widened(index_uid, true);
        return;
    }
    widen(shared, rt, inc, index_uid, after).await;
}
