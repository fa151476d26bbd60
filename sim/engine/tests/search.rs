//! End-to-end behaviour of `search`, with expected values taken from Meilisearch's own
//! documentation and test snapshots.

mod common;

use common::{ids, index_with, keys, movies, movies_index};
use meili_sim_engine::filterable::{FilterFeatures, FilterableRule};
use meili_sim_engine::{search, FacetOrder, IndexData, Settings};
use serde_json::{json, Value};

fn run(index: &meili_sim_engine::IndexData, body: Value) -> Value {
    search(index, &body, None).unwrap()
}

#[test]
fn default_response_has_meilisearch_fields_in_order() {
    let r = run(&movies_index(), json!({"q": "shazam"}));
    assert_eq!(
        keys(&r),
        vec![
            "hits",
            "query",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "requestUid"
        ]
    );
    assert_eq!(r["query"], json!("shazam"));
    assert_eq!(
        (r["limit"].clone(), r["offset"].clone()),
        (json!(20), json!(0))
    );
    let uid = r["requestUid"].as_str().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(&uid[14..15], "7", "request uid is a UUID v7");
    assert_eq!(
        r["hits"][0],
        json!({"title": "Shazam!", "id": "287947", "color": ["green", "blue"]})
    );
}

#[test]
fn score_details_match_meilisearch_snapshot_for_train_dragon() {
    // Meilisearch `tests/search/mod.rs::test_score_details`.
    let r = run(
        &movies_index(),
        json!({"q": "train dragon", "showRankingScoreDetails": true}),
    );
    assert_eq!(ids(&r), vec!["166428"]);
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"],
        json!({
            "words": {"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0},
            "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 2, "score": 1.0},
            "proximity": {"order": 2, "score": 0.75},
            "attributeRank": {"order": 3, "score": 1.0},
            "wordPosition": {"order": 4, "score": 0.8095238095238095},
            "exactness": {"order": 5, "matchType": "noExactMatch", "matchingWords": 2, "maxMatchingWords": 2, "score": 0.3333333333333333}
        })
    );
}

#[test]
fn ranking_scores_match_meilisearch_federation_snapshot() {
    // Meilisearch `tests/search/multi`: "Shazam" -> 1.0, "Escape" -> 0.9848484848484848 (its
    // test client parses floats without round-trip precision; the exact value is 65/66).
    let index = movies_index();
    let r = run(&index, json!({"q": "Shazam", "showRankingScore": true}));
    assert_eq!(r["hits"][0]["_rankingScore"], json!(1.0));
    let r = run(&index, json!({"q": "Escape", "showRankingScore": true}));
    let score = r["hits"][0]["_rankingScore"].as_f64().unwrap();
    assert_eq!(score, 65.0 / 66.0);
    assert!((score - 0.9848484848484848).abs() < 1e-15);
}

#[test]
fn placeholder_search_returns_every_document_in_internal_id_order() {
    let r = run(&movies_index(), json!({}));
    assert_eq!(
        ids(&r),
        vec!["287947", "299537", "522681", "166428", "450465"]
    );
    assert_eq!(r["query"], json!(""));
    assert_eq!(r["estimatedTotalHits"], json!(5));
    let r = run(&movies_index(), json!({"showRankingScore": true}));
    assert_eq!(r["hits"][0]["_rankingScore"], json!(1.0));
}

#[test]
fn placeholder_sort_orders_and_reports_sort_values() {
    let r = run(
        &movies_index(),
        json!({"sort": ["title:asc"], "showRankingScoreDetails": true}),
    );
    assert_eq!(
        ids(&r),
        vec!["299537", "522681", "450465", "166428", "287947"]
    );
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"],
        json!({"title:asc": {"order": 0, "value": "captain marvel"}})
    );
    let r = run(&movies_index(), json!({"sort": ["id:desc"]}));
    assert_eq!(
        ids(&r),
        vec!["522681", "450465", "299537", "287947", "166428"]
    );
}

#[test]
fn sort_puts_numbers_before_strings_and_missing_last_in_both_directions() {
    let settings = Settings {
        sortable_attributes: ["price".to_string()].into_iter().collect(),
        ..Settings::default()
    };
    let index = index_with(
        "p",
        settings,
        json!([{"id": 1, "price": "cheap"}, {"id": 2}, {"id": 3, "price": 10}, {"id": 4, "price": 2}, {"id": 5, "price": null}]),
    );
    assert_eq!(
        ids(&run(&index, json!({"sort": ["price:asc"]}))),
        vec!["4", "3", "1", "2", "5"]
    );
    assert_eq!(
        ids(&run(&index, json!({"sort": ["price:desc"]}))),
        vec!["3", "4", "1", "2", "5"]
    );
}

