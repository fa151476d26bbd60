//! Index aliases through Miroir: the admin API and its bad inputs, every index route used
//! through an alias (answers equal to the index's own), aliases of several indexes (searches
//! merged as a federated multi-search over them, everything else refused), index deletion and
//! swap next to aliases, the blue-green repoint under concurrent searches, durability across
//! a restart; simulated nodes, and real Meilisearch 1.50 for search, documents, settings and
//! task waits.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{call, client, wait_task, ADMIN_KEY, KEY};
use miroir_testkit::proxy::{free_port, MiroirProcess};
use miroir_testkit::{require_meili_bin, start_node, NodeKind, TestNode};
use serde_json::{json, Value};

const GENRES: [&str; 3] = ["drama", "comedy", "action"];
const WORDS: [&str; 6] = ["red", "blue", "river", "city", "storm", "garden"];

/// `n` documents of version `version`: every id in `0..n`, searchable, facetable, embedded.
fn documents(version: u64, n: usize) -> Value {
    (0..n)
        .map(|i| {
            json!({
                "id": i,
                "title": format!("item {} {}", WORDS[i % WORDS.len()], WORDS[(i * 5 + 1) % WORDS.len()]),
                "genre": GENRES[i % GENRES.len()],
                "version": version,
                "_vectors": {"emb": [((i as f64) * 0.7).cos(), ((i as f64) * 1.3).sin()]},
            })
        })
        .collect()
}

fn settings() -> Value {
    json!({
        "filterableAttributes": ["genre", "version"],
        "sortableAttributes": ["id"],
        "embedders": {"emb": {"source": "userProvided", "dimensions": 2}},
    })
}

const V1_DOCS: usize = 40;
const V2_DOCS: usize = 50;

struct Fleet {
    nodes: Vec<TestNode>,
    miroir: MiroirProcess,
}

impl Fleet {
    fn url(&self) -> String {
        self.miroir.url()
    }
}

