//! A search on an alias of several indexes: one federated multi-search over its indexes (the
//! client's query on each, the client's page as the federation's), answered in the shape of
//! a plain search. Hits are ordered as federation orders them (by ranking score, or by the
//! `sort` values), so the indexes should share their ranking settings.

use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

use super::context::index_context;
use super::multi_search::multi_search;
use super::search::query_to_body;
use crate::cluster::aliases::AliasTable;
use crate::cluster::Runtime;
use crate::request::{json_object, Incoming, Reply};
use crate::shared::Shared;

/// Parameters of a plain search that a federated search takes in `federation`.
const PAGE: [&str; 5] = [
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "showPerformanceDetails",
];

/// `GET`/`POST /indexes/{alias}/search` for an alias of `targets`.
pub async fn search(shared: &Shared, rt: &Runtime, inc: &Incoming, targets: &[String]) -> Reply {
    let body = if inc.method == "GET" {
        query_to_body(inc.query())
    } else {
        match json_object(inc.content_type.as_deref().map(str::as_bytes), &inc.body) {
            Ok(body) => body,
            Err(e) => return e.into(),
        }
    };
    merged(shared, rt, inc, targets, body).await
}

/// The search `body` over `targets`, merged (boxed: a multi-search query on such an alias
/// comes here from the multi-search it then runs).
pub fn merged<'a>(
    shared: &'a Shared,
    rt: &'a Runtime,
    inc: &'a Incoming,
    targets: &'a [String],
    mut body: Map<String, Value>,
) -> BoxFuture<'a, Reply> {
    Box::pin(async move {
        let mut federation = Map::new();
        for key in PAGE {
            if let Some(v) = body.remove(key) {
                federation.insert(key.into(), v);
            }
        }
        if let Some(facets) = body.remove("facets").filter(|f| !f.is_null()) {
            // Facet values are cut as the first index cuts them.
            let max_values = match index_context(shared, rt, inc, &targets[0]).await {
                Ok(ctx) => ctx.max_values_per_facet,
                Err(reply) => return reply,
            };
            let by_index: Map<String, Value> = targets
                .iter()
                .map(|t| (t.clone(), facets.clone()))
                .collect();
            federation.insert("facetsByIndex".into(), Value::Object(by_index));
            federation.insert(
                "mergeFacets".into(),
                json!({ "maxValuesPerFacet": max_values }),
            );
        }
        let query = body.get("q").cloned().unwrap_or(Value::Null);
        let queries: Vec<Value> = targets
            .iter()
            .map(|t| {
                let mut q = body.clone();
                q.insert("indexUid".into(), t.clone().into());
                Value::Object(q)
            })
            .collect();
        let request = json!({ "federation": federation, "queries": queries });
        let fed = Incoming {
            method: "POST".into(),
            path: "/multi-search".into(),
            content_type: Some("application/json".into()),
            body: request.to_string().into(),
            route: "multi_search",
            index_uid: None,
            ..inc.clone()
        };
        // The targets are indexes (an alias never points to an alias).
        let reply = multi_search(shared, rt, &fed, &AliasTable::default()).await;
        as_plain_search(reply, query)
    })
}

/// A federated answer as a plain search's: no `_federation` in hits, no `facetsByIndex`, the
/// query echoed; an error without the federated query it names.
fn as_plain_search(reply: Reply, query: Value) -> Reply {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&reply.bytes()) else {
        return reply;
    };
    let headers = reply.headers;
    let mut out = Map::new();
    if reply.status != 200 {
        for (k, mut v) in answer {
            if let (true, Some(m)) = (k == "message", v.as_str()) {
                let plain = match m.strip_prefix("Inside `.queries[") {
                    Some(rest) => rest.split_once("]`: ").map_or(m, |(_, msg)| msg),
                    None => m,
                };
                v = plain.into();
            }
            out.insert(k, v);
        }
        let mut r = Reply::json(reply.status, &Value::Object(out));
        r.headers = headers;
        return r;
    }
    for (k, mut v) in answer {
        match k.as_str() {
            "facetsByIndex" => continue,
            "hits" => {
                if let Value::Array(hits) = &mut v {
                    for hit in hits {
                        if let Value::Object(h) = hit {
                            h.remove("_federation");
                        }
                    }
                }
                out.insert(k, v);
                out.insert(
                    "query".into(),
                    match &query {
                        Value::Null => "".into(),
                        q => q.clone(),
                    },
                );
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    let mut r = Reply::json(200, &Value::Object(out));
    r.headers = headers;
    r
}