#[test]
fn sort_value_is_hidden_when_the_field_is_not_displayed() {
    let mut index = movies_index();
    index.settings.displayed_attributes = Some(vec!["title".into()]);
    let r = run(
        &index,
        json!({"sort": ["id:asc"], "showRankingScoreDetails": true}),
    );
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"],
        json!({"<hidden-rule-0>": {"order": 0, "value": "<hidden>"}})
    );
    assert_eq!(keys(&r["hits"][0]), vec!["title", "_rankingScoreDetails"]);
}

#[test]
fn sort_sits_between_relevancy_rules() {
    // Default rules: words, typo, proximity, attributeRank, sort, wordPosition, exactness.
    let settings = Settings {
        sortable_attributes: ["rank".to_string()].into_iter().collect(),
        ..Settings::default()
    };
    let index = index_with(
        "s",
        settings,
        json!([
            {"id": 1, "t": "red car", "rank": 1},
            {"id": 2, "t": "red big car", "rank": 3},
            {"id": 3, "t": "car red", "rank": 2},
            {"id": 4, "t": "red", "rank": 9}
        ]),
    );
    let r = run(
        &index,
        json!({"q": "red car", "sort": ["rank:desc"], "showRankingScoreDetails": true}),
    );
    // Full matches first; proximity 1 wins; 2 and 3 tie on proximity 2 (a reversed pair
    // costs one more), so sort decides before wordPosition would.
    assert_eq!(ids(&r), vec!["1", "2", "3", "4"]);
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"]["rank:desc"],
        json!({"order": 4, "value": 1.0})
    );
}

#[test]
fn matching_strategy_last_drops_words_from_the_end_and_ranks_full_matches_first() {
    let index = index_with(
        "w",
        Settings::default(),
        json!([
            {"id": 1, "t": "quick fox"},
            {"id": 2, "t": "quick brown fox"},
            {"id": 3, "t": "brown fox"},
            {"id": 4, "t": "slow turtle"}
        ]),
    );
    let r = run(
        &index,
        json!({"q": "quick brown", "showRankingScoreDetails": true}),
    );
    assert_eq!(ids(&r), vec!["2", "1"]);
    assert_eq!(
        r["hits"][1]["_rankingScoreDetails"]["words"]["matchingWords"],
        json!(1)
    );
    assert_eq!(
        ids(&run(
            &index,
            json!({"q": "quick brown", "matchingStrategy": "all"})
        )),
        vec!["2"]
    );
    let all = run(
        &index,
        json!({"q": "quick brown", "matchingStrategy": "all", "showRankingScoreDetails": true}),
    );
    assert!(all["hits"][0]["_rankingScoreDetails"]
        .get("words")
        .is_none());
}

#[test]
fn matching_strategy_frequency_drops_the_most_frequent_word_first() {
    let index = index_with(
        "f",
        Settings::default(),
        json!([
            {"id": 1, "t": "the common word"},
            {"id": 2, "t": "common again"},
            {"id": 3, "t": "rare thing"},
            {"id": 4, "t": "common"}
        ]),
    );
    // "common" is in three documents, "rare" in one: documents with "rare" survive.
    assert_eq!(
        ids(&run(
            &index,
            json!({"q": "common rare", "matchingStrategy": "frequency"})
        )),
        vec!["3"]
    );
    // `last` drops "rare"; the single-word "common" is an exact match, then word position.
    assert_eq!(
        ids(&run(&index, json!({"q": "common rare"}))),
        vec!["4", "2", "1"]
    );
}

#[test]
fn typos_follow_word_length_and_rank_below_exact_matches() {
    let index = index_with(
        "t",
        Settings::default(),
        json!([{"id": 1, "t": "batmen"}, {"id": 2, "t": "batman"}, {"id": 3, "t": "vatman"}, {"id": 4, "t": "cat"}]),
    );
    let r = run(
        &index,
        json!({"q": "batman ", "showRankingScoreDetails": true}),
    );
    assert_eq!(
        ids(&r),
        vec!["2", "1"],
        "a first-letter typo costs two, over the one-typo budget"
    );
    assert_eq!(
        r["hits"][1]["_rankingScoreDetails"]["typo"],
        json!({"order": 1, "typoCount": 1, "maxTypoCount": 1, "score": 0.5})
    );
    assert_eq!(
        ids(&run(&index, json!({"q": "cot "}))),
        Vec::<String>::new(),
        "short words allow no typo"
    );
}

