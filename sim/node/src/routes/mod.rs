//! The HTTP API: one module per resource, all sharing the helpers below (auth, query string,
//! JSON bodies, responses). Every handler returns `ApiResult<Response>`.

mod documents;
mod indexes;
mod keys;
mod search;
mod settings;
mod system;
mod tasks;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::auth::{authorize, Access};
use crate::error::{
    invalid_content_type, malformed_json, missing_content_type, missing_payload, ApiError,
    ApiResult,
};
use crate::state::Shared;

pub type AppState = Arc<Shared>;

pub fn router(shared: AppState) -> Router {
    let router = Router::new()
        .route("/", get(system::root))
        .route("/health", get(system::health))
        .route("/version", get(system::version))
        .route("/stats", get(system::stats))
        .route(
            "/experimental-features",
            get(system::get_features).patch(system::patch_features),
        )
        .route(
            "/_sim/faults",
            get(system::get_faults)
                .post(system::set_faults)
                .delete(system::clear_faults),
        )
        .route("/keys", get(keys::list).post(keys::create))
        .route(
            "/keys/{key}",
            get(keys::get_one).patch(keys::update).delete(keys::delete),
        )
        .route("/indexes", get(indexes::list).post(indexes::create))
        .route(
            "/indexes/{uid}",
            get(indexes::get_one)
                .patch(indexes::update)
                .delete(indexes::delete),
        )
        .route("/indexes/{uid}/stats", get(indexes::stats))
        .route("/indexes/{uid}/compact", post(indexes::compact))
        .route("/swap-indexes", post(indexes::swap))
        .route(
            "/indexes/{uid}/documents",
            get(documents::browse)
                .post(documents::replace)
                .put(documents::update)
                .delete(documents::clear),
        )
        .route("/indexes/{uid}/documents/fetch", post(documents::fetch))
        .route(
            "/indexes/{uid}/documents/delete-batch",
            post(documents::delete_batch),
        )
        .route(
            "/indexes/{uid}/documents/delete",
            post(documents::delete_by_filter),
        )
        .route(
            "/indexes/{uid}/documents/{id}",
            get(documents::get_one).delete(documents::delete_one),
        )
        .route(
            "/indexes/{uid}/search",
            get(search::search_get).post(search::search_post),
        )
        .route("/indexes/{uid}/facet-search", post(search::facet_search))
        .route(
            "/indexes/{uid}/similar",
            get(search::similar_get).post(search::similar_post),
        )
        .route("/multi-search", post(search::multi_search))
        .route("/tasks", get(tasks::list).delete(tasks::delete))
        .route("/tasks/cancel", post(tasks::cancel))
        .route("/tasks/{uid}", get(tasks::get_one))
        .route("/tasks/{uid}/documents", get(tasks::documents))
        .route("/batches", get(tasks::list_batches))
        .route("/batches/{uid}", get(tasks::get_batch));
    let router = settings::routes(router);
    system::unimplemented_routes(router)
        .fallback(system::not_found)
        .with_state(shared)
}

/// The decoded query string, in order (repeated keys kept).
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params(parse_query(parts.uri.query().unwrap_or_default())))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The query string's pairs, decoded as Meilisearch decodes them (`+` is a space).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Authorizes the request for `action` on `index`.
pub fn auth(
    state: &Shared,
    headers: &HeaderMap,
    action: &str,
    index: Option<&str>,
) -> ApiResult<Access> {
    let header = headers
        .get(header::AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or_default());
    Ok(authorize(&state.db().keys, header, action, index)?)
}

/// A JSON body on a route that takes `application/json` only, with Meilisearch's errors for a
/// missing or wrong content type, an empty body and malformed JSON.
/// A JSON body that must be an object (most write routes).
pub fn json_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<serde_json::Map<String, Value>> {
    match json_body(headers, body)? {
        Value::Object(obj) => Ok(obj),
        other => Err(crate::error::invalid_type("bad_request", ".", "an object", &other).into()),
    }
}

pub fn json_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let accepted = ["application/json"];
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|h| h.to_str().unwrap_or("unknown"));
    match content_type {
        None => return Err(missing_content_type(&accepted).into()),
        Some(ct)
            if !ct
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json") =>
        {
            return Err(invalid_content_type(ct, &accepted).into())
        }
        Some(_) => {}
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(missing_payload("json").into());
    }
    serde_json::from_slice(body).map_err(|e| ApiError(malformed_json(e)))
}

pub fn json(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub fn ok(value: Value) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, value))
}

pub fn accepted(summary: Value) -> ApiResult<Response> {
    Ok(json(StatusCode::ACCEPTED, summary))
}

/// `offset`/`limit` with the route's error codes; Meilisearch's default limit is 20.
pub fn offset_limit(
    params: &Params,
    offset_code: &str,
    limit_code: &str,
) -> ApiResult<(usize, usize)> {
    let num = |key: &str, code: &str, default: usize| -> ApiResult<usize> {
        match params.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiError(meili_sim_engine::MeiliError::invalid(
                    code,
                    format!("Invalid value in parameter `{key}`: could not parse `{v}` as a positive integer"),
                ))
            }),
        }
    };
    Ok((
        num("offset", offset_code, 0)?,
        num("limit", limit_code, 20)?,
    ))
}

/// Meilisearch's listing envelope.
pub fn page<T>(items: Vec<T>, offset: usize, limit: usize, f: impl Fn(&T) -> Value) -> Value {
    let total = items.len();
    let results: Vec<Value> = items.iter().skip(offset).take(limit).map(f).collect();
    serde_json::json!({ "results": results, "offset": offset, "limit": limit, "total": total })
}

/// `customMetadata` from the query string, echoed on the task. Meilisearch 1.50 keeps it on
/// document tasks only: index, settings, swap and compaction routes accept it and drop it.
pub fn custom_metadata(params: &Params) -> Option<String> {
    params.get("customMetadata").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_percent_decoded() {
        let q = parse_query("filter=genre%20%3D%20x&fields=a,b&q=hello+world&bad=%zz");
        assert_eq!(q[0], ("filter".into(), "genre = x".into()));
        assert_eq!(q[1], ("fields".into(), "a,b".into()));
        assert_eq!(q[2], ("q".into(), "hello world".into()));
        assert_eq!(q[3], ("bad".into(), "%zz".into()));
    }
}
