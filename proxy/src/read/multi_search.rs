//! `POST /multi-search`: each query runs the per-query path of `search` (plan, scatter,
//! merge); plain requests answer the results in order, federated ones are merged into one
//! list by `miroir_filters::search::merge_federated`. A request Meilisearch would refuse for
//! its shape is handed to one node, which answers Meilisearch's own error.

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::search::{merge_federated, FederatedQuery, Federation, Identity};
use serde_json::{Map, Value};

use super::alias_search;
use super::context::index_context;
use super::search::search_body;
use crate::cluster::aliases::{AliasTable, Resolved};
use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{json_content_type, Incoming, Reply, DEGRADED};
use crate::shared::Shared;
use crate::upstream::NodeRequest;

/// Query parameters Meilisearch refuses inside a federated query.
const NOT_FEDERATED: [&str; 6] = [
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "facets",
    "showPerformanceDetails",
];

/// `POST /multi-search`; each query's `indexUid` may be an alias (resolved with `aliases`,
/// the table the request loaded): its results keep the name the query used.
pub async fn multi_search(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    aliases: &AliasTable,
) -> Reply {
    if let Err(e) = json_content_type(inc.content_type.as_deref().map(str::as_bytes)) {
        return Reply::error(&e);
    }
    let Some((mut queries, federation)) = read(&inc.body) else {
        return node_verdict(shared, rt, inc).await;
    };
    for q in &mut queries {
        q.resolve(aliases);
    }
    if queries.is_empty() {
        // Nothing to split: a node answers the whole request, its key check included (a
        // request without a key is refused there, as on one node).
        return node_answer(shared, rt, inc).await;
    }
    match federation {
        None => plain(shared, rt, inc, queries).await,
        Some(f) => federated(shared, rt, inc, queries, &f).await,
    }
}

type FederationObject = Map<String, Value>;

/// One query: its index and its search parameters.
struct Query {
    /// The index searched (the alias's, for an alias of one index).
    index_uid: String,
    /// The name the query used, which its results show.
    shown: String,
    /// An alias of several indexes: those indexes.
    many: Option<Vec<String>>,
    body: Map<String, Value>,
    federation_options: Option<Value>,
}

impl Query {
    fn resolve(&mut self, aliases: &AliasTable) {
        match aliases.resolve(&self.shown) {
            Resolved::Index => {}
            Resolved::One(target) => self.index_uid = target.to_owned(),
            Resolved::Many(targets) => self.many = Some(targets.to_vec()),
        }
    }
}

/// The queries and the `federation` object, or `None` when the shape is not one Miroir
/// reads (a node then says what is wrong).
fn read(body: &[u8]) -> Option<(Vec<Query>, Option<FederationObject>)> {
    let Value::Object(mut root) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let federation = match root.remove("federation") {
        None | Some(Value::Null) => None,
        Some(Value::Object(f)) => Some(f),
        Some(_) => return None,
    };
    let Some(Value::Array(list)) = root.remove("queries") else {
        return None;
    };
    if !root.is_empty() {
        return None;
    }
    let mut queries = Vec::with_capacity(list.len());
    for q in list {
        let Value::Object(mut body) = q else {
            return None;
        };
        let Some(Value::String(index_uid)) = body.remove("indexUid") else {
            return None;
        };
        let federation_options = body.remove("federationOptions").filter(|v| !v.is_null());
        queries.push(Query {
            shown: index_uid.clone(),
            index_uid,
            many: None,
            body,
            federation_options,
        });
    }
    Some((queries, federation))
}

/// The whole request, as the client sent it, to one node.
async fn ask_node(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
) -> Result<crate::upstream::NodeResponse, MiroirError> {
    let body = [inc.body.clone()];
    let req = NodeRequest {
        content_type: Some("application/json"),
        ..inc.node_request(&body)
    };
    node_io::one(&shared.cluster, rt, &req).await
}

