//! `/indexes` CRUD, `/indexes/{uid}/stats` and `/swap-indexes`. Writes are tasks: existence
//! checks that Meilisearch makes at processing time fail the task, not the request.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use meili_sim_engine::MeiliError;
use serde_json::{json, Map, Value};

use super::system::{index_stats, SizeParams};
use super::{accepted, auth, json_body, offset_limit, ok, page, AppState, Params};
use crate::error::{invalid_api_key, invalid_index_uid, invalid_type, unknown_field, ApiResult};
use crate::ids::is_valid_index_uid;
use crate::tasks::{details, Op};

pub fn check_uid(uid: &str) -> Result<(), MeiliError> {
    if is_valid_index_uid(uid) {
        Ok(())
    } else {
        Err(invalid_index_uid(uid))
    }
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "indexes.get", None)?;
    let (offset, limit) = offset_limit(&params, "invalid_index_offset", "invalid_index_limit")?;
    let db = s.db();
    let visible: Vec<_> = db
        .indexes
        .iter()
        .filter(|(uid, _)| access.is_index_visible(uid))
        .map(|(_, i)| i)
        .collect();
    ok(page(visible, offset, limit, |i| i.view()))
}

pub async fn get_one(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> ApiResult<Response> {
    auth(&s, &headers, "indexes.get", Some(&uid))?;
    check_uid(&uid)?;
    ok(s.db().index(&uid)?.view())
}

fn primary_key_field(obj: &Map<String, Value>) -> Result<Option<String>, MeiliError> {
    match obj.get("primaryKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(pk)) => Ok(Some(pk.clone())),
        Some(other) => Err(invalid_type(
            "invalid_index_primary_key",
            ".primaryKey",
            "a string",
            other,
        )),
    }
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    _params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "indexes.create", None)?;
    let obj = super::json_object(&headers, &body)?;
    let obj = &obj;
    let uid = match obj.get("uid") {
        None => return Err(MeiliError::invalid("missing_index_uid", "Missing field `uid`").into()),
        Some(Value::String(uid)) => uid.clone(),
        Some(other) => {
            return Err(invalid_type("invalid_index_uid", ".uid", "a string", other).into())
        }
    };
    if let Some(field) = obj
        .keys()
        .find(|k| !["uid", "primaryKey"].contains(&k.as_str()))
    {
        return Err(unknown_field("bad_request", field, &["uid", "primaryKey"]).into());
    }
    check_uid(&uid)?;
    if !access.is_index_visible(&uid) {
        return Err(invalid_api_key("The provided API key is invalid.").into());
    }
    let primary_key = primary_key_field(obj)?;
    let details = details(&[("primaryKey", json!(primary_key))]);
    accepted(s.enqueue(Some(&uid), Op::CreateIndex { primary_key }, details, None))
}

pub async fn update(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    _params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    auth(&s, &headers, "indexes.update", Some(&uid))?;
    check_uid(&uid)?;
    let obj = super::json_object(&headers, &body)?;
    let obj = &obj;
    if let Some(field) = obj
        .keys()
        .find(|k| !["uid", "primaryKey"].contains(&k.as_str()))
    {
        return Err(unknown_field("bad_request", field, &["primaryKey", "uid"]).into());
    }
    let primary_key = primary_key_field(obj)?;
    let new_uid = match obj.get("uid") {
        None | Some(Value::Null) => None,
        Some(Value::String(new)) => {
            check_uid(new)?;
            Some(new.clone())
        }
        Some(other) => {
            return Err(invalid_type("invalid_index_uid", ".uid", "a string", other).into())
        }
    };
    let mut pairs = vec![("primaryKey", json!(primary_key))];
    if let Some(new) = &new_uid {
        pairs.push(("oldIndexUid", json!(uid)));
        pairs.push(("newIndexUid", json!(new)));
    }
    let op = Op::UpdateIndex {
        primary_key,
        new_uid,
    };
    accepted(s.enqueue(Some(&uid), op, details(&pairs), None))
}

pub async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    _params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "indexes.delete", Some(&uid))?;
    check_uid(&uid)?;
    let details = details(&[("deletedDocuments", Value::Null)]);
    accepted(s.enqueue(Some(&uid), Op::DeleteIndex, details, None))
}

/// `POST /indexes/{uid}/compact`: a task; a missing index fails it, as on Meilisearch.
pub async fn compact(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    _params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "indexes.compact", Some(&uid))?;
    check_uid(&uid)?;
    accepted(s.enqueue(Some(&uid), Op::Compact, details(&[]), None))
}

pub async fn stats(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "stats.get", Some(&uid))?;
    check_uid(&uid)?;
    let sizes = SizeParams::parse(&params)?;
    let db = s.db();
    let index = db.index(&uid)?;
    let indexing = db
        .tasks
        .values()
        .any(|t| t.index_uid.as_deref() == Some(uid.as_str()) && !t.status.is_finished());
    ok(index_stats(index, indexing, sizes))
}

pub async fn swap(
    State(s): State<AppState>,
    headers: HeaderMap,
    _params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "indexes.swap", None)?;
    let body = json_body(&headers, &body)?;
    let items = body
        .as_array()
        .ok_or_else(|| invalid_type("bad_request", ".", "an array", &body))?;
    let mut pairs = Vec::new();
    let mut seen = HashSet::new();
    let mut swaps = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or_else(|| invalid_type("bad_request", &format!("[{i}]"), "an object", item))?;
        let list = match obj.get("indexes") {
            None => {
                return Err(MeiliError::invalid(
                    "missing_swap_indexes",
                    format!("Missing field `indexes` inside `[{i}]`"),
                )
                .into())
            }
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(invalid_type(
                    "invalid_swap_indexes",
                    &format!("[{i}].indexes"),
                    "an array",
                    other,
                )
                .into())
            }
        };
        let names: Vec<String> = list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let (Some(first), Some(second), 2) = (names.first(), names.get(1), list.len()) else {
            return Err(MeiliError::invalid(
                "invalid_swap_indexes",
                format!(
                    "Two indexes must be given for each swap. The list `[{}]` contains {} indexes.",
                    names
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    list.len()
                ),
            )
            .into());
        };
        let rename = match obj.get("rename") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid_type(
                    "invalid_swap_rename",
                    &format!("[{i}].rename"),
                    "a boolean",
                    other,
                )
                .into())
            }
        };
        for name in &names {
            check_uid(name)?;
            access.check_index(name)?;
            if !seen.insert(name.clone()) {
                return Err(MeiliError::invalid(
                    "invalid_swap_duplicate_index_found",
                    format!("Indexes must be declared only one time during a swap. `{name}` was specified several times."),
                )
                .into());
            }
        }
        swaps.push(json!({ "indexes": names, "rename": rename }));
        pairs.push((first.clone(), second.clone(), rename));
    }
    let details = details(&[("swaps", json!(swaps))]);
    accepted(s.enqueue(None, Op::Swap(pairs), details, None))
}
