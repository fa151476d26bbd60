//! Chaos scenarios on real Meilisearch nodes (run only with `MEILI_BIN`), RF 2 over 3 nodes:
//! one node killed in the middle of a 10 000-document ingest and started again later on the
//! same database; an index deleted and recreated while a node is down (with a Miroir restart
//! in between); a key revoked while a node is down. Afterwards every replica holds the same.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{call, eventually, miroir_bin, node_tasks_of, search_as, ADMIN_KEY, KEY};
use miroir_filters::routing::shard_for_key;
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::relay::{CutMode, Relay};
use miroir_testkit::{require_meili_bin, start_node, NodeKind, TestNode};
use serde_json::{json, Value};

const INDEX: &str = "chaos";

async fn wait_status(base: &str, id: &str, want: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    let ok = eventually(timeout, || async {
        let (s, hints) = common::node_status(base, id).await;
        s == want && (want != "active" || hints == 0)
    })
    .await;
    assert!(
        ok,
        "{id} never {want}: {:?}",
        common::node_status(base, id).await
    );
    started.elapsed()
}

async fn ids_on(node: &TestNode) -> BTreeMap<u64, u64> {
    let (status, page) = call(
        &node.url(),
        "GET",
        &format!("/indexes/{INDEX}/documents?limit=20000&fields=id,v"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["results"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|d| Some((d["id"].as_u64()?, d["v"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Three real nodes and Miroir with RF 2 in front of them.
async fn real_cluster() -> (Vec<TestNode>, MiroirProcess) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(NodeKind::Real, KEY).await);
    }
    let urls: Vec<String> = nodes.iter().map(TestNode::url).collect();
    let miroir = miroir_over(&urls).await;
    (nodes, miroir)
}

/// Miroir with RF 2 in front of the nodes at `urls`.
async fn miroir_over(urls: &[String]) -> MiroirProcess {
    let (port, metrics_port) = (free_port(), free_port());
    let mut toml = format!(
        "shards = 8\nreplication_factor = 2\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n\
         [server]\nport = {port}\n\n[metrics]\nport = {metrics_port}\n\n[admin]\napi_key = \"{ADMIN_KEY}\"\n\n\
         [health]\ninterval_ms = 200\ntimeout_ms = 200\nunhealthy_threshold = 2\nhealthy_threshold = 2\n\n\
         [scatter]\nnode_timeout_ms = 2000\n\n[handoff]\nreplay_interval_ms = 100\n\n"
    );
    for (i, url) in urls.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{url}\"\n\n"
        ));
    }
    MiroirProcess::start(miroir_bin(), &toml, port).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_node_killed_mid_ingest_loses_nothing() {
    require_meili_bin!();
    let (nodes, miroir) = real_cluster().await;
    let base = miroir.url();

    let (mut tasks, mut errors) = (Vec::new(), 0);
    let mut detect = Duration::ZERO;
    let mut restarted = None;
    for batch in 0..40u64 {
        if batch == 10 {
            nodes[1].stop().await;
            detect = wait_status(&base, "n1", "failed", Duration::from_secs(20)).await;
        }
        if batch == 30 {
            nodes[1].restart().await;
            restarted = Some(Instant::now());
        }
        let docs: Vec<Value> = (batch * 250..(batch + 1) * 250)
            .map(|i| json!({"id": i, "title": format!("doc {i}"), "v": 1}))
            .collect();
        let (status, t) = call(
            &base,
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            Some(Value::Array(docs)),
        )
        .await;
        match (status, t["taskUid"].as_u64()) {
            (202, Some(uid)) => tasks.push(uid),
            _ => {
                eprintln!("write refused: {status} {t}");
                errors += 1;
            }
        }
    }
    for uid in &tasks {
        let done = eventually(Duration::from_secs(120), || async {
            let (_, t) = call(&base, "GET", &format!("/tasks/{uid}"), None).await;
            t["status"] == "succeeded"
        })
        .await;
        assert!(done, "task {uid} did not succeed");
    }
    wait_status(&base, "n1", "active", Duration::from_secs(120)).await;
    let converge = restarted.map(|t| t.elapsed()).unwrap_or_default();

    let topo = common::topology(&base).await;
    let mut held = Vec::new();
    for node in &nodes {
        held.push(ids_on(node).await);
    }
    let (mut lost, mut stale) = (0, 0);
    for id in 0..10_000u64 {
        let shard = shard_for_key(&id.to_string(), 8);
        let replicas: Vec<usize> = topo["groups"][0]["shards"][shard.0.to_string()]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|n| n.as_str()?.trim_start_matches('n').parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let copies = replicas
            .iter()
            .filter(|&&r| held[r].contains_key(&id))
            .count();
        if copies == 0 {
            lost += 1;
        }
        stale += replicas.len() - copies;
    }
    println!(
        "CHAOS real scenario=1 lost={lost} missing_copies={stale} client_errors={errors} detect_ms={} converge_ms={}",
        detect.as_millis(),
        converge.as_millis()
    );
    assert_eq!((lost, stale, errors), (0, 0, 0));
}

/// Waits for each task through Miroir to succeed.
async fn all_succeed(base: &str, tasks: &[u64]) {
    for uid in tasks {
        let done = eventually(Duration::from_secs(120), || async {
            let (_, t) = call(base, "GET", &format!("/tasks/{uid}"), None).await;
            t["status"] == "succeeded"
        })
        .await;
        let (_, t) = call(base, "GET", &format!("/tasks/{uid}"), None).await;
        assert!(done, "task {uid}: {t}");
    }
}

async fn accepted(base: &str, method: &str, path: &str, body: Option<Value>) -> u64 {
    let (status, t) = call(base, method, path, body).await;
    assert_eq!(status, 202, "{method} {path}: {t}");
    t["taskUid"].as_u64().expect("task uid")
}

fn versioned(ids: std::ops::Range<u64>, v: u64) -> Value {
    ids.map(|i| json!({"id": i, "title": format!("doc {i}"), "v": v}))
        .collect()
}

/// The index deleted and created again with new documents while a node is down, Miroir
/// killed and restarted before the node is back: the node replays deletion, creation and
/// documents in order from the log that survived, and every node holds the same documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_index_deleted_and_recreated_while_a_node_is_down() {
    require_meili_bin!();
    let (nodes, mut miroir) = real_cluster().await;
    let base = miroir.url();
    let docs_path = format!("/indexes/{INDEX}/documents");
    let first = accepted(&base, "POST", &docs_path, Some(versioned(0..500, 1))).await;
    all_succeed(&base, &[first]).await;
    nodes[2].stop().await;
    wait_status(&base, "n2", "failed", Duration::from_secs(20)).await;
    let mut tasks = vec![accepted(&base, "DELETE", &format!("/indexes/{INDEX}"), None).await];
    tasks.push(
        accepted(
            &base,
            "POST",
            "/indexes",
            Some(json!({"uid": INDEX, "primaryKey": "id"})),
        )
        .await,
    );
    tasks.push(accepted(&base, "POST", &docs_path, Some(versioned(1000..1300, 2))).await);
    all_succeed(&base, &tasks).await;
    let (_, pending) = common::node_status(&base, "n2").await;
    assert!(pending >= 3, "{pending}");
    miroir.crash_and_restart(miroir_bin()).await;
    assert_eq!(
        common::node_status(&base, "n2").await.1,
        pending,
        "the log survived"
    );
    nodes[2].restart().await;
    wait_status(&base, "n2", "active", Duration::from_secs(120)).await;

    let topo = common::topology(&base).await;
    let mut held = Vec::new();
    for node in &nodes {
        held.push(ids_on(node).await);
    }
    for (i, docs) in held.iter().enumerate() {
        assert!(
            docs.keys().all(|id| *id >= 1000),
            "n{i} holds deleted documents"
        );
        assert!(docs.values().all(|v| *v == 2), "n{i} holds old versions");
    }
    for id in 1000..1300u64 {
        let shard = shard_for_key(&id.to_string(), 8);
        let replicas = topo["groups"][0]["shards"][shard.0.to_string()]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in replicas {
            let r: usize = r.as_str().unwrap().trim_start_matches('n').parse().unwrap();
            assert!(held[r].contains_key(&id), "n{r} lacks {id}");
        }
    }
    let total: usize = held.iter().map(BTreeMap::len).sum();
    assert_eq!(total, 600, "300 documents, 2 copies each, no stray");
}

/// 200 documents written through Miroir, and a key that may search them, as created.
async fn documents_and_search_key(base: &str) -> Value {
    let first = accepted(
        base,
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(versioned(0..200, 1)),
    )
    .await;
    all_succeed(base, &[first]).await;
    let body = json!({"name": "app", "actions": ["search"], "indexes": [INDEX], "expiresAt": null});
    let (status, key) = call(base, "POST", "/keys", Some(body)).await;
    assert_eq!(status, 201, "{key}");
    key
}

/// A key revoked while a node is down: the revocation is made (not refused for quorum), and
/// once the node is back the key is refused through Miroir on every read rotation and by
/// every node directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_key_revoked_while_a_node_is_down_is_refused_everywhere() {
    require_meili_bin!();
    let (nodes, miroir) = real_cluster().await;
    let base = miroir.url();
    let key = documents_and_search_key(&base).await;
    let (uid, secret) = (
        key["uid"].as_str().expect("uid").to_owned(),
        key["key"].as_str().expect("key").to_owned(),
    );
    assert_eq!(search_as(&base, INDEX, &secret).await.0, 200);
    nodes[0].stop().await;
    wait_status(&base, "n0", "failed", Duration::from_secs(20)).await;
    let (status, body) = call(&base, "DELETE", &format!("/keys/{uid}"), None).await;
    assert_eq!(status, 204, "{body}");
    nodes[0].restart().await;
    wait_status(&base, "n0", "active", Duration::from_secs(120)).await;
    for _ in 0..30 {
        let (status, body) = search_as(&base, INDEX, &secret).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("invalid_api_key")),
            "{body}"
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let (status, body) = search_as(&node.url(), INDEX, &secret).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("invalid_api_key")),
            "n{i}: {body}"
        );
        let (status, _) = call(&node.url(), "GET", &format!("/keys/{uid}"), None).await;
        assert_eq!(status, 404, "n{i} still has the key");
    }
}