/// Meilisearch's answer to a request Miroir does not take apart: any node's validation error.
async fn node_verdict(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    match ask_node(shared, rt, inc).await {
        Ok(resp) if (400..500).contains(&resp.status) => Reply::relay(&resp),
        _ => Reply::error(&MiroirError::new(
            Code::BadRequest,
            "The multi-search body is not one Miroir can split into its queries.",
        )),
    }
}

/// A node's answer to the whole request, as it gave it.
async fn node_answer(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    match ask_node(shared, rt, inc).await {
        Ok(resp) => Reply::relay(&resp),
        Err(e) => Reply::error(&e),
    }
}

/// Runs every query on its index; the answers in order, or the first failing query's
/// position and answer (see [`inside_query`]).
async fn run_all(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    queries: Vec<Query>,
) -> Result<Vec<(String, Reply)>, (usize, Reply)> {
    let runs = queries.into_iter().map(|q| async move {
        let reply = match &q.many {
            None => search_body(shared, rt, inc, &q.index_uid, q.body).await,
            Some(targets) => alias_search::merged(shared, rt, inc, targets, q.body).await,
        };
        (q.shown, reply)
    });
    let mut replies = futures::future::join_all(runs).await;
    match replies.iter().position(|(_, r)| r.status != 200) {
        Some(i) => Err((i, replies.swap_remove(i).1)),
        None => Ok(replies),
    }
}

/// A query's error as the whole request's: `Inside `.queries[i]`: ` before the message; an
/// unknown index is a 400 here, as Meilisearch 1.50's multi-search answers it (measured
/// against a real node in `tests/search_real.rs`). Meilisearch judges the key before any
/// query, so a missing, invalid or expired key is the request's error, unprefixed; a key (or
/// tenant token) that may not search one query's index fails that query with the generic
/// invalid-key message. `facets_of`: the `federation.facetsByIndex` entry that gave the query
/// its `facets`, named in a facet error as Meilisearch names it.
fn inside_query(i: usize, failed: &Reply, facets_of: Option<&str>) -> Reply {
    let Ok(Value::Object(mut err)) = serde_json::from_slice::<Value>(&failed.body) else {
        return Reply::raw(failed.status, failed.body.clone());
    };
    let code = err.get("code").and_then(Value::as_str).unwrap_or_default();
    let facet_error = code == "invalid_search_facets";
    if code == "missing_authorization_header" {
        return Reply::raw(failed.status, failed.body.clone());
    }
    if code == "invalid_api_key" {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !message.contains("cannot acces the index") {
            return Reply::raw(failed.status, failed.body.clone());
        }
        err.insert(
            "message".into(),
            Value::String("The provided API key is invalid.".into()),
        );
    }
    if let Some(Value::String(message)) = err.get_mut("message") {
        *message = match facets_of.filter(|_| facet_error) {
            Some(index) => format!(
                "Inside `.queries[{i}]`: Inside `.federation.facetsByIndex.{index}`: {message}"
            ),
            None => format!("Inside `.queries[{i}]`: {message}"),
        };
    }
    let status = if err.get("code").and_then(Value::as_str) == Some("index_not_found") {
        400
    } else {
        failed.status
    };
    Reply::json(status, &Value::Object(err))
}

fn degraded_header(replies: &[(String, Reply)]) -> Option<String> {
    replies
        .iter()
        .flat_map(|(_, r)| &r.headers)
        .find(|(name, _)| *name == DEGRADED)
        .map(|(_, v)| v.clone())
}

