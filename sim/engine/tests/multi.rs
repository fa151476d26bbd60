//! `multi_search`: plain results, error prefixes, and the federated merge.

mod common;

use common::{ids, index_with, keys, movies_index};
use meili_sim_engine::{multi_search, IndexData, MeiliError, Settings};
use serde_json::{json, Value};

fn books() -> IndexData {
    let settings = Settings {
        filterable_attributes: vec!["genre".into()],
        ..Settings::default()
    };
    index_with(
        "books",
        settings,
        json!([
            {"id": "b1", "title": "Escape from the dragon", "genre": "fantasy"},
            {"id": "b2", "title": "Dragon", "genre": "fantasy"},
            {"id": "b3", "title": "Cooking", "genre": "food"}
        ]),
    )
}

fn run(indexes: &[&IndexData], body: Value) -> Result<Value, MeiliError> {
    let lookup = |uid: &str| indexes.iter().find(|i| i.uid == uid).copied();
    multi_search(&body, &lookup, &|_| None)
}

#[test]
fn plain_multi_search_returns_one_result_per_query_with_index_uid_first() {
    let (movies, books) = (movies_index(), books());
    let r = run(
        &[&movies, &books],
        json!({"queries": [{"indexUid": "movies", "q": "shazam"}, {"indexUid": "books", "q": "dragon", "limit": 1}]}),
    )
    .unwrap();
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(keys(&results[0])[..3], ["indexUid", "hits", "query"]);
    assert_eq!(results[0]["indexUid"], json!("movies"));
    assert_eq!(ids(&results[1]), vec!["b2"]);
    assert_eq!(results[1]["estimatedTotalHits"], json!(2));
}

#[test]
fn tenant_filters_apply_per_index_and_results_share_a_request_uid() {
    let (movies, books) = (movies_index(), books());
    let lookup = |uid: &str| [&movies, &books].into_iter().find(|i| i.uid == uid);
    let tenant = |uid: &str| (uid == "books").then(|| json!("genre = food"));
    let body = json!({"queries": [{"indexUid": "movies"}, {"indexUid": "books"}]});
    let r = multi_search(&body, &lookup, &tenant).unwrap();
    assert_eq!(r["results"][0]["estimatedTotalHits"], json!(5));
    assert_eq!(ids(&r["results"][1]), vec!["b3"]);
    assert_eq!(r["results"][0]["requestUid"], r["results"][1]["requestUid"]);
}

