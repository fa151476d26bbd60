//! Meilisearch's filter language: a hand-written recursive-descent parser (`parser`) producing
//! an AST that is evaluated against one document at a time (`eval`). Error messages follow
//! `filter-parser`: a first line with the diagnostic, then `start:end filter` (1-based character
//! columns).

mod eval;
mod parser;

use serde_json::Value;

use crate::error::MeiliError;
use crate::fields;
use crate::model::{Document, Settings};

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Condition {
        field: Field,
        op: Op,
    },
    GeoRadius {
        lat: f64,
        lng: f64,
        radius: f64,
    },
    GeoBox {
        top_right: (f64, f64),
        bottom_left: (f64, f64),
    },
}

/// An attribute name with the `start:end filter` locator used in error messages.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    locator: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Equal(Operand),
    NotEqual(Operand),
    Greater(Operand),
    GreaterEq(Operand),
    Lower(Operand),
    LowerEq(Operand),
    Between(Operand, Operand),
    In(Vec<Operand>),
    StartsWith(Operand),
    Exists,
    Null,
    Empty,
}

/// A filter value, pre-normalized once: as a number when it parses as one, and as a
/// normalized facet string.
#[derive(Debug, Clone, PartialEq)]
struct Operand {
    number: Option<f64>,
    normalized: String,
}

impl From<String> for Operand {
    fn from(raw: String) -> Self {
        Self {
            number: eval::parse_number(&raw),
            normalized: fields::normalize_facet(&raw),
        }
    }
}

impl Filter {
    /// Parses the string form or the nested-array form (outer AND, inner OR). `null` and empty
    /// expressions give `Ok(None)`.
    pub fn parse(value: &Value, code: &str) -> Result<Option<Filter>, MeiliError> {
        let expr = match value {
            Value::Null => return Ok(None),
            Value::String(s) => parser::parse_str(s, code)?,
            Value::Array(items) => parse_array(items, code)?,
            other => {
                return Err(MeiliError::invalid(
                    code,
                    format!(
                        "Invalid syntax for the filter parameter: `expected String, Array, found: {other}`."
                    ),
                ))
            }
        };
        Ok(expr.map(|expr| Filter { expr }))
    }

    /// Fails when an attribute is not filterable, with Meilisearch's message (without the
    /// `Index \`uid\`: ` prefix, which the caller adds when it knows the index).
    pub fn check_filterable(&self, settings: &Settings, code: &str) -> Result<(), MeiliError> {
        check_expr(&self.expr, settings, code)
    }

    pub fn matches(&self, doc: &Document) -> bool {
        eval::eval(&self.expr, doc)
    }

    /// AND of two filters.
    pub fn and(self, other: Filter) -> Filter {
        Filter {
            expr: Expr::And(vec![self.expr, other.expr]),
        }
    }

    /// Attribute names used by the filter, in order of appearance.
    pub fn attributes(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_attributes(&self.expr, &mut out);
        out
    }
}

fn parse_array(items: &[Value], code: &str) -> Result<Option<Expr>, MeiliError> {
    let subexpr_error = |expected: &str, v: &Value| {
        MeiliError::invalid(
            code,
            format!("Invalid type for filter subexpression: expected: {expected}, found: {v}."),
        )
    };
    let mut ands = Vec::new();
    for item in items {
        match item {
            Value::String(s) => ands.extend(parser::parse_str(s, code)?),
            Value::Array(inner) => {
                let mut ors = Vec::new();
                for v in inner {
                    match v {
                        Value::String(s) => ors.extend(parser::parse_str(s, code)?),
                        other => return Err(subexpr_error("String", other)),
                    }
                }
                match ors.len() {
                    0 => {}
                    1 => ands.extend(ors.pop()),
                    _ => ands.push(Expr::Or(ors)),
                }
            }
            other => return Err(subexpr_error("String, [String]", other)),
        }
    }
    Ok(match ands.len() {
        0 => None,
        1 => ands.pop(),
        _ => Some(Expr::And(ands)),
    })
}

