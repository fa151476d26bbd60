//! Node-wide routes: root, health, version, stats, experimental features, the simulator's own
//! fault controls, and explicit "not implemented" answers for routes the simulator skips.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use meili_sim_engine::MeiliError;
use serde_json::{json, Map, Value};

use super::{auth, json_body, ok, AppState, Params};
use crate::clock::rfc3339;
use crate::error::{bad_request, not_implemented, unknown_field, ApiResult};
use crate::sizes::{human_size, raw_size};
use crate::state::{Index, FEATURES};

pub async fn root() -> ApiResult<Response> {
    ok(json!({ "status": "Meilisearch is running" }))
}

pub async fn health() -> ApiResult<Response> {
    ok(json!({ "status": "available" }))
}

pub async fn version(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    auth(&s, &headers, "version", None)?;
    ok(json!({
        "commitSha": "0000000000000000000000000000000000000000",
        "commitDate": "2026-07-16T00:00:00Z",
        "pkgVersion": "1.50.0-sim",
    }))
}

/// `showInternalDatabaseSizes` and `sizeFormat` of the stats routes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeParams {
    internal: bool,
    human: bool,
}

impl SizeParams {
    /// The parameters, or Meilisearch's error for a value it refuses.
    pub fn parse(params: &Params) -> Result<Self, MeiliError> {
        let internal = match params.get("showInternalDatabaseSizes") {
            None => false,
            Some(v) => v.parse().map_err(|_| {
                MeiliError::invalid(
                    "invalid_stats_show_internal_database_sizes",
                    format!("Invalid value in parameter `showInternalDatabaseSizes`: could not parse `{v}` as a boolean, expected either `true` or `false`"),
                )
            })?,
        };
        let human = match params.get("sizeFormat") {
            None | Some("raw") => false,
            Some("human") => true,
            Some(v) => {
                return Err(MeiliError::invalid(
                    "invalid_stats_size_format",
                    format!("Unknown value `{v}` for parameter `sizeFormat`: expected one of `human`, `raw`"),
                ))
            }
        };
        Ok(Self { internal, human })
    }

    fn size(&self, bytes: usize) -> Value {
        if self.human {
            json!(human_size(bytes))
        } else {
            json!(bytes)
        }
    }
}

/// `GET /indexes/{uid}/stats` body for one index. The simulator has one "database", the
/// documents (its size is their JSON size).
pub fn index_stats(index: &Index, is_indexing: bool, sizes: SizeParams) -> Value {
    let mut distribution: Map<String, Value> = Map::new();
    let raw_size = raw_size(index);
    for doc in index.data.docs.values() {
        for key in doc.keys() {
            let n = distribution.get(key).and_then(Value::as_u64).unwrap_or(0);
            distribution.insert(key.clone(), json!(n + 1));
        }
    }
    let mut sorted: Vec<(String, Value)> = distribution.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let count = index.data.docs.len();
    let mut stats = Map::new();
    stats.insert("numberOfDocuments".into(), json!(count));
    stats.insert("rawDocumentDbSize".into(), sizes.size(raw_size));
    stats.insert(
        "avgDocumentSize".into(),
        sizes.size(raw_size.checked_div(count).unwrap_or(0)),
    );
    stats.insert("isIndexing".into(), json!(is_indexing));
    if sizes.internal {
        stats.insert(
            "internalDatabaseSizes".into(),
            json!({"documents": sizes.size(raw_size)}),
        );
    }
    stats.insert("numberOfEmbeddings".into(), json!(0));
    stats.insert("numberOfEmbeddedDocuments".into(), json!(0));
    stats.insert(
        "fieldDistribution".into(),
        Value::Object(sorted.into_iter().collect()),
    );
    Value::Object(stats)
}

pub async fn stats(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "stats.get", None)?;
    let sizes = SizeParams::parse(&params)?;
    let db = s.db();
    let mut indexes = Map::new();
    let mut total = 0usize;
    for (uid, index) in db
        .indexes
        .iter()
        .filter(|(uid, _)| access.is_index_visible(uid))
    {
        let indexing = db
            .tasks
            .values()
            .any(|t| t.index_uid.as_deref() == Some(uid) && !t.status.is_finished());
        total += raw_size(index);
        indexes.insert(uid.clone(), index_stats(index, indexing, sizes));
    }
    let last_update = db.tasks.values().filter_map(|t| t.finished_at).max();
    ok(json!({
        "databaseSize": sizes.size(total),
        "usedDatabaseSize": sizes.size(total),
        "lastUpdate": last_update.map(rfc3339),
        "indexes": indexes,
    }))
}

pub async fn get_features(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    auth(&s, &headers, "experimental.get", None)?;
    ok(Value::Object(s.db().features.clone()))
}

pub async fn patch_features(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    auth(&s, &headers, "experimental.update", None)?;
    let body = json_body(&headers, &body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| bad_request("Invalid value type: expected an object"))?;
    for (key, value) in obj {
        if !FEATURES.contains(&key.as_str()) {
            return Err(unknown_field("bad_request", key, FEATURES).into());
        }
        if !(value.is_boolean() || value.is_null()) {
            return Err(bad_request(format!(
                "Invalid value type at `.{key}`: expected a boolean, but found {}: `{value}`",
                crate::error::json_kind(value)
            ))
            .into());
        }
    }
    let mut db = s.db();
    for (key, value) in obj {
        // `null` leaves a flag unchanged, like an absent key.
        if !value.is_null() {
            db.features.insert(key.clone(), value.clone());
        }
    }
    ok(Value::Object(db.features.clone()))
}

/// Fault controls for a node running as a child process. Not a Meilisearch route.
pub async fn get_faults(State(s): State<AppState>) -> ApiResult<Response> {
    ok(s.faults.to_json())
}

pub async fn set_faults(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&headers, &body)?;
    s.faults.apply_json(&body).map_err(bad_request)?;
    ok(s.faults.to_json())
}

pub async fn clear_faults(State(s): State<AppState>) -> ApiResult<Response> {
    s.faults.clear();
    ok(s.faults.to_json())
}

/// Meilisearch answers unknown routes with an empty 404.
pub async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// Routes Meilisearch has and the simulator deliberately does not implement: a clear 501
/// rather than a silent success or a misleading 404.
pub fn unimplemented_routes(router: Router<AppState>) -> Router<AppState> {
    const ROUTES: &[(&str, &str)] = &[
        ("/dumps", "POST /dumps"),
        ("/snapshots", "POST /snapshots"),
        ("/export", "POST /export"),
        ("/network", "/network"),
        ("/network/{*rest}", "/network"),
        ("/webhooks", "/webhooks"),
        ("/webhooks/{*rest}", "/webhooks"),
        ("/chats", "/chats"),
        ("/chats/{*rest}", "/chats"),
        ("/logs/{*rest}", "/logs"),
        ("/metrics", "/metrics"),
        ("/tasks/compact", "/tasks/compact"),
        (
            "/indexes/{uid}/documents/edit",
            "/indexes/{uid}/documents/edit",
        ),
        ("/indexes/{uid}/fields", "/indexes/{uid}/fields"),
        ("/render-template", "/render-template"),
        ("/dynamic-search-rules", "/dynamic-search-rules"),
        ("/dynamic-search-rules/{*rest}", "/dynamic-search-rules"),
    ];
    ROUTES.iter().fold(router, |r, (path, what)| {
        r.route(path, any(move || async move { crate::error::ApiError(not_implemented(what)).into_response() }))
    })
}
