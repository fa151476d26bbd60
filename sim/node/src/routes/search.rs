//! Search routes: they authorize, turn tenant-token rules into an extra filter, and hand the
//! request to the engine. GET search parameters are converted to the POST body shape here.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use meili_sim_engine::MeiliError;
use serde_json::{json, Map, Value};

use super::indexes::check_uid;
use super::{auth, json_body, ok, AppState, Params};
use crate::auth::Access;
use crate::engine_calls;
use crate::error::{invalid_api_key, invalid_type, unknown_param, ApiResult};

enum Kind {
    Str,
    List,
    Uint,
    Float,
    Bool,
    Floats,
}

/// Meilisearch's GET search parameters and how each is written in a query string.
const GET_PARAMS: &[(&str, Kind)] = &[
    ("q", Kind::Str),
    ("offset", Kind::Uint),
    ("limit", Kind::Uint),
    ("page", Kind::Uint),
    ("hitsPerPage", Kind::Uint),
    ("attributesToRetrieve", Kind::List),
    ("retrieveVectors", Kind::Bool),
    ("attributesToCrop", Kind::List),
    ("cropLength", Kind::Uint),
    ("attributesToHighlight", Kind::List),
    ("filter", Kind::Str),
    ("sort", Kind::List),
    ("distinct", Kind::Str),
    ("showMatchesPosition", Kind::Bool),
    ("showRankingScore", Kind::Bool),
    ("showRankingScoreDetails", Kind::Bool),
    ("showPerformanceDetails", Kind::Bool),
    ("facets", Kind::List),
    ("highlightPreTag", Kind::Str),
    ("highlightPostTag", Kind::Str),
    ("cropMarker", Kind::Str),
    ("matchingStrategy", Kind::Str),
    ("attributesToSearchOn", Kind::List),
    ("rankingScoreThreshold", Kind::Float),
    ("locales", Kind::List),
    ("vector", Kind::Floats),
    ("hybridEmbedder", Kind::Str),
    ("hybridSemanticRatio", Kind::Float),
    ("useNetwork", Kind::Bool),
];

/// Meilisearch's GET `/similar` parameters.
const SIMILAR_GET_PARAMS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("offset", Kind::Uint),
    ("limit", Kind::Uint),
    ("attributesToRetrieve", Kind::List),
    ("retrieveVectors", Kind::Bool),
    ("filter", Kind::Str),
    ("showRankingScore", Kind::Bool),
    ("showRankingScoreDetails", Kind::Bool),
    ("showPerformanceDetails", Kind::Bool),
    ("rankingScoreThreshold", Kind::Float),
    ("embedder", Kind::Str),
];

fn code_for(prefix: &str, param: &str) -> String {
    let mut code = String::from(prefix);
    for c in param.chars() {
        if c.is_ascii_uppercase() {
            code.push('_');
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

/// Converts a GET query string into the JSON body `POST /search` takes.
pub fn get_params_to_body(params: &Params) -> Result<Value, MeiliError> {
    params_to_body(params, GET_PARAMS, "invalid_search_")
}

fn params_to_body(
    params: &Params,
    table: &[(&str, Kind)],
    code_prefix: &str,
) -> Result<Value, MeiliError> {
    let mut body = Map::new();
    for (key, raw) in &params.0 {
        let Some((_, kind)) = table.iter().find(|(name, _)| name == key) else {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            return Err(unknown_param(key, &names));
        };
        let code = code_for(code_prefix, key);
        let bad = |what: &str| {
            MeiliError::invalid(
                &code,
                format!("Invalid value in parameter `{key}`: could not parse `{raw}` as {what}"),
            )
        };
        // Items are not trimmed: `a, b` names the attribute ` b`, as on a node.
        let list = || {
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| json!(s))
                .collect::<Vec<_>>()
        };
        let value = match kind {
            Kind::Str => json!(raw),
            Kind::List => json!(list()),
            Kind::Uint => json!(raw.parse::<u64>().map_err(|_| bad("a positive integer"))?),
            Kind::Float if key == "hybridSemanticRatio" => json!(raw
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| MeiliError::invalid(
                    "invalid_search_semantic_ratio",
                    format!("Invalid value in parameter `{key}`: the value of `semanticRatio` is invalid, expected a float between `0.0` and `1.0`."),
                ))?),
            Kind::Float => json!(raw.parse::<f64>().map_err(|_| bad("a number"))?),
            Kind::Bool => json!(raw
                .parse::<bool>()
                .map_err(|_| bad("a boolean, expected either `true` or `false`"))?),
            Kind::Floats => json!(raw
                .split(',')
                .map(|x| x.trim().parse::<f64>().map_err(|_| {
                    MeiliError::invalid(
                        &code,
                        format!("Invalid value in parameter `{key}`: invalid float literal"),
                    )
                }))
                .collect::<Result<Vec<_>, _>>()?),
        };
        match key.as_str() {
            // A filter written as a JSON array is that array.
            "filter" if raw.trim_start().starts_with('[') => {
                let parsed = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| json!(raw));
                body.insert(key.clone(), parsed);
            }
            "hybridEmbedder" => {
                body.entry("hybrid").or_insert_with(|| json!({}))["embedder"] = value;
            }
            "hybridSemanticRatio" => {
                body.entry("hybrid").or_insert_with(|| json!({}))["semanticRatio"] = value;
            }
            _ => {
                body.insert(key.clone(), value);
            }
        }
    }
    // A node reads `vector` and the ratio only with an embedder named.
    let embedder = body
        .get("hybrid")
        .is_some_and(|h| h.get("embedder").is_some());
    if !embedder && code_prefix == "invalid_search_" {
        if body.get("hybrid").is_some() {
            return Err(MeiliError::invalid(
                "invalid_search_hybrid_query",
                "`hybridEmbedder` is mandatory when `hybridSemanticRatio` is present",
            ));
        }
        if body.contains_key("vector") {
            return Err(MeiliError::invalid(
                "missing_search_hybrid",
                "`hybridEmbedder` is mandatory when `vector` is present",
            ));
        }
    }
    Ok(Value::Object(body))
}

