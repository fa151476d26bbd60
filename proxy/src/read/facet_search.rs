//! `POST /indexes/{uid}/facet-search`: the client's body restricted to each node's shards,
//! scattered over one replica per shard, merged by `miroir_filters::search::facet_hits`.

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden;
use miroir_filters::routing::{NodeScope, ShardId};
use miroir_filters::search::{facet_hits, FacetOrder};
use serde_json::Value;

use super::context::index_context;
use super::relay_as_sent;
use crate::cluster::Runtime;
use crate::node_io::{self, ShardRequest};
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

struct FacetSearchRequest {
    path: String,
    body: Value,
}

impl ShardRequest for FacetSearchRequest {
    fn method(&self) -> &str {
        "POST"
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        facet_hits::facet_search_body(&self.body, scope)
    }
}

/// `POST /indexes/{uid}/facet-search`.
pub async fn facet_search(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let ctx = match index_context(shared, rt, inc, index_uid).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    // A body that is not a JSON object goes to one node as it is: its error is the answer.
    let mut body = match serde_json::from_slice::<Value>(&inc.body) {
        Ok(v) if v.is_object() && inc.is_json() => v,
        _ => {
            return relay_as_sent(
                shared,
                rt,
                inc,
                &format!("/indexes/{index_uid}/facet-search"),
            )
            .await
        }
    };
    if let Value::Object(map) = &mut body {
        hidden::mask_shard_field(map);
    }
    let order = ctx.facet_order(body["facetName"].as_str().unwrap_or(""));
    let req = FacetSearchRequest {
        path: format!("/indexes/{index_uid}/facet-search"),
        body,
    };
    let index_shards = shared.cluster.shard_counts.of(index_uid);
    let gathered = node_io::gather(
        &shared.cluster,
        rt,
        &req,
        inc.caller(),
        (shared.cluster.next_group(rt), index_shards),
    )
    .await;
    if let Some(refused) = gathered.answers.iter().find(|a| a.response.status >= 400) {
        return Reply::relay(&refused.response);
    }
    let degraded = match gathered.degraded(rt) {
        Ok(d) => d,
        Err(e) => return Reply::error(&e),
    };
    // Answers in shard order, so the original kept for a value does not depend on timing.
    let mut answers: Vec<(Vec<ShardId>, Value)> = Vec::new();
    for a in &gathered.answers {
        match a.response.json() {
            Some(v) => answers.push((a.shards.clone(), v)),
            None => {
                return Reply::error(&MiroirError::new(
                    Code::Internal,
                    "A node answered a facet search with invalid JSON.",
                ))
            }
        }
    }
    answers.sort_by_key(|(shards, _)| shards.iter().min().copied());
    let (shard_sets, mut answers): (Vec<Vec<ShardId>>, Vec<Value>) = answers.into_iter().unzip();
    if order == FacetOrder::Count {
        let extra = recount(
            shared,
            rt,
            inc,
            (&req, index_shards),
            &shard_sets,
            &answers,
            (ctx.max_values_per_facet, ctx.node_max_values_per_facet),
        )
        .await;
        answers.extend(extra);
    }
    let merged = facet_hits::merge_facet_hits(&answers, order, ctx.max_values_per_facet);
    let reply = Reply::json(200, &merged);
    reply.degraded(degraded)
}

/// With `count` order, the values a truncating node may have left out, counted again on that
/// node's shards with a filter on the value alone. A recount that fails is skipped: the merge
/// then keeps the first round's (lower) count.
async fn recount(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    (req, index_shards): (&FacetSearchRequest, u32),
    shard_sets: &[Vec<ShardId>],
    answers: &[Value],
    (max, node_max): (usize, usize),
) -> Vec<Value> {
    let facet = req.body["facetName"].as_str().unwrap_or("");
    let scope = (shared.cluster.next_group(rt), index_shards);
    let asks = facet_hits::uncertain(answers, max, node_max)
        .into_iter()
        .filter_map(|(i, value)| Some((shard_sets.get(i)?, value)))
        .map(|(shards, value)| async move {
            let one = FacetSearchRequest {
                path: req.path.clone(),
                body: facet_hits::and_filter(&req.body, facet_hits::value_filter(facet, &value)),
            };
            let g = node_io::gather_shards(&shared.cluster, rt, &one, inc.caller(), scope, shards)
                .await;
            g.answers
                .iter()
                .filter(|a| a.response.status == 200)
                .filter_map(|a| a.response.json())
                .map(|v| facet_hits::single_value_answer(&v, &value))
                .collect::<Vec<_>>()
        });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}