/// Real nodes behind a Miroir with anti-entropy every `interval_ms`.
async fn anti_entropy_fleet(interval_ms: u64, extra: &str) -> (Vec<TestNode>, MiroirProcess, u16) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(NodeKind::Real, KEY).await);
    }
    let (port, metrics_port) = (free_port(), free_port());
    let mut toml = format!(
        "shards = 8\nreplication_factor = 2\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n\
         [server]\nport = {port}\n\n[metrics]\nport = {metrics_port}\n\n[admin]\napi_key = \"{ADMIN_KEY}\"\n\n\
         [health]\ninterval_ms = 200\ntimeout_ms = 200\nunhealthy_threshold = 2\nhealthy_threshold = 2\n\n\
         [scatter]\nnode_timeout_ms = 2000\n\n[handoff]\nreplay_interval_ms = 100\n\n\
         [anti_entropy]\ninterval_ms = {interval_ms}\n{extra}\n\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    (nodes, miroir, metrics_port)
}

async fn wait_all(base: &str, tasks: &[u64]) {
    for uid in tasks {
        let done = eventually(Duration::from_secs(300), || async {
            let (_, t) = call(base, "GET", &format!("/tasks/{uid}"), None).await;
            t["status"] == "succeeded"
        })
        .await;
        assert!(done, "task {uid} did not succeed");
    }
}

