//! `GET /indexes/{uid}/stats` and `GET /stats` across shards. `numberOfDocuments` is counted
//! exactly: each shard's documents once, by a `documents/fetch` with the shard filter and
//! `limit: 0` on one replica per shard. The other figures come from every node of one replica
//! group (each shard lives on RF of them) and are merged by `miroir_filters::search::stats`;
//! `sizeFormat=human` is applied by Miroir to the merged sizes.

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden;
use miroir_filters::routing::{GroupId, NodeScope, ShardId};
use miroir_filters::search::stats as merge;
use serde_json::{json, Value};

use crate::cluster::{reshards, Runtime};
use crate::node_io::{self, ShardRequest};
use crate::request::{Incoming, Reply, DEGRADED};
use crate::shared::Shared;
use crate::upstream::{Caller, NodeRequest};

struct CountRequest {
    path: String,
}

impl ShardRequest for CountRequest {
    fn method(&self) -> &str {
        "POST"
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        match hidden::scoped_filter(None, scope) {
            Some(filter) => json!({"filter": filter, "limit": 0}),
            None => json!({"limit": 0}),
        }
        .to_string()
        .into_bytes()
    }
}

/// The exact number of documents of `index_uid`, and the shards no replica answered for.
async fn count_documents(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    group: GroupId,
) -> Result<(u64, Vec<ShardId>), Reply> {
    let req = CountRequest {
        path: format!("/indexes/{index_uid}/documents/fetch"),
    };
    // Miroir's own credential: the client's key may allow `stats.get` but not the
    // `documents.get` a count needs. The figures are shown only when the client's own key got
    // the stats from the nodes (`group_answers`), which judge its actions and indexes.
    let caller = Caller {
        auth: rt.node_key().or(inc.auth.as_deref()),
        ..inc.caller()
    };
    let scope = (group, shared.cluster.shard_counts.of(index_uid));
    let gathered = node_io::gather(&shared.cluster, rt, &req, caller, scope).await;
    if gathered.over_budget {
        return Err(node_io::scatter::answer_too_large(rt).into());
    }
    let mut total = 0;
    for a in &gathered.answers {
        if a.response.status != 200 {
            return Err(Reply::relay(&a.response));
        }
        total += a
            .response
            .json()
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0);
    }
    Ok((total, gathered.missing))
}

/// `path` answered by every node of one replica group (`first`, then the others): a
/// per-document figure summed over a group counts each document RF times. When no group
/// answers whole, the most complete one, and `true`: its figures need rescaling.
async fn group_answers(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    path: &str,
    first: GroupId,
) -> Result<(Vec<Value>, bool), Reply> {
    let p = rt.reads();
    let groups = std::iter::once(first).chain((0..p.groups()).map(GroupId).filter(|g| *g != first));
    let mut best: Vec<Value> = Vec::new();
    for group in groups {
        let sends = p.group_members(group).map(|n| {
            let req = NodeRequest {
                request_id: Some(&inc.request_id),
                ..NodeRequest::get(path, inc.auth.as_deref())
            };
            let node = &rt.nodes[n.index()];
            async move {
                shared
                    .cluster
                    .client
                    .send(node, &req, rt.config.scatter.node_timeout)
                    .await
            }
        });
        let results = futures::future::join_all(sends).await;
        // A client error (unknown index, key) is what every node would answer.
        if let Some(resp) = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .find(|r| (400..500).contains(&r.status))
        {
            return Err(Reply::relay(resp));
        }
        let answers: Vec<Value> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|r| r.status == 200)
            .filter_map(|r| r.json())
            .collect();
        if answers.len() == results.len() {
            return Ok((answers, false));
        }
        if answers.len() > best.len() {
            best = answers;
        }
    }
    if best.is_empty() {
        return Err(Reply::error(&MiroirError::new(
            Code::NoNodeAvailable,
            "No Meilisearch node answered.",
        )));
    }
    Ok((best, true))
}

