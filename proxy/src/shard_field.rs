//! Keeping `_miroir_shard` filterable on every node, whatever clients do to the settings, and
//! out of the settings they read back: searches AND a `_miroir_shard IN [...]` clause into
//! every node filter, so the field must stay filterable.

use bytes::Bytes;
use miroir_filters::search::display;
use miroir_filters::write::SHARD_FIELD;
use serde_json::{json, Value};

use crate::broadcast::{self, Incoming, Reply};
use crate::state::{Runtime, Shared};
use crate::upstream::NodeRequest;

/// Routes whose answer lists filterable attributes (Miroir reads them itself to hide the
/// field) or the displayed attributes (to show the client's list, not the nodes').
pub fn hides(route: &str) -> bool {
    matches!(
        route,
        "settings.get" | "settings.filterable_attributes.get" | "settings.displayed_attributes.get"
    )
}

fn is_shard_rule(rule: &Value) -> bool {
    match rule {
        Value::String(s) => s == SHARD_FIELD,
        Value::Object(o) => o["attributePatterns"]
            .as_array()
            .is_some_and(|p| p.len() == 1 && p[0] == SHARD_FIELD),
        _ => false,
    }
}

/// The filterable attributes `list` with `_miroir_shard` among them.
pub(crate) fn with_shard(list: &Value) -> Value {
    let mut rules = list.as_array().cloned().unwrap_or_default();
    if !rules.iter().any(is_shard_rule) {
        rules.push(json!(SHARD_FIELD));
    }
    Value::Array(rules)
}

/// The body of a settings update with `_miroir_shard` kept among the filterable attributes.
pub fn rewrite_update(route: &str, body: &Bytes) -> Bytes {
    // The nodes display more than the client's `displayedAttributes` (see `display`).
    let body = &display::rewrite_update(route, body).map_or_else(|| body.clone(), Bytes::from);
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        // Unreadable: the nodes reject it with Meilisearch's own error.
        return body.clone();
    };
    match route {
        "settings.update" => match value.get_mut("filterableAttributes") {
            Some(list) => *list = with_shard(list),
            None => return body.clone(),
        },
        "settings.filterable_attributes.update" if value.is_array() || value.is_null() => {
            value = with_shard(&value)
        }
        _ => return body.clone(),
    }
    Bytes::from(value.to_string())
}

/// Whether a settings update names the filterable attributes (then rewritten to hold the field).
pub fn sets_filterable(route: &str, body: &Bytes) -> bool {
    match route {
        "settings.filterable_attributes.update" => true,
        "settings.update" => serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v.get("filterableAttributes").is_some()),
        _ => false,
    }
}

/// Whether a broadcast route resets the filterable attributes, so the field must be put back,
/// or changes what the nodes must display for the merge (then [`restore`] widens it).
pub fn resets(route: &str) -> bool {
    filterable_reset(route) || display::affects_display(route)
}

fn filterable_reset(route: &str) -> bool {
    matches!(
        route,
        "settings.reset" | "settings.filterable_attributes.reset"
    )
}

/// Removes `_miroir_shard` from a settings answer (the whole settings or the filterable list)
/// and cuts the displayed list back to the client's.
pub fn strip(route: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    // The client's `displayedAttributes` is the nodes' list up to Miroir's marker.
    let displayed = match route {
        "settings.get" => value.get_mut("displayedAttributes"),
        "settings.displayed_attributes.get" => Some(&mut value),
        _ => None,
    };
    if let Some(list) = displayed.and_then(Value::as_array_mut) {
        if let Some(at) = list.iter().position(|a| a == display::MARKER) {
            list.truncate(at);
        }
    }
    if route == "settings.displayed_attributes.get" {
        return serde_json::to_vec(&value).ok();
    }
    let list = match route {
        "settings.get" => value.get_mut("filterableAttributes")?,
        _ => &mut value,
    };
    list.as_array_mut()?.retain(|r| !is_shard_rule(r));
    serde_json::to_vec(&value).ok()
}

/// Hides Miroir's additions from a settings task's `details` (what the nodes were sent):
/// `_miroir_shard` among the filterable attributes, and the displayed attributes past the
/// marker.
pub fn strip_task_details(view: &mut Value) {
    let Some(details) = view.get_mut("details").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(list) = details
        .get_mut("filterableAttributes")
        .and_then(Value::as_array_mut)
    {
        list.retain(|r| !is_shard_rule(r));
    }
    if let Some(list) = details
        .get_mut("displayedAttributes")
        .and_then(Value::as_array_mut)
    {
        if let Some(at) = list.iter().position(|a| a == display::MARKER) {
            list.truncate(at);
        }
    }
}

