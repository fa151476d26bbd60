//! `facetDistribution` and `facetStats` over a set of matching documents, as milli computes
//! them: number values first then strings, ordered alphabetically or by count, truncated to
//! `maxValuesPerFacet`; strings grouped by their normalized form, shown in their original form.
//! Not modelled: with few matches, a real node orders some equal counts by its facet tree (a
//! value whose tree group matched nothing else comes after the others of its count).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::fields::{self, FacetValue};
use crate::filterable::{match_field_legacy, match_pattern, PatternMatch};
use crate::model::{Document, FacetOrder, IndexData, Settings};

/// milli's `LINEAR_SCAN_CANDIDATES_THRESHOLD`: up to this many matching documents, `alpha`
/// order reads each document's values instead of walking the facet tree.
const LINEAR_SCAN_MAX_CANDIDATES: usize = 3000;

/// Rejects the first requested facet pattern that no filtering rule can cover, as Meilisearch
/// 1.50 does. A pattern passes when, scanning the rules in order, a filtering rule intersects
/// it (a string rule: the pattern is its name, a parent of it or nested under it, `*` taken
/// literally; an object rule: either side's wildcards match the other) before a rule without
/// filtering matches it.
pub fn validate(facets: &[String], settings: &Settings) -> Result<(), MeiliError> {
    let rules = settings.filterable_rules();
    'facet: for facet in facets {
        let mut blocked_by = None;
        for (i, rule) in rules.iter().enumerate() {
            if rule.features().is_filterable() {
                if rule.intersects(facet) {
                    continue 'facet;
                }
            } else if rule.match_str(facet) == PatternMatch::Match {
                blocked_by = Some(i);
                break;
            }
        }
        let detail = match blocked_by {
            Some(i) => format!(
                "Attribute `{facet}` matched rule #{i} in filterableAttributes, but this rule does not enable filtering.\nHint: enable filtering in rule #{i} by modifying the features.filter object\nHint: prepend another rule matching `{facet}` with appropriate filter features before rule #{i}"
            ),
            None => {
                let patterns = settings.filterable_patterns();
                if patterns.is_empty() {
                    format!("Pattern `{facet}` is not filterable. This index does not have configured filterable attributes.")
                } else {
                    format!(
                        "Pattern `{facet}` is not filterable. Available filterable attributes patterns are: `{}`.",
                        patterns.join(", ")
                    )
                }
            }
        };
        return Err(MeiliError::invalid(
            "invalid_search_facets",
            format!("Invalid facet distribution: {detail}"),
        ));
    }
    Ok(())
}

/// One field of a facet distribution and the order of its values.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedField {
    pub name: String,
    pub order: FacetOrder,
}

