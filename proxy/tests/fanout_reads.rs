//! Facet search, document browsing and stats through Miroir against one node holding the same
//! documents and settings: the same facet hits, the same documents once each across pages,
//! the same counts.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{start_node, NodeKind, TestNode};
use serde_json::{json, Value};

const GENRES: [&str; 5] = ["drama", "comedy", "action", "horror", "documentary"];
const WORDS: [&str; 8] = [
    "red", "blue", "green", "river", "mountain", "city", "night", "storm",
];

/// Skewed genres (so count order has clear winners) and 30 tags (so alpha order truncates).
fn corpus(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let genre = match i % 20 {
                0..=7 => GENRES[0],
                8..=12 => GENRES[1],
                13..=15 => GENRES[2],
                16..=17 => GENRES[3],
                _ => GENRES[4],
            };
            let mut doc = json!({
                "id": i,
                "title": format!("{} {}", WORDS[(i * 3) % 8], WORDS[(i / 8) % 8]),
                "genre": genre,
                "tag": format!("t{:02}", (i * 7) % 30),
                "year": 1980 + (i * 13) % 40,
            });
            if i % 9 == 0 {
                doc.as_object_mut().unwrap().remove("year");
                doc.as_object_mut()
                    .unwrap()
                    .insert("note".into(), json!("x"));
            }
            doc
        })
        .collect()
}

fn settings() -> Value {
    json!({
        "filterableAttributes": ["genre", "tag", "year"],
        "sortableAttributes": ["year", "title"],
        "faceting": {"maxValuesPerFacet": 3, "sortFacetValuesBy": {"genre": "count", "*": "alpha"}},
    })
}

struct Setup {
    proxy: String,
    single: String,
    _miroir: MiroirProcess,
    nodes: Vec<TestNode>,
}

/// Three nodes behind Miroir (8 shards, replication factor `rf`) and one reference node, both
/// given the same settings and documents.
async fn setup(kind: NodeKind, rf: u32) -> Setup {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(start_node(kind, KEY).await);
    }
    let (port, metrics_port) = (free_port(), free_port());
    let mut toml = format!(
        "shards = 8\nreplication_factor = {rf}\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n\
         [server]\nport = {port}\n\n[metrics]\nport = {metrics_port}\n\n"
    );
    for (i, node) in nodes[..3].iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    let (proxy, single) = (miroir.url(), nodes[3].url());
    // Settings first, processed everywhere: a document write racing a settings task that is
    // still enqueued can make Miroir re-add `_miroir_shard` over the client's filterable list
    // (see `shard_field::ensure`).
    // Miroir's own task first: a part a busy node missed is replayed from its hint queue,
    // which the node's task list does not show yet.
    for base in [&proxy, &single] {
        let (s, r) = call(base, "PATCH", "/indexes/movies/settings", Some(settings())).await;
        assert_eq!(s, 202, "{r}");
        wait_task(base, r["taskUid"].as_u64().expect("task uid")).await;
    }
    for node in &nodes {
        wait_idle(&node.url()).await;
    }
    for base in [&proxy, &single] {
        let (s, r) = call(
            base,
            "POST",
            "/indexes/movies/documents",
            Some(Value::Array(corpus(300))),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        wait_task(base, r["taskUid"].as_u64().expect("task uid")).await;
    }
    for node in &nodes {
        wait_idle(&node.url()).await;
    }
    Setup {
        proxy,
        single,
        _miroir: miroir,
        nodes,
    }
}

async fn both(s: &Setup, method: &str, path: &str, body: Option<Value>) -> (Value, Value) {
    let (s1, through) = call(&s.proxy, method, path, body.clone()).await;
    let (s2, direct) = call(&s.single, method, path, body.clone()).await;
    assert_eq!(s1, s2, "{method} {path} {body:?}: {through} / {direct}");
    (through, direct)
}