/// `n` nodes of `kind` behind Miroir, with `products_v1` (40 documents of version 1) and
/// `products_v2` (50 of version 2) written through it.
async fn fleet(kind: NodeKind, n: usize) -> Fleet {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(start_node(kind, KEY).await);
    }
    let (port, metrics_port) = (free_port(), free_port());
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let toml = common::config_for(port, metrics_port, &urls, "");
    let miroir = MiroirProcess::start(common::miroir_bin(), &toml, port).await;
    let fleet = Fleet { nodes, miroir };
    for (index, version, count) in [("products_v1", 1, V1_DOCS), ("products_v2", 2, V2_DOCS)] {
        let (s, r) = call(
            &fleet.url(),
            "PATCH",
            &format!("/indexes/{index}/settings"),
            Some(settings()),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        let (s, r) = call(
            &fleet.url(),
            "POST",
            &format!("/indexes/{index}/documents"),
            Some(documents(version, count)),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        let task = wait_task(&fleet.url(), r["taskUid"].as_u64().expect("task uid")).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    fleet
}

/// [`fleet`] with `products` -> `products_v1` and the aliases of `more` (request bodies).
async fn aliased(kind: NodeKind, n: usize, more: &[Value]) -> Fleet {
    let f = fleet(kind, n).await;
    let first = json!({"name": "products", "target": "products_v1"});
    for body in std::iter::once(&first).chain(more) {
        create_alias(&f.url(), body.clone()).await;
    }
    f
}

/// An admin API request: (status, JSON answer).
async fn admin(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .header("X-Admin-Key", ADMIN_KEY)
        .header("X-Miroir-Actor", "test-operator");
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create_alias(base: &str, body: Value) {
    let (s, r) = admin(base, "POST", "/_miroir/aliases", Some(body)).await;
    assert_eq!(s, 201, "{r}");
}

async fn repoint(base: &str, name: &str, target: &str) {
    let (s, r) = admin(
        base,
        "PUT",
        &format!("/_miroir/aliases/{name}"),
        Some(json!({ "target": target })),
    )
    .await;
    assert_eq!(s, 200, "{r}");
}

/// The answer without what differs between two runs of one search (timings).
fn stable(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.remove("processingTimeMs");
        m.remove("requestUid");
        for (_, child) in m.iter_mut() {
            *child = stable(child.take());
        }
    } else if let Value::Array(a) = &mut v {
        for child in a.iter_mut() {
            *child = stable(child.take());
        }
    }
    v
}

/// The same request on the alias and on the index: equal answers.
async fn same_through_alias(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s1, through) = call(base, method, &path.replace("{i}", "products"), body.clone()).await;
    let (s2, direct) = call(base, method, &path.replace("{i}", "products_v1"), body).await;
    assert_eq!(
        (s1, s2),
        (200, 200),
        "{method} {path}: {through} / {direct}"
    );
    assert_eq!(stable(through.clone()), stable(direct), "{method} {path}");
    through
}

fn versions(answer: &Value) -> Vec<u64> {
    answer["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["version"].as_u64().expect("version"))
        .collect()
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    for field in ["message", "type", "link"] {
        assert!(body[field].is_string(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_lists_reads_repoints_and_deletes_aliases() {
    let f = aliased(
        NodeKind::Sim,
        3,
        &[json!({"name": "catalog", "targets": ["products_v1", "products_v2"]})],
    )
    .await;
    let base = f.url();
    let (s, list) = admin(&base, "GET", "/_miroir/aliases", None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["catalog", "products"]);
    let (s, one) = admin(&base, "GET", "/_miroir/aliases/products", None).await;
    assert_eq!(s, 200);
    assert_eq!(one["target"], "products_v1");
    assert_eq!(one["history"], json!([]));
    let (_, many) = admin(&base, "GET", "/_miroir/aliases/catalog", None).await;
    assert_eq!(many["targets"], json!(["products_v1", "products_v2"]));

    // Eleven repoints: the history keeps the last ten, oldest first, with who and when.
    for i in 0..11 {
        let target = if i % 2 == 0 {
            "products_v2"
        } else {
            "products_v1"
        };
        repoint(&base, "products", target).await;
    }
    let (_, one) = admin(&base, "GET", "/_miroir/aliases/products", None).await;
    assert_eq!(one["target"], "products_v2");
    let history = one["history"].as_array().unwrap();
    assert_eq!(history.len(), 10);
    assert_eq!(history[0]["from"], json!(["products_v2"]), "{one}");
    assert_eq!(history[9]["to"], json!(["products_v2"]));
    assert!(history
        .iter()
        .all(|h| h["by"] == "test-operator" && h["at"].is_string()));

    let (s, r) = admin(
        &base,
        "PUT",
        "/_miroir/aliases/catalog",
        Some(json!({"targets": ["products_v2"]})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["history"][0]["from"],
        json!(["products_v1", "products_v2"])
    );

    let (s, r) = admin(&base, "DELETE", "/_miroir/aliases/catalog", None).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = admin(&base, "GET", "/_miroir/aliases/catalog", None).await;
    assert_error(s, &r, 404, "miroir_alias_not_found");
    // The name is free again: a search on it is a search on a missing index.
    let (s, r) = call(&base, "POST", "/indexes/catalog/search", Some(json!({}))).await;
    assert_error(s, &r, 404, "index_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_alias_requests_get_meilisearch_errors_and_change_nothing() {
    let f = aliased(
        NodeKind::Sim,
        2,
        &[json!({"name": "many", "targets": ["products_v1", "products_v2"]})],
    )
    .await;
    let base = f.url();
    let (_, before) = admin(&base, "GET", "/_miroir/aliases", None).await;

    // The admin key, before anything else.
    let resp = client()
        .post(format!("{base}/_miroir/aliases"))
        .bearer_auth(KEY)
        .json(&json!({"name": "x", "target": "products_v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "miroir_invalid_admin_key");

    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/_miroir/aliases",
            json!({"target": "products_v1"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "bad name", "target": "products_v1"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x", "target": "nope"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "products_v2", "target": "products_v1"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x", "target": "products"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x", "targets": ["products_v1", "many"]}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x", "target": "products_v1", "targets": ["products_v2"]}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x", "targets": []}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x", "targets": ["products_v1", "products_v1"]}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "x", "target": "products_v1", "weight": 2}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!(["products"]),
            400,
            "miroir_invalid_alias",
        ),
        (
            "POST",
            "/_miroir/aliases",
            json!({"name": "products", "target": "products_v2"}),
            409,
            "miroir_alias_already_exists",
        ),
        (
            "PUT",
            "/_miroir/aliases/nope",
            json!({"target": "products_v2"}),
            404,
            "miroir_alias_not_found",
        ),
        (
            "PUT",
            "/_miroir/aliases/products",
            json!({"targets": ["products_v2"]}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "PUT",
            "/_miroir/aliases/many",
            json!({"target": "products_v2"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "PUT",
            "/_miroir/aliases/products",
            json!({"target": "missing"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "PUT",
            "/_miroir/aliases/products",
            json!({"target": "many"}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "PUT",
            "/_miroir/aliases/products",
            json!({"target": 3}),
            400,
            "miroir_invalid_alias",
        ),
        (
            "DELETE",
            "/_miroir/aliases/nope",
            Value::Null,
            404,
            "miroir_alias_not_found",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let body = (!body.is_null()).then_some(body);
        let (s, r) = admin(&base, method, path, body.clone()).await;
        assert_error(s, &r, status, code);
        eprintln!("{method} {path} {body:?}: {}", r["message"]);
    }
    // Malformed JSON.
    let resp = client()
        .post(format!("{base}/_miroir/aliases"))
        .header("X-Admin-Key", ADMIN_KEY)
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_error(
        status,
        &resp.json().await.unwrap(),
        400,
        "malformed_payload",
    );

    let (_, after) = admin(&base, "GET", "/_miroir/aliases", None).await;
    assert_eq!(before, after, "a refused request changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_index_route_answers_through_an_alias_as_on_its_index() {
    let f = aliased(NodeKind::Sim, 3, &[]).await;
    let base = f.url();

    // Reads: the same answer as the index's own.
    let r = same_through_alias(
        &base,
        "GET",
        "/indexes/{i}/search?q=item+river&limit=5",
        None,
    )
    .await;
    assert!(!r["hits"].as_array().unwrap().is_empty());
    let body = json!({"q": "item", "filter": "genre = drama", "facets": ["genre"], "sort": ["id:asc"], "limit": 7});
    same_through_alias(&base, "POST", "/indexes/{i}/search", Some(body)).await;
    same_through_alias(&base, "GET", "/indexes/{i}/documents?limit=100", None).await;
    same_through_alias(&base, "GET", "/indexes/{i}/documents/7", None).await;
    same_through_alias(
        &base,
        "POST",
        "/indexes/{i}/documents/fetch",
        Some(json!({"filter": "genre = drama", "limit": 50})),
    )
    .await;
    same_through_alias(&base, "GET", "/indexes/{i}/settings", None).await;
    same_through_alias(
        &base,
        "GET",
        "/indexes/{i}/settings/filterable-attributes",
        None,
    )
    .await;
    same_through_alias(
        &base,
        "POST",
        "/indexes/{i}/facet-search",
        Some(json!({"facetName": "genre", "facetQuery": "d"})),
    )
    .await;
    same_through_alias(
        &base,
        "POST",
        "/indexes/{i}/similar",
        Some(json!({"id": 3, "embedder": "emb", "limit": 5})),
    )
    .await;
    same_through_alias(&base, "GET", "/indexes/{i}/stats", None).await;
    // The index object describes the index the alias names.
    let (s, index) = call(&base, "GET", "/indexes/products", None).await;
    assert_eq!(s, 200, "{index}");
    assert_eq!(index["uid"], "products_v1");

    // Multi-search: each result shows the name its query used.
    let (s, multi) = call(
        &base,
        "POST",
        "/multi-search",
        Some(json!({"queries": [
            {"indexUid": "products", "q": "item", "limit": 5},
            {"indexUid": "products_v1", "q": "item", "limit": 5},
        ]})),
    )
    .await;
    assert_eq!(s, 200, "{multi}");
    assert_eq!(multi["results"][0]["indexUid"], "products");
    assert_eq!(multi["results"][1]["indexUid"], "products_v1");
    assert_eq!(
        multi["results"][0]["hits"], multi["results"][1]["hits"],
        "same hits through the alias"
    );
    let federated = |index: &str| {
        json!({"federation": {"limit": 8, "facetsByIndex": {index: ["genre"]}},
               "queries": [{"indexUid": index, "q": "item"}]})
    };
    let (s, through) = call(&base, "POST", "/multi-search", Some(federated("products"))).await;
    assert_eq!(s, 200, "{through}");
    let (_, direct) = call(
        &base,
        "POST",
        "/multi-search",
        Some(federated("products_v1")),
    )
    .await;
    assert_eq!(through["hits"][0]["_federation"]["indexUid"], "products");
    assert_eq!(
        through["facetsByIndex"]["products"],
        direct["facetsByIndex"]["products_v1"]
    );
    let ids = |v: &Value| -> Vec<Value> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].clone())
            .collect()
    };
    assert_eq!(ids(&through), ids(&direct));

    // Writes land on the index; the task names it, and an SDK's wait on it works.
    let (s, r) = call(
        &base,
        "POST",
        "/indexes/products/documents",
        Some(
            json!([{"id": 1000, "title": "item new", "genre": "drama", "version": 1,
                     "_vectors": {"emb": [0.1, 0.2]}}]),
        ),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["indexUid"], "products_v1");
    let task = wait_task(&base, r["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["indexUid"], "products_v1");
    let (s, _) = call(&base, "GET", "/indexes/products_v1/documents/1000", None).await;
    assert_eq!(s, 200);
    let (s, _) = call(&base, "GET", "/indexes/products_v2/documents/1000", None).await;
    assert_eq!(s, 404, "the other index is untouched");
    let (s, r) = call(&base, "DELETE", "/indexes/products/documents/1000", None).await;
    assert_eq!(s, 202, "{r}");
    wait_task(&base, r["taskUid"].as_u64().unwrap()).await;
    let (s, _) = call(&base, "GET", "/indexes/products_v1/documents/1000", None).await;
    assert_eq!(s, 404);

    // Settings written through the alias.
    let (s, r) = call(
        &base,
        "PUT",
        "/indexes/products/settings/sortable-attributes",
        Some(json!(["id", "version"])),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    let task = wait_task(&base, r["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let (_, v1) = call(
        &base,
        "GET",
        "/indexes/products_v1/settings/sortable-attributes",
        None,
    )
    .await;
    let (_, v2) = call(
        &base,
        "GET",
        "/indexes/products_v2/settings/sortable-attributes",
        None,
    )
    .await;
    assert_eq!((v1, v2), (json!(["id", "version"]), json!(["id"])));

    // The tasks filter: the alias lists its index's tasks.
    let (s, tasks) = call(&base, "GET", "/tasks?indexUids=products&limit=100", None).await;
    assert_eq!(s, 200, "{tasks}");
    let (_, direct) = call(&base, "GET", "/tasks?indexUids=products_v1&limit=100", None).await;
    let results = tasks["results"].as_array().unwrap();
    assert!(results.len() >= 4, "{tasks}");
    assert!(results.iter().all(|t| t["indexUid"] == "products_v1"));
    assert_eq!(tasks["total"], direct["total"]);
    let (s, batches) = call(&base, "GET", "/batches?indexUids=products", None).await;
    assert_eq!(s, 200, "{batches}");

    // A key is judged on the index the alias names, as the nodes judge it.
    for (indexes, want) in [(json!(["products_*"]), 200), (json!(["products"]), 403)] {
        let (s, key) = call(
            &base,
            "POST",
            "/keys",
            Some(json!({"actions": ["search"], "indexes": indexes, "expiresAt": null})),
        )
        .await;
        assert_eq!(s, 201, "{key}");
        let (s, r) = common::search_as(&base, "products", key["key"].as_str().unwrap()).await;
        assert_eq!(s, want, "key for {indexes}: {r}");
    }

    // Explain resolves the alias too: the plan of the index's own search.
    let mut plans = Vec::new();
    for index in ["products", "products_v1"] {
        let (s, plan) = admin(
            &base,
            "POST",
            &format!("/_miroir/indexes/{index}/explain"),
            Some(json!({"q": "item", "filter": "id = 3"})),
        )
        .await;
        assert_eq!(s, 200, "{plan}");
        plans.push(plan);
    }
    assert_eq!(plans[0]["alias"], "products");
    plans[0].as_object_mut().unwrap().remove("alias");
    assert_eq!(plans[0], plans[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_of_several_indexes_merges_searches_and_refuses_everything_else() {
    let f = fleet(NodeKind::Sim, 3).await;
    let base = f.url();
    create_alias(
        &base,
        json!({"name": "catalog", "targets": ["products_v1", "products_v2"]}),
    )
    .await;

    for body in [
        json!({"q": "item", "limit": 15, "offset": 3}),
        json!({"q": "river", "facets": ["genre", "version"], "showRankingScore": true}),
        json!({"q": "", "filter": "genre = comedy", "sort": ["id:desc"], "limit": 30}),
        json!({"q": "storm", "hitsPerPage": 4, "page": 2}),
    ] {
        let (s, merged) = call(&base, "POST", "/indexes/catalog/search", Some(body.clone())).await;
        assert_eq!(s, 200, "{body}: {merged}");
        // The same search as a federated multi-search over the two indexes.
        let mut query = body.as_object().unwrap().clone();
        let mut federation = serde_json::Map::new();
        for k in ["offset", "limit", "page", "hitsPerPage"] {
            if let Some(v) = query.remove(k) {
                federation.insert(k.into(), v);
            }
        }
        if let Some(facets) = query.remove("facets") {
            federation.insert(
                "facetsByIndex".into(),
                json!({"products_v1": facets, "products_v2": facets}),
            );
            federation.insert("mergeFacets".into(), json!({"maxValuesPerFacet": 100}));
        }
        let queries: Vec<Value> = ["products_v1", "products_v2"]
            .iter()
            .map(|i| {
                let mut q = query.clone();
                q.insert("indexUid".into(), json!(i));
                Value::Object(q)
            })
            .collect();
        let (s, fed) = call(
            &base,
            "POST",
            "/multi-search",
            Some(json!({"federation": federation, "queries": queries})),
        )
        .await;
        assert_eq!(s, 200, "{fed}");
        let mut fed_hits = fed["hits"].clone();
        for h in fed_hits.as_array_mut().unwrap() {
            h.as_object_mut().unwrap().remove("_federation");
        }
        assert_eq!(merged["hits"], fed_hits, "{body}");
        for k in [
            "estimatedTotalHits",
            "totalHits",
            "totalPages",
            "facetDistribution",
            "facetStats",
        ] {
            assert_eq!(merged.get(k), fed.get(k), "{k} of {body}");
        }
        assert_eq!(merged["query"], body.get("q").cloned().unwrap_or(json!("")));
        assert!(merged.get("facetsByIndex").is_none());
    }
    // A refused search: Meilisearch's error, without the federated query it came from.
    let (s, r) = call(
        &base,
        "POST",
        "/indexes/catalog/search",
        Some(json!({"filter": "title = x"})),
    )
    .await;
    assert_error(s, &r, 400, "invalid_search_filter");
    assert!(!r["message"].as_str().unwrap().starts_with("Inside"), "{r}");
    // Both indexes answer: 40 + 50 documents.
    let (_, all) = call(&base, "GET", "/indexes/catalog/search?limit=1", None).await;
    assert_eq!(
        all["estimatedTotalHits"],
        (V1_DOCS + V2_DOCS) as u64,
        "{all}"
    );
    // In a multi-search: the merged answer, under the alias's name.
    let (s, multi) = call(
        &base,
        "POST",
        "/multi-search",
        Some(json!({"queries": [{"indexUid": "catalog", "q": "item", "limit": 15, "offset": 3}]})),
    )
    .await;
    assert_eq!(s, 200, "{multi}");
    let (_, single) = call(
        &base,
        "POST",
        "/indexes/catalog/search",
        Some(json!({"q": "item", "limit": 15, "offset": 3})),
    )
    .await;
    assert_eq!(multi["results"][0]["indexUid"], "catalog");
    assert_eq!(multi["results"][0]["hits"], single["hits"]);
    // In a federated multi-search: one query per index, shown under each index's uid, with
    // the facets `facetsByIndex` asks of the alias.
    let (s, fed) = call(
        &base,
        "POST",
        "/multi-search",
        Some(
            json!({"federation": {"limit": 100, "facetsByIndex": {"catalog": ["version"]}},
                    "queries": [{"indexUid": "catalog", "q": ""}]}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{fed}");
    assert_eq!(
        fed["estimatedTotalHits"],
        (V1_DOCS + V2_DOCS) as u64,
        "{fed}"
    );
    let shown: std::collections::BTreeSet<&str> = fed["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_federation"]["indexUid"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["products_v1", "products_v2"].into());
    assert_eq!(
        fed["facetsByIndex"]["products_v2"]["distribution"]["version"],
        json!({"2": V2_DOCS})
    );

    // Writes, settings changes and deletions: refused, nothing changed.
    let writes: Vec<(&str, &str, Option<Value>)> = vec![
        (
            "POST",
            "/indexes/catalog/documents",
            Some(json!([{"id": 5000}])),
        ),
        (
            "PUT",
            "/indexes/catalog/documents",
            Some(json!([{"id": 5000}])),
        ),
        ("DELETE", "/indexes/catalog/documents/1", None),
        (
            "POST",
            "/indexes/catalog/documents/delete-batch",
            Some(json!([1, 2])),
        ),
        ("DELETE", "/indexes/catalog/documents", None),
        (
            "PATCH",
            "/indexes/catalog/settings",
            Some(json!({"sortableAttributes": []})),
        ),
        (
            "PUT",
            "/indexes/catalog/settings/stop-words",
            Some(json!(["a"])),
        ),
        ("DELETE", "/indexes/catalog", None),
        (
            "PATCH",
            "/indexes/catalog",
            Some(json!({"primaryKey": "id"})),
        ),
    ];
    for (method, path, body) in writes {
        let (s, r) = call(&base, method, path, body).await;
        assert_error(s, &r, 409, "miroir_multi_alias_not_writable");
    }
    let reads: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/indexes/catalog", None),
        ("GET", "/indexes/catalog/documents", None),
        ("GET", "/indexes/catalog/documents/1", None),
        ("GET", "/indexes/catalog/settings", None),
        ("GET", "/indexes/catalog/stats", None),
        (
            "POST",
            "/indexes/catalog/facet-search",
            Some(json!({"facetName": "genre"})),
        ),
        (
            "POST",
            "/indexes/catalog/similar",
            Some(json!({"id": 1, "embedder": "emb"})),
        ),
    ];
    for (method, path, body) in reads {
        let (s, r) = call(&base, method, path, body).await;
        assert_error(s, &r, 400, "miroir_multi_alias_unsupported_route");
    }
    for (index, count) in [("products_v1", V1_DOCS), ("products_v2", V2_DOCS)] {
        let (_, stats) = call(&base, "GET", &format!("/indexes/{index}/stats"), None).await;
        assert_eq!(stats["numberOfDocuments"], count as u64);
        let (_, sw) = call(
            &base,
            "GET",
            &format!("/indexes/{index}/settings/sortable-attributes"),
            None,
        )
        .await;
        assert_eq!(sw, json!(["id"]));
    }
    // The key is still checked first.
    for (method, path) in [
        ("POST", "/indexes/catalog/documents"),
        ("GET", "/indexes/catalog"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client()
            .request(method, format!("{base}{path}"))
            .json(&json!([{"id": 1}]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_indexes_are_not_deleted_and_swaps_keep_aliases_on_uids() {
    let f = aliased(NodeKind::Sim, 2, &[]).await;
    let base = f.url();

    for path in ["/indexes/products_v1", "/indexes/products"] {
        let (s, r) = call(&base, "DELETE", path, None).await;
        assert_error(s, &r, 409, "miroir_index_has_aliases");
    }
    let (s, _) = call(&base, "GET", "/indexes/products_v1", None).await;
    assert_eq!(s, 200, "still there");

    // An alias is not an index: it cannot be created, swapped or renamed onto.
    let (s, r) = call(&base, "POST", "/indexes", Some(json!({"uid": "products"}))).await;
    assert_error(s, &r, 400, "miroir_invalid_alias");
    let (s, r) = call(
        &base,
        "POST",
        "/swap-indexes",
        Some(json!([{"indexes": ["products", "products_v2"]}])),
    )
    .await;
    assert_error(s, &r, 400, "miroir_invalid_alias");

    // Swapping two indexes: the alias keeps naming the uid, which now holds the other data.
    let (s, r) = call(
        &base,
        "POST",
        "/swap-indexes",
        Some(json!([{"indexes": ["products_v1", "products_v2"]}])),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    let task = wait_task(&base, r["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let (_, a) = admin(&base, "GET", "/_miroir/aliases/products", None).await;
    assert_eq!(a["target"], "products_v1");
    let (_, found) = call(
        &base,
        "POST",
        "/indexes/products/search",
        Some(json!({"limit": 100})),
    )
    .await;
    assert!(versions(&found).iter().all(|v| *v == 2), "{found}");
    assert_eq!(found["estimatedTotalHits"], V2_DOCS as u64);

    // An index deleted behind Miroir's back leaves the alias dangling: the nodes' answer.
    create_alias(&base, json!({"name": "gone", "target": "products_v2"})).await;
    for node in &f.nodes {
        let (s, r) = call(&node.url(), "DELETE", "/indexes/products_v2", None).await;
        assert_eq!(s, 202, "{r}");
        node.wait_task(r["taskUid"].as_u64().unwrap()).await;
    }
    let (s, r) = call(&base, "POST", "/indexes/gone/search", Some(json!({}))).await;
    assert_error(s, &r, 404, "index_not_found");
    assert!(
        r["message"].as_str().unwrap().contains("products_v2"),
        "{r}"
    );

    // Repointed away, the old index can go.
    let (s, r) = call(
        &base,
        "POST",
        "/indexes",
        Some(json!({"uid": "products_v3"})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    wait_task(&base, r["taskUid"].as_u64().unwrap()).await;
    repoint(&base, "products", "products_v3").await;
    let (s, r) = call(&base, "DELETE", "/indexes/products_v1", None).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(
        wait_task(&base, r["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
}

/// The blue-green reindex: clients search `products` while it moves from v1 to v2 and back;
/// no search fails, each answer comes wholly from one index, and every search that starts
/// after a repoint answered sees the new index.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repointing_under_concurrent_searches_never_fails_or_mixes() {
    let f = aliased(NodeKind::Sim, 3, &[]).await;
    let base = f.url();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (errors, mixed, seen_v1, seen_v2) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut searchers = Vec::new();
    for s in 0..3 {
        let (base, stop) = (base.clone(), stop.clone());
        let (errors, mixed, seen_v1, seen_v2) = (
            errors.clone(),
            mixed.clone(),
            seen_v1.clone(),
            seen_v2.clone(),
        );
        searchers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (status, answer) = if s == 0 {
                    call(&base, "GET", "/indexes/products/search?limit=100", None).await
                } else {
                    call(
                        &base,
                        "POST",
                        "/indexes/products/search",
                        Some(json!({"q": "item", "limit": 100})),
                    )
                    .await
                };
                if status != 200 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("search failed: {status} {answer}");
                    continue;
                }
                let v = versions(&answer);
                let expected = match v.first() {
                    Some(1) => V1_DOCS,
                    Some(2) => V2_DOCS,
                    _ => usize::MAX,
                };
                if v.len() != expected || v.iter().any(|x| *x != v[0]) {
                    mixed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("mixed answer: {v:?}");
                } else if v[0] == 1 {
                    seen_v1.fetch_add(1, Ordering::Relaxed);
                } else {
                    seen_v2.fetch_add(1, Ordering::Relaxed);
                }
            }
            n
        }));
    }
    let mut stale_after_repoint = 0;
    let mut repoint_ms = Vec::new();
    for round in 0..12 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (target, version) = if round % 2 == 0 {
            ("products_v2", 2)
        } else {
            ("products_v1", 1)
        };
        let started = std::time::Instant::now();
        repoint(&base, "products", target).await;
        repoint_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let (s, answer) = call(
            &base,
            "POST",
            "/indexes/products/search",
            Some(json!({"limit": 100})),
        )
        .await;
        assert_eq!(s, 200);
        if versions(&answer).iter().any(|v| *v != version) {
            stale_after_repoint += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    stop.store(true, Ordering::Relaxed);
    let mut searches = 0;
    for s in searchers {
        searches += s.await.unwrap();
    }
    let (e, m, v1, v2) = (
        errors.load(Ordering::Relaxed),
        mixed.load(Ordering::Relaxed),
        seen_v1.load(Ordering::Relaxed),
        seen_v2.load(Ordering::Relaxed),
    );
    repoint_ms.sort_by(f64::total_cmp);
    eprintln!(
        "{searches} searches during 12 repoints: {v1} from v1, {v2} from v2, {e} errors, {m} mixed; \
         a repoint answered in {:.1}-{:.1} ms (median {:.1})",
        repoint_ms[0],
        repoint_ms[repoint_ms.len() - 1],
        repoint_ms[repoint_ms.len() / 2]
    );
    assert_eq!((e, m, stale_after_repoint), (0, 0, 0));
    assert!(v1 > 0 && v2 > 0, "both indexes answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_and_their_history_survive_a_restart() {
    let mut f = aliased(
        NodeKind::Sim,
        2,
        &[json!({"name": "catalog", "targets": ["products_v1", "products_v2"]})],
    )
    .await;
    let base = f.url();
    repoint(&base, "products", "products_v2").await;
    let (_, before) = admin(&base, "GET", "/_miroir/aliases", None).await;
    f.miroir.crash_and_restart(common::miroir_bin()).await;
    let (_, after) = admin(&base, "GET", "/_miroir/aliases", None).await;
    assert_eq!(before, after);
    let (s, found) = call(
        &base,
        "POST",
        "/indexes/products/search",
        Some(json!({"limit": 100})),
    )
    .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["estimatedTotalHits"], V2_DOCS as u64);
    let (_, all) = call(
        &base,
        "POST",
        "/indexes/catalog/search",
        Some(json!({"limit": 1})),
    )
    .await;
    assert_eq!(all["estimatedTotalHits"], (V1_DOCS + V2_DOCS) as u64);
}

/// Real Meilisearch 1.50 nodes: what an SDK does through an alias (write, wait for the task,
/// search, settings) works, and a repoint moves the next search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nodes_serve_search_documents_settings_and_task_waits_through_an_alias() {
    let _bin = require_meili_bin!();
    let f = aliased(NodeKind::Real, 2, &[]).await;
    let base = f.url();
    assert_eq!(f.nodes.len(), 2);

    let (s, r) = call(
        &base,
        "POST",
        "/indexes/products/documents",
        Some(
            json!([{"id": 500, "title": "item lighthouse", "genre": "drama", "version": 1,
                     "_vectors": {"emb": [0.3, 0.4]}}]),
        ),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    let task = wait_task(&base, r["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["indexUid"], "products_v1");
    let found = same_through_alias(
        &base,
        "POST",
        "/indexes/{i}/search",
        Some(json!({"q": "lighthouse"})),
    )
    .await;
    assert_eq!(found["hits"][0]["id"], 500, "{found}");
    same_through_alias(
        &base,
        "GET",
        "/indexes/{i}/search?q=item&facets=genre&limit=10",
        None,
    )
    .await;
    same_through_alias(&base, "GET", "/indexes/{i}/documents/500", None).await;

    let (s, r) = call(
        &base,
        "PATCH",
        "/indexes/products/settings",
        Some(json!({"stopWords": ["the"]})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(
        wait_task(&base, r["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let settings = same_through_alias(&base, "GET", "/indexes/{i}/settings", None).await;
    assert_eq!(settings["stopWords"], json!(["the"]));
    let (_, v2) = call(
        &base,
        "GET",
        "/indexes/products_v2/settings/stop-words",
        None,
    )
    .await;
    assert_eq!(v2, json!([]));

    repoint(&base, "products", "products_v2").await;
    let (_, after) = call(
        &base,
        "POST",
        "/indexes/products/search",
        Some(json!({"limit": 100})),
    )
    .await;
    assert!(versions(&after).iter().all(|v| *v == 2), "{after}");
    assert_eq!(after["estimatedTotalHits"], V2_DOCS as u64);
    let (s, r) = call(
        &base,
        "POST",
        "/indexes/products/search",
        Some(json!({"q": "lighthouse"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        r["hits"],
        json!([]),
        "the new index does not hold v1's document"
    );
}

/// `miroir ctl alias ...` drives the same API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_alias_commands_drive_the_admin_api() {
    let f = fleet(NodeKind::Sim, 2).await;
    let base = f.url();
    assert_eq!(
        alias_ctl(&base, "create products products_v1").await,
        (true, "created products -> products_v1\n".into())
    );
    assert_eq!(
        alias_ctl(&base, "create catalog products_v1,products_v2").await,
        (true, "created catalog -> products_v1,products_v2\n".into())
    );
    assert!(alias_ctl(&base, "repoint products products_v2").await.0);
    let (ok, shown) = alias_ctl(&base, "get products").await;
    assert!(ok, "{shown}");
    assert!(
        shown.starts_with("products -> products_v2\n")
            && shown.contains("products_v1 -> products_v2"),
        "{shown}"
    );
    assert_eq!(
        alias_ctl(&base, "list").await,
        (
            true,
            "catalog -> products_v1,products_v2\nproducts -> products_v2\n".into()
        )
    );
    let (ok, refused) = alias_ctl(&base, "create x nope").await;
    assert!(!ok && refused.contains("miroir_invalid_alias"), "{refused}");
    assert_eq!(
        alias_ctl(&base, "delete catalog").await,
        (true, "deleted alias catalog\n".into())
    );
    let (_, a) = admin(&base, "GET", "/_miroir/aliases/products", None).await;
    assert_eq!(a["target"], "products_v2");
}

/// An alias never points to an index whose deletion is accepted but not yet applied, and never
/// takes the name of an index being created (nodes that take 400 ms per task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_wait_for_no_queued_index_creation_or_deletion() {
    let c = common::slow_cluster(2, Duration::from_millis(400), "").await;
    let base = c.miroir.url();
    let (s, r) = call(
        &base,
        "POST",
        "/indexes",
        Some(json!({"uid": "old", "primaryKey": "id"})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(
        wait_task(&base, r["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );

    let (s, deletion) = call(&base, "DELETE", "/indexes/old", None).await;
    assert_eq!(s, 202, "{deletion}");
    let (s, r) = admin(
        &base,
        "POST",
        "/_miroir/aliases",
        Some(json!({"name": "a", "target": "old"})),
    )
    .await;
    assert_error(s, &r, 400, "miroir_invalid_alias");
    assert!(
        r["message"].as_str().unwrap().contains("being deleted"),
        "{r}"
    );

    let (s, creation) = call(&base, "POST", "/indexes", Some(json!({"uid": "fresh"}))).await;
    assert_eq!(s, 202, "{creation}");
    let (_, r) = admin(
        &base,
        "POST",
        "/_miroir/aliases",
        Some(json!({"name": "fresh", "target": "old"})),
    )
    .await;
    assert_eq!(r["code"], "miroir_invalid_alias", "{r}");
    for task in [deletion, creation] {
        wait_task(&base, task["taskUid"].as_u64().unwrap()).await;
    }
    let (_, list) = admin(&base, "GET", "/_miroir/aliases", None).await;
    assert_eq!(list["results"], json!([]));
}

/// `miroir ctl alias ARGS` (space-separated).
async fn alias_ctl(base: &str, args: &str) -> (bool, String) {
    let args: Vec<&str> = std::iter::once("alias").chain(args.split(' ')).collect();
    common::ctl_outcome(base, &args).await
}
