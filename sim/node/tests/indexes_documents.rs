//! Indexes, documents and their errors, over real HTTP.

mod common;

use common::{run, start, succeeded};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn index_crud_swap_and_stats() {
    let (_node, c) = start().await;
    let task = succeeded(
        &c,
        c.post("/indexes", json!({"uid": "movies", "primaryKey": "id"}))
            .await,
    )
    .await;
    assert_eq!(task["type"], "indexCreation");
    assert_eq!(task["details"], json!({"primaryKey": "id"}));
    let (status, index) = c.get("/indexes/movies").await;
    assert_eq!(status, 200);
    assert_eq!(index["primaryKey"], "id");
    let keys: Vec<&String> = index.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["uid", "createdAt", "updatedAt", "primaryKey"]);

    let again = run(&c, c.post("/indexes", json!({"uid": "movies"})).await).await;
    assert_eq!(again["status"], "failed");
    assert_eq!(again["error"]["code"], "index_already_exists");

    let (status, body) = c.post("/indexes", json!({"uid": "bad uid!"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_index_uid"))
    );
    let (status, body) = c.get("/indexes/nope").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("index_not_found"))
    );

    succeeded(
        &c,
        c.post("/indexes/books/documents", json!([{"id": 1}, {"id": 2}]))
            .await,
    )
    .await;
    let (_, list) = c.get("/indexes?limit=1&offset=1").await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["results"][0]["uid"], "movies");

    let swap = succeeded(
        &c,
        c.post("/swap-indexes", json!([{"indexes": ["movies", "books"]}]))
            .await,
    )
    .await;
    assert_eq!(
        swap["details"]["swaps"][0]["indexes"],
        json!(["movies", "books"])
    );
    let (_, stats) = c.get("/indexes/movies/stats").await;
    assert_eq!(
        stats["numberOfDocuments"], 2,
        "movies now holds the books data"
    );
    assert_eq!(stats["fieldDistribution"], json!({"id": 2}));
    for key in [
        "rawDocumentDbSize",
        "avgDocumentSize",
        "isIndexing",
        "numberOfEmbeddings",
        "numberOfEmbeddedDocuments",
    ] {
        assert!(stats.get(key).is_some(), "stats lacks {key}: {stats}");
    }
    let (status, body) = c
        .post("/swap-indexes", json!([{"indexes": ["movies"]}]))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_swap_indexes"))
    );

    let (_, global) = c.get("/stats").await;
    assert_eq!(global["indexes"]["movies"]["numberOfDocuments"], 2);

    let rename = succeeded(
        &c,
        c.patch("/indexes/books", json!({"uid": "novels"})).await,
    )
    .await;
    assert_eq!(rename["details"]["newIndexUid"], "novels");
    assert_eq!(c.get("/indexes/novels").await.0, 200);
    let deleted = succeeded(&c, c.delete("/indexes/novels").await).await;
    assert_eq!(deleted["details"], json!({"deletedDocuments": 0}));
    assert_eq!(c.get("/indexes/novels").await.0, 404);
    let missing = run(&c, c.delete("/indexes/novels").await).await;
    assert_eq!(missing["error"]["code"], "index_not_found");
}

#[tokio::test]
async fn documents_in_json_ndjson_and_csv() {
    let (_node, c) = start().await;
    let task = succeeded(
        &c,
        c.post("/indexes/m/documents", json!({"id": 1, "title": "one"}))
            .await,
    )
    .await;
    assert_eq!(
        task["details"],
        json!({"receivedDocuments": 1, "indexedDocuments": 1})
    );
    let nd = b"{\"id\": 2, \"title\": \"two\"}\n{\"id\": 3, \"title\": \"three\"}\n";
    succeeded(
        &c,
        c.send_raw(
            Method::POST,
            "/indexes/m/documents",
            Some((nd, "application/x-ndjson")),
        )
        .await,
    )
    .await;
    let csv = b"id;price:number;ok:boolean\n4;9.5;true\n";
    succeeded(
        &c,
        c.send_raw(
            Method::POST,
            "/indexes/m/documents?csvDelimiter=%3B",
            Some((csv, "text/csv")),
        )
        .await,
    )
    .await;
    let (_, doc) = c.get("/indexes/m/documents/4").await;
    assert_eq!(doc, json!({"id": "4", "price": 9.5, "ok": true}));

    // PUT merges fields, POST replaces the document.
    succeeded(
        &c,
        c.put("/indexes/m/documents", json!([{"id": 1, "extra": true}]))
            .await,
    )
    .await;
    assert_eq!(
        c.get("/indexes/m/documents/1").await.1,
        json!({"id": 1, "title": "one", "extra": true})
    );
    succeeded(
        &c,
        c.post("/indexes/m/documents", json!([{"id": 1, "title": "uno"}]))
            .await,
    )
    .await;
    assert_eq!(
        c.get("/indexes/m/documents/1").await.1,
        json!({"id": 1, "title": "uno"})
    );

    let (status, body) = c
        .send_raw(
            Method::POST,
            "/indexes/m/documents",
            Some((b"{", "application/json")),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("malformed_payload"))
    );
    let (status, body) = c
        .send_raw(
            Method::POST,
            "/indexes/m/documents",
            Some((b"[]", "text/plain")),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("invalid_content_type"))
    );
    let (status, body) = c.send_raw(Method::POST, "/indexes/m/documents", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("missing_content_type"))
    );
    let (status, body) = c.get("/indexes/m/documents/999").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("document_not_found"))
    );
}

