//! `facet_search`: values of one facet among the documents matching the search part.

mod common;

use common::{index_with, keys};
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
        "Index `books`: Attribute `title` is not facet-searchable. Available facet-searchable attributes patterns are: `genre, year`. To make it facet-searchable add it to the `filterableAttributes` index settings."
    );
    let e = facet_search(&idx, &json!({"facetQuery": "x"}), None).unwrap_err();
    assert_eq!(e.code, "missing_facet_search_facet_name");
    idx.settings.facet_search = false;
    let e = facet_search(&idx, &json!({"facetName": "genre"}), None).unwrap_err();
    assert_eq!(e.code, "facet_search_disabled");
}
