//! Settings routes take effect in search; search routes reach the engine.

mod common;

use common::{run, start, succeeded};
use serde_json::{json, Value};

async fn movies(c: &miroir_testkit::Client) {
    succeeded(
        c,
        c.post(
            "/indexes/movies/documents",
            json!([
                {"id": 1, "title": "Alien", "genre": "scifi", "year": 1979},
                {"id": 2, "title": "Aliens", "genre": "scifi", "year": 1986},
                {"id": 3, "title": "Amelie", "genre": "romance", "year": 2001},
            ]),
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn default_settings_have_meilisearch_shape() {
    let (_node, c) = start().await;
    movies(&c).await;
    let (status, settings) = c.get("/indexes/movies/settings").await;
    assert_eq!(status, 200);
    let keys: Vec<&String> = settings.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "displayedAttributes",
            "searchableAttributes",
            "filterableAttributes",
            "sortableAttributes",
            "rankingRules",
            "stopWords",
            "nonSeparatorTokens",
            "separatorTokens",
            "dictionary",
            "synonyms",
            "distinctAttribute",
            "proximityPrecision",
            "typoTolerance",
            "faceting",
            "pagination",
            "embedders",
            "searchCutoffMs",
            "localizedAttributes",
            "facetSearch",
            "prefixSearch"
        ]
    );
    assert_eq!(settings["pagination"], json!({"maxTotalHits": 1000}));
    let (_, rules) = c.get("/indexes/movies/settings/ranking-rules").await;
    assert_eq!(
        rules,
        json!([
            "words",
            "typo",
            "proximity",
            "attributeRank",
            "sort",
            "wordPosition",
            "exactness"
        ])
    );
}

#[tokio::test]
async fn filterable_attributes_make_filters_work() {
    let (_node, c) = start().await;
    movies(&c).await;
    let (status, body) = c
        .post("/indexes/movies/search", json!({"filter": "genre = scifi"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_search_filter")),
        "{body}"
    );

    let task = succeeded(
        &c,
        c.patch(
            "/indexes/movies/settings",
            json!({"filterableAttributes": ["genre"], "sortableAttributes": ["year"]}),
        )
        .await,
    )
    .await;
    assert_eq!(task["type"], "settingsUpdate");
    assert_eq!(
        task["details"],
        json!({"filterableAttributes": ["genre"], "sortableAttributes": ["year"]})
    );
    let (status, body) = c
        .post(
            "/indexes/movies/search",
            json!({"filter": "genre = scifi", "sort": ["year:desc"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<Value> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].clone())
        .collect();
    assert_eq!(ids, [json!(2), json!(1)]);

    let (status, body) = c
        .get("/indexes/movies/search?q=amelie&attributesToRetrieve=title")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hits"], json!([{"title": "Amelie"}]));

    let (status, body) = c
        .post(
            "/indexes/movies/facet-search",
            json!({"facetName": "genre", "facetQuery": "sci"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["facetHits"][0], json!({"value": "scifi", "count": 2}));

    let (status, body) = c
        .post(
            "/multi-search",
            json!({"queries": [{"indexUid": "movies", "q": "alien"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["indexUid"], "movies");
}

#[tokio::test]
async fn displayed_attributes_distinct_and_max_total_hits_take_effect() {
    let (_node, c) = start().await;
    movies(&c).await;
    succeeded(
        &c,
        c.patch(
            "/indexes/movies/settings",
            json!({
                "displayedAttributes": ["id", "title"],
                "distinctAttribute": "genre",
                "pagination": {"maxTotalHits": 1},
            }),
        )
        .await,
    )
    .await;
    let (_, body) = c.post("/indexes/movies/search", json!({"q": ""})).await;
    assert_eq!(body["hits"].as_array().unwrap().len(), 1, "{body}");
    assert!(body["hits"][0].get("genre").is_none(), "{body}");
    // Meilisearch 1.50's documents routes ignore displayedAttributes (checked on a real node).
    let (_, doc) = c.get("/indexes/movies/documents/3").await;
    assert_eq!(doc["title"], json!("Amelie"));
    assert!(doc.get("genre").is_some(), "{doc}");

    let reset = succeeded(
        &c,
        c.delete("/indexes/movies/settings/displayed-attributes")
            .await,
    )
    .await;
    assert_eq!(reset["details"], json!({"displayedAttributes": null}));
    assert_eq!(
        c.get("/indexes/movies/settings/displayed-attributes")
            .await
            .1,
        json!(["*"])
    );
}

#[tokio::test]
async fn settings_validation_and_implicit_index_creation() {
    let (_node, c) = start().await;
    let (status, body) = c
        .put("/indexes/x/settings/ranking-rules", json!(["nope"]))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_settings_ranking_rules"))
    );
    let (status, body) = c
        .patch(
            "/indexes/x/settings",
            json!({"typoTolerance": {"enabled": "yes"}}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_settings_typo_tolerance"))
    );
    let (status, body) = c.patch("/indexes/x/settings", json!({"chat": {}})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("feature_not_enabled"))
    );
    let (status, _) = c.put("/indexes/x/settings/typo-tolerance", json!({})).await;
    assert_eq!(status, 405, "typo-tolerance is updated with PATCH");

    succeeded(
        &c,
        c.put(
            "/indexes/fresh/settings/stop-words",
            json!(["the", "a", "the"]),
        )
        .await,
    )
    .await;
    assert_eq!(
        c.get("/indexes/fresh/settings/stop-words").await.1,
        json!(["a", "the"])
    );
    succeeded(
        &c,
        c.patch(
            "/indexes/fresh/settings/embedders",
            json!({"manual": {"source": "userProvided", "dimensions": 3}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        c.get("/indexes/fresh/settings/embedders").await.1["manual"]["dimensions"],
        3,
        "kept verbatim"
    );
    let (_, features) = c
        .patch("/experimental-features", json!({"chatCompletions": true}))
        .await;
    assert_eq!(features["chatCompletions"], true);
    let t = run(
        &c,
        c.patch(
            "/indexes/fresh/settings",
            json!({"chat": {"description": "d"}}),
        )
        .await,
    )
    .await;
    assert_eq!(t["status"], "succeeded");
    assert_eq!(
        c.get("/indexes/fresh/settings").await.1["chat"]["description"],
        "d"
    );
}

/// Every sub-route answers GET with its slice of `/settings`, and accepts an update with
/// Meilisearch's verb (and only that verb).
#[tokio::test]
async fn every_settings_sub_route_reads_and_updates_with_its_verb() {
    use reqwest::Method;
    let (_node, c) = start().await;
    movies(&c).await;
    c.patch(
        "/experimental-features",
        json!({"chatCompletions": true, "foreignKeys": true}),
    )
    .await;
    let (_, all) = c.get("/indexes/movies/settings").await;
    let routes: &[(&str, &str, Method, Value)] = &[
        (
            "filterable-attributes",
            "filterableAttributes",
            Method::PUT,
            json!(["genre"]),
        ),
        (
            "sortable-attributes",
            "sortableAttributes",
            Method::PUT,
            json!(["year"]),
        ),
        (
            "displayed-attributes",
            "displayedAttributes",
            Method::PUT,
            json!(["title"]),
        ),
        (
            "typo-tolerance",
            "typoTolerance",
            Method::PATCH,
            json!({"enabled": false}),
        ),
        (
            "searchable-attributes",
            "searchableAttributes",
            Method::PUT,
            json!(["title"]),
        ),
        ("stop-words", "stopWords", Method::PUT, json!(["the"])),
        (
            "non-separator-tokens",
            "nonSeparatorTokens",
            Method::PUT,
            json!(["@"]),
        ),
        (
            "separator-tokens",
            "separatorTokens",
            Method::PUT,
            json!(["|"]),
        ),
        ("dictionary", "dictionary", Method::PUT, json!(["J. R. R."])),
        (
            "synonyms",
            "synonyms",
            Method::PUT,
            json!({"alien": ["xeno"]}),
        ),
        (
            "distinct-attribute",
            "distinctAttribute",
            Method::PUT,
            json!("genre"),
        ),
        (
            "proximity-precision",
            "proximityPrecision",
            Method::PUT,
            json!("byAttribute"),
        ),
        (
            "localized-attributes",
            "localizedAttributes",
            Method::PUT,
            json!([{"attributePatterns": ["title"], "locales": ["eng"]}]),
        ),
        (
            "ranking-rules",
            "rankingRules",
            Method::PUT,
            json!(["words", "year:desc"]),
        ),
        (
            "faceting",
            "faceting",
            Method::PATCH,
            json!({"maxValuesPerFacet": 5}),
        ),
        (
            "pagination",
            "pagination",
            Method::PATCH,
            json!({"maxTotalHits": 50}),
        ),
        (
            "embedders",
            "embedders",
            Method::PATCH,
            json!({"e": {"source": "userProvided", "dimensions": 2}}),
        ),
        (
            "search-cutoff-ms",
            "searchCutoffMs",
            Method::PUT,
            json!(150),
        ),
        ("facet-search", "facetSearch", Method::PUT, json!(false)),
        (
            "prefix-search",
            "prefixSearch",
            Method::PUT,
            json!("disabled"),
        ),
        (
            "chat",
            "chat",
            Method::PATCH,
            json!({"description": "movies"}),
        ),
        ("foreign-keys", "foreignKeys", Method::PUT, json!([])),
    ];
    for (route, key, verb, value) in routes {
        let path = format!("/indexes/movies/settings/{route}");
        let (status, current) = c.get(&path).await;
        assert_eq!(status, 200, "{route}");
        assert_eq!(
            &current,
            all.get(*key).unwrap_or(&current),
            "{route} GET equals its slice of /settings"
        );
        let wrong = if *verb == Method::PUT {
            Method::PATCH
        } else {
            Method::PUT
        };
        assert_eq!(
            c.send(wrong, &path, Some(value.clone())).await.0,
            405,
            "{route}"
        );
        let task = succeeded(&c, c.send(verb.clone(), &path, Some(value.clone())).await).await;
        assert_eq!(
            task["details"][*key], *value,
            "{route} details carry the payload"
        );
    }
    let (_, after) = c.get("/indexes/movies/settings").await;
    assert_eq!(after["typoTolerance"]["enabled"], false);
    assert_eq!(
        after["typoTolerance"]["minWordSizeForTypos"]["oneTypo"], 5,
        "PATCH keeps the rest"
    );
    assert_eq!(
        after["faceting"]["sortFacetValuesBy"],
        json!({"*": "alpha"})
    );
    assert_eq!(after["searchCutoffMs"], 150);
    assert_eq!(after["chat"]["description"], "movies");
    let reset = succeeded(&c, c.delete("/indexes/movies/settings").await).await;
    assert!(reset["details"]
        .as_object()
        .unwrap()
        .values()
        .all(Value::is_null));
    let (_, cleared) = c.get("/indexes/movies/settings").await;
    assert_eq!(cleared, all, "DELETE /settings restores every default");
}

/// A `userProvided` embedder, as real Meilisearch 1.50 answers it on the same documents:
/// additions need `_vectors`, `/similar` (GET and POST) and semantic search rank by cosine
/// similarity, documents come back with their embeddings only when asked.
#[tokio::test]
async fn user_provided_embeddings_drive_similar_and_semantic_search() {
    let (_node, c) = start().await;
    succeeded(
        &c,
        c.patch(
            "/indexes/v/settings",
            json!({"embedders": {"emb": {"source": "userProvided", "dimensions": 3}}}),
        )
        .await,
    )
    .await;
    let failed = run(
        &c,
        c.post(
            "/indexes/v/documents",
            json!([{"id": 9, "title": "no vectors"}]),
        )
        .await,
    )
    .await;
    assert_eq!(
        failed["error"]["code"], "vector_embedding_error",
        "{failed}"
    );
    succeeded(
        &c,
        c.post(
            "/indexes/v/documents",
            json!([
                {"id": 1, "_vectors": {"emb": [1, 0, 0]}},
                {"id": 2, "_vectors": {"emb": [0.9, 0.1, 0]}},
                {"id": 3, "_vectors": {"emb": [0, 1, 0]}},
                {"id": 4, "_vectors": {"emb": null}},
            ]),
        )
        .await,
    )
    .await;
    let (status, body) = c
        .post(
            "/indexes/v/similar",
            json!({"id": 1, "embedder": "emb", "showRankingScore": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&Value> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(ids, [&json!(2), &json!(3)]);
    assert_eq!(body["estimatedTotalHits"], 3);
    assert_eq!(body["hits"][1]["_rankingScore"], 0.5);
    let (status, get) = c.get("/indexes/v/similar?id=1&embedder=emb&limit=1").await;
    assert_eq!(status, 200, "{get}");
    assert_eq!(get["hits"], json!([{"id": 2}]));
    let (status, err) = c.get("/indexes/v/similar?id=1&embedder=emb&limit=x").await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_similar_limit"))
    );

    let (_, semantic) = c
        .post(
            "/indexes/v/search",
            json!({"vector": [1, 0, 0], "hybrid": {"embedder": "emb", "semanticRatio": 1.0}}),
        )
        .await;
    let ids: Vec<&Value> = semantic["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(ids, [&json!(1), &json!(2), &json!(3), &json!(4)]);

    let (_, doc) = c.get("/indexes/v/documents/2").await;
    assert_eq!(doc, json!({"id": 2}));
    let (_, fetched) = c
        .post(
            "/indexes/v/documents/fetch",
            json!({"ids": ["2"], "retrieveVectors": true}),
        )
        .await;
    assert_eq!(
        fetched["results"][0]["_vectors"],
        json!({"emb": {"embeddings": [[0.9, 0.1, 0.0]], "regenerate": false}})
    );
}

#[tokio::test]
async fn embedders_that_render_documents_show_the_default_template() {
    let (_node, c) = start().await;
    let hf = json!({"source": "huggingFace", "model": "BAAI/bge-base-en-v1.5"});
    succeeded(
        &c,
        c.patch(
            "/indexes/e/settings/embedders",
            json!({
                "hf": hf,
                "manual": {"source": "userProvided", "dimensions": 2},
                "both": {"source": "composite", "searchEmbedder": hf, "indexingEmbedder": hf},
                "own": {"source": "rest", "url": "http://x", "documentTemplate": "{{doc.t}}"},
            }),
        )
        .await,
    )
    .await;
    let (_, e) = c.get("/indexes/e/settings/embedders").await;
    let template = e["hf"]["documentTemplate"].as_str().unwrap_or_default();
    assert!(template.starts_with("{% for field in fields %}"), "{e}");
    assert_eq!(e["hf"]["documentTemplateMaxBytes"], 400);
    assert!(e["manual"].get("documentTemplate").is_none(), "{e}");
    // A composite embedder renders documents when indexing only.
    assert!(
        e["both"]["searchEmbedder"]
            .get("documentTemplate")
            .is_none(),
        "{e}"
    );
    assert_eq!(e["both"]["indexingEmbedder"]["documentTemplate"], template);
    assert_eq!(e["own"]["documentTemplate"], "{{doc.t}}");
}
