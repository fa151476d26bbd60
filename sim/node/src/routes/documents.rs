//! `/indexes/{uid}/documents`: additions in JSON, NDJSON or CSV (parsed at request time),
//! browse and fetch (internal-id order, optional filter), and the three kinds of deletion.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use meili_sim_engine::{Document, IndexData, MeiliError};
use serde_json::{json, Value};

use super::indexes::check_uid;
use super::{accepted, auth, custom_metadata, json_body, ok, AppState, Params};
use crate::doc_sort;
use crate::engine_calls::{compile_filter, project};
use crate::error::{document_not_found, invalid_type, unknown_field, unknown_param, ApiResult};
use crate::payload::{self, Format};
use crate::tasks::{details, Op};

pub async fn replace(
    s: State<AppState>,
    h: HeaderMap,
    p: Path<String>,
    q: Params,
    b: Bytes,
) -> ApiResult<Response> {
    add(s, h, p, q, b, false).await
}

pub async fn update(
    s: State<AppState>,
    h: HeaderMap,
    p: Path<String>,
    q: Params,
    b: Bytes,
) -> ApiResult<Response> {
    add(s, h, p, q, b, true).await
}

async fn add(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
    body: Bytes,
    merge: bool,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "documents.add", Some(&uid))?;
    check_uid(&uid)?;
    for (key, _) in &params.0 {
        let known = [
            "primaryKey",
            "csvDelimiter",
            "customMetadata",
            "skipCreation",
        ];
        if !known.contains(&key.as_str()) {
            return Err(unknown_param(key, &known).into());
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|h| h.to_str().unwrap_or("unknown"));
    let format = Format::from_content_type(content_type)?;
    let delimiter = payload::csv_delimiter(params.get("csvDelimiter"), format, content_type)?;
    let skip_creation = payload::skip_creation(params.get("skipCreation"))?;
    let docs = payload::parse(&body, format, delimiter)?;
    let primary_key = params.get("primaryKey").map(str::to_owned);
    let details = details(&[
        ("receivedDocuments", json!(docs.len())),
        ("indexedDocuments", Value::Null),
    ]);
    let op = Op::AddDocuments {
        docs,
        primary_key,
        merge,
        skip_creation,
        allow_index_creation: access.allow_index_creation,
    };
    accepted(s.enqueue(Some(&uid), op, details, custom_metadata(&params)))
}

/// The shared query of browse (GET) and fetch (POST).
struct Browse {
    offset: usize,
    limit: usize,
    fields: Option<Vec<String>>,
    filter: Option<Value>,
    ids: Option<Vec<String>>,
    sort: Option<Vec<String>>,
    retrieve_vectors: bool,
}

/// A document as the documents routes show it: `fields` (Meilisearch 1.50's documents
/// routes ignore `displayedAttributes`), with `_vectors` only when asked for (in the
/// retrieved shape).
fn shown(
    doc: &Document,
    settings: &meili_sim_engine::Settings,
    fields: Option<&[String]>,
    retrieve_vectors: bool,
) -> Document {
    let every_field = meili_sim_engine::Settings::default();
    let mut out = project(doc, &every_field, fields);
    out.remove("_vectors");
    if retrieve_vectors && !settings.embedders.is_empty() {
        out.insert(
            "_vectors".into(),
            crate::engine_calls::retrieved_vectors(doc, settings),
        );
    }
    out
}

fn bool_param(params: &Params, key: &str, code: &str) -> Result<bool, MeiliError> {
    match params.get(key) {
        None => Ok(false),
        Some(v) => v.parse().map_err(|_| {
            MeiliError::invalid(code, format!("Invalid value in parameter `{key}`: could not parse `{v}` as a boolean, expected either `true` or `false`"))
        }),
    }
}

fn run_browse(index: &IndexData, q: Browse) -> Result<Value, MeiliError> {
    let filter = match &q.filter {
        Some(f) => compile_filter(f, &index.settings, "invalid_document_filter")?,
        None => None,
    };
    let wanted: Option<std::collections::HashSet<u32>> = q.ids.as_ref().map(|ids| {
        ids.iter()
            .filter_map(|id| index.external_ids.get(id).copied())
            .collect()
    });
    let criteria = doc_sort::parse(q.sort.as_deref().unwrap_or_default(), &index.settings)?;
    let mut matching: Vec<&Document> = index
        .docs
        .iter()
        .filter(|(internal, _)| wanted.as_ref().is_none_or(|w| w.contains(internal)))
        .map(|(_, d)| d)
        .filter(|d| filter.as_ref().is_none_or(|f| f.matches(d)))
        .collect();
    doc_sort::apply(&mut matching, &criteria);
    let results: Vec<Value> = matching
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|d| {
            Value::Object(shown(
                d,
                &index.settings,
                q.fields.as_deref(),
                q.retrieve_vectors,
            ))
        })
        .collect();
    Ok(json!({ "results": results, "offset": q.offset, "limit": q.limit, "total": matching.len() }))
}

fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn usize_param(
    params: &Params,
    key: &str,
    code: &str,
    default: usize,
) -> Result<usize, MeiliError> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            MeiliError::invalid(code, format!("Invalid value in parameter `{key}`: could not parse `{v}` as a positive integer"))
        }),
    }
}

