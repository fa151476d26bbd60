//! Where a request's alias becomes an index: once, as the route is classified, from the alias
//! table the request loaded. A request naming an alias of one index is rewritten to name that
//! index (path, or the `indexUids` filter of task routes), so every path and the pass-through
//! pipeline act on the index the request resolved, even if the alias is repointed meanwhile.
//! An alias of several indexes is kept for a search (merged across them, see
//! `read::alias_search`) and refused elsewhere.

use std::sync::Arc;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::query;
use miroir_filters::routes::{RouteClass, RouteSpec};
use serde_json::Value;

use crate::cluster::aliases::{AliasTable, Resolved};
use crate::cluster::reshards;

/// What the alias table makes of one request.
#[derive(Default)]
pub struct AliasUse {
    /// The path and query to serve instead of the client's.
    pub path: Option<String>,
    /// The index the route names, once resolved.
    pub index_uid: Option<String>,
    /// A search on an alias of several indexes: those indexes.
    pub targets: Option<Arc<[String]>>,
    /// The request may not run (answered once its key is checked).
    pub refused: Option<MiroirError>,
}

const TASK_ROUTES: [&str; 4] = ["tasks.list", "tasks.cancel", "tasks.delete", "batches.list"];

/// Resolves the request's index (`index`, from the path) or its task filter against `table`;
/// `None` when nothing names an alias or an aliased index it would delete.
pub fn resolve(
    table: &AliasTable,
    spec: &RouteSpec,
    index: Option<&str>,
    path_and_query: &str,
) -> Option<AliasUse> {
    if let Some(uid) = index.filter(|i| reshards::is_internal(i)) {
        // Miroir's own indexes (a reshard's shadow) do not exist for a client.
        return Some(AliasUse {
            refused: Some(MiroirError::new(
                Code::IndexNotFound,
                format!("Index `{uid}` not found."),
            )),
            ..AliasUse::default()
        });
    }
    if table.is_empty() {
        return None;
    }
    if TASK_ROUTES.contains(&spec.name) {
        return task_filter(table, path_and_query).map(|path| AliasUse {
            path: Some(path),
            ..AliasUse::default()
        });
    }
    let name = index?;
    match table.resolve(name) {
        Resolved::Index => None,
        Resolved::One(target) => {
            let rest = path_and_query
                .strip_prefix("/indexes/")
                .and_then(|p| p.strip_prefix(name))
                .unwrap_or("");
            Some(AliasUse {
                path: Some(format!("/indexes/{target}{rest}")),
                index_uid: Some(target.to_owned()),
                ..AliasUse::default()
            })
        }
        Resolved::Many(targets) => {
            if matches!(spec.name, "search.get" | "search.post") {
                return Some(AliasUse {
                    targets: Some(targets.into()),
                    ..AliasUse::default()
                });
            }
            let writes = matches!(spec.class, RouteClass::Broadcast)
                || (spec.class == RouteClass::ShardRouted && spec.name != "document.get");
            let refused = if writes {
                MiroirError::new(
                    Code::MultiAliasNotWritable,
                    format!(
                        "`{name}` is an alias of several indexes ({}): writes, settings changes \
                         and deletions need an alias of one index, or the index itself.",
                        targets.join(", ")
                    ),
                )
            } else {
                MiroirError::new(
                    Code::MultiAliasUnsupportedRoute,
                    format!(
                        "`{name}` is an alias of several indexes ({}): `{} {}` needs an alias of \
                         one index; only searches are merged across its indexes.",
                        targets.join(", "),
                        spec.method.as_str(),
                        spec.template
                    ),
                )
            };
            Some(AliasUse {
                refused: Some(refused),
                ..AliasUse::default()
            })
        }
    }
}

/// Whether `route` creates, deletes, renames or swaps indexes (see [`check_index_change`]).
pub fn changes_indexes(route: &str) -> bool {
    matches!(
        route,
        "indexes.create" | "index.delete" | "index.update" | "swap_indexes"
    )
}

