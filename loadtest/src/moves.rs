//! `move`: a fleet grows from 3 to 4 nodes under search load. Reports the documents copied
//! against the minimum the placement needs (the documents of the shards whose owners change),
//! copy throughput, and search latency before and during the move. Real Meilisearch nodes
//! when `MEILI_BIN` is set (or `--meili-bin`), simulated ones otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{start_node, NodeKind, TestNode};
use serde_json::Value;

use crate::http::{Conn, Request};
use crate::{ingest_into, load, search_mix, set_search_settings, Args, Report, KEY};

const ADMIN: &str = "loadtest-admin-key";

fn config(port: u16, metrics: u16, nodes: &[&TestNode]) -> String {
    let mut toml = format!(
        "shards = 16\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n[server]\nport = {port}\n\
         [metrics]\nport = {metrics}\n[admin]\napi_key = \"{ADMIN}\"\n[log]\nlevel = \"warn\"\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n",
            n.url()
        ));
    }
    toml
}

async fn admin(addr: &str, method: &str, path: &str) -> Result<Value, String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let body = (method == "POST").then_some("");
    let req = Request::new(method, addr, path, Some(ADMIN), body);
    let mut out = Vec::new();
    let status = conn.send(&req, &mut out).await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(v),
        _ => Err(format!("{method} {path}: {status} {v}")),
    }
}

/// One sample of a Prometheus counter.
async fn metric(port: u16, name: &str) -> Result<f64, String> {
    let addr = format!("127.0.0.1:{port}");
    let mut conn = Conn::connect(&addr).await.map_err(|e| e.to_string())?;
    let req = Request::new("GET", &addr, "/metrics", None, None);
    let mut out = Vec::new();
    conn.send(&req, &mut out).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

/// `n` nodes of one kind: real Meilisearch when `--meili-bin` or `MEILI_BIN` names one (or
/// the shared binary is there), simulated otherwise.
pub async fn start_nodes(args: &Args, n: usize) -> (NodeKind, Vec<TestNode>) {
    if let Some(meili) = args.get("meili-bin") {
        std::env::set_var("MEILI_BIN", meili);
    }
    let kind = match miroir_testkit::meili_bin() {
        Some(_) => NodeKind::Real,
        None => NodeKind::Sim,
    };
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(start_node(kind, KEY).await);
    }
    (kind, nodes)
}

pub async fn moves(args: Args) -> Result<(), String> {
    let bin = PathBuf::from(args.get("miroir-bin").ok_or("--miroir-bin is required")?);
    let total: usize = args.num("documents", 50_000)?;
    let connections: usize = args.num("connections", 2)?;
    let (kind, nodes) = start_nodes(&args, 4).await;
    let (port, metrics) = (free_port(), free_port());
    let three: Vec<&TestNode> = nodes[..3].iter().collect();
    let all: Vec<&TestNode> = nodes.iter().collect();
    let miroir = MiroirProcess::start(&bin, &config(port, metrics, &three), port).await;
    let addr = format!("127.0.0.1:{port}");
    set_search_settings(&addr, KEY).await?;
    let took = ingest_into(&addr, KEY, total, 5_000).await?;
    println!(
        "{kind:?} nodes; {total} documents ingested through Miroir over 3 nodes in {:.1} s",
        took.as_secs_f64()
    );

    let mix = search_mix(&addr, KEY);
    load(&addr, &mix, connections, Duration::from_millis(500)).await;
    let before = load(&addr, &mix, connections, Duration::from_secs(5)).await;

    miroir.write_config(&config(port, metrics, &all));
    let staged = Instant::now();
    while admin(&addr, "GET", "/_miroir/topology").await?["staged"].is_null() {
        if staged.elapsed() > Duration::from_secs(10) {
            return Err("the 4-node file was never staged".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let plan = admin(&addr, "POST", "/_miroir/topology/plan").await?;
    let minimum = plan["documentsToCopy"].as_u64().unwrap_or(0);
    let (docs0, bytes0) = (
        metric(metrics, "miroir_shard_copy_documents_total").await?,
        metric(metrics, "miroir_shard_copy_bytes_total").await?,
    );
    admin(&addr, "POST", "/_miroir/topology/apply").await?;
    let started = Instant::now();
    // Searches run until the change is done; a watcher ends them.
    let mut during = Report::default();
    let mut cut_over = None;
    loop {
        during.merge(load(&addr, &mix, connections, Duration::from_millis(250)).await);
        let t = admin(&addr, "GET", "/_miroir/topology").await?;
        if cut_over.is_none() && (t["change"].is_null() || t["change"]["phase"] == "cleaning") {
            cut_over = Some(started.elapsed());
        }
        if t["change"].is_null() {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("the change did not finish in 30 minutes".into());
        }
    }
    let elapsed = started.elapsed();
    let copied = metric(metrics, "miroir_shard_copy_documents_total").await? - docs0;
    let bytes = metric(metrics, "miroir_shard_copy_bytes_total").await? - bytes0;
    let after = load(&addr, &mix, connections, Duration::from_secs(5)).await;

    println!(
        "3 -> 4 nodes: {} shard moves, {copied:.0} documents copied for a minimum of {minimum} ({:.3}x)",
        plan["shardMoves"],
        copied / (minimum.max(1) as f64)
    );
    let cut_over = cut_over.unwrap_or(elapsed);
    println!(
        "every shard served by its new owner after {:.2} s (prepare, copy, replay, verify, cutover): {:.0} documents/s, {:.2} MB/s copied",
        cut_over.as_secs_f64(),
        copied / cut_over.as_secs_f64(),
        bytes / 1e6 / cut_over.as_secs_f64()
    );
    println!(
        "change done after {:.2} s (old owners' cleanup after a grace of scatter.node_timeout)",
        elapsed.as_secs_f64()
    );
    println!("searches, {connections} connections:");
    println!("{}", before.line("before"));
    println!("{}", during.line("during"));
    println!("{}", after.line("after"));
    drop(miroir);
    Ok(())
}