/// Every document on `node`, whole: id -> document.
async fn full_docs(node: &TestNode) -> BTreeMap<u64, Value> {
    let mut all = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (status, page) = call(
            &node.url(),
            "GET",
            &format!("/indexes/{INDEX}/documents?limit=10000&offset={offset}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let docs = page["results"].as_array().cloned().unwrap_or_default();
        offset += docs.len();
        all.extend(
            docs.into_iter()
                .filter_map(|d| Some((d["id"].as_u64()?, d))),
        );
        if offset as u64 >= page["total"].as_u64().unwrap_or(0) {
            return all;
        }
    }
}

async fn on_real_node(node: &TestNode, method: &str, path: &str, body: Option<Value>) {
    let (status, task) = call(&node.url(), method, path, body).await;
    assert_eq!(status, 202, "{task}");
    let t = node.wait_task(task["taskUid"].as_u64().expect("uid")).await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

/// Every replica holds the same copy of every document, versions included, and nothing
/// outside its shards; `Ok(documents)`.
async fn identical(base: &str, nodes: &[TestNode]) -> Result<usize, String> {
    let topo = common::topology(base).await;
    let mut held = Vec::new();
    for node in nodes {
        held.push(full_docs(node).await);
    }
    let ids: std::collections::BTreeSet<u64> =
        held.iter().flat_map(|h| h.keys().copied()).collect();
    for id in &ids {
        let shard = shard_for_key(&id.to_string(), 8);
        let replicas: Vec<usize> = topo["groups"][0]["shards"][shard.0.to_string()]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|n| n.as_str()?.trim_start_matches('n').parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let copies: Vec<Option<&Value>> = replicas.iter().map(|&r| held[r].get(id)).collect();
        if copies.iter().any(|c| c != &copies[0]) {
            return Err(format!("document {id} differs: {copies:?}"));
        }
        if copies[0].is_some_and(|d| d["_miroir_version"].as_str().is_none()) {
            return Err(format!("document {id} has no version"));
        }
        if (0..nodes.len()).any(|n| !replicas.contains(&n) && held[n].contains_key(id)) {
            return Err(format!("document {id} is held outside its replicas"));
        }
    }
    Ok(ids.len())
}

/// On real Meilisearch 1.50: bit rot on one node (a document changed, one deleted, one
/// added behind Miroir's back) is repaired by anti-entropy; a deletion a replica missed while
/// down, its hint lost, is not resurrected; and the version field reaches no client.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_anti_entropy_repairs_bit_rot_and_keeps_deletions() {
    require_meili_bin!();
    let (nodes, mut miroir, _) = anti_entropy_fleet(500, "").await;
    let base = miroir.url();
    let docs: Vec<Value> = (0..500u64)
        .map(|i| json!({"id": i, "title": format!("doc {i} word{}", i % 7), "v": 1}))
        .collect();
    let (status, t) = call(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(Value::Array(docs)),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    wait_all(&base, &[t["taskUid"].as_u64().unwrap()]).await;
    assert_eq!(identical(&base, &nodes).await, Ok(500));

    // The version field: on the nodes, never in an answer, never matched by a query.
    let some = full_docs(&nodes[0]).await.into_values().next().unwrap();
    let value = some["_miroir_version"]
        .as_str()
        .expect("versioned")
        .to_owned();
    let number = miroir_filters::hidden::parse_version(&json!(value))
        .expect("a version Miroir wrote")
        .to_string();
    let search = format!("/indexes/{INDEX}/search");
    common::version_matches_no_query(&base, &search, &number, &value).await;
    let (_, body) = call(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/search"),
        Some(json!({"q": "doc",
        "attributesToHighlight": ["*"], "showMatchesPosition": true, "limit": 50})),
    )
    .await;
    assert!(
        body["hits"].as_array().is_some_and(|h| !h.is_empty()),
        "{body}"
    );
    for answer in [
        body,
        call(
            &base,
            "GET",
            &format!("/indexes/{INDEX}/documents?limit=50"),
            None,
        )
        .await
        .1,
        call(
            &base,
            "POST",
            &format!("/indexes/{INDEX}/fields"),
            Some(json!({})),
        )
        .await
        .1,
        call(&base, "GET", &format!("/indexes/{INDEX}/settings"), None)
            .await
            .1,
        call(&base, "GET", &format!("/indexes/{INDEX}/stats"), None)
            .await
            .1,
    ] {
        assert!(!answer.to_string().contains("_miroir"), "{answer}");
    }

    // Bit rot on n0.
    let held = full_docs(&nodes[0]).await;
    let mut on_n0 = held.keys().copied();
    let (changed, deleted) = (on_n0.next().unwrap(), on_n0.next().unwrap());
    let mut rotten = held[&changed].clone();
    rotten["title"] = json!("rotten");
    rotten.as_object_mut().unwrap().remove("_miroir_version");
    let path = format!("/indexes/{INDEX}/documents");
    on_real_node(&nodes[0], "POST", &path, Some(json!([rotten]))).await;
    on_real_node(&nodes[0], "DELETE", &format!("{path}/{deleted}"), None).await;
    on_real_node(
        &nodes[0],
        "POST",
        &path,
        Some(json!([{"id": 99999, "title": "foreign", "v": 1}])),
    )
    .await;
    assert!(identical(&base, &nodes).await.is_err());
    let started = Instant::now();
    let ok = eventually(Duration::from_secs(60), || async {
        identical(&base, &nodes).await == Ok(500)
    })
    .await;
    assert!(ok, "{:?}", identical(&base, &nodes).await);
    println!(
        "ANTI-ENTROPY real bit rot repaired in {} ms",
        started.elapsed().as_millis()
    );
    for node in &nodes {
        if let Some(doc) = full_docs(node).await.get(&changed) {
            assert_eq!(doc["title"], held[&changed]["title"]);
        }
    }

    // A deletion n1 missed while down, its hint lost.
    let gone: Vec<u64> = full_docs(&nodes[1]).await.keys().copied().take(5).collect();
    nodes[1].stop().await;
    let (status, t) = call(
        &base,
        "POST",
        &format!("{path}/delete-batch"),
        Some(json!(gone)),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    wait_all(&base, &[t["taskUid"].as_u64().unwrap()]).await;
    assert!(
        common::node_status(&base, "n1").await.1 > 0,
        "hinted for n1"
    );
    miroir
        .crash_and_restart_after(miroir_bin(), |data| {
            std::fs::remove_file(data.join("tasks").join("hints.redb")).expect("remove hints");
        })
        .await;
    nodes[1].restart().await;
    wait_status(&base, "n1", "active", Duration::from_secs(60)).await;
    let kept = full_docs(&nodes[1]).await;
    assert!(
        gone.iter().all(|id| kept.contains_key(id)),
        "n1 kept its copies"
    );
    let ok = eventually(Duration::from_secs(60), || async {
        identical(&base, &nodes).await == Ok(495)
    })
    .await;
    assert!(ok, "{:?}", identical(&base, &nodes).await);
    for node in &nodes {
        let held = full_docs(node).await;
        assert!(gone.iter().all(|id| !held.contains_key(id)));
    }
    let status = &common::topology(&base).await["antiEntropy"];
    println!("ANTI-ENTROPY real status {status}");
    // Counted since the restart: the five deletions n1 kept.
    assert!(status["repaired"]["extra"].as_u64() >= Some(5), "{status}");
}

/// On real Meilisearch 1.50: a key deleted directly on one node, behind Miroir's back, is
/// created there again by anti-entropy (the other two nodes hold it) with its uid, so the
/// node derives the same key string, and then the key works through Miroir and on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_anti_entropy_restores_a_key_deleted_on_one_node() {
    require_meili_bin!();
    let (nodes, miroir, _) = anti_entropy_fleet(300, "").await;
    let base = miroir.url();
    let key = documents_and_search_key(&base).await;
    let (uid, secret) = (
        key["uid"].as_str().expect("uid").to_owned(),
        key["key"].as_str().expect("key").to_owned(),
    );
    let (status, _) = call(&nodes[1].url(), "DELETE", &format!("/keys/{uid}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(search_as(&nodes[1].url(), INDEX, &secret).await.0, 403);

    let started = Instant::now();
    let restored = eventually(Duration::from_secs(60), || async {
        let (status, k) = call(&nodes[1].url(), "GET", &format!("/keys/{uid}"), None).await;
        status == 200 && k["key"] == key["key"]
    })
    .await;
    assert!(restored, "the key was not restored on n1");
    println!("ANTI-ENTROPY real key restored in {:?}", started.elapsed());
    for _ in 0..30 {
        let (status, body) = search_as(&base, INDEX, &secret).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["estimatedTotalHits"], 200, "{body}");
    }
    for (i, node) in nodes.iter().enumerate() {
        let (status, body) = search_as(&node.url(), INDEX, &secret).await;
        assert_eq!(status, 200, "n{i}: {body}");
        let (_, k) = call(&node.url(), "GET", &format!("/keys/{uid}"), None).await;
        for field in ["name", "actions", "indexes", "expiresAt"] {
            assert_eq!(k[field], key[field], "n{i}: {k}");
        }
    }
    let keys = &common::topology(&base).await["antiEntropy"]["keys"];
    assert!(keys["missing"].as_u64() >= Some(1), "{keys}");
}

/// On real Meilisearch 1.50: `_miroir_version` (each document its own version, as Miroir
/// writes it) changes no answer. One node holds the same documents twice, with and without
/// the field, under the default `searchableAttributes: ["*"]` and ranking rules (`attribute`
/// among them): queries of words, digits, letters, the version's number in decimal and
/// hexadecimal and its own characters, under each matching strategy, restricted with
/// `attributesToSearchOn`, with facets, give the same hits, scores, totals and facet counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_version_field_changes_no_answer() {
    require_meili_bin!();
    use miroir_filters::hidden::{shard_value, version_value};
    let node = start_node(NodeKind::Real, KEY).await;
    let url = node.url();
    let first = 1_764_780_000_000_000u64;
    for (index, stamped) in [("plain", false), ("stamped", true)] {
        let docs: Vec<Value> = (0..2000u64)
            .map(|i| {
                let shard = shard_value(shard_for_key(&i.to_string(), 8));
                let mut d = json!({"id": i, "title": format!("doc {i} word{} {}", i % 7, i % 100),
                    "body": format!("text{} {}", i % 11, i * 7919 % 1000), "genre": format!("g{}", i % 5),
                    "_miroir_shard": shard});
                if stamped {
                    d["_miroir_version"] = json!(version_value(first + i * 977));
                }
                d
            })
            .collect();
        on_real_node(
            &node,
            "PATCH",
            &format!("/indexes/{index}/settings"),
            Some(json!({"filterableAttributes": ["genre", "_miroir_shard"]})),
        )
        .await;
        on_real_node(
            &node,
            "POST",
            &format!("/indexes/{index}/documents?primaryKey=id"),
            Some(Value::Array(docs)),
        )
        .await;
    }
    let version = first + 1234 * 977;
    let (number, hex, value) = (
        version.to_string(),
        format!("{version:x}"),
        version_value(version),
    );
    let mut queries: Vec<Value> = Vec::new();
    for q in [
        "doc",
        "word3",
        "1",
        "12",
        "123",
        "99",
        "text4 5",
        "g1",
        "a",
        "e",
        &number,
        &number[..6],
        &hex,
        &hex[..5],
        &value,
        &format!("doc {value}"),
        "!%()*,/:;?[]`{}",
        "-.-",
        "",
    ] {
        for strategy in ["last", "all", "frequency"] {
            queries.push(json!({"q": q, "matchingStrategy": strategy}));
        }
        queries.push(json!({"q": q, "attributesToSearchOn": ["title"]}));
        queries.push(json!({"q": q, "facets": ["genre"], "filter": "genre != g3"}));
    }
    let mut compared = 0;
    for query in queries {
        let mut answers = Vec::new();
        for index in ["plain", "stamped"] {
            let mut body = query.clone();
            body["showRankingScore"] = json!(true);
            body["attributesToRetrieve"] = json!(["id"]);
            body["limit"] = json!(40);
            let (status, mut answer) = call(
                &url,
                "POST",
                &format!("/indexes/{index}/search"),
                Some(body),
            )
            .await;
            assert_eq!(status, 200, "{query}: {answer}");
            let fields = answer.as_object_mut().expect("answer");
            fields.remove("processingTimeMs");
            fields.remove("requestUid");
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1], "{query}");
        compared += 1;
    }
    println!("version field: {compared} queries answered alike with and without it");
}

/// Measurement, run by hand (`--ignored --nocapture`): one anti-entropy pass over
/// `AE_DOCS` documents (default 100 000) with RF 2 on 3 real nodes, unthrottled; prints its
/// time, node requests and Miroir CPU seconds, per million documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn measure_anti_entropy_pass() {
    require_meili_bin!();
    let n: u64 = std::env::var("AE_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (_nodes, miroir, _) =
        anti_entropy_fleet(3000, "max_documents_per_second = 1000000000").await;
    let base = miroir.url();
    let mut tasks = Vec::new();
    for batch in 0..n.div_ceil(10_000) {
        let docs: Vec<Value> = (batch * 10_000..((batch + 1) * 10_000).min(n))
            .map(|i| json!({"id": i, "title": format!("doc {i} word{}", i % 7), "genre": "g", "v": 1}))
            .collect();
        let (status, t) = call(
            &base,
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            Some(Value::Array(docs)),
        )
        .await;
        assert_eq!(status, 202, "{t}");
        tasks.push(t["taskUid"].as_u64().unwrap());
    }
    wait_all(&base, &tasks).await;
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", miroir.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
    };
    let passes = |t: &Value| t["antiEntropy"]["passes"].as_u64().unwrap_or(0);
    let now = common::topology(&base).await;
    let p0 = passes(&now);
    assert!(
        eventually(Duration::from_secs(600), || async {
            passes(&common::topology(&base).await) > p0
        })
        .await
    );
    let (c0, t0) = (cpu(), common::topology(&base).await);
    assert!(
        eventually(Duration::from_secs(600), || async {
            passes(&common::topology(&base).await) > p0 + 1
        })
        .await
    );
    let (c1, t1) = (cpu(), common::topology(&base).await);
    let (a0, a1) = (&t0["antiEntropy"], &t1["antiEntropy"]);
    let d = |k: &str| a1[k].as_u64().unwrap_or(0) - a0[k].as_u64().unwrap_or(0);
    let per_million = 1_000_000.0 / n as f64;
    println!(
        "ANTI-ENTROPY pass docs={n} rf=2 took_ms={} documents_read={} node_requests={} miroir_cpu_s={:.2} (includes the idle interval) | per million documents: node_requests={:.0} miroir_cpu_s={:.1} pass_s_unthrottled={:.0}",
        a1["lastPassDurationMs"], d("documentsRead"), d("nodeRequests"), c1 - c0,
        d("nodeRequests") as f64 * per_million, (c1 - c0) * per_million,
        a1["lastPassDurationMs"].as_u64().unwrap_or(0) as f64 / 1000.0 * per_million,
    );
}

