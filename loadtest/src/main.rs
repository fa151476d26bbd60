//! Load generator for Miroir.
//!
//! `run`: a fixed request mix against one target with N keep-alive connections for a bounded
//! time; prints throughput and latency percentiles.
//! `passthrough`: starts three simulated nodes and Miroir in front of them, then alternates
//! the same pass-through read mix straight to a node and through Miroir, in one run, and
//! prints both and their ratio.
//! `search`: the same with a search mix: Miroir over three simulated nodes against one node
//! holding every document.
//! `tasks`: `GET /tasks` latency with 1 000 to 1 000 000 tasks in Miroir's registry.
//! `move`: a fleet grows from 3 to 4 nodes under search load: documents copied against the
//! minimum, copy throughput, search latency before, during and after.
//! `anti-entropy`: one clean anti-entropy pass's cost per million documents, and the time to
//! repair a node damaged behind Miroir's back.
//! `corpus` and `latency`: a generated corpus and query set, and one-at-a-time search latency
//! against several targets, in a new order for every query (real nodes; see
//! `bench/real_nodes.sh`).
//! `relay`: a proxy that only forwards each request to every upstream, the fan-out floor
//! Miroir's search latency is read against.

mod anti_entropy;
mod http;
mod moves;
mod phases;
mod real;
mod relay;
mod tasks;

/// The master key of every node and of Miroir in the scenarios.
const KEY: &str = "loadtest-master-key";

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::{Conn, Request};

/// One measured phase.
#[derive(Debug, Default, Clone)]
struct Report {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    /// Microseconds, sorted.
    latencies: Vec<u32>,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
    }

    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank] as f64 / 1000.0
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<10} {:>9.0} req/s  p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  ({} requests, {} errors)",
            self.throughput(),
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.requests,
            self.errors
        )
    }
}

/// Runs `mix` round-robin on `connections` connections to `addr` for `duration`.
async fn load(addr: &str, mix: &[Request], connections: usize, duration: Duration) -> Report {
    let mix: std::sync::Arc<Vec<Vec<u8>>> =
        std::sync::Arc::new(mix.iter().map(|r| r.bytes.clone()).collect());
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let addr = addr.to_owned();
        let mix = mix.clone();
        tasks.push(tokio::spawn(async move {
            let mut report = Report::default();
            let mut conn = match Conn::connect(&addr).await {
                Ok(c) => c,
                Err(_) => {
                    report.errors += 1;
                    return report;
                }
            };
            let mut body = Vec::new();
            let mut i = worker;
            while Instant::now() < deadline {
                let req = Request {
                    bytes: mix[i % mix.len()].clone(),
                };
                i += 1;
                let t = Instant::now();
                match conn.send(&req, &mut body).await {
                    Ok(status) if status < 400 => {
                        report.requests += 1;
                        report
                            .latencies
                            .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Ok(_) => report.errors += 1,
                    Err(_) => {
                        report.errors += 1;
                        match Conn::connect(&addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            report
        }));
    }
    let mut total = Report::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.requests += r.requests;
            total.errors += r.errors;
            total.latencies.extend(r.latencies);
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
}

struct Args {
    values: Vec<(String, String)>,
}

impl Args {
    fn parse(raw: &[String]) -> Result<Self, String> {
        let mut values = Vec::new();
        let mut it = raw.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected `{flag}`"))?;
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            values.push((name.to_owned(), value.clone()));
        }
        Ok(Self { values })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("invalid --{name} `{v}`"))
        })
    }
}

