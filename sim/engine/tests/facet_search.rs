//! `facet_search`: values of one facet among the documents matching the search part.

mod common;

use common::{index_with, keys};
use meili_sim_engine::filterable::{FilterFeatures, FilterableRule};
use meili_sim_engine::{facet_search, FacetOrder, IndexData, Settings};
use serde_json::{json, Value};

fn index() -> IndexData {
    let settings = Settings {
        filterable_attributes: vec!["genre".into(), "year".into()],
        ..Settings::default()
    };
    index_with(
        "books",
        settings,
        json!([
            {"id": 1, "title": "dragon tales", "genre": ["Fantasy", "Adventure"], "year": 2001},
            {"id": 2, "title": "space dragon", "genre": "Science Fiction", "year": 2001},
            {"id": 3, "title": "cooking", "genre": "fantasy", "year": 1999},
            {"id": 4, "title": "the fantastic voyage", "genre": "Fanfiction", "year": 2005}
        ]),
    )
}

fn hits(r: &Value) -> Vec<(String, u64)> {
    r["facetHits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["value"].as_str().unwrap().to_owned(),
                h["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn prefix_query_returns_values_alphabetically_with_counts() {
    let r = facet_search(
        &index(),
        &json!({"facetName": "genre", "facetQuery": "fan"}),
        None,
    )
    .unwrap();
    assert_eq!(
        keys(&r),
        vec!["facetHits", "facetQuery", "processingTimeMs"]
    );
    assert_eq!(r["facetQuery"], json!("fan"));
    assert_eq!(
        hits(&r),
        vec![("Fanfiction".into(), 1), ("Fantasy".into(), 2)]
    );
}

#[test]
fn typos_are_allowed_by_query_length() {
    let r = facet_search(
        &index(),
        &json!({"facetName": "genre", "facetQuery": "fantazy"}),
        None,
    )
    .unwrap();
    assert_eq!(hits(&r), vec![("Fantasy".into(), 2)]);
    let r = facet_search(
        &index(),
        &json!({"facetName": "genre", "facetQuery": "fam"}),
        None,
    )
    .unwrap();
    assert!(hits(&r).is_empty(), "three letters allow no typo");
}

#[test]
fn search_part_restricts_the_counted_documents() {
    let r = facet_search(
        &index(),
        &json!({"facetName": "genre", "q": "dragon"}),
        None,
    )
    .unwrap();
    assert_eq!(
        hits(&r),
        vec![
            ("Adventure".into(), 1),
            ("Fantasy".into(), 1),
            ("Science Fiction".into(), 1)
        ]
    );
    assert_eq!(r["facetQuery"], Value::Null);
    let r = facet_search(
        &index(),
        &json!({"facetName": "genre", "filter": "year = 2001"}),
        Some(&json!("year > 2000")),
    )
    .unwrap();
    assert_eq!(hits(&r).len(), 3);
}

#[test]
fn count_order_and_truncation_follow_settings() {
    let mut idx = index();
    idx.settings
        .sort_facet_values_by
        .insert("genre".into(), FacetOrder::Count);
    idx.settings.max_values_per_facet = 2;
    let r = facet_search(&idx, &json!({"facetName": "genre"}), None).unwrap();
    assert_eq!(
        hits(&r),
        vec![("Fantasy".into(), 2), ("Science Fiction".into(), 1)]
    );
}

#[test]
fn facet_name_must_be_filterable_and_facet_search_enabled() {
    let mut idx = index();
    let e = facet_search(&idx, &json!({"facetName": "title"}), None).unwrap_err();
    assert_eq!(e.code, "invalid_facet_search_facet_name");
    assert_eq!(
        e.message,
        "Attribute `title` is not facet-searchable. Available facet-searchable attributes patterns are: `genre, year`. To make it facet-searchable add it to the `filterableAttributes` index settings."
    );
    let e = facet_search(&idx, &json!({"facetQuery": "x"}), None).unwrap_err();
    assert_eq!(e.code, "missing_facet_search_facet_name");
    idx.settings.facet_search = false;
    let e = facet_search(&idx, &json!({"facetName": "genre"}), None).unwrap_err();
    assert_eq!(e.code, "facet_search_disabled");
}

/// Observed on a real Meilisearch 1.50.0: a facet is searchable when the first rule matching it
/// enables facet search; string rules do (literally: `*` is no wildcard), object rules only with
/// `"facetSearch": true`.
#[test]
fn facet_searchable_follows_the_first_matching_rule() {
    let error = |idx: &IndexData, name: &str| {
        let e = facet_search(idx, &json!({"facetName": name}), None).unwrap_err();
        assert_eq!(e.code, "invalid_facet_search_facet_name");
        e.message
    };
    let mut idx = index();
    idx.settings.filterable_attributes = vec!["*".into()];
    assert_eq!(
        error(&idx, "genre"),
        "Attribute `genre` is not facet-searchable. Available facet-searchable attributes patterns are: `*`. To make it facet-searchable add it to the `filterableAttributes` index settings."
    );
    assert!(facet_search(&idx, &json!({"facetName": "*"}), None).is_ok());

    let rule = |patterns: &[&str], facet_search: bool| FilterableRule::Patterns {
        patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        features: FilterFeatures {
            facet_search,
            ..FilterFeatures::default()
        },
    };
    idx.settings.filterable_rules = Some(vec![rule(&["gen*"], false), rule(&["year"], true)]);
    assert_eq!(
        error(&idx, "genre"),
        "Attribute `genre` is not facet-searchable. Note: this attribute matches rule #0 in filterableAttributes, but this rule does not enable facetSearch.\nHint: enable facetSearch in rule #0 by adding `\"facetSearch\": true` to the rule.\nHint: prepend another rule matching genre with facetSearch: true before rule #0"
    );
    assert_eq!(
        error(&idx, "title"),
        "Attribute `title` is not facet-searchable. Available facet-searchable attributes patterns are: `year`. To make it facet-searchable add it to the `filterableAttributes` index settings."
    );
    idx.settings.filterable_rules = Some(vec![rule(&["genre"], true)]);
    assert_eq!(
        hits(
            &facet_search(
                &idx,
                &json!({"facetName": "genre", "facetQuery": "sci"}),
                None
            )
            .unwrap()
        ),
        vec![("Science Fiction".into(), 1)]
    );
    idx.settings.filterable_rules = Some(vec![rule(&["genre"], false)]);
    assert_eq!(
        error(&idx, "title"),
        "Attribute `title` is not facet-searchable. This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings."
    );
}

/// Patterns that are not displayed are left out of the list, with a marker.
#[test]
fn hidden_facet_searchable_patterns_are_masked() {
    let mut idx = index();
    idx.settings.displayed_attributes = Some(vec!["id".into(), "genre".into()]);
    let e = facet_search(&idx, &json!({"facetName": "nope"}), None).unwrap_err();
    assert_eq!(
        e.message,
        "Attribute `nope` is not facet-searchable. Available facet-searchable attributes patterns are: `genre, <..hidden-attributes>`. To make it facet-searchable add it to the `filterableAttributes` index settings."
    );
    assert!(facet_search(&idx, &json!({"facetName": "year"}), None).is_ok());
}