async fn facet_search_matches(s: &Setup) {
    let queries = [
        json!({"facetName": "genre"}),
        json!({"facetName": "genre", "q": "river"}),
        json!({"facetName": "genre", "filter": ["year < 2000"]}),
        json!({"facetName": "tag"}),
        json!({"facetName": "tag", "facetQuery": "t2"}),
        json!({"facetName": "tag", "facetQuery": "t1", "q": "blue"}),
        json!({"facetName": "tag", "filter": "year > 1995 OR genre = horror"}),
        json!({"facetName": "genre", "facetQuery": "d", "exhaustiveFacetCount": true}),
    ];
    for q in queries {
        let (through, direct) =
            both(s, "POST", "/indexes/movies/facet-search", Some(q.clone())).await;
        assert_eq!(through["facetHits"], direct["facetHits"], "{q}");
        assert_eq!(through["facetQuery"], direct["facetQuery"], "{q}");
        assert!(through["processingTimeMs"].is_u64(), "{through}");
    }
    // Truncation to maxValuesPerFacet happened in both orders.
    let (through, _) = both(
        s,
        "POST",
        "/indexes/movies/facet-search",
        Some(json!({"facetName": "genre"})),
    )
    .await;
    assert_eq!(through["facetHits"].as_array().unwrap().len(), 3);
    assert_eq!(
        through["facetHits"][0],
        json!({"value": "drama", "count": 120})
    );
    // Errors are the node's.
    for q in [
        json!({"facetName": "title"}),
        json!({"facetQuery": "a"}),
        json!({"facetName": "genre", "filter": "nope = 1"}),
    ] {
        let (through, direct) =
            both(s, "POST", "/indexes/movies/facet-search", Some(q.clone())).await;
        assert_eq!(through["code"], direct["code"], "{q}: {through}");
    }
}

fn ids(results: &Value) -> Vec<u64> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect()
}

fn no_leak(page: &Value) {
    for doc in page["results"].as_array().unwrap() {
        assert!(
            doc.as_object()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with("_miroir")),
            "leaked {doc}"
        );
    }
}

