//! `sort` on the documents routes (browse and fetch): `field:asc|desc` over sortable
//! attributes, with Meilisearch's value order (numbers before strings, missing values last)
//! taken from the engine. Ties keep internal-id order.

use meili_sim_engine::sort::{compare_sort_values, sort_value};
use meili_sim_engine::{Document, MeiliError, Settings};

const CODE: &str = "invalid_document_sort";

#[derive(Debug, Clone, PartialEq)]
pub struct SortBy {
    field: String,
    asc: bool,
}

pub fn parse(list: &[String], settings: &Settings) -> Result<Vec<SortBy>, MeiliError> {
    list.iter()
        .map(|text| {
            let (field, asc) = match text.rsplit_once(':') {
                Some((field, "asc")) => (field, true),
                Some((field, "desc")) => (field, false),
                _ => {
                    return Err(MeiliError::invalid(
                        CODE,
                        format!("Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{text}`."),
                    ))
                }
            };
            if field.starts_with("_geoPoint(") {
                return Err(crate::error::not_implemented("geo sort on the documents routes"));
            }
            if !settings.is_sortable(field) {
                let detail = if settings.sortable_attributes.is_empty() {
                    "This index does not have configured sortable attributes.".to_owned()
                } else {
                    let list: Vec<&str> = settings.sortable_attributes.iter().map(String::as_str).collect();
                    format!("Available sortable attributes are: `{}`.", list.join(", "))
                };
                return Err(MeiliError::invalid(CODE, format!("Attribute `{field}` is not sortable. {detail}")));
            }
            Ok(SortBy { field: field.to_owned(), asc })
        })
        .collect()
}

/// Sorts in place; a stable sort keeps internal-id order among equal values.
pub fn apply(docs: &mut [&Document], criteria: &[SortBy]) {
    if criteria.is_empty() {
        return;
    }
    docs.sort_by(|a, b| {
        for c in criteria {
            let ord = compare_sort_values(
                c.asc,
                &sort_value(a, &c.field, c.asc),
                &sort_value(b, &c.field, c.asc),
            );
            // The engine's `Greater` means "ranks first".
            if ord.is_ne() {
                return ord.reverse();
            }
        }
        std::cmp::Ordering::Equal
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(sortable: &[&str]) -> Settings {
        Settings {
            sortable_attributes: sortable.iter().map(|s| (*s).to_owned()).collect(),
            ..Settings::default()
        }
    }

    #[test]
    fn sorts_by_sortable_fields_with_missing_values_last() {
        let docs: Vec<Document> = [
            json!({"id": 1, "p": 5}),
            json!({"id": 2}),
            json!({"id": 3, "p": 1}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap())
        .collect();
        let mut refs: Vec<&Document> = docs.iter().collect();
        let criteria = parse(&["p:asc".to_owned()], &settings(&["p"])).unwrap();
        apply(&mut refs, &criteria);
        let ids: Vec<_> = refs.iter().map(|d| d["id"].clone()).collect();
        assert_eq!(ids, [json!(3), json!(1), json!(2)]);
        let criteria = parse(&["p:desc".to_owned()], &settings(&["p"])).unwrap();
        apply(&mut refs, &criteria);
        assert_eq!(refs[0]["id"], 1);
    }

    #[test]
    fn unsortable_or_malformed_criteria_are_rejected() {
        let err = parse(&["p:asc".to_owned()], &settings(&[])).unwrap_err();
        assert_eq!(err.code, "invalid_document_sort");
        assert!(err
            .message
            .contains("does not have configured sortable attributes"));
        assert_eq!(
            parse(&["p".to_owned()], &settings(&["p"]))
                .unwrap_err()
                .code,
            "invalid_document_sort"
        );
    }
}
