//! Miroir's hidden fields, and the pure rewrites that keep them on the nodes and away from
//! clients: `_miroir_shard` (each document's shard, kept filterable on every node), the
//! reserved `_miroir_` prefix, `_miroir_version` (the write that last set each document, for
//! anti-entropy to tell the latest copy and a missed deletion apart), and the marker that ends the client's part of the nodes'
//! displayed attributes (see `search::display`).
//!
//! A shard's value is written with separator characters only (`-` for a binary 0, `.` for a
//! 1): the tokenizer finds no word in it, so under the default `searchableAttributes: ["*"]`
//! no query matches it (a number would match `q=1`) and it takes no part in ranking, while a
//! filter still tells every value apart. A version is written with separators too, four bits
//! per character (see [`version_value`]).

use serde_json::{json, Map, Value};

use crate::routing::{NodeScope, ShardId};
use crate::search::facet_limit;

/// The field carrying a document's shard number on the nodes.
pub const SHARD_FIELD: &str = "_miroir_shard";
/// The field carrying the version of the write that last set a document (see
/// [`version_value`]). Never filterable, sortable or displayed to clients.
pub const VERSION_FIELD: &str = "_miroir_version";
/// Top-level fields starting with this are Miroir's; clients may not send them.
pub const RESERVED_PREFIX: &str = "_miroir_";
/// Separates the client's displayed attributes from the fields only the merge needs. It names
/// no field (a document field starting with `_miroir_` is refused), so the nodes display
/// nothing for it.
pub const MARKER: &str = "_miroir_displayed";

/// The value of `_miroir_shard` for `shard`: its binary digits, `-` for 0 and `.` for 1.
pub fn shard_value(shard: ShardId) -> String {
    let bits = u32::BITS - shard.0.leading_zeros();
    (0..bits.max(1))
        .rev()
        .map(|bit| if shard.0 >> bit & 1 == 1 { '.' } else { '-' })
        .collect()
}

/// The sixteen digits of a version, 0 to 15: characters Meilisearch 1.50 tokenizes as
/// separators, none of them `-` or `.` (so the older binary form stays readable), `"`, `\`
/// (escaped in JSON) or those clients most often declare `nonSeparatorTokens` (`@`, `#`, `&`,
/// `+`, `_`, `'`).
const VERSION_DIGITS: &[u8; 16] = b" !%()*,/:;?[]`{}";

/// The value of `_miroir_version` for `version`: its hexadecimal digits written with
/// [`VERSION_DIGITS`] (13 characters for a time in microseconds). No query word and no number
/// in a query ever matches it, yet it reads back exactly. Each character costs a node
/// indexing time (a separator token per character), hence four bits per character rather
/// than the shard's one.
pub fn version_value(version: u64) -> String {
    let digits = (u64::BITS - version.leading_zeros()).div_ceil(4).max(1);
    (0..digits)
        .rev()
        .map(|d| char::from(VERSION_DIGITS[(version >> (4 * d) & 15) as usize]))
        .collect()
}

/// The version a document's `_miroir_version` holds; `None` when it has none (written before
/// versions, or behind Miroir's back) or not one Miroir wrote. Reads both forms: the current
/// one and the binary one (`-` for 0, `.` for 1) documents stamped before it still carry
/// until their next write; their alphabets are disjoint.
pub fn parse_version(value: &Value) -> Option<u64> {
    let s = value.as_str()?.as_bytes();
    if s.is_empty() {
        return None;
    }
    if s.iter().all(|b| matches!(b, b'-' | b'.')) {
        return (s.len() <= 64).then(|| s.iter().fold(0, |v, b| v << 1 | u64::from(*b == b'.')));
    }
    if s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |v, b| {
        let digit = VERSION_DIGITS.iter().position(|d| d == b)?;
        Some(v << 4 | digit as u64)
    })
}

/// `_miroir_shard IN ["-", ".-"]`: the filter clause keeping a node to `shards`.
pub fn shard_clause(shards: &[ShardId]) -> String {
    let mut clause = String::with_capacity(24 + shards.len() * 8);
    clause.push_str(SHARD_FIELD);
    clause.push_str(" IN [");
    for (i, &shard) in shards.iter().enumerate() {
        if i > 0 {
            clause.push_str(", ");
        }
        clause.push('"');
        clause.push_str(&shard_value(shard));
        clause.push('"');
    }
    clause.push(']');
    clause
}

