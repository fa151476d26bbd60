//! The client's `displayedAttributes` and what the nodes display.
//!
//! A node redacts the value of a `sort` rule on a field missing from its displayed list
//! (`"<hidden>"`), and never returns such a field, so merging needs the nodes to display more
//! than the client asked for. The nodes therefore hold
//! `[client's list..., "_miroir_displayed", fields the merge needs...]`: the client's list
//! comes back from a settings read (cut at the marker), and the fields after it are the
//! sortable attributes, the fields of custom `field:asc|desc` ranking rules and the distinct
//! attribute, which the merge reads and Miroir removes from what clients see. `["*"]` (every
//! field) is stored as it is.

use serde_json::{json, Map, Value};

use super::context::covers;

pub use crate::hidden::MARKER;

/// The node's list split into (the client's list, the fields added for the merge).
pub fn split(node_list: &[String]) -> (Vec<String>, Vec<String>) {
    match node_list.iter().position(|a| a == MARKER) {
        Some(at) => (node_list[..at].to_vec(), node_list[at + 1..].to_vec()),
        None => (node_list.to_vec(), Vec::new()),
    }
}

/// Whether the node's list carries the marker (Miroir wrote it).
pub fn is_encoded(node_list: &[String]) -> bool {
    node_list.iter().any(|a| a == MARKER)
}

/// The node list for the client's `client` list and the fields the merge `needs`.
pub fn encode(client: &[String], needs: &[String]) -> Vec<String> {
    if client.iter().any(|a| a == "*") {
        return vec!["*".to_owned()];
    }
    let mut out = client.to_vec();
    out.push(MARKER.to_owned());
    for f in needs {
        // A node redacts a sort value unless the field's exact name is listed.
        if !out.contains(f) {
            out.push(f.clone());
        }
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Fields the merge reads from hits, from a settings object: sortable attributes, custom
/// ranking rule fields and the distinct attribute.
pub fn needs(settings: &Map<String, Value>) -> Vec<String> {
    let mut out = strings(settings.get("sortableAttributes"));
    for rule in strings(settings.get("rankingRules")) {
        if let Some(field) = rule
            .strip_suffix(":asc")
            .or_else(|| rule.strip_suffix(":desc"))
        {
            out.push(field.to_owned());
        }
    }
    if let Some(d) = settings.get("distinctAttribute").and_then(Value::as_str) {
        out.push(d.to_owned());
    }
    out.retain(|f| !f.is_empty() && !f.contains('*'));
    out
}

/// Settings routes that change what the nodes must display.
pub fn affects_display(route: &str) -> bool {
    matches!(
        route,
        "settings.update"
            | "settings.reset"
            | "settings.displayed_attributes.update"
            | "settings.displayed_attributes.reset"
            | "settings.sortable_attributes.update"
            | "settings.sortable_attributes.reset"
            | "settings.ranking_rules.update"
            | "settings.ranking_rules.reset"
            | "settings.distinct_attribute.update"
            | "settings.distinct_attribute.reset"
    )
}

/// The settings key a sub-route writes.
fn route_key(route: &str) -> Option<&'static str> {
    Some(match route.strip_prefix("settings.")?.rsplit_once('.')?.0 {
        "displayed_attributes" => "displayedAttributes",
        "sortable_attributes" => "sortableAttributes",
        "ranking_rules" => "rankingRules",
        "distinct_attribute" => "distinctAttribute",
        _ => return None,
    })
}

/// Meilisearch's default for the settings the display depends on.
fn default_of(key: &str) -> Value {
    match key {
        "displayedAttributes" => json!(["*"]),
        "sortableAttributes" => json!([]),
        "rankingRules" => json!([
            "words",
            "typo",
            "proximity",
            "attributeRank",
            "sort",
            "wordPosition",
            "exactness"
        ]),
        _ => Value::Null,
    }
}

/// The body of a display-affecting settings update as the nodes get it: a restricted
/// `displayedAttributes` is encoded with the fields the same update makes the merge need.
/// Anything unreadable is returned unchanged (the nodes reject it with their own error).
pub fn rewrite_update(route: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    match route {
        "settings.update" => {
            let obj = value.as_object_mut()?;
            let list = obj.get("displayedAttributes")?.as_array()?;
            let client: Vec<String> = list
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()?;
            let encoded = encode(&client, &needs(obj));
            obj.insert("displayedAttributes".into(), json!(encoded));
        }
        "settings.displayed_attributes.update" => {
            let client: Vec<String> = value
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()?;
            value = json!(encode(&client, &[]));
        }
        _ => return None,
    }
    serde_json::to_vec(&value).ok()
}

/// What the nodes' settings become once a client's update (`route`, `body`) is applied over
/// `current`: only the keys the display depends on. `None` when the body is unreadable.
pub fn after_update(
    current: &Map<String, Value>,
    route: &str,
    body: &[u8],
) -> Option<Map<String, Value>> {
    const KEYS: [&str; 4] = [
        "displayedAttributes",
        "sortableAttributes",
        "rankingRules",
        "distinctAttribute",
    ];
    let mut out: Map<String, Value> = KEYS
        .iter()
        .map(|k| {
            (
                (*k).to_owned(),
                current.get(*k).cloned().unwrap_or_else(|| default_of(k)),
            )
        })
        .collect();
    let reset = route.ends_with(".reset");
    match (route, route_key(route)) {
        ("settings.reset", _) => {
            for k in KEYS {
                out.insert(k.into(), default_of(k));
            }
        }
        ("settings.update", _) => {
            let patch: Value = serde_json::from_slice(body).ok()?;
            for (k, v) in patch.as_object()? {
                if KEYS.contains(&k.as_str()) {
                    let v = if v.is_null() {
                        default_of(k)
                    } else {
                        v.clone()
                    };
                    out.insert(k.clone(), v);
                }
            }
        }
        (_, Some(k)) if reset => {
            out.insert(k.into(), default_of(k));
        }
        (_, Some(k)) => {
            let v: Value = serde_json::from_slice(body).ok()?;
            out.insert(k.into(), if v.is_null() { default_of(k) } else { v });
        }
        _ => return None,
    }
    Some(out)
}

/// The displayed list the nodes should hold for `settings` (as [`after_update`] gives them),
/// when it differs from theirs.
pub fn repair(settings: &Map<String, Value>) -> Option<Vec<String>> {
    let node_list = strings(settings.get("displayedAttributes"));
    let (client, _) = split(&node_list);
    if client.iter().any(|a| a == "*") {
        return None;
    }
    let wanted = encode(&client, &needs(settings));
    (wanted != node_list).then_some(wanted)
}

/// Whether a settings update sets the displayed attributes to a list: the whole settings
/// with a `displayedAttributes` list, or the displayed-attributes route.
pub fn sets_displayed(route: &str, body: &[u8]) -> bool {
    match route {
        "settings.update" => serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v.get("displayedAttributes").is_some_and(Value::is_array)),
        "settings.displayed_attributes.update" => {
            serde_json::from_slice::<Value>(body).is_ok_and(|v| v.is_array())
        }
        _ => false,
    }
}