fn check_expr(expr: &Expr, settings: &Settings, code: &str) -> Result<(), MeiliError> {
    match expr {
        Expr::And(items) | Expr::Or(items) => {
            items.iter().try_for_each(|e| check_expr(e, settings, code))
        }
        Expr::Not(inner) => check_expr(inner, settings, code),
        Expr::Condition { field, .. } => {
            if settings.is_filterable(&field.name) {
                Ok(())
            } else {
                Err(MeiliError::invalid(
                    code,
                    format!(
                        "{}\n{}",
                        not_filterable(&field.name, settings),
                        field.locator
                    ),
                ))
            }
        }
        Expr::GeoRadius { .. } | Expr::GeoBox { .. } => {
            // Geo filters need the string rule `_geo` (object rules do not enable them).
            let geo = settings
                .filterable_rules()
                .iter()
                .any(|r| matches!(r, crate::filterable::FilterableRule::Field(f) if f == "_geo"));
            if geo {
                Ok(())
            } else {
                let message = if settings.filterable_patterns().is_empty() {
                    "Attribute `_geo` is not filterable. This index does not have configured filterable attributes.".to_owned()
                } else {
                    not_filterable("_geo", settings)
                };
                Err(MeiliError::invalid(code, message))
            }
        }
    }
}

/// `Attribute \`x\` is not filterable. ...` with the sorted pattern list.
pub(crate) fn not_filterable(name: &str, settings: &Settings) -> String {
    let patterns = settings.filterable_patterns();
    if patterns.is_empty() {
        return format!(
            "Attribute `{name}` is not filterable. This index does not have configured filterable attributes."
        );
    }
    let list: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
    format!(
        "Attribute `{name}` is not filterable. Available filterable attribute patterns are: {}.",
        list.join(", ")
    )
}

