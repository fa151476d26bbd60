//! `GET`/`POST /indexes/{uid}/search`: planned and merged by `miroir_filters::search`,
//! scattered over one replica per shard by `scatter`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir_filters::routing::{GroupId, ShardId};
use miroir_filters::search::{
    self as plan, display, FacetOrder, IndexContext, Merged, NodeDisplay, SearchPlan,
};
use serde_json::{Map, Value};

use crate::broadcast::{self, Incoming, Reply};
use crate::scatter::{self, ShardRequest};
use crate::state::{Runtime, Shared};
use crate::write::DEGRADED;

/// How long an index's settings are trusted before they are read again.
const CONTEXT_TTL: Duration = Duration::from_secs(2);

struct SearchRequest<'a> {
    path: String,
    plan: &'a SearchPlan,
}

impl ShardRequest for SearchRequest<'_> {
    fn method(&self) -> &str {
        "POST"
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn body(&self, shards: &[ShardId]) -> Vec<u8> {
        self.plan.node_body(shards)
    }
}

/// The settings a merge depends on, read from one node and cached briefly.
pub(crate) async fn index_context(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
) -> Result<Arc<IndexContext>, Reply> {
    if let Some(entry) = shared.contexts.get(index_uid) {
        if entry.0.elapsed() < CONTEXT_TTL {
            return Ok(entry.1.clone());
        }
    }
    let path = format!("/indexes/{index_uid}/settings");
    // Miroir's own credential: a client's key may allow searching but not reading settings.
    let resp = broadcast::read_any(shared, rt, &path, rt.node_key()).await?;
    if resp.status != 200 {
        // What the client may know: an empty search with its own key answers exactly what one
        // node would (403 for a key not allowed on the index, else 404).
        let probe = format!("/indexes/{index_uid}/search?limit=0");
        let seen = broadcast::read_any(shared, rt, &probe, inc.auth.as_deref()).await?;
        return Err(Reply::relay(if seen.status >= 400 { &seen } else { &resp }));
    }
    let ctx = Arc::new(context_from_settings(&resp.json().unwrap_or(Value::Null)));
    shared
        .contexts
        .insert(index_uid.to_owned(), (Instant::now(), ctx.clone()));
    Ok(ctx)
}

/// After a client's settings update that changes what the nodes must display (see
/// `miroir_filters::search::display`): the nodes' displayed list with every field the merge
/// reads, sent to every node behind the client's update (a settings task each, not a
/// Miroir task). Computed from the nodes' settings with their queued settings updates and the
/// client's update applied, so it is right unless another settings update reaches the nodes
/// between that read and this update.
pub(crate) async fn repair_display(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    shared.contexts.remove(index_uid);
    let path = format!("/indexes/{index_uid}/settings");
    let Ok(resp) = broadcast::read_any(shared, rt, &path, rt.node_key()).await else {
        return;
    };
    let current = match (resp.status, resp.json()) {
        (200, Some(Value::Object(map))) => map,
        // Created by this very update.
        (404, _) => Map::new(),
        _ => return,
    };
    // Settings updates still queued on the nodes (the client's own among them) apply first:
    // their details carry the values they set.
    let pending = format!(
        "/tasks?indexUids={index_uid}&types=settingsUpdate&statuses=enqueued,processing&limit=1000"
    );
    let mut current = current;
    if let Ok(resp) = broadcast::read_any(shared, rt, &pending, rt.node_key()).await {
        let mut tasks: Vec<(u64, Vec<u8>)> = resp
            .json()
            .and_then(|v| v["results"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| Some((t["uid"].as_u64()?, serde_json::to_vec(&t["details"]).ok()?)))
            .collect();
        tasks.sort_unstable_by_key(|t| t.0);
        for (_, details) in &tasks {
            if let Some(next) = display::after_update(&current, "settings.update", details) {
                current = next;
            }
        }
    }
    let Some(after) = display::after_update(&current, inc.route, &inc.body) else {
        return;
    };
    let Some(wanted) = display::repair(&after) else {
        return;
    };
    let body = [bytes::Bytes::from(
        serde_json::json!({ "displayedAttributes": wanted }).to_string(),
    )];
    let req = crate::upstream::NodeRequest {
        method: "PATCH",
        path: &path,
        auth: rt.node_key(),
        content_type: Some("application/json"),
        body: &body,
        request_id: Some(&inc.request_id),
    };
    let results = broadcast::to_all(shared, rt, req, rt.config.scatter.node_timeout).await;
    if !results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|resp| resp.status == 202))
    {
        log::warn!(target: "miroir::settings", "could not widen the displayed attributes of `{index_uid}` on every node: a sort on a field hidden from clients may not merge exactly");
    }
}

fn context_from_settings(s: &Value) -> IndexContext {
    let defaults = IndexContext::default();
    let max_total_hits = s["pagination"]["maxTotalHits"]
        .as_u64()
        .map_or(defaults.max_total_hits, |n| n as usize);
    let max_values = s["faceting"]["maxValuesPerFacet"]
        .as_u64()
        .map_or(defaults.max_values_per_facet, |n| n as usize);
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
        max_values_per_facet: max_values,
        node_max_values_per_facet: max_values,
        sort_facet_values_by,
    }
}

