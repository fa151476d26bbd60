//! `anti-entropy`: what the background reconciler costs and how fast it repairs. Three nodes,
//! RF 2, 16 shards; after the ingest, one clean pass is measured (its duration, the documents
//! it read and the node requests it made, Miroir's CPU), scaled per million documents; then
//! one node is damaged behind Miroir's back (a document changed, one deleted, one added) and
//! the time until that node is whole again is reported. Real Meilisearch nodes when
//! `MEILI_BIN` is set (or `--meili-bin`), simulated ones otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::TestNode;
use serde_json::{json, Value};

use crate::http::{Conn, Request};
use crate::moves::start_nodes;
use crate::{ingest_into, Args, KEY};

const ADMIN: &str = "loadtest-admin-key";
const PATH: &str = "/indexes/bench/documents";

fn config(port: u16, nodes: &[TestNode], interval_ms: u64, rate: u64) -> String {
    let mut toml = format!(
        "shards = 16\nreplication_factor = 2\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\
         [server]\nport = {port}\n[admin]\napi_key = \"{ADMIN}\"\n[log]\nlevel = \"warn\"\n\
         [anti_entropy]\ninterval_ms = {interval_ms}\nmax_documents_per_second = {rate}\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n",
            n.url()
        ));
    }
    toml
}

/// One request; the status and the parsed answer (`Null` when it is not JSON).
async fn call(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let req = Request::new(method, addr, path, Some(key), body);
    let mut out = Vec::new();
    let status = conn.send(&req, &mut out).await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_slice(&out).unwrap_or(Value::Null)))
}

async fn anti_entropy_status(addr: &str) -> Result<Value, String> {
    let (status, v) = call(addr, "GET", "/_miroir/topology", ADMIN, None).await?;
    match status {
        200 => Ok(v["antiEntropy"].clone()),
        _ => Err(format!("topology answered {status}: {v}")),
    }
}

/// Waits until a pass finishes after this call; returns its status snapshot.
async fn next_pass(addr: &str, timeout: Duration) -> Result<Value, String> {
    let passes = anti_entropy_status(addr).await?["passes"].as_u64();
    let started = Instant::now();
    loop {
        let s = anti_entropy_status(addr).await?;
        if s["passes"].as_u64() > passes {
            return Ok(s);
        }
        if started.elapsed() > timeout {
            return Err(format!("no anti-entropy pass finished in {timeout:?}: {s}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// User plus system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): utime and stime are 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A write straight to a node, behind Miroir's back; waits for the node's task.
async fn on_node(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(), String> {
    let (status, task) = call(addr, method, path, KEY, body).await?;
    let uid = task["taskUid"]
        .as_u64()
        .ok_or_else(|| format!("{method} {path} answered {status}: {task}"))?;
    loop {
        let (_, t) = call(addr, "GET", &format!("/tasks/{uid}"), KEY, None).await?;
        match t["status"].as_str() {
            Some("succeeded") => return Ok(()),
            Some("failed" | "canceled") => return Err(format!("node task {uid}: {t}")),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn node_document(addr: &str, id: u64) -> Result<Option<Value>, String> {
    let (status, doc) = call(addr, "GET", &format!("{PATH}/{id}"), KEY, None).await?;
    Ok((status == 200).then_some(doc))
}

pub async fn anti_entropy(args: Args) -> Result<(), String> {
    let bin = PathBuf::from(args.get("miroir-bin").ok_or("--miroir-bin is required")?);
    let total: usize = args.num("documents", 200_000)?;
    let interval_ms: u64 = args.num("interval-ms", 2_000)?;
    let rate: u64 = args.num("rate", 1_000_000)?;
    let (kind, nodes) = start_nodes(&args, 3).await;
    let port = free_port();
    let miroir = MiroirProcess::start(&bin, &config(port, &nodes, interval_ms, rate), port).await;
    let addr = format!("127.0.0.1:{port}");
    let took = ingest_into(&addr, KEY, total, 10_000).await?;
    println!(
        "{kind:?} nodes; {total} documents ingested through Miroir over 3 nodes (RF 2, 16 shards) in {:.1} s",
        took.as_secs_f64()
    );

    // A whole clean pass: the first one may have started during the ingest.
    let long = Duration::from_secs(3_600);
    let before = next_pass(&addr, long).await?;
    let cpu0 = cpu_seconds(miroir.pid());
    let after = next_pass(&addr, long).await?;
    let cpu = cpu_seconds(miroir.pid()) - cpu0;
    let delta =
        |field: &str| after[field].as_u64().unwrap_or(0) - before[field].as_u64().unwrap_or(0);
    let (read, requests) = (delta("documentsRead"), delta("nodeRequests"));
    let duration_ms = after["lastPassDurationMs"].as_u64().unwrap_or(0);
    let per_million = 1e6 / total as f64;
    println!(
        "one clean pass over {total} documents (every replica read, max_documents_per_second = {rate}): {:.2} s, {read} documents read, {requests} node requests, Miroir CPU {cpu:.2} s (the {interval_ms} ms wait before it included)",
        duration_ms as f64 / 1000.0
    );
    println!(
        "per million documents (RF 2): {:.0} documents read, {:.0} node requests, {:.2} s of Miroir CPU, {:.1} s at this rate",
        read as f64 * per_million,
        requests as f64 * per_million,
        cpu * per_million,
        duration_ms as f64 / 1000.0 * per_million
    );

    // Damage one node: a document changed without its version, one deleted, one foreign added.
    let n0 = nodes[0].url().trim_start_matches("http://").to_owned();
    let (_, page) = call(&n0, "GET", &format!("{PATH}?limit=2"), KEY, None).await?;
    let held: Vec<Value> = page["results"].as_array().cloned().unwrap_or_default();
    let [changed, deleted] = held.as_slice() else {
        return Err(format!("node n0 holds fewer than 2 documents: {page}"));
    };
    let (changed_id, deleted_id) = (
        changed["id"].as_u64().ok_or("no id")?,
        deleted["id"].as_u64().ok_or("no id")?,
    );
    let mut rotten = changed.clone();
    rotten["title"] = json!("rotten");
    if let Some(fields) = rotten.as_object_mut() {
        fields.remove("_miroir_version");
    }
    let foreign = 900_000_000u64;
    let damaged = Instant::now();
    on_node(&n0, "POST", PATH, Some(&json!([rotten]).to_string())).await?;
    on_node(&n0, "DELETE", &format!("{PATH}/{deleted_id}"), None).await?;
    on_node(
        &n0,
        "POST",
        PATH,
        Some(&json!([{"id": foreign, "title": "foreign"}]).to_string()),
    )
    .await?;
    let injected = damaged.elapsed();
    let whole = loop {
        let restored = node_document(&n0, changed_id)
            .await?
            .is_some_and(|d| d == *changed);
        let back = node_document(&n0, deleted_id)
            .await?
            .is_some_and(|d| d == *deleted);
        let gone = node_document(&n0, foreign).await?.is_none();
        if restored && back && gone {
            break damaged.elapsed();
        }
        if damaged.elapsed() > long {
            return Err("node n0 was not repaired within an hour".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = anti_entropy_status(&addr).await?;
    println!(
        "damage on one node (a document changed, one deleted, one added; {:.2} s to apply on the node) repaired {:.2} s after it began (interval {interval_ms} ms, pass {:.2} s); repaired so far {}",
        injected.as_secs_f64(),
        whole.as_secs_f64(),
        duration_ms as f64 / 1000.0,
        status["repaired"]
    );
    drop(miroir);
    Ok(())
}
