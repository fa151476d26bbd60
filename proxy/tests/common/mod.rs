//! Shared setup for the proxy's integration tests: simulated nodes, a Miroir process in front
//! of them, and a raw HTTP/1.1 connection for tests that must control the socket.

#![allow(dead_code)]

pub mod corpus;

use std::path::Path;
use std::time::Duration;

use meili_sim::{SimConfig, SimNode};
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const KEY: &str = "test-master-key";
pub const ADMIN_KEY: &str = "test-admin-key";

pub fn miroir_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_miroir"))
}

pub async fn sim_nodes(n: usize) -> Vec<SimNode> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let cfg = SimConfig {
            master_key: Some(KEY.into()),
            port: 0,
            task_delay: Duration::ZERO,
            seed: i as u64 + 1,
            name: format!("sim-{i}"),
        };
        nodes.push(SimNode::start(cfg).await.expect("start simulated node"));
    }
    nodes
}

/// A config for `nodes` (ids `n0`, `n1`, ...) with fast health checks; `extra` is appended.
pub fn config(port: u16, metrics_port: u16, nodes: &[&SimNode], extra: &str) -> String {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    config_for(port, metrics_port, &urls, extra)
}

/// Like [`config`], for nodes at these addresses (real Meilisearch nodes among them).
pub fn config_for(port: u16, metrics_port: u16, urls: &[String], extra: &str) -> String {
    let mut toml = format!(
        "shards = 8\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n[server]\nport = {port}\n\n\
         [metrics]\nport = {metrics_port}\n\n[admin]\napi_key = \"{ADMIN_KEY}\"\n\n\
         [health]\ninterval_ms = 100\ntimeout_ms = 100\nunhealthy_threshold = 2\nhealthy_threshold = 1\n\n{extra}\n"
    );
    for (i, url) in urls.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{url}\"\n\n"
        ));
    }
    toml
}