#[test]
fn typo_tolerance_settings_are_respected() {
    let mut settings = Settings::default();
    settings
        .typo_tolerance
        .disable_on_words
        .insert("batman".into());
    let docs = json!([{"id": 1, "t": "batmen", "u": "batmen"}]);
    let index = index_with("t", settings.clone(), docs.clone());
    assert!(ids(&run(&index, json!({"q": "batman "}))).is_empty());
    settings.typo_tolerance.disable_on_words.clear();
    settings.typo_tolerance.enabled = false;
    assert!(ids(&run(
        &index_with("t", settings.clone(), docs.clone()),
        json!({"q": "batman "})
    ))
    .is_empty());
    settings.typo_tolerance.enabled = true;
    settings
        .typo_tolerance
        .disable_on_attributes
        .insert("t".into());
    let r = run(
        &index_with("t", settings, docs),
        json!({"q": "batman ", "showMatchesPosition": true}),
    );
    assert_eq!(
        r["hits"][0]["_matchesPosition"],
        json!({"u": [{"start": 0, "length": 6}]})
    );
}

#[test]
fn last_word_is_a_prefix_unless_prefix_search_is_disabled() {
    let docs = json!([{"id": 1, "t": "batman returns"}]);
    let index = index_with("p", Settings::default(), docs.clone());
    assert_eq!(ids(&run(&index, json!({"q": "bat"}))), vec!["1"]);
    assert!(ids(&run(&index, json!({"q": "bat "}))).is_empty());
    let settings = Settings {
        prefix_search: "disabled".into(),
        ..Settings::default()
    };
    assert!(ids(&run(&index_with("p", settings, docs), json!({"q": "bat"}))).is_empty());
}

#[test]
fn stop_words_synonyms_and_negative_words() {
    let mut settings = Settings::default();
    settings.stop_words.insert("the".into());
    settings
        .synonyms
        .insert("car".into(), vec!["automobile".into()]);
    let index = index_with(
        "s",
        settings,
        json!([{"id": 1, "t": "an automobile"}, {"id": 2, "t": "the red car"}, {"id": 3, "t": "the blue car"}]),
    );
    // "the" is dropped but keeps its query position, so "car" is expected at position 1,
    // where the synonym "automobile" sits.
    assert_eq!(
        ids(&run(&index, json!({"q": "the car"}))),
        vec!["1", "2", "3"]
    );
    assert_eq!(ids(&run(&index, json!({"q": "car -red"}))), vec!["1", "3"]);
    assert_eq!(ids(&run(&index, json!({"q": "-red"}))), vec!["1", "3"]);
}

#[test]
fn multi_word_synonyms_match_as_phrases() {
    let mut settings = Settings::default();
    settings
        .synonyms
        .insert("nyc".into(), vec!["New York".into()]);
    let index = index_with(
        "s",
        settings,
        json!([{"id": 1, "t": "I love New York"}, {"id": 2, "t": "York is new"}, {"id": 3, "t": "nyc"}]),
    );
    let r = run(
        &index,
        json!({"q": "nyc ", "attributesToHighlight": ["t"], "showRankingScoreDetails": true}),
    );
    assert_eq!(ids(&r), vec!["3", "1"]);
    assert_eq!(
        r["hits"][1]["_formatted"]["t"],
        json!("I love <em>New</em> <em>York</em>")
    );
    assert_eq!(
        r["hits"][1]["_rankingScoreDetails"]["exactness"]["matchingWords"],
        json!(0)
    );
}

