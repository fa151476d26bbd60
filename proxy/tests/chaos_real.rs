//! The chaos suite's first scenario on real Meilisearch nodes (runs only with `MEILI_BIN`):
//! RF 2 over 3 nodes, one node killed in the middle of a 10 000-document ingest and started
//! again later on the same database. Afterwards every replica holds every document.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{call, client, eventually, miroir_bin, ADMIN_KEY, KEY};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_node_killed_mid_ingest_loses_nothing() {
    require_meili_bin!();
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