/// Measurement, run by hand (`--ignored --nocapture`): what the version stamp costs a real
/// node. Two indexes on one node get the same `AE_DOCS` documents with Miroir's shard field,
/// one also with `_miroir_version`; prints their indexing times and search throughput.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn measure_version_field_cost_on_a_node() {
    require_meili_bin!();
    let n: u64 = std::env::var("AE_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let node = start_node(NodeKind::Real, KEY).await;
    let url = node.url();
    let version = miroir_filters::hidden::version_value(1_764_780_000_000_000);
    for round in 0..2 {
        for (index, stamped) in [("plain", false), ("stamped", true)] {
            let mut indexing = 0.0;
            for batch in 0..n.div_ceil(10_000) {
                let docs: Vec<Value> = (batch * 10_000..((batch + 1) * 10_000).min(n))
                    .map(|i| {
                        let shard = miroir_filters::hidden::shard_value(shard_for_key(&i.to_string(), 8));
                        let mut d = json!({"id": i, "title": format!("doc {i} word{} {}", i % 7, i % 1000),
                            "genre": format!("g{}", i % 13), "v": round, "_miroir_shard": shard});
                        if stamped {
                            d["_miroir_version"] = json!(version);
                        }
                        d
                    })
                    .collect();
                let (status, t) = call(
                    &url,
                    "POST",
                    &format!("/indexes/{index}/documents?primaryKey=id"),
                    Some(Value::Array(docs)),
                )
                .await;
                assert_eq!(status, 202, "{t}");
                let t = node.wait_task(t["taskUid"].as_u64().unwrap()).await;
                let secs = |k: &str| {
                    time::OffsetDateTime::parse(
                        t[k].as_str().unwrap(),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap()
                    .unix_timestamp_nanos() as f64
                        / 1e9
                };
                indexing += secs("finishedAt") - secs("startedAt");
            }
            let started = Instant::now();
            let searches = 300;
            for i in 0..searches {
                let (status, _) = call(
                    &url,
                    "POST",
                    &format!("/indexes/{index}/search"),
                    Some(json!({"q": format!("word{} {}", i % 7, i % 1000)})),
                )
                .await;
                assert_eq!(status, 200);
            }
            let qps = searches as f64 / started.elapsed().as_secs_f64();
            println!("VERSION-COST round={round} index={index} docs={n} indexing_s={indexing:.2} search_qps={qps:.0}");
        }
    }
}

// ---- Connections cut after the request went out ------------------------------------------

/// Three real nodes, each behind a relay that can cut a connection after a whole request went
/// through, and Miroir (RF 2) in front of the relays.
async fn relayed_cluster() -> (Vec<TestNode>, Vec<Relay>, MiroirProcess) {
    let mut nodes = Vec::new();
    let mut relays = Vec::new();
    for _ in 0..3 {
        let node = start_node(NodeKind::Real, KEY).await;
        let addr = node
            .url()
            .trim_start_matches("http://")
            .parse()
            .expect("addr");
        relays.push(Relay::start(addr).await.expect("relay"));
        nodes.push(node);
    }
    let urls: Vec<String> = relays.iter().map(Relay::url).collect();
    let miroir = miroir_over(&urls).await;
    (nodes, relays, miroir)
}

/// A write through Miroir that must be accepted; waits for its task to succeed.
async fn succeeded(base: &str, method: &str, path: &str, body: Value) -> Value {
    let uid = accepted(base, method, path, Some(body)).await;
    let t = common::wait_task(base, uid).await;
    assert_eq!(t["status"], "succeeded", "{method} {path}: {t}");
    t
}

/// `id -> n` of every document a node holds.
async fn counters_on(node: &TestNode) -> BTreeMap<u64, u64> {
    let (status, page) = call(
        &node.url(),
        "GET",
        &format!("/indexes/{INDEX}/documents?limit=20000&fields=id,n"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["id"].as_u64()?, d["n"].as_u64()?)))
        .collect()
}

