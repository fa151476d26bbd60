//! `GET`/`POST /indexes/{uid}/search`: planned and merged by `miroir_filters::search`,
//! scattered over one replica per shard by `scatter`.

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::query;
use miroir_filters::routing::NodeScope;
use miroir_filters::search::{self as plan, hybrid, Depths, IndexContext, Merged, SearchPlan};
use serde_json::{Map, Value};

use super::context::index_context;
use crate::cluster::Runtime;
use crate::node_io::{self, ShardRequest};
use crate::request::{json_object, Incoming, Reply, DEGRADED, STREAM_FROM};
use crate::shared::Shared;
use crate::upstream::NodeResponse;

struct SearchRequest<'a> {
    path: String,
    plan: &'a SearchPlan,
    /// The number of shards the search asks, when its nodes may be asked for fewer hits than
    /// the window (`miroir_filters::search::depth`); not when a filter pins the shards.
    shallow_over: Option<usize>,
}

impl SearchRequest<'_> {
    /// The hits asked of a node answering for `held` shards.
    fn depth(&self, held: usize) -> usize {
        match self.shallow_over {
            Some(asked) => self.plan.node_depth(held, asked),
            None => self.plan.merge_plan().depth,
        }
    }
}

impl ShardRequest for SearchRequest<'_> {
    fn method(&self) -> &str {
        "POST"
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        self.plan
            .node_body_at(scope, self.depth(scope.shards.len()))
    }
}

/// The rest of a node's hits, after the first `from` it gave.
struct ContinueRequest<'a> {
    search: &'a SearchRequest<'a>,
    from: usize,
}

impl ShardRequest for ContinueRequest<'_> {
    fn method(&self) -> &str {
        "POST"
    }

    fn path(&self) -> &str {
        &self.search.path
    }

    fn body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        self.search.plan.continuation_body(scope, self.from)
    }
}

/// Meilisearch's GET search parameters as the equivalent POST body: lists split on commas
/// (see below for what a node trims and drops), `vector` as numbers, `hybridEmbedder` and
/// `hybridSemanticRatio` as the `hybrid` object, a `filter` written as a JSON array as that
/// array. A value that does not convert stays a string; the search then fails and the client
/// gets the node's own answer to the GET (see [`search`]).
pub fn query_to_body(query: &str) -> Map<String, Value> {
    const LISTS: [&str; 7] = [
        "attributesToRetrieve",
        "attributesToCrop",
        "attributesToHighlight",
        "facets",
        "sort",
        "attributesToSearchOn",
        "locales",
    ];
    const NUMBERS: [&str; 6] = [
        "offset",
        "limit",
        "page",
        "hitsPerPage",
        "cropLength",
        "rankingScoreThreshold",
    ];
    const BOOLS: [&str; 5] = [
        "showMatchesPosition",
        "showRankingScore",
        "showRankingScoreDetails",
        "retrieveVectors",
        "showPerformanceDetails",
    ];
    let number = |v: String| {
        v.parse::<u64>()
            .map(Value::from)
            .or_else(|_| v.parse::<f64>().map(Value::from))
            .unwrap_or(Value::String(v))
    };
    let mut body = Map::new();
    let mut hybrid = Map::new();
    for (k, v) in query::pairs(query) {
        let (k, v) = (k.as_ref(), v.into_owned());
        let value = if LISTS.contains(&k) {
            // As a node reads them: an empty value is no list, empty items are dropped, and
            // sort rules (only) are trimmed.
            if v.is_empty() {
                continue;
            }
            let items = v.split(',').filter(|s| !s.is_empty());
            let items = items.map(|s| if k == "sort" { s.trim() } else { s });
            Value::Array(items.map(|s| Value::String(s.to_owned())).collect())
        } else if NUMBERS.contains(&k) {
            number(v)
        } else if BOOLS.contains(&k) {
            match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(v),
            }
        } else if k == "vector" {
            let floats: Option<Vec<Value>> = v
                .split(',')
                .map(|f| f.trim().parse::<f64>().ok().map(Value::from))
                .collect();
            floats.map_or(Value::String(v), Value::Array)
        } else if k == "hybridEmbedder" {
            hybrid.insert("embedder".into(), Value::String(v));
            continue;
        } else if k == "hybridSemanticRatio" {
            hybrid.insert("semanticRatio".into(), number(v));
            continue;
        } else if k == "filter" && v.trim_start().starts_with('[') {
            serde_json::from_str::<Value>(&v).unwrap_or(Value::String(v))
        } else {
            Value::String(v)
        };
        body.insert(k.to_owned(), value);
    }
    if !hybrid.is_empty() {
        body.insert("hybrid".into(), Value::Object(hybrid));
    }
    body
}