#[test]
fn searchable_attributes_order_drives_attribute_rank_and_restricts_matching() {
    let settings = Settings {
        searchable_attributes: Some(vec!["title".into(), "overview".into()]),
        ..Settings::default()
    };
    let index = index_with(
        "a",
        settings,
        json!([
            {"id": 1, "title": "nothing", "overview": "dragon"},
            {"id": 2, "title": "dragon", "overview": "nothing"},
            {"id": 3, "title": "x", "other": "dragon"}
        ]),
    );
    let r = run(
        &index,
        json!({"q": "dragon", "showRankingScoreDetails": true}),
    );
    assert_eq!(ids(&r), vec!["2", "1"]);
    assert_eq!(
        r["hits"][1]["_rankingScoreDetails"]["attributeRank"]["score"],
        json!(0.5)
    );
    let r = run(
        &index,
        json!({"q": "dragon", "attributesToSearchOn": ["overview"]}),
    );
    assert_eq!(ids(&r), vec!["1"]);
    let e = search(
        &index,
        &json!({"q": "x", "attributesToSearchOn": ["other"]}),
        None,
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_search_attributes_to_search_on");
    assert_eq!(
        e.message,
        "Index `a`: Attribute `other` is not searchable. Available searchable attributes are: `title, overview`."
    );
}

#[test]
fn exactness_distinguishes_exact_match_and_start() {
    let index = index_with(
        "e",
        Settings::default(),
        json!([{"id": 1, "t": "escape room tour"}, {"id": 2, "t": "escape room"}, {"id": 3, "t": "the escape room"}]),
    );
    let r = run(
        &index,
        json!({"q": "escape room", "showRankingScoreDetails": true}),
    );
    assert_eq!(ids(&r), vec!["2", "1", "3"]);
    let types: Vec<Value> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_rankingScoreDetails"]["exactness"]["matchType"].clone())
        .collect();
    assert_eq!(
        types,
        vec![
            json!("exactMatch"),
            json!("matchesStart"),
            json!("noExactMatch")
        ]
    );
}

#[test]
fn document_stop_words_keep_positions_but_are_not_indexed() {
    let mut settings = Settings::default();
    settings.stop_words.insert("the".into());
    let index = index_with("s", settings, json!([{"id": 1, "t": "The Matrix"}]));
    let exactness = |q: &str| {
        run(&index, json!({"q": q, "showRankingScoreDetails": true}))["hits"][0]
            ["_rankingScoreDetails"]["exactness"]["matchType"]
            .clone()
    };
    // "the" is not counted in the field's words, and keeps "matrix" at position 1.
    assert_eq!(exactness("the matrix"), json!("exactMatch"));
    assert_eq!(exactness("matrix"), json!("noExactMatch"));
    let r = run(
        &index,
        json!({"q": "the matrix", "attributesToHighlight": ["t"]}),
    );
    assert_eq!(
        r["hits"][0]["_formatted"]["t"],
        json!("The <em>Matrix</em>")
    );
}

#[test]
fn phrase_search_requires_consecutive_words() {
    let index = index_with(
        "p",
        Settings::default(),
        json!([{"id": 1, "t": "the big red cat"}, {"id": 2, "t": "big cat and red"}, {"id": 3, "t": "red cat"}]),
    );
    let r = run(
        &index,
        json!({"q": "\"red cat\"", "attributesToHighlight": ["t"]}),
    );
    assert_eq!(ids(&r), vec!["3", "1"]);
    assert_eq!(
        r["hits"][0]["_formatted"]["t"],
        json!("<em>red</em> <em>cat</em>")
    );
    let r = run(
        &index,
        json!({"q": "\"red cat\"", "showRankingScoreDetails": true}),
    );
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"]["exactness"]["matchType"],
        json!("exactMatch")
    );
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"]["typo"]["maxTypoCount"],
        json!(0)
    );
    assert_eq!(
        ids(&run(&index, json!({"q": "\"cat red\""}))),
        Vec::<String>::new()
    );
}

#[test]
fn geo_sort_orders_by_distance_and_reports_it() {
    let settings = Settings {
        sortable_attributes: ["_geo".to_string()].into_iter().collect(),
        filterable_attributes: vec!["_geo".into()],
        ..Settings::default()
    };
    let index = index_with(
        "g",
        settings,
        json!([
            {"id": 1, "_geo": {"lat": 48.8566, "lng": 2.3522}},
            {"id": 2, "_geo": {"lat": 45.4642, "lng": 9.19}},
            {"id": 3}
        ]),
    );
    let r = run(
        &index,
        json!({"sort": ["_geoPoint(45.4642, 9.19):asc"], "showRankingScoreDetails": true}),
    );
    assert_eq!(ids(&r), vec!["2", "1", "3"]);
    assert_eq!(r["hits"][0]["_geoDistance"], json!(0));
    let paris = r["hits"][1]["_geoDistance"].as_u64().unwrap();
    assert!(
        (630_000..650_000).contains(&paris),
        "Milan-Paris is about 640 km, got {paris}"
    );
    assert_eq!(
        keys(&r["hits"][0]["_rankingScoreDetails"]),
        vec!["_geoPoint(45.4642, 9.19):asc"]
    );
    assert!(r["hits"][2].get("_geoDistance").is_none());
    let r = run(&index, json!({"filter": "_geoRadius(45.4642, 9.19, 1000)"}));
    assert_eq!(ids(&r), vec!["2"]);
}

