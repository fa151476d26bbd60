//! What the official SDKs meet besides search itself, through Miroir over three nodes and on
//! one node holding the same data: the task and batch routes' filters and errors, batch
//! objects, `GET /tasks/{uid}/documents`, multi-search options and keys, GET search
//! parameters, tenant tokens signed with an API key. Each runs over simulated nodes and,
//! when a Meilisearch binary is available, over real ones.

mod common;

use common::{compared, compared_rf, kinds, sorted_ids, wait_idle, Compared, KEY};
use miroir_testkit::Client;
use serde_json::{json, Value};

fn settings() -> Value {
    json!({
        "filterableAttributes": ["genre"],
        "sortableAttributes": ["id"],
        "embedders": {"e": {"source": "userProvided", "dimensions": 3}},
    })
}

fn documents() -> Vec<Value> {
    let words = [
        "red apple",
        "red pear",
        "blue fig",
        "green apple",
        "red plum",
        "blue sky",
    ];
    (0..30)
        .map(|i| {
            // Distinct vectors: no two documents tie in a semantic search.
            let v = [1.0, i as f64 / 30.0, ((i * 7) % 11) as f64 / 11.0];
            let genre = ["a", "b", "c"][i % 3];
            json!({
                "id": i,
                "title": format!("{} {i}", words[i % words.len()]),
                "genre": genre,
                "_vectors": {"e": v},
            })
        })
        .collect()
}

/// Miroir's client and the reference node's, with the master key.
fn clients(c: &Compared) -> (Client, Client) {
    (
        Client::new(&c.miroir.url(), Some(KEY)),
        Client::new(&c.reference.url(), Some(KEY)),
    )
}

/// What an error answer is made of, or `None` for a success.
fn error_of(status: u16, body: &Value) -> Option<Value> {
    (status >= 400).then(|| json!([status, body["code"], body["message"]]))
}

/// `GET /tasks` and `GET /batches` with date filters of `*`, unknown types and statuses, lists
/// of several items, unknown parameters: the same status, error code and message, or the same
/// total, as one node. `POST /tasks/cancel` and `DELETE /tasks` accept `*` and refuse the same.
#[tokio::test]
async fn task_filters_answer_as_one_node() {
    let today = time::OffsetDateTime::now_utc().date();
    let today = format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        today.month() as u8,
        today.day()
    );
    let queries = [
        "afterEnqueuedAt=*".to_owned(),
        "beforeStartedAt=*&afterFinishedAt=*".to_owned(),
        "types=foo".to_owned(),
        "types=documentAdditionOrUpdate,foo".to_owned(),
        "types=*,foo".to_owned(),
        "types=foo,".to_owned(),
        "types=documentAdditionOrUpdate,%20settingsUpdate".to_owned(),
        "types=*".to_owned(),
        "types=".to_owned(),
        "statuses=succeeded,foo".to_owned(),
        "statuses=*,succeeded".to_owned(),
        "indexUids=m,a%20b".to_owned(),
        "uids=1,%202".to_owned(),
        "batchUids=x".to_owned(),
        "canceledBy=x".to_owned(),
        "foo=1".to_owned(),
        format!("afterEnqueuedAt={today}"),
        format!("beforeEnqueuedAt={today}"),
        "beforeEnqueuedAt=2999-01-01".to_owned(),
        "afterFinishedAt=x".to_owned(),
    ];
    for kind in kinds() {
        let c = compared(kind, &["m"], &settings(), &documents()).await;
        let (miroir, reference) = clients(&c);
        for route in ["/tasks", "/batches"] {
            for q in &queries {
                let path = format!("{route}?{q}");
                let (s1, through) = miroir.get(&path).await;
                let (s2, direct) = reference.get(&path).await;
                assert_eq!(
                    error_of(s1, &through),
                    error_of(s2, &direct),
                    "{kind:?} {path}: {through} / {direct}"
                );
                assert_eq!(through["total"], direct["total"], "{kind:?} {path}");
            }
        }
        for (method, path) in [
            ("POST", "/tasks/cancel?afterEnqueuedAt=*"),
            ("DELETE", "/tasks?beforeEnqueuedAt=*&uids=99"),
            ("POST", "/tasks/cancel?limit=1"),
            ("DELETE", "/tasks?types=x"),
            ("POST", "/tasks/cancel?statuses=enqueued,nope"),
        ] {
            let mut seen = Vec::new();
            for client in [&miroir, &reference] {
                let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let (status, task) = client.send(method, path, None).await;
                if let Some(err) = error_of(status, &task) {
                    seen.push(err);
                    continue;
                }
                let done = client
                    .wait_task(task["taskUid"].as_u64().expect("uid"))
                    .await;
                seen.push(json!([
                    status,
                    done["status"],
                    done["type"],
                    done["details"]
                ]));
            }
            assert_eq!(
                seen[0], seen[1],
                "{kind:?} {path}: through Miroir, then one node"
            );
        }
    }
}

