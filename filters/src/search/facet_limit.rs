//! The nodes' `faceting.maxValuesPerFacet`: the client's value plus [`NODE_EXTRA_VALUES`].
//!
//! A node cuts each facet's values at its own limit, before the merge sees them, so a value
//! ranked just below one node's cut would be missed or undercounted in `count` order. The
//! nodes therefore list up to [`NODE_EXTRA_VALUES`] more values than the client asked for
//! (Miroir cuts the merged list at the client's limit), and the client's value is read back
//! from theirs: settings reads, task details and the merge see `node - NODE_EXTRA_VALUES`.
//! A node value below [`NODE_EXTRA_VALUES`] was not widened (an index Meilisearch just
//! created, or reset, before Miroir widened it) and is the client's as it is.
//!
//! Bound: facet counts are exact while no node holds more matching values of a facet than
//! its limit; past it the merge logs the facet (see `facets`). A client value within
//! [`NODE_EXTRA_VALUES`] of `u64::MAX` is sent as it is and read back lowered by it.

use serde_json::{json, Map, Value};

/// How many more values per facet the nodes list than the client's `maxValuesPerFacet`.
pub const NODE_EXTRA_VALUES: u64 = 10_000;
/// Meilisearch's default `maxValuesPerFacet`.
pub const DEFAULT_MAX_VALUES: u64 = 100;

/// The nodes' value for the client's `client`.
pub fn node_value(client: u64) -> u64 {
    client.checked_add(NODE_EXTRA_VALUES).unwrap_or(client)
}

/// The client's value for the nodes' `node`.
pub fn client_value(node: u64) -> u64 {
    node.checked_sub(NODE_EXTRA_VALUES).unwrap_or(node)
}

/// Whether the nodes' value is Miroir's widening of some client value.
pub fn is_widened(node: u64) -> bool {
    node >= NODE_EXTRA_VALUES
}

/// The `faceting` object of a settings update or read on `route`.
fn faceting<'a>(route: &str, value: &'a mut Value) -> Option<&'a mut Map<String, Value>> {
    match route {
        "settings.update" | "settings.get" => value.get_mut("faceting")?.as_object_mut(),
        "settings.faceting.update" | "settings.faceting.get" => value.as_object_mut(),
        _ => None,
    }
}

/// A settings update's body with a client's `maxValuesPerFacet` widened for the nodes;
/// `None` when it sets none (a malformed value is left for the nodes to reject).
pub fn rewrite_update(route: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let max = faceting(route, &mut value)?.get_mut("maxValuesPerFacet")?;
    *max = Value::from(node_value(max.as_u64()?));
    serde_json::to_vec(&value).ok()
}

/// Whether a settings update (`route`, `body`) puts Meilisearch's default limit back on the
/// nodes, which must then be widened again ([`widening`]).
pub fn resets(route: &str, body: &[u8]) -> bool {
    match route {
        "settings.reset" | "settings.faceting.reset" => true,
        "settings.update" | "settings.faceting.update" => {
            let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
                return false;
            };
            let cleared = match route {
                "settings.update" => value.get("faceting").is_some_and(Value::is_null),
                _ => value.is_null(),
            };
            cleared
                || faceting(route, &mut value)
                    .is_some_and(|f| f.get("maxValuesPerFacet").is_some_and(Value::is_null))
        }
        _ => false,
    }
}

/// The settings update widening the nodes' limit for the client's `client` value.
pub fn widening(client: u64) -> Value {
    json!({"faceting": {"maxValuesPerFacet": node_value(client)}})
}

/// The nodes' value once settings updates still queued on a node apply over `current`:
/// `details` are those tasks' details, oldest first (they carry the values the nodes were
/// sent; `null` puts the default back).
pub fn after_queued<'a>(current: u64, details: impl IntoIterator<Item = &'a Value>) -> u64 {
    details
        .into_iter()
        .fold(current, |value, d| match d.get("faceting") {
            Some(Value::Null) => DEFAULT_MAX_VALUES,
            Some(f) => match f.get("maxValuesPerFacet") {
                Some(Value::Null) => DEFAULT_MAX_VALUES,
                Some(n) => n.as_u64().unwrap_or(value),
                None => value,
            },
            None => value,
        })
}

