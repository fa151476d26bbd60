//! Changing the fleet online over simulated nodes: 3 -> 4 nodes, 4 -> 3 (drain), a
//! replication factor raised, Miroir killed in the middle of a move, a new owner killed in
//! the middle of its copy. Each runs with versioned writes (updates, new documents,
//! deletions) and searches going on through the change, and checks afterwards, on each node
//! directly, that every document is on exactly its owners with its latest version.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use meili_sim::SimNode;
use miroir_testkit::{meili_bin, start_node, NodeKind, TestNode};

/// A node the checks read directly, simulated or real.
trait Node {
    fn url(&self) -> String;
}

impl Node for SimNode {
    fn url(&self) -> String {
        SimNode::url(self)
    }
}

impl Node for TestNode {
    fn url(&self) -> String {
        TestNode::url(self)
    }
}
use miroir_filters::routing::{shard_for_key, GroupId, NodeId, Placement};
use miroir_testkit::proxy::{free_port, MiroirProcess};
use serde_json::{json, Value};

const INDEX: &str = "docs";
const SHARDS: u32 = 8;
const INITIAL: u64 = 2_000;

/// What the writer knows: per id, the version it last wrote and whether that write (or the
/// deletion) was acknowledged.
#[derive(Default)]
struct Ledger {
    /// Latest version written per live id (acknowledged or in flight).
    written: BTreeMap<u64, u64>,
    /// Versions known applied: a search must find at least these.
    acked: BTreeMap<u64, u64>,
    /// Ids whose deletion was enqueued: no longer certain to be found.
    deleting: BTreeSet<u64>,
    next_id: u64,
    /// Deletions sent, and deletions acknowledged.
    deletions_sent: u64,
    deletions_acked: u64,
}

