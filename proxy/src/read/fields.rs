//! `POST /indexes/{uid}/fields`: each node knows the fields of its own documents, so the
//! answer is the union over the nodes, listed as one node would list them
//! (`miroir_filters::search::fields`).

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::search::fields;
use serde_json::Value;

use super::context::index_context;
use crate::cluster::Runtime;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::upstream::NodeRequest;

pub async fn fields(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let Some(req) = fields::read_request(&inc.body) else {
        // Not a body Miroir can read: one node answers with Meilisearch's own error.
        return ask_nodes(shared, rt, inc, (index_uid, &inc.body))
            .await
            .map_or_else(|reply| reply, |answers| Reply::json(200, &answers[0]));
    };
    let answers = match ask_nodes(shared, rt, inc, (index_uid, &req.node_body)).await {
        Ok(answers) => answers,
        Err(reply) => return reply,
    };
    let ctx = match index_context(shared, rt, inc, index_uid).await {
        Ok(ctx) => ctx,
        Err(reply) => return reply,
    };
    let displayed = ctx
        .displayed_attributes
        .as_deref()
        .filter(|list| !list.iter().any(|a| a == "*"));
    Reply::json(200, &fields::merge(&answers, displayed, &req))
}

/// The field lists of every node that serves reads (the client's key judged by each), or the
/// answer to give instead: a refusal every node shares, or an error when some node that holds
/// documents could not be asked.
async fn ask_nodes(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    (index_uid, body): (&str, &[u8]),
) -> Result<Vec<Value>, Reply> {
    let chunks = [Bytes::copy_from_slice(body)];
    let req = NodeRequest::json("POST", &inc.path, inc.auth.as_deref(), &chunks)
        .for_request(&inc.request_id);
    let asks = rt
        .nodes
        .iter()
        .filter(|n| shared.cluster.is_healthy(&n.id))
        .map(|n| async move {
            (
                n,
                shared
                    .cluster
                    .client
                    .send(n, &req, rt.config.scatter.node_timeout)
                    .await,
            )
        });
    let p = rt.reads();
    let mut answers = Vec::new();
    let mut covered = vec![false; shared.cluster.shard_counts.of(index_uid) as usize];
    for (node, result) in futures::future::join_all(asks).await {
        match result {
            Ok(resp) if resp.status == 200 => {
                answers.extend(resp.json());
                for shard in p
                    .index_of(node.id.as_str())
                    .map(|i| p.shards_of(i))
                    .unwrap_or(&[])
                {
                    if let Some(c) = covered.get_mut(shard.0 as usize) {
                        *c = true;
                    }
                }
            }
            Ok(resp) if resp.judged() => return Err(Reply::relay(&resp)),
            _ => {}
        }
    }
    if answers.is_empty() || covered.contains(&false) {
        return Err(Reply::error(&MiroirError::new(
            Code::ShardUnavailable,
            "Some shards of this index have no node answering; the field list would be incomplete.",
        )));
    }
    Ok(answers)
}