fn collect_attributes(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::And(items) | Expr::Or(items) => items.iter().for_each(|e| collect_attributes(e, out)),
        Expr::Not(inner) => collect_attributes(inner, out),
        Expr::Condition { field, .. } => out.push(field.name.clone()),
        Expr::GeoRadius { .. } | Expr::GeoBox { .. } => out.push("_geo".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::parser::OPERATIONS;
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap_or_default()
    }

    fn f(s: &str) -> Filter {
        Filter::parse(&json!(s), "invalid_search_filter")
            .unwrap()
            .unwrap()
    }

    fn err(v: Value) -> String {
        Filter::parse(&v, "invalid_search_filter")
            .unwrap_err()
            .message
    }

    #[test]
    fn comparison_operators_compare_numbers_numerically() {
        let d = doc(json!({"price": 10, "tags": ["a", "B"]}));
        assert!(f("price = 10").matches(&d));
        assert!(f("price = 10.0").matches(&d));
        assert!(f("price > 9.5 AND price <= 10").matches(&d));
        assert!(!f("price < 10").matches(&d));
        assert!(f("price 5 TO 10").matches(&d));
        assert!(!f("price 11 TO 20").matches(&d));
        assert!(f("price != 3").matches(&d));
    }

    #[test]
    fn string_equality_is_case_insensitive_and_arrays_match_any_element() {
        let d = doc(json!({"genre": "Sci-Fi", "tags": ["a", "B"]}));
        assert!(f("genre = 'sci-fi'").matches(&d));
        assert!(f("tags = b").matches(&d));
        assert!(f("tags IN [x, A]").matches(&d));
        assert!(f("tags NOT IN [x, y]").matches(&d));
        assert!(!f("NOT tags = a").matches(&d));
    }

    #[test]
    fn not_equal_matches_documents_missing_the_field() {
        assert!(f("genre != drama").matches(&doc(json!({"id": 1}))));
    }

    #[test]
    fn null_empty_and_exists_follow_meilisearch() {
        let d = doc(json!({"a": null, "b": [], "c": "", "d": {"e": 1}}));
        assert!(f("a IS NULL").matches(&d));
        assert!(f("a EXISTS").matches(&d));
        assert!(f("b IS EMPTY AND c IS EMPTY").matches(&d));
        assert!(f("d.e EXISTS AND d.e = 1").matches(&d));
        assert!(f("z NOT EXISTS").matches(&d));
        assert!(f("d IS NOT NULL").matches(&d));
        assert!(!f("d IS EMPTY").matches(&d));
    }

    #[test]
    fn precedence_is_not_then_and_then_or_with_parentheses() {
        let d = doc(json!({"a": 1, "b": 2}));
        assert!(f("a = 1 OR a = 2 AND b = 3").matches(&d));
        assert!(!f("(a = 1 OR a = 2) AND b = 3").matches(&d));
        assert!(f("NOT (a = 2 OR b = 3)").matches(&d));
    }

    #[test]
    fn quoted_values_support_escapes_and_spaces() {
        let d = doc(json!({"title": "It's \"big\"", "_miroir_shard": 3}));
        assert!(f(r#"title = "It's \"big\"""#).matches(&d));
        assert!(f("_miroir_shard = 3").matches(&d));
    }

    #[test]
    fn nested_array_form_is_and_of_ors() {
        let d = doc(json!({"a": 1, "b": 2}));
        let filter = Filter::parse(&json!(["a = 1", ["b = 3", "b = 2"]]), "c")
            .unwrap()
            .unwrap();
        assert!(filter.matches(&d));
        let filter = Filter::parse(&json!(["a = 1", ["b = 3", "b = 4"]]), "c")
            .unwrap()
            .unwrap();
        assert!(!filter.matches(&d));
        assert_eq!(Filter::parse(&json!([]), "c").unwrap(), None);
        assert_eq!(Filter::parse(&Value::Null, "c").unwrap(), None);
    }

    #[test]
    fn string_ranges_compare_lexicographically() {
        let d = doc(json!({"name": "bob"}));
        assert!(f("name > alice").matches(&d));
        assert!(!f("name > carl").matches(&d));
    }

    #[test]
    fn parse_errors_use_meilisearch_messages() {
        assert_eq!(
            err(json!("title & Glass")),
            format!("{OPERATIONS} at `title & Glass`.\n1:14 title & Glass")
        );
        assert_eq!(
            err(json!("title = Glass XOR title = Glass")),
            "Found unexpected characters at the end of the filter: `XOR title = Glass`. You probably forgot an `OR` or an `AND` rule.\n15:32 title = Glass XOR title = Glass"
        );
        assert_eq!(
            err(json!(true)),
            "Invalid syntax for the filter parameter: `expected String, Array, found: true`."
        );
        assert!(err(json!("_geo = Glass")).starts_with("`_geo` is a reserved keyword"));
        assert!(
            err(json!("title = ")).starts_with("Was expecting a value but instead got nothing.")
        );
        assert!(err(json!("a = 'x")).contains("missing the following closing delimiter: `'`"));
    }

    #[test]
    fn unfilterable_attribute_is_reported_with_its_location() {
        let settings = Settings {
            filterable_attributes: vec!["title".into()],
            ..Settings::default()
        };
        let e = f(r#""many" = "Glass""#).check_filterable(&settings, "invalid_search_filter");
        assert_eq!(
            e.unwrap_err().message,
            "Attribute `many` is not filterable. Available filterable attribute patterns are: `title`.\n2:6 \"many\" = \"Glass\""
        );
        assert!(f("title = x").check_filterable(&settings, "c").is_ok());
    }

    #[test]
    fn starts_with_matches_string_prefixes_and_contains_is_gated() {
        let d = doc(json!({"name": "Kefirounet", "n": 123}));
        assert!(f("name STARTS WITH kefir").matches(&d));
        assert!(!f("name NOT STARTS WITH kef").matches(&d));
        assert!(
            !f("n STARTS WITH 12").matches(&d),
            "numbers are not strings"
        );
        let e = Filter::parse(&json!("doggo CONTAINS kefir"), "invalid_search_filter").unwrap_err();
        assert_eq!(e.code, "feature_not_enabled");
        assert_eq!(e.message, "Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. See https://github.com/orgs/meilisearch/discussions/763\n7:15 doggo CONTAINS kefir");
    }

    #[test]
    fn deep_nesting_is_parsed_or_rejected_without_overflowing_the_stack() {
        let nested = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
        assert!(f(&nested(90)).matches(&doc(json!({"a": 1}))));
        let e = Filter::parse(&json!(nested(5000)), "invalid_search_filter").unwrap_err();
        assert!(e
            .message
            .starts_with("The filter exceeded the maximum depth limit."));
    }

    #[test]
    fn geo_radius_keeps_points_within_distance() {
        let d = doc(json!({"_geo": {"lat": 45.4777599, "lng": 9.1967508}}));
        assert!(f("_geoRadius(45.472735, 9.184019, 2000)").matches(&d));
        assert!(!f("_geoRadius(45.472735, 9.184019, 10)").matches(&d));
        assert!(f("_geoBoundingBox([46, 10], [45, 9])").matches(&d));
    }
}