/// A node's error for the client: Meilisearch's own, without the shard field it lists among
/// the filterable attributes or the shard clause it echoes in a filter error (the client
/// never wrote either). `string_filter`: the client's filter was one expression, which the
/// node saw as the first of two array elements, echoed as `(expr) AND (clause)`.
pub(crate) fn relay_node_error(resp: &NodeResponse, string_filter: bool) -> Reply {
    const FIELD: &str = "`_miroir_shard`";
    const CLAUSE: &str = " AND (\"_miroir_shard\" IN [";
    let Some(Value::Object(mut err)) = resp.json() else {
        return Reply::relay(resp);
    };
    // The node lacks the shard field among its filterable attributes (it missed the settings,
    // or they are still queued there): not the client's fault, and the field stays hidden. The
    // settings drift detector puts it back.
    if err
        .get("message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.contains("Attribute `_miroir_shard` is not filterable"))
    {
        return Reply::error(&MiroirError::new(
            Code::ShardUnavailable,
            "A node of this index is not ready to answer yet (its settings are being brought in line with the others); retry in a moment.",
        ));
    }
    match err.get_mut("message") {
        Some(Value::String(m)) if m.contains(FIELD) || m.contains(CLAUSE) => {
            let mut out = m
                .replace(&format!("{FIELD}, "), "")
                .replace(&format!(", {FIELD}"), "");
            if let Some(at) = out.rfind(CLAUSE).filter(|_| out.ends_with("])")) {
                out.truncate(at);
                if string_filter {
                    out = unwrap_echo(&out).unwrap_or(out);
                }
            }
            *m = out;
        }
        _ => return Reply::relay(resp),
    }
    Reply::json(resp.status, &Value::Object(err))
}

/// `...\n{from}:{to} (expr)` as one node given `expr` alone writes it: `{from-1}:{to-1} expr`.
fn unwrap_echo(message: &str) -> Option<String> {
    let (head, last) = message.rsplit_once('\n')?;
    let (span, expr) = last.split_once(' ')?;
    let (from, to) = span.split_once(':')?;
    let (from, to) = (from.parse::<usize>().ok()?, to.parse::<usize>().ok()?);
    let inner = expr.strip_prefix('(')?.strip_suffix(')')?;
    Some(format!(
        "{head}\n{}:{} {inner}",
        from.checked_sub(1)?,
        to.checked_sub(1)?
    ))
}

pub async fn search(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    if inc.method != "GET" {
        // Meilisearch reads the payload before it looks for the index.
        return match json_object(inc.content_type.as_deref().map(str::as_bytes), &inc.body) {
            Ok(body) => search_body(shared, rt, inc, index_uid, body).await,
            Err(e) => Reply::error(&e),
        };
    }
    let query = inc.path.split_once('?').map_or("", |(_, q)| q);
    let body = query_to_body(query);
    let mut refused = None;
    if !refused_as_written(&body) {
        let reply = search_body(shared, rt, inc, index_uid, body).await;
        if !(400..500).contains(&reply.status) {
            return reply;
        }
        refused = Some(reply);
    }
    refused_get(shared, rt, inc, refused).await
}

/// A GET search or `/similar` whose POST form was `refused` (`None`: not even tried): a
/// node names GET parameters in its errors (`Invalid value in parameter `limit``), which the
/// POST form cannot reproduce, so the client gets a node's own refusal of the GET. A node
/// that takes the GET answers over its own documents only: the POST refusal then stands, as
/// it does when no node answers.
pub(crate) async fn refused_get(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    refused: Option<Reply>,
) -> Reply {
    match node_io::one(&shared.cluster, rt, &inc.node_request(&[])).await {
        Ok(resp) if resp.status >= 400 => relay_node_error(&resp, false),
        Ok(resp) => refused.unwrap_or_else(|| Reply::relay(&resp)),
        Err(e) => refused.unwrap_or_else(|| Reply::error(&e)),
    }
}

/// Whether a node refuses these GET parameters whatever the index holds: a `vector` or
/// `hybridSemanticRatio` that is not numbers, a ratio outside 0..=1, either without
/// `hybridEmbedder`. The search is not run; the node's answer to the GET is the client's.
fn refused_as_written(body: &Map<String, Value>) -> bool {
    let hybrid = body.get("hybrid");
    let ratio = hybrid.and_then(|h| h.get("semanticRatio"));
    body.get("vector").is_some_and(Value::is_string)
        || ratio.is_some_and(|r| r.as_f64().is_none_or(|r| !(0.0..=1.0).contains(&r)))
        || hybrid.is_some_and(|h| h.get("embedder").is_none())
        || (body.contains_key("vector") && hybrid.is_none())
}

/// One search of `index_uid`: planned, scattered over one replica per shard and merged. The
/// per-query path of both `/indexes/{uid}/search` and `/multi-search`. A hybrid search is
/// two such searches, combined as one node combines its halves (`search::hybrid`).
pub(crate) async fn search_body(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    body: Map<String, Value>,
) -> Reply {
    let ctx = match index_context(shared, rt, inc, index_uid).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    if let Some(split) = hybrid::split(&body, &ctx) {
        return hybrid(shared, rt, inc, index_uid, &ctx, split).await;
    }
    scatter_merge(shared, rt, inc, index_uid, &ctx, body).await
}

/// Both halves scattered and merged side by side, then combined. A failing half answers its
/// error; the semantic half's first, as one node judges the embedder and the vector before it
/// runs the keyword search.
async fn hybrid(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    ctx: &IndexContext,
    split: hybrid::HybridSearch,
) -> Reply {
    let half =
        |body: &Map<String, Value>| scatter_merge(shared, rt, inc, index_uid, ctx, body.clone());
    let (keyword, semantic) =
        futures::future::join(half(&split.keyword), half(&split.semantic)).await;
    if semantic.status != 200 {
        // A query the embedder cannot embed (a `userProvided` embedder and no `vector`): one
        // node answers the keyword results alone, with no semantic hit.
        let unembeddable = serde_json::from_slice::<Value>(&semantic.bytes())
            .is_ok_and(|e| e["code"] == "vector_embedding_error");
        if unembeddable && keyword.status == 200 {
            if let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(&keyword.bytes())
            {
                answer.insert("semanticHitCount".into(), 0.into());
                return Reply::json(200, &Value::Object(answer)).degraded(
                    keyword
                        .headers
                        .iter()
                        .find(|(name, _)| *name == DEGRADED)
                        .map(|(_, v)| v.clone()),
                );
            }
        }
        return semantic;
    }
    if keyword.status != 200 {
        return keyword;
    }
    let degraded = [&keyword, &semantic]
        .iter()
        .flat_map(|r| &r.headers)
        .find(|(name, _)| *name == DEGRADED)
        .map(|(_, v)| v.clone());
    match split.combine(&keyword.bytes(), &semantic.bytes()) {
        Ok(body) => Reply::raw(200, body).degraded(degraded),
        Err(e) => Reply::error(&e),
    }
}

/// One search planned, scattered over one replica per shard and merged.
async fn scatter_merge(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    ctx: &IndexContext,
    body: Map<String, Value>,
) -> Reply {
    // Whether the filter is one expression, for a node's filter error.
    let string_filter = body.get("filter").is_some_and(Value::is_string);
    let planned = plan::plan_value(body, ctx);
    let planned = match planned {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let index_shards = shared.cluster.shard_counts.of(index_uid);
    // A filter pinning primary keys asks only their shards.
    let shards = planned.shards_to_ask(index_shards);
    let pinned = shards.len() < index_shards as usize;
    let mut req = SearchRequest {
        path: format!("/indexes/{index_uid}/search"),
        plan: &planned,
        shallow_over: (!pinned).then_some(shards.len()),
    };
    let scope = (shared.cluster.next_group(rt), index_shards);
    loop {
        let gathered =
            node_io::gather_shards(&shared.cluster, rt, &req, inc.caller(), scope, &shards).await;
        if let Some(refused) = gathered.answers.iter().find(|a| a.response.status >= 400) {
            return relay_node_error(&refused.response, string_filter);
        }
        let degraded = match gathered.degraded(rt) {
            Ok(d) => d,
            Err(e) => return Reply::error(&e),
        };
        let Some((merged, continuations)) =
            merge(shared, rt, inc, &req, &gathered, index_shards).await
        else {
            // A node asked for the rest of its hits did not answer: whole windows, from any
            // replica. Those are never continued, so this runs once at most.
            if req.shallow_over.take().is_some() {
                continue;
            }
            return Reply::error(&MiroirError::new(
                Code::ShardUnavailable,
                "A node stopped answering during the search; retry.",
            ));
        };
        let answers: Vec<&NodeResponse> = gathered
            .answers
            .iter()
            .map(|a| &a.response)
            .chain(&continuations)
            .collect();
        return merged_reply(merged, &answers, string_filter).degraded(degraded);
    }
}

/// The client's answer from the merge of `answers`.
fn merged_reply(
    merged: Result<Merged<plan::Parts>, MiroirError>,
    answers: &[&NodeResponse],
    string_filter: bool,
) -> Reply {
    let bodies: Vec<&[u8]> = answers.iter().map(|r| r.body.as_ref()).collect();
    match merged {
        // A small answer is written in one piece anyway: copied together now.
        Ok(Merged::Body(parts)) if parts.len() < STREAM_FROM => {
            Reply::raw(200, parts.concat(&bodies))
        }
        Ok(Merged::Body(parts)) => {
            let buffers: Vec<bytes::Bytes> = answers.iter().map(|r| r.body.clone()).collect();
            Reply::parts(200, parts.into_bytes(&buffers))
        }
        Ok(Merged::NodeError { answer }) => match answers.get(answer) {
            Some(refused) => relay_node_error(refused, string_filter),
            None => Reply::error(&MiroirError::new(Code::Internal, "no such node answer")),
        },
        // Continuations run to the end of the window: a second merge is never short.
        Ok(Merged::Deeper { .. }) => Reply::error(&MiroirError::new(
            Code::Internal,
            "a node's continuation fell short of the window",
        )),
        Err(e) => Reply::error(&e),
    }
}

/// The merge of `gathered`, after asking the nodes that may hold more of the window for the
/// rest of their hits; with those continuations' answers. `None`: a node asked for the rest
/// did not answer.
async fn merge(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    req: &SearchRequest<'_>,
    gathered: &node_io::Gathered,
    index_shards: u32,
) -> Option<(Result<Merged<plan::Parts>, MiroirError>, Vec<NodeResponse>)> {
    let window = req.plan.merge_plan().depth;
    let mut depths = Depths {
        asked: gathered
            .answers
            .iter()
            .map(|a| Some(req.depth(a.shards.len())).filter(|k| *k < window))
            .collect(),
        continued: Vec::new(),
    };
    let firsts: Vec<&[u8]> = gathered
        .answers
        .iter()
        .map(|a| a.response.body.as_ref())
        .collect();
    let merged = plan::merge_parts_at(req.plan, &firsts, &depths);
    let Ok(Merged::Deeper { answers: short }) = merged else {
        return Some((merged, Vec::new()));
    };
    let asks = short.iter().filter_map(|&i| {
        let answer = gathered.answers.get(i)?;
        let from = depths.asked.get(i).copied().flatten()?;
        Some(async move {
            let more = ContinueRequest { search: req, from };
            let place = (answer.node, index_shards);
            let resp = node_io::ask_node(
                &shared.cluster,
                rt,
                &more,
                inc.caller(),
                place,
                &answer.shards,
            )
            .await;
            resp.filter(|r| r.status == 200).map(|r| (i, r))
        })
    });
    let mut continuations = Vec::with_capacity(short.len());
    for answered in futures::future::join_all(asks).await {
        let (of, resp) = answered?;
        depths
            .continued
            .push((of, firsts.len() + continuations.len()));
        continuations.push(resp);
    }
    if continuations.len() < short.len() {
        return None;
    }
    let all: Vec<&[u8]> = firsts
        .iter()
        .copied()
        .chain(continuations.iter().map(|r| r.body.as_ref()))
        .collect();
    Some((plan::merge_parts_at(req.plan, &all, &depths), continuations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_lists_are_read_as_a_node_reads_them() {
        let body = query_to_body(
            "q=x&facets=&locales=&sort=year:desc,%20id:asc&attributesToRetrieve=a,,b",
        );
        assert!(!body.contains_key("facets") && !body.contains_key("locales"));
        assert_eq!(body["sort"], serde_json::json!(["year:desc", "id:asc"]));
        assert_eq!(body["attributesToRetrieve"], serde_json::json!(["a", "b"]));
        // Only sort rules are trimmed: a node refuses a facet named ` year`.
        assert_eq!(
            query_to_body("facets=a,%20b")["facets"],
            serde_json::json!(["a", " b"])
        );
    }

    #[test]
    fn a_node_answer_without_a_message_is_relayed_not_a_panic() {
        let resp = NodeResponse {
            status: 200,
            headers: Vec::new(),
            body: bytes::Bytes::from_static(br#"{"hits":[]}"#),
        };
        assert_eq!(relay_node_error(&resp, false).status, 200);
    }

    fn node_error(message: &str) -> NodeResponse {
        NodeResponse {
            status: 400,
            headers: Vec::new(),
            body: serde_json::to_vec(&serde_json::json!({
                "message": message, "code": "invalid_search_filter",
                "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#invalid_search_filter",
            }))
            .unwrap_or_default()
            .into(),
        }
    }

    #[test]
    fn node_errors_never_name_the_shard_field() {
        let reply = relay_node_error(
            &node_error("Index `m`: Attribute `_miroir_shard` is not filterable. This index does not have configured filterable attributes.\n2:15 \"_miroir_shard\" IN [\".\"]"),
            false,
        );
        assert_eq!(reply.status, 503);
        let body = String::from_utf8(reply.body).unwrap_or_default();
        assert!(
            body.contains("miroir_shard_unavailable") && !body.contains("_miroir_shard`"),
            "{body}"
        );

        let reply = relay_node_error(
            &node_error("Index `m`: Attribute `nope` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `g`.\n3:7 (\"nope\" = \"1\") AND (\"_miroir_shard\" IN [\"-\", \".-\"])"),
            true,
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        assert_eq!(
            body["message"],
            "Index `m`: Attribute `nope` is not filterable. Available filterable attribute patterns are: `g`.\n2:6 \"nope\" = \"1\""
        );
    }
}
