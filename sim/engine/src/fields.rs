//! Reading document fields the way Meilisearch flattens them: `a.b` reaches into objects and
//! through arrays of objects, and every leaf value of an array counts on its own.

use serde_json::Value;

use crate::model::Document;

/// Every value found at the dotted path `path`, arrays flattened (an array field yields its
/// elements, not itself). Objects and arrays of objects are walked through.
pub fn values_at<'a>(doc: &'a Document, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect_object(doc, path, &mut out);
    out
}

fn collect_object<'a>(obj: &'a Document, path: &str, out: &mut Vec<&'a Value>) {
    // A key may itself contain dots (`{"a.b": 1}`), so try every split point.
    if let Some(v) = obj.get(path) {
        push_flat(v, out);
    }
    for (i, _) in path.match_indices('.') {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        if let Some(v) = obj.get(head) {
            collect_value(v, rest, out);
        }
    }
}

fn collect_value<'a>(value: &'a Value, rest: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(obj) => collect_object(obj, rest, out),
        Value::Array(items) => {
            for item in items {
                collect_value(item, rest, out);
            }
        }
        _ => {}
    }
}

fn push_flat<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => {
            for item in items {
                push_flat(item, out);
            }
        }
        other => out.push(other),
    }
}

/// Whether `f` holds for some flattened value at `path` (the allocation-free `values_at`).
pub fn any_value(doc: &Document, path: &str, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    any_in_object(doc, path, f)
}

fn any_in_object(obj: &Document, path: &str, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    if obj.get(path).is_some_and(|v| any_flat(v, f)) {
        return true;
    }
    path.match_indices('.').any(|(i, _)| {
        obj.get(&path[..i])
            .is_some_and(|v| any_in_value(v, &path[i + 1..], f))
    })
}

fn any_in_value(value: &Value, rest: &str, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    match value {
        Value::Object(obj) => any_in_object(obj, rest, f),
        Value::Array(items) => items.iter().any(|v| any_in_value(v, rest, f)),
        _ => false,
    }
}

fn any_flat(value: &Value, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| any_flat(v, f)),
        other => f(other),
    }
}

/// Whether the field exists at all (any value, `null` included), as `EXISTS` sees it.
pub fn exists(doc: &Document, path: &str) -> bool {
    let mut found = false;
    exists_object(doc, path, &mut found);
    found
}

fn exists_object(obj: &Document, path: &str, found: &mut bool) {
    if obj.contains_key(path) {
        *found = true;
        return;
    }
    for (i, _) in path.match_indices('.') {
        if let Some(v) = obj.get(&path[..i]) {
            exists_value(v, &path[i + 1..], found);
        }
    }
}

fn exists_value(value: &Value, rest: &str, found: &mut bool) {
    match value {
        Value::Object(obj) => exists_object(obj, rest, found),
        Value::Array(items) => items.iter().for_each(|v| exists_value(v, rest, found)),
        _ => {}
    }
}

/// The raw (unflattened) values at `path`, used by `IS EMPTY` which must see `[]` and `{}`.
pub fn raw_values_at<'a>(doc: &'a Document, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    raw_object(doc, path, &mut out);
    out
}

fn raw_object<'a>(obj: &'a Document, path: &str, out: &mut Vec<&'a Value>) {
    if let Some(v) = obj.get(path) {
        out.push(v);
    }
    for (i, _) in path.match_indices('.') {
        if let Some(v) = obj.get(&path[..i]) {
            raw_value(v, &path[i + 1..], out);
        }
    }
}

fn raw_value<'a>(value: &'a Value, rest: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(obj) => raw_object(obj, rest, out),
        Value::Array(items) => items.iter().for_each(|v| raw_value(v, rest, out)),
        _ => {}
    }
}

/// Every leaf of the document as `(dotted path, value)`, in document order. Arrays of scalars
/// yield one entry per element under the same path.
pub fn leaves(doc: &Document) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (key, value) in doc {
        leaves_of(key.clone(), value, &mut out);
    }
    out
}

fn leaves_of<'a>(path: String, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(obj) => {
            for (key, v) in obj {
                leaves_of(format!("{path}.{key}"), v, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                leaves_of(path.clone(), item, out);
            }
        }
        other => out.push((path, other)),
    }
}

/// Every dotted path present in the document, parents included (`a`, `a.b`), as Meilisearch's
/// fields-ids map records them. New paths are appended to `out`.
pub fn paths(doc: &Document, out: &mut Vec<String>) {
    let mut buffer = String::new();
    for (key, value) in doc {
        buffer.clear();
        buffer.push_str(key);
        paths_of(&mut buffer, value, out);
    }
}

/// `path` is a reusable buffer, so known paths cost no allocation.
fn paths_of(path: &mut String, value: &Value, out: &mut Vec<String>) {
    if !out.iter().any(|p| p == path) {
        out.push(path.clone());
    }
    let mut visit = |obj: &Document, path: &mut String| {
        for (key, v) in obj {
            let len = path.len();
            path.push('.');
            path.push_str(key);
            paths_of(path, v, out);
            path.truncate(len);
        }
    };
    match value {
        Value::Object(obj) => visit(obj, path),
        Value::Array(items) => {
            for item in items {
                if let Value::Object(obj) = item {
                    visit(obj, path);
                }
            }
        }
        _ => {}
    }
}

/// Meilisearch's facet normalization: trimmed and lowercased.
pub fn normalize_facet(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A facet value as Meilisearch indexes it: numbers as numbers, strings and booleans as
/// strings, everything else (null, objects) not a facet value.
#[derive(Debug, Clone, PartialEq)]
pub enum FacetValue {
    Number(f64),
    /// `(normalized, original)`.
    String(String, String),
}

pub fn facet_value(value: &Value) -> Option<FacetValue> {
    match value {
        Value::Number(n) => n.as_f64().map(FacetValue::Number),
        Value::String(s) => Some(FacetValue::String(normalize_facet(s), s.clone())),
        Value::Bool(b) => Some(FacetValue::String(b.to_string(), b.to_string())),
        _ => None,
    }
}

/// Facet values of a field in one document, arrays flattened.
pub fn facet_values(doc: &Document, path: &str) -> Vec<FacetValue> {
    values_at(doc, path)
        .into_iter()
        .filter_map(facet_value)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn nested_paths_reach_through_arrays_of_objects() {
        let d = doc(json!({"dogs": [{"age": 1}, {"age": [2, 3]}], "a.b": 4, "a": {"b": 5}}));
        let ages: Vec<_> = values_at(&d, "dogs.age").into_iter().cloned().collect();
        assert_eq!(ages, vec![json!(1), json!(2), json!(3)]);
        let ab: Vec<_> = values_at(&d, "a.b").into_iter().cloned().collect();
        assert_eq!(ab, vec![json!(4), json!(5)]);
        assert!(exists(&d, "dogs.age"));
        assert!(!exists(&d, "dogs.name"));
    }

    #[test]
    fn leaves_flatten_objects_and_arrays_in_document_order() {
        let d = doc(json!({"t": "x", "o": {"k": ["a", "b"]}}));
        let l: Vec<_> = leaves(&d)
            .into_iter()
            .map(|(p, v)| (p, v.clone()))
            .collect();
        assert_eq!(
            l,
            vec![
                ("t".into(), json!("x")),
                ("o.k".into(), json!("a")),
                ("o.k".into(), json!("b"))
            ]
        );
    }
}