struct Load {
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    errors: Arc<Mutex<Vec<String>>>,
    searches: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn doc(id: u64, v: u64) -> Value {
    json!({ "id": id, "v": v, "title": format!("doc {id} version {v}"), "group": id % 7 })
}

/// Like `call`, with a transport failure (Miroir restarting) as an error instead of a panic.
async fn try_call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn try_wait_task(base: &str, uid: u64) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (status, task) = try_call(base, "GET", &format!("/tasks/{uid}"), None).await?;
        if status != 200 {
            return Err(format!("GET /tasks/{uid}: {status} {task}"));
        }
        match task["status"].as_str() {
            Some("succeeded") => return Ok(task),
            Some("failed") | Some("canceled") => return Err(format!("task {uid}: {task}")),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Err(format!("task {uid} did not finish"))
}

async fn seed(base: &str) {
    let docs: Vec<Value> = (0..INITIAL).map(|id| doc(id, 0)).collect();
    let (status, body) = call(
        base,
        "POST",
        &format!("/indexes/{INDEX}/documents?primaryKey=id"),
        Some(json!(docs)),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        wait_task(base, body["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let (status, body) = call(
        base,
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        Some(json!({"filterableAttributes": ["group", "id"]})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        wait_task(base, body["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
}

/// Starts a writer (one batch at a time: updates, additions, a deletion, waiting for each
/// task) and two readers checking every answer against what the writer knows.
fn start_load(base: String, tolerate_outage: bool) -> Load {
    let mut ledger = Ledger {
        next_id: INITIAL,
        ..Default::default()
    };
    for id in 0..INITIAL {
        ledger.written.insert(id, 0);
        ledger.acked.insert(id, 0);
    }
    let load = Load {
        ledger: Arc::new(Mutex::new(ledger)),
        stop: Arc::new(AtomicBool::new(false)),
        errors: Arc::new(Mutex::new(Vec::new())),
        searches: Arc::new(AtomicU64::new(0)),
        writes: Arc::new(AtomicU64::new(0)),
        tasks: Vec::new(),
    };
    let mut tasks = Vec::new();
    {
        let (ledger, stop, errors, writes, base) = (
            load.ledger.clone(),
            load.stop.clone(),
            load.errors.clone(),
            load.writes.clone(),
            base.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                // Updates of existing ids, and new ids.
                let batch: Vec<(u64, u64)> = {
                    let mut l = ledger.lock().unwrap();
                    let live: Vec<u64> = l.written.keys().copied().collect();
                    let mut batch = Vec::new();
                    for k in 0..40 {
                        let id = live[((round * 7919 + k * 104_729) as usize) % live.len()];
                        if batch.iter().any(|(i, _)| *i == id) {
                            continue;
                        }
                        let v = l.written[&id] + 1;
                        batch.push((id, v));
                    }
                    for _ in 0..10 {
                        let id = l.next_id;
                        l.next_id += 1;
                        batch.push((id, 1));
                    }
                    for (id, v) in &batch {
                        l.written.insert(*id, *v);
                    }
                    batch
                };
                let docs: Vec<Value> = batch.iter().map(|(id, v)| doc(*id, *v)).collect();
                let result = async {
                    let (status, body) = try_call(
                        &base,
                        "POST",
                        &format!("/indexes/{INDEX}/documents"),
                        Some(json!(docs)),
                    )
                    .await?;
                    if status != 202 {
                        return Err(format!("write: {status} {body}"));
                    }
                    try_wait_task(&base, body["taskUid"].as_u64().unwrap_or(0)).await
                }
                .await;
                match result {
                    Ok(_) => {
                        let mut l = ledger.lock().unwrap();
                        for (id, v) in &batch {
                            let acked = l.acked.entry(*id).or_insert(0);
                            *acked = (*acked).max(*v);
                        }
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if tolerate_outage => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
                // Every third round, delete one id.
                if round.is_multiple_of(3) {
                    let id = {
                        let mut l = ledger.lock().unwrap();
                        let id = *l
                            .written
                            .keys()
                            .nth((round as usize * 31) % l.written.len())
                            .unwrap();
                        l.written.remove(&id);
                        l.acked.remove(&id);
                        l.deleting.insert(id);
                        l.deletions_sent += 1;
                        id
                    };
                    let result = async {
                        let (status, body) = try_call(
                            &base,
                            "POST",
                            &format!("/indexes/{INDEX}/documents/delete-batch"),
                            Some(json!([id])),
                        )
                        .await?;
                        if status != 202 {
                            return Err(format!("delete: {status} {body}"));
                        }
                        try_wait_task(&base, body["taskUid"].as_u64().unwrap_or(0)).await
                    }
                    .await;
                    match result {
                        Ok(_) => {
                            let mut l = ledger.lock().unwrap();
                            l.deleting.remove(&id);
                            l.deletions_acked += 1;
                        }
                        Err(_) if tolerate_outage => {}
                        Err(e) => errors.lock().unwrap().push(e),
                    }
                }
            }
        }));
    }
    for reader in 0..2u64 {
        let (ledger, stop, errors, searches, base) = (
            load.ledger.clone(),
            load.stop.clone(),
            load.errors.clone(),
            load.searches.clone(),
            base.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = reader;
            while !stop.load(Ordering::Relaxed) {
                i += 2;
                // Bounds around the search: at least what was certain before it, less what
                // was deleted meanwhile; at most every id ever written by its end, less what
                // was surely deleted before it.
                let (certain, sent_before, acked_before, sample) = {
                    let l = ledger.lock().unwrap();
                    let ids: Vec<(u64, u64)> = l
                        .acked
                        .iter()
                        .skip((i as usize * 97) % l.acked.len().max(1))
                        .take(20)
                        .map(|(a, b)| (*a, *b))
                        .collect();
                    (
                        l.acked.len() as u64,
                        l.deletions_sent,
                        l.deletions_acked,
                        ids,
                    )
                };
                let filter = format!(
                    "id IN [{}]",
                    sample
                        .iter()
                        .map(|(id, _)| id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let answers = async {
                    let a = try_call(
                        &base,
                        "POST",
                        &format!("/indexes/{INDEX}/search"),
                        Some(json!({"q": "", "limit": 0})),
                    )
                    .await?;
                    let b = try_call(
                        &base,
                        "POST",
                        &format!("/indexes/{INDEX}/search"),
                        Some(json!({"filter": filter, "limit": 50})),
                    )
                    .await?;
                    Ok::<_, String>((a, b))
                }
                .await;
                let ((status, body), (fstatus, found)) = match answers {
                    Ok(a) => a,
                    Err(e) => {
                        if !tolerate_outage {
                            errors.lock().unwrap().push(format!("search: {e}"));
                        }
                        continue;
                    }
                };
                let (min, max) = {
                    let l = ledger.lock().unwrap();
                    (
                        certain.saturating_sub(l.deletions_sent - sent_before),
                        l.next_id - acked_before,
                    )
                };
                if status != 200 || fstatus != 200 {
                    if !tolerate_outage {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("search: {status} {body} / {fstatus} {found}"));
                    }
                    continue;
                }
                let total = body["estimatedTotalHits"].as_u64().unwrap_or(0);
                if total < min || total > max {
                    errors
                        .lock()
                        .unwrap()
                        .push(format!("total {total} outside [{min}, {max}]"));
                }
                let hits: BTreeMap<u64, u64> = found["hits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| Some((h["id"].as_u64()?, h["v"].as_u64()?)))
                    .collect();
                for (id, v) in &sample {
                    // An id deleted since the sample was taken may be gone.
                    if !ledger.lock().unwrap().written.contains_key(id) {
                        continue;
                    }
                    match hits.get(id) {
                        None => errors.lock().unwrap().push(format!(
                            "document {id} (acknowledged version {v}) missing from a search"
                        )),
                        Some(found) if found < v => errors.lock().unwrap().push(format!(
                            "document {id} at version {found}, below acknowledged {v}"
                        )),
                        _ => {}
                    }
                }
                searches.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    Load { tasks, ..load }
}

impl Load {
    async fn stop(self) -> (Arc<Mutex<Ledger>>, Vec<String>, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
        let errors = self.errors.lock().unwrap().clone();
        (
            self.ledger,
            errors,
            self.searches.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// Every document of the index on `node`, by id: its version and `_miroir_shard`.
async fn node_documents(node: &impl Node) -> BTreeMap<u64, u64> {
    let mut all = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (status, page) = call(
            &node.url(),
            "POST",
            &format!("/indexes/{INDEX}/documents/fetch"),
            Some(json!({"limit": 1000, "offset": offset, "fields": ["id", "v"]})),
        )
        .await;
        if status == 404 {
            return all;
        }
        assert_eq!(status, 200, "{page}");
        let results = page["results"].as_array().unwrap();
        for d in results {
            all.insert(d["id"].as_u64().unwrap(), d["v"].as_u64().unwrap());
        }
        offset += results.len();
        if results.len() < 1000 {
            return all;
        }
    }
}

/// After the change: each live document on exactly its owners, at its latest version; no
/// deleted document anywhere.
async fn check_final_placement<N: Node>(
    nodes: &[&N],
    ids: &[&str],
    rf: u32,
    written: &BTreeMap<u64, u64>,
) {
    let placement = Placement::new(
        SHARDS,
        rf,
        vec![ids.iter().map(|i| NodeId::new(i).unwrap()).collect()],
    )
    .unwrap();
    check_placement(nodes, ids, &placement, written).await;
}

/// Every live document on exactly its owners in `placement` (every group), at its latest
/// version; no deleted one anywhere.
async fn check_placement<N: Node>(
    nodes: &[&N],
    ids: &[&str],
    placement: &Placement,
    written: &BTreeMap<u64, u64>,
) {
    let mut held = Vec::new();
    for node in nodes {
        held.push(node_documents(*node).await);
    }
    let mut problems = Vec::new();
    for (id, v) in written {
        let shard = shard_for_key(&id.to_string(), SHARDS);
        let owners: BTreeSet<&str> = (0..placement.groups())
            .flat_map(|g| placement.replicas(GroupId(g), shard))
            .map(|&n| placement.node(n).as_str())
            .collect();
        for (i, name) in ids.iter().enumerate() {
            let has = held[i].get(id);
            match (owners.contains(name), has) {
                (true, None) => {
                    problems.push(format!("{id} (shard {shard}) missing on owner {name}"))
                }
                (true, Some(found)) if found != v => {
                    problems.push(format!("{id} on {name} at version {found}, latest {v}"))
                }
                (false, Some(_)) => {
                    problems.push(format!("{id} (shard {shard}) left on {name}, not an owner"))
                }
                _ => {}
            }
        }
    }
    for (i, name) in ids.iter().enumerate() {
        for id in held[i].keys() {
            if !written.contains_key(id) {
                problems.push(format!("deleted document {id} present on {name}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s), first: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

async fn wait_change_done(base: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let t = admin_get(base, "/_miroir/topology").await;
        if t["change"].is_null() {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "change not done in time: {}",
            t["change"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fleet_config<N: Node>(port: u16, metrics: u16, nodes: &[&N], top: &str) -> String {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    lenient(config_for(
        port,
        metrics,
        &urls,
        "[scatter]\nnode_timeout_ms = 2000\n",
    ))
    .replacen("shards = 8\n", &format!("shards = {SHARDS}\n{top}"), 1)
}

/// Copies slowed down (small pages, a byte rate), so a test can act in the middle of one.
fn slow_config(port: u16, metrics: u16, nodes: &[&SimNode]) -> String {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let extra = "[scatter]\nnode_timeout_ms = 2000\n\
                 [topology]\ncopy_page_size = 20\nmax_copy_bytes_per_sec = 20000\n";
    lenient(config_for(port, metrics, &urls, extra))
}

/// Health checks that a loaded 2-core machine (nodes, load and Miroir side by side) does not
/// fail by their timeout alone: a stopped node still fails its checks at once (refused).
fn lenient(toml: String) -> String {
    toml.replace(
        "interval_ms = 100\ntimeout_ms = 100\n",
        "interval_ms = 500\ntimeout_ms = 500\n",
    )
    .replace("unhealthy_threshold = 2\n", "unhealthy_threshold = 3\n")
}

#[tokio::test]
async fn adding_a_node_moves_its_shards_while_writes_and_searches_go_on() {
    let mut kinds = vec![NodeKind::Sim];
    match meili_bin() {
        Some(_) => kinds.push(NodeKind::Real),
        None => eprintln!("real-node variant skipped: no Meilisearch binary"),
    }
    for kind in kinds {
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(start_node(kind, KEY).await);
        }
        add_a_node(&nodes, kind).await;
    }
}

async fn add_a_node(nodes: &[TestNode], kind: NodeKind) {
    let (port, metrics) = (free_port(), free_port());
    let three: Vec<&TestNode> = nodes[..3].iter().collect();
    let all: Vec<&TestNode> = nodes.iter().collect();
    let miroir =
        MiroirProcess::start(miroir_bin(), &fleet_config(port, metrics, &three, ""), port).await;
    let base = miroir.url();
    seed(&base).await;

    let load = start_load(base.clone(), false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    miroir.write_config(&fleet_config(port, metrics, &all, ""));
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let plan = {
        let (status, plan) = admin_post(&base, "/_miroir/topology/plan").await;
        assert_eq!(status, 200, "{plan}");
        plan
    };
    assert_eq!(plan["joining"], json!(["n3"]));
    let moves = plan["shardMoves"].as_u64().unwrap();
    assert!(moves > 0, "{plan}");
    // Only the shards the new node wins move: each exactly once.
    assert_eq!(plan["receive"]["n3"]["shards"], moves);
    let printed = ctl(&base, &["plan"]).await;
    assert!(
        printed.contains("n3") && printed.contains("receive"),
        "{printed}"
    );
    let applied = ctl(&base, &["apply"]).await;
    assert!(applied.contains("change started"), "{applied}");
    let (status, again) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("miroir_topology_change_in_progress"))
    );
    let done = wait_change_done(&base, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ledger, errors, searches, writes) = load.stop().await;
    print_fleet_log(&miroir);
    assert!(
        errors.is_empty(),
        "{kind:?}: {} client-visible error(s): {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        searches > 20 && writes >= 2,
        "{kind:?}: the load ran ({searches} searches, {writes} writes)"
    );
    assert_eq!(done["layoutVersion"], 2);
    let written = ledger.lock().unwrap().written.clone();
    check_final_placement(&all, &["n0", "n1", "n2", "n3"], 1, &written).await;
    println!("{kind:?}: 3 -> 4 under load: {searches} searches and {writes} write batches checked, 0 errors");
}

/// Waits for the change to finish under the load started before it, stops the load, and
/// checks that no client saw an error and that the load ran. Returns the topology at the end
/// and the version of every live document.
async fn finish(
    load: Load,
    miroir: &MiroirProcess,
    timeout: Duration,
) -> (Value, BTreeMap<u64, u64>) {
    let done = wait_change_done(&miroir.url(), timeout).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ledger, errors, searches, writes) = load.stop().await;
    print_fleet_log(miroir);
    assert!(
        errors.is_empty(),
        "{} client-visible error(s): {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        searches > 5 && writes >= 2,
        "the load ran ({searches} searches, {writes} writes)"
    );
    let written = ledger.lock().unwrap().written.clone();
    (done, written)
}

/// The change's own account, for the test output.
fn print_fleet_log(miroir: &MiroirProcess) {
    for line in miroir.log().lines().filter(|l| {
        l.contains("miroir::fleet")
            || l.contains("miroir::topology")
            || l.contains("WARN")
            || l.contains("ERROR")
    }) {
        println!("{line}");
    }
}

#[tokio::test]
async fn draining_a_node_moves_its_shards_to_the_rest_and_empties_it() {
    let nodes = sim_nodes(4).await;
    let (port, metrics) = (free_port(), free_port());
    let all: Vec<&SimNode> = nodes.iter().collect();
    let three: Vec<&SimNode> = nodes[..3].iter().collect();
    let miroir =
        MiroirProcess::start(miroir_bin(), &fleet_config(port, metrics, &all, ""), port).await;
    let base = miroir.url();
    seed(&base).await;
    let load = start_load(base.clone(), false);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The operator's view, through `miroir ctl` as a process.
    let status = ctl(&base, &["status"]).await;
    assert!(
        status.contains("topology version 1") && status.contains("n3"),
        "{status}"
    );
    assert!(status.contains("no change in progress"), "{status}");
    let (status, body) = admin_post(&base, "/_miroir/nodes/n9/drain").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("miroir_invalid_topology_change"))
    );
    let drained = ctl(&base, &["drain", "n3"]).await;
    assert!(drained.contains("draining n3"), "{drained}");
    let (done, written) = finish(load, &miroir, Duration::from_secs(120)).await;
    assert_eq!(done["layoutVersion"], 2);
    assert_eq!(
        done["nodes"].as_array().unwrap().len(),
        3,
        "n3 is out of the topology"
    );
    check_final_placement(&three, &["n0", "n1", "n2"], 1, &written).await;
    assert!(
        node_documents(&nodes[3]).await.is_empty(),
        "the drained node holds nothing"
    );
    // The file still lists n3: reported as staged until the operator removes it.
    assert!(!done["staged"].is_null());
    miroir.write_config(&fleet_config(port, metrics, &three, ""));
    let unstaged = eventually(Duration::from_secs(5), || async {
        admin_get(&base, "/_miroir/topology").await["staged"].is_null()
    })
    .await;
    assert!(
        unstaged,
        "the file matches the applied topology once n3 is removed from it"
    );
}

#[tokio::test]
async fn raising_the_replication_factor_copies_every_shard_once_more() {
    let nodes = sim_nodes(3).await;
    let (port, metrics) = (free_port(), free_port());
    let all: Vec<&SimNode> = nodes.iter().collect();
    let miroir =
        MiroirProcess::start(miroir_bin(), &fleet_config(port, metrics, &all, ""), port).await;
    let base = miroir.url();
    seed(&base).await;
    let load = start_load(base.clone(), false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    miroir.write_config(&fleet_config(
        port,
        metrics,
        &all,
        "replication_factor = 2\n",
    ));
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let (status, plan) = admin_post(&base, "/_miroir/topology/plan").await;
    assert_eq!(status, 200);
    assert_eq!(
        plan["shardMoves"], SHARDS,
        "every shard gains one copy: {plan}"
    );
    assert!(
        plan["drop"].as_object().unwrap().is_empty(),
        "nothing is dropped"
    );
    let (status, body) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    let (done, written) = finish(load, &miroir, Duration::from_secs(120)).await;
    assert_eq!(done["replicationFactor"], 2);
    check_final_placement(&all, &["n0", "n1", "n2"], 2, &written).await;
}

/// Waits until the change is copying (some documents already on the new owner).
async fn wait_copying(base: &str) {
    let copying = eventually(Duration::from_secs(30), || async {
        let t = admin_get(base, "/_miroir/topology").await;
        t["change"]["moves"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| {
                m["state"] == "copying"
                    && m["progress"]["documentsCopied"].as_u64().unwrap_or(0) > 0
            })
    })
    .await;
    assert!(copying, "the change never started copying");
}

#[tokio::test]
async fn miroir_killed_mid_move_resumes_to_the_same_end_state() {
    let nodes = sim_nodes(4).await;
    let (port, metrics) = (free_port(), free_port());
    let three: Vec<&SimNode> = nodes[..3].iter().collect();
    let all: Vec<&SimNode> = nodes.iter().collect();
    // Slow copies (small pages, a byte rate), so the kill lands in the middle of one.
    let cfg = |n: &[&SimNode]| slow_config(port, metrics, n);
    let mut miroir = MiroirProcess::start(miroir_bin(), &cfg(&three), port).await;
    let base = miroir.url();
    seed(&base).await;
    let load = start_load(base.clone(), true);
    miroir.write_config(&cfg(&all));
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let (status, body) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    wait_copying(&base).await;
    miroir.crash_and_restart(miroir_bin()).await;
    let t = admin_get(&base, "/_miroir/topology").await;
    assert!(!t["change"].is_null(), "the change survived the crash: {t}");
    let done = wait_change_done(&base, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ledger, _errors, searches, writes) = load.stop().await;
    assert!(
        searches > 5 && writes > 5,
        "the load ran ({searches} searches, {writes} writes)"
    );
    assert_eq!(done["layoutVersion"], 2);
    // Writes whose outcome the crash hid are settled: what the writer last sent is what the
    // nodes hold, for acknowledged writes; an unacknowledged one may or may not be there.
    let written = ledger.lock().unwrap().written.clone();
    let acked = ledger.lock().unwrap().acked.clone();
    check_final_placement_settled(&all, &["n0", "n1", "n2", "n3"], &written, &acked).await;
    print_fleet_log(&miroir);
}

#[tokio::test]
async fn a_new_owner_killed_mid_copy_pauses_the_move_which_then_resumes() {
    let nodes = sim_nodes(4).await;
    let (port, metrics) = (free_port(), free_port());
    let three: Vec<&SimNode> = nodes[..3].iter().collect();
    let all: Vec<&SimNode> = nodes.iter().collect();
    let cfg = |n: &[&SimNode]| slow_config(port, metrics, n);
    let miroir = MiroirProcess::start(miroir_bin(), &cfg(&three), port).await;
    let base = miroir.url();
    seed(&base).await;
    let load = start_load(base.clone(), false);
    miroir.write_config(&cfg(&all));
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let (status, body) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    wait_copying(&base).await;
    nodes[3].stop().await;
    println!("n3 stopped");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = admin_get(&base, "/_miroir/topology").await;
    assert!(!t["change"].is_null(), "paused, not finished: {t}");
    nodes[3].restart().await.expect("restart n3");
    let (done, written) = finish(load, &miroir, Duration::from_secs(180)).await;
    assert_eq!(done["layoutVersion"], 2);
    check_final_placement(&all, &["n0", "n1", "n2", "n3"], 1, &written).await;
}

/// Like [`check_final_placement`], when some writes' outcome is unknown (the writer lost its
/// answer in a crash): each document is on exactly its owners, every owner holds the same
/// version, and that version is at least the acknowledged one.
async fn check_final_placement_settled<N: Node>(
    nodes: &[&N],
    ids: &[&str],
    written: &BTreeMap<u64, u64>,
    acked: &BTreeMap<u64, u64>,
) {
    let placement = Placement::new(
        SHARDS,
        1,
        vec![ids.iter().map(|i| NodeId::new(i).unwrap()).collect()],
    )
    .unwrap();
    let mut held = Vec::new();
    for node in nodes {
        held.push(node_documents(*node).await);
    }
    let mut problems = Vec::new();
    let mut everywhere: BTreeSet<u64> = BTreeSet::new();
    for h in &held {
        everywhere.extend(h.keys());
    }
    for id in &everywhere {
        let shard = shard_for_key(&id.to_string(), SHARDS);
        let owners: BTreeSet<&str> = placement
            .replicas(GroupId(0), shard)
            .iter()
            .map(|&n| placement.node(n).as_str())
            .collect();
        for (i, name) in ids.iter().enumerate() {
            if held[i].contains_key(id) && !owners.contains(name) {
                problems.push(format!("{id} (shard {shard}) left on {name}, not an owner"));
            }
        }
    }
    for (id, v) in acked {
        let shard = shard_for_key(&id.to_string(), SHARDS);
        for (i, name) in ids.iter().enumerate() {
            let owner = placement
                .replicas(GroupId(0), shard)
                .iter()
                .any(|&n| placement.node(n).as_str() == *name);
            if !owner {
                continue;
            }
            match held[i].get(id) {
                None if written.contains_key(id) => {
                    problems.push(format!("acknowledged {id} missing on {name}"))
                }
                Some(found) if found < v => {
                    problems.push(format!("{id} on {name} at {found}, acknowledged {v}"))
                }
                _ => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s), first: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

#[tokio::test]
async fn a_node_replaced_by_an_empty_one_is_rebuilt_from_its_replicas_and_serves_only_when_complete(
) {
    let nodes = sim_nodes(4).await;
    let (port, metrics) = (free_port(), free_port());
    let three: Vec<&SimNode> = nodes[..3].iter().collect();
    let miroir = MiroirProcess::start(
        miroir_bin(),
        &fleet_config(port, metrics, &three, "replication_factor = 2\n"),
        port,
    )
    .await;
    let base = miroir.url();
    seed(&base).await;
    let load = start_load(base.clone(), false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // n1's machine is replaced: same id, a new empty node at another address.
    let replaced: Vec<&SimNode> = vec![&nodes[0], &nodes[3], &nodes[2]];
    miroir.write_config(&fleet_config(
        port,
        metrics,
        &replaced,
        "replication_factor = 2\n",
    ));
    let staged = eventually(Duration::from_secs(5), || async {
        !admin_get(&base, "/_miroir/topology").await["staged"].is_null()
    })
    .await;
    assert!(staged);
    let (status, plan) = admin_post(&base, "/_miroir/topology/plan").await;
    assert_eq!(status, 200);
    // Same id, so the same shards; but the machine may be new: its shards are copied again.
    assert_eq!(plan["rebuilding"], json!(["n1"]), "{plan}");
    assert_eq!(plan["drop"], json!({}), "nothing leaves any node: {plan}");
    let (status, body) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    // The node at its new address may be a new, empty machine: it is rebuilt.
    let t = admin_get(&base, "/_miroir/topology").await;
    assert_eq!(t["change"]["rebuilding"], json!(["n1"]), "{t}");
    let (done, written) = finish(load, &miroir, Duration::from_secs(120)).await;
    assert_eq!(done["nodes"].as_array().unwrap().len(), 3);
    check_final_placement(&replaced, &["n0", "n1", "n2"], 2, &written).await;
}

#[tokio::test]
async fn resync_rebuilds_a_node_that_lost_documents_behind_miroirs_back() {
    let nodes = sim_nodes(3).await;
    let (port, metrics) = (free_port(), free_port());
    let all: Vec<&SimNode> = nodes.iter().collect();
    let miroir = MiroirProcess::start(
        miroir_bin(),
        &fleet_config(port, metrics, &all, "replication_factor = 2\n"),
        port,
    )
    .await;
    let base = miroir.url();
    seed(&base).await;
    // Documents deleted directly on n1, and one added there (in a shard n1 holds) that Miroir
    // never wrote.
    let p = Placement::new(
        SHARDS,
        2,
        vec![["n0", "n1", "n2"]
            .iter()
            .map(|i| NodeId::new(i).unwrap())
            .collect()],
    )
    .unwrap();
    let held = p.shards_of(p.index_of("n1").unwrap())[0];
    let stray = miroir_filters::hidden::shard_value(held);
    let (status, body) = call(
        &nodes[1].url(),
        "POST",
        &format!("/indexes/{INDEX}/documents/delete-batch"),
        Some(json!((0..200).collect::<Vec<u64>>())),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = call(
        &nodes[1].url(),
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(json!([{"id": 999_999, "v": 0, "_miroir_shard": stray}])),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_idle(&nodes[1].url()).await;
    let (status, body) = admin_post(&base, "/_miroir/nodes/n9/resync").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("miroir_invalid_topology_change"))
    );
    let (status, body) = admin_post(&base, "/_miroir/nodes/n1/resync").await;
    assert_eq!(status, 202, "{body}");
    // From now on n1 serves nothing until rebuilt: every answer must be whole.
    let load = start_load(base.clone(), false);
    let (done, written) = finish(load, &miroir, Duration::from_secs(120)).await;
    assert_eq!(done["layoutVersion"], 2);
    check_final_placement(&all, &["n0", "n1", "n2"], 2, &written).await;
}

#[tokio::test]
async fn adding_a_replica_group_copies_every_shard_into_it_before_it_serves_reads() {
    let nodes = sim_nodes(4).await;
    let (port, metrics) = (free_port(), free_port());
    let two: Vec<&SimNode> = nodes[..2].iter().collect();
    let all: Vec<&SimNode> = nodes.iter().collect();
    let miroir =
        MiroirProcess::start(miroir_bin(), &fleet_config(port, metrics, &two, ""), port).await;
    let base = miroir.url();
    seed(&base).await;
    let load = start_load(base.clone(), false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nodes n2 and n3 form replica group 1.
    let mut grown = fleet_config(port, metrics, &all, "replica_groups = 2\n");
    for node in &nodes[2..] {
        let line = format!("address = \"{}\"\n", node.url());
        grown = grown.replace(&line, &format!("{line}replica_group = 1\n"));
    }
    miroir.write_config(&grown);
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let (status, plan) = admin_post(&base, "/_miroir/topology/plan").await;
    assert_eq!(status, 200);
    assert_eq!(
        plan["shardMoves"], SHARDS,
        "each shard copied once into the new group: {plan}"
    );
    let (status, body) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    let (done, written) = finish(load, &miroir, Duration::from_secs(120)).await;
    assert_eq!(done["replicaGroups"], 2);
    let groups = vec![
        vec![NodeId::new("n0").unwrap(), NodeId::new("n1").unwrap()],
        vec![NodeId::new("n2").unwrap(), NodeId::new("n3").unwrap()],
    ];
    let placement = Placement::new(SHARDS, 1, groups).unwrap();
    check_placement(&all, &["n0", "n1", "n2", "n3"], &placement, &written).await;
}

#[tokio::test]
async fn lowering_the_replication_factor_drops_the_extra_copies_only() {
    let nodes = sim_nodes(3).await;
    let (port, metrics) = (free_port(), free_port());
    let all: Vec<&SimNode> = nodes.iter().collect();
    let miroir = MiroirProcess::start(
        miroir_bin(),
        &fleet_config(port, metrics, &all, "replication_factor = 2\n"),
        port,
    )
    .await;
    let base = miroir.url();
    seed(&base).await;
    let load = start_load(base.clone(), false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    miroir.write_config(&fleet_config(port, metrics, &all, ""));
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let (status, plan) = admin_post(&base, "/_miroir/topology/plan").await;
    assert_eq!(status, 200);
    assert_eq!(plan["documentsToCopy"], 0, "nothing to copy: {plan}");
    assert!(plan["receive"].as_object().unwrap().is_empty(), "{plan}");
    let (status, body) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    let (done, written) = finish(load, &miroir, Duration::from_secs(60)).await;
    assert_eq!(done["replicationFactor"], 1);
    check_final_placement(&all, &["n0", "n1", "n2"], 1, &written).await;
}

#[tokio::test]
async fn an_index_deleted_during_a_move_stays_deleted_on_every_node() {
    let nodes = sim_nodes(4).await;
    let (port, metrics) = (free_port(), free_port());
    let three: Vec<&SimNode> = nodes[..3].iter().collect();
    let all: Vec<&SimNode> = nodes.iter().collect();
    let cfg = |n: &[&SimNode]| slow_config(port, metrics, n);
    let miroir = MiroirProcess::start(miroir_bin(), &cfg(&three), port).await;
    let base = miroir.url();
    seed(&base).await;
    let others: Vec<Value> = (0..300)
        .map(|i| json!({"id": i, "title": format!("other {i}")}))
        .collect();
    let (status, t) = call(
        &base,
        "POST",
        "/indexes/other/documents",
        Some(json!(others)),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    assert_eq!(
        wait_task(&base, t["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let load = start_load(base.clone(), false);
    miroir.write_config(&cfg(&all));
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let (status, body) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    wait_copying(&base).await;
    // Writes to `other` (kept in n3's move log), then the index deleted, mid-copy.
    let more: Vec<Value> = (300..320)
        .map(|i| json!({"id": i, "title": format!("other {i}")}))
        .collect();
    let (status, t) = call(&base, "POST", "/indexes/other/documents", Some(json!(more))).await;
    assert_eq!(status, 202, "{t}");
    assert_eq!(
        wait_task(&base, t["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let (status, t) = call(&base, "DELETE", "/indexes/other", None).await;
    assert_eq!(status, 202, "{t}");
    assert_eq!(
        wait_task(&base, t["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    wait_change_done(&base, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ledger, errors, _, _) = load.stop().await;
    print_fleet_log(&miroir);
    assert!(
        errors.is_empty(),
        "{} client-visible error(s): {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    for node in &nodes {
        wait_idle(&node.url()).await;
        let (status, _) = call(&node.url(), "GET", "/indexes/other", None).await;
        assert_eq!(status, 404, "`other` came back on {}", node.url());
    }
    let written = ledger.lock().unwrap().written.clone();
    check_final_placement(&all, &["n0", "n1", "n2", "n3"], 1, &written).await;
}

/// Two Miroirs share one fleet through Redis. A change applied through the first, which
/// carries it out, is finished by the second after the first is SIGKILLed in the middle of a
/// copy, while a client writes and searches through the second all along.
#[tokio::test]
async fn a_change_started_on_one_miroir_finishes_on_another_when_the_first_is_killed() {
    let Some(redis) =
        miroir_testkit::redis::RedisServer::start(miroir_testkit::redis::Persistence::AofAlways)
    else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let nodes = sim_nodes(4).await;
    let three: Vec<&SimNode> = nodes[..3].iter().collect();
    let all: Vec<&SimNode> = nodes.iter().collect();
    let shared = format!(
        "[task_store]\nbackend = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    );
    let cfg = |port: u16, metrics: u16, n: &[&SimNode]| {
        slow_config(port, metrics, n).replacen("[scatter]", &format!("{shared}\n[scatter]"), 1)
    };
    let (a_port, a_metrics, b_port, b_metrics) =
        (free_port(), free_port(), free_port(), free_port());
    let a = MiroirProcess::start(miroir_bin(), &cfg(a_port, a_metrics, &three), a_port).await;
    // The first Miroir up carries changes out; the second waits for its turn.
    a.wait_for_log("carries out topology changes", Duration::from_secs(10))
        .await;
    let b = MiroirProcess::start(miroir_bin(), &cfg(b_port, b_metrics, &three), b_port).await;
    let (a_url, b_url) = (a.url(), b.url());
    seed(&b_url).await;
    let load = start_load(b_url.clone(), false);
    for (m, port, metrics) in [(&a, a_port, a_metrics), (&b, b_port, b_metrics)] {
        m.write_config(&cfg(port, metrics, &all));
        m.wait_for_log("(generation 2)", Duration::from_secs(5))
            .await;
    }
    let (status, body) = admin_post(&a_url, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    wait_copying(&a_url).await;
    let seen_on_b = admin_get(&b_url, "/_miroir/topology").await;
    assert_eq!(seen_on_b["change"]["toVersion"], 2, "{seen_on_b}");
    a.signal("KILL");
    let killed = Instant::now();
    b.wait_for_log("carries out topology changes", Duration::from_secs(30))
        .await;
    let took_over = killed.elapsed();
    let (done, written) = finish(load, &b, Duration::from_secs(180)).await;
    assert_eq!(done["layoutVersion"], 2);
    check_final_placement(&all, &["n0", "n1", "n2", "n3"], 1, &written).await;
    println!(
        "change finished by the second Miroir: took over {:.1} s after the kill, done {:.1} s after it",
        took_over.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
}
