//! `POST /indexes/{uid}/fields` over shards: every node lists the fields of its own documents,
//! so the index's fields are the union of the lists. Miroir asks each node for all of its
//! fields (no pagination) and applies what depends on the whole index itself: the client's
//! `displayedAttributes` (the nodes display more, for the merge), the `displayed` criterion of
//! the filter, alphabetical order, `offset`/`limit` and `total`. `_miroir_shard` is never
//! listed.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::display;
use crate::hidden::RESERVED_PREFIX;

/// Meilisearch's default page size for this route.
const DEFAULT_LIMIT: usize = 20;
/// "Every field" for a node's page.
const ALL: u64 = 1 << 31;

/// The client's request, read, and what to ask the nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldsRequest {
    pub offset: usize,
    pub limit: usize,
    /// The filter's `displayed` criterion, judged by Miroir.
    pub displayed: Option<bool>,
    /// The body for the nodes: the client's, with every field asked for and without the
    /// `displayed` criterion.
    pub node_body: Vec<u8>,
}

/// `None` when the body is not one Miroir can read (not an object, `offset`/`limit` not
/// numbers, `filter.displayed` not a boolean): a node then judges it with Meilisearch's error.
pub fn read_request(body: &[u8]) -> Option<FieldsRequest> {
    let mut root: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        serde_json::from_slice(body).ok()?
    };
    let number = |v: Option<&Value>, default: usize| match v {
        None => Some(default),
        Some(v) => v.as_u64().map(|n| n as usize),
    };
    let offset = number(root.get("offset"), 0)?;
    let limit = number(root.get("limit"), DEFAULT_LIMIT)?;
    let displayed = match root.get_mut("filter") {
        Some(Value::Object(filter)) => match filter.remove("displayed") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => return None,
        },
        _ => None,
    };
    root.insert("offset".into(), json!(0));
    root.insert("limit".into(), json!(ALL));
    Some(FieldsRequest {
        offset,
        limit,
        displayed,
        node_body: serde_json::to_vec(&Value::Object(root)).ok()?,
    })
}

/// One field list out of the nodes' answers (`{"results": [...], ...}` each). `displayed` is
/// the client's `displayedAttributes` (`None` = every field).
pub fn merge(answers: &[Value], displayed: Option<&[String]>, req: &FieldsRequest) -> Value {
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    for answer in answers {
        for field in answer["results"].as_array().into_iter().flatten() {
            let Some(name) = field["name"].as_str() else {
                continue;
            };
            if name.starts_with(RESERVED_PREFIX) || fields.contains_key(name) {
                continue;
            }
            let mut field = field.clone();
            let shown = displayed.is_none_or(|list| display::shows(list, name));
            field["displayed"]["enabled"] = json!(shown);
            fields.insert(name.to_owned(), field);
        }
    }
    let matching: Vec<Value> = fields
        .into_values()
        .filter(|f| req.displayed.is_none_or(|d| f["displayed"]["enabled"] == d))
        .collect();
    let total = matching.len();
    let results: Vec<Value> = matching
        .into_iter()
        .skip(req.offset)
        .take(req.limit)
        .collect();
    json!({
        "results": results,
        "offset": req.offset,
        "limit": req.limit,
        "total": total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, displayed: bool) -> Value {
        json!({"name": name, "displayed": {"enabled": displayed}, "searchable": {"enabled": true}})
    }

    #[test]
    fn nodes_are_asked_for_everything_and_the_displayed_criterion_stays_with_miroir() {
        let req = read_request(
            br#"{"offset":1,"limit":2,"filter":{"displayed":true,"searchable":true}}"#,
        )
        .unwrap();
        assert_eq!((req.offset, req.limit, req.displayed), (1, 2, Some(true)));
        let sent: Value = serde_json::from_slice(&req.node_body).unwrap();
        assert_eq!(sent["filter"], json!({"searchable": true}));
        assert_eq!(sent["offset"], 0);
        let empty = read_request(b"").unwrap();
        assert_eq!((empty.offset, empty.limit, empty.displayed), (0, 20, None));
        assert!(read_request(br#"{"limit":"x"}"#).is_none());
        assert!(read_request(br#"{"filter":{"displayed":"yes"}}"#).is_none());
        assert!(read_request(b"[1]").is_none());
    }

    #[test]
    fn the_union_is_sorted_paginated_and_hides_the_shard_field() {
        let a = json!({"results": [field("_miroir_shard", true), field("b", true), field("title", true)]});
        let b = json!({"results": [field("a", true), field("title", true), field("year", true)]});
        let displayed = vec!["title".to_owned(), "a".to_owned()];
        let all = read_request(b"{}").unwrap();
        let out = merge(&[a.clone(), b.clone()], Some(&displayed), &all);
        let names: Vec<&str> = out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "title", "year"]);
        assert_eq!(out["total"], 4);
        assert_eq!(
            out["results"][1]["displayed"]["enabled"], false,
            "b is not displayed"
        );
        let shown = read_request(br#"{"limit":1,"offset":1,"filter":{"displayed":true}}"#).unwrap();
        let out = merge(&[a, b], Some(&displayed), &shown);
        assert_eq!(out["total"], 2);
        assert_eq!(out["results"][0]["name"], "title");
        assert_eq!(
            (out["offset"].clone(), out["limit"].clone()),
            (json!(1), json!(1))
        );
    }
}