/// On real nodes, behind relays that drop the connection after forwarding a whole request:
/// an edit by function that increments a counter runs exactly once on every replica (the
/// node's answer lost after it applied the edit, then the edit never reaching the node); a
/// document write so cut leaves exactly one node task per replica and the Miroir task's
/// counts right; `POST /indexes` so cut answers success and creates the index once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_requests_cut_after_their_body_are_applied_once() {
    require_meili_bin!();
    let (nodes, relays, miroir) = relayed_cluster().await;
    let base = miroir.url();
    let (status, features) = call(
        &base,
        "PATCH",
        "/experimental-features",
        Some(json!({"editDocumentsByFunction": true})),
    )
    .await;
    assert_eq!(status, 200, "{features}");
    let docs: Vec<Value> = (0..300).map(|i| json!({"id": i, "n": 0})).collect();
    let docs_path = format!("/indexes/{INDEX}/documents");
    succeeded(&base, "POST", &docs_path, json!(docs)).await;

    // Edits by function: applied then cut, then cut before reaching the node.
    let edit_path = format!("/indexes/{INDEX}/documents/edit");
    for (relay, mode) in [(0, CutMode::AfterAnswer), (1, CutMode::Swallow)] {
        let cuts = relays[relay].cuts();
        relays[relay].cut_next("POST", &edit_path, mode);
        succeeded(
            &base,
            "POST",
            &edit_path,
            json!({"function": "doc.n = doc.n + 1"}),
        )
        .await;
        assert_eq!(relays[relay].cuts(), cuts + 1, "{mode:?}: not cut");
    }
    let mut held = 0;
    for node in &nodes {
        let counters = counters_on(node).await;
        assert!(
            counters.values().all(|&n| n == 2),
            "{}: {counters:?}",
            node.url()
        );
        held += counters.len();
        assert_eq!(
            node_tasks_of(&node.url(), INDEX, "documentEdition")
                .await
                .len(),
            2
        );
    }
    assert_eq!(held, 600, "every document on two replicas");

    // A document write, applied then cut, and cut before reaching the node.
    for (relay, mode) in [(2, CutMode::AfterAnswer), (0, CutMode::Swallow)] {
        let mut before = Vec::new();
        for node in &nodes {
            before.push(
                node_tasks_of(&node.url(), INDEX, "documentAdditionOrUpdate")
                    .await
                    .len(),
            );
        }
        let cuts = relays[relay].cuts();
        relays[relay].cut_next("POST", &docs_path, mode);
        let more: Vec<Value> = (300..700).map(|i| json!({"id": i, "n": 5})).collect();
        let path = format!("{docs_path}?customMetadata=batch-{relay}");
        let t = succeeded(&base, "POST", &path, json!(more)).await;
        assert_eq!(relays[relay].cuts(), cuts + 1, "{mode:?}: not cut");
        assert_eq!(t["details"]["receivedDocuments"], 400, "{t}");
        assert_eq!(t["details"]["indexedDocuments"], 400, "{t}");
        assert_eq!(t["customMetadata"], format!("batch-{relay}"), "{t}");
        for (node, before) in nodes.iter().zip(before) {
            let after = node_tasks_of(&node.url(), INDEX, "documentAdditionOrUpdate").await;
            assert_eq!(after.len(), before + 1, "{mode:?} {}", node.url());
        }
    }
    let mut copies: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for node in &nodes {
        for (id, n) in counters_on(node).await {
            copies.entry(id).or_default().push(n);
        }
    }
    assert_eq!(copies.len(), 700);
    for (id, ns) in &copies {
        let want = if *id < 300 { 2 } else { 5 };
        assert_eq!(ns, &vec![want, want], "document {id}");
    }

    // An index creation, applied then cut, and cut before reaching the node.
    for (relay, mode, uid) in [
        (1, CutMode::AfterAnswer, "fresh"),
        (2, CutMode::Swallow, "other"),
    ] {
        let cuts = relays[relay].cuts();
        relays[relay].cut_next("POST", "/indexes", mode);
        let t = succeeded(
            &base,
            "POST",
            "/indexes",
            json!({"uid": uid, "primaryKey": "id"}),
        )
        .await;
        assert_eq!(t["type"], "indexCreation", "{t}");
        assert_eq!(relays[relay].cuts(), cuts + 1, "{mode:?}: not cut");
        for node in &nodes {
            let (status, index) = call(&node.url(), "GET", &format!("/indexes/{uid}"), None).await;
            assert_eq!(status, 200, "{mode:?} {}: {index}", node.url());
            let creations = node_tasks_of(&node.url(), uid, "indexCreation").await;
            assert_eq!(creations.len(), 1, "{mode:?} {}: {creations:?}", node.url());
        }
    }
}