/// The `filter` for a node answering for `scope`: the client's `filter` ANDed with the shard
/// clause; `None` when the node answers for its whole index and the client's filter (or its
/// absence) stands as sent. Array elements are ANDed and parsed each on its own, so an
/// unbalanced expression fails as on one node instead of escaping the clause; a filter of any
/// other type is left for the node to reject.
pub fn scoped_filter(filter: Option<&Value>, scope: NodeScope<'_>) -> Option<Value> {
    let clause = Value::String(shard_clause(scope.filter()?));
    Some(match filter {
        None | Some(Value::Null) => clause,
        Some(Value::String(s)) if s.trim().is_empty() => clause,
        Some(Value::String(s)) => json!([s, clause]),
        Some(Value::Array(a)) if a.is_empty() => clause,
        Some(Value::Array(a)) => {
            let mut a = a.clone();
            a.push(clause);
            Value::Array(a)
        }
        Some(other) => other.clone(),
    })
}

/// As long as [`SHARD_FIELD`], and held by no document (a document may not carry `_miroir_`
/// fields): what a node is asked for where a client names the shard field as an attribute, so
/// that the node judges it as one node judges an attribute no document has, and the positions
/// in its error stay right once the name is put back (see [`hide_shard_field_in_messages`]).
pub const UNSET_FIELD: &str = "_miroir_unset";

/// Replaces [`SHARD_FIELD`] where a search, facet search or document fetch body names an
/// attribute: in `filter` expressions, `facets`, `facetName` and `distinct`. The field is
/// filterable on the nodes for Miroir's own clause; to a client it does not exist.
pub fn mask_shard_field(body: &mut Map<String, Value>) {
    fn names(s: &str) -> bool {
        s == SHARD_FIELD
            || s.strip_prefix(SHARD_FIELD)
                .is_some_and(|r| r.starts_with('.'))
    }
    fn mask(s: &str) -> String {
        format!("{UNSET_FIELD}{}", &s[SHARD_FIELD.len()..])
    }
    if let Some(filter) = body.get_mut("filter") {
        mask_filter(filter);
    }
    for key in ["facetName", "distinct"] {
        if let Some(Value::String(s)) = body.get_mut(key) {
            if names(s) {
                *s = mask(s);
            }
        }
    }
    if let Some(Value::Array(facets)) = body.get_mut("facets") {
        for f in facets {
            if let Value::String(s) = f {
                if names(s) {
                    *s = mask(s);
                }
            }
        }
    }
}