/// Marks a reply built without some shards (`shards=...`) or from an incomplete replica
/// group, whose figures other than `numberOfDocuments` are then estimates (`stats=estimated`).
fn with_missing(reply: Reply, missing: &mut Vec<ShardId>, estimated: bool) -> Reply {
    missing.sort_unstable();
    missing.dedup();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|s| s.0.to_string()).collect();
        parts.push(format!("shards={}", list.join(",")));
    }
    if estimated {
        parts.push("stats=estimated".to_owned());
    }
    if parts.is_empty() {
        return reply;
    }
    reply.with_header(DEGRADED, parts.join(";"))
}

/// The query string for the nodes (`?...` or empty), and whether the client asked for
/// `sizeFormat=human`. Sizes are merged as numbers, so the nodes are asked for `raw` ones and
/// Miroir formats the merged figures; every other parameter (and a `sizeFormat` value
/// Meilisearch refuses) goes as sent, for the nodes to judge.
fn node_query(path: &str) -> (String, bool) {
    let Some((_, query)) = path.split_once('?') else {
        return (String::new(), false);
    };
    let mut human = false;
    let pairs: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some(("sizeFormat", "human")) => {
                human = true;
                "sizeFormat=raw"
            }
            _ => pair,
        })
        .collect();
    if pairs.is_empty() {
        return (String::new(), false);
    }
    (format!("?{}", pairs.join("&")), human)
}

/// `GET /indexes/{uid}/stats`.
pub async fn index_stats(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let group = shared.cluster.next_group(rt);
    let (query, human) = node_query(&inc.path);
    let path = format!("/indexes/{index_uid}/stats{query}");
    let (answers, count) = futures::future::join(
        group_answers(shared, rt, inc, &path, group),
        count_documents(shared, rt, inc, index_uid, group),
    )
    .await;
    let (answers, partial) = match answers {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let refs: Vec<&Value> = answers.iter().collect();
    let mut stats = merge::merge_index_stats(&refs, rt.reads().replication_factor());
    // A count that fails keeps the group-derived figure.
    let mut missing = Vec::new();
    if let Ok((count, m)) = count {
        if partial {
            merge::rescale_to(&mut stats, count);
        }
        merge::set_document_count(&mut stats, count);
        missing = m;
    }
    if human {
        merge::index_sizes_to_human(&mut stats);
    }
    with_missing(Reply::json(200, &stats), &mut missing, partial)
}

/// `GET /stats`.
pub async fn global_stats(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    let group = shared.cluster.next_group(rt);
    let (query, human) = node_query(&inc.path);
    let path = format!("/stats{query}");
    let (answers, partial) = match group_answers(shared, rt, inc, &path, group).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let refs: Vec<&Value> = answers.iter().collect();
    let mut stats = merge::merge_global_stats(&refs, rt.reads().replication_factor());
    if let Some(indexes) = stats["indexes"].as_object_mut() {
        // A reshard's shadow index is Miroir's own.
        indexes.retain(|uid, _| !reshards::is_internal(uid));
    }
    let uids: Vec<String> = stats["indexes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let counts = futures::future::join_all(
        uids.iter()
            .map(|uid| count_documents(shared, rt, inc, uid, group)),
    )
    .await;
    let mut missing = Vec::new();
    for (uid, count) in uids.iter().zip(counts) {
        // A count that fails keeps the group-derived figure.
        if let (Ok((n, m)), Some(index)) = (count, stats["indexes"].get_mut(uid)) {
            if partial {
                merge::rescale_to(index, n);
            }
            merge::set_document_count(index, n);
            missing.extend(m);
        }
    }
    if human {
        merge::global_sizes_to_human(&mut stats);
    }
    with_missing(Reply::json(200, &stats), &mut missing, partial)
}

#[cfg(test)]
mod tests {
    use super::node_query;

    #[test]
    fn nodes_are_asked_for_raw_sizes_and_every_other_parameter_as_sent() {
        assert_eq!(node_query("/stats"), (String::new(), false));
        assert_eq!(
            node_query("/stats?showInternalDatabaseSizes=true&sizeFormat=human"),
            (
                "?showInternalDatabaseSizes=true&sizeFormat=raw".to_owned(),
                true
            )
        );
        assert_eq!(
            node_query("/indexes/m/stats?sizeFormat=foo"),
            ("?sizeFormat=foo".to_owned(), false)
        );
    }
}
