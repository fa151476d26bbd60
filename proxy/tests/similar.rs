//! `/similar` through Miroir over 3 nodes against one node holding the same documents, with a
//! `userProvided` embedder: the same hits (scores, and hit sets within equal scores), totals
//! and errors. Simulated nodes always; real Meilisearch nodes when `MEILI_BIN` is set.

mod common;

use std::collections::BTreeSet;

use common::corpus::corpus;
use common::{call, compared, wait_idle, Compared};
use miroir_testkit::{require_meili_bin, NodeKind};
use serde_json::{json, Value};

const DIMENSIONS: usize = 4;
const DOCS: usize = 120;

/// The search corpus with a 4-dimension embedding per document (none for every 17th).
fn documents() -> Vec<Value> {
    corpus(DOCS)
        .into_iter()
        .enumerate()
        .map(|(i, mut doc)| {
            let x = i as f64;
            let v = [
                (x * 0.7).cos(),
                (x * 1.3).sin(),
                (x * 0.37 + 1.0).cos(),
                (x * 2.1).sin(),
            ];
            let v: Vec<f64> = v.iter().map(|c| (c * 1000.0).round() / 1000.0).collect();
            doc["_vectors"] = if i % 17 == 0 {
                json!({ "emb": null })
            } else {
                json!({ "emb": v })
            };
            doc
        })
        .collect()
}

fn settings() -> Value {
    json!({
        "filterableAttributes": ["genre", "year"],
        "sortableAttributes": ["year"],
        "embedders": {"emb": {"source": "userProvided", "dimensions": DIMENSIONS}},
    })
}

/// Requests compared through Miroir and on one node (POST bodies; `GET` ones as a query).
fn requests() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for id in [1, 5, 42, 99, 119] {
        out.push((
            "POST",
            json!({"id": id, "embedder": "emb", "showRankingScore": true}),
        ));
        out.push((
            "POST",
            json!({"id": id, "embedder": "emb", "limit": 5, "offset": 3, "showRankingScore": true}),
        ));
        out.push((
            "POST",
            json!({"id": id.to_string(), "embedder": "emb", "filter": "genre = drama OR year > 2000", "showRankingScore": true, "showRankingScoreDetails": true}),
        ));
        out.push((
            "POST",
            json!({"id": id, "embedder": "emb", "rankingScoreThreshold": 0.8, "offset": 2, "limit": 30, "showRankingScore": true}),
        ));
    }
    // Without scores (the merge still orders by them), with projection and vectors.
    out.push((
        "POST",
        json!({"id": 7, "embedder": "emb", "attributesToRetrieve": ["title"], "retrieveVectors": true, "limit": 8}),
    ));
    out.push(("POST", json!({"id": 8, "embedder": "emb", "limit": 100})));
    // A target without an embedding: no hits, every candidate counted.
    out.push(("POST", json!({"id": 17, "embedder": "emb"})));
    out.push((
        "GET",
        json!("id=3&embedder=emb&limit=6&showRankingScore=true&filter=genre%20%3D%20comedy"),
    ));
    out
}

/// Requests every node refuses the same way.
fn refused() -> Vec<Value> {
    vec![
        json!({"id": 100000, "embedder": "emb"}),
        json!({"id": 1, "embedder": "nope"}),
        json!({"id": 1}),
        json!({"embedder": "emb"}),
        json!({"id": "a b", "embedder": "emb"}),
        json!({"id": 1, "embedder": "emb", "filter": "title = x"}),
        json!({"id": 1, "embedder": "emb", "limit": "x"}),
        json!({"id": 1, "embedder": "emb", "rankingScoreThreshold": 3}),
    ]
}

async fn setup(kind: NodeKind) -> Compared {
    let setup = compared(kind, &["movies"], &settings(), &documents()).await;
    let reference = &setup.reference;
    let (_, count) = call(&reference.url(), "GET", "/indexes/movies/stats", None).await;
    assert_eq!(
        count["numberOfDocuments"], DOCS,
        "documents indexed: {count}"
    );
    setup
}

/// `v` with object keys sorted: each node lists a document's fields in the order they first
/// appeared on that node (Meilisearch's fields-ids map), which no merge can change.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let sorted: std::collections::BTreeMap<&String, Value> =
                o.iter().map(|(k, v)| (k, canonical(v))).collect();
            json!(sorted)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Hits grouped by score, in order: [(score, {hit without its score})].
fn score_groups(resp: &Value) -> Vec<(String, BTreeSet<String>)> {
    let mut groups: Vec<(String, BTreeSet<String>)> = Vec::new();
    for hit in resp["hits"].as_array().into_iter().flatten() {
        let score = format!("{:.6}", hit["_rankingScore"].as_f64().unwrap_or(-1.0));
        let mut bare = hit.clone();
        if let Some(o) = bare.as_object_mut() {
            // Compared by the rounded score above: a node's f32 similarity can differ in the
            // last bit between a stored vector and the same vector sent in a query.
            o.remove("_rankingScore");
            o.remove("_rankingScoreDetails");
        }
        match groups.last_mut() {
            Some((s, hits)) if *s == score => {
                hits.insert(canonical(&bare).to_string());
            }
            _ => groups.push((score, BTreeSet::from([canonical(&bare).to_string()]))),
        }
    }
    groups
}

fn meta(resp: &Value) -> Value {
    let mut v = resp.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("hits");
        o.remove("processingTimeMs");
    }
    v
}