/// A settings update as the nodes get it, `body`, with the nodes' displayed list `wanted` in
/// place of the one it sets (see [`sets_displayed`]): the list the merge needs is then in the
/// client's own task, with no update of Miroir's behind it that the client does not wait for.
pub fn with_displayed(route: &str, body: &[u8], wanted: &[String]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    match route {
        "settings.update" => {
            value
                .as_object_mut()?
                .insert("displayedAttributes".into(), json!(wanted));
        }
        "settings.displayed_attributes.update" => value = json!(wanted),
        _ => return None,
    }
    serde_json::to_vec(&value).ok()
}

/// Whether the client-visible `displayed` list shows `field` (a field or one of its parents
/// is listed).
pub fn shows(displayed: &[String], field: &str) -> bool {
    displayed.iter().any(|d| covers(d, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: Value) -> Vec<String> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_whole_displayed_list_goes_in_the_clients_own_update() {
        assert!(sets_displayed(
            "settings.update",
            br#"{"displayedAttributes":["a"]}"#
        ));
        assert!(!sets_displayed(
            "settings.update",
            br#"{"displayedAttributes":null}"#
        ));
        assert!(!sets_displayed(
            "settings.update",
            br#"{"rankingRules":["words"]}"#
        ));
        assert!(sets_displayed(
            "settings.displayed_attributes.update",
            br#"["a"]"#
        ));
        let wanted = list(json!(["a", MARKER, "price"]));
        let out = with_displayed(
            "settings.update",
            br#"{"displayedAttributes":["a"],"sortableAttributes":["price"]}"#,
            &wanted,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"displayedAttributes": ["a", MARKER, "price"], "sortableAttributes": ["price"]})
        );
        let out = with_displayed("settings.displayed_attributes.update", br#"["a"]"#, &wanted);
        assert_eq!(
            serde_json::from_slice::<Value>(&out.unwrap()).unwrap(),
            json!(["a", MARKER, "price"])
        );
    }

    #[test]
    fn the_client_list_is_kept_before_the_marker_and_merge_fields_after_it() {
        let node = encode(&list(json!(["title"])), &list(json!(["price", "title"])));
        assert_eq!(node, list(json!(["title", MARKER, "price"])));
        assert_eq!(
            split(&node),
            (list(json!(["title"])), list(json!(["price"])))
        );
        assert_eq!(encode(&list(json!(["*", "x"])), &list(json!(["p"]))), ["*"]);
        assert_eq!(
            split(&list(json!(["a"]))).0,
            ["a"],
            "lists Miroir did not write"
        );
    }

    #[test]
    fn updates_encode_the_list_with_what_the_same_update_makes_sortable() {
        let out = rewrite_update(
            "settings.update",
            br#"{"displayedAttributes":["title"],"sortableAttributes":["price"],"rankingRules":["words","year:desc"],"distinctAttribute":"brand"}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["displayedAttributes"],
            json!(["title", MARKER, "price", "year", "brand"])
        );
        let out = rewrite_update("settings.displayed_attributes.update", br#"["a","b"]"#).unwrap();
        assert_eq!(out, br#"["a","b","_miroir_displayed"]"#);
        assert!(rewrite_update("settings.update", br#"{"sortableAttributes":["p"]}"#).is_none());
        assert!(rewrite_update("settings.displayed_attributes.update", b"nope").is_none());
    }

    #[test]
    fn a_later_sortable_update_asks_for_a_repair() {
        let current = json!({"displayedAttributes": ["title", MARKER], "sortableAttributes": [], "rankingRules": ["words"]});
        let current = current.as_object().unwrap();
        let after = after_update(
            current,
            "settings.sortable_attributes.update",
            br#"["price"]"#,
        )
        .unwrap();
        assert_eq!(
            repair(&after),
            Some(list(json!(["title", MARKER, "price"])))
        );
        let after = after_update(current, "settings.displayed_attributes.reset", b"").unwrap();
        assert_eq!(repair(&after), None, "everything displayed");
        let after = after_update(
            current,
            "settings.update",
            br#"{"distinctAttribute":"brand","displayedAttributes":null}"#,
        )
        .unwrap();
        assert_eq!(repair(&after), None);
        let done = json!({"displayedAttributes": ["title", MARKER, "price"], "sortableAttributes": ["price"]});
        assert_eq!(repair(done.as_object().unwrap()), None, "nothing to do");
    }
}