/// Sends the filterable attributes plus `_miroir_shard` to every node (a settings task each,
/// processed before anything enqueued after it).
async fn add_everywhere(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    current: &Value,
) {
    let body = [Bytes::from(
        json!({ "filterableAttributes": with_shard(current) }).to_string(),
    )];
    let path = format!("/indexes/{index_uid}/settings");
    let req = NodeRequest {
        method: "PATCH",
        path: &path,
        auth: rt.node_key(),
        content_type: Some("application/json"),
        body: &body,
        request_id: Some(&inc.request_id),
    };
    let results = broadcast::to_all(shared, rt, req, rt.config.scatter.node_timeout).await;
    let all_ok = results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|resp| resp.status == 202));
    if all_ok {
        shared.shard_filterable.insert(index_uid.to_owned(), ());
    } else {
        log::warn!(target: "miroir::settings", "could not make `{SHARD_FIELD}` filterable on every node for `{index_uid}`; retrying on the next write");
    }
}

/// Makes sure `_miroir_shard` is filterable on `index_uid` before documents are sent (creating
/// the index's settings if it does not exist yet).
pub async fn ensure(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    if shared.shard_filterable.contains_key(index_uid) {
        return;
    }
    let path = format!("/indexes/{index_uid}/settings/filterable-attributes");
    let Ok(resp) = broadcast::read_any(shared, rt, &path, rt.node_key()).await else {
        return;
    };
    match resp.status {
        200 => {
            let current = resp.json().unwrap_or(Value::Null);
            if current
                .as_array()
                .is_some_and(|l| l.iter().any(is_shard_rule))
            {
                shared.shard_filterable.insert(index_uid.to_owned(), ());
            } else {
                add_everywhere(shared, rt, inc, index_uid, &current).await;
            }
        }
        404 => add_everywhere(shared, rt, inc, index_uid, &json!([])).await,
        // A refusal (auth): the write itself will be refused the same way.
        _ => {}
    }
}

/// After a reset of the filterable attributes, puts the field back on every node; after an
/// update the display depends on, widens the nodes' displayed list for the merge.
pub async fn restore(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    if display::affects_display(inc.route) {
        crate::search::repair_display(shared, rt, inc, index_uid).await;
        if !filterable_reset(inc.route) {
            return;
        }
    }
    shared.shard_filterable.remove(index_uid);
    add_everywhere(shared, rt, inc, index_uid, &json!([])).await;
}

/// After an index creation every node accepted: the field must be filterable before any
/// document arrives. The creation of an index that already exists fails on the nodes, so the
/// settings task queued behind it keeps the filterable attributes the index has (read now)
/// rather than resetting them.
pub async fn after_creation(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    shared.shard_filterable.remove(index_uid);
    ensure(shared, rt, inc, index_uid).await;
}

/// A settings read with the field hidden.
pub async fn read_settings(shared: &Shared, rt: &Runtime, inc: &Incoming, route: &str) -> Reply {
    match broadcast::read_any(shared, rt, &inc.path, inc.auth.as_deref()).await {
        Ok(resp) if resp.status == 200 => match strip(route, &resp.body) {
            Some(body) => Reply::raw(200, body),
            None => Reply::relay(&resp),
        },
        Ok(resp) => Reply::relay(&resp),
        Err(reply) => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_keep_the_field_and_reads_hide_it() {
        let body =
            Bytes::from(r#"{"filterableAttributes":["genre"],"sortableAttributes":["year"]}"#);
        let out: Value = serde_json::from_slice(&rewrite_update("settings.update", &body)).unwrap();
        assert_eq!(
            out["filterableAttributes"],
            json!(["genre", "_miroir_shard"])
        );
        assert_eq!(out["sortableAttributes"], json!(["year"]));
        let out: Value = serde_json::from_slice(&rewrite_update(
            "settings.update",
            &Bytes::from(r#"{"filterableAttributes":null}"#),
        ))
        .unwrap();
        assert_eq!(out["filterableAttributes"], json!(["_miroir_shard"]));
        let out: Value = serde_json::from_slice(&rewrite_update(
            "settings.filterable_attributes.update",
            &Bytes::from(r#"["a","_miroir_shard"]"#),
        ))
        .unwrap();
        assert_eq!(out, json!(["a", "_miroir_shard"]));
        let untouched = Bytes::from(r#"{"rankingRules":["words"]}"#);
        assert_eq!(rewrite_update("settings.update", &untouched), untouched);

        let read = strip(
            "settings.get",
            br#"{"filterableAttributes":["genre","_miroir_shard"],"x":1}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&read).unwrap(),
            json!({"filterableAttributes": ["genre"], "x": 1})
        );
        let read = strip(
            "settings.filterable_attributes.get",
            br#"["_miroir_shard"]"#,
        )
        .unwrap();
        assert_eq!(read, b"[]");
    }
}
