//! `POST /_miroir/indexes/{uid}/explain` (admin key): how Miroir would run a search body,
//! without running it: the index's S, the shards asked and why (narrowed to the ids the filter
//! pins, or all), the replica group, each node with its shards and the exact body it would
//! receive (the per-node filter included), and warnings. `?execute=true` also runs it (with
//! Miroir's node credential) and adds the answer.

use std::collections::BTreeSet;

use miroir_filters::search::{filter_expr, plan, Pagination, SearchPlan};
use serde_json::{json, Value};

use super::context::index_context;
use crate::cluster::Runtime;
use crate::node_io::{self, scatter};
use crate::repair::settings_drift as drift;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

/// Past this many hits asked of each node, a search is flagged as deep.
const DEEP: usize = 1_000;

pub async fn explain(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let ctx = match index_context(shared, rt, inc, index_uid).await {
        Ok(ctx) => ctx,
        Err(reply) => return reply,
    };
    let planned = match plan(&inc.body, &ctx) {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let cluster = &shared.cluster;
    let index_shards = cluster.shard_counts.of(index_uid);
    let shards = planned.shards_to_ask(index_shards);
    let group = cluster.next_group(rt);
    let (by_node, missing) = scatter::cover((cluster, rt), &shards, group, &BTreeSet::new());
    let nodes: Vec<Value> = by_node
        .iter()
        .map(|(node, node_shards)| {
            let scope = scatter::scope(rt, *node, node_shards, index_shards);
            let body: Value =
                serde_json::from_slice(&planned.node_body(scope)).unwrap_or(Value::Null);
            json!({
                "node": rt.nodes[node.index()].id.as_str(),
                "shards": node_shards.iter().map(|s| s.0).collect::<Vec<_>>(),
                "wholeNode": scope.whole_node,
                "body": body,
            })
        })
        .collect();
    let body: Value = serde_json::from_slice(&inc.body).unwrap_or(Value::Null);
    let reason = match (planned.pinned(), body.get("filter"), &ctx.primary_key) {
        (Some(ids), _, Some(pk)) => {
            format!("the filter pins {} value(s) of the primary key `{pk}`", ids.len())
        }
        (None, None, _) => "no filter: every shard holds candidates".to_owned(),
        (None, Some(_), Some(pk)) => format!(
            "the filter does not pin the primary key `{pk}` (equality or IN on values without letters, ANDed or in every OR branch)"
        ),
        _ => "the index's primary key is not known".to_owned(),
    };
    let mut out = json!({
        "indexUid": index_uid,
        "indexShards": index_shards,
        "narrowed": planned.pinned().is_some(),
        "reason": reason,
        "pinnedIds": planned.pinned(),
        "shards": shards.iter().map(|s| s.0).collect::<Vec<_>>(),
        "replicaGroup": group.0,
        "nodes": nodes,
        "unavailableShards": missing.iter().map(|s| s.0).collect::<Vec<_>>(),
        "warnings": warnings(shared, rt, index_uid, (&body, &planned), ctx.max_total_hits).await,
    });
    if inc.query().split('&').any(|p| p == "execute=true") {
        let mut run = inc.clone();
        run.path = format!("/indexes/{index_uid}/search");
        run.auth = rt.node_key().map(str::to_owned);
        let reply = super::search::search(shared, rt, &run, index_uid).await;
        out["execution"] = json!({
            "status": reply.status,
            "answer": serde_json::from_slice::<Value>(&reply.bytes()).unwrap_or(Value::Null),
        });
    }
    Reply::json(200, &out)
}

/// What may surprise the client: filters on attributes that are not filterable, a window
/// past `maxTotalHits`, a deep page, settings that differ between nodes.
async fn warnings(
    shared: &Shared,
    rt: &Runtime,
    index_uid: &str,
    (body, planned): (&Value, &SearchPlan),
    max_total_hits: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(filter) = body.get("filter") {
        let named = filter_expr::attributes(filter).unwrap_or_default();
        let path = format!("/indexes/{index_uid}/settings/filterable-attributes");
        let filterable = node_io::any(&shared.cluster, rt, &path, rt.node_key())
            .await
            .ok()
            .and_then(|r| r.json());
        if let Some(Value::Array(rules)) = filterable {
            for name in named.iter().filter(|n| !filterable_by(&rules, n)) {
                out.push(format!(
                    "`{name}` is not filterable on this index: the nodes will refuse the filter"
                ));
            }
        }
    }
    let merge = planned.merge_plan();
    let (offset, limit) = match merge.pagination {
        Pagination::OffsetLimit { offset, limit } => (offset, limit),
        Pagination::Page {
            page,
            hits_per_page,
        } => (page.saturating_sub(1) * hits_per_page, hits_per_page),
    };
    if offset.saturating_add(limit) > max_total_hits {
        out.push(format!(
            "offset + limit = {} is past maxTotalHits ({max_total_hits}): hits beyond it are never returned",
            offset.saturating_add(limit)
        ));
    }
    if merge.depth > DEEP {
        out.push(format!(
            "each node asked returns up to {} hits for the merge to rank this page",
            merge.depth
        ));
    }
    out.extend(settings_drift(shared, rt, index_uid).await);
    out
}

/// The index's settings as each healthy node holds them, compared as the settings sync
/// compares them: a node that differs ranks, filters or shows hits its own way until the sync
/// repairs it (or, with no majority, until an operator does). Names settings, never values.
async fn settings_drift(shared: &Shared, rt: &Runtime, index_uid: &str) -> Vec<String> {
    let answers = drift::read_settings(&shared.cluster, rt, index_uid).await;
    match drift::plan(&answers) {
        drift::Plan::Consistent => Vec::new(),
        drift::Plan::Repair(patches) => patches
            .iter()
            .map(|(node, patch)| {
                let names: Vec<&str> = patch.keys().map(String::as_str).collect();
                format!(
                    "settings drift: node {node} differs from the others on {}; searches it answers may rank or filter differently until the settings sync repairs it",
                    names.join(", ")
                )
            })
            .collect(),
        drift::Plan::Unresolved(why) => vec![format!(
            "settings drift the settings sync cannot repair: {why}; searches may differ by the replica asked"
        )],
    }
}

/// Whether `name` is filterable under `filterableAttributes` (names, `*` patterns, or 1.50's
/// objects with `attributePatterns`).
fn filterable_by(rules: &[Value], name: &str) -> bool {
    let matches = |pattern: &str| match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(suffix), _) => name.ends_with(suffix),
        (_, Some(prefix)) => name.starts_with(prefix),
        _ => pattern == name || name.starts_with(&format!("{pattern}.")),
    };
    rules.iter().any(|rule| match rule {
        Value::String(p) => matches(p),
        Value::Object(o) => o["attributePatterns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(matches),
        _ => false,
    })
}