async fn plain(shared: &Shared, rt: &Runtime, inc: &Incoming, queries: Vec<Query>) -> Reply {
    if queries.iter().any(|q| q.federation_options.is_some()) {
        // `federationOptions` without `federation`: Meilisearch's own error, from a node.
        return node_verdict(shared, rt, inc).await;
    }
    let replies = match run_all(shared, rt, inc, queries).await {
        Ok(r) => r,
        Err((i, failed)) => return inside_query(i, &failed, None),
    };
    // Each result is the index's merged answer with `indexUid` first, spliced as pieces: the
    // answers' own pieces (mostly slices of the node answers) are not copied.
    let degraded = degraded_header(&replies);
    let mut parts = Vec::new();
    let mut out = b"{\"results\":[".to_vec();
    for (i, (uid, reply)) in replies.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"indexUid\":");
        out.extend_from_slice(Value::String(uid).to_string().as_bytes());
        let mut answer = reply
            .parts
            .unwrap_or_else(|| vec![bytes::Bytes::from(reply.body)]);
        answer.retain(|p| !p.is_empty());
        // The answer without its opening brace.
        if let Some(first) = answer.first_mut() {
            *first = first.slice(1..);
        }
        answer.retain(|p| !p.is_empty());
        if answer
            .first()
            .and_then(|p| p.first())
            .is_some_and(|b| *b != b'}')
        {
            out.push(b',');
        }
        parts.push(bytes::Bytes::from(std::mem::take(&mut out)));
        parts.extend(answer);
    }
    out.extend_from_slice(b"]}");
    parts.push(bytes::Bytes::from(out));
    Reply::parts(200, parts).degraded(degraded)
}

/// A federated query on an alias of several indexes becomes one query per index, each shown
/// under its index's uid (their hits are told apart by index); the others stay as they are.
fn expand(queries: Vec<Query>, facets_by_index: &mut Map<String, Value>) -> Vec<Query> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        match q.many {
            None => out.push(q),
            Some(targets) => {
                // `facetsByIndex` may name the alias: each of its indexes gets those facets.
                let facets = facets_by_index.get(&q.shown).cloned();
                for t in targets {
                    if let Some(f) = &facets {
                        facets_by_index
                            .entry(t.clone())
                            .or_insert_with(|| f.clone());
                    }
                    out.push(Query {
                        index_uid: t.clone(),
                        shown: t,
                        many: None,
                        body: q.body.clone(),
                        federation_options: q.federation_options.clone(),
                    });
                }
            }
        }
    }
    out
}

fn usize_param(f: &Map<String, Value>, key: &str) -> Result<Option<usize>, ()> {
    match f.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or(()),
    }
}

/// The `federation` object, or `None` when a node must judge it.
fn read_federation(f: &Map<String, Value>) -> Option<(Federation, Map<String, Value>)> {
    const KNOWN: [&str; 8] = [
        "offset",
        "limit",
        "page",
        "hitsPerPage",
        "facetsByIndex",
        "mergeFacets",
        "distinct",
        "showPerformanceDetails",
    ];
    if f.keys().any(|k| !KNOWN.contains(&k.as_str())) {
        return None;
    }
    let offset = usize_param(f, "offset").ok()?;
    let limit = usize_param(f, "limit").ok()?;
    let page = usize_param(f, "page").ok()?;
    let hpp = usize_param(f, "hitsPerPage").ok()?;
    let facets_by_index = match f.get("facetsByIndex") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return None,
    };
    let merge_facets = match f.get("mergeFacets") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(usize_param(m, "maxValuesPerFacet").ok()?.unwrap_or(100)),
        Some(_) => return None,
    };
    let distinct = match f.get("distinct") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => return None,
    };
    let performance_details = match f.get("showPerformanceDetails") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return None,
    };
    let page = (page.is_some() || hpp.is_some()).then(|| (page.unwrap_or(1), hpp.unwrap_or(20)));
    Some((
        Federation {
            offset: offset.unwrap_or(0),
            limit: limit.unwrap_or(20),
            page,
            merge_facets,
            distinct,
            performance_details,
        },
        facets_by_index,
    ))
}

