//! `GET /indexes/{uid}/documents` and `POST /indexes/{uid}/documents/fetch` across shards.
//!
//! Global order (Meilisearch's internal-id order cannot be reproduced across nodes): without
//! `sort`, by shard number, then each shard's own order on the node answering for it; with
//! `sort`, by the sort values, ties by shard number then that order. Without `sort` a page
//! asks every shard for its `total` (limit 0), then only the shards the page spans for their
//! slice; with `sort` every shard returns its first `offset + limit` documents for a k-way
//! merge. With `ids`, only the shards those ids hash to are asked.

use std::collections::BTreeMap;

use miroir_conf::UnavailableShardPolicy;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::{GroupId, NodeScope, ShardId};
use miroir_filters::search::browse::{self, SortedMerge};
use miroir_filters::search::filter_expr;
use miroir_filters::{hidden, query};
use serde_json::{json, Map, Value};

use super::context::index_context;
use super::relay_as_sent;
use crate::cluster::Runtime;
use crate::node_io::{self, ShardRequest};
use crate::request::{Incoming, Reply, DEGRADED};
use crate::shared::Shared;

/// One `documents/fetch` per shard, each with its own window.
struct ShardFetch<'a> {
    path: String,
    client: &'a Map<String, Value>,
    windows: BTreeMap<ShardId, (u64, u64)>,
    ids: Option<&'a BTreeMap<ShardId, Vec<Value>>>,
    extra_fields: &'a [String],
}

impl ShardRequest for ShardFetch<'_> {
    fn method(&self) -> &str {
        "POST"
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        // Gathered one shard at a time, so the scope is that one shard.
        let shard = scope.shards.first().copied().unwrap_or(ShardId(0));
        let window = self.windows.get(&shard).copied().unwrap_or((0, 0));
        let ids = self
            .ids
            .map(|by| by.get(&shard).map_or(&[][..], Vec::as_slice));
        browse::shard_body(self.client, scope, window, ids, self.extra_fields)
    }
}

/// Per-shard answers of one phase, in shard order; shards no replica answered apart.
struct Phase {
    answers: Vec<(ShardId, Value)>,
    missing: Vec<ShardId>,
}

async fn run_phase(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    scope: (GroupId, u32),
    req: &ShardFetch<'_>,
) -> Result<Phase, Reply> {
    let gathers = req.windows.keys().map(|&shard| async move {
        let g =
            node_io::gather_shards(&shared.cluster, rt, req, inc.caller(), scope, &[shard]).await;
        (shard, g)
    });
    let mut phase = Phase {
        answers: Vec::new(),
        missing: Vec::new(),
    };
    for (shard, g) in futures::future::join_all(gathers).await {
        if g.over_budget {
            return Err(node_io::scatter::answer_too_large(rt).into());
        }
        phase.missing.extend(g.missing);
        for a in g.answers {
            if a.response.status >= 400 {
                return Err(Reply::relay(&a.response));
            }
            match a.response.json() {
                Some(v) => phase.answers.push((shard, v)),
                None => {
                    return Err(Reply::error(&MiroirError::new(
                        Code::Internal,
                        "A node answered a documents fetch with invalid JSON.",
                    )))
                }
            }
        }
    }
    if !phase.missing.is_empty()
        && rt.config.scatter.unavailable_shard_policy == UnavailableShardPolicy::Error
    {
        let list: Vec<String> = phase.missing.iter().map(|s| s.0.to_string()).collect();
        return Err(Reply::error(&MiroirError::new(
            Code::ShardUnavailable,
            format!("No replica of shards {} answered.", list.join(",")),
        )));
    }
    Ok(phase)
}

/// The client's request as a `documents/fetch` body, or the reply when a node rejects it.
async fn client_body(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
) -> Result<Map<String, Value>, Reply> {
    if inc.method == "GET" {
        let query = inc.query();
        // One node validates the query as it is (its errors are the GET route's own), with
        // `limit=0` so it sends no documents.
        let mut checked: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some(("limit", v)) if v.parse::<u64>().is_ok() => "limit=0".to_owned(),
                Some(("filter", _)) => {
                    let value = query::pairs(p).next().map(|(_, v)| v.into_owned());
                    let mut filter = Value::String(value.unwrap_or_default());
                    hidden::mask_filter(&mut filter);
                    format!("filter={}", query::encode(filter.as_str().unwrap_or("")))
                }
                _ => p.to_owned(),
            })
            .collect();
        if !checked.iter().any(|p| p.starts_with("limit=")) {
            checked.push("limit=0".to_owned());
        }
        let path = format!("/indexes/{index_uid}/documents?{}", checked.join("&"));
        let resp = node_io::any(&shared.cluster, rt, &path, inc.auth.as_deref()).await?;
        if resp.status != 200 {
            return Err(Reply::relay(&resp));
        }
        let mut body = browse::query_to_fetch_body(query);
        hidden::mask_shard_field(&mut body);
        return Ok(body);
    }
    match serde_json::from_slice::<Value>(&inc.body) {
        Ok(Value::Object(mut o)) if inc.is_json() => {
            hidden::mask_shard_field(&mut o);
            Ok(o)
        }
        // Not a JSON object: one node's error is the answer.
        _ => Err(relay_as_sent(
            shared,
            rt,
            inc,
            &format!("/indexes/{index_uid}/documents/fetch"),
        )
        .await),
    }
}

