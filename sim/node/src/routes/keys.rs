//! `/keys`: API key management (needs a master key; `keys.*` actions).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{auth, json, json_body, offset_limit, ok, page, AppState, Params};
use crate::error::ApiResult;

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    auth(&s, &headers, "keys.get", None)?;
    let (offset, limit) = offset_limit(&params, "invalid_api_key_offset", "invalid_api_key_limit")?;
    let db = s.db();
    ok(page(db.keys.list(), offset, limit, |k| k.view()))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    auth(&s, &headers, "keys.create", None)?;
    let body = json_body(&headers, &body)?;
    let mut db = s.db();
    let key = db.keys.create(&body)?;
    Ok(json(StatusCode::CREATED, key.view()))
}

pub async fn get_one(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    auth(&s, &headers, "keys.get", None)?;
    let db = s.db();
    ok(db.keys.find(&key)?.view())
}

pub async fn update(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    auth(&s, &headers, "keys.update", None)?;
    let body = json_body(&headers, &body)?;
    let mut db = s.db();
    ok(db.keys.update(&key, &body)?.view())
}

pub async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    auth(&s, &headers, "keys.delete", None)?;
    s.db().keys.delete(&key)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