#[test]
fn errors_name_the_failing_query() {
    let movies = movies_index();
    let e = run(
        &[&movies],
        json!({"queries": [{"indexUid": "movies"}, {"indexUid": "nope"}]}),
    )
    .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "index_not_found"));
    assert_eq!(e.message, "Inside `.queries[1]`: Index `nope` not found.");
    let e = run(
        &[&movies],
        json!({"queries": [{"indexUid": "movies", "filter": "nope = 1"}]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_search_filter");
    assert!(e
        .message
        .starts_with("Inside `.queries[0]`: Index `movies`: Attribute `nope` is not filterable."));
    let e = run(
        &[&movies],
        json!({"queries": [{"indexUid": "movies", "federationOptions": {"weight": 2.0}}]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_multi_search_federation_options");
    let e = run(
        &[&movies],
        json!({"queries": [{"indexUid": "movies", "limit": "x"}]}),
    )
    .unwrap_err();
    assert_eq!(e.message, "Invalid value type at `.queries[0].limit`: expected a positive integer, but found a string: `\"x\"`");
}

#[test]
fn federated_search_merges_by_weighted_score_with_federation_info() {
    let (movies, books) = (movies_index(), books());
    let r = run(
        &[&movies, &books],
        json!({"federation": {}, "queries": [
            {"indexUid": "movies", "q": "escape", "attributesToRetrieve": ["title"]},
            {"indexUid": "books", "q": "dragon", "attributesToRetrieve": ["title"]}
        ]}),
    )
    .unwrap();
    assert_eq!(
        keys(&r),
        vec![
            "hits",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "requestUid"
        ]
    );
    let titles: Vec<&str> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap())
        .collect();
    // "Dragon" is an exact match (1.0); "Escape Room" matches its start (65/66); "Escape from
    // the dragon" has "dragon" far from the query position.
    assert_eq!(
        titles,
        vec!["Dragon", "Escape Room", "Escape from the dragon"]
    );
    assert_eq!(
        r["hits"][0]["_federation"],
        json!({"indexUid": "books", "queriesPosition": 1, "weightedRankingScore": 1.0})
    );
    assert_eq!(keys(&r["hits"][1]), vec!["title", "_federation"]);
    assert_eq!(r["estimatedTotalHits"], json!(3));
}

#[test]
fn federation_weight_scales_the_score_and_changes_the_order() {
    let (movies, books) = (movies_index(), books());
    let r = run(
        &[&movies, &books],
        json!({"federation": {"limit": 2}, "queries": [
            {"indexUid": "movies", "q": "escape", "federationOptions": {"weight": 2.0}},
            {"indexUid": "books", "q": "dragon"}
        ]}),
    )
    .unwrap();
    assert_eq!(ids(&r), vec!["522681", "b2"]);
    assert_eq!(
        r["hits"][0]["_federation"]["weightedRankingScore"],
        json!(2.0 * 65.0 / 66.0)
    );
    assert_eq!(
        (r["limit"].clone(), r["estimatedTotalHits"].clone()),
        (json!(2), json!(3))
    );
}

#[test]
fn same_index_queries_count_each_document_once() {
    let books = books();
    let r = run(
        &[&books],
        json!({"federation": {}, "queries": [
            {"indexUid": "books", "q": "dragon"},
            {"indexUid": "books", "q": "escape"}
        ]}),
    )
    .unwrap();
    assert_eq!(ids(&r), vec!["b2", "b1"]);
    assert_eq!(r["estimatedTotalHits"], json!(2));
    assert_eq!(
        r["hits"][1]["_federation"]["queriesPosition"],
        json!(1),
        "b1 ranks higher for `escape`"
    );
}

#[test]
fn federated_queries_reject_pagination_and_facets() {
    let movies = movies_index();
    let e = run(
        &[&movies],
        json!({"federation": {}, "queries": [{"indexUid": "movies", "limit": 5}]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_multi_search_query_pagination");
    assert!(e.message.starts_with(
        "Inside `.queries[0]`: Using pagination options is not allowed in federated queries."
    ));
    let e = run(
        &[&movies],
        json!({"federation": {}, "queries": [{"indexUid": "movies", "facets": ["color"]}]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_multi_search_query_facets");
}

#[test]
fn federated_facets_by_index_and_merged() {
    let (movies, books) = (movies_index(), books());
    let body = |merge: bool| {
        let mut federation = json!({"facetsByIndex": {"movies": ["color"], "books": ["genre"]}});
        if merge {
            federation["mergeFacets"] = json!({});
        }
        json!({"federation": federation, "queries": [
            {"indexUid": "movies", "q": "escape"},
            {"indexUid": "books", "q": "dragon"}
        ]})
    };
    let r = run(&[&movies, &books], body(false)).unwrap();
    assert_eq!(
        r["facetsByIndex"],
        json!({
            "books": {"distribution": {"genre": {"fantasy": 2}}, "stats": {}},
            "movies": {"distribution": {"color": {"red": 1, "yellow": 1}}, "stats": {}}
        })
    );
    let r = run(&[&movies, &books], body(true)).unwrap();
    assert_eq!(
        r["facetDistribution"],
        json!({"color": {"red": 1, "yellow": 1}, "genre": {"fantasy": 2}})
    );
    assert_eq!(r["facetStats"], json!({}));
    assert!(r.get("facetsByIndex").is_none());
}

#[test]
fn federated_page_pagination_and_distinct() {
    let books = books();
    let r = run(
        &[&books],
        json!({"federation": {"hitsPerPage": 1, "page": 2}, "queries": [{"indexUid": "books", "q": "dragon"}]}),
    )
    .unwrap();
    assert_eq!(ids(&r), vec!["b1"]);
    assert_eq!(
        (r["totalHits"].clone(), r["totalPages"].clone()),
        (json!(2), json!(2))
    );
    let r = run(
        &[&books],
        json!({"federation": {"distinct": "genre"}, "queries": [{"indexUid": "books"}]}),
    )
    .unwrap();
    assert_eq!(ids(&r), vec!["b1", "b3"]);
    assert_eq!(r["estimatedTotalHits"], json!(2));
}

/// Observed on a real Meilisearch 1.50.0: the facet patterns of an index used in the queries
/// are checked with its first query, whose position prefixes the error; an unused index's
/// error carries a note instead. `*` is no wildcard in a string rule.
#[test]
fn facets_by_index_errors_name_the_first_query_of_their_index() {
    let (movies, books) = (movies_index(), books());
    let e = run(
        &[&movies, &books],
        json!({"federation": {"facetsByIndex": {"books": ["*"]}}, "queries": [
            {"indexUid": "movies"}, {"indexUid": "books"}, {"indexUid": "books"}
        ]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_search_facets");
    assert_eq!(
        e.message,
        "Inside `.queries[1]`: Inside `.federation.facetsByIndex.books`: Invalid facet distribution: Pattern `*` is not filterable. Available filterable attributes patterns are: `genre`."
    );
    let e = run(
        &[&movies, &books],
        json!({"federation": {"facetsByIndex": {"books": ["gen*"]}}, "queries": [{"indexUid": "movies"}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Inside `.federation.facetsByIndex.books`: Invalid facet distribution: Pattern `gen*` is not filterable. Available filterable attributes patterns are: `genre`.\n - Note: index `books` is not used in queries"
    );
    let e = run(
        &[&books],
        json!({"queries": [{"indexUid": "books", "facets": ["genre"]}, {"indexUid": "books", "facets": ["*"]}]}),
    )
    .unwrap_err();
    assert!(e
        .message
        .starts_with("Inside `.queries[1]`: Invalid facet distribution: Pattern `*`"));
}