/// The shards of the ids a filter pins (see `search::filter_expr`), else every shard.
async fn pinned_shards(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    (index_uid, client): (&str, &Map<String, Value>),
    shards: u32,
) -> Vec<ShardId> {
    let keys = match client.get("filter") {
        Some(filter) => match index_context(shared, rt, inc, index_uid).await {
            Ok(ctx) => ctx
                .primary_key
                .as_deref()
                .and_then(|pk| filter_expr::pinned_keys(filter, pk)),
            // The nodes report what is wrong.
            Err(_) => None,
        },
        None => None,
    };
    filter_expr::shards_to_ask(keys.as_ref(), shards)
}

/// `GET /indexes/{uid}/documents and POST /indexes/{uid}/documents/fetch`.
pub async fn browse(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let client = match client_body(shared, rt, inc, index_uid).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let shards_total = shared.cluster.shard_counts.of(index_uid);
    let ids = browse::ids_by_shard(&client, shards_total);
    let shards: Vec<ShardId> = match &ids {
        // `ids: []` matches nothing; one shard still validates the rest of the request.
        Some(by) if by.is_empty() => vec![ShardId(0)],
        Some(by) => by.keys().copied().collect(),
        None => pinned_shards(shared, rt, inc, (index_uid, &client), shards_total).await,
    };
    let rules = browse::sort_rules(&client);
    let extra_fields = browse::extra_sort_fields(&client, &rules);
    let group = shared.cluster.next_group(rt);
    let mut req = ShardFetch {
        path: format!("/indexes/{index_uid}/documents/fetch"),
        client: &client,
        windows: BTreeMap::new(),
        ids: ids.as_ref(),
        extra_fields: &extra_fields,
    };
    let (offset, limit) = browse::page(&client);
    let total_of = |v: &Value| v["total"].as_u64().unwrap_or(0);
    let docs_of = |v: &mut Value| match v["results"].take() {
        Value::Array(docs) => docs,
        _ => Vec::new(),
    };

    let (total, mut results, missing) = if rules.is_empty() {
        req.windows = shards.iter().map(|&s| (s, (0, 0))).collect();
        let counts = match run_phase(shared, rt, inc, (group, shards_total), &req).await {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let totals: Vec<(ShardId, u64)> = counts
            .answers
            .iter()
            .map(|(s, v)| (*s, total_of(v)))
            .collect();
        let total = totals.iter().map(|(_, n)| n).sum::<u64>();
        req.windows = browse::page_slices(&totals, offset, limit)
            .into_iter()
            .map(|(s, lo, n)| (s, (lo, n)))
            .collect();
        let mut missing = counts.missing;
        let mut results = Vec::new();
        if !req.windows.is_empty() {
            let page = match run_phase(shared, rt, inc, (group, shards_total), &req).await {
                Ok(p) => p,
                Err(reply) => return reply,
            };
            missing.extend(page.missing);
            // BTreeMap order: shard order, which is the global order.
            for (_, mut v) in page.answers {
                results.extend(docs_of(&mut v));
            }
        }
        (total, results, missing)
    } else {
        // A k-way merge fed a page per shard at a time: memory stays at a page per shard
        // however deep the client pages; a deep page costs more round trips instead.
        let mut merge = SortedMerge::new(rules, offset, limit);
        let size = merge.page_size();
        req.windows = shards.iter().map(|&s| (s, (0, size))).collect();
        let mut missing = Vec::new();
        let mut total = None;
        loop {
            let phase = match run_phase(shared, rt, inc, (group, shards_total), &req).await {
                Ok(p) => p,
                Err(reply) => return reply,
            };
            for (shard, mut v) in phase.answers {
                merge.feed(shard, total_of(&v), docs_of(&mut v));
            }
            // A shard that stops answering mid-way ends there (the answer says so).
            for &shard in &phase.missing {
                merge.feed(shard, 0, Vec::new());
            }
            missing.extend(phase.missing);
            // The totals are the first round's.
            total.get_or_insert_with(|| merge.total());
            match merge.wanted() {
                Some(wanted) => {
                    req.windows = wanted
                        .into_iter()
                        .map(|(s, from)| (s, (from, size)))
                        .collect()
                }
                None => break,
            }
        }
        (total.unwrap_or(0), merge.into_page(), missing)
    };
    for doc in &mut results {
        browse::clean(doc, &extra_fields, &client);
    }
    let body = json!({"results": results, "offset": offset, "limit": limit, "total": total});
    let reply = Reply::json(200, &body);
    if missing.is_empty() {
        return reply;
    }
    let mut list: Vec<String> = missing.iter().map(|s| s.0.to_string()).collect();
    list.sort();
    list.dedup();
    reply.with_header(DEGRADED, format!("shards={}", list.join(",")))
}