async fn ask(base: &str, method: &str, req: &Value) -> (u16, Value) {
    match method {
        "GET" => {
            let query = req.as_str().unwrap_or_default();
            call(
                base,
                "GET",
                &format!("/indexes/movies/similar?{query}"),
                None,
            )
            .await
        }
        _ => call(base, "POST", "/indexes/movies/similar", Some(req.clone())).await,
    }
}

/// Runs every request both ways; returns (matching, total) and prints each mismatch.
async fn compare(s: &Compared) -> (usize, usize) {
    let (proxy, single) = (s.miroir.url(), s.reference.url());
    let all = requests();
    let mut same = 0;
    for (method, req) in &all {
        let (s1, through) = ask(&proxy, method, req).await;
        let (s2, direct) = ask(&single, method, req).await;
        let (a, b) = (score_groups(&through), score_groups(&direct));
        // The last group may be cut differently by the limit: compare it by score only.
        let full = a.len().min(b.len()).saturating_sub(1);
        let ok = s1 == 200
            && s2 == 200
            && meta(&through) == meta(&direct)
            && a.iter().map(|g| &g.0).eq(b.iter().map(|g| &g.0))
            && a[..full] == b[..full];
        // Without scores every hit stands alone: the order itself must match.
        let ordered = req.get("showRankingScore").is_some() || through["hits"] == direct["hits"];
        if ok && ordered {
            same += 1;
        } else {
            println!(
                "MISMATCH {method} {req}\n    miroir {s1} {through}\n    node   {s2} {direct}"
            );
        }
        for hit in through["hits"].as_array().into_iter().flatten() {
            assert!(
                hit.as_object()
                    .is_some_and(|o| o.keys().all(|k| !k.starts_with("_miroir"))),
                "{req}: leaked {hit}"
            );
        }
    }
    (same, all.len())
}

async fn compare_errors(s: &Compared) -> (usize, usize) {
    let (proxy, single) = (s.miroir.url(), s.reference.url());
    let all = refused();
    let mut same = 0;
    for req in &all {
        let (s1, e1) = ask(&proxy, "POST", req).await;
        let (s2, e2) = ask(&single, "POST", req).await;
        if s2 >= 400 && (s1, &e1["code"], &e1["message"]) == (s2, &e2["code"], &e2["message"]) {
            same += 1;
        } else {
            println!("ERROR MISMATCH {req}\n    miroir {s1} {e1}\n    node   {s2} {e2}");
        }
    }
    (same, all.len())
}

/// GET requests a node refuses: its errors name the query parameters, not the body's fields.
async fn compare_get_errors(s: &Compared) -> (usize, usize) {
    let (proxy, single) = (s.miroir.url(), s.reference.url());
    let all = [
        "id=1&embedder=emb&limit=abc",
        "id=1&embedder=emb&showRankingScore=maybe",
        "id=1&embedder=emb&rankingScoreThreshold=2",
        "id=1&embedder=emb&bogus=1",
        "embedder=emb",
    ];
    let mut same = 0;
    for query in all {
        let req = json!(query);
        let (s1, e1) = ask(&proxy, "GET", &req).await;
        let (s2, e2) = ask(&single, "GET", &req).await;
        if s2 >= 400 && (s1, &e1["code"], &e1["message"]) == (s2, &e2["code"], &e2["message"]) {
            same += 1;
        } else {
            println!("GET ERROR MISMATCH {query}\n    miroir {s1} {e1}\n    node   {s2} {e2}");
        }
    }
    (same, all.len())
}

/// `displayedAttributes` restricted through Miroir and on the reference (the nodes behind
/// Miroir then display more, which Miroir hides).
async fn restrict_display(s: &Compared) {
    for base in [s.miroir.url(), s.reference.url()] {
        let (status, r) = call(
            &base,
            "PUT",
            "/indexes/movies/settings/displayed-attributes",
            Some(json!(["id", "title", "genre"])),
        )
        .await;
        assert_eq!(status, 202, "{r}");
    }
    for node in s.nodes.iter().chain([&s.reference]) {
        wait_idle(&node.url()).await;
    }
}

#[tokio::test]
async fn similar_through_miroir_equals_one_simulated_node() {
    let s = setup(NodeKind::Sim).await;
    assert_eq!(s.nodes.len(), 3);
    let (same, n) = compare(&s).await;
    println!("simulated nodes: {same}/{n} /similar requests equal");
    assert!(n >= 20);
    assert_eq!(same, n, "every /similar request answers like one node");
    let (same, n) = compare_errors(&s).await;
    assert_eq!(same, n, "every refused request fails like on one node");
    restrict_display(&s).await;
    let (same, n) = compare(&s).await;
    assert_eq!(same, n, "with displayedAttributes restricted");
}

#[tokio::test]
async fn similar_through_miroir_equals_one_real_node() {
    let _bin = require_meili_bin!();
    let s = setup(NodeKind::Real).await;
    let (same, n) = compare(&s).await;
    let (errors_same, errors) = compare_errors(&s).await;
    let (get_same, get_errors) = compare_get_errors(&s).await;
    assert_eq!(get_same, get_errors, "GET errors");
    restrict_display(&s).await;
    let (restricted_same, _) = compare(&s).await;
    println!(
        "real nodes: {same}/{n} /similar requests equal ({restricted_same}/{n} with displayedAttributes restricted); errors {errors_same}/{errors}"
    );
    assert_eq!(errors_same, errors, "errors");
    assert_eq!(same, n, "/similar requests");
    assert_eq!(
        restricted_same, n,
        "/similar with displayedAttributes restricted"
    );
}