fn run_search(s: &AppState, access: &Access, uid: &str, query: &Value) -> ApiResult<Response> {
    check_uid(uid)?;
    if !query.is_object() {
        return Err(invalid_type("bad_request", ".", "an object", query).into());
    }
    let extra = access.extra_filter(uid);
    let db = s.db();
    let index = db.index(uid)?;
    ok(engine_calls::search(&index.data, query, extra.as_ref())?)
}

pub async fn search_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    // Auth comes first so an unauthorized caller learns nothing about parameter errors.
    let access = auth(&s, &headers, "search", Some(&uid))?;
    let body = get_params_to_body(&params)?;
    run_search(&s, &access, &uid, &body)
}

pub async fn search_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "search", Some(&uid))?;
    let body = json_body(&headers, &body)?;
    run_search(&s, &access, &uid, &body)
}

fn run_similar(s: &AppState, access: &Access, uid: &str, query: &Value) -> ApiResult<Response> {
    check_uid(uid)?;
    if !query.is_object() {
        return Err(invalid_type("bad_request", ".", "an object", query).into());
    }
    let extra = access.extra_filter(uid);
    let db = s.db();
    let index = db.index(uid)?;
    ok(engine_calls::similar(&index.data, query, extra.as_ref())?)
}

pub async fn similar_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "search", Some(&uid))?;
    let body = params_to_body(&params, SIMILAR_GET_PARAMS, "invalid_similar_")?;
    run_similar(&s, &access, &uid, &body)
}

pub async fn similar_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "search", Some(&uid))?;
    let body = json_body(&headers, &body)?;
    run_similar(&s, &access, &uid, &body)
}

pub async fn facet_search(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "search", Some(&uid))?;
    check_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    if !body.is_object() {
        return Err(invalid_type("bad_request", ".", "an object", &body).into());
    }
    let extra = access.extra_filter(&uid);
    let db = s.db();
    let index = db.index(&uid)?;
    ok(engine_calls::facet_search(
        &index.data,
        &body,
        extra.as_ref(),
    )?)
}

pub async fn multi_search(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "search", None)?;
    let body = json_body(&headers, &body)?;
    let queries = body
        .get("queries")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            MeiliError::invalid("missing_multi_search_queries", "Missing field `queries`")
        })?;
    for (i, q) in queries.iter().enumerate() {
        let uid = q.get("indexUid").and_then(Value::as_str).ok_or_else(|| {
            MeiliError::invalid(
                "missing_index_uid",
                format!("Missing field `indexUid` inside `.queries[{i}]`"),
            )
        })?;
        check_uid(uid)?;
        // Unlike single-index routes, multi-search does not say which rule refused the index.
        if !access.is_index_visible(uid) {
            return Err(invalid_api_key(format!(
                "Inside `.queries[{i}]`: The provided API key is invalid."
            ))
            .into());
        }
    }
    let db = s.db();
    let lookup = |uid: &str| db.indexes.get(uid).map(|i| &i.data);
    let extra = |uid: &str| access.extra_filter(uid);
    ok(engine_calls::multi_search(&body, &lookup, &extra)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::parse_query;

    #[test]
    fn get_parameters_become_the_post_body() {
        let params = Params(parse_query(
            "q=star&limit=5&facets=genre,year&showRankingScore=true&sort=year:desc",
        ));
        let body = get_params_to_body(&params).unwrap();
        assert_eq!(
            body,
            json!({"q": "star", "limit": 5, "facets": ["genre", "year"], "showRankingScore": true, "sort": ["year:desc"]})
        );
        let err = get_params_to_body(&Params(parse_query("limit=x"))).unwrap_err();
        assert_eq!(err.code, "invalid_search_limit");
        assert_eq!(
            get_params_to_body(&Params(parse_query("nope=1")))
                .unwrap_err()
                .code,
            "bad_request"
        );
    }
}
