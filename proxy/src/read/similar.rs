//! `GET`/`POST /indexes/{uid}/similar`: the shard holding the target answers `/similar`, the
//! other shards a semantic search for the target's embedding (read from its shard with
//! Miroir's key); `miroir_filters::search::similar` plans the bodies and merges the answers.

use std::time::Instant;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::{shard_for_key, NodeScope, ShardId};
use miroir_filters::search::similar::{self, SimilarPlan};
use miroir_filters::search::ShardBody;
use serde_json::{Map, Value};

use super::context::index_context;
use super::search::{query_to_body, refused_get, relay_node_error};
use crate::cluster::Runtime;
use crate::node_io::{self, Gathered, ShardRequest};
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::upstream::{Caller, NodeResponse};

/// One body, completed with the shard clause of the node's shards.
struct Planned<'a> {
    path: String,
    body: &'a ShardBody,
}

impl ShardRequest for Planned<'_> {
    fn method(&self) -> &str {
        "POST"
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        self.body.node_body(scope)
    }
}

/// The first node error among `gathered`, relayed as the client would get it from one node.
fn refusal(gathered: &Gathered, string_filter: bool) -> Option<Reply> {
    gathered
        .answers
        .iter()
        .find(|a| a.response.status >= 400)
        .map(|a| relay_node_error(&a.response, string_filter))
}

pub async fn similar(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    if inc.method != "GET" {
        return match serde_json::from_slice::<Value>(&inc.body) {
            Ok(Value::Object(body)) => similar_of(shared, rt, inc, index_uid, body).await,
            // Not an object: one node answers Meilisearch's own error.
            _ => forward_as_sent(shared, rt, inc, index_uid).await,
        };
    }
    let reply = similar_of(shared, rt, inc, index_uid, query_to_body(inc.query())).await;
    if !(400..500).contains(&reply.status) {
        return reply;
    }
    refused_get(shared, rt, inc, Some(reply)).await
}

/// `/similar` with the client's parameters as a POST body.
async fn similar_of(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    body: Map<String, Value>,
) -> Reply {
    let started = Instant::now();
    let string_filter = body.get("filter").is_some_and(Value::is_string);
    let ctx = match index_context(shared, rt, inc, index_uid).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let Some(plan) = similar::plan(body.clone(), &ctx) else {
        return ask_one(shared, rt, inc, index_uid, body, string_filter).await;
    };
    let shards = shared.cluster.shard_counts.of(index_uid);
    let owner = shard_for_key(&plan.id, shards);
    let group = shared.cluster.next_group(rt);
    let path = |route: &str| format!("/indexes/{index_uid}/{route}");

    let (owner_body, fetch_body) = match (plan.owner_body(), plan.fetch_body()) {
        (Ok(o), Ok(f)) => (o, f),
        (Err(e), _) | (_, Err(e)) => return Reply::error(&e),
    };
    let owner_req = Planned {
        path: path("similar"),
        body: &owner_body,
    };
    let fetch_req = Planned {
        path: path("documents/fetch"),
        body: &fetch_body,
    };
    // The client's key judges the request; the target's embedding is read with Miroir's own
    // key, since a search key may not read documents.
    let owner_shards = [owner];
    let (owned, fetched) = futures::join!(
        node_io::gather_shards(
            &shared.cluster,
            rt,
            &owner_req,
            inc.caller(),
            (group, shards),
            &owner_shards,
        ),
        node_io::gather_shards(
            &shared.cluster,
            rt,
            &fetch_req,
            Caller {
                auth: rt.node_key(),
                ..inc.caller()
            },
            (group, shards),
            &owner_shards,
        ),
    );
    if let Some(reply) = refusal(&owned, string_filter) {
        return reply;
    }
    if owned.over_budget || fetched.over_budget {
        return node_io::scatter::answer_too_large(rt).into();
    }
    let (Some(owner_answer), Some(fetch_answer)) = (owned.answers.first(), fetched.answers.first())
    else {
        // Without the shard holding the target there is nothing to compare with.
        return Reply::error(&MiroirError::new(
            Code::ShardUnavailable,
            format!(
                "No replica of shard {} (holding the document) answered.",
                owner.0
            ),
        ));
    };
    let embedding = (fetch_answer.response.status == 200)
        .then(|| similar::first_embedding(&fetch_answer.response.body, &plan.embedder))
        .flatten();

    let others: Vec<ShardId> = (0..shards).map(ShardId).filter(|s| *s != owner).collect();
    let rest = match gather_rest(shared, rt, inc, index_uid, &plan, embedding, &others).await {
        Ok(g) => g,
        Err(reply) => return reply,
    };
    if let Some(reply) = refusal(&rest, string_filter) {
        return reply;
    }
    let degraded = match rest.degraded(rt) {
        Ok(d) => d,
        // Nothing answered for the other shards while the owner did: partial, not empty.
        Err(_) if rest.answers.is_empty() && !others.is_empty() => {
            if rt.config.scatter.unavailable_shard_policy
                == miroir_conf::UnavailableShardPolicy::Error
            {
                return Reply::error(&MiroirError::new(
                    Code::ShardUnavailable,
                    format!("No replica of shards {} answered.", list(&rest.missing)),
                ));
            }
            Some(list(&rest.missing))
        }
        Err(e) => return Reply::error(&e),
    };
    let bodies: Vec<&[u8]> = rest
        .answers
        .iter()
        .map(|a| a.response.body.as_ref())
        .collect();
    let reply = match similar::merge(
        &plan,
        &owner_answer.response.body,
        &bodies,
        ctx.max_total_hits,
        started.elapsed().as_millis(),
    ) {
        Ok(body) => Reply::raw(200, body),
        Err(e) => Reply::error(&e),
    };
    reply.degraded(degraded)
}