#[tokio::test]
async fn primary_key_inference_and_id_validation_fail_the_task() {
    let (_node, c) = start().await;
    let ok = succeeded(
        &c,
        c.post("/indexes/a/documents", json!([{"movieId": "x1", "t": 1}]))
            .await,
    )
    .await;
    assert_eq!(ok["status"], "succeeded");
    assert_eq!(c.get("/indexes/a").await.1["primaryKey"], "movieId");

    let none = run(
        &c,
        c.post("/indexes/b/documents", json!([{"title": "x"}]))
            .await,
    )
    .await;
    assert_eq!(
        none["error"]["code"],
        "index_primary_key_no_candidate_found"
    );
    assert_eq!(none["details"]["indexedDocuments"], 0);
    let many = run(
        &c,
        c.post("/indexes/c/documents", json!([{"id": 1, "uid": 2}]))
            .await,
    )
    .await;
    assert_eq!(
        many["error"]["code"],
        "index_primary_key_multiple_candidates_found"
    );

    let bad_id = run(
        &c,
        c.post("/indexes/a/documents", json!([{"movieId": "has space"}]))
            .await,
    )
    .await;
    assert_eq!(bad_id["error"]["code"], "invalid_document_id");
    let missing = run(
        &c,
        c.post("/indexes/a/documents", json!([{"title": "no id"}]))
            .await,
    )
    .await;
    assert_eq!(missing["error"]["code"], "missing_document_id");
    let conflict = run(
        &c,
        c.post(
            "/indexes/a/documents?primaryKey=other",
            json!([{"other": 1}]),
        )
        .await,
    )
    .await;
    assert_eq!(
        conflict["error"]["code"],
        "index_primary_key_already_exists"
    );
    assert_eq!(
        c.get("/indexes/a/documents").await.1["total"],
        1,
        "failed tasks write nothing"
    );
}

#[tokio::test]
async fn browse_fetch_filters_and_deletes() {
    let (_node, c) = start().await;
    let docs: Vec<Value> = (0..10)
        .map(|i| json!({"id": i, "n": i, "kind": if i % 2 == 0 { "even" } else { "odd" }}))
        .collect();
    succeeded(&c, c.post("/indexes/n/documents", json!(docs)).await).await;

    let (_, page) = c
        .get("/indexes/n/documents?offset=2&limit=3&fields=id")
        .await;
    assert_eq!(page["total"], 10);
    assert_eq!(page["results"], json!([{"id": 2}, {"id": 3}, {"id": 4}]));

    let (status, body) = c.get("/indexes/n/documents?filter=kind%20%3D%20even").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_document_filter")),
        "not filterable yet"
    );
    succeeded(
        &c,
        c.put(
            "/indexes/n/settings/filterable-attributes",
            json!(["kind", "n"]),
        )
        .await,
    )
    .await;
    let (_, body) = c
        .get("/indexes/n/documents?filter=kind%20%3D%20even&limit=2")
        .await;
    assert_eq!(body["total"], 5);
    let (_, body) = c
        .post(
            "/indexes/n/documents/fetch",
            json!({"ids": ["1", 3], "fields": ["n"]}),
        )
        .await;
    assert_eq!(body["results"], json!([{"n": 1}, {"n": 3}]));

    let (status, body) = c.get("/indexes/n/documents?sort=kind:asc").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_document_sort")),
        "not sortable yet"
    );
    succeeded(
        &c,
        c.put("/indexes/n/settings/sortable-attributes", json!(["n"]))
            .await,
    )
    .await;
    let (_, body) = c
        .get("/indexes/n/documents?sort=n:desc&limit=2&fields=id")
        .await;
    assert_eq!(body["results"], json!([{"id": 9}, {"id": 8}]));
    let (_, body) = c
        .post(
            "/indexes/n/documents/fetch",
            json!({"sort": ["n:desc"], "filter": "kind = even", "limit": 1}),
        )
        .await;
    assert_eq!(body["results"][0]["id"], 8);

    let t = succeeded(&c, c.delete("/indexes/n/documents/0").await).await;
    assert_eq!(
        t["details"],
        json!({"providedIds": 1, "deletedDocuments": 1, "originalFilter": null})
    );
    let t = succeeded(
        &c,
        c.post("/indexes/n/documents/delete-batch", json!([1, "2", 99]))
            .await,
    )
    .await;
    assert_eq!(t["details"]["deletedDocuments"], 2);
    let t = succeeded(
        &c,
        c.post("/indexes/n/documents/delete", json!({"filter": "n >= 8"}))
            .await,
    )
    .await;
    assert_eq!(
        t["details"],
        json!({"providedIds": 0, "deletedDocuments": 2, "originalFilter": "\"n >= 8\""})
    );
    let (status, body) = c.post("/indexes/n/documents/delete", json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_document_filter"))
    );
    assert_eq!(c.get("/indexes/n/documents").await.1["total"], 5);
    let t = succeeded(&c, c.delete("/indexes/n/documents").await).await;
    assert_eq!(t["details"], json!({"deletedDocuments": 5}));
    assert_eq!(c.get("/indexes/n/documents").await.1["total"], 0);
}

