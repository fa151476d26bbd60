//! Chaos scenarios on real Meilisearch nodes (run only with `MEILI_BIN`), RF 2 over 3 nodes:
//! one node killed in the middle of a 10 000-document ingest and started again later on the
//! same database; an index deleted and recreated while a node is down (with a Miroir restart
//! in between); a key revoked while a node is down. Afterwards every replica holds the same.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{call, client, eventually, miroir_bin, search_as, ADMIN_KEY, KEY};
use miroir_filters::routing::shard_for_key;
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{require_meili_bin, start_node, NodeKind, TestNode};
use serde_json::{json, Value};

const INDEX: &str = "chaos";

async fn topology(base: &str) -> Value {
    client()
        .get(format!("{base}/_miroir/topology"))
        .header("X-Admin-Key", ADMIN_KEY)
        .send()
        .await
        .expect("topology")
        .json()
        .await
        .expect("json")
}

async fn status_of(base: &str, id: &str) -> (String, u64) {
    let topo = topology(base).await;
    let node = topo["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id).cloned())
        .unwrap_or(Value::Null);
    (
        node["status"].as_str().unwrap_or("").to_owned(),
        node["pendingHints"].as_u64().unwrap_or(0),
    )
}

async fn wait_status(base: &str, id: &str, want: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    let ok = eventually(timeout, || async {
        let (s, hints) = status_of(base, id).await;
        s == want && (want != "active" || hints == 0)
    })
    .await;
    assert!(ok, "{id} never {want}: {:?}", status_of(base, id).await);
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
    let (port, metrics_port) = (free_port(), free_port());
    let mut toml = format!(
        "shards = 8\nreplication_factor = 2\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n\
         [server]\nport = {port}\n\n[metrics]\nport = {metrics_port}\n\n[admin]\napi_key = \"{ADMIN_KEY}\"\n\n\
         [health]\ninterval_ms = 200\ntimeout_ms = 200\nunhealthy_threshold = 2\nhealthy_threshold = 2\n\n\
         [scatter]\nnode_timeout_ms = 2000\n\n[handoff]\nreplay_interval_ms = 100\n\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    (nodes, miroir)
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

    let topo = topology(&base).await;
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
    let (_, pending) = status_of(&base, "n2").await;
    assert!(pending >= 3, "{pending}");
    miroir.crash_and_restart(miroir_bin()).await;
    assert_eq!(status_of(&base, "n2").await.1, pending, "the log survived");
    nodes[2].restart().await;
    wait_status(&base, "n2", "active", Duration::from_secs(120)).await;

    let topo = topology(&base).await;
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

/// A key revoked while a node is down: the revocation is made (not refused for quorum), and
/// once the node is back the key is refused through Miroir on every read rotation and by
/// every node directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_key_revoked_while_a_node_is_down_is_refused_everywhere() {
    require_meili_bin!();
    let (nodes, miroir) = real_cluster().await;
    let base = miroir.url();
    let first = accepted(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(versioned(0..200, 1)),
    )
    .await;
    all_succeed(&base, &[first]).await;
    let (status, key) = call(
        &base,
        "POST",
        "/keys",
        Some(json!({"actions": ["search"], "indexes": [INDEX], "expiresAt": null})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
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
