//! `POST /multi-search`: independent queries (`results`) or a federated search that merges
//! every query's hits into one list by weighted ranking score, the way Meilisearch's
//! `federated/perform.rs` and `weighted_scores.rs` do.

mod facets;
mod federated;
mod merge;

use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::error::{ErrorType, MeiliError};
use crate::model::IndexData;
use crate::params::{self, Reader, SearchParams, SEARCH_FIELDS};
use crate::search;

/// Keys of one query: `indexUid`, the search parameters, then `federationOptions`.
fn query_fields() -> Vec<&'static str> {
    let mut fields = vec!["indexUid"];
    fields.extend(SEARCH_FIELDS);
    fields.push("federationOptions");
    fields
}

/// Meilisearch's prefix naming the failing query.
fn inside(i: usize, e: MeiliError) -> MeiliError {
    MeiliError {
        message: format!("Inside `.queries[{i}]`: {}", e.message),
        ..e
    }
}

/// Inside a multi-search, Meilisearch 1.50 reports a missing index with status 400 (checked
/// against a real node), not the 404 of the single-index routes.
fn index_not_found(uid: &str) -> MeiliError {
    MeiliError::new(
        400,
        "index_not_found",
        ErrorType::InvalidRequest,
        format!("Index `{uid}` not found."),
    )
}

/// One parsed query of the request.
struct QueryItem {
    index_uid: String,
    params: SearchParams,
    weight: f64,
    has_federation_options: bool,
    /// The query as sent, to tell which options were present.
    raw: Value,
}

/// Runs `POST /multi-search`. `index` resolves an index uid; `extra_filter` gives the
/// tenant-token filter of an index, ANDed with that query's filter.
pub fn multi_search<'a>(
    body: &Value,
    index: &dyn Fn(&str) -> Option<&'a IndexData>,
    extra_filter: &dyn Fn(&str) -> Option<Value>,
) -> Result<Value, MeiliError> {
    let started = Instant::now();
    let reader = Reader::new(body, "", &["queries", "federation"])?;
    let queries = match reader.obj.get("queries") {
        None => {
            return Err(MeiliError::invalid(
                "bad_request",
                "Missing field `queries`",
            ))
        }
        Some(Value::Array(items)) => items,
        Some(other) => return Err(reader.type_error("queries", "bad_request", "an array", other)),
    };
    let items = queries
        .iter()
        .enumerate()
        .map(|(i, q)| parse_query(i, q))
        .collect::<Result<Vec<_>, _>>()?;
    match reader.get("federation") {
        None => plain(&items, index, extra_filter),
        Some(federation) => federated::run(&items, federation, index, extra_filter, started),
    }
}

fn parse_query(i: usize, value: &Value) -> Result<QueryItem, MeiliError> {
    let location = format!(".queries[{i}]");
    let accepted = query_fields();
    let reader = Reader::new(value, &location, &accepted)?;
    let index_uid = match reader.obj.get("indexUid") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(reader.type_error("indexUid", "invalid_index_uid", "a string", other))
        }
        None => {
            return Err(MeiliError::invalid(
                "missing_index_uid",
                format!("Missing field `indexUid` inside `{location}`"),
            ))
        }
    };
    let mut weight = 1.0;
    let options = reader.get("federationOptions");
    if let Some(options) = options {
        let opts = Reader::new(
            options,
            &format!("{location}.federationOptions"),
            &["weight", "remote", "queryPosition"],
        )?;
        match opts.get("weight") {
            None => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|w| w >= 0.0) => {
                weight = n.as_f64().unwrap_or(1.0);
            }
            Some(Value::Number(_)) => {
                return Err(MeiliError::invalid(
                    "invalid_multi_search_weight",
                    format!("Invalid value at `{location}.federationOptions.weight`: the value of `weight` is invalid, expected a positive float (>= 0.0)."),
                ))
            }
            Some(other) => {
                return Err(opts.type_error("weight", "invalid_multi_search_weight", "a number", other))
            }
        }
    }
    let mut search_body = value.as_object().cloned().unwrap_or_default();
    search_body.remove("indexUid");
    search_body.remove("federationOptions");
    let params = params::parse_search(&Value::Object(search_body), &location, &accepted)?;
    Ok(QueryItem {
        index_uid,
        params,
        weight,
        has_federation_options: options.is_some(),
        raw: value.clone(),
    })
}

fn plain<'a>(
    items: &[QueryItem],
    index: &dyn Fn(&str) -> Option<&'a IndexData>,
    extra_filter: &dyn Fn(&str) -> Option<Value>,
) -> Result<Value, MeiliError> {
    // Every result of one request carries the same request uid, as in Meilisearch.
    let request_uid = json!(uuid::Uuid::now_v7().to_string());
    let mut results = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.has_federation_options {
            return Err(inside(i, MeiliError::invalid(
                "invalid_multi_search_federation_options",
                "Using `federationOptions` is not allowed in a non-federated search.\n - Hint: remove `federationOptions` from the query or add `federation` to the request.",
            )));
        }
        let idx =
            index(&item.index_uid).ok_or_else(|| inside(i, index_not_found(&item.index_uid)))?;
        let extra = extra_filter(&item.index_uid);
        let result =
            search::execute(idx, &item.params, extra.as_ref()).map_err(|e| inside(i, e))?;
        let mut out = Map::new();
        out.insert("indexUid".into(), json!(item.index_uid));
        if let Value::Object(fields) = result {
            out.extend(fields);
        }
        out.insert("requestUid".into(), request_uid.clone());
        results.push(Value::Object(out));
    }
    Ok(json!({ "results": results }))
}