/// An index creation, rename or swap naming one of Miroir's own index uids (`_miroir_...`).
fn internal_uid(route: &str, body: &[u8]) -> Option<MiroirError> {
    if !matches!(route, "indexes.create" | "index.update" | "swap_indexes") {
        return None;
    }
    let body: Value = serde_json::from_slice(body).ok()?;
    let named: Vec<&str> = match &body {
        Value::Array(swaps) => swaps
            .iter()
            .flat_map(|s| s["indexes"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect(),
        other => other["uid"].as_str().into_iter().collect(),
    };
    let uid = named.into_iter().find(|u| reshards::is_internal(u))?;
    Some(MiroirError::new(
        Code::InvalidIndexUid,
        format!(
            "`{uid}` is not a valid index uid: uids starting with `{}` are reserved for Miroir's \
             own indexes.",
            reshards::INTERNAL_PREFIX
        ),
    ))
}

/// The refusal to delete (or rename) index `uid` while aliases point to it.
fn has_aliases(table: &AliasTable, uid: &str) -> Option<MiroirError> {
    let names = table.pointing_to(uid);
    (!names.is_empty()).then(|| {
        MiroirError::new(
            Code::IndexHasAliases,
            format!(
                "Index `{uid}` is the target of alias {}: repoint or delete the alias first \
                 (`/_miroir/aliases`).",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// The task routes' `indexUids` filter with each alias replaced by its indexes; `None` when
/// it names none.
fn task_filter(table: &AliasTable, path_and_query: &str) -> Option<String> {
    let value = query::param(path_and_query, "indexUids")?;
    let mut changed = false;
    let items: Vec<&str> = value
        .split(',')
        .flat_map(|item| match table.resolve(item) {
            Resolved::Index => vec![item],
            Resolved::One(t) => {
                changed = true;
                vec![t]
            }
            Resolved::Many(ts) => {
                changed = true;
                ts.iter().map(String::as_str).collect()
            }
        })
        .collect();
    changed.then(|| query::with_param(path_and_query, "indexUids", &items.join(",")))
}

/// A change of indexes that deletes or renames an index an alias points to, or names an
/// alias as an index (create, swap, rename): the error to answer. `index` is the route's
/// index, resolved.
pub fn check_index_change(
    table: &AliasTable,
    route: &str,
    index: Option<&str>,
    body: &[u8],
) -> Option<MiroirError> {
    if let Some(refused) = internal_uid(route, body) {
        return Some(refused);
    }
    if table.is_empty() {
        return None;
    }
    if route == "index.delete" {
        return index.and_then(|i| has_aliases(table, i));
    }
    let body: Value = serde_json::from_slice(body).ok()?;
    let is_alias = |uid: &str| table.get(uid).is_some();
    let as_index = |uid: &str| {
        MiroirError::new(
            Code::InvalidAlias,
            format!("`{uid}` is an alias, not an index: an index cannot take its uid."),
        )
    };
    match route {
        "indexes.create" => body["uid"].as_str().filter(|u| is_alias(u)).map(as_index),
        "index.update" => {
            let renamed = body["uid"].as_str()?;
            if is_alias(renamed) {
                return Some(as_index(renamed));
            }
            index
                .filter(|i| *i != renamed)
                .and_then(|i| has_aliases(table, i))
        }
        _ => {
            for swap in body.as_array()? {
                let pair: Vec<&str> = swap["indexes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(alias) = pair.iter().find(|u| is_alias(u)) {
                    return Some(MiroirError::new(
                        Code::InvalidAlias,
                        format!(
                            "`{alias}` is an alias: swap-indexes takes index uids (to move an \
                             alias to another index, repoint it)."
                        ),
                    ));
                }
                if swap["rename"] == Value::Bool(true) {
                    if let Some(refused) = pair.first().and_then(|a| has_aliases(table, a)) {
                        return Some(refused);
                    }
                }
            }
            None
        }
    }
}