fn list(shards: &[ShardId]) -> String {
    shards
        .iter()
        .map(|s| s.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The shards not holding the target: a semantic search for its embedding, or only their
/// candidate counts when it has none.
async fn gather_rest(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    plan: &SimilarPlan,
    embedding: Option<Value>,
    others: &[ShardId],
) -> Result<Gathered, Reply> {
    if others.is_empty() {
        return Ok(Gathered::default());
    }
    let body = match &embedding {
        Some(vector) => plan.vector_body(vector),
        None => plan.count_body(),
    }
    .map_err(|e| Reply::error(&e))?;
    let req = Planned {
        path: format!("/indexes/{index_uid}/search"),
        body: &body,
    };
    Ok(node_io::gather_shards(
        &shared.cluster,
        rt,
        &req,
        inc.caller(),
        (
            shared.cluster.next_group(rt),
            shared.cluster.shard_counts.of(index_uid),
        ),
        others,
    )
    .await)
}

/// A body Miroir cannot plan (a missing or malformed parameter): one node answers it with
/// its shards' clause, which is Meilisearch's own validation error.
async fn ask_one(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    body: Map<String, Value>,
    string_filter: bool,
) -> Reply {
    let body = match ShardBody::new(body) {
        Ok(b) => b,
        Err(e) => return Reply::error(&e),
    };
    let req = Planned {
        path: format!("/indexes/{index_uid}/similar"),
        body: &body,
    };
    match one_replica(shared, rt, inc, (&req, index_uid)).await {
        Ok(resp) if resp.status >= 400 => relay_node_error(&resp, string_filter),
        Ok(resp) => Reply::relay(&resp),
        Err(reply) => reply,
    }
}

/// `req` answered by one replica of shard 0 (any node judges a request it cannot run).
async fn one_replica(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    (req, index_uid): (&impl ShardRequest, &str),
) -> Result<NodeResponse, Reply> {
    let gathered = node_io::gather_shards(
        &shared.cluster,
        rt,
        req,
        inc.caller(),
        (
            shared.cluster.next_group(rt),
            shared.cluster.shard_counts.of(index_uid),
        ),
        &[ShardId(0)],
    )
    .await;
    gathered
        .answers
        .into_iter()
        .next()
        .map(|a| a.response)
        .ok_or_else(|| {
            Reply::error(&MiroirError::new(
                Code::ShardUnavailable,
                "No replica of shard 0 answered.",
            ))
        })
}

/// A body that is not a JSON object, sent unchanged to one node.
async fn forward_as_sent(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    struct Raw<'a> {
        path: String,
        body: &'a [u8],
    }
    impl ShardRequest for Raw<'_> {
        fn method(&self) -> &str {
            "POST"
        }
        fn path(&self) -> &str {
            &self.path
        }
        fn body(&self, _scope: NodeScope<'_>) -> Vec<u8> {
            self.body.to_vec()
        }
    }
    let req = Raw {
        path: format!("/indexes/{index_uid}/similar"),
        body: &inc.body,
    };
    one_replica(shared, rt, inc, (&req, index_uid))
        .await
        .map_or_else(|reply| reply, |resp| Reply::relay(&resp))
}
