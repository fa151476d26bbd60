//! Sort criteria (`price:asc`, `_geoPoint(lat, lng):asc`) and Meilisearch's value order:
//! numbers before strings, missing values last whatever the direction; an array sorts by its
//! smallest value ascending and its largest descending.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::error::MeiliError;
use crate::fields::{self, FacetValue};
use crate::model::{Document, IndexData};

#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    Field { name: String, asc: bool },
    Geo { lat: f64, lng: f64, asc: bool },
}

impl Criterion {
    pub fn field_name(&self) -> &str {
        match self {
            Criterion::Field { name, .. } => name,
            Criterion::Geo { .. } => "_geo",
        }
    }
}

const CODE: &str = "invalid_search_sort";

/// Parses and validates the `sort` parameter against the index settings.
pub fn parse(list: &[String], index: &IndexData) -> Result<Vec<Criterion>, MeiliError> {
    let mut out = Vec::new();
    for text in list {
        out.push(parse_one(text)?);
    }
    if !out.is_empty() && !index.settings.ranking_rules.iter().any(|r| r == "sort") {
        return Err(MeiliError::invalid(
            CODE,
            format!("Index `{}`: You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.", index.uid),
        ));
    }
    for c in &out {
        let name = c.field_name();
        if !index.settings.is_sortable(name) {
            let sortable = &index.settings.sortable_attributes;
            let tail = if sortable.is_empty() {
                "This index does not have configured sortable attributes.".to_owned()
            } else {
                let list: Vec<&str> = sortable.iter().map(String::as_str).collect();
                format!("Available sortable attributes are: `{}`.", list.join(", "))
            };
            let what = if name == "_geo" {
                "_geo".to_owned()
            } else {
                name.to_owned()
            };
            return Err(MeiliError::invalid(
                CODE,
                format!(
                    "Index `{}`: Attribute `{what}` is not sortable. {tail}",
                    index.uid
                ),
            ));
        }
    }
    Ok(out)
}

fn parse_one(text: &str) -> Result<Criterion, MeiliError> {
    let (left, asc) = match text.rsplit_once(':') {
        Some((left, "asc")) => (left, true),
        Some((left, "desc")) => (left, false),
        _ => {
            return Err(MeiliError::invalid(
                CODE,
                format!("Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{text}`."),
            ))
        }
    };
    if let Some(inner) = left
        .strip_prefix("_geoPoint(")
        .and_then(|t| t.strip_suffix(')'))
    {
        let coords: Vec<Option<f64>> = inner.split(',').map(|p| p.trim().parse().ok()).collect();
        return match coords.as_slice() {
            [Some(lat), Some(lng)] => Ok(Criterion::Geo { lat: *lat, lng: *lng, asc }),
            _ => Err(MeiliError::invalid(
                CODE,
                format!("Invalid syntax for the geo parameter: expected expression formated like `_geoPoint(latitude, longitude)` and ending by `:asc` or `:desc`, found `{left}`."),
            )),
        };
    }
    if left == "_geo"
        || left.starts_with("_geoRadius(")
        || left.starts_with("_geoBoundingBox(")
        || left.starts_with("_geo(")
    {
        return Err(MeiliError::invalid(
            CODE,
            format!("`{left}` is a reserved keyword and thus can't be used as a sort expression. Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."),
        ));
    }
    if left == "_geoDistance" || left.starts_with("_geoDistance(") {
        return Err(MeiliError::invalid(
            CODE,
            format!("`{left}` is a reserved keyword and thus can't be used as a sort expression."),
        ));
    }
    Ok(Criterion::Field {
        name: left.to_owned(),
        asc,
    })
}

/// The value a document sorts by, as Meilisearch reports it in `_rankingScoreDetails`:
/// a number (as f64), a normalized string, or null when missing.
pub fn sort_value(doc: &Document, field: &str, asc: bool) -> Value {
    let mut best_number: Option<f64> = None;
    let mut best_string: Option<String> = None;
    let better = |a: f64, b: f64| if asc { a < b } else { a > b };
    fields::any_value(doc, field, &mut |v| {
        match fields::facet_value(v) {
            Some(FacetValue::Number(n)) if best_number.is_none_or(|b| better(n, b)) => {
                best_number = Some(n);
            }
            Some(FacetValue::String(norm, _))
                if best_string
                    .as_ref()
                    .is_none_or(|b| if asc { norm < *b } else { norm > *b }) =>
            {
                best_string = Some(norm);
            }
            _ => {}
        }
        false
    });
    if let Some(n) = best_number.and_then(Number::from_f64) {
        return Value::Number(n);
    }
    best_string.map_or(Value::Null, Value::String)
}

/// Meilisearch's `compare_sort_values`: `Greater` means `left` ranks first.
pub fn compare_sort_values(asc: bool, left: &Value, right: &Value) -> Ordering {
    match (left, right) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(_), Value::String(_)) => Ordering::Greater,
        (Value::String(_), Value::Number(_)) => Ordering::Less,
        (Value::Number(a), Value::Number(b)) => {
            let o = a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b))
                .unwrap_or(Ordering::Equal);
            if asc {
                o.reverse()
            } else {
                o
            }
        }
        (Value::String(a), Value::String(b)) => {
            if asc {
                a.cmp(b).reverse()
            } else {
                a.cmp(b)
            }
        }
        _ => Ordering::Equal,
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
    fn numbers_rank_before_strings_and_missing_last_in_both_directions() {
        let n = sort_value(&doc(json!({"p": 3})), "p", true);
        let s = sort_value(&doc(json!({"p": "Abc"})), "p", true);
        let missing = sort_value(&doc(json!({})), "p", true);
        assert_eq!(s, json!("abc"));
        for asc in [true, false] {
            assert_eq!(compare_sort_values(asc, &n, &s), Ordering::Greater);
            assert_eq!(compare_sort_values(asc, &s, &missing), Ordering::Greater);
        }
        assert_eq!(
            compare_sort_values(true, &json!(1.0), &json!(2.0)),
            Ordering::Greater
        );
        assert_eq!(
            compare_sort_values(false, &json!(1.0), &json!(2.0)),
            Ordering::Less
        );
    }

    #[test]
    fn arrays_sort_by_min_ascending_and_max_descending() {
        let d = doc(json!({"p": [5, 1, 9]}));
        assert_eq!(sort_value(&d, "p", true), json!(1.0));
        assert_eq!(sort_value(&d, "p", false), json!(9.0));
    }

    #[test]
    fn sort_errors_match_meilisearch() {
        let mut idx = IndexData::new("movies", None, "now");
        idx.settings.sortable_attributes.insert("id".into());
        let e = parse(&["title".into()], &idx).unwrap_err();
        assert_eq!(e.message, "Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `title`.");
        let e = parse(&["title:asc".into()], &idx).unwrap_err();
        assert_eq!(e.message, "Index `movies`: Attribute `title` is not sortable. Available sortable attributes are: `id`.");
        assert_eq!(e.code, "invalid_search_sort");
        assert!(parse(&["id:desc".into()], &idx).is_ok());
        idx.settings.ranking_rules.retain(|r| r != "sort");
        let e = parse(&["id:desc".into()], &idx).unwrap_err();
        assert!(e
            .message
            .contains("You must specify where `sort` is listed"));
    }
}