async fn federated(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    queries: Vec<Query>,
    f: &Map<String, Value>,
) -> Reply {
    let Some((federation, facets_by_index)) = read_federation(f) else {
        return node_verdict(shared, rt, inc).await;
    };
    let twice_distinct =
        federation.distinct.is_some() && queries.iter().any(|q| q.body.contains_key("distinct"));
    if twice_distinct
        || queries
            .iter()
            .any(|q| NOT_FEDERATED.iter().any(|k| q.body.contains_key(*k)))
    {
        // Pagination or facets inside a federated query: Meilisearch's error, from a node.
        return node_verdict(shared, rt, inc).await;
    }
    let mut meta = Vec::with_capacity(queries.len());
    let mut node_queries = Vec::with_capacity(queries.len());
    // Per query, the `facetsByIndex` entry that gave it its facets.
    let mut facets_from: Vec<Option<String>> = Vec::with_capacity(queries.len());
    let mut facets_by_index = facets_by_index;
    for q in expand(queries, &mut facets_by_index) {
        let weight = match q.federation_options.as_ref().map(|o| &o["weight"]) {
            None | Some(Value::Null) => 1.0,
            Some(w) => match w.as_f64() {
                Some(w) if w >= 0.0 => w,
                _ => return node_verdict(shared, rt, inc).await,
            },
        };
        let shown = |key: &str| q.body.get(key) == Some(&Value::Bool(true));
        let show = (
            shown("showRankingScore"),
            shown("showRankingScoreDetails"),
            shown("retrieveVectors"),
        );
        let mut body = q.body;
        // Every query is asked for the whole federated window, with scores to order by; in
        // page mode as a page, so its total is exhaustive as Meilisearch counts it then.
        if federation.page.is_some() {
            body.insert("page".into(), 1.into());
            body.insert("hitsPerPage".into(), federation.depth().into());
        } else {
            body.insert("offset".into(), 0.into());
            body.insert("limit".into(), federation.depth().into());
        }
        // Meilisearch orders the queries' hits by their ranking details (`weighted`).
        body.insert("showRankingScore".into(), true.into());
        body.insert("showRankingScoreDetails".into(), true.into());
        if let Some(d) = &federation.distinct {
            body.insert("distinct".into(), d.clone().into());
        }
        if federation.performance_details {
            body.insert("showPerformanceDetails".into(), true.into());
        }
        let facets = [&q.shown, &q.index_uid]
            .into_iter()
            .find_map(|name| Some((name, facets_by_index.get(name)?)))
            .filter(|(_, v)| !v.is_null());
        facets_from.push(facets.map(|(name, _)| name.clone()));
        if let Some((_, facets)) = facets {
            body.insert("facets".into(), facets.clone());
        }
        // Hits of one index are told apart by primary key. An index Miroir cannot read fails
        // its query below with Meilisearch's error.
        let primary_key = match index_context(shared, rt, inc, &q.index_uid).await {
            Ok(ctx) => ctx.primary_key.clone(),
            Err(_) => None,
        };
        let identity = Identity::retrieve(&mut body, primary_key.as_deref());
        meta.push((q.shown.clone(), weight, show, identity));
        node_queries.push(Query { body, ..q });
    }
    let replies = match run_all(shared, rt, inc, node_queries).await {
        Ok(r) => r,
        Err((i, failed)) => {
            let facets_of = facets_from.get(i).and_then(Option::as_deref);
            return inside_query(i, &failed, facets_of);
        }
    };
    let mut answers = Vec::with_capacity(replies.len());
    for ((index_uid, weight, (show_score, show_details, retrieve_vectors), identity), (_, reply)) in
        meta.into_iter().zip(&replies)
    {
        let answer = match serde_json::from_slice(&reply.bytes()) {
            Ok(v) => v,
            Err(e) => {
                return Reply::error(&MiroirError::new(
                    Code::Internal,
                    format!("a merged search answer is not JSON: {e}"),
                ))
            }
        };
        answers.push(FederatedQuery {
            index_uid,
            weight,
            show_score,
            show_details,
            retrieve_vectors,
            answer,
            identity,
        });
    }
    let merged = merge_federated(&answers, &federation);
    Reply::json(200, &merged).degraded(degraded_header(&replies))
}