/// Walks every page of the GET query `get` or the fetch body `post`: the same
/// total as the single node, every document once, each equal to the single node's.
async fn pages_cover_everything(s: &Setup, get: Option<&str>, post: Option<Value>, limit: u64) {
    let fetch = |offset: u64| {
        let (path, body) = match (&get, &post) {
            (Some(q), _) => (
                format!("/indexes/movies/documents?{q}&offset={offset}&limit={limit}"),
                None,
            ),
            (None, Some(b)) => {
                let mut b = b.clone();
                b["offset"] = json!(offset);
                b["limit"] = json!(limit);
                ("/indexes/movies/documents/fetch".to_owned(), Some(b))
            }
            (None, None) => unreachable!(),
        };
        (if body.is_some() { "POST" } else { "GET" }, path, body)
    };
    // The reference in one page.
    let (method, path, body) = fetch(0);
    let all = |p: &str| p.replace(&format!("limit={limit}"), "limit=1000");
    let (_, reference) = call(
        &s.single,
        method,
        &all(&path),
        body.map(|mut b| {
            b["limit"] = json!(1000);
            b
        }),
    )
    .await;
    let by_id: BTreeMap<u64, Value> = reference["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_u64().unwrap(), d.clone()))
        .collect();
    let total = reference["total"].as_u64().unwrap();
    assert_eq!(by_id.len() as u64, total, "reference fits one page");
    let mut seen = BTreeSet::new();
    let mut offset = 0;
    while offset <= total {
        let (method, path, body) = fetch(offset);
        let (status, page) = call(&s.proxy, method, &path, body).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_eq!(page["total"], total, "{path}");
        assert_eq!(
            (page["offset"].as_u64(), page["limit"].as_u64()),
            (Some(offset), Some(limit))
        );
        no_leak(&page);
        let got = ids(&page);
        assert_eq!(
            got.len() as u64,
            limit.min(total.saturating_sub(offset)),
            "{path}"
        );
        for doc in page["results"].as_array().unwrap() {
            let id = doc["id"].as_u64().unwrap();
            assert!(seen.insert(id), "{id} twice ({path})");
            assert_eq!(Some(doc), by_id.get(&id), "{path}");
        }
        offset += limit;
    }
    assert_eq!(seen, by_id.keys().copied().collect::<BTreeSet<_>>());
}

async fn documents_match(s: &Setup) {
    pages_cover_everything(s, Some("fields=id,title,genre"), None, 7).await;
    pages_cover_everything(s, Some("filter=genre%20%3D%20drama"), None, 11).await;
    pages_cover_everything(s, None, Some(json!({})), 40).await;
    pages_cover_everything(s, None, Some(json!({"filter": ["year > 1990", ["genre = action", "genre = horror"]], "fields": ["id", "year"]})), 6).await;
    pages_cover_everything(
        s,
        None,
        Some(json!({"fields": ["_miroir_shard", "id"]})),
        50,
    )
    .await;

    // Ids: only their shards are asked; same set and total.
    let wanted = json!(["3", "17", "42", "99", "100", "150", "151", "299", "1000"]);
    pages_cover_everything(
        s,
        None,
        Some(json!({"ids": wanted, "fields": ["id", "genre"]})),
        3,
    )
    .await;
    pages_cover_everything(
        s,
        None,
        Some(json!({"ids": wanted, "filter": "genre = drama"})),
        2,
    )
    .await;

    // Sort: the same sequence of sort values, and pages that cover everything once.
    let body = json!({"sort": ["year:desc", "title:asc"], "limit": 1000, "fields": ["id"]});
    let (through, direct) = both(s, "POST", "/indexes/movies/documents/fetch", Some(body)).await;
    let years = |v: &Value, all: &BTreeMap<u64, Value>| -> Vec<(Value, Value)> {
        ids(v)
            .iter()
            .map(|id| (all[id]["year"].clone(), all[id]["title"].clone()))
            .collect()
    };
    let (_, every) = call(
        &s.single,
        "POST",
        "/indexes/movies/documents/fetch",
        Some(json!({"limit": 1000})),
    )
    .await;
    let every: BTreeMap<u64, Value> = every["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_u64().unwrap(), d.clone()))
        .collect();
    assert_eq!(years(&through, &every), years(&direct, &every));
    assert_eq!(through["total"], 300);
    for doc in through["results"].as_array().unwrap() {
        assert_eq!(
            doc.as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["id"],
            "sort fields stripped"
        );
    }
    pages_cover_everything(
        s,
        Some("sort=year:desc,title:asc&fields=id,genre"),
        None,
        17,
    )
    .await;
    pages_cover_everything(s, Some("ids=3,17,42,299,5000&fields=id"), None, 2).await;
    pages_cover_everything(
        s,
        None,
        Some(json!({"sort": ["year:asc"], "filter": "genre != comedy"})),
        13,
    )
    .await;

    // `ids: []` matches nothing, as on one node.
    let (through, direct) = both(
        s,
        "POST",
        "/indexes/movies/documents/fetch",
        Some(json!({"ids": []})),
    )
    .await;
    assert_eq!(
        (through["total"].clone(), through["results"].clone()),
        (direct["total"].clone(), json!([]))
    );

    // Errors are the node's.
    for (method, path, body) in [
        (
            "POST",
            "/indexes/movies/documents/fetch",
            Some(json!({"ids": [], "filter": "title = x"})),
        ),
        (
            "GET",
            "/indexes/movies/documents?filter=title%20%3D%20x",
            None,
        ),
        ("GET", "/indexes/movies/documents?limit=ten", None),
        (
            "POST",
            "/indexes/movies/documents/fetch",
            Some(json!({"sort": ["genre:asc"]})),
        ),
        (
            "POST",
            "/indexes/movies/documents/fetch",
            Some(json!({"wat": 1})),
        ),
        ("GET", "/indexes/nope/documents", None),
    ] {
        let (through, direct) = both(s, method, path, body).await;
        assert_eq!(through["code"], direct["code"], "{path}: {through}");
    }
}

/// A body sent without `Content-Type: application/json` gets the node's error.
async fn untyped_bodies_are_refused_like_one_node(s: &Setup) {
    for path in [
        "/indexes/movies/documents/fetch",
        "/indexes/movies/facet-search",
    ] {
        let mut codes = Vec::new();
        for base in [&s.proxy, &s.single] {
            let resp = client()
                .post(format!("{base}{path}"))
                .bearer_auth(KEY)
                .body(r#"{"facetName":"genre"}"#)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            codes.push((status, body["code"].clone()));
        }
        assert_eq!(codes[0], codes[1], "{path}");
        assert_ne!(codes[0].0, 200, "{path}");
    }
}

async fn stats_match(s: &Setup) {
    let (through, direct) = both(s, "GET", "/indexes/movies/stats", None).await;
    assert_eq!(through["numberOfDocuments"], 300);
    assert_eq!(through["numberOfDocuments"], direct["numberOfDocuments"]);
    assert_eq!(through["fieldDistribution"], direct["fieldDistribution"]);
    assert_eq!(through["isIndexing"], false);
    let (through, direct) = both(s, "GET", "/stats", None).await;
    let (t, d) = (&through["indexes"]["movies"], &direct["indexes"]["movies"]);
    assert_eq!(t["numberOfDocuments"], d["numberOfDocuments"]);
    assert_eq!(t["fieldDistribution"], d["fieldDistribution"]);
    assert!(through["databaseSize"].as_u64().unwrap() > 0);
    let (s1, e) = call(&s.proxy, "GET", "/indexes/nope/stats", None).await;
    assert_eq!((s1, e["code"].as_str()), (404, Some("index_not_found")));
    sizes_match(s).await;
}

/// `showInternalDatabaseSizes` and `sizeFormat`: the same shape as one node's answer, sizes
/// as numbers or as text.
async fn sizes_match(s: &Setup) {
    let is_size_text = |v: &Value| {
        v.as_str()
            .is_some_and(|t| t.ends_with(" B") || t.ends_with("iB"))
    };
    for (path, human) in [
        (
            "/indexes/movies/stats?showInternalDatabaseSizes=true",
            false,
        ),
        (
            "/indexes/movies/stats?showInternalDatabaseSizes=true&sizeFormat=human",
            true,
        ),
    ] {
        let (through, direct) = both(s, "GET", path, None).await;
        let internal = through["internalDatabaseSizes"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: {through}"));
        assert!(!internal.is_empty(), "{through}");
        assert!(direct["internalDatabaseSizes"].is_object(), "{direct}");
        for v in internal
            .values()
            .chain([&through["rawDocumentDbSize"], &through["avgDocumentSize"]])
        {
            assert_eq!(is_size_text(v), human, "{path}: {through}");
            assert_eq!(v.is_u64(), !human, "{path}: {through}");
        }
        assert_eq!(through["numberOfDocuments"], 300);
    }
    let (through, _) = both(s, "GET", "/stats?sizeFormat=human", None).await;
    assert!(is_size_text(&through["databaseSize"]), "{through}");
    assert!(
        is_size_text(&through["indexes"]["movies"]["rawDocumentDbSize"]),
        "{through}"
    );
    assert!(through["indexes"]["movies"]
        .get("internalDatabaseSizes")
        .is_none());
    for path in [
        "/stats?sizeFormat=huge",
        "/indexes/movies/stats?showInternalDatabaseSizes=maybe",
    ] {
        let (through, direct) = both(s, "GET", path, None).await;
        assert_eq!(through["code"], direct["code"], "{path}");
        assert!(through["code"].as_str().is_some(), "{path}: {through}");
    }
}

#[tokio::test]
async fn facet_search_equals_one_node_with_rf1_and_rf2() {
    for rf in [1, 2] {
        facet_search_matches(&setup(NodeKind::Sim, rf).await).await;
    }
}

#[tokio::test]
async fn document_pages_hold_every_document_once_with_rf1_and_rf2() {
    for rf in [1, 2] {
        let s = setup(NodeKind::Sim, rf).await;
        documents_match(&s).await;
        untyped_bodies_are_refused_like_one_node(&s).await;
    }
}

#[tokio::test]
async fn stats_count_every_document_once_with_rf1_and_rf2() {
    for rf in [1, 2] {
        stats_match(&setup(NodeKind::Sim, rf).await).await;
    }
}

#[tokio::test]
async fn fanout_reads_match_real_meilisearch() {
    let _bin = miroir_testkit::require_meili_bin!();
    let s = setup(NodeKind::Real, 2).await;
    facet_search_matches(&s).await;
    documents_match(&s).await;
    untyped_bodies_are_refused_like_one_node(&s).await;
    stats_match(&s).await;
}

#[tokio::test]
async fn reads_survive_one_node_down_with_rf2() {
    let s = setup(NodeKind::Sim, 2).await;
    s.nodes[0].stop().await;
    facet_search_matches(&s).await;
    pages_cover_everything(&s, Some("fields=id,genre"), None, 9).await;
    pages_cover_everything(&s, None, Some(json!({"sort": ["year:desc"]})), 25).await;
    // The count stays exact; the other figures are scaled from the nodes that answered.
    let resp = client()
        .get(format!("{}/indexes/movies/stats", s.proxy))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let degraded = resp
        .headers()
        .get("x-miroir-degraded")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(degraded.as_deref(), Some("stats=estimated"));
    let stats: Value = resp.json().await.unwrap();
    assert_eq!(stats["numberOfDocuments"], 300);
    let id_count = stats["fieldDistribution"]["id"].as_u64().unwrap();
    assert_eq!(id_count, 300, "{stats}");
}

/// A sorted page deeper than a merge page (1 000 documents per shard at a time) comes out as
/// on one node: the merge fetches further pages of the shards it drains instead of every
/// shard's first `offset + limit` documents at once.
async fn deep_sorted_pages_match(s: &Setup) {
    let docs: Vec<Value> = (0..2_600)
        .map(|i| json!({"id": i, "rank": (i * 7_919) % 2_600, "t": "x"}))
        .collect();
    for base in [&s.proxy, &s.single] {
        let (st, r) = call(
            base,
            "PATCH",
            "/indexes/deep/settings",
            Some(json!({"sortableAttributes": ["rank"]})),
        )
        .await;
        assert_eq!(st, 202, "{r}");
    }
    for node in &s.nodes {
        wait_idle(&node.url()).await;
    }
    for base in [&s.proxy, &s.single] {
        let (st, r) = call(
            base,
            "POST",
            "/indexes/deep/documents",
            Some(Value::Array(docs.clone())),
        )
        .await;
        assert_eq!(st, 202, "{r}");
    }
    for node in &s.nodes {
        wait_idle(&node.url()).await;
    }
    for (offset, sort) in [
        (0, "asc"),
        (990, "desc"),
        (1_000, "asc"),
        (2_480, "desc"),
        (2_590, "asc"),
    ] {
        let body = json!({"offset": offset, "limit": 30, "sort": [format!("rank:{sort}")], "fields": ["id", "rank"]});
        let (through, direct) = both(s, "POST", "/indexes/deep/documents/fetch", Some(body)).await;
        assert_eq!(through, direct, "offset {offset} {sort}");
    }
}

#[tokio::test]
async fn deep_sorted_pages_equal_one_node() {
    let s = setup(NodeKind::Sim, 2).await;
    deep_sorted_pages_match(&s).await;
    if miroir_testkit::meili_bin().is_some() {
        let s = setup(NodeKind::Real, 1).await;
        deep_sorted_pages_match(&s).await;
    }
}