#[test]
fn matches_inside_arrays_report_their_indices() {
    let index = index_with(
        "a",
        Settings::default(),
        json!([{"id": 1, "tags": ["blue sky", "red sky"]}]),
    );
    let r = run(&index, json!({"q": "red", "showMatchesPosition": true}));
    assert_eq!(
        r["hits"][0]["_matchesPosition"],
        json!({"tags": [{"start": 0, "length": 3, "indices": [1]}]})
    );
}

#[test]
fn filter_and_tenant_filter_are_anded() {
    let index = movies_index();
    let r = search(
        &index,
        &json!({"filter": "color = blue"}),
        Some(&json!("color = red")),
    )
    .unwrap();
    assert_eq!(ids(&r), vec!["450465"]);
    let r = run(
        &index,
        json!({"filter": ["color = yellow", ["id = 299537", "id = 522681"]]}),
    );
    assert_eq!(ids(&r), vec!["299537", "522681"]);
}

#[test]
fn unfilterable_filter_and_facet_and_distinct_errors() {
    let mut index = movies_index();
    index.settings.filterable_attributes = vec!["title".into()];
    let e = search(&index, &json!({"filter": "\"many\" = \"Glass\""}), None).unwrap_err();
    assert_eq!(e.code, "invalid_search_filter");
    assert_eq!(
        e.message,
        "Index `movies`: Attribute `many` is not filterable. Available filterable attribute patterns are: `title`.\n2:6 \"many\" = \"Glass\""
    );
    let e = search(&index, &json!({"facets": ["doggo"]}), None).unwrap_err();
    assert_eq!(e.code, "invalid_search_facets");
    let e = search(&index, &json!({"distinct": "color"}), None).unwrap_err();
    assert_eq!(e.code, "invalid_search_distinct");
    assert_eq!(
        e.message,
        "Index `movies`: Attribute `color` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `title`."
    );
    let e = search(&index, &json!({"sort": ["color:asc"]}), None).unwrap_err();
    assert_eq!(e.code, "invalid_search_sort");
}

#[test]
fn vectors_and_hybrid_are_rejected_with_meilisearch_codes() {
    let index = movies_index();
    let e = search(&index, &json!({"vector": [1.0, 2.0]}), None).unwrap_err();
    assert_eq!(e.code, "missing_search_hybrid");
    let e = search(
        &index,
        &json!({"q": "a", "hybrid": {"embedder": "default"}}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "invalid_search_embedder",
            "Cannot find embedder with name `default`."
        )
    );
    // A semantic ratio of 0 is a keyword search.
    assert!(search(
        &index,
        &json!({"q": "a", "hybrid": {"embedder": "x", "semanticRatio": 0.0}}),
        None
    )
    .is_ok());
}

/// The corpus and answers of real Meilisearch 1.50 with a `userProvided` embedder.
fn vector_index() -> IndexData {
    let mut index = IndexData::new("v", Some("id".into()), "now");
    index.settings.embedders = [("emb".to_owned(), 3)].into();
    index.settings.filterable_attributes = vec!["genre".into()];
    index.settings.sortable_attributes = ["price".to_owned()].into();
    index.settings.ranking_rules.push("price:asc".into());
    let docs = json!([
        {"id": 1, "genre": "x", "price": 5, "_vectors": {"emb": [1, 0, 0]}},
        {"id": 2, "genre": "y", "price": 3, "_vectors": {"emb": [0.9, 0.1, 0]}},
        {"id": 3, "genre": "x", "price": 1, "_vectors": {"emb": [0, 1, 0]}},
        {"id": 4, "genre": "x", "price": 9, "_vectors": {"emb": null}},
        {"id": "5", "genre": "y", "price": 2, "_vectors": {"emb": [[0.5, 0.5, 0], [0, 0, 1]]}},
        {"id": 6, "_vectors": {"emb": null}},
        {"id": 7, "price": 4, "_vectors": {"emb": [-1, 0, 0]}}
    ]);
    for d in docs.as_array().unwrap() {
        let id = d["id"]
            .as_str()
            .map_or_else(|| d["id"].to_string(), str::to_owned);
        index.put_document(id, d.as_object().unwrap().clone());
    }
    index
}

