//! The alias admin API: `GET`/`POST /_miroir/aliases`, `GET`/`PUT`/`DELETE
//! /_miroir/aliases/{name}` (behind the admin key, checked by the caller). Checks that a
//! change makes sense (names, targets that exist and are not aliases, a name that is not an
//! index) under the alias table's one turn, so they still hold when it is saved.

use std::collections::VecDeque;

use miroir_filters::error::{Code, MiroirError};
use serde_json::{json, Map, Value};

use crate::cluster::aliases::{valid_uid, Alias, AliasTable};
use crate::cluster::Runtime;
use crate::node_io;
use crate::request::Reply;
use crate::shared::Shared;
use crate::tasks::now_rfc3339;

/// The answer to an alias request; `by` names who asked (history of repoints).
pub async fn handle(
    shared: &Shared,
    rt: &Runtime,
    method: &str,
    path: &str,
    body: &[u8],
    by: &str,
) -> Result<Reply, MiroirError> {
    let rest = path
        .trim_end_matches('/')
        .strip_prefix("/_miroir/aliases")
        .unwrap_or_default();
    let name = match rest.strip_prefix('/') {
        Some(name) if !name.is_empty() && !name.contains('/') => Some(name),
        None if rest.is_empty() => None,
        _ => return Err(not_a_route(method, path)),
    };
    match (method, name) {
        ("GET", None) => {
            let table = shared.aliases.load();
            let results: Vec<Value> = table.iter().map(|(n, a)| view(n, a)).collect();
            Ok(Reply::json(200, &json!({ "results": results })))
        }
        ("POST", None) => create(shared, rt, body).await,
        ("GET", Some(name)) => {
            let table = shared.aliases.load();
            let alias = table.get(name).ok_or_else(|| not_found(name))?;
            Ok(Reply::json(200, &view(name, alias)))
        }
        ("PUT", Some(name)) => repoint(shared, rt, name, body, by).await,
        ("DELETE", Some(name)) => {
            let change = shared.aliases.change().await.map_err(unshared)?;
            let mut next = AliasTable::clone(&change.current());
            let alias = next.remove(name).ok_or_else(|| not_found(name))?;
            change.save(next).await.map_err(internal)?;
            log::info!(target: "miroir::aliases", "alias {name} deleted by {by}");
            Ok(Reply::json(200, &view(name, &alias)))
        }
        _ => Err(not_a_route(method, path)),
    }
}

/// An alias as the API shows it: `target` for an alias of one index, `targets` for several.
fn view(name: &str, a: &Alias) -> Value {
    let mut v = Map::new();
    v.insert("name".into(), name.into());
    if a.multi {
        v.insert("targets".into(), json!(a.targets));
    } else {
        v.insert("target".into(), json!(a.targets.first()));
    }
    v.insert("createdAt".into(), json!(a.created_at));
    v.insert("updatedAt".into(), json!(a.updated_at));
    v.insert("history".into(), json!(a.history));
    Value::Object(v)
}

async fn create(shared: &Shared, rt: &Runtime, body: &[u8]) -> Result<Reply, MiroirError> {
    let mut fields = object(body)?;
    let name = match fields.remove("name") {
        Some(Value::String(n)) => n,
        Some(_) => return Err(invalid("`name` must be a string.")),
        None => return Err(invalid("`name` is required.")),
    };
    if !valid_uid(&name) {
        return Err(invalid(format!(
            "`{name}` is not a valid alias name: like an index uid, it takes 1 to 400 ASCII \
             letters, digits, `-` and `_`."
        )));
    }
    let (targets, multi) = targets(fields)?;
    let change = shared.aliases.change().await.map_err(unshared)?;
    let mut next = AliasTable::clone(&change.current());
    if next.get(&name).is_some() {
        return Err(MiroirError::new(
            Code::AliasAlreadyExists,
            format!(
                "Alias `{name}` already exists: repoint it with `PUT /_miroir/aliases/{name}`."
            ),
        ));
    }
    if index_exists(shared, rt, &name).await? || queued(shared, rt, &name, "indexCreation").await? {
        return Err(invalid(format!(
            "`{name}` is an index: an alias cannot take an index's uid."
        )));
    }
    check_targets(shared, rt, &next, &targets).await?;
    let now = now_rfc3339();
    let alias = Alias {
        targets,
        multi,
        created_at: now.clone(),
        updated_at: now,
        history: VecDeque::new(),
    };
    let shown = view(&name, &alias);
    next.insert(&name, alias);
    change.save(next).await.map_err(internal)?;
    log::info!(target: "miroir::aliases", "alias {name} created: {shown}");
    Ok(Reply::json(201, &shown))
}

async fn repoint(
    shared: &Shared,
    rt: &Runtime,
    name: &str,
    body: &[u8],
    by: &str,
) -> Result<Reply, MiroirError> {
    let (targets, multi) = targets(object(body)?)?;
    let change = shared.aliases.change().await.map_err(unshared)?;
    let mut next = AliasTable::clone(&change.current());
    let alias = next.get(name).ok_or_else(|| not_found(name))?;
    if alias.multi != multi {
        return Err(invalid(if alias.multi {
            format!("Alias `{name}` has several targets: repoint it with `targets`.")
        } else {
            format!("Alias `{name}` has one target: repoint it with `target`.")
        }));
    }
    check_targets(shared, rt, &next, &targets).await?;
    let from = alias.targets.clone();
    next.repoint(name, targets.clone(), &now_rfc3339(), by);
    let shown = next.get(name).map(|a| view(name, a)).unwrap_or_default();
    change.save(next).await.map_err(internal)?;
    log::info!(
        target: "miroir::aliases",
        "alias {name} repointed from {from:?} to {targets:?} by {by}"
    );
    Ok(Reply::json(200, &shown))
}

