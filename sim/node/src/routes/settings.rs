//! `/indexes/{uid}/settings` and its sub-routes. Updates are `settingsUpdate` tasks (an update
//! on a missing index creates it when processed); bodies are validated at request time.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::Router;
use meili_sim_engine::MeiliError;
use serde_json::{Map, Value};

use super::indexes::check_uid;
use super::{accepted, auth, json_body, ok, AppState, Params};
use crate::auth::Access;
use crate::error::{feature_not_enabled, ApiResult};
use crate::settings::{self as model, Verb, SUB_ROUTES};
use crate::state::Db;
use crate::tasks::Op;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = router.route(
        "/indexes/{uid}/settings",
        get(get_all).patch(patch_all).delete(reset_all),
    );
    SUB_ROUTES.iter().fold(router, |r, (route, key, verb)| {
        let key: &'static str = key;
        let update = move |s, h, p, q, b| update_one(s, h, p, q, b, key);
        let method: MethodRouter<AppState> = get(move |s, h, p| get_one(s, h, p, key))
            .delete(move |s, h, p, q| reset_one(s, h, p, q, key));
        let method = match verb {
            Verb::Put => method.put(update),
            Verb::Patch => method.patch(update),
        };
        r.route(&format!("/indexes/{{uid}}/settings/{route}"), method)
    })
}

/// Experimental settings need their feature on, like in Meilisearch.
fn check_feature(db: &Db, key: &str, action: &str) -> Result<(), MeiliError> {
    match key {
        "chat" if !db.feature("chatCompletions") => Err(feature_not_enabled(
            action,
            "chat completions",
            "https://github.com/orgs/meilisearch/discussions/835",
        )),
        "foreignKeys" if !db.feature("foreignKeys") => Err(feature_not_enabled(
            action,
            "foreign_keys",
            "https://github.com/orgs/meilisearch/discussions/873",
        )),
        _ => Ok(()),
    }
}

fn enqueue(
    s: &AppState,
    access: &Access,
    uid: &str,
    patch: Map<String, Value>,
) -> ApiResult<Response> {
    let details = Some(patch.clone());
    accepted(s.enqueue(
        Some(uid),
        Op::Settings {
            patch,
            allow_index_creation: access.allow_index_creation,
        },
        details,
        None,
    ))
}

async fn get_all(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> ApiResult<Response> {
    auth(&s, &headers, "settings.get", Some(&uid))?;
    check_uid(&uid)?;
    let db = s.db();
    let index = db.index(&uid)?;
    ok(model::public_view(
        &index.settings,
        db.feature("chatCompletions"),
        db.feature("foreignKeys"),
    ))
}

async fn patch_all(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    _params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "settings.update", Some(&uid))?;
    check_uid(&uid)?;
    let patch = model::validate(&json_body(&headers, &body)?)?;
    {
        let db = s.db();
        for (key, value) in &patch {
            if !value.is_null() {
                check_feature(&db, key, &format!("setting `{key}` in the index settings"))?;
            }
        }
    }
    enqueue(&s, &access, &uid, patch)
}

async fn reset_all(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    _params: Params,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "settings.update", Some(&uid))?;
    check_uid(&uid)?;
    let patch: Map<String, Value> = {
        let db = s.db();
        model::default_view()
            .keys()
            .filter(|k| check_feature(&db, k, "").is_ok())
            .map(|k| (k.clone(), Value::Null))
            .collect()
    };
    enqueue(&s, &access, &uid, patch)
}

async fn get_one(
    s: State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    key: &'static str,
) -> ApiResult<Response> {
    auth(&s, &headers, "settings.get", Some(&uid))?;
    check_uid(&uid)?;
    let db = s.db();
    check_feature(&db, key, &format!("showing index `{key}` settings"))?;
    let index = db.index(&uid)?;
    ok(index.settings.get(key).cloned().unwrap_or(Value::Null))
}

async fn update_one(
    s: State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    _params: Params,
    body: Bytes,
    key: &'static str,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "settings.update", Some(&uid))?;
    check_uid(&uid)?;
    let value = model::validate_one(key, &json_body(&headers, &body)?)?;
    if !value.is_null() {
        check_feature(
            &s.db(),
            key,
            &format!("setting `{key}` in the index settings"),
        )?;
    }
    enqueue(&s, &access, &uid, Map::from_iter([(key.to_owned(), value)]))
}

async fn reset_one(
    s: State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    _params: Params,
    key: &'static str,
) -> ApiResult<Response> {
    let access = auth(&s, &headers, "settings.update", Some(&uid))?;
    check_uid(&uid)?;
    enqueue(
        &s,
        &access,
        &uid,
        Map::from_iter([(key.to_owned(), Value::Null)]),
    )
}