const USAGE: &str = "\
USAGE:
  miroir-loadtest run --target HOST:PORT [--key KEY] [--method GET] [--path /version] [--body JSON]
    [--connections 16] [--seconds 10]
  miroir-loadtest corpus --out DOCS.ndjson --queries-out QUERIES [--documents 60000] [--queries 400]
  miroir-loadtest latency --targets NAME=HOST:PORT,... --queries FILE [--index movies] [--key KEY]
    [--rounds 1] [--max-of NAME,NAME] [--together NAME,NAME] [--per-query FILE]
    (each query to each target in a shuffled order, one at a time; --max-of: per query, the slower of those;
    --per-query: every query's time per target, tab-separated)
  miroir-loadtest relay --listen PORT --upstreams HOST:PORT,...
    (forwards each request to every upstream, answers the first one's body: the fan-out floor)
  miroir-loadtest phases --trace FILE [--proxy COMM] [--client COMM] [--node COMM]
    (a search's wakeups and work, from an ftrace of socket system calls; see bench/real_nodes.sh)
  miroir-loadtest passthrough --miroir-bin PATH [--connections 16] [--seconds 5] [--rounds 3]
    (nodes are `meili-sim` processes from the folder of --miroir-bin)
  miroir-loadtest ingest --miroir-bin PATH [--documents 100000] [--batch 10000] [--big-mb 100]
  miroir-loadtest search --miroir-bin PATH [--documents 20000] [--connections 16] [--seconds 5] [--rounds 3]
  miroir-loadtest move --miroir-bin PATH [--documents 50000] [--connections 2] [--meili-bin PATH]
    (real Meilisearch nodes with --meili-bin or MEILI_BIN, simulated ones otherwise)
  miroir-loadtest anti-entropy --miroir-bin PATH [--documents 200000] [--interval-ms 2000]
      [--rate 1000000] [--meili-bin PATH]
    (one clean pass's cost per million documents, and the time to repair a damaged node)
  miroir-loadtest tasks --miroir-bin PATH [--counts 1000,100000,1000000] [--seconds 3]
    (GET /tasks latency against the size of Miroir's task registry, filled directly)";

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let result = Args::parse(rest).and_then(|args| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        match command.as_str() {
            "run" => rt.block_on(run(args)),
            "passthrough" => rt.block_on(passthrough(args)),
            "ingest" => rt.block_on(ingest(args)),
            "search" => rt.block_on(search(args)),
            "tasks" => rt.block_on(tasks::tasks(args)),
            "move" => rt.block_on(moves::moves(args)),
            "anti-entropy" => rt.block_on(anti_entropy::anti_entropy(args)),
            "corpus" => real::corpus(args),
            "latency" => rt.block_on(real::latency(args)),
            "relay" => relay::relay(args),
            "phases" => phases::phases(args),
            other => Err(format!("unknown command `{other}`\n{USAGE}")),
        }
    });
    if let Err(e) = result {
        eprintln!("miroir-loadtest: {e}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let target = args.get("target").ok_or("--target is required")?.to_owned();
    let path = args.get("path").unwrap_or("/version");
    let method = args.get("method").unwrap_or("GET");
    let mix = [Request::new(
        method,
        &target,
        path,
        args.get("key"),
        args.get("body"),
    )];
    let report = load(
        &target,
        &mix,
        args.num("connections", 16)?,
        Duration::from_secs(args.num("seconds", 10)?),
    )
    .await;
    println!("{}", report.line("target"));
    Ok(())
}

/// A simulated node in its own process, so a "direct" measurement crosses processes exactly
/// like a request through Miroir does.
struct SimProcess {
    child: std::process::Child,
    url: String,
}

impl SimProcess {
    fn start(bin: &std::path::Path, key: &str, seed: u64) -> Result<Self, String> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin)
            .args([
                "--port",
                "0",
                "--master-key",
                key,
                "--seed",
                &seed.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Self { child, url })
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` simulated nodes, each its own process, and Miroir in front of the first `behind`;
/// `server_extra` goes into Miroir's `[server]` table. Returns Miroir's address too.
async fn setup(
    bin: &std::path::Path,
    count: u64,
    behind: usize,
    server_extra: &str,
) -> Result<
    (
        Vec<SimProcess>,
        miroir_testkit::proxy::MiroirProcess,
        String,
    ),
    String,
> {
    let sim_bin = sim_bin(bin);
    let mut nodes = Vec::new();
    for i in 0..count {
        nodes.push(SimProcess::start(&sim_bin, KEY, i + 1)?);
    }
    let port = miroir_testkit::proxy::free_port();
    let mut toml = format!(
        "shards = 16\nmaster_key = \"{KEY}\"\ndata_dir = \"{}\"\n[server]\nport = {port}\n{server_extra}[metrics]\nenabled = false\n[log]\nlevel = \"warn\"\n",
        miroir_testkit::proxy::DATA_DIR
    );
    for (i, node) in nodes[..behind].iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"sim-{i}\"\naddress = \"{}\"\n",
            node.url()
        ));
    }
    let miroir = miroir_testkit::proxy::MiroirProcess::start(bin, &toml, port).await;
    Ok((nodes, miroir, format!("127.0.0.1:{port}")))
}

/// `meili-sim` next to the given Miroir binary (both are built into the same target folder).
fn sim_bin(miroir: &std::path::Path) -> PathBuf {
    miroir.with_file_name("meili-sim")
}

/// The pass-through read mix: index metadata, settings and version (all `PassOne` routes).
fn read_mix(host: &str, key: &str) -> Vec<Request> {
    [
        "/indexes/movies",
        "/indexes/movies/settings",
        "/version",
        "/indexes/movies/settings/ranking-rules",
    ]
    .iter()
    .map(|p| Request::new("GET", host, p, Some(key), None))
    .collect()
}

async fn passthrough(args: Args) -> Result<(), String> {
    let bin = PathBuf::from(args.get("miroir-bin").ok_or("--miroir-bin is required")?);
    let connections = args.num("connections", 16)?;
    let seconds = Duration::from_secs(args.num("seconds", 5)?);
    let rounds: usize = args.num("rounds", 3)?;

    let (nodes, miroir, miroir_addr) = setup(&bin, 3, 3, "").await?;
    // Each node gets the index directly: this measures the pass-through path only.
    for node in &nodes {
        let addr = node.addr();
        let mut conn = Conn::connect(&addr).await.map_err(|e| e.to_string())?;
        let create = Request::new(
            "POST",
            &addr,
            "/indexes",
            Some(KEY),
            Some(r#"{"uid":"movies","primaryKey":"id"}"#),
        );
        let mut body = Vec::new();
        conn.send(&create, &mut body)
            .await
            .map_err(|e| e.to_string())?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let direct_addr = nodes[0].addr();
    let title = format!("pass-through read mix, {connections} connections");
    let (direct_mix, miroir_mix) = (read_mix(&direct_addr, KEY), read_mix(&miroir_addr, KEY));
    let targets = [
        ("direct", direct_addr.as_str(), &direct_mix[..]),
        ("miroir", miroir_addr.as_str(), &miroir_mix[..]),
    ];
    compare(
        &title,
        targets,
        connections,
        Duration::from_millis(500),
        seconds,
        rounds,
    )
    .await;
    drop(miroir);
    Ok(())
}

/// Loads two targets in turn (a warm-up each, then `rounds` alternations, so machine drift hits
/// both alike) and prints both and their ratio.
async fn compare(
    title: &str,
    targets: [(&str, &str, &[Request]); 2],
    connections: usize,
    warm: Duration,
    seconds: Duration,
    rounds: usize,
) {
    let mut reports = [Report::default(), Report::default()];
    for (_, addr, mix) in &targets {
        load(addr, mix, connections, warm).await;
    }
    for _ in 0..rounds {
        for (report, (_, addr, mix)) in reports.iter_mut().zip(&targets) {
            report.merge(load(addr, mix, connections, seconds).await);
        }
    }
    let [a, b] = &reports;
    println!("{title}, {rounds} x {}s per target", seconds.as_secs());
    println!("{}", a.line(targets[0].0));
    println!("{}", b.line(targets[1].0));
    println!(
        "ratio {}/{}: throughput {:.2}, p50 {:.2}, p99 {:.2}",
        targets[1].0,
        targets[0].0,
        b.throughput() / a.throughput().max(1e-9),
        b.percentile_ms(50.0) / a.percentile_ms(50.0).max(1e-9),
        b.percentile_ms(99.0) / a.percentile_ms(99.0).max(1e-9),
    );
}

fn documents(from: usize, n: usize) -> String {
    let docs: Vec<String> = (from..from + n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"title":"Document number {i}","body":"Some text about item {i} with several words to index","price":{},"tags":["t{}","t{}"]}}"#,
                i % 997,
                i % 7,
                i % 13
            )
        })
        .collect();
    format!("[{}]", docs.join(","))
}

/// Posts `body` to `addr` and returns the task uid.
async fn post_documents(addr: &str, key: &str, body: &str) -> Result<u64, String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let req = Request::new(
        "POST",
        addr,
        "/indexes/bench/documents",
        Some(key),
        Some(body),
    );
    let mut out = Vec::new();
    let status = conn.send(&req, &mut out).await.map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
    if status != 202 {
        return Err(format!("write answered {status}: {v}"));
    }
    v["taskUid"]
        .as_u64()
        .ok_or_else(|| format!("no taskUid in {v}"))
}

async fn wait_task(addr: &str, key: &str, uid: u64) -> Result<String, String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let req = Request::new("GET", addr, &format!("/tasks/{uid}"), Some(key), None);
    let mut out = Vec::new();
    loop {
        conn.send(&req, &mut out).await.map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        match v["status"].as_str() {
            Some(s @ ("succeeded" | "failed" | "canceled")) => return Ok(s.to_owned()),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Sends `documents` in batches and waits for every task; returns the elapsed time.
async fn ingest_into(
    addr: &str,
    key: &str,
    documents_total: usize,
    batch: usize,
) -> Result<Duration, String> {
    let bodies: Vec<String> = (0..documents_total)
        .step_by(batch)
        .map(|from| documents(from, batch.min(documents_total - from)))
        .collect();
    let started = Instant::now();
    let mut uids = Vec::new();
    for body in &bodies {
        uids.push(post_documents(addr, key, body).await?);
    }
    for uid in uids {
        let status = wait_task(addr, key, uid).await?;
        if status != "succeeded" {
            return Err(format!("task {uid} {status}"));
        }
    }
    Ok(started.elapsed())
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn ingest(args: Args) -> Result<(), String> {
    let bin = PathBuf::from(args.get("miroir-bin").ok_or("--miroir-bin is required")?);
    let total: usize = args.num("documents", 100_000)?;
    let batch: usize = args.num("batch", 10_000)?;
    let big_mb: usize = args.num("big-mb", 100)?;

    let limit = format!("max_body_bytes = {}\n", (big_mb + 50) * 1024 * 1024);
    let (nodes, miroir, miroir_addr) = setup(&bin, 4, 3, &limit).await?;
    let direct = nodes[3].addr();
    let through = miroir_addr;

    let d = ingest_into(&direct, KEY, total, batch).await?;
    let m = ingest_into(&through, KEY, total, batch).await?;
    println!("ingest {total} documents in batches of {batch}, until every task succeeded:");
    println!(
        "  straight into one node : {:>8.3} s  ({:.0} docs/s)",
        d.as_secs_f64(),
        total as f64 / d.as_secs_f64()
    );
    println!(
        "  through Miroir, 3 nodes: {:>8.3} s  ({:.0} docs/s)",
        m.as_secs_f64(),
        total as f64 / m.as_secs_f64()
    );
    println!(
        "  ratio miroir/direct    : {:.2}",
        m.as_secs_f64() / d.as_secs_f64()
    );

    if big_mb > 0 {
        // One large batch: Miroir's peak resident memory against the body size.
        let per_doc = documents(0, 1).len();
        let count = big_mb * 1024 * 1024 / per_doc;
        let body = documents(10_000_000, count);
        let before = vm_hwm_kib(miroir.pid()).unwrap_or(0);
        let started = Instant::now();
        let uid = post_documents(&through, KEY, &body).await?;
        let accepted = started.elapsed();
        let after = vm_hwm_kib(miroir.pid()).unwrap_or(0);
        let status = wait_task(&through, KEY, uid).await?;
        println!(
            "one {:.1} MB batch ({count} documents): accepted in {:.3} s ({status}); Miroir peak RSS {:.1} MB before, {:.1} MB after = {:.2}x the body",
            body.len() as f64 / 1e6,
            accepted.as_secs_f64(),
            before as f64 * 1024.0 / 1e6,
            after as f64 * 1024.0 / 1e6,
            after as f64 * 1024.0 / body.len() as f64
        );
    }
    drop(miroir);
    Ok(())
}

/// The search mix: words, a phrase, a filter, facets, a sort and a deep page.
fn search_mix(host: &str, key: &str) -> Vec<Request> {
    [
        r#"{"q":"item 42"}"#,
        r#"{"q":"document number","limit":10,"facets":["tags"]}"#,
        r#"{"q":"several words","filter":"price > 500","limit":20}"#,
        r#"{"q":"text","sort":["price:asc"],"limit":5}"#,
        r#"{"q":"","facets":["tags","price"],"limit":0}"#,
        r#"{"q":"about item","offset":40,"limit":20}"#,
    ]
    .iter()
    .map(|b| Request::new("POST", host, "/indexes/bench/search", Some(key), Some(b)))
    .collect()
}

/// Sends a settings update to `addr` and waits for its task.
async fn set_search_settings(addr: &str, key: &str) -> Result<(), String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let req = Request::new(
        "PATCH",
        addr,
        "/indexes/bench/settings",
        Some(key),
        Some(r#"{"filterableAttributes":["price","tags"],"sortableAttributes":["price"]}"#),
    );
    let mut out = Vec::new();
    let status = conn.send(&req, &mut out).await.map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
    let uid = v["taskUid"]
        .as_u64()
        .ok_or_else(|| format!("settings answered {status}: {v}"))?;
    match wait_task(addr, key, uid).await?.as_str() {
        "succeeded" => Ok(()),
        other => Err(format!("settings task {other}")),
    }
}

async fn search(args: Args) -> Result<(), String> {
    let bin = PathBuf::from(args.get("miroir-bin").ok_or("--miroir-bin is required")?);
    let total: usize = args.num("documents", 20_000)?;
    let connections = args.num("connections", 16)?;
    let seconds = Duration::from_secs(args.num("seconds", 5)?);
    let rounds: usize = args.num("rounds", 3)?;

    let (nodes, miroir, miroir_addr) = setup(&bin, 4, 3, "").await?;
    let direct_addr = nodes[3].addr();
    for addr in [&direct_addr, &miroir_addr] {
        set_search_settings(addr, KEY).await?;
        ingest_into(addr, KEY, total, 5_000).await?;
    }

    let warm = Duration::from_millis(500);
    let title = format!("search mix over {total} documents, {connections} connections");
    let (direct_mix, miroir_mix) = (search_mix(&direct_addr, KEY), search_mix(&miroir_addr, KEY));
    let targets = [
        ("one node", direct_addr.as_str(), &direct_mix[..]),
        ("miroir/3", miroir_addr.as_str(), &miroir_mix[..]),
    ];
    compare(&title, targets, connections, warm, seconds, rounds).await;
    drop(miroir);
    Ok(())
}