/// Tasks of `kind` on `index` the node at `url` holds (read on the node, behind Miroir).
pub async fn node_tasks_of(url: &str, index: &str, kind: &str) -> Vec<serde_json::Value> {
    let (status, page) = call(
        url,
        "GET",
        &format!("/tasks?indexUids={index}&types={kind}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["results"].as_array().cloned().unwrap_or_default()
}

/// Polls Miroir's task until it is terminal, like an SDK's `waitForTask`.
pub async fn wait_task(base: &str, uid: u64) -> serde_json::Value {
    wait_task_rotating(&[base.to_owned()], uid).await
}

/// Like [`wait_task`], each poll on the next of `bases` in turn (a load balancer spreading
/// an SDK's polls over several Miroirs); each must answer 200 with the task.
pub async fn wait_task_rotating(bases: &[String], uid: u64) -> serde_json::Value {
    for i in 0..1000 {
        let base = &bases[i % bases.len()];
        let (status, task) = call(base, "GET", &format!("/tasks/{uid}"), None).await;
        assert_eq!(status, 200, "{base}: {task}");
        assert_eq!(task["uid"], uid, "{task}");
        if matches!(
            task["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        ) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {uid} never finished");
}

pub struct Cluster {
    pub nodes: Vec<SimNode>,
    pub miroir: MiroirProcess,
    pub metrics_port: u16,
}

/// `n` simulated nodes and Miroir in front of all of them; `extra` is appended (sections).
pub async fn cluster(n: usize, extra: &str) -> Cluster {
    cluster_with(n, "", extra).await
}

/// Like [`cluster`], with `top` inserted among the top-level keys (e.g. `replication_factor`).
pub async fn cluster_with(n: usize, top: &str, extra: &str) -> Cluster {
    let nodes = sim_nodes(n).await;
    let (port, metrics_port) = (free_port(), free_port());
    let refs: Vec<&SimNode> = nodes.iter().collect();
    let toml = config(port, metrics_port, &refs, extra).replacen(
        "shards = 8\n",
        &format!("shards = 8\n{top}"),
        1,
    );
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    Cluster {
        nodes,
        miroir,
        metrics_port,
    }
}

/// Like [`cluster`], over nodes that take `task_delay` to process each task.
pub async fn slow_cluster(n: usize, task_delay: Duration, extra: &str) -> Cluster {
    let mut nodes = Vec::new();
    for i in 0..n {
        let cfg = SimConfig {
            master_key: Some(KEY.into()),
            port: 0,
            task_delay,
            seed: i as u64 + 1,
            name: format!("slow-{i}"),
        };
        nodes.push(SimNode::start(cfg).await.expect("node"));
    }
    let (port, metrics_port) = (free_port(), free_port());
    let refs: Vec<&SimNode> = nodes.iter().collect();
    let miroir = MiroirProcess::start(
        miroir_bin(),
        &config(port, metrics_port, &refs, extra),
        port,
    )
    .await;
    Cluster {
        nodes,
        miroir,
        metrics_port,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Sends a request with the master key and returns (status, JSON body or Null).
pub async fn call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// How many document-write tasks of `index` a node holds.
pub async fn node_write_tasks(node: &SimNode, index: &str) -> usize {
    let (status, page) = call(
        &node.url(),
        "GET",
        &format!("/tasks?indexUids={index}&types=documentAdditionOrUpdate&limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["results"].as_array().map_or(0, Vec::len)
}

/// Creates index `uid` on a node directly and waits until it exists.
pub async fn create_index_on(node: &SimNode, uid: &str) {
    let (status, _) = call(
        &node.url(),
        "POST",
        "/indexes",
        Some(serde_json::json!({"uid": uid, "primaryKey": "id"})),
    )
    .await;
    assert_eq!(status, 202);
    for _ in 0..200 {
        if call(&node.url(), "GET", &format!("/indexes/{uid}"), None)
            .await
            .0
            == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("index {uid} never appeared on {}", node.url());
}

/// One HTTP/1.1 connection whose lifetime the test controls.
pub struct RawConn {
    stream: BufReader<TcpStream>,
}

pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl RawConn {
    pub async fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        Self {
            stream: BufReader::new(stream),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    /// Writes what the peer still reads: `false` once it has closed its side (for example
    /// after answering a body it refused).
    pub async fn try_write(&mut self, bytes: &[u8]) -> bool {
        self.stream.get_mut().write_all(bytes).await.is_ok()
    }

    /// `GET path` with the master key on this connection.
    pub async fn get(&mut self, path: &str) -> RawResponse {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: miroir\r\nAuthorization: Bearer {KEY}\r\n\r\n");
        self.write(req.as_bytes()).await;
        self.read_response().await
    }

    /// Reads one response head and body (Content-Length or chunked).
    pub async fn read_response(&mut self) -> RawResponse {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!("bad status line {line:?} (connection closed?)");
            });
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let mut resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await.expect("chunk size");
                let size = usize::from_str_radix(line.trim(), 16).expect("hex size");
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.expect("chunk");
                chunk.truncate(size);
                resp.body.extend(chunk);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = resp
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            resp.body = vec![0; n];
            self.stream.read_exact(&mut resp.body).await.expect("body");
        }
        resp
    }
}

/// Waits until the node (or Miroir) at `base` has no enqueued or processing task (60 s at most).
pub async fn wait_idle(base: &str) {
    for _ in 0..6000 {
        let (_, page) = call(base, "GET", "/tasks?statuses=enqueued,processing", None).await;
        if page["total"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("tasks never finished on {base}");
}

/// Polls `cond` every 25 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Requests Miroir sent to nodes, from its metrics text.
pub fn upstream_requests(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("miroir_upstream_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn metrics_text(port: u16) -> String {
    client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics body")
}

/// The value of the first sample line starting with `prefix`, if any.
pub fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `GET` on the admin API with the admin key; the JSON answer (panics unless 200).
#[allow(dead_code)]
pub async fn admin_get(base: &str, path: &str) -> serde_json::Value {
    let resp = client()
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin request");
    assert_eq!(resp.status().as_u16(), 200, "GET {path}");
    resp.json().await.expect("admin JSON")
}

/// `POST` on the admin API with the admin key: (status, JSON answer).
#[allow(dead_code)]
pub async fn admin_post(base: &str, path: &str) -> (u16, serde_json::Value) {
    let resp = client()
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Three nodes behind Miroir (8 shards) and a fourth, the reference, holding every document:
/// the setup of the tests that compare Miroir with one node.
pub struct Compared {
    pub nodes: Vec<miroir_testkit::TestNode>,
    pub reference: miroir_testkit::TestNode,
    pub miroir: MiroirProcess,
    /// Miroir's Prometheus port.
    pub metrics_port: u16,
}

/// [`Compared`] with nodes of `kind`, each index of `indexes` given `settings` and
/// `documents` through Miroir and on the reference; every node idle when this returns.
pub async fn compared(
    kind: miroir_testkit::NodeKind,
    indexes: &[&str],
    settings: &serde_json::Value,
    documents: &[serde_json::Value],
) -> Compared {
    compared_rf(kind, 1, indexes, settings, documents).await
}

/// [`compared`] with each shard on `rf` of the three nodes: a node is then asked for part of
/// its shards, so its search filters on the shard field.
pub async fn compared_rf(
    kind: miroir_testkit::NodeKind,
    rf: u32,
    indexes: &[&str],
    settings: &serde_json::Value,
    documents: &[serde_json::Value],
) -> Compared {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(miroir_testkit::start_node(kind, KEY).await);
    }
    let reference = nodes.pop().expect("4 nodes");
    let (port, metrics_port) = (free_port(), free_port());
    let mut toml = format!(
        "shards = 8
replication_factor = {rf}
master_key = \"{KEY}\"
data_dir = \"{DATA_DIR}\"

\
         [server]
port = {port}

[metrics]
port = {metrics_port}

[admin]
api_key = \"{ADMIN_KEY}\"

"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    for base in [miroir.url(), reference.url()] {
        for index in indexes {
            let path = format!("/indexes/{index}/settings");
            let (s, r) = call(&base, "PATCH", &path, Some(settings.clone())).await;
            assert_eq!(s, 202, "{r}");
            let path = format!("/indexes/{index}/documents");
            let docs = serde_json::Value::Array(documents.to_vec());
            let (s, r) = call(&base, "POST", &path, Some(docs)).await;
            assert_eq!(s, 202, "{r}");
        }
    }
    for node in nodes.iter().chain([&reference]) {
        wait_idle(&node.url()).await;
    }
    Compared {
        nodes,
        reference,
        miroir,
        metrics_port,
    }
}

/// The `id` of every hit of a search answer, sorted.
pub fn sorted_ids(answer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["id"].to_string())
        .collect();
    ids.sort();
    ids
}

/// Simulated nodes always; real ones too when a Meilisearch binary is available (else the
/// real-node variant says it is skipped).
pub fn kinds() -> Vec<miroir_testkit::NodeKind> {
    let mut kinds = vec![miroir_testkit::NodeKind::Sim];
    match miroir_testkit::meili_bin() {
        Some(_) => kinds.push(miroir_testkit::NodeKind::Real),
        None => eprintln!("real-node variant skipped: no Meilisearch binary"),
    }
    kinds
}

/// A search of `index` for "doc" with `key` (through Miroir or on a node): status and body.
pub async fn search_as(base: &str, index: &str, key: &str) -> (u16, serde_json::Value) {
    let resp = client()
        .post(format!("{base}/indexes/{index}/search"))
        .bearer_auth(key)
        .json(&serde_json::json!({"q": "doc"}))
        .send()
        .await
        .expect("search");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// No query made of the version's number (decimal or hexadecimal) matches it, whatever the
/// matching strategy; a query of its characters is an empty query, and adds nothing to words.
pub async fn version_matches_no_query(base: &str, search: &str, number: &str, value: &str) {
    let hex = format!("{:x}", number.parse::<u64>().expect("number"));
    for strategy in ["last", "all", "frequency"] {
        for q in [number, &number[..6], &hex, &hex[..5]] {
            let body = serde_json::json!({"q": q, "matchingStrategy": strategy});
            let (status, body) = call(base, "POST", search, Some(body)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["estimatedTotalHits"], 0, "q={q} {strategy}: {body}");
        }
    }
    let total = |q: String| async move {
        let (status, body) = call(base, "POST", search, Some(serde_json::json!({"q": q}))).await;
        assert_eq!(status, 200, "{body}");
        body["estimatedTotalHits"].clone()
    };
    assert_eq!(total(value.to_owned()).await, total(String::new()).await);
    assert_eq!(
        total(format!("doc {value}")).await,
        total("doc".into()).await
    );
    let (status, body) = call(
        base,
        "POST",
        search,
        Some(serde_json::json!({"q": number, "attributesToSearchOn": ["title"]})),
    )
    .await;
    assert_eq!(
        (status, &body["estimatedTotalHits"]),
        (200, &serde_json::json!(0)),
        "{body}"
    );
}

/// Runs `miroir ctl --url BASE --admin-key ADMIN_KEY ARGS` as an operator would, off the
/// test's runtime: whether it succeeded, and what it printed (stdout, then stderr).
pub async fn ctl_outcome(base: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(miroir_bin());
    cmd.args(["ctl", "--url", base, "--admin-key", ADMIN_KEY])
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run miroir ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// [`ctl_outcome`] for a command that must succeed: its output.
pub async fn ctl(base: &str, args: &[&str]) -> String {
    let (ok, text) = ctl_outcome(base, args).await;
    assert!(ok, "miroir ctl {args:?}: {text}");
    text
}

/// `GET /_miroir/topology` through Miroir at `base`.
pub async fn topology(base: &str) -> serde_json::Value {
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

/// A node's status and pending hints as Miroir at `base` shows them.
pub async fn node_status(base: &str, id: &str) -> (String, u64) {
    let topo = topology(base).await;
    let node = topo["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id).cloned())
        .unwrap_or(serde_json::Value::Null);
    (
        node["status"].as_str().unwrap_or("").to_owned(),
        node["pendingHints"].as_u64().unwrap_or(0),
    )
}