/// Meilisearch's GET search parameters as the equivalent POST body.
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
    let mut body = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = miroir_filters::routes::percent_decode(&v.replace('+', " "))
            .map(|c| c.into_owned())
            .unwrap_or_default();
        let value = if LISTS.contains(&k) {
            Value::Array(
                v.split(',')
                    .map(|s| Value::String(s.trim().to_owned()))
                    .collect(),
            )
        } else if NUMBERS.contains(&k) {
            // An unparsable number stays a string: the nodes answer Meilisearch's own error.
            v.parse::<u64>()
                .map(Value::from)
                .or_else(|_| v.parse::<f64>().map(Value::from))
                .unwrap_or(Value::String(v))
        } else if BOOLS.contains(&k) {
            match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(v),
            }
        } else {
            Value::String(v)
        };
        body.insert(k.to_owned(), value);
    }
    body
}

/// A node's error for the client: Meilisearch's own, without the shard field it lists among
/// the filterable attributes or the shard clause it echoes in a filter error (the client
/// never wrote either). `string_filter`: the client's filter was one expression, which the
/// node saw as the first of two array elements, echoed as `(expr) AND (clause)`.
pub(crate) fn relay_node_error(resp: &crate::upstream::NodeResponse, string_filter: bool) -> Reply {
    const FIELD: &str = "`_miroir_shard`";
    const CLAUSE: &str = " AND (\"_miroir_shard\" IN [";
    let Some(Value::Object(mut err)) = resp.json() else {
        return Reply::relay(resp);
    };
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

/// The replica group a read goes to, rotating.
pub(crate) fn next_group(shared: &Shared, rt: &Runtime) -> GroupId {
    let groups = rt.placement().groups().max(1);
    GroupId((shared.read_rotation.fetch_add(1, Ordering::Relaxed) % u64::from(groups)) as u32)
}

pub async fn search(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let body = if inc.method == "GET" {
        let query = inc.path.split_once('?').map_or("", |(_, q)| q);
        SearchBody::Parsed(query_to_body(query))
    } else {
        SearchBody::Json(&inc.body)
    };
    search_body(shared, rt, inc, index_uid, body).await
}

/// A client's search parameters, as sent or already parsed.
pub(crate) enum SearchBody<'a> {
    Json(&'a [u8]),
    Parsed(Map<String, Value>),
}

/// One search of `index_uid`: planned, scattered over one replica per shard and merged. The
/// per-query path of both `/indexes/{uid}/search` and `/multi-search`.
pub(crate) async fn search_body(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    body: SearchBody<'_>,
) -> Reply {
    let ctx = match index_context(shared, rt, inc, index_uid).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    // Whether the filter is one expression: kept cheap, only an error answer needs it.
    let (raw, parsed_string_filter) = match &body {
        SearchBody::Parsed(map) => (None, map.get("filter").is_some_and(Value::is_string)),
        SearchBody::Json(bytes) => (Some(*bytes), false),
    };
    let string_filter = || {
        raw.map_or(parsed_string_filter, |b| {
            serde_json::from_slice::<Value>(b)
                .is_ok_and(|v| v.get("filter").is_some_and(Value::is_string))
        })
    };
    let planned = match body {
        SearchBody::Parsed(map) => plan::plan_value(map, &ctx),
        SearchBody::Json(bytes) => plan::plan(bytes, &ctx),
    };
    let planned = match planned {
        Ok(p) => p,
        Err(e) => return Reply::error(&e),
    };
    let req = SearchRequest {
        path: format!("/indexes/{index_uid}/search"),
        plan: &planned,
    };
    let group = next_group(shared, rt);
    let gathered = scatter::gather(
        shared,
        rt,
        &req,
        inc.auth.as_deref(),
        &inc.request_id,
        group,
    )
    .await;

    if let Some(refused) = gathered.answers.iter().find(|a| a.response.status >= 400) {
        return relay_node_error(&refused.response, string_filter());
    }
    let degraded = match gathered.degraded(rt) {
        Ok(d) => d,
        Err(e) => return Reply::error(&e),
    };
    let bodies: Vec<&[u8]> = gathered
        .answers
        .iter()
        .map(|a| a.response.body.as_ref())
        .collect();
    let reply = match plan::merge_parts(&planned, &bodies) {
        // A small answer is written in one piece anyway: copied together now.
        Ok(Merged::Body(parts)) if parts.len() < crate::respond::STREAM_FROM => {
            Reply::raw(200, parts.concat(&bodies))
        }
        Ok(Merged::Body(parts)) => {
            let buffers: Vec<bytes::Bytes> = gathered
                .answers
                .iter()
                .map(|a| a.response.body.clone())
                .collect();
            Reply::parts(200, parts.into_bytes(&buffers))
        }
        Ok(Merged::NodeError { answer }) => {
            relay_node_error(&gathered.answers[answer].response, string_filter())
        }
        Err(e) => Reply::error(&e),
    };
    match degraded {
        Some(list) => reply.with_header(DEGRADED, format!("shards={list}")),
        None => reply,
    }
}
