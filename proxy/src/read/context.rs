//! The settings a search merge depends on (`IndexContext`), read from one node with Miroir's
//! key and kept briefly in `cluster::indexes`.

use std::collections::BTreeMap;
use std::sync::Arc;

use miroir_filters::error::MiroirError;
use miroir_filters::search::{
    display, facet_limit, ranks_by_score, FacetOrder, IndexContext, NodeDisplay,
};
use serde_json::Value;

use crate::cluster::indexes::ContextLookup;
use crate::cluster::{Cluster, Runtime};
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::upstream::NodeResponse;

/// The settings a merge depends on, read from one node and cached briefly. Settings due to
/// be read again are read in the background while this search uses them.
pub async fn index_context(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
) -> Result<Arc<IndexContext>, Reply> {
    let cluster = &shared.cluster;
    match cluster.indexes.context(index_uid) {
        ContextLookup::Fresh(ctx) => return Ok(ctx),
        ContextLookup::Due(ctx) => {
            let (cluster, index) = (shared.cluster.clone(), index_uid.to_owned());
            tokio::spawn(async move {
                let rt = cluster.runtime();
                // A failed read leaves the settings due again once the refresh is stale.
                let _ = read_context(&cluster, &rt, &index).await;
            });
            return Ok(ctx);
        }
        ContextLookup::Unknown => {}
    }
    match read_context(cluster, rt, index_uid).await? {
        Ok(ctx) => Ok(ctx),
        Err(resp) => {
            // What the client may know: an empty search with its own key answers exactly
            // what one node would (403 for a key not allowed on the index, else 404).
            let probe = format!("/indexes/{index_uid}/search?limit=0");
            let seen = node_io::any(cluster, rt, &probe, inc.auth.as_deref()).await?;
            Err(Reply::relay(if seen.status >= 400 { &seen } else { &resp }))
        }
    }
}

/// Reads and remembers the merge settings of `index_uid`; the node's answer when it has none.
async fn read_context(
    cluster: &Cluster,
    rt: &Runtime,
    index_uid: &str,
) -> Result<Result<Arc<IndexContext>, NodeResponse>, MiroirError> {
    let path = format!("/indexes/{index_uid}/settings");
    // Miroir's own credential: a client's key may allow searching but not reading settings.
    let resp = node_io::any(cluster, rt, &path, rt.node_key()).await?;
    if resp.status != 200 {
        return Ok(Err(resp));
    }
    let mut ctx = context_from_settings(&resp.json().unwrap_or(Value::Null));
    // The primary key tells documents apart where one answer holds several searches' hits;
    // without it those merges fall back to the hits' fields.
    let index_path = format!("/indexes/{index_uid}");
    if let Ok(index) = node_io::any(cluster, rt, &index_path, rt.node_key()).await {
        ctx.primary_key = index
            .json()
            .and_then(|v| v["primaryKey"].as_str().map(str::to_owned));
    }
    let ctx = Arc::new(ctx);
    cluster.indexes.remember_context(index_uid, ctx.clone());
    Ok(Ok(ctx))
}

fn context_from_settings(s: &Value) -> IndexContext {
    let defaults = IndexContext::default();
    let max_total_hits = s["pagination"]["maxTotalHits"]
        .as_u64()
        .map_or(defaults.max_total_hits, |n| n as usize);
    // The nodes hold the client's value widened (see `facet_limit`).
    let node_max_values = s["faceting"]["maxValuesPerFacet"]
        .as_u64()
        .unwrap_or(defaults.node_max_values_per_facet as u64);
    let max_values = facet_limit::client_value(node_max_values);
    let sort_facet_values_by = match s["faceting"]["sortFacetValuesBy"].as_object() {
        Some(orders) => orders
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if v == "count" {
                        FacetOrder::Count
                    } else {
                        FacetOrder::Alpha
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        None => defaults.sort_facet_values_by.clone(),
    };
    // Nodes holding Miroir's encoded list display the merge's fields too; Miroir applies the
    // client's list itself.
    let node_list: Option<Vec<String>> = s["displayedAttributes"].as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    let node_display = match &node_list {
        Some(list) if display::is_encoded(list) => NodeDisplay::All,
        _ => NodeDisplay::Restricted,
    };
    IndexContext {
        displayed_attributes: node_list.map(|l| display::split(&l).0),
        node_display,
        distinct_attribute: s["distinctAttribute"].as_str().map(str::to_owned),
        max_total_hits,
        node_max_total_hits: max_total_hits,
        max_values_per_facet: usize::try_from(max_values).unwrap_or(usize::MAX),
        node_max_values_per_facet: usize::try_from(node_max_values).unwrap_or(usize::MAX),
        sort_facet_values_by,
        primary_key: None,
        relevancy_rules_only: s["rankingRules"]
            .as_array()
            .is_some_and(|rules| ranks_by_score(rules.iter().map(|r| r.as_str().unwrap_or("")))),
    }
}