/// A batch shows when it started and a `progressTrace` in its stats, like a node's, for a
/// write the nodes processed and for one that failed before any node saw it.
#[tokio::test]
async fn batches_show_their_start_and_progress_trace() {
    for kind in kinds() {
        let c = compared(kind, &["m"], &settings(), &documents()).await;
        let (miroir, reference) = clients(&c);
        let mut failing = Vec::new();
        for client in [&miroir, &reference] {
            // No primary key to infer: accepted, then failed (on one node and by Miroir).
            let (status, task) = client
                .post("/indexes/nokey/documents", json!([{"x": 1}]))
                .await;
            assert_eq!(status, 202, "{kind:?}: {task}");
            let uid = task["taskUid"].as_u64().expect("uid");
            assert_eq!(client.wait_task(uid).await["status"], "failed", "{kind:?}");
            failing.push(uid);
        }
        for (client, failed) in [(&miroir, failing[0]), (&reference, failing[1])] {
            let (status, list) = client.get("/batches").await;
            assert_eq!(status, 200, "{kind:?}: {list}");
            let batches = list["results"].as_array().expect("results");
            assert!(batches.len() >= 3, "{kind:?}: {list}");
            for batch in batches {
                assert!(batch["startedAt"].is_string(), "{kind:?}: {batch}");
                assert!(batch["finishedAt"].is_string(), "{kind:?}: {batch}");
                let trace = batch["stats"]["progressTrace"].as_object();
                assert!(trace.is_some(), "{kind:?}: {batch}");
            }
            let (status, one) = client.get(&format!("/batches/{failed}")).await;
            assert_eq!(status, 200, "{kind:?}: {one}");
            assert!(one["startedAt"].is_string(), "{kind:?}: {one}");
            assert_eq!(one["stats"]["status"], json!({"failed": 1}), "{kind:?}");
        }
        let (_, a) = miroir.get("/batches?limit=1").await;
        let (_, b) = reference.get("/batches?limit=1").await;
        let keys = |v: &Value| -> Vec<String> {
            v["results"][0]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(keys(&a), keys(&b), "{kind:?}: {a} / {b}");
    }
}

/// `GET /tasks/{uid}/documents`: refused without the experimental feature, then for a
/// finished task, an unknown one and a malformed uid, each as one node refuses it.
#[tokio::test]
async fn task_documents_route_answers_as_one_node() {
    for kind in kinds() {
        let c = compared(kind, &["m"], &settings(), &documents()).await;
        let (miroir, reference) = clients(&c);
        let last = |client: &Client| {
            let client = client.clone();
            async move {
                let (_, list) = client
                    .get("/tasks?limit=1&types=documentAdditionOrUpdate")
                    .await;
                list["results"][0]["uid"].as_u64().expect("a document task")
            }
        };
        let uids = [last(&miroir).await, last(&reference).await];
        let mut answers: Vec<Vec<Value>> = vec![Vec::new(), Vec::new()];
        for (i, client) in [&miroir, &reference].into_iter().enumerate() {
            let uid = uids[i];
            let ask = |path: String| {
                let client = client.clone();
                async move {
                    let (s, body) = client.get(&path).await;
                    // The task's own uid appears in the message; one node numbers differently.
                    let message = body["message"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(&format!("`{uid}`"), "`N`");
                    json!([s, body["code"], message])
                }
            };
            answers[i].push(ask(format!("/tasks/{uid}/documents")).await);
            let (s, f) = client
                .patch(
                    "/experimental-features",
                    json!({"getTaskDocumentsRoute": true}),
                )
                .await;
            assert_eq!(s, 200, "{kind:?}: {f}");
            answers[i].push(ask(format!("/tasks/{uid}/documents")).await);
            answers[i].push(ask("/tasks/999999/documents".to_owned()).await);
            answers[i].push(ask("/tasks/x/documents".to_owned()).await);
            let (s, body) = client
                .with_key(None)
                .get(&format!("/tasks/{uid}/documents"))
                .await;
            answers[i].push(json!([s, body["code"]]));
        }
        assert_eq!(
            answers[0], answers[1],
            "{kind:?}: through Miroir, then one node"
        );
        assert_eq!(answers[0][0][1], "feature_not_enabled", "{kind:?}");
        assert_eq!(answers[0][1][1], "task_file_not_found", "{kind:?}");
    }
}

/// Multi-search: no key and a wrong key refused as one node refuses them (with and without
/// queries); `federation.distinct` and `federation.showPerformanceDetails` answered with the
/// hits, total and shape one node gives; options a node refuses in a federated query refused.
#[tokio::test]
async fn multi_search_options_and_keys_answer_as_one_node() {
    for kind in kinds() {
        let c = compared(kind, &["m", "n"], &settings(), &documents()).await;
        let (miroir, reference) = clients(&c);
        let pair = |body: Value| {
            let (miroir, reference) = (miroir.clone(), reference.clone());
            async move {
                let a = miroir.post("/multi-search", body.clone()).await;
                let b = reference.post("/multi-search", body).await;
                (a, b)
            }
        };
        for key in [None, Some("not-a-key")] {
            for body in [
                json!({"queries": []}),
                json!({"queries": [{"indexUid": "m", "q": "red"}]}),
            ] {
                let a = miroir
                    .with_key(key)
                    .post("/multi-search", body.clone())
                    .await;
                let b = reference
                    .with_key(key)
                    .post("/multi-search", body.clone())
                    .await;
                assert_eq!(
                    error_of(a.0, &a.1),
                    error_of(b.0, &b.1),
                    "{kind:?} {key:?} {body}"
                );
                assert!(a.0 == 401 || a.0 == 403, "{kind:?}: {}", a.1);
            }
        }
        // Hits of equal scores may be different documents (one node breaks ties by internal
        // id): compared by index and distinct value.
        let ids = |v: &Value| -> Vec<String> {
            let mut ids: Vec<String> = v["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| format!("{}/{}", h["_federation"]["indexUid"], h["genre"]))
                .collect();
            ids.sort();
            ids
        };
        for body in [
            json!({"federation": {"distinct": "genre"}, "queries": [{"indexUid": "m", "q": "red"}, {"indexUid": "n", "q": "blue"}]}),
            json!({"federation": {"distinct": "genre", "limit": 2}, "queries": [{"indexUid": "m", "q": "apple"}]}),
            json!({"federation": {"showPerformanceDetails": true}, "queries": [{"indexUid": "m", "q": "red"}, {"indexUid": "n", "q": "fig"}]}),
        ] {
            let ((s1, a), (s2, b)) = pair(body.clone()).await;
            assert_eq!((s1, s2), (200, 200), "{kind:?} {body}: {a} / {b}");
            assert_eq!(ids(&a), ids(&b), "{kind:?} {body}: {a} / {b}");
            assert_eq!(
                a["estimatedTotalHits"], b["estimatedTotalHits"],
                "{kind:?} {body}"
            );
            assert_eq!(
                a["performanceDetails"].is_object(),
                b["performanceDetails"].is_object(),
                "{kind:?} {body}: {a}"
            );
        }
        let ((s, plain), _) = pair(
            json!({"queries": [{"indexUid": "m", "q": "red", "showPerformanceDetails": true}]}),
        )
        .await;
        assert_eq!(s, 200, "{kind:?}: {plain}");
        assert!(
            plain["results"][0]["performanceDetails"].is_object(),
            "{kind:?}: {plain}"
        );
        for body in [
            json!({"federation": {}, "queries": [{"indexUid": "m", "q": "red", "showPerformanceDetails": true}]}),
            json!({"federation": {"distinct": "genre"}, "queries": [{"indexUid": "m", "distinct": "genre"}]}),
            json!({"federation": {"distinct": "title"}, "queries": [{"indexUid": "m"}]}),
            json!({"federation": {"nope": 1}, "queries": [{"indexUid": "m"}]}),
        ] {
            let ((s1, a), (s2, b)) = pair(body.clone()).await;
            assert_eq!(error_of(s1, &a), error_of(s2, &b), "{kind:?} {body}");
            assert!(s1 >= 400, "{kind:?} {body}: {a}");
        }
    }
}

/// GET search with every parameter family Meilisearch 1.50 reads from a query string
/// (`vector`, `hybridEmbedder`, `hybridSemanticRatio`, lists, JSON filters, numbers,
/// booleans), valid and not: the same hits and total, or the same error, as one node.
#[tokio::test]
async fn get_search_parameters_answer_as_one_node() {
    let queries = [
        "q=red",
        "vector=0,1,1&hybridEmbedder=e&hybridSemanticRatio=1",
        "vector=0,1,1&hybridEmbedder=e",
        "q=red&vector=1,0,1&hybridEmbedder=e&hybridSemanticRatio=0.5&showRankingScore=true",
        "q=red&hybridEmbedder=e&hybridSemanticRatio=0",
        "q=red&hybridEmbedder=e&hybridSemanticRatio=0.5",
        "vector=%5B0,1,1%5D&hybridEmbedder=e",
        "vector=0,1,1",
        "q=red&hybridSemanticRatio=0.5",
        "q=red&hybridEmbedder=e&hybridSemanticRatio=x",
        "q=red&hybridEmbedder=e&hybridSemanticRatio=1.5",
        "q=red&vector=a,b&hybridEmbedder=e",
        "q=red&filter=%5B%22genre%20%3D%20a%22%5D",
        "q=red&filter=%5B%5B%22genre%20%3D%20a%22,%22genre%20%3D%20b%22%5D%5D",
        "q=red&filter=genre%20%3D%20b",
        "q=red&attributesToRetrieve=id,%20title",
        "q=red&attributesToRetrieve=id,title&retrieveVectors=true",
        "q=red&locales=eng,fra&attributesToSearchOn=title",
        "q=red&attributesToSearchOn=nope",
        "q=red&sort=id:desc&limit=3&offset=1",
        "q=red&sort=id:asc&page=2&hitsPerPage=2",
        "q=red&limit=x",
        "q=red&showRankingScore=yes",
        "q=red&facets=genre,%20id",
        "q=red&facets=genre",
        "q=red&distinct=genre&sort=id:asc",
        "q=red&rankingScoreThreshold=0.5",
        "q=red&filter=nope%20%3D%201",
        "q=red&matchingStrategy=all",
        "q=red&unknown=1",
    ];
    for kind in kinds() {
        let c = compared(kind, &["m"], &settings(), &documents()).await;
        let (miroir, reference) = clients(&c);
        for q in queries {
            let path = format!("/indexes/m/search?{q}");
            let (s1, a) = miroir.get(&path).await;
            let (s2, b) = reference.get(&path).await;
            if b["code"] == "not_implemented_in_simulator" {
                // Hybrid search mixing both halves: the real-node variant checks it.
                continue;
            }
            assert_eq!(
                error_of(s1, &a),
                error_of(s2, &b),
                "{kind:?} {q}: {a} / {b}"
            );
            if s1 != 200 {
                continue;
            }
            let hits = |v: &Value| -> Vec<Value> {
                let mut hits: Vec<Value> = v["hits"].as_array().cloned().unwrap_or_default();
                for h in &mut hits {
                    if let Some(o) = h.as_object_mut() {
                        o.remove("_rankingScore");
                    }
                }
                hits.sort_by_key(|h| h["id"].to_string());
                hits
            };
            assert_eq!(hits(&a), hits(&b), "{kind:?} {q}: {a} / {b}");
            for key in [
                "estimatedTotalHits",
                "totalHits",
                "facetDistribution",
                "semanticHitCount",
            ] {
                assert_eq!(a[key], b[key], "{kind:?} {q} {key}: {a} / {b}");
            }
        }
    }
}

/// A tenant token signed with an API key other than the master key: its search works, and its
/// search rules (a filter, on one index) combine with the filter of each node's shards.
#[tokio::test]
async fn tenant_tokens_signed_with_an_api_key_search_as_on_one_node() {
    for kind in kinds() {
        // RF 2: each node is asked for part of its shards and filters on the shard field.
        let c = compared_rf(kind, 2, &["m", "n"], &settings(), &documents()).await;
        let (miroir, reference) = clients(&c);
        let uid = "5f5ae3a1-2d4b-4a8e-9b3c-0d1e2f3a4b5c";
        let mut keys = Vec::new();
        for client in [&miroir, &reference] {
            let (s, key) = client
                .post(
                    "/keys",
                    json!({"uid": uid, "actions": ["search"], "indexes": ["*"], "expiresAt": null}),
                )
                .await;
            assert_eq!(s, 201, "{kind:?}: {key}");
            keys.push(key["key"].as_str().expect("key").to_owned());
        }
        wait_idle(&c.reference.url()).await;
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        for rules in [
            json!(["*"]),
            json!({"m": {"filter": "genre = a"}}),
            json!({"*": {"filter": "genre = b OR genre = c"}, "n": null}),
            json!({"m": {"filter": ["genre = a", ["genre = b", "genre = c"]]}}),
        ] {
            let mut seen = Vec::new();
            for (client, key) in [(&miroir, &keys[0]), (&reference, &keys[1])] {
                let token = meili_sim::sign_tenant_token(key, uid, rules.clone(), Some(exp));
                let tenant = client.with_key(Some(&token));
                let mut answers = Vec::new();
                for (index, body) in [
                    ("m", json!({"q": "red", "limit": 50})),
                    ("m", json!({"q": "", "filter": "genre != c", "limit": 50})),
                    ("n", json!({"q": "", "limit": 50})),
                ] {
                    let (s, answer) = tenant.post(&format!("/indexes/{index}/search"), body).await;
                    let ids = sorted_ids(&answer);
                    answers.push(json!([
                        s,
                        answer["code"],
                        ids,
                        answer["estimatedTotalHits"]
                    ]));
                }
                let (s, get) = tenant
                    .get("/indexes/m/search?q=apple&filter=genre%20%3D%20a")
                    .await;
                answers.push(json!([s, get["estimatedTotalHits"]]));
                seen.push(answers);
            }
            assert_eq!(
                seen[0], seen[1],
                "{kind:?} {rules}: through Miroir, then one node"
            );
            assert_eq!(seen[0][0][0], 200, "{kind:?} {rules}: {:?}", seen[0]);
        }
    }
}

/// A browser client (InstantSearch, meilisearch-js in a page) reads an answer only when its
/// CORS headers allow the page's origin. Through Miroir every answer carries the CORS headers
/// one node gives: on searches and other answers Miroir writes itself, on errors (a missing
/// key, malformed JSON), on relayed routes and on preflights; and none that allows an origin
/// when the request named none.
#[tokio::test]
async fn browser_clients_get_the_cors_headers_of_one_node() {
    const ORIGIN: &str = "http://shop.example";
    let search = r#"{"q":"red","limit":2}"#;
    let requests: &[(&str, &str, Option<&str>, bool, bool)] = &[
        // method, path, body, with the key, with an Origin
        ("POST", "/indexes/m/search", Some(search), true, true),
        ("POST", "/indexes/m/search", Some(search), true, false),
        ("GET", "/indexes/m/search?q=red", None, true, true),
        (
            "POST",
            "/multi-search",
            Some(r#"{"queries":[{"indexUid":"m","q":"red"}]}"#),
            true,
            true,
        ),
        (
            "POST",
            "/indexes/m/facet-search",
            Some(r#"{"facetName":"genre"}"#),
            true,
            true,
        ),
        ("GET", "/indexes/m/documents?limit=2", None, true, true),
        ("GET", "/indexes/m/documents/1", None, true, true),
        ("GET", "/indexes/m/settings", None, true, true),
        ("GET", "/indexes/m/stats", None, true, true),
        ("GET", "/indexes/m", None, true, true),
        ("GET", "/tasks?limit=1", None, true, true),
        ("GET", "/version", None, true, true),
        ("GET", "/health", None, false, true),
        ("POST", "/indexes/m/search", Some(search), false, true),
        ("POST", "/indexes/m/search", Some(r#"{"q":"#), true, true),
        (
            "POST",
            "/indexes/m/documents",
            Some(r#"[{"id":99}]"#),
            true,
            true,
        ),
        ("OPTIONS", "/indexes/m/search", None, false, true),
    ];
    let http = common::client();
    for kind in kinds() {
        let c = compared(kind, &["m"], &settings(), &documents()).await;
        for &(method, path, body, keyed, origin) in requests {
            let mut seen = Vec::new();
            for base in [c.miroir.url(), c.reference.url()] {
                let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let preflight = method == reqwest::Method::OPTIONS;
                let mut req = http.request(method, format!("{base}{path}"));
                if keyed {
                    req = req.bearer_auth(KEY);
                }
                if origin {
                    req = req.header("Origin", ORIGIN);
                }
                if preflight {
                    req = req.header("Access-Control-Request-Method", "POST").header(
                        "Access-Control-Request-Headers",
                        "authorization,content-type",
                    );
                }
                if let Some(body) = body {
                    req = req
                        .header("Content-Type", "application/json")
                        .body(body.to_owned());
                }
                let resp = req.send().await.expect("request");
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                seen.push((
                    resp.status().as_u16(),
                    header("access-control-allow-origin"),
                    header("vary"),
                    header("access-control-allow-headers"),
                ));
            }
            assert_eq!(seen[0], seen[1], "{kind:?} {method} {path} origin={origin}");
            let (_, allowed, vary, _) = &seen[0];
            assert_eq!(allowed.is_some(), origin, "{kind:?} {method} {path}");
            assert!(
                vary.as_deref().is_some_and(|v| v.contains("Origin")),
                "{kind:?} {method} {path}: {vary:?}"
            );
        }
        // Routes relayed to one node: the client's headers reach it and its own come back,
        // a compressed answer (real Meilisearch compresses when asked) included.
        for path in [
            "/version",
            "/indexes/m",
            "/indexes/m/settings/stop-words",
            "/nope",
        ] {
            let mut seen = Vec::new();
            for base in [c.miroir.url(), c.reference.url()] {
                let resp = http
                    .get(format!("{base}{path}"))
                    .bearer_auth(KEY)
                    .header("Accept-Encoding", "gzip")
                    .send()
                    .await
                    .expect("request");
                let status = resp.status().as_u16();
                let encoding = resp
                    .headers()
                    .get("content-encoding")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = resp.bytes().await.expect("body");
                seen.push((status, encoding, body.is_empty()));
            }
            assert_eq!(seen[0], seen[1], "{kind:?} GET {path} with gzip");
        }
    }
}

/// An answer without what differs between two runs of a request (timings, request uids), at
/// any depth.
fn without_timings(mut v: Value) -> Value {
    match &mut v {
        Value::Object(o) => {
            o.remove("processingTimeMs");
            o.remove("requestUid");
            for (_, inner) in o.iter_mut() {
                *inner = without_timings(inner.take());
            }
        }
        Value::Array(items) => {
            for inner in items.iter_mut() {
                *inner = without_timings(inner.take());
            }
        }
        _ => {}
    }
    v
}

/// The answer's bytes in `coding` (`None`: as they are).
fn decoded(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .expect("deflate");
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("br");
        }
        Some(other) => panic!("unexpected content coding {other}"),
    }
    out
}

/// A client that accepts compressed answers (the Python SDK's `requests`, Go's HTTP client,
/// browsers) gets every answer Miroir writes itself compressed as one node compresses it: the
/// same coding for the same `Accept-Encoding`, a `Vary: accept-encoding` line, and once decoded
/// the answer Miroir gives a client that does not ask for compression.
#[tokio::test]
async fn compressed_answers_are_coded_as_one_node_codes_them() {
    let search = r#"{"q":"red","limit":5}"#;
    let requests: &[(&str, &str, Option<&str>, bool)] = &[
        // method, path, body, with the key
        ("POST", "/indexes/m/search", Some(search), true),
        ("GET", "/indexes/m/search?q=red&limit=3", None, true),
        (
            "POST",
            "/multi-search",
            Some(r#"{"queries":[{"indexUid":"m","q":"red"}]}"#),
            true,
        ),
        (
            "POST",
            "/indexes/m/facet-search",
            Some(r#"{"facetName":"genre"}"#),
            true,
        ),
        ("GET", "/indexes/m/documents?limit=1000", None, true),
        ("GET", "/indexes/m/documents/1", None, true),
        ("GET", "/indexes/m/stats", None, true),
        ("GET", "/tasks?limit=2", None, true),
        ("GET", "/health", None, false),
        ("POST", "/indexes/m/search", Some(search), false),
        ("POST", "/indexes/m/search", Some(r#"{"q":"#), true),
    ];
    let accepts = [
        "gzip",
        "gzip, deflate",
        "gzip, deflate, br",
        "deflate",
        "gzip;q=0.9, br;q=0.5",
        "identity;q=1, gzip;q=0.5",
        "zstd",
    ];
    let http = common::client();
    for kind in kinds() {
        let c = compared(kind, &["m"], &settings(), &documents()).await;
        for &(method, path, body, keyed) in requests {
            let send = |base: String, accept: Option<&'static str>| {
                let http = http.clone();
                async move {
                    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                    let mut req = http.request(method, format!("{base}{path}"));
                    if keyed {
                        req = req.bearer_auth(KEY);
                    }
                    if let Some(accept) = accept {
                        req = req.header("Accept-Encoding", accept);
                    }
                    if let Some(body) = body {
                        req = req
                            .header("Content-Type", "application/json")
                            .body(body.to_owned());
                    }
                    let resp = req.send().await.expect("request");
                    let coding = resp
                        .headers()
                        .get("content-encoding")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let varies = resp
                        .headers()
                        .get_all("vary")
                        .iter()
                        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"accept-encoding"));
                    let status = resp.status().as_u16();
                    let bytes = resp.bytes().await.expect("body");
                    (status, coding, varies, bytes)
                }
            };
            let plain = send(c.miroir.url(), None).await;
            assert_eq!(
                plain.1, None,
                "{kind:?} {method} {path}: not asked to compress"
            );
            let plain_body: serde_json::Value =
                serde_json::from_slice(&plain.3).unwrap_or(serde_json::Value::Null);
            for accept in accepts {
                let through = send(c.miroir.url(), Some(accept)).await;
                let node = send(c.reference.url(), Some(accept)).await;
                let what = format!("{kind:?} {method} {path}, Accept-Encoding: {accept}");
                assert_eq!(
                    (through.0, &through.1, through.2),
                    (node.0, &node.1, node.2),
                    "{what}: status, coding, vary through Miroir, then one node"
                );
                let got: serde_json::Value =
                    serde_json::from_slice(&decoded(through.1.as_deref(), &through.3))
                        .unwrap_or_else(|e| panic!("{what}: not JSON once decoded: {e}"));
                assert_eq!(
                    without_timings(got),
                    without_timings(plain_body.clone()),
                    "{what}: decoded answer"
                );
            }
        }
    }
}