pub async fn browse(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "documents.get", Some(&uid))?;
    check_uid(&uid)?;
    let known = [
        "offset",
        "limit",
        "fields",
        "filter",
        "ids",
        "retrieveVectors",
        "sort",
    ];
    if let Some((key, _)) = params.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(unknown_param(key, &known).into());
    }
    let q = Browse {
        offset: usize_param(&params, "offset", "invalid_document_offset", 0)?,
        limit: usize_param(&params, "limit", "invalid_document_limit", 20)?,
        fields: params.get("fields").map(comma_list),
        filter: params.get("filter").map(|f| Value::String(f.to_owned())),
        ids: params.get("ids").map(comma_list),
        sort: params.get("sort").map(comma_list),
        retrieve_vectors: bool_param(
            &params,
            "retrieveVectors",
            "invalid_document_retrieve_vectors",
        )?,
    };
    let db = s.db();
    ok(run_browse(&db.index(&uid)?.data, q)?)
}

pub async fn fetch(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    auth(&s, &headers, "documents.get", Some(&uid))?;
    check_uid(&uid)?;
    let obj = super::json_object(&headers, &body)?;
    let obj = &obj;
    let known = [
        "offset",
        "limit",
        "fields",
        "filter",
        "ids",
        "retrieveVectors",
        "sort",
    ];
    if let Some(key) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(unknown_field("bad_request", key, &known).into());
    }
    let num = |key: &str, code: &str, default: usize| -> Result<usize, MeiliError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| invalid_type(code, &format!(".{key}"), "a positive integer", v)),
        }
    };
    let strings = |key: &str, code: &str| -> Result<Option<Vec<String>>, MeiliError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) if key == "ids" => Ok(n.to_string()),
                    other => Err(invalid_type(code, &format!(".{key}"), "a string", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(invalid_type(code, &format!(".{key}"), "an array", other)),
        }
    };
    let q = Browse {
        offset: num("offset", "invalid_document_offset", 0)?,
        limit: num("limit", "invalid_document_limit", 20)?,
        fields: strings("fields", "invalid_document_fields")?,
        filter: obj.get("filter").filter(|f| !f.is_null()).cloned(),
        ids: strings("ids", "invalid_document_ids")?,
        sort: strings("sort", "invalid_document_sort")?,
        retrieve_vectors: match obj.get("retrieveVectors") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(invalid_type(
                    "invalid_document_retrieve_vectors",
                    ".retrieveVectors",
                    "a boolean",
                    v,
                )
                .into())
            }
        },
    };
    let db = s.db();
    ok(run_browse(&db.index(&uid)?.data, q)?)
}

pub async fn get_one(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((uid, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "documents.get", Some(&uid))?;
    check_uid(&uid)?;
    let fields = params.get("fields").map(comma_list);
    let db = s.db();
    let index = db.index(&uid)?;
    let doc = index
        .data
        .get_document(&id)
        .ok_or_else(|| document_not_found(&id))?;
    let retrieve_vectors = bool_param(
        &params,
        "retrieveVectors",
        "invalid_document_retrieve_vectors",
    )?;
    ok(Value::Object(shown(
        doc,
        &index.data.settings,
        fields.as_deref(),
        retrieve_vectors,
    )))
}

pub async fn delete_one(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((uid, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "documents.delete", Some(&uid))?;
    check_uid(&uid)?;
    let details = details(&[
        ("providedIds", json!(1)),
        ("deletedDocuments", Value::Null),
        ("originalFilter", Value::Null),
    ]);
    accepted(s.enqueue(
        Some(&uid),
        Op::DeleteIds(vec![id]),
        details,
        custom_metadata(&params),
    ))
}

pub async fn delete_batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    auth(&s, &headers, "documents.delete", Some(&uid))?;
    check_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let items = body
        .as_array()
        .ok_or_else(|| invalid_type("bad_request", ".", "an array", &body))?;
    // Like Meilisearch, ids are not validated: strings as they are, anything else as JSON.
    let ids: Vec<String> = items
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    let details = details(&[
        ("providedIds", json!(ids.len())),
        ("deletedDocuments", Value::Null),
        ("originalFilter", Value::Null),
    ]);
    accepted(s.enqueue(
        Some(&uid),
        Op::DeleteIds(ids),
        details,
        custom_metadata(&params),
    ))
}

pub async fn delete_by_filter(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    auth(&s, &headers, "documents.delete", Some(&uid))?;
    check_uid(&uid)?;
    let obj = super::json_object(&headers, &body)?;
    let obj = &obj;
    if let Some(key) = obj.keys().find(|k| k.as_str() != "filter") {
        return Err(unknown_field("bad_request", key, &["filter"]).into());
    }
    let filter = match obj.get("filter") {
        None => {
            return Err(
                MeiliError::invalid("missing_document_filter", "Missing field `filter`").into(),
            )
        }
        Some(f) => f.clone(),
    };
    // Syntax is checked now; whether the attributes are filterable is checked by the task.
    if meili_sim_engine::Filter::parse(&filter, "invalid_document_filter")?.is_none() {
        return Err(MeiliError::invalid(
            "invalid_document_filter",
            "Sending an empty filter is forbidden.",
        )
        .into());
    }
    let details = details(&[
        ("providedIds", json!(0)),
        ("deletedDocuments", Value::Null),
        ("originalFilter", json!(filter.to_string())),
    ]);
    accepted(s.enqueue(
        Some(&uid),
        Op::DeleteFilter(filter),
        details,
        custom_metadata(&params),
    ))
}

pub async fn clear(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "documents.delete", Some(&uid))?;
    check_uid(&uid)?;
    let details = details(&[("deletedDocuments", Value::Null)]);
    accepted(s.enqueue(Some(&uid), Op::Clear, details, custom_metadata(&params)))
}