#[tokio::test]
async fn trailing_slash_unknown_routes_and_unimplemented_routes() {
    let (_node, c) = start().await;
    assert_eq!(c.get("/indexes/").await.0, 200);
    let (status, body) = c.get("/nope").await;
    assert_eq!(
        (status, body),
        (404, Value::Null),
        "Meilisearch answers unknown routes with an empty 404"
    );
    for route in ["/dumps", "/render-template", "/dynamic-search-rules"] {
        let (status, body) = c.post(route, json!({})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (501, Some("not_implemented_in_simulator")),
            "{route}"
        );
    }
    let (_, version) = c.get("/version").await;
    assert!(version["pkgVersion"].as_str().unwrap().ends_with("-sim"));
}

#[tokio::test]
async fn compaction_is_a_task_that_reports_sizes_and_fails_on_a_missing_index() {
    let (_node, c) = start().await;
    succeeded(
        &c,
        c.post("/indexes/c/documents", json!([{"id": 1, "t": "a"}]))
            .await,
    )
    .await;
    let (status, summary) = c.post("/indexes/c/compact", json!({})).await;
    assert_eq!((status, &summary["type"]), (202, &json!("indexCompaction")));
    let task = succeeded(&c, (status, summary)).await;
    let size = task["details"]["preCompactionSize"].as_str().unwrap();
    assert!(size.ends_with(" B"), "{task}");
    assert_eq!(task["details"]["postCompactionSize"], size);
    assert_eq!(c.get("/indexes/c/stats").await.1["numberOfDocuments"], 1);

    let task = run(&c, c.post("/indexes/nope/compact", json!({})).await).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["error"]["code"], "index_not_found");
    assert_eq!(task["details"], json!({}));
}

#[tokio::test]
async fn stats_show_internal_sizes_and_human_sizes_on_request() {
    let (_node, c) = start().await;
    succeeded(
        &c,
        c.post("/indexes/s/documents", json!([{"id": 1, "t": "a"}]))
            .await,
    )
    .await;
    let (_, plain) = c.get("/indexes/s/stats").await;
    assert!(plain.get("internalDatabaseSizes").is_none(), "{plain}");
    let raw = plain["rawDocumentDbSize"].as_u64().unwrap();
    let (_, both) = c
        .get("/indexes/s/stats?showInternalDatabaseSizes=true&sizeFormat=human")
        .await;
    assert_eq!(both["rawDocumentDbSize"], format!("{raw} B"));
    assert_eq!(
        both["internalDatabaseSizes"],
        json!({"documents": format!("{raw} B")})
    );
    let (_, global) = c
        .get("/stats?sizeFormat=raw&showInternalDatabaseSizes=true")
        .await;
    assert_eq!(global["databaseSize"], raw);
    assert_eq!(
        global["indexes"]["s"]["internalDatabaseSizes"]["documents"],
        raw
    );
    let (status, e) = c.get("/stats?sizeFormat=huge").await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_stats_size_format"))
    );
    let (status, e) = c.get("/indexes/s/stats?showInternalDatabaseSizes=1").await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_stats_show_internal_database_sizes"))
    );
}

#[tokio::test]
async fn payloads_over_100_mib_are_rejected() {
    let (_node, c) = start().await;
    let big = vec![b' '; 100 * 1024 * 1024 + 1];
    let (status, body) = c
        .send_raw(
            Method::POST,
            "/indexes/x/documents",
            Some((&big, "application/json")),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}
