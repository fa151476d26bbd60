//! The chaos suite: node failures under load, with the simulator's fault injection. Each
//! scenario checks that no acknowledged write is lost (every replica ends with the latest
//! version of every document), counts client-visible errors, and prints a `CHAOS` line with
//! the time to detect the failure and the time to converge after recovery.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use meili_sim::{Cut, ErrorRate, SimNode};
use miroir_filters::routing::shard_for_key;
use serde_json::{json, Value};

const INDEX: &str = "chaos";
const SHARDS: u32 = 8;

/// Documents `ids` at `version`: the version tells an old write from a newer one.
fn docs(ids: impl Iterator<Item = u64>, version: u64) -> Value {
    ids.map(|i| json!({"id": i, "title": format!("doc {i} word{}", i % 7), "v": version}))
        .collect()
}

fn rf2_toml_extra(scatter: &str) -> String {
    format!("[scatter]\nnode_timeout_ms = 1000\n{scatter}\n\n[handoff]\nreplay_interval_ms = 50\n")
}

async fn rf2(scatter: &str) -> Cluster {
    let c = cluster_with(3, "replication_factor = 2\n", &rf2_toml_extra(scatter)).await;
    prepare(&c.miroir.url()).await;
    c
}

/// Creates the index with totals counted exactly past Meilisearch's default 1000.
async fn prepare(base: &str) {
    let (status, task) = call(
        base,
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        Some(json!({"pagination": {"maxTotalHits": 100000}})),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    let uid = task["taskUid"].as_u64().expect("task uid");
    assert_eq!(unsucceeded(base, &[uid]).await, 0);
}

async fn admin(base: &str, path: &str) -> Value {
    let resp = client()
        .get(format!("{base}{path}"))
        .header("X-Admin-Key", ADMIN_KEY)
        .send()
        .await
        .expect("admin request");
    resp.json().await.expect("admin json")
}

/// `(status, pendingHints)` of node `id` in the topology.
async fn node_status(base: &str, id: &str) -> (String, u64) {
    let topo = admin(base, "/_miroir/topology").await;
    let node = topo["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == id))
        .cloned()
        .unwrap_or(Value::Null);
    (
        node["status"].as_str().unwrap_or("").to_owned(),
        node["pendingHints"].as_u64().unwrap_or(0),
    )
}

/// Waits until node `id` is in `state` (and, for `active`, has no hints left).
async fn wait_state(base: &str, id: &str, state: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    let reached = eventually(timeout, || async {
        let (s, hints) = node_status(base, id).await;
        s == state && (state != "active" || hints == 0)
    })
    .await;
    assert!(
        reached,
        "node {id} never became {state}: {:?}",
        node_status(base, id).await
    );
    started.elapsed()
}

/// Sends a write through Miroir; `Some(task uid)` when accepted, `None` for a client-visible
/// error (counted by the caller).
async fn write(base: &str, body: Value) -> Option<u64> {
    let (status, resp) = call(
        base,
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(body),
    )
    .await;
    if status == 202 {
        resp["taskUid"].as_u64()
    } else {
        eprintln!("write refused: {status} {resp}");
        None
    }
}

/// Waits for every task through Miroir; returns how many did not succeed.
async fn unsucceeded(base: &str, tasks: &[u64]) -> usize {
    let mut bad = 0;
    for uid in tasks {
        let done = eventually(Duration::from_secs(60), || async {
            let (_, t) = call(base, "GET", &format!("/tasks/{uid}"), None).await;
            matches!(
                t["status"].as_str(),
                Some("succeeded" | "failed" | "canceled")
            )
        })
        .await;
        let (_, t) = call(base, "GET", &format!("/tasks/{uid}"), None).await;
        if !done || t["status"] != "succeeded" {
            eprintln!("task {uid}: {t}");
            bad += 1;
        }
    }
    bad
}

/// Every document as one node holds it: id -> version.
async fn node_docs(node: &SimNode) -> BTreeMap<u64, u64> {
    let (status, page) = call(
        &node.url(),
        "GET",
        &format!("/indexes/{INDEX}/documents?limit=100000&fields=id,v"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["results"]
        .as_array()
        .map(|docs| {
            docs.iter()
                .filter_map(|d| Some((d["id"].as_u64()?, d["v"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// What a check of every replica found.
#[derive(Debug, Default, PartialEq)]
struct Audit {
    /// Documents with the latest version on no replica at all.
    lost: usize,
    /// (document, replica) pairs where the replica lacks it or holds an older version.
    stale_copies: usize,
    /// Copies on a node that is not a replica of the document's shard.
    strays: usize,
}

async fn audit(c: &Cluster, expected: &BTreeMap<u64, u64>) -> Audit {
    let topo = admin(&c.miroir.url(), "/_miroir/topology").await;
    let mut held = Vec::new();
    for node in &c.nodes {
        held.push(node_docs(node).await);
    }
    let node_index = |id: &str| id.trim_start_matches('n').parse::<usize>().ok();
    let mut a = Audit::default();
    for (&id, &version) in expected {
        let shard = shard_for_key(&id.to_string(), SHARDS);
        let replicas: Vec<usize> = topo["groups"][0]["shards"][shard.0.to_string()]
            .as_array()
            .map(|r| r.iter().filter_map(|n| node_index(n.as_str()?)).collect())
            .unwrap_or_default();
        let current = replicas
            .iter()
            .filter(|&&r| held[r].get(&id) == Some(&version))
            .count();
        if current == 0 {
            a.lost += 1;
        }
        a.stale_copies += replicas.len() - current;
        a.strays += (0..c.nodes.len())
            .filter(|n| !replicas.contains(n) && held[*n].contains_key(&id))
            .count();
    }
    a
}

async fn search_total(base: &str) -> Result<(u64, Option<String>), String> {
    let resp = client()
        .post(format!("{base}/indexes/{INDEX}/search"))
        .bearer_auth(KEY)
        .json(&json!({"q": "", "limit": 5}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let degraded = resp
        .headers()
        .get("x-miroir-degraded")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status} {body}"));
    }
    Ok((body["estimatedTotalHits"].as_u64().unwrap_or(0), degraded))
}

fn report(
    scenario: u32,
    lost: usize,
    errors: usize,
    detect: Option<Duration>,
    converge: Option<Duration>,
) {
    let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| d.as_millis().to_string());
    println!(
        "CHAOS scenario={scenario} lost={lost} client_errors={errors} detect_ms={} converge_ms={}",
        ms(detect),
        ms(converge)
    );
}

/// 1. RF 2: a node stops in the middle of a 10 000-document ingest and comes back later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s1_node_stopped_mid_ingest_loses_nothing() {
    let c = rf2("").await;
    let base = c.miroir.url();
    let (mut tasks, mut errors) = (Vec::new(), 0);
    let mut expected = BTreeMap::new();
    let mut detect = None;
    let mut restarted_at = None;
    for batch in 0..40u64 {
        if batch == 10 {
            c.nodes[1].stop().await;
            let started = Instant::now();
            wait_state(&base, "n1", "failed", Duration::from_secs(10)).await;
            detect = Some(started.elapsed());
        }
        if batch == 30 {
            c.nodes[1].restart().await.expect("restart node");
            restarted_at = Some(Instant::now());
        }
        let ids = batch * 250..(batch + 1) * 250;
        match write(&base, docs(ids.clone(), 1)).await {
            Some(uid) => {
                tasks.push(uid);
                expected.extend(ids.map(|i| (i, 1)));
            }
            None => errors += 1,
        }
    }
    let failed_tasks = unsucceeded(&base, &tasks).await;
    wait_state(&base, "n1", "active", Duration::from_secs(60)).await;
    let converge = restarted_at.map(|t| t.elapsed());
    let a = audit(&c, &expected).await;
    report(1, a.lost, errors, detect, converge);
    assert_eq!(errors, 0, "client-visible write errors");
    assert_eq!(failed_tasks, 0, "every task succeeded");
    assert_eq!(expected.len(), 10_000);
    assert_eq!(a, Audit::default(), "every document on both replicas");
    let (total, degraded) = search_total(&base).await.expect("search");
    assert_eq!((total, degraded), (10_000, None));
}

/// 2. RF 2: one node hangs without answering: searches stay complete within the timeout,
/// and writes meanwhile reach it once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s2_hanging_node_keeps_searches_complete_and_fast() {
    let c = rf2("").await;
    let base = c.miroir.url();
    let mut expected = BTreeMap::new();
    let mut tasks = vec![write(&base, docs(0..2000, 1)).await.expect("seed write")];
    expected.extend((0..2000).map(|i| (i, 1)));
    unsucceeded(&base, &tasks).await;

    c.nodes[2].faults().set_hang(None);
    let detector = {
        let base = base.clone();
        tokio::spawn(
            async move { wait_state(&base, "n2", "failed", Duration::from_secs(10)).await },
        )
    };
    let mut errors = 0;
    let mut slowest = Duration::ZERO;
    for round in 0..40u64 {
        let started = Instant::now();
        match search_total(&base).await {
            Ok((total, degraded)) if total >= 2000 && degraded.is_none() => {}
            other => {
                eprintln!("search {round}: {other:?}");
                errors += 1;
            }
        }
        slowest = slowest.max(started.elapsed());
        if round % 10 == 0 {
            let ids = 2000 + round * 10..2000 + (round + 1) * 10;
            match write(&base, docs(ids.clone(), 1)).await {
                Some(uid) => {
                    tasks.push(uid);
                    expected.extend(ids.map(|i| (i, 1)));
                }
                None => errors += 1,
            }
        }
    }
    let detect = Some(detector.await.expect("detector"));
    c.nodes[2].faults().clear();
    let cleared = Instant::now();
    let failed_tasks = unsucceeded(&base, &tasks).await;
    wait_state(&base, "n2", "active", Duration::from_secs(60)).await;
    let converge = cleared.elapsed();
    let a = audit(&c, &expected).await;
    report(2, a.lost, errors, detect, Some(converge));
    println!("CHAOS scenario=2 slowest_search_ms={}", slowest.as_millis());
    assert_eq!(errors, 0);
    assert_eq!(failed_tasks, 0);
    assert!(
        slowest < Duration::from_millis(1500),
        "a search waited {slowest:?}, past the 1 s node timeout"
    );
    assert_eq!(a, Audit::default());
}

/// 3. RF 1: a node down gives partial results flagged `X-Miroir-Degraded`, or 503 under the
/// `error` policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_rf1_node_down_is_partial_or_an_error_by_policy() {
    let nodes = sim_nodes(3).await;
    let (port, metrics_port) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&SimNode> = nodes.iter().collect();
    let toml = |policy: &str| {
        config(
            port,
            metrics_port,
            &refs,
            &format!(
                "[scatter]\nnode_timeout_ms = 1000\nunavailable_shard_policy = \"{policy}\"\n"
            ),
        )
    };
    let miroir =
        miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml("partial"), port).await;
    let base = miroir.url();
    prepare(&base).await;
    let uid = write(&base, docs(0..900, 1)).await.expect("write");
    assert_eq!(unsucceeded(&base, &[uid]).await, 0);
    assert_eq!(search_total(&base).await, Ok((900, None)));

    nodes[0].stop().await;
    let started = Instant::now();
    wait_state(&base, "n0", "failed", Duration::from_secs(10)).await;
    let detect = started.elapsed();
    let (total, degraded) = search_total(&base).await.expect("partial answer");
    let degraded = degraded.expect("X-Miroir-Degraded on a partial answer");
    assert!(degraded.starts_with("shards="), "{degraded}");
    assert!(total > 0 && total < 900, "{total}");

    miroir.write_config(&toml("error"));
    miroir.signal("HUP");
    let refused = eventually(Duration::from_secs(10), || async {
        search_total(&base)
            .await
            .is_err_and(|e| e.contains("miroir_shard_unavailable"))
    })
    .await;
    assert!(
        refused,
        "503 miroir_shard_unavailable under the error policy"
    );
    let err = search_total(&base).await.unwrap_err();
    assert!(err.starts_with("503"), "{err}");

    nodes[0].restart().await.expect("restart");
    let started = Instant::now();
    wait_state(&base, "n0", "active", Duration::from_secs(30)).await;
    let converge = started.elapsed();
    assert_eq!(search_total(&base).await, Ok((900, None)));
    report(3, 0, 0, Some(detect), Some(converge));
}

/// 4. RF 2: a node flapping every ~1.5 s during mixed reads and writes (each write a newer
/// version of the same documents): no client error, and every replica ends with the latest
/// version (an old write never overtakes a newer one, replays included).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s4_flapping_node_during_mixed_traffic() {
    let c = Arc::new(rf2("").await);
    let base = c.miroir.url();
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut flips = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(700)).await;
                c.nodes[0].stop().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                c.nodes[0].restart().await.expect("restart");
                flips += 1;
            }
            flips
        })
    };
    let (mut tasks, mut errors) = (Vec::new(), 0);
    let mut expected = BTreeMap::new();
    let started = Instant::now();
    let mut version = 0;
    while started.elapsed() < Duration::from_secs(8) {
        version += 1;
        match write(&base, docs(0..300, version)).await {
            Some(uid) => {
                tasks.push(uid);
                expected.extend((0..300).map(|i| (i, version)));
            }
            None => errors += 1,
        }
        for _ in 0..3 {
            if let Err(e) = search_total(&base).await {
                eprintln!("search: {e}");
                errors += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flapper.await.expect("flapper");
    let recovered = Instant::now();
    let failed_tasks = unsucceeded(&base, &tasks).await;
    wait_state(&base, "n0", "active", Duration::from_secs(60)).await;
    let converge = recovered.elapsed();
    let a = audit(&c, &expected).await;
    report(4, a.lost, errors, None, Some(converge));
    println!(
        "CHAOS scenario=4 flips={flips} writes={} versions={version}",
        tasks.len()
    );
    assert!(flips >= 3, "the node flapped {flips} times");
    assert_eq!(errors, 0);
    assert_eq!(failed_tasks, 0);
    assert_eq!(a, Audit::default());
}

/// 5. Miroir crashes while hints are pending; the restarted process resumes the replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_miroir_restart_resumes_pending_replays() {
    let mut c = rf2("").await;
    let base = c.miroir.url();
    let mut tasks = vec![write(&base, docs(0..2000, 1)).await.expect("write")];
    let mut expected: BTreeMap<u64, u64> = (0..2000).map(|i| (i, 1)).collect();
    c.nodes[1].stop().await;
    for batch in 0..6u64 {
        let ids = 2000 + batch * 500..2000 + (batch + 1) * 500;
        tasks.push(
            write(&base, docs(ids.clone(), 1))
                .await
                .expect("degraded write"),
        );
        expected.extend(ids.map(|i| (i, 1)));
    }
    // Also newer versions of documents written before the failure.
    tasks.push(write(&base, docs(0..500, 2)).await.expect("update"));
    expected.extend((0..500).map(|i| (i, 2)));
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    let (_, pending) = node_status(&base, "n1").await;
    assert!(pending > 0, "hints are waiting for n1");
    let (_, task) = call(&base, "GET", &format!("/tasks/{}", tasks[1]), None).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["miroir"]["pendingReplays"], json!(["n1"]), "{task}");

    c.miroir.crash_and_restart(miroir_bin()).await;
    let (_, still) = node_status(&base, "n1").await;
    assert_eq!(still, pending, "the hints survived the crash");
    c.nodes[1].restart().await.expect("restart node");
    let started = Instant::now();
    wait_state(&base, "n1", "active", Duration::from_secs(60)).await;
    let converge = started.elapsed();
    let (_, task) = call(&base, "GET", &format!("/tasks/{}", tasks[1]), None).await;
    assert_eq!(task["miroir"]["pendingReplays"], json!([]), "{task}");
    let a = audit(&c, &expected).await;
    report(5, a.lost, 0, None, Some(converge));
    assert_eq!(a, Audit::default());
    assert!(c.miroir.log().contains("replayed"), "{}", c.miroir.log());
}

/// 6. RF 2: one node answers 5xx to 10 % of requests: no client-visible read (or write)
/// error, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s6_node_failing_ten_percent_of_requests() {
    let c = rf2("").await;
    let base = c.miroir.url();
    let mut tasks = vec![write(&base, docs(0..1000, 1)).await.expect("seed")];
    let mut expected: BTreeMap<u64, u64> = (0..1000).map(|i| (i, 1)).collect();
    unsucceeded(&base, &tasks).await;
    c.nodes[1].faults().set_error_rate(ErrorRate {
        rate: 0.10,
        status: 500,
        path_prefix: None,
    });
    let mut errors = 0;
    for round in 0..200u64 {
        match search_total(&base).await {
            Ok((total, None)) if total >= 1000 => {}
            other => {
                eprintln!("search {round}: {other:?}");
                errors += 1;
            }
        }
        if round % 20 == 0 {
            let ids = 1000 + round * 5..1000 + (round + 1) * 5;
            match write(&base, docs(ids.clone(), 1)).await {
                Some(uid) => {
                    tasks.push(uid);
                    expected.extend(ids.map(|i| (i, 1)));
                }
                None => errors += 1,
            }
        }
    }
    c.nodes[1].faults().clear();
    let cleared = Instant::now();
    let failed_tasks = unsucceeded(&base, &tasks).await;
    wait_state(&base, "n1", "active", Duration::from_secs(60)).await;
    let converge = cleared.elapsed();
    let a = audit(&c, &expected).await;
    report(6, a.lost, errors, None, Some(converge));
    assert_eq!(errors, 0, "client-visible errors");
    assert_eq!(failed_tasks, 0);
    assert_eq!(a, Audit::default());
}