/// The fields a facet distribution lists, alphabetically, as Meilisearch 1.50 selects them
/// from its fields-ids map (every path ever indexed, parents included). First the *named*
/// fields: filterable ones a requested pattern matches by wildcard (`*`, `prefix*`, exact
/// name; not by nesting). Then every filterable field that is a named field or nested under
/// one. A named field's values follow its own `sortFacetValuesBy` entry, the others the `*`
/// entry.
pub fn selected_fields(index: &IndexData, facets: &[String]) -> Vec<SelectedField> {
    let settings = &index.settings;
    let rules = settings.filterable_rules();
    let filterable = |name: &str| crate::filterable::is_filterable(&rules, name);
    let named: Vec<&str> = index
        .field_paths
        .iter()
        .map(String::as_str)
        .filter(|name| {
            facets
                .iter()
                .any(|f| match_pattern(f, name) == PatternMatch::Match)
        })
        .filter(|name| filterable(name))
        .collect();
    index
        .field_paths
        .iter()
        .filter(|name| filterable(name))
        .filter(|name| {
            named
                .iter()
                .any(|n| match_field_legacy(n, name) == PatternMatch::Match)
        })
        .map(|name| SelectedField {
            name: name.clone(),
            order: if named.contains(&name.as_str()) {
                settings.facet_order(name)
            } else {
                settings.facet_order("*")
            },
        })
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
    /// The distribution object for this facet over `candidates` matching documents, ordered
    /// and cut as milli does on its two paths. With `alpha` order and at most 3000 candidates
    /// it reads documents: numbers in the order of their decimal text, then strings, each cut
    /// to what is left of `max_values`. Otherwise it walks its facet tree (numbers in numeric
    /// order, or by count with equal counts largest value first) and stops when the list
    /// holds `max_values` values, checked after each one: numbers reaching the limit (or a
    /// limit of 0) bring every string along.
    pub fn distribution(
        mut self,
        order: FacetOrder,
        max_values: usize,
        candidates: usize,
    ) -> Map<String, Value> {
        let by_documents = order == FacetOrder::Alpha && candidates <= LINEAR_SCAN_MAX_CANDIDATES;
        match order {
            FacetOrder::Alpha if by_documents => {
                self.numbers.sort_by_key(|n| n.0.to_string());
            }
            FacetOrder::Alpha => {}
            FacetOrder::Count => {
                self.numbers.sort_by(|a, b| {
                    b.1.cmp(&a.1)
                        .then_with(|| b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal))
                });
                self.strings
                    .sort_by(|a, b| b.2.cmp(&a.2).then_with(|| b.0.cmp(&a.0)));
            }
        }
        let mut out = Map::new();
        if by_documents {
            for (n, c) in self.numbers.into_iter().take(max_values) {
                out.insert(n.to_string(), json!(c));
            }
            let left = max_values.saturating_sub(out.len());
            for (_, original, c) in self.strings.into_iter().take(left) {
                out.insert(original, json!(c));
            }
            return out;
        }
        for (n, c) in self.numbers {
            out.insert(n.to_string(), json!(c));
            if out.len() == max_values {
                break;
            }
        }
        for (_, original, c) in self.strings {
            out.insert(original, json!(c));
            if out.len() == max_values {
                break;
            }
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
        let counts = count(docs, &field.name);
        if let Some(s) = counts.stats() {
            stats.insert(field.name.clone(), s);
        }
        let values = counts.distribution(field.order, settings.max_values_per_facet, docs.len());
        distribution.insert(field.name, Value::Object(values));
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
        let d = c.distribution(FacetOrder::Alpha, 100, 3);
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
        let d = count(&refs, "g").distribution(FacetOrder::Count, 1, 3);
        assert_eq!(Value::Object(d), json!({"b": 2}));
    }

    #[test]
    fn milli_orders_and_cuts_as_measured_on_meilisearch_1_50() {
        let docs: Vec<Document> = [1, 2, 10, 11, 11]
            .iter()
            .map(|n| doc(json!({"g": n})))
            .chain(["x", "y"].iter().map(|s| doc(json!({"g": s}))))
            .collect();
        let refs: Vec<&Document> = docs.iter().collect();
        let keys = |order, max, candidates| -> Vec<String> {
            count(&refs, "g")
                .distribution(order, max, candidates)
                .keys()
                .cloned()
                .collect()
        };
        // Few candidates: numbers in text order, strings fill what is left.
        assert_eq!(keys(FacetOrder::Alpha, 5, 7), ["1", "10", "11", "2", "x"]);
        // Many: numeric order; numbers reaching the limit bring every string.
        assert_eq!(keys(FacetOrder::Alpha, 3, 4000), ["1", "2", "10", "x", "y"]);
        assert_eq!(keys(FacetOrder::Alpha, 3, 7), ["1", "10", "11"]);
        // Count: equal counts largest value first.
        assert_eq!(
            keys(FacetOrder::Count, 100, 7),
            ["11", "10", "2", "1", "y", "x"]
        );
        assert_eq!(keys(FacetOrder::Count, 0, 7).len(), 6);
        assert!(keys(FacetOrder::Alpha, 0, 7).is_empty());
    }

    use crate::filterable::{FilterFeatures, FilterableRule};

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn index(rules: Vec<FilterableRule>, docs: Value) -> IndexData {
        let mut index = IndexData::new("i", Some("id".into()), "2026-01-01T00:00:00Z");
        index.settings.filterable_rules = Some(rules);
        for d in docs.as_array().cloned().unwrap_or_default() {
            index.put_document(d["id"].to_string(), doc(d));
        }
        index
    }

    fn fields(names: &[&str]) -> Vec<FilterableRule> {
        names
            .iter()
            .map(|n| FilterableRule::Field((*n).to_owned()))
            .collect()
    }

    fn patterns(list: &[&str], features: FilterFeatures) -> FilterableRule {
        FilterableRule::Patterns {
            patterns: strings(list),
            features,
        }
    }

    /// `(facetDistribution, facetStats)` over every document, or the error message.
    fn facets(index: &IndexData, requested: &[&str]) -> Result<(Value, Value), String> {
        let requested = strings(requested);
        validate(&requested, &index.settings).map_err(|e| {
            assert_eq!(e.code, "invalid_search_facets");
            e.message
        })?;
        let docs: Vec<&Document> = index.docs.values().collect();
        Ok(compute(index, &docs, &requested))
    }

    fn not_filterable(facet: &str, patterns: &str) -> Result<(Value, Value), String> {
        Err(format!("Invalid facet distribution: Pattern `{facet}` is not filterable. Available filterable attributes patterns are: `{patterns}`."))
    }

    fn empty() -> Result<(Value, Value), String> {
        Ok((json!({}), json!({})))
    }

    // The cases below were observed on a real Meilisearch 1.50.0.

    #[test]
    fn string_rules_are_taken_literally() {
        let docs = json!([{"id": 1, "genre": "a", "rating": 3, "year": 2000}]);
        let idx = index(fields(&["genre", "rating", "year"]), docs.clone());
        assert_eq!(
            facets(&idx, &["genre"]),
            Ok((json!({"genre": {"a": 1}}), json!({})))
        );
        for facet in ["*", "gen*", "nope"] {
            assert_eq!(
                facets(&idx, &[facet]),
                not_filterable(facet, "genre, rating, year")
            );
        }

        let idx = index(fields(&["*"]), docs.clone());
        assert_eq!(facets(&idx, &["*"]), empty());
        assert_eq!(facets(&idx, &["genre"]), not_filterable("genre", "*"));
        assert_eq!(facets(&idx, &["gen*"]), not_filterable("gen*", "*"));

        let idx = index(fields(&["gen*", "year"]), docs.clone());
        assert_eq!(
            facets(&idx, &["genre"]),
            not_filterable("genre", "gen*, year")
        );
        assert_eq!(facets(&idx, &["gen*"]), empty());
        assert_eq!(facets(&idx, &["*"]), not_filterable("*", "gen*, year"));
        assert_eq!(
            facets(&idx, &["year"]),
            Ok((
                json!({"year": {"2000": 1}}),
                json!({"year": {"min": 2000.0, "max": 2000.0}})
            ))
        );

        let idx = index(Vec::new(), docs);
        assert_eq!(
            facets(&idx, &["*"]),
            Err("Invalid facet distribution: Pattern `*` is not filterable. This index does not have configured filterable attributes.".into())
        );
        // The first invalid pattern is reported.
        let idx = index(fields(&["genre", "genre"]), json!([]));
        assert_eq!(facets(&idx, &["zz", "aa"]), not_filterable("zz", "genre"));
    }

    #[test]
    fn nested_fields_follow_their_string_parent() {
        let idx = index(
            fields(&["a", "c.*"]),
            json!([{"id": 1, "a": {"b": 1}, "c": {"d": 2}}]),
        );
        let ab = json!({"a.b": {"min": 1.0, "max": 1.0}});
        assert_eq!(
            facets(&idx, &["a.b"]),
            Ok((json!({"a.b": {"1": 1}}), ab.clone()))
        );
        assert_eq!(
            facets(&idx, &["a"]),
            Ok((json!({"a": {}, "a.b": {"1": 1}}), ab.clone()))
        );
        assert_eq!(facets(&idx, &["a.*"]), Ok((json!({"a.b": {"1": 1}}), ab)));
        assert_eq!(facets(&idx, &["c.d"]), not_filterable("c.d", "a, c.*"));
        // Valid (a parent of the rule, or nested under one) but naming no filterable field.
        assert_eq!(facets(&idx, &["c.*"]), empty());
        assert_eq!(facets(&idx, &["c"]), empty());
        assert_eq!(facets(&idx, &["a.b.x"]), empty());

        let idx = index(fields(&["x.y"]), json!([{"id": 1, "x": {"y": {"z": 5}}}]));
        assert_eq!(facets(&idx, &["x"]), empty());
        assert_eq!(
            facets(&idx, &["x.y"]),
            Ok((
                json!({"x.y": {}, "x.y.z": {"5": 1}}),
                json!({"x.y.z": {"min": 5.0, "max": 5.0}})
            ))
        );
    }

    #[test]
    fn object_rules_match_by_wildcard_and_features() {
        let docs = json!([
            {"id": 1, "genre": "a", "sub": {"x": 1, "y": "q"}},
            {"id": 2, "genre": "b", "sub": {"x": 2}}
        ]);
        let all = index(
            vec![patterns(&["*"], FilterFeatures::default())],
            docs.clone(),
        );
        let x_stats = json!({"sub.x": {"min": 1.0, "max": 2.0}});
        assert_eq!(
            facets(&all, &["sub"]),
            Ok((
                json!({"sub": {}, "sub.x": {"1": 1, "2": 1}, "sub.y": {"q": 1}}),
                x_stats.clone()
            ))
        );
        assert_eq!(
            facets(&all, &["*x"]),
            Ok((json!({"sub.x": {"1": 1, "2": 1}}), x_stats))
        );

        let sub = index(
            vec![patterns(&["sub"], FilterFeatures::default())],
            docs.clone(),
        );
        assert_eq!(facets(&sub, &["sub"]), Ok((json!({"sub": {}}), json!({}))));
        assert_eq!(facets(&sub, &["sub.x"]), empty());

        let gen = index(
            vec![patterns(&["gen*"], FilterFeatures::default())],
            docs.clone(),
        );
        let genre = Ok((json!({"genre": {"a": 1, "b": 1}}), json!({})));
        assert_eq!(facets(&gen, &["*"]), genre);
        assert_eq!(facets(&gen, &["g*"]), genre);
        assert_eq!(facets(&gen, &["genres"]), empty());
        assert_eq!(facets(&gen, &["year"]), not_filterable("year", "gen*"));

        // A rule without filtering that matches first blocks the facet.
        let off = FilterFeatures {
            facet_search: true,
            equality: false,
            comparison: false,
        };
        let mut rules = vec![patterns(&["gen*"], off)];
        rules.extend(fields(&["genre"]));
        let blocked = index(rules, docs.clone());
        assert_eq!(
            facets(&blocked, &["genre"]),
            Err("Invalid facet distribution: Attribute `genre` matched rule #0 in filterableAttributes, but this rule does not enable filtering.\nHint: enable filtering in rule #0 by modifying the features.filter object\nHint: prepend another rule matching `genre` with appropriate filter features before rule #0".into())
        );
        assert_eq!(facets(&blocked, &["g*"]), not_filterable("g*", "genre"));

        let comparison_only = FilterFeatures {
            facet_search: false,
            equality: false,
            comparison: true,
        };
        let idx = index(vec![patterns(&["genre"], comparison_only)], docs);
        assert_eq!(
            facets(&idx, &["*"]),
            Ok((json!({"genre": {"a": 1, "b": 1}}), json!({})))
        );
    }

    #[test]
    fn fields_of_deleted_documents_stay_listed() {
        let mut idx = index(
            fields(&["genre", "other"]),
            json!([{"id": 1, "genre": "a"}, {"id": 2, "other": "b"}]),
        );
        assert!(idx.delete_document("1"));
        assert_eq!(
            facets(&idx, &["genre", "other"]),
            Ok((json!({"genre": {}, "other": {"b": 1}}), json!({})))
        );
    }

    #[test]
    fn only_named_fields_use_their_own_value_order() {
        let mut idx = index(
            fields(&["x"]),
            json!([{"id": 1, "x": {"y": "b"}}, {"id": 2, "x": {"y": "a"}}, {"id": 3, "x": {"y": "b"}}]),
        );
        idx.settings
            .sort_facet_values_by
            .insert("x.y".into(), FacetOrder::Count);
        let order = |requested: &[&str]| {
            let (d, _) = facets(&idx, requested).unwrap();
            d["x.y"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&["x"]), ["a", "b"]);
        assert_eq!(order(&["x.y"]), ["b", "a"]);
        assert_eq!(order(&["x.*"]), ["b", "a"]);
        assert_eq!(order(&["x", "x.y"]), ["b", "a"]);
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
