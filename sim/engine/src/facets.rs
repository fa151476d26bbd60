//! `facetDistribution` and `facetStats` over a set of matching documents, as milli computes
//! them: number values first then strings, ordered alphabetically or by count, truncated to
//! `maxValuesPerFacet`; strings grouped by their normalized form, shown in their original form.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::fields::{self, FacetValue};
use crate::model::{attribute_matches, Document, FacetOrder, IndexData, Settings};

/// Rejects facet patterns that no filterable pattern covers, with Meilisearch's message.
pub fn validate(facets: &[String], settings: &Settings) -> Result<(), MeiliError> {
    for facet in facets {
        if settings
            .filterable_attributes
            .iter()
            .any(|rule| patterns_intersect(rule, facet))
        {
            continue;
        }
        let message = if settings.filterable_attributes.is_empty() {
            format!("Invalid facet distribution: Pattern `{facet}` is not filterable. This index does not have configured filterable attributes.")
        } else {
            let mut patterns: Vec<&str> = settings
                .filterable_attributes
                .iter()
                .map(String::as_str)
                .collect();
            patterns.sort_unstable();
            patterns.dedup();
            format!(
                "Invalid facet distribution: Pattern `{facet}` is not filterable. Available filterable attributes patterns are: `{}`.",
                patterns.join(", ")
            )
        };
        return Err(MeiliError::invalid("invalid_search_facets", message));
    }
    Ok(())
}

/// Whether some attribute could match both patterns (a filterable rule and a facet pattern).
fn patterns_intersect(rule: &str, facet: &str) -> bool {
    let wildcard = |p: &str| p.starts_with('*') || p.ends_with('*');
    attribute_matches(rule, facet)
        || attribute_matches(facet, rule)
        || (wildcard(facet) && wildcard(rule))
}

/// The facet fields selected by the requested patterns: every known field path (nested ones
/// included) that is filterable and matched by a pattern, alphabetically.
pub fn selected_fields(index: &IndexData, facets: &[String]) -> Vec<String> {
    index
        .search_cache
        .field_paths(index.docs.values())
        .into_iter()
        .filter(|p| index.settings.is_filterable(p))
        .filter(|p| facets.iter().any(|f| attribute_matches(f, p)))
        .collect()
}

/// Counts per value and numeric stats of one facet over `docs`.
pub struct FacetCounts {
    /// `(value, count)` with numbers before strings.
    pub numbers: Vec<(f64, u64)>,
    /// `(normalized, original, count)`.
    pub strings: Vec<(String, String, u64)>,
}

pub fn count(docs: &[&Document], field: &str) -> FacetCounts {
    let mut numbers: HashMap<u64, u64> = HashMap::new();
    let mut strings: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut seen_numbers: Vec<u64> = Vec::new();
    let mut seen_strings: Vec<String> = Vec::new();
    for doc in docs {
        seen_numbers.clear();
        seen_strings.clear();
        for value in fields::facet_values(doc, field) {
            match value {
                FacetValue::Number(n) => {
                    // -0.0 and 0.0 are one facet value.
                    let bits = if n == 0.0 { 0 } else { n.to_bits() };
                    if !seen_numbers.contains(&bits) {
                        seen_numbers.push(bits);
                        *numbers.entry(bits).or_insert(0) += 1;
                    }
                }
                FacetValue::String(norm, original) => {
                    if !seen_strings.contains(&norm) {
                        match strings.get_mut(&norm) {
                            Some((_, count)) => *count += 1,
                            None => {
                                strings.insert(norm.clone(), (original, 1));
                            }
                        }
                        seen_strings.push(norm);
                    }
                }
            }
        }
    }
    let mut numbers: Vec<(f64, u64)> = numbers
        .into_iter()
        .map(|(b, c)| (f64::from_bits(b), c))
        .collect();
    numbers.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    FacetCounts {
        numbers,
        strings: strings.into_iter().map(|(n, (o, c))| (n, o, c)).collect(),
    }
}

impl FacetCounts {
    /// The distribution object for this facet, ordered and truncated.
    pub fn distribution(mut self, order: FacetOrder, max_values: usize) -> Map<String, Value> {
        if order == FacetOrder::Count {
            self.numbers.sort_by_key(|n| Reverse(n.1));
            self.strings.sort_by_key(|s| Reverse(s.2));
        }
        let mut out = Map::new();
        for (n, c) in self.numbers.into_iter().take(max_values) {
            out.insert(n.to_string(), json!(c));
        }
        let left = max_values.saturating_sub(out.len());
        for (_, original, c) in self.strings.into_iter().take(left) {
            out.insert(original, json!(c));
        }
        out
    }

    pub fn stats(&self) -> Option<Value> {
        let min = self.numbers.first()?.0;
        let max = self.numbers.last()?.0;
        Some(json!({"min": min, "max": max}))
    }
}

/// `(facetDistribution, facetStats)` for a search response.
pub fn compute(index: &IndexData, docs: &[&Document], facets: &[String]) -> (Value, Value) {
    let settings = &index.settings;
    let mut distribution = Map::new();
    let mut stats = Map::new();
    for field in selected_fields(index, facets) {
        let counts = count(docs, &field);
        if let Some(s) = counts.stats() {
            stats.insert(field.clone(), s);
        }
        let values =
            counts.distribution(settings.facet_order(&field), settings.max_values_per_facet);
        distribution.insert(field, Value::Object(values));
    }
    (Value::Object(distribution), Value::Object(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn numbers_come_first_and_strings_group_case_insensitively() {
        let docs = [
            doc(json!({"g": ["Drama", "drama", 3]})),
            doc(json!({"g": "Action"})),
            doc(json!({"g": 1.5})),
        ];
        let refs: Vec<&Document> = docs.iter().collect();
        let c = count(&refs, "g");
        assert_eq!(c.stats(), Some(json!({"min": 1.5, "max": 3.0})));
        let d = c.distribution(FacetOrder::Alpha, 100);
        assert_eq!(
            Value::Object(d),
            json!({"1.5": 1, "3": 1, "Action": 1, "Drama": 1})
        );
    }

    #[test]
    fn count_order_and_truncation() {
        let docs = [
            doc(json!({"g": "b"})),
            doc(json!({"g": "b"})),
            doc(json!({"g": "a"})),
        ];
        let refs: Vec<&Document> = docs.iter().collect();
        let d = count(&refs, "g").distribution(FacetOrder::Count, 1);
        assert_eq!(Value::Object(d), json!({"b": 2}));
    }

    #[test]
    fn unfilterable_facet_is_rejected() {
        let settings = Settings {
            filterable_attributes: vec!["title".into()],
            ..Settings::default()
        };
        let e = validate(&["doggo".into()], &settings).unwrap_err();
        assert_eq!(e.code, "invalid_search_facets");
        assert_eq!(e.message, "Invalid facet distribution: Pattern `doggo` is not filterable. Available filterable attributes patterns are: `title`.");
    }
}