/// A delete-by-filter or edit-by-function body with the shard field masked in its `filter`
/// (see [`mask_shard_field`]): one node fails such a task, where the field Miroir keeps
/// filterable would match every document. `None` when there is nothing to mask.
pub fn mask_write_filter(route: &str, body: &[u8]) -> Option<Vec<u8>> {
    if !matches!(route, "documents.delete_by_filter" | "documents.edit") {
        return None;
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    if !mask_filter(value.get_mut("filter")?) {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

/// [`SHARD_FIELD`] masked where it is a whole word of a filter expression, at any depth of a
/// filter array; whether any was.
pub fn mask_filter(filter: &mut Value) -> bool {
    match filter {
        Value::String(s) if s.contains(SHARD_FIELD) => {
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            let mut masked = false;
            while let Some(at) = rest.find(SHARD_FIELD) {
                let end = at + SHARD_FIELD.len();
                let bounded =
                    !word(rest[..at].chars().next_back()) && !word(rest[end..].chars().next());
                masked |= bounded;
                out.push_str(&rest[..at]);
                out.push_str(if bounded { UNSET_FIELD } else { SHARD_FIELD });
                rest = &rest[end..];
            }
            out.push_str(rest);
            *s = out;
            masked
        }
        // Every element, not only up to the first masked one.
        Value::Array(items) => items.iter_mut().fold(false, |any, f| mask_filter(f) | any),
        _ => false,
    }
}

/// Whether a filterable-attributes rule is Miroir's own (`_miroir_shard`, as a name or as a
/// pattern of its own).
pub fn is_shard_rule(rule: &Value) -> bool {
    match rule {
        Value::String(s) => s == SHARD_FIELD,
        Value::Object(o) => o["attributePatterns"]
            .as_array()
            .is_some_and(|p| p.len() == 1 && p[0] == SHARD_FIELD),
        _ => false,
    }
}

/// The filterable attributes `list` with `_miroir_shard` among them.
pub fn with_shard_filterable(list: &Value) -> Value {
    let mut rules = list.as_array().cloned().unwrap_or_default();
    if !rules.iter().any(is_shard_rule) {
        rules.push(json!(SHARD_FIELD));
    }
    Value::Array(rules)
}

/// A settings update's body with `_miroir_shard` kept among the filterable attributes; `None`
/// when the update does not name them, or names them with a value that is neither a list nor
/// `null`, or is not JSON: the nodes then refuse it with Meilisearch's own error.
pub fn keep_shard_filterable(route: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut value = serde_json::from_slice::<Value>(body).ok()?;
    match route {
        "settings.update" => {
            let list = value
                .get_mut("filterableAttributes")
                .filter(|l| l.is_array() || l.is_null())?;
            *list = with_shard_filterable(list);
        }
        "settings.filterable_attributes.update" if value.is_array() || value.is_null() => {
            value = with_shard_filterable(&value)
        }
        _ => return None,
    }
    serde_json::to_vec(&value).ok()
}

/// Whether a settings update names the filterable attributes (then rewritten to hold the field).
pub fn sets_filterable(route: &str, body: &[u8]) -> bool {
    match route {
        "settings.filterable_attributes.update" => true,
        "settings.update" => serde_json::from_slice::<Value>(body).is_ok_and(|v| {
            v.get("filterableAttributes")
                .is_some_and(|l| l.is_array() || l.is_null())
        }),
        _ => false,
    }
}

/// Removes `_miroir_shard` from a settings answer (the whole settings or the filterable list),
/// cuts the displayed list back to the client's and shows the client's `maxValuesPerFacet`.
pub fn strip_settings(route: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    facet_limit::show_in_settings(route, &mut value);
    if route == "settings.faceting.get" {
        return serde_json::to_vec(&value).ok();
    }
    // The client's `displayedAttributes` is the nodes' list up to Miroir's marker.
    let displayed = match route {
        "settings.get" => value.get_mut("displayedAttributes"),
        "settings.displayed_attributes.get" => Some(&mut value),
        _ => None,
    };
    if let Some(list) = displayed.and_then(Value::as_array_mut) {
        if let Some(at) = list.iter().position(|a| a == MARKER) {
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
/// `_miroir_shard` among the filterable attributes, the displayed attributes past the
/// marker, and the widening of `maxValuesPerFacet`.
pub fn strip_task_details(view: &mut Value) {
    let Some(details) = view.get_mut("details").and_then(Value::as_object_mut) else {
        return;
    };
    facet_limit::show_in_details(details);
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
        if let Some(at) = list.iter().position(|a| a == MARKER) {
            list.truncate(at);
        }
    }
}

/// Node error messages that list the filterable attributes name `_miroir_shard`, which Miroir
/// keeps filterable on every node; one node would not list it. Rewrites a body holding such
/// messages (an error, or task views with node errors) as one node would have worded them:
/// the field left out of every list, and "does not have configured filterable attributes"
/// when it was the only one; a client's own mention of the field, masked on the way (see
/// [`mask_shard_field`]), named again. `None` when there is nothing to change.
pub fn hide_shard_field_in_messages(body: &[u8]) -> Option<Vec<u8>> {
    const FIELD: &str = SHARD_FIELD;
    let text = std::str::from_utf8(body).ok()?;
    let lists = text.contains(FIELD)
        && (text.contains("filterable attribute") || text.contains("facet-searchable attribute"));
    if !lists && !text.contains(UNSET_FIELD) {
        return None;
    }
    let none = "This index does not have configured filterable attributes.";
    let mut out = text
        // Alone, in the two list styles (`a`, `b` and `a, b`).
        .replace(
            &format!("Available filterable attribute patterns are: `{FIELD}`."),
            none,
        )
        .replace(
            &format!("Available filterable attributes patterns are: `{FIELD}`."),
            none,
        )
        .replace(
            &format!("available filterable attribute patterns are `{FIELD}`."),
            "this index does not have configured filterable attributes.",
        );
    for (from, to) in [
        (format!("`{FIELD}`, "), String::new()),
        (format!(", `{FIELD}`"), String::new()),
        (format!("`{FIELD}, "), "`".to_owned()),
        (format!(", {FIELD}`"), "`".to_owned()),
        (format!(", {FIELD}, "), ", ".to_owned()),
    ] {
        out = out.replace(&from, &to);
    }
    // The client's own mention of the field, masked on the way to the node.
    let out = out.replace(UNSET_FIELD, FIELD);
    (out != text).then(|| out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_values_are_distinct_separator_strings() {
        assert_eq!(shard_value(ShardId(0)), "-");
        assert_eq!(shard_value(ShardId(1)), ".");
        assert_eq!(shard_value(ShardId(2)), ".-");
        assert_eq!(shard_value(ShardId(5)), ".-.");
        let values: std::collections::BTreeSet<String> =
            (0..4096).map(|s| shard_value(ShardId(s))).collect();
        assert_eq!(values.len(), 4096);
        assert!(values
            .iter()
            .all(|v| v.chars().all(|c| c == '-' || c == '.')));
        assert_eq!(
            shard_clause(&[ShardId(1), ShardId(4)]),
            r#"_miroir_shard IN [".", ".--"]"#
        );
    }

    #[test]
    fn versions_read_back_exactly_and_hold_no_word() {
        for v in [0, 1, 2, 5, 15, 16, 1 << 40, 1_764_780_000_000_000, u64::MAX] {
            let value = version_value(v);
            assert!(
                value.bytes().all(|c| VERSION_DIGITS.contains(&c)),
                "{value}"
            );
            assert!(!value.contains(['-', '.']), "{value}");
            assert_eq!(parse_version(&json!(value)), Some(v));
        }
        assert_eq!(version_value(0), " ");
        assert_eq!(version_value(0x5f), "*}");
        assert_eq!(version_value(1_764_780_000_000_000).len(), 13);
        assert_eq!(parse_version(&json!(5)), None);
        assert_eq!(parse_version(&json!("x")), None);
        assert_eq!(parse_version(&json!("")), None);
        assert_eq!(
            parse_version(&json!("  -")),
            None,
            "the two forms never mix"
        );
        assert_eq!(parse_version(&json!(" ".repeat(17))), None);
    }

    #[test]
    fn versions_stamped_in_the_binary_form_still_read() {
        assert_eq!(parse_version(&json!(".-.")), Some(5));
        assert_eq!(parse_version(&json!("-")), Some(0));
        let old: String = (0..64)
            .rev()
            .map(|b| {
                if 1_764_780_000_000_000u64 >> b & 1 == 1 {
                    '.'
                } else {
                    '-'
                }
            })
            .collect();
        assert_eq!(parse_version(&json!(old)), Some(1_764_780_000_000_000));
        assert_eq!(parse_version(&json!(".".repeat(65))), None);
    }

    #[test]
    fn a_scoped_filter_ands_the_clause_unless_the_node_answers_whole() {
        let one = [ShardId(3)];
        let scope = NodeScope::shards(&one);
        let clause = json!(r#"_miroir_shard IN [".."]"#);
        assert_eq!(scoped_filter(None, scope), Some(clause.clone()));
        assert_eq!(
            scoped_filter(Some(&json!("a = 1")), scope),
            Some(json!(["a = 1", clause]))
        );
        assert_eq!(scoped_filter(Some(&json!(3)), scope), Some(json!(3)));
        let whole = NodeScope {
            shards: &one,
            whole_node: true,
        };
        assert_eq!(scoped_filter(Some(&json!("a = 1")), whole), None);
    }

    fn hidden(message: &str) -> String {
        let body = serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap();
        let out = hide_shard_field_in_messages(&body).unwrap_or(body);
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn the_shard_field_leaves_node_messages_as_one_node_words_them() {
        assert_eq!(
            hidden("Attribute `x` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `genre`."),
            "Attribute `x` is not filterable. Available filterable attribute patterns are: `genre`."
        );
        assert_eq!(
            hidden("Attribute `x` is not filterable. Available filterable attribute patterns are: `_miroir_shard`."),
            "Attribute `x` is not filterable. This index does not have configured filterable attributes."
        );
        assert_eq!(
            hidden("Attribute `x` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `_miroir_shard`."),
            "Attribute `x` is not filterable and thus, cannot be used as distinct attribute. This index does not have configured filterable attributes."
        );
        assert_eq!(
            hidden("Pattern `x` is not filterable. Available filterable attributes patterns are: `a, _miroir_shard, b`."),
            "Pattern `x` is not filterable. Available filterable attributes patterns are: `a, b`."
        );
        assert_eq!(
            hidden("Available filterable attributes patterns are: `_miroir_shard, genre`."),
            "Available filterable attributes patterns are: `genre`."
        );
        assert_eq!(
            hidden("Available filterable attributes patterns are: `genre, _miroir_shard`."),
            "Available filterable attributes patterns are: `genre`."
        );
        assert!(hide_shard_field_in_messages(br#"{"message":"Index `x` not found."}"#).is_none());
        assert_eq!(
            hidden("Attribute `nope` is not facet-searchable. Available facet-searchable attributes patterns are: `_geo, _miroir_shard, city`. To make it facet-searchable add it to the `filterableAttributes` index settings."),
            "Attribute `nope` is not facet-searchable. Available facet-searchable attributes patterns are: `_geo, city`. To make it facet-searchable add it to the `filterableAttributes` index settings."
        );
        // A client's own mention of the field, masked for the node, is named again; the
        // node's list of the field Miroir keeps filterable is not.
        assert_eq!(
            hidden("Attribute `_miroir_unset` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `colors`.\n1:14 _miroir_unset = 1"),
            "Attribute `_miroir_shard` is not filterable. Available filterable attribute patterns are: `colors`.\n1:14 _miroir_shard = 1"
        );
    }

    #[test]
    fn a_write_filter_naming_the_shard_field_is_masked() {
        let out = mask_write_filter(
            "documents.delete_by_filter",
            br#"{"filter":"_miroir_shard EXISTS"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"filter": "_miroir_unset EXISTS"})
        );
        let edit = br#"{"function":"doc.a = 1","filter":["_miroir_shard = 2"]}"#;
        assert!(mask_write_filter("documents.edit", edit).is_some());
        assert!(
            mask_write_filter("documents.delete_by_filter", br#"{"filter":"a = 1"}"#).is_none()
        );
        assert!(
            mask_write_filter("settings.update", br#"{"filter":"_miroir_shard = 1"}"#).is_none()
        );
    }

    #[test]
    fn a_client_naming_the_shard_field_names_an_attribute_no_document_has() {
        let mut body = json!({
            "filter": ["_miroir_shard = 1", ["x = 2", "_miroir_shard.a EXISTS"], "my_miroir_shard = 3", "_miroir_shards = 4"],
            "facets": ["genre", "_miroir_shard"],
            "facetName": "_miroir_shard",
            "distinct": "_miroir_shard",
            "q": "_miroir_shard",
        });
        mask_shard_field(body.as_object_mut().unwrap());
        assert_eq!(
            body,
            json!({
                "filter": ["_miroir_unset = 1", ["x = 2", "_miroir_unset.a EXISTS"], "my_miroir_shard = 3", "_miroir_shards = 4"],
                "facets": ["genre", "_miroir_unset"],
                "facetName": "_miroir_unset",
                "distinct": "_miroir_unset",
                "q": "_miroir_shard",
            })
        );
        assert_eq!(UNSET_FIELD.len(), SHARD_FIELD.len());
        let mut plain = json!({"filter": "genre = drama", "facets": ["genre"]});
        let before = plain.clone();
        mask_shard_field(plain.as_object_mut().unwrap());
        assert_eq!(plain, before);
    }

    #[test]
    fn updates_keep_the_field_and_reads_hide_it() {
        let rewrite = |route: &str, body: &str| -> Value {
            serde_json::from_slice(&keep_shard_filterable(route, body.as_bytes()).unwrap()).unwrap()
        };
        let out = rewrite(
            "settings.update",
            r#"{"filterableAttributes":["genre"],"sortableAttributes":["year"]}"#,
        );
        assert_eq!(
            out["filterableAttributes"],
            json!(["genre", "_miroir_shard"])
        );
        assert_eq!(out["sortableAttributes"], json!(["year"]));
        let out = rewrite("settings.update", r#"{"filterableAttributes":null}"#);
        assert_eq!(out["filterableAttributes"], json!(["_miroir_shard"]));
        let out = rewrite(
            "settings.filterable_attributes.update",
            r#"["a","_miroir_shard"]"#,
        );
        assert_eq!(out, json!(["a", "_miroir_shard"]));
        assert!(
            keep_shard_filterable("settings.update", br#"{"rankingRules":["words"]}"#).is_none()
        );
        // Not a list: left as the client wrote it, for the nodes to refuse (a list of the
        // field alone would replace the client's attributes).
        for bad in [r#""x""#, "5", r#"{"a":1}"#] {
            let body = format!(r#"{{"filterableAttributes":{bad}}}"#);
            assert!(keep_shard_filterable("settings.update", body.as_bytes()).is_none());
        }

        let read = strip_settings(
            "settings.get",
            br#"{"filterableAttributes":["genre","_miroir_shard"],"x":1}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&read).unwrap(),
            json!({"filterableAttributes": ["genre"], "x": 1})
        );
        let read = strip_settings(
            "settings.filterable_attributes.get",
            br#"["_miroir_shard"]"#,
        )
        .unwrap();
        assert_eq!(read, b"[]");
    }
}