/// Shows the client's value in a settings read (`settings.get`, `settings.faceting.get`).
pub fn show_in_settings(route: &str, value: &mut Value) {
    if let Some(f) = faceting(route, value) {
        show(f);
    }
}

/// Shows the client's value in a settings task's `details`.
pub fn show_in_details(details: &mut Map<String, Value>) {
    if let Some(f) = details.get_mut("faceting").and_then(Value::as_object_mut) {
        show(f);
    }
}

fn show(faceting: &mut Map<String, Value>) {
    if let Some(max) = faceting.get_mut("maxValuesPerFacet") {
        if let Some(n) = max.as_u64() {
            *max = Value::from(client_value(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(route: &str, body: Value) -> Option<Value> {
        let out = rewrite_update(route, body.to_string().as_bytes())?;
        serde_json::from_slice(&out).ok()
    }

    #[test]
    fn updates_widen_and_reads_show_the_clients_value() {
        assert_eq!(
            rewritten(
                "settings.update",
                json!({"faceting": {"maxValuesPerFacet": 5}, "rankingRules": ["words"]})
            ),
            Some(json!({"faceting": {"maxValuesPerFacet": 10_005}, "rankingRules": ["words"]}))
        );
        assert_eq!(
            rewritten("settings.faceting.update", json!({"maxValuesPerFacet": 0})),
            Some(json!({"maxValuesPerFacet": 10_000}))
        );
        assert_eq!(
            rewritten(
                "settings.faceting.update",
                json!({"sortFacetValuesBy": {"*": "count"}})
            ),
            None
        );
        assert_eq!(
            rewritten("settings.faceting.update", json!({"maxValuesPerFacet": -1})),
            None
        );

        let mut read = json!({"faceting": {"maxValuesPerFacet": 10_100, "sortFacetValuesBy": {}}});
        show_in_settings("settings.get", &mut read);
        assert_eq!(read["faceting"]["maxValuesPerFacet"], 100);
        let mut read = json!({"maxValuesPerFacet": 100});
        show_in_settings("settings.faceting.get", &mut read);
        assert_eq!(read["maxValuesPerFacet"], 100);
        let mut details = json!({"faceting": {"maxValuesPerFacet": 10_007}});
        if let Some(d) = details.as_object_mut() {
            show_in_details(d);
        }
        assert_eq!(details["faceting"]["maxValuesPerFacet"], 7);
    }

    #[test]
    fn queued_updates_apply_in_order() {
        let details = [
            json!({"faceting": {"maxValuesPerFacet": 10_005}}),
            json!({"rankingRules": ["words"]}),
        ];
        assert_eq!(after_queued(100, &details), 10_005);
        let details = [
            json!({"faceting": {"maxValuesPerFacet": 10_005}}),
            json!({"faceting": null}),
        ];
        assert_eq!(after_queued(10_100, &details), 100);
        assert_eq!(after_queued(7, &[]), 7);
    }

    #[test]
    fn resets_are_told_apart_from_other_updates() {
        assert!(resets("settings.reset", b""));
        assert!(resets("settings.faceting.reset", b""));
        assert!(resets("settings.update", br#"{"faceting":null}"#));
        assert!(resets(
            "settings.update",
            br#"{"faceting":{"maxValuesPerFacet":null}}"#
        ));
        assert!(resets("settings.faceting.update", b"null"));
        assert!(resets(
            "settings.faceting.update",
            br#"{"maxValuesPerFacet":null}"#
        ));
        assert!(!resets(
            "settings.update",
            br#"{"faceting":{"sortFacetValuesBy":{"*":"count"}}}"#
        ));
        assert!(!resets("settings.update", br#"{"rankingRules":null}"#));
    }
}