#[test]
fn semantic_search_ranks_by_similarity_then_later_rules_like_meilisearch() {
    let index = vector_index();
    let r = run(
        &index,
        json!({"vector": [1, 0, 0], "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "showRankingScore": true, "showRankingScoreDetails": true}),
    );
    let ids: Vec<String> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].to_string())
        .collect();
    // Real Meilisearch: 1, 2, "5", 3, 7 by similarity, then 4 and 6 (no vectors) by price.
    assert_eq!(ids, ["1", "2", "\"5\"", "3", "7", "4", "6"]);
    assert_eq!(r["estimatedTotalHits"], json!(7));
    assert_eq!(r["semanticHitCount"], json!(7));
    assert_eq!(
        r["hits"][3]["_rankingScoreDetails"],
        json!({"vectorSort": {"order": 0, "similarity": 0.5}, "price:asc": {"order": 1, "value": 1.0}})
    );
    assert_eq!(
        r["hits"][5]["_rankingScoreDetails"]["vectorSort"],
        json!({"order": 0, "similarity": null})
    );
    assert_eq!(r["hits"][5]["_rankingScore"], json!(0.0));
    let r = run(
        &index,
        json!({"vector": [1, 0, 0], "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "limit": 2, "filter": "genre = x", "retrieveVectors": true}),
    );
    assert_eq!(r["estimatedTotalHits"], json!(3));
    assert_eq!(
        r["hits"][1]["_vectors"],
        json!({"emb": {"embeddings": [[0.0, 1.0, 0.0]], "regenerate": false}})
    );
    let e = search(
        &index,
        &json!({"vector": [1, 0], "hybrid": {"embedder": "emb", "semanticRatio": 1.0}}),
        None,
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_vector_dimensions");
}

#[test]
fn ranking_score_threshold_drops_hits_and_totals() {
    let index = movies_index();
    let all = run(
        &index,
        json!({"q": "escape room", "showRankingScore": true}),
    );
    assert_eq!(all["estimatedTotalHits"], json!(1));
    let r = run(
        &index,
        json!({"q": "escape room tour", "rankingScoreThreshold": 0.9}),
    );
    assert_eq!(r["estimatedTotalHits"], json!(0));
    assert_eq!(r["hits"], json!([]));
}

#[test]
fn distinct_keeps_the_best_hit_per_value_and_counts_distinct_hits() {
    let settings = Settings {
        filterable_attributes: vec!["sku".into()],
        distinct_attribute: Some("sku".into()),
        ..Settings::default()
    };
    let index = index_with(
        "d",
        settings,
        json!([{"id": 1, "sku": "a", "t": "shirt"}, {"id": 2, "sku": "a", "t": "red shirt"}, {"id": 3, "sku": "b", "t": "shirt"}, {"id": 4, "t": "shirt"}, {"id": 5, "t": "shirt"}]),
    );
    let r = run(&index, json!({"q": "shirt red"}));
    assert_eq!(ids(&r), vec!["2", "3", "4", "5"]);
    assert_eq!(r["estimatedTotalHits"], json!(4));
    let r = run(&index, json!({"distinct": "sku"}));
    assert_eq!(ids(&r), vec!["1", "3", "4", "5"]);
}

#[test]
fn page_pagination_and_max_total_hits_capping() {
    let mut index = movies_index();
    let r = run(&index, json!({"hitsPerPage": 2, "page": 2}));
    assert_eq!(
        keys(&r),
        vec![
            "hits",
            "query",
            "processingTimeMs",
            "hitsPerPage",
            "page",
            "totalPages",
            "totalHits",
            "requestUid"
        ]
    );
    assert_eq!(ids(&r), vec!["522681", "166428"]);
    assert_eq!(
        (r["totalPages"].clone(), r["totalHits"].clone()),
        (json!(3), json!(5))
    );
    assert_eq!(run(&index, json!({"page": 0}))["hits"], json!([]));
    // As Meilisearch 1.50: the cap limits the hits returned, not the totals, and the client's
    // window is echoed as sent.
    index.settings.max_total_hits = 3;
    let r = run(&index, json!({"offset": 2, "limit": 5}));
    assert_eq!(
        (r["limit"].clone(), r["estimatedTotalHits"].clone()),
        (json!(5), json!(5))
    );
    assert_eq!(ids(&r), vec!["522681"]);
    let r = run(&index, json!({"offset": 10}));
    assert_eq!(
        (r["offset"].clone(), r["limit"].clone(), r["hits"].clone()),
        (json!(10), json!(20), json!([]))
    );
    let r = run(&index, json!({"hitsPerPage": 2, "page": 2}));
    assert_eq!(ids(&r), vec!["522681"]);
    assert_eq!(
        (r["totalPages"].clone(), r["totalHits"].clone()),
        (json!(3), json!(5))
    );
}

#[test]
fn a_count_only_search_counts_matches_before_distinct() {
    let settings = Settings {
        filterable_attributes: vec!["sku".into()],
        distinct_attribute: Some("sku".into()),
        ..Settings::default()
    };
    let index = index_with(
        "d",
        settings,
        json!([{"id": 1, "sku": "a"}, {"id": 2, "sku": "a"}, {"id": 3, "sku": "b"}]),
    );
    // Meilisearch ranks nothing for an empty window at offset 0, so applies no distinct.
    let r = run(&index, json!({"limit": 0, "facets": ["sku"]}));
    assert_eq!(r["estimatedTotalHits"], json!(3));
    assert_eq!(r["facetDistribution"], json!({"sku": {"a": 2, "b": 1}}));
    assert_eq!(
        run(&index, json!({"offset": 1, "limit": 0}))["estimatedTotalHits"],
        json!(2)
    );
    let r = run(&index, json!({"page": 1, "hitsPerPage": 0}));
    assert_eq!(r["totalHits"], json!(2));
}

#[test]
fn facets_count_matching_documents_in_meilisearch_order() {
    let index = movies_index();
    let r = run(
        &index,
        json!({"q": "", "facets": ["color", "id"], "filter": "color = blue"}),
    );
    assert_eq!(
        keys(&r),
        vec![
            "hits",
            "query",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "facetDistribution",
            "facetStats",
            "requestUid"
        ]
    );
    assert_eq!(
        r["facetDistribution"]["color"],
        json!({"blue": 3, "green": 1, "red": 1, "yellow": 1})
    );
    assert_eq!(r["facetStats"], json!({}));
    assert!(run(&index, json!({})).get("facetDistribution").is_none());

    // Every field is filterable through an object rule `{"attributePatterns": ["*"]}` (the
    // string rule `"*"` names only a field called `*`).
    let mut index = index_with(
        "n",
        Settings {
            filterable_rules: Some(vec![FilterableRule::Patterns {
                patterns: vec!["*".into()],
                features: FilterFeatures::default(),
            }]),
            ..Settings::default()
        },
        json!([{"id": 1, "n": 10, "g": "B"}, {"id": 2, "n": 2.5, "g": "b"}, {"id": 3, "n": 10, "g": "a"}]),
    );
    let r = run(&index, json!({"facets": ["*"]}));
    assert_eq!(r["facetDistribution"]["n"], json!({"2.5": 1, "10": 2}));
    assert_eq!(r["facetDistribution"]["g"], json!({"a": 1, "B": 2}));
    assert_eq!(r["facetStats"]["n"], json!({"min": 2.5, "max": 10.0}));
    index
        .settings
        .sort_facet_values_by
        .insert("g".into(), FacetOrder::Count);
    index.settings.max_values_per_facet = 1;
    let r = run(&index, json!({"facets": ["g"]}));
    assert_eq!(r["facetDistribution"], json!({"g": {"B": 2}}));
}

#[test]
fn highlight_crop_and_matches_position() {
    let index = index_with(
        "h",
        Settings::default(),
        json!([{"id": 1, "title": "The Dark Knight", "overview": "one two three four five six seven knight eight nine ten eleven"}]),
    );
    let r = run(
        &index,
        json!({
            "q": "knight",
            "attributesToHighlight": ["title"],
            "attributesToCrop": ["overview:4"],
            "showMatchesPosition": true,
            "attributesToRetrieve": ["id"]
        }),
    );
    let hit = &r["hits"][0];
    assert_eq!(keys(hit), vec!["id", "_formatted", "_matchesPosition"]);
    assert_eq!(
        hit["_formatted"]["title"],
        json!("The Dark <em>Knight</em>")
    );
    assert_eq!(
        hit["_formatted"]["overview"],
        json!("…six seven knight eight…")
    );
    assert_eq!(hit["_formatted"]["id"], json!("1"));
    assert_eq!(
        hit["_matchesPosition"],
        json!({"title": [{"start": 9, "length": 6}], "overview": [{"start": 34, "length": 6}]})
    );
}

#[test]
fn unknown_and_mistyped_parameters_are_rejected() {
    let index = movies_index();
    let e = search(&index, &json!({"qq": "x"}), None).unwrap_err();
    assert_eq!(e.code, "bad_request");
    let e = search(&index, &json!({"limit": "x"}), None).unwrap_err();
    assert_eq!(e.code, "invalid_search_limit");
    let e = search(&index, &json!({"filter": true}), None).unwrap_err();
    assert_eq!(e.code, "invalid_search_filter");
}

#[test]
fn nested_fields_are_searched_filtered_and_sorted() {
    let settings = Settings {
        filterable_attributes: vec!["author.name".into()],
        sortable_attributes: ["author.age".to_string()].into_iter().collect(),
        ..Settings::default()
    };
    let index = index_with(
        "n",
        settings,
        json!([
            {"id": 1, "author": {"name": "Ann", "age": 50}, "t": "book"},
            {"id": 2, "author": {"name": "Bob", "age": 30}, "t": "book"}
        ]),
    );
    assert_eq!(ids(&run(&index, json!({"q": "bob"}))), vec!["2"]);
    assert_eq!(
        ids(&run(&index, json!({"filter": "author.name = ann"}))),
        vec!["1"]
    );
    assert_eq!(
        ids(&run(
            &index,
            json!({"q": "book", "sort": ["author.age:asc"]})
        )),
        vec!["2", "1"]
    );
}

#[test]
fn corpus_movies_fixture_is_the_meilisearch_one() {
    assert_eq!(movies().as_array().map(Vec::len), Some(5));
}

#[test]
fn performance_details_only_when_asked() {
    let index = movies_index();
    let asked = run(
        &index,
        json!({"q": "dragon", "showPerformanceDetails": true}),
    );
    let details = asked["performanceDetails"]
        .as_object()
        .expect("a breakdown");
    assert!(
        details["search"]
            .as_str()
            .is_some_and(|t| t.ends_with("ms")),
        "{asked}"
    );
    let keys: Vec<&String> = asked.as_object().unwrap().keys().collect();
    assert_eq!(keys.last().map(|k| k.as_str()), Some("performanceDetails"));
    let plain = run(&index, json!({"q": "dragon"}));
    assert!(plain.get("performanceDetails").is_none());
}

/// Observed on a real Meilisearch 1.50.0: `facets: []` leaves `facetDistribution` and
/// `facetStats` out.
#[test]
fn empty_facets_leave_the_distribution_out() {
    let r = run(&movies_index(), json!({"facets": []}));
    assert!(r.get("facetDistribution").is_none());
    assert!(r.get("facetStats").is_none());
}

/// Observed on a real Meilisearch 1.50.0: filters and `distinct` use the same rules as facets:
/// a string rule is taken literally (`*`, `gen*` name only themselves) and covers nested
/// fields; the first matching rule decides, even when it does not enable filtering.
#[test]
fn filters_and_distinct_follow_the_filterable_rules() {
    let mut index = index_with(
        "i",
        Settings {
            filterable_attributes: vec!["*".into(), "gen*".into(), "a".into()],
            ..Settings::default()
        },
        json!([{"id": 1, "genre": "x", "a": {"b": 1}}]),
    );
    let e = search(&index, &json!({"filter": "\"genre\" = \"x\""}), None).unwrap_err();
    assert_eq!(
        e.message,
        "Index `i`: Attribute `genre` is not filterable. Available filterable attribute patterns are: `*`, `a`, `gen*`.\n2:7 \"genre\" = \"x\""
    );
    assert_eq!(ids(&run(&index, json!({"filter": "a.b = 1"}))), vec!["1"]);

    let off = FilterFeatures {
        facet_search: true,
        equality: false,
        comparison: false,
    };
    index.settings.filterable_rules = Some(vec![
        FilterableRule::Patterns {
            patterns: vec!["genre".into()],
            features: off,
        },
        FilterableRule::Field("genre".into()),
        FilterableRule::Field("a".into()),
    ]);
    let e = search(&index, &json!({"distinct": "genre"}), None).unwrap_err();
    assert_eq!(e.code, "invalid_search_distinct");
    assert_eq!(
        e.message,
        "Index `i`: Attribute `genre` is not filterable and thus, cannot be used as distinct attribute. Note: this attribute matches rule #0 in filterableAttributes, but this rule does not enable filtering.\nHint: enable filtering in rule #0 by adding appropriate filter features.\nHint: prepend another rule matching genre with filter features before rule #0"
    );
    index.settings.displayed_attributes = Some(vec!["id".into(), "genre".into()]);
    let e = search(&index, &json!({"distinct": "nope"}), None).unwrap_err();
    assert_eq!(
        e.message,
        "Index `i`: Attribute `nope` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `genre, <..hidden-attributes>`."
    );
}
