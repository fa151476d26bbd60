//! Field selection for hits and documents: `displayedAttributes` first, then the requested
//! `attributesToRetrieve`/`fields` list. Names may be nested (`a.b` selects inside objects and
//! arrays of objects); `*` means everything displayed.

use serde_json::{Map, Value};

use crate::model::{Document, Settings};

/// Applies displayedAttributes, then the requested list (`None` = all).
pub fn project(doc: &Document, settings: &Settings, fields: Option<&[String]>) -> Document {
    let displayed = match &settings.displayed_attributes {
        Some(list) if !list.iter().any(|a| a == "*") => select(doc, list),
        _ => doc.clone(),
    };
    match fields {
        Some(list) if !list.iter().any(|a| a == "*") => select(&displayed, list),
        _ => displayed,
    }
}

/// Keeps the parts of `obj` named by `selectors`, in document order.
pub fn select(obj: &Map<String, Value>, selectors: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in obj {
        if selectors.iter().any(|s| s == key) {
            out.insert(key.clone(), value.clone());
            continue;
        }
        let prefix = format!("{key}.");
        let nested: Vec<String> = selectors
            .iter()
            .filter_map(|s| s.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect();
        if nested.is_empty() {
            continue;
        }
        if let Some(v) = select_value(value, &nested) {
            out.insert(key.clone(), v);
        }
    }
    out
}

fn select_value(value: &Value, selectors: &[String]) -> Option<Value> {
    match value {
        Value::Object(obj) => {
            let selected = select(obj, selectors);
            (!selected.is_empty()).then_some(Value::Object(selected))
        }
        Value::Array(items) => {
            let selected: Vec<Value> = items
                .iter()
                .filter_map(|v| select_value(v, selectors))
                .collect();
            (!selected.is_empty()).then_some(Value::Array(selected))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn displayed_attributes_apply_before_the_requested_fields() {
        let settings = Settings {
            displayed_attributes: Some(vec!["id".into(), "title".into()]),
            ..Settings::default()
        };
        let d = doc(json!({"id": 1, "title": "t", "secret": "s"}));
        assert_eq!(
            Value::Object(project(&d, &settings, None)),
            json!({"id": 1, "title": "t"})
        );
        let f = vec!["secret".to_string(), "title".to_string()];
        assert_eq!(
            Value::Object(project(&d, &settings, Some(&f))),
            json!({"title": "t"})
        );
    }

    #[test]
    fn nested_names_select_inside_objects_and_arrays() {
        let d = doc(json!({"a": {"b": 1, "c": 2}, "l": [{"x": 1, "y": 2}, 3], "z": 0}));
        let f = vec!["a.b".to_string(), "l.x".to_string()];
        assert_eq!(
            Value::Object(project(&d, &Settings::default(), Some(&f))),
            json!({"a": {"b": 1}, "l": [{"x": 1}]})
        );
        let all = vec!["*".to_string()];
        assert_eq!(project(&d, &Settings::default(), Some(&all)), d);
    }
}