fn object(body: &[u8]) -> Result<Map<String, Value>, MiroirError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("The body must be a JSON object.")),
        Err(e) => Err(MiroirError::new(
            Code::MalformedPayload,
            format!("The body is not valid JSON: {e}."),
        )),
    }
}

/// `target` (one index) or `targets` (several, distinct), and whether it was `targets`.
fn targets(mut fields: Map<String, Value>) -> Result<(Vec<String>, bool), MiroirError> {
    let one = fields.remove("target");
    let many = fields.remove("targets");
    if let Some(unknown) = fields.keys().next() {
        return Err(invalid(format!(
            "Unknown field `{unknown}`: expected `name` and `target` or `targets`."
        )));
    }
    let (list, multi) = match (one, many) {
        (Some(Value::String(t)), None) => (vec![t], false),
        (None, Some(Value::Array(items))) => {
            let list: Option<Vec<String>> = items
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect();
            let list = list.ok_or_else(|| invalid("`targets` must be a list of index uids."))?;
            if list.is_empty() {
                return Err(invalid("`targets` must name at least one index."));
            }
            (list, true)
        }
        (Some(_), Some(_)) => return Err(invalid("Give `target` or `targets`, not both.")),
        (None, None) => return Err(invalid("`target` (or `targets`) is required.")),
        _ => {
            return Err(invalid(
                "`target` must be an index uid, `targets` a list of index uids.",
            ))
        }
    };
    for (i, t) in list.iter().enumerate() {
        if !valid_uid(t) {
            return Err(invalid(format!("`{t}` is not a valid index uid.")));
        }
        if list[..i].contains(t) {
            return Err(invalid(format!("`{t}` is named twice in `targets`.")));
        }
    }
    Ok((list, multi))
}

/// Each target is an index that exists, not an alias.
async fn check_targets(
    shared: &Shared,
    rt: &Runtime,
    table: &AliasTable,
    targets: &[String],
) -> Result<(), MiroirError> {
    for t in targets {
        if table.get(t).is_some() {
            return Err(invalid(format!(
                "`{t}` is an alias: an alias points to indexes, not to other aliases."
            )));
        }
        if !index_exists(shared, rt, t).await? {
            return Err(invalid(format!(
                "Index `{t}` does not exist: an alias points to existing indexes."
            )));
        }
        if queued(shared, rt, t, "indexDeletion").await? {
            return Err(invalid(format!(
                "Index `{t}` is being deleted: an alias points to existing indexes."
            )));
        }
    }
    Ok(())
}

/// Whether the nodes hold index `uid` (asked of one with Miroir's key).
async fn index_exists(shared: &Shared, rt: &Runtime, uid: &str) -> Result<bool, MiroirError> {
    let resp = node_io::any(
        &shared.cluster,
        rt,
        &format!("/indexes/{uid}"),
        rt.node_key(),
    )
    .await?;
    match resp.status {
        200 => Ok(true),
        404 => Ok(false),
        s => Err(MiroirError::new(
            Code::NodeUnreachable,
            format!("A node answered {s} when asked whether index `{uid}` exists."),
        )),
    }
}

/// Whether the nodes still have a task of `kind` queued for index `uid`: accepted, not yet
/// applied (index changes are sent to every node under the alias turn, so one node knows).
async fn queued(shared: &Shared, rt: &Runtime, uid: &str, kind: &str) -> Result<bool, MiroirError> {
    let path = format!("/tasks?indexUids={uid}&types={kind}&statuses=enqueued,processing&limit=1");
    let resp = node_io::any(&shared.cluster, rt, &path, rt.node_key()).await?;
    Ok(resp.status == 200
        && resp
            .json()
            .is_some_and(|v| v["results"].as_array().is_some_and(|a| !a.is_empty())))
}

fn invalid(message: impl Into<String>) -> MiroirError {
    MiroirError::new(Code::InvalidAlias, message)
}

fn not_found(name: &str) -> MiroirError {
    MiroirError::new(Code::AliasNotFound, format!("Alias `{name}` not found."))
}

fn internal(e: String) -> MiroirError {
    log::error!(target: "miroir::aliases", "saving aliases failed: {e}");
    MiroirError::new(Code::Internal, "Miroir could not save the aliases.")
}

fn not_a_route(method: &str, path: &str) -> MiroirError {
    MiroirError::new(
        Code::NotImplemented,
        format!("`{method} {path}` is not an admin route of this version of Miroir."),
    )
}

/// The turn to change aliases could not be taken (several Miroirs share a Redis that does
/// not answer, or another Miroir is changing them).
fn unshared(e: String) -> MiroirError {
    MiroirError::new(
        Code::TaskStoreUnavailable,
        format!("The aliases cannot be changed now: {e}."),
    )
}