/// Replica groups (RG 2, RF 1, two nodes per group): searches rotate over both groups, a
/// group that lost a node borrows the missing shards from the other group (complete answers,
/// no error), writes still reach every group, and the node catches up when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_fall_back_to_each_other_for_a_lost_shard() {
    let nodes = sim_nodes(4).await;
    let (port, metrics_port) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&SimNode> = nodes.iter().collect();
    let mut toml = config(port, metrics_port, &refs, &rf2_toml_extra("")).replacen(
        "shards = 8\n",
        "shards = 8\nreplica_groups = 2\n",
        1,
    );
    for i in 0..4 {
        toml = toml.replace(
            &format!("id = \"n{i}\"\n"),
            &format!("id = \"n{i}\"\nreplica_group = {}\n", i / 2),
        );
    }
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let c = Cluster {
        nodes,
        miroir,
        metrics_port,
    };
    let base = c.miroir.url();
    prepare(&base).await;
    let mut expected: BTreeMap<u64, u64> = (0..1000).map(|i| (i, 1)).collect();
    let mut tasks = vec![write(&base, docs(0..1000, 1)).await.expect("write")];
    assert_eq!(unsucceeded(&base, &tasks).await, 0);

    let searches = |node: usize| {
        let metrics_port = c.metrics_port;
        async move {
            let text = metrics_text(metrics_port).await;
            text.lines()
                .filter(|l| {
                    l.starts_with("miroir_upstream_requests_total")
                        && l.contains(&format!("node=\"n{node}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    let before: Vec<f64> = futures::future::join_all((0..4).map(searches)).await;
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(search_total(&base).await, Ok((1000, None)));
    }
    // Health checks (every 100 ms) add about 10 requests per node per second.
    let checks = 10.0 * (started.elapsed().as_secs_f64() + 1.0);
    let after: Vec<f64> = futures::future::join_all((0..4).map(searches)).await;
    let served: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(
        served.iter().all(|n| *n >= 30.0 + checks),
        "searches rotate over both groups: requests per node {served:?} (checks ~{checks})"
    );

    c.nodes[0].stop().await;
    let started = Instant::now();
    wait_state(&base, "n0", "failed", Duration::from_secs(10)).await;
    let detect = started.elapsed();
    let mut errors = 0;
    for round in 0..20u64 {
        match search_total(&base).await {
            Ok((total, None)) if total >= 1000 => {}
            other => {
                eprintln!("search {round}: {other:?}");
                errors += 1;
            }
        }
    }
    let ids = 1000..1500;
    tasks.push(
        write(&base, docs(ids.clone(), 1))
            .await
            .expect("write with a node down"),
    );
    expected.extend(ids.map(|i| (i, 1)));
    c.nodes[0].restart().await.expect("restart");
    let started = Instant::now();
    wait_state(&base, "n0", "active", Duration::from_secs(60)).await;
    let converge = started.elapsed();
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    let mut lost = 0;
    for group in [0, 1] {
        // Every document on its shard's node in each group.
        let topo = admin(&base, "/_miroir/topology").await;
        let mut held = Vec::new();
        for node in &c.nodes {
            held.push(node_docs(node).await);
        }
        for (&id, &v) in &expected {
            let shard = shard_for_key(&id.to_string(), SHARDS);
            let owner = topo["groups"][group]["shards"][shard.0.to_string()][0]
                .as_str()
                .and_then(|n| n.trim_start_matches('n').parse::<usize>().ok())
                .expect("owner");
            if held[owner].get(&id) != Some(&v) {
                lost += 1;
            }
        }
    }
    report(7, lost, errors, Some(detect), Some(converge));
    assert_eq!(errors, 0);
    assert_eq!(lost, 0, "copies missing in a group");
}

/// Settings and document deletions a node misses are hinted like document writes and replayed
/// in order: the node gets the filterable attribute before the deletion that filters on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_writes_a_node_missed_are_replayed_in_order() {
    let c = rf2("").await;
    let base = c.miroir.url();
    let mut tasks = vec![write(&base, docs(0..300, 1)).await.expect("write")];
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    c.nodes[2].stop().await;
    wait_state(&base, "n2", "failed", Duration::from_secs(10)).await;

    let (status, t) = call(
        &base,
        "PUT",
        &format!("/indexes/{INDEX}/settings/filterable-attributes"),
        Some(json!(["id"])),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    tasks.push(t["taskUid"].as_u64().expect("uid"));
    let (status, t) = call(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/documents/delete"),
        Some(json!({"filter": "id < 100"})),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    let delete_task = t["taskUid"].as_u64().expect("uid");
    tasks.push(delete_task);
    tasks.push(write(&base, docs(300..400, 1)).await.expect("write"));
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    let (_, t) = call(&base, "GET", &format!("/tasks/{delete_task}"), None).await;
    assert_eq!(t["miroir"]["pendingReplays"], json!(["n2"]), "{t}");

    c.nodes[2].restart().await.expect("restart");
    wait_state(&base, "n2", "active", Duration::from_secs(60)).await;
    let (_, t) = call(&base, "GET", &format!("/tasks/{delete_task}"), None).await;
    assert_eq!(t["miroir"]["pendingReplays"], json!([]), "{t}");
    let (_, filterable) = call(
        &c.nodes[2].url(),
        "GET",
        &format!("/indexes/{INDEX}/settings/filterable-attributes"),
        None,
    )
    .await;
    let filterable = filterable.as_array().cloned().unwrap_or_default();
    assert!(filterable.contains(&json!("id")), "{filterable:?}");
    assert!(
        filterable.contains(&json!("_miroir_shard")),
        "{filterable:?}"
    );
    let expected: BTreeMap<u64, u64> = (100..400).map(|i| (i, 1)).collect();
    let a = audit(&c, &expected).await;
    assert_eq!(a, Audit::default());
    let n2 = node_docs(&c.nodes[2]).await;
    assert!(
        n2.keys().all(|id| *id >= 100),
        "deleted documents came back on n2"
    );
}

async fn capped_cluster(quorum: &str) -> Cluster {
    let c = cluster_with(
        3,
        &format!("replication_factor = 2\nwrite_quorum = \"{quorum}\"\n"),
        "[scatter]\nnode_timeout_ms = 1000\n\n[handoff]\nreplay_interval_ms = 50\nmax_bytes_per_node = 60000\n",
    )
    .await;
    prepare(&c.miroir.url()).await;
    c.nodes[1].stop().await;
    wait_state(&c.miroir.url(), "n1", "failed", Duration::from_secs(10)).await;
    c
}

async fn n1(base: &str) -> Value {
    let topo = admin(base, "/_miroir/topology").await;
    topo["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "n1").cloned())
        .expect("n1")
}

/// When a down replica's hint queue is full, a write that would then exist in one place only
/// is refused before any node is touched (nothing partial), and the node, having missed
/// nothing acknowledged, catches up fully once back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hint_queue_refuses_writes_without_applying_them_anywhere() {
    let c = capped_cluster("majority").await;
    let base = c.miroir.url();
    let (mut tasks, mut refused) = (Vec::new(), 0);
    for batch in 0..10u64 {
        let ids = batch * 100..(batch + 1) * 100;
        match write(&base, docs(ids, 1)).await {
            Some(uid) if refused == 0 => tasks.push(uid),
            Some(uid) => panic!("task {uid} accepted after a refusal"),
            None => refused += 1,
        }
    }
    assert!(
        !tasks.is_empty() && refused > 0,
        "{} accepted, {refused} refused",
        tasks.len()
    );
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    let accepted = 100 * tasks.len() as u64;
    assert_eq!(
        search_total(&base).await,
        Ok((accepted, None)),
        "refused writes left no trace"
    );
    let node = n1(&base).await;
    assert_eq!(node["needsResync"], false, "{node}");
    let m = metrics_text(c.metrics_port).await;
    assert!(
        sample(&m, "miroir_hints_total{node=\"n1\",outcome=\"full\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    c.nodes[1].restart().await.expect("restart");
    wait_state(&base, "n1", "active", Duration::from_secs(30)).await;
    let expected: BTreeMap<u64, u64> = (0..accepted).map(|i| (i, 1)).collect();
    assert_eq!(audit(&c, &expected).await, Audit::default());
}

/// Under `write_quorum = "one"` a write may be acknowledged although a down replica's hint
/// queue is full: that node is marked as needing a full resync (log, topology), and stays out
/// of reads even once it answers again and its hints are replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_lost_for_a_node_marks_it_for_resync() {
    let c = capped_cluster("one").await;
    let base = c.miroir.url();
    let mut tasks = Vec::new();
    for batch in 0..10u64 {
        let ids = batch * 100..(batch + 1) * 100;
        tasks.push(write(&base, docs(ids, 1)).await.expect("write"));
    }
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    let node = n1(&base).await;
    assert_eq!(node["needsResync"], true, "{node}");
    assert!(
        node["pendingHintBytes"].as_u64().unwrap() <= 60000,
        "{node}"
    );
    assert!(c.miroir.log().contains("needs a full resync"));

    // Reads avoid it: complete answers from the other replicas.
    assert_eq!(n1(&base).await["servesReads"], false);
    assert_eq!(search_total(&base).await, Ok((1000, None)));

    // Once back, Miroir rebuilds it from the other copies; then the mark clears and it
    // serves reads again, holding every document of its shards.
    c.nodes[1].restart().await.expect("restart");
    let rebuilt = eventually(Duration::from_secs(60), || async {
        let node = n1(&base).await;
        node["needsResync"] == false && node["status"] == "active"
    })
    .await;
    assert!(rebuilt, "{}\n{}", n1(&base).await, c.miroir.log());
    assert!(c
        .miroir
        .log()
        .contains("rebuilding it, because its hint queue overflowed"));
    let topo = admin(&base, "/_miroir/topology").await;
    let held: Vec<u32> = topo["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "n1"))
        .and_then(|n| n["shards"].as_array())
        .expect("n1's shards")
        .iter()
        .filter_map(|s| s.as_u64().map(|s| s as u32))
        .collect();
    let expected = (0..1000u64)
        .filter(|id| held.contains(&shard_for_key(&id.to_string(), 8).0))
        .count();
    let (status, page) = call(
        &c.nodes[1].url(),
        "POST",
        &format!("/indexes/{INDEX}/documents/fetch"),
        Some(json!({"limit": 0})),
    )
    .await;
    assert_eq!(
        (status, page["total"].as_u64()),
        (200, Some(expected as u64))
    );
    assert_eq!(search_total(&base).await, Ok((1000, None)));
}

/// Index settings every node must hold for the audits: totals counted past 1000.
async fn index_on(node: &SimNode) -> (u16, Value) {
    call(&node.url(), "GET", &format!("/indexes/{INDEX}"), None).await
}

/// The index is deleted and created again with new documents while a replica is down (and,
/// with `restart`, Miroir is killed and started again before the replica is back): once back,
/// the replica gets the deletion, the creation and the new documents in that order, from the
/// one log, and holds exactly what the others hold.
async fn deleted_and_recreated_while_a_replica_is_down(restart: bool) {
    let mut c = rf2("").await;
    let base = c.miroir.url();
    let tasks = vec![write(&base, docs(0..300, 1)).await.expect("write")];
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    c.nodes[2].stop().await;
    wait_state(&base, "n2", "failed", Duration::from_secs(10)).await;

    let (status, t) = call(&base, "DELETE", &format!("/indexes/{INDEX}"), None).await;
    assert_eq!(status, 202, "{t}");
    let deletion = t["taskUid"].as_u64().expect("uid");
    assert_eq!(unsucceeded(&base, &[deletion]).await, 0);
    let (status, t) = call(
        &base,
        "POST",
        "/indexes",
        Some(json!({"uid": INDEX, "primaryKey": "id"})),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    let mut tasks = vec![t["taskUid"].as_u64().expect("uid")];
    tasks.push(write(&base, docs(1000..1200, 2)).await.expect("write"));
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    let (_, pending) = node_status(&base, "n2").await;
    assert!(
        pending >= 3,
        "deletion, creation and documents wait for n2: {pending}"
    );

    if restart {
        c.miroir.crash_and_restart(miroir_bin()).await;
        let (_, still) = node_status(&base, "n2").await;
        assert_eq!(still, pending, "the log survived the crash");
    }
    c.nodes[2].restart().await.expect("restart");
    wait_state(&base, "n2", "active", Duration::from_secs(60)).await;
    let (_, t) = call(&base, "GET", &format!("/tasks/{deletion}"), None).await;
    assert_eq!(t["miroir"]["pendingReplays"], json!([]), "{t}");

    let expected: BTreeMap<u64, u64> = (1000..1200).map(|i| (i, 2)).collect();
    assert_eq!(audit(&c, &expected).await, Audit::default());
    for node in &c.nodes {
        let (status, index) = index_on(node).await;
        assert_eq!(status, 200, "{index}");
        let held = node_docs(node).await;
        assert!(
            held.keys().all(|id| *id >= 1000),
            "documents of the deleted index came back on {}: {held:?}",
            node.url()
        );
        let (_, filterable) = call(
            &node.url(),
            "GET",
            &format!("/indexes/{INDEX}/settings/filterable-attributes"),
            None,
        )
        .await;
        assert!(
            filterable
                .as_array()
                .is_some_and(|f| f.contains(&json!("_miroir_shard"))),
            "{filterable}"
        );
    }
    assert_eq!(search_total(&base).await, Ok((200, None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_deleted_and_recreated_while_a_replica_is_down_converges() {
    deleted_and_recreated_while_a_replica_is_down(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_deleted_and_recreated_converges_across_a_miroir_restart() {
    deleted_and_recreated_while_a_replica_is_down(true).await;
}

/// Keys created, updated and revoked while a replica is down reach it from its log before it
/// serves again: afterwards the revoked key is refused through Miroir on every read rotation
/// and by every node directly, and the other two are the same on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_changed_while_a_replica_is_down_reach_it_and_a_revoked_key_is_refused_everywhere() {
    let c = rf2("").await;
    let base = c.miroir.url();
    let tasks = vec![write(&base, docs(0..200, 1)).await.expect("write")];
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    let new_key = |name: &str| json!({"name": name, "actions": ["search", "documents.get"], "indexes": [INDEX], "expiresAt": null});
    let (status, revoked) = call(&base, "POST", "/keys", Some(new_key("revoked"))).await;
    assert_eq!(status, 201, "{revoked}");
    let revoked_key = revoked["key"].as_str().expect("key").to_owned();
    assert_eq!(search_as(&base, INDEX, &revoked_key).await.0, 200);
    let (status, updated) = call(&base, "POST", "/keys", Some(new_key("before"))).await;
    assert_eq!(status, 201, "{updated}");

    c.nodes[1].stop().await;
    wait_state(&base, "n1", "failed", Duration::from_secs(10)).await;
    let uid = revoked["uid"].as_str().expect("uid");
    let (status, body) = call(&base, "DELETE", &format!("/keys/{uid}"), None).await;
    assert_eq!(
        status, 204,
        "the revocation is made, not refused for quorum: {body}"
    );
    let (status, body) = call(
        &base,
        "PATCH",
        &format!("/keys/{}", updated["uid"].as_str().expect("uid")),
        Some(json!({"name": "after"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, created) = call(&base, "POST", "/keys", Some(new_key("created"))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(search_as(&base, INDEX, &revoked_key).await.0, 403);

    c.nodes[1].restart().await.expect("restart");
    wait_state(&base, "n1", "active", Duration::from_secs(60)).await;
    for _ in 0..30 {
        let (status, body) = search_as(&base, INDEX, &revoked_key).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("invalid_api_key")),
            "{body}"
        );
    }
    let created_key = created["key"].as_str().expect("key");
    for _ in 0..10 {
        assert_eq!(search_as(&base, INDEX, created_key).await.0, 200);
    }
    for node in &c.nodes {
        let (status, body) = search_as(&node.url(), INDEX, &revoked_key).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("invalid_api_key")),
            "{body}"
        );
        let (status, _) = call(&node.url(), "GET", &format!("/keys/{uid}"), None).await;
        assert_eq!(status, 404, "the revoked key is gone from {}", node.url());
        let (_, key) = call(
            &node.url(),
            "GET",
            &format!("/keys/{}", updated["uid"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(key["name"], "after", "{key}");
        let (status, key) = call(
            &node.url(),
            "GET",
            &format!("/keys/{}", created["uid"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!((status, &key["key"]), (200, &created["key"]), "{key}");
    }
}

/// A write that touched one replica and then failed its quorum (the other replica answered
/// 500 and its copy is too large for its hint queue) is not left on one replica: the error says
/// it is rolled forward, and the replica that missed it is rebuilt from the others, so every
/// replica ends with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_refused_for_quorum_after_touching_a_replica_is_rolled_forward() {
    let c = cluster_with(
        3,
        "replication_factor = 2\n",
        "[scatter]\nnode_timeout_ms = 1000\n\n[handoff]\nreplay_interval_ms = 50\nmax_bytes_per_node = 20000\n",
    )
    .await;
    let base = c.miroir.url();
    prepare(&base).await;
    let tasks = vec![write(&base, docs(0..100, 1)).await.expect("write")];
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    c.nodes[1].faults().set_error_rate(ErrorRate {
        rate: 1.0,
        status: 500,
        path_prefix: Some(format!("/indexes/{INDEX}/documents")),
    });
    // About 40 KB for n1: more than its whole hint queue may hold.
    let (status, body) = call(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(docs(100..700, 1)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_no_quorum")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or("");
    assert!(message.contains("rolled forward"), "{message}");
    c.nodes[1].faults().clear();
    let rebuilt = eventually(Duration::from_secs(60), || async {
        let node = n1(&base).await;
        node["needsResync"] == false && node["status"] == "active"
    })
    .await;
    assert!(rebuilt, "{}\n{}", n1(&base).await, c.miroir.log());
    let expected: BTreeMap<u64, u64> = (0..700).map(|i| (i, 1)).collect();
    let settled = eventually(Duration::from_secs(30), || async {
        audit(&c, &expected).await == Audit::default()
    })
    .await;
    assert!(settled, "{:?}", audit(&c, &expected).await);
}

/// Two requests sent at once with one `Idempotency-Key` are one write: the nodes receive it
/// once and both clients get the same task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_idempotency_key_reach_the_nodes_once() {
    let c = rf2("").await;
    let base = c.miroir.url();
    let mut before = Vec::new();
    for node in &c.nodes {
        before.push(common::node_write_tasks(node, INDEX).await);
    }
    let send = || {
        client()
            .post(format!("{base}/indexes/{INDEX}/documents"))
            .bearer_auth(KEY)
            .header("Idempotency-Key", "import-42")
            .json(&docs(0..500, 1))
            .send()
    };
    let (a, b) = tokio::join!(send(), send());
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["taskUid"], b["taskUid"], "{a} {b}");
    assert_eq!(
        unsucceeded(&base, &[a["taskUid"].as_u64().unwrap()]).await,
        0
    );
    for (node, before) in c.nodes.iter().zip(before) {
        assert_eq!(
            common::node_write_tasks(node, INDEX).await,
            before + 1,
            "{}",
            node.url()
        );
    }
    let expected: BTreeMap<u64, u64> = (0..500).map(|i| (i, 1)).collect();
    assert_eq!(audit(&c, &expected).await, Audit::default());
}

/// With RF 2 and one replica down, a task's counts are the logical ones: the hinted replica has
/// no node task, and the others' counts are not divided as if it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn task_counts_are_logical_with_a_replica_down() {
    let c = rf2("").await;
    let base = c.miroir.url();
    c.nodes[1].stop().await;
    wait_state(&base, "n1", "failed", Duration::from_secs(10)).await;
    let uid = write(&base, docs(0..1000, 1)).await.expect("write");
    assert_eq!(unsucceeded(&base, &[uid]).await, 0);
    let (_, t) = call(&base, "GET", &format!("/tasks/{uid}"), None).await;
    assert_eq!(t["details"]["receivedDocuments"], 1000, "{t}");
    assert_eq!(t["details"]["indexedDocuments"], 1000, "{t}");
    let (status, t) = call(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/documents/delete-batch"),
        Some(json!((0..300).collect::<Vec<u64>>())),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    let uid = t["taskUid"].as_u64().expect("uid");
    assert_eq!(unsucceeded(&base, &[uid]).await, 0);
    let (_, t) = call(&base, "GET", &format!("/tasks/{uid}"), None).await;
    assert_eq!(t["details"]["deletedDocuments"], 300, "{t}");
    c.nodes[1].restart().await.expect("restart");
    wait_state(&base, "n1", "active", Duration::from_secs(60)).await;
    let expected: BTreeMap<u64, u64> = (300..1000).map(|i| (i, 1)).collect();
    assert_eq!(audit(&c, &expected).await, Audit::default());
}

// ---- Anti-entropy -----------------------------------------------------------------------

fn anti_entropy_extra() -> String {
    rf2_toml_extra("") + "\n[anti_entropy]\ninterval_ms = 300\n"
}

/// Three nodes, RF 2, anti-entropy every 300 ms; the index with `settings` and documents
/// `0..n`, every task succeeded.
async fn anti_entropy_cluster(settings: Value, n: u64) -> Cluster {
    let c = cluster_with(3, "replication_factor = 2\n", &anti_entropy_extra()).await;
    let base = c.miroir.url();
    prepare(&base).await;
    let path = format!("/indexes/{INDEX}/settings");
    let (status, t) = call(&base, "PATCH", &path, Some(settings)).await;
    assert_eq!(status, 202, "{t}");
    let task = write(&base, docs(0..n, 1)).await.expect("write");
    let tasks = [t["taskUid"].as_u64().expect("uid"), task];
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    c
}

/// Every document `node` holds, whole (hidden fields included): id -> document.
async fn node_full_docs(node: &SimNode) -> BTreeMap<u64, Value> {
    let (status, page) = call(
        &node.url(),
        "GET",
        &format!("/indexes/{INDEX}/documents?limit=100000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["id"].as_u64()?, d.clone())))
        .collect()
}

/// A write sent to one node directly, behind Miroir's back; waits until the node processed it.
async fn on_node(node: &SimNode, method: &str, path: &str, body: Option<Value>) {
    let (status, task) = call(&node.url(), method, path, body).await;
    assert_eq!(status, 202, "{task}");
    let uid = task["taskUid"].as_u64().expect("task uid");
    let done = eventually(Duration::from_secs(10), || async {
        let (_, t) = call(&node.url(), "GET", &format!("/tasks/{uid}"), None).await;
        t["status"] == "succeeded"
    })
    .await;
    assert!(done, "node task {uid} did not succeed");
}

/// Every replica of every document holds the same copy (content and `_miroir_version`), and
/// no node holds a document outside its shards.
async fn replicas_identical(c: &Cluster) -> Result<usize, String> {
    let topo = admin(&c.miroir.url(), "/_miroir/topology").await;
    let mut held = Vec::new();
    for node in &c.nodes {
        held.push(node_full_docs(node).await);
    }
    let ids: std::collections::BTreeSet<u64> =
        held.iter().flat_map(|h| h.keys().copied()).collect();
    for id in &ids {
        let shard = shard_for_key(&id.to_string(), SHARDS);
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
            return Err(format!("document {id} differs across replicas: {copies:?}"));
        }
        if copies[0].is_some_and(|d| d["_miroir_version"].as_str().is_none()) {
            return Err(format!("document {id} has no version: {copies:?}"));
        }
        if (0..c.nodes.len()).any(|n| !replicas.contains(&n) && held[n].contains_key(id)) {
            return Err(format!("document {id} is held outside its replicas"));
        }
    }
    Ok(ids.len())
}

/// Bit rot: on one node, behind Miroir's back, a document changed, one deleted and one added.
/// Anti-entropy finds and repairs all three: every replica ends identical, versions included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anti_entropy_repairs_bit_rot_behind_miroirs_back() {
    let c = cluster_with(3, "replication_factor = 2\n", &anti_entropy_extra()).await;
    let base = c.miroir.url();
    prepare(&base).await;
    let task = write(&base, docs(0..300, 1)).await.expect("write");
    assert_eq!(unsucceeded(&base, &[task]).await, 0);
    assert_eq!(replicas_identical(&c).await, Ok(300));

    let n0 = &c.nodes[0];
    let held = node_full_docs(n0).await;
    let mut on_n0 = held.keys().copied();
    let (changed, deleted) = (on_n0.next().unwrap(), on_n0.next().unwrap());
    // A client writing to the node directly knows nothing of Miroir's fields.
    let mut rotten = held[&changed].clone();
    rotten["title"] = json!("rotten");
    rotten.as_object_mut().unwrap().remove("_miroir_version");
    let docs_path = format!("/indexes/{INDEX}/documents");
    on_node(n0, "POST", &docs_path, Some(json!([rotten]))).await;
    on_node(n0, "DELETE", &format!("{docs_path}/{deleted}"), None).await;
    on_node(
        n0,
        "POST",
        &docs_path,
        Some(json!([{"id": 99999, "title": "foreign", "v": 1}])),
    )
    .await;
    assert!(replicas_identical(&c).await.is_err());

    let started = Instant::now();
    let converged = eventually(Duration::from_secs(30), || async {
        replicas_identical(&c).await == Ok(300)
    })
    .await;
    assert!(converged, "{:?}", replicas_identical(&c).await);
    println!("ANTI-ENTROPY bit rot repaired in {:?}", started.elapsed());
    let expected: BTreeMap<u64, u64> = (0..300).map(|i| (i, 1)).collect();
    assert_eq!(audit(&c, &expected).await, Audit::default());
    for node in &c.nodes {
        if let Some(doc) = node_full_docs(node).await.get(&changed) {
            assert_eq!(doc["title"], held[&changed]["title"], "{doc}");
        }
    }
    let status = &admin(&base, "/_miroir/topology").await["antiEntropy"];
    let repaired = &status["repaired"];
    assert!(repaired["missing"].as_u64() >= Some(1), "{status}");
    assert!(repaired["different"].as_u64() >= Some(1), "{status}");
    assert!(repaired["extra"].as_u64() >= Some(1), "{status}");
    let metrics = metrics_text(c.metrics_port).await;
    assert!(
        sample(
            &metrics,
            "miroir_anti_entropy_repairs_total{kind=\"missing\"}"
        ) >= Some(1.0),
        "{metrics}"
    );
}

/// A document deleted through Miroir while one replica was down, its hint lost: anti-entropy
/// finds the copy the replica kept and deletes it, rather than copying it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anti_entropy_does_not_resurrect_a_deletion_whose_hint_was_lost() {
    let mut c = cluster_with(3, "replication_factor = 2\n", &anti_entropy_extra()).await;
    let base = c.miroir.url();
    prepare(&base).await;
    let task = write(&base, docs(0..300, 1)).await.expect("write");
    assert_eq!(unsucceeded(&base, &[task]).await, 0);
    let on_n1: Vec<u64> = node_full_docs(&c.nodes[1])
        .await
        .keys()
        .copied()
        .take(6)
        .collect();

    c.nodes[1].stop().await;
    let (status, t) = call(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/documents/delete-batch"),
        Some(json!(on_n1[..5])),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    let mut tasks = vec![t["taskUid"].as_u64().unwrap()];
    let (status, t) = call(
        &base,
        "DELETE",
        &format!("/indexes/{INDEX}/documents/{}", on_n1[5]),
        None,
    )
    .await;
    assert_eq!(status, 202, "{t}");
    tasks.push(t["taskUid"].as_u64().unwrap());
    assert_eq!(unsucceeded(&base, &tasks).await, 0);
    assert!(
        node_status(&base, "n1").await.1 > 0,
        "the deletions are hinted for n1"
    );

    // The hints are lost (a disk failure): only anti-entropy can bring n1 in line.
    c.miroir
        .crash_and_restart_after(miroir_bin(), |data| {
            std::fs::remove_file(data.join("tasks").join("hints.redb")).expect("remove hints");
        })
        .await;
    c.nodes[1].restart().await.expect("restart node");
    wait_state(&base, "n1", "active", Duration::from_secs(30)).await;
    let kept = node_full_docs(&c.nodes[1]).await;
    assert!(
        on_n1.iter().all(|id| kept.contains_key(id)),
        "n1 kept its copies"
    );

    let expected: BTreeMap<u64, u64> = (0..300)
        .filter(|i| !on_n1.contains(i))
        .map(|i| (i, 1))
        .collect();
    let converged = eventually(Duration::from_secs(30), || async {
        replicas_identical(&c).await == Ok(expected.len())
    })
    .await;
    assert!(converged, "{:?}", replicas_identical(&c).await);
    assert_eq!(audit(&c, &expected).await, Audit::default());
    for node in &c.nodes {
        let held = node_full_docs(node).await;
        assert!(
            on_n1.iter().all(|id| !held.contains_key(id)),
            "{}",
            node.url()
        );
    }
}

/// `_miroir_version` is on every node's copy and in no answer a client gets, and no number in
/// a query matches it (`POST /fields`, which the simulator lacks, is checked on real nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_version_field_never_reaches_a_client() {
    let c = anti_entropy_cluster(json!({"filterableAttributes": ["v"]}), 50).await;
    let base = c.miroir.url();
    let doc = node_full_docs(&c.nodes[0])
        .await
        .into_values()
        .next()
        .unwrap();
    let value = doc["_miroir_version"]
        .as_str()
        .expect("versioned")
        .to_owned();
    let number = miroir_filters::hidden::parse_version(&json!(value))
        .expect("a version Miroir wrote")
        .to_string();
    assert_hidden(&base, &number, &value).await;
}

async fn assert_hidden(base: &str, number: &str, value: &str) {
    let search = format!("/indexes/{INDEX}/search");
    let answers = [
        call(
            base,
            "POST",
            &search,
            Some(json!({"q": "doc", "attributesToHighlight": ["*"],
            "attributesToCrop": ["*"], "showMatchesPosition": true, "facets": ["v"],
            "attributesToRetrieve": ["*"], "limit": 100})),
        )
        .await,
        call(
            base,
            "POST",
            &search,
            Some(json!({"q": "", "attributesToRetrieve": ["_miroir_version", "id"]})),
        )
        .await,
        call(
            base,
            "GET",
            &format!("/indexes/{INDEX}/documents?limit=100"),
            None,
        )
        .await,
        call(
            base,
            "GET",
            &format!("/indexes/{INDEX}/documents?fields=_miroir_version,id"),
            None,
        )
        .await,
        call(
            base,
            "POST",
            &format!("/indexes/{INDEX}/documents/fetch"),
            Some(json!({"limit": 100})),
        )
        .await,
        call(base, "GET", &format!("/indexes/{INDEX}/documents/1"), None).await,
        call(base, "GET", &format!("/indexes/{INDEX}/settings"), None).await,
        call(
            base,
            "GET",
            &format!("/indexes/{INDEX}/settings/displayed-attributes"),
            None,
        )
        .await,
        call(
            base,
            "GET",
            &format!("/indexes/{INDEX}/settings/searchable-attributes"),
            None,
        )
        .await,
        call(base, "GET", &format!("/indexes/{INDEX}/stats"), None).await,
        call(
            base,
            "POST",
            "/multi-search",
            Some(
                json!({"queries": [{"indexUid": INDEX, "q": "doc", "showMatchesPosition": true}]}),
            ),
        )
        .await,
    ];
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "answer {i}: {body}");
        assert!(!body.to_string().contains("_miroir"), "answer {i}: {body}");
    }
    assert!(answers[0].1["hits"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));
    version_matches_no_query(base, &search, number, value).await;
}

// ---- Anti-entropy of key sets and index sets -------------------------------------------

/// A counter of `miroir_anti_entropy_set_*` for one set and kind (labels in any order).
fn set_sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Anti-entropy repaired at least one copy of each of `kinds` in `set`, as
/// `/_miroir/topology` (what `miroir ctl status` prints) and the metrics show.
async fn assert_set_repaired(c: &Cluster, set: &str, kinds: &[&str]) {
    let counts = &admin(&c.miroir.url(), "/_miroir/topology").await["antiEntropy"][set];
    let metrics = metrics_text(c.metrics_port).await;
    for kind in kinds {
        assert!(counts[*kind].as_u64() >= Some(1), "{set} {kind}: {counts}");
        let labels = [&format!(r#"set="{set}""#), &format!(r#"kind="{kind}""#)];
        let labels = labels.map(String::as_str);
        let repairs = set_sample(&metrics, "miroir_anti_entropy_set_repairs_total", &labels);
        assert!(repairs >= Some(1.0), "{set} {kind}: {metrics}");
    }
}

// ---- Connections cut after the request went out ------------------------------------------

/// Node `node` takes the next `method` request under `prefix` whole, handles it (`apply`) or
/// not, and closes the connection without answering.
fn cut_next(node: &SimNode, method: &str, prefix: &str, apply: bool) {
    node.faults().set_cut(Cut {
        method: Some(method.into()),
        path_prefix: prefix.into(),
        apply,
        times: 1,
    });
}

/// A document write whose connection to one replica is cut after the body went out, applied
/// there or not: the node ends with exactly one task of it (found and adopted, or sent once
/// more), every replica identical, and the Miroir task's counts and the client's own
/// `customMetadata` right.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_write_cut_after_its_body_is_applied_once_per_replica() {
    for apply in [true, false] {
        let c = rf2("").await;
        let base = c.miroir.url();
        let mut before = Vec::new();
        for node in &c.nodes {
            before.push(node_write_tasks(node, INDEX).await);
        }
        cut_next(
            &c.nodes[0],
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            apply,
        );
        let (status, task) = call(
            &base,
            "POST",
            &format!("/indexes/{INDEX}/documents?customMetadata=import%201"),
            Some(docs(0..400, 1)),
        )
        .await;
        assert_eq!(status, 202, "apply={apply}: {task}");
        assert_eq!(c.nodes[0].faults().to_json()["cut"], Value::Null, "not cut");
        let uid = task["taskUid"].as_u64().expect("uid");
        assert_eq!(unsucceeded(&base, &[uid]).await, 0);
        let (_, t) = call(&base, "GET", &format!("/tasks/{uid}"), None).await;
        assert_eq!(t["details"]["receivedDocuments"], 400, "{t}");
        assert_eq!(t["details"]["indexedDocuments"], 400, "{t}");
        assert_eq!(t["customMetadata"], "import 1", "{t}");
        for (node, before) in c.nodes.iter().zip(&before) {
            assert_eq!(
                node_write_tasks(node, INDEX).await,
                before + 1,
                "apply={apply}: {}",
                node.url()
            );
        }
        let expected: BTreeMap<u64, u64> = (0..400).map(|i| (i, 1)).collect();
        assert_eq!(
            audit(&c, &expected).await,
            Audit::default(),
            "apply={apply}"
        );
        assert_eq!(replicas_identical(&c).await, Ok(400), "apply={apply}");
        // A broadcast document write keeps the client's `customMetadata` too, while the nodes
        // hold Miroir's marker.
        let (status, task) = call(
            &base,
            "DELETE",
            &format!("/indexes/{INDEX}/documents?customMetadata=wipe"),
            None,
        )
        .await;
        assert_eq!(status, 202, "{task}");
        let t = wait_task(&base, task["taskUid"].as_u64().expect("uid")).await;
        assert_eq!(
            (&t["status"], &t["customMetadata"]),
            (&json!("succeeded"), &json!("wipe"))
        );
        for node in &c.nodes {
            let clears = node_tasks_of(&node.url(), INDEX, "documentDeletion").await;
            let meta = clears.first().map(|t| t["customMetadata"].clone());
            assert!(
                meta.as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.starts_with("miroir:")),
                "{clears:?}"
            );
        }
    }
}

/// `POST /indexes` whose connection to one node is cut after the body went out: the client
/// gets the creation's success (not `index_already_exists` from a second copy), and every
/// node holds the index with exactly one creation task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_creation_cut_after_its_body_succeeds_once() {
    for apply in [true, false] {
        let c = cluster_with(3, "replication_factor = 2\n", &rf2_toml_extra("")).await;
        let base = c.miroir.url();
        cut_next(&c.nodes[1], "POST", "/indexes", apply);
        let (status, task) = call(
            &base,
            "POST",
            "/indexes",
            Some(json!({"uid": "fresh", "primaryKey": "id"})),
        )
        .await;
        assert_eq!(status, 202, "apply={apply}: {task}");
        assert_eq!(c.nodes[1].faults().to_json()["cut"], Value::Null, "not cut");
        let t = wait_task(&base, task["taskUid"].as_u64().expect("uid")).await;
        assert_eq!(t["status"], "succeeded", "apply={apply}: {t}");
        assert_eq!(t["type"], "indexCreation", "{t}");
        for node in &c.nodes {
            let (status, index) = call(&node.url(), "GET", "/indexes/fresh", None).await;
            assert_eq!(status, 200, "{index}");
            let creations = node_tasks_of(&node.url(), "fresh", "indexCreation").await;
            assert_eq!(creations.len(), 1, "apply={apply}: {creations:?}");
            assert_eq!(creations[0]["status"], "succeeded", "{creations:?}");
        }
    }
}

async fn key_on(node: &SimNode, uid: &str) -> (u16, Value) {
    call(&node.url(), "GET", &format!("/keys/{uid}"), None).await
}

/// Keys changed on one node behind Miroir's back, with three nodes: one deleted there is
/// created again (same uid, so the same key string), one recreated there with wider actions
/// gets the majority's back, and one created there only is deleted (a credential Miroir never
/// acknowledged must not work on some requests). Afterwards each key works, or is refused,
/// through Miroir and on every node alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anti_entropy_repairs_keys_changed_on_one_node_behind_miroirs_back() {
    let c = cluster_with(3, "replication_factor = 2\n", &anti_entropy_extra()).await;
    let base = c.miroir.url();
    prepare(&base).await;
    let task = write(&base, docs(0..100, 1)).await.expect("write");
    assert_eq!(unsucceeded(&base, &[task]).await, 0);
    let new_key = |name: &str| json!({"name": name, "actions": ["search"], "indexes": [INDEX], "expiresAt": null});
    let (status, kept) = call(&base, "POST", "/keys", Some(new_key("kept"))).await;
    assert_eq!(status, 201, "{kept}");
    let (status, narrowed) = call(&base, "POST", "/keys", Some(new_key("narrow"))).await;
    assert_eq!(status, 201, "{narrowed}");
    let uid = |k: &Value| k["uid"].as_str().expect("uid").to_owned();

    let n0 = &c.nodes[0];
    let (status, _) = call(&n0.url(), "DELETE", &format!("/keys/{}", uid(&kept)), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &n0.url(),
        "DELETE",
        &format!("/keys/{}", uid(&narrowed)),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let mut widened = new_key("narrow");
    widened["uid"] = json!(uid(&narrowed));
    widened["actions"] = json!(["*"]);
    let (status, body) = call(&n0.url(), "POST", "/keys", Some(widened)).await;
    assert_eq!(status, 201, "{body}");
    let (status, foreign) = call(&n0.url(), "POST", "/keys", Some(new_key("foreign"))).await;
    assert_eq!(status, 201, "{foreign}");

    let started = Instant::now();
    let converged = eventually(Duration::from_secs(30), || async {
        for node in &c.nodes {
            let (s, k) = key_on(node, &uid(&kept)).await;
            let (_, n) = key_on(node, &uid(&narrowed)).await;
            let (f, _) = key_on(node, &uid(&foreign)).await;
            if s != 200 || k["key"] != kept["key"] || n["actions"] != json!(["search"]) || f != 404
            {
                return false;
            }
        }
        true
    })
    .await;
    assert!(converged, "the keys did not converge");
    println!("ANTI-ENTROPY keys repaired in {:?}", started.elapsed());
    let kept_key = kept["key"].as_str().expect("key");
    let foreign_key = foreign["key"].as_str().expect("key");
    for _ in 0..9 {
        assert_eq!(search_as(&base, INDEX, kept_key).await.0, 200);
        assert_eq!(search_as(&base, INDEX, foreign_key).await.0, 403);
    }
    for node in &c.nodes {
        assert_eq!(search_as(&node.url(), INDEX, kept_key).await.0, 200);
        let status = client()
            .get(format!("{}/keys", node.url()))
            .bearer_auth(narrowed["key"].as_str().expect("key"))
            .send()
            .await
            .expect("keys")
            .status();
        assert_eq!(
            status,
            403,
            "the widened key lost its extra actions on {}",
            node.url()
        );
    }
    assert_set_repaired(&c, "keys", &["missing", "different", "extra"]).await;
    let status = ctl(&base, &["status"]).await;
    let line = status
        .lines()
        .find(|l| l.starts_with("anti-entropy of keys: repaired"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        !line.contains(" 0 missing") && !line.contains(" 0 extra"),
        "{line}"
    );
}

/// An index deleted on one node behind Miroir's back (three nodes, RF 2): anti-entropy creates
/// it again there with the same primary key and settings, and the document pass that follows
/// refills it from the other owners of its shards: every replica ends identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anti_entropy_recreates_and_refills_an_index_deleted_on_one_node() {
    let settings = json!({"filterableAttributes": ["v"], "searchableAttributes": ["title"]});
    let c = anti_entropy_cluster(settings, 300).await;
    let base = c.miroir.url();
    let settings_path = format!("/indexes/{INDEX}/settings");
    let (_, settings) = call(&c.nodes[0].url(), "GET", &settings_path, None).await;
    let n1 = &c.nodes[1];
    let held = node_full_docs(n1).await.len();
    assert!(held > 0);
    on_node(n1, "DELETE", &format!("/indexes/{INDEX}"), None).await;
    assert_eq!(index_on(n1).await.0, 404);

    let started = Instant::now();
    let converged = eventually(Duration::from_secs(30), || async {
        index_on(n1).await.0 == 200 && replicas_identical(&c).await == Ok(300)
    })
    .await;
    assert!(converged, "{:?}", replicas_identical(&c).await);
    println!(
        "ANTI-ENTROPY index recreated and refilled in {:?}",
        started.elapsed()
    );
    assert_eq!(node_full_docs(n1).await.len(), held);
    let (_, index) = index_on(n1).await;
    assert_eq!(index["primaryKey"], "id", "{index}");
    let (_, recreated) = call(&n1.url(), "GET", &settings_path, None).await;
    assert_eq!(recreated, settings, "the settings came back with the index");
    let expected: BTreeMap<u64, u64> = (0..300).map(|i| (i, 1)).collect();
    assert_eq!(audit(&c, &expected).await, Audit::default());
    assert_eq!(search_total(&base).await, Ok((300, None)));
    assert_set_repaired(&c, "indexes", &["missing"]).await;
}

/// With two nodes a key deleted on one and an index created on the other behind Miroir's back
/// leave no majority: nothing is changed, and both are reported (logged and counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anti_entropy_reports_key_and_index_differences_without_a_majority() {
    let c = cluster_with(2, "replication_factor = 2\n", &anti_entropy_extra()).await;
    let base = c.miroir.url();
    prepare(&base).await;
    let key = json!({"name": "k", "actions": ["search"], "indexes": [INDEX], "expiresAt": null});
    let (status, key) = call(&base, "POST", "/keys", Some(key)).await;
    assert_eq!(status, 201, "{key}");
    let uid = key["uid"].as_str().expect("uid");
    let (n0, n1) = (&c.nodes[0], &c.nodes[1]);
    let (status, _) = call(&n0.url(), "DELETE", &format!("/keys/{uid}"), None).await;
    assert_eq!(status, 204);
    on_node(
        n1,
        "POST",
        "/indexes",
        Some(json!({"uid": "stray", "primaryKey": "id"})),
    )
    .await;

    let reported = eventually(Duration::from_secs(30), || async {
        let a = &admin(&base, "/_miroir/topology").await["antiEntropy"];
        a["keys"]["unresolved"].as_u64() >= Some(1)
            && a["indexes"]["unresolved"].as_u64() >= Some(1)
    })
    .await;
    assert!(
        reported,
        "{}",
        admin(&base, "/_miroir/topology").await["antiEntropy"]
    );
    assert_eq!(key_on(n0, uid).await.0, 404);
    assert_eq!(key_on(n1, uid).await.0, 200);
    let stray = |n: &SimNode| {
        let url = n.url();
        async move { call(&url, "GET", "/indexes/stray", None).await.0 }
    };
    assert_eq!((stray(n0).await, stray(n1).await), (404, 200));
    let a = &admin(&base, "/_miroir/topology").await["antiEntropy"];
    for set in ["keys", "indexes"] {
        for kind in ["missing", "extra", "different"] {
            assert_eq!(a[set][kind], 0, "{a}");
        }
    }
    let metrics = metrics_text(c.metrics_port).await;
    let unresolved = "miroir_anti_entropy_set_unresolved_total";
    assert!(
        set_sample(&metrics, unresolved, &[r#"set="keys""#]) >= Some(1.0),
        "{metrics}"
    );
}
