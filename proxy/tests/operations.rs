//! Running Miroir as an operator does: a configuration is valid at `check-config` exactly
//! when it is valid at startup; every request has a deadline; the binary is upgraded under
//! load, through the systemd unit's own reload commands, without a failed request.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{admin_get, call, cluster, metrics_text, miroir_bin, wait_task, ADMIN_KEY, KEY};
use meili_sim::Latency;
use miroir_testkit::proxy::{free_port, TempDir};
use miroir_testkit::redis::Persistence;
use serde_json::{json, Value};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `miroir check-config FILE` succeeds.
fn check_config_passes(file: &Path) -> (bool, String) {
    let out = Command::new(miroir_bin())
        .arg("check-config")
        .arg(file)
        .output()
        .expect("run check-config");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `miroir --config FILE` starts serving (answers `/health` on `port`) rather than exiting.
async fn starts(file: &Path, port: u16) -> (bool, String) {
    let log_path = file.with_extension("log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(miroir_bin())
        .arg("--config")
        .arg(file)
        .current_dir(file.parent().expect("dir"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn miroir");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break false;
        }
        let health = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if health.is_ok_and(|r| r.headers().contains_key("x-request-id")) {
            break true;
        }
        assert!(
            Instant::now() < deadline,
            "miroir neither started nor exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    (
        started,
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

/// The file's own settings, with free ports, a data directory of the test's, and a Redis
/// task store pointed at the test's `redis` when given.
fn runnable(text: &str, dir: &Path, redis: Option<&str>) -> (String, u16) {
    let mut doc: toml::Table = text.parse().expect("example is TOML");
    if let (Some(store), Some(redis)) = (
        doc.get_mut("task_store").and_then(|v| v.as_table_mut()),
        redis,
    ) {
        if store.get("backend").and_then(|b| b.as_str()) == Some("redis") {
            store.insert("url".into(), redis.into());
        }
    }
    let port = free_port();
    doc.insert(
        "data_dir".into(),
        dir.join("data").to_string_lossy().into_owned().into(),
    );
    let section = |doc: &mut toml::Table, name: &str| -> toml::Table {
        doc.get(name)
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default()
    };
    let mut server = section(&mut doc, "server");
    server.insert("port".into(), i64::from(port).into());
    doc.insert("server".into(), server.into());
    let mut metrics = section(&mut doc, "metrics");
    metrics.insert("port".into(), i64::from(free_port()).into());
    doc.insert("metrics".into(), metrics.into());
    (doc.to_string(), port)
}

#[tokio::test]
async fn check_config_and_startup_agree_on_every_example_and_on_refused_files() {
    let examples = repo_root().join("conf/examples");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&examples)
        .expect("conf/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read example"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    // Examples naming Redis run against a real one, with a password (kept out of logs).
    let Some(redis) =
        miroir_testkit::redis::RedisServer::start_with(Persistence::None, Some("pw-9c1e"))
    else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let nodes = "[[nodes]]\nid = \"n0\"\naddress = \"http://127.0.0.1:9\"\n";
    let wrong_password = redis.url().replace("pw-9c1e", "not-it");
    let refused = [
        // Redis that cannot be reached (port 1: nothing listens), and one refusing the
        // password: both refused by check-config and startup alike.
        (
            "unreachable redis",
            format!("shards = 4\n[task_store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n{nodes}"),
        ),
        (
            "redis with a wrong password",
            format!("shards = 4\n[task_store]\nbackend = \"redis\"\nurl = \"{wrong_password}\"\n{nodes}"),
        ),
        // Open to clients while holding the secured nodes' master key.
        (
            "node key without master key",
            format!("shards = 4\nnode_master_key = \"nodes\"\n{nodes}"),
        ),
    ];
    let mut disagreements = Vec::new();
    let mut outcomes = Vec::new();
    let cases = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone(), true))
        .chain(refused.iter().map(|(n, t)| (*n, t.clone(), false)));
    for (name, text, valid) in cases {
        let dir = TempDir::new("miroir-config-check").expect("temp dir");
        // The examples get the test's Redis; the refused files keep theirs.
        let url = redis.url();
        let (text, port) = runnable(&text, dir.path(), valid.then_some(url.as_str()));
        let file = dir.path().join("miroir.toml");
        std::fs::write(&file, &text).expect("write config");
        let (checked, check_text) = check_config_passes(&file);
        let (started, log) = starts(&file, port).await;
        outcomes.push(format!("{name}: check-config {checked}, startup {started}"));
        assert!(
            !log.contains("pw-9c1e") && !log.contains("not-it"),
            "{name}: a Redis password in the log: {log}"
        );
        if checked != started {
            disagreements.push(format!(
                "{name}: check-config {checked}, startup {started}\n  check-config: {check_text}\n  startup log: {log}"
            ));
        }
        assert_eq!(checked, valid, "{name}: {check_text}");
        assert!(
            !check_text.contains("pw-9c1e") && !check_text.contains("not-it"),
            "{name}: a Redis password in check-config's output: {check_text}"
        );
    }
    eprintln!("{}", outcomes.join("\n"));
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Index `movies` with `n` documents `{id, title: "film {id}"}`; the uid of the last task,
/// finished.
async fn movies(base: &str, n: u64) -> u64 {
    let (s, t) = call(
        base,
        "POST",
        "/indexes",
        Some(json!({"uid": "movies", "primaryKey": "id"})),
    )
    .await;
    assert_eq!(s, 202, "{t}");
    let mut uid = t["taskUid"].as_u64().expect("task uid");
    if n > 0 {
        let docs: Vec<Value> = (0..n)
            .map(|i| json!({"id": i, "title": format!("film {i}")}))
            .collect();
        let (s, t) = call(
            base,
            "POST",
            "/indexes/movies/documents",
            Some(Value::Array(docs)),
        )
        .await;
        assert_eq!(s, 202, "{t}");
        uid = t["taskUid"].as_u64().expect("task uid");
    }
    wait_task(base, uid).await;
    uid
}

/// Every node answers searches and document writes of `movies` after 1.5 s.
fn slow_movies(c: &common::Cluster) {
    for node in &c.nodes {
        node.faults().set_latency(Latency {
            min: Duration::from_millis(1500),
            max: Duration::from_millis(1500),
            path_prefix: Some("/indexes/movies/".into()),
        });
    }
}

#[tokio::test]
async fn requests_past_the_deadline_get_a_timeout_error_and_writes_still_complete() {
    let nodes = common::sim_nodes(3).await;
    let (port, metrics_port) = (free_port(), free_port());
    let refs: Vec<&meili_sim::SimNode> = nodes.iter().collect();
    let toml = common::config(
        port,
        metrics_port,
        &refs,
        "[scatter]\nnode_timeout_ms = 10000\n",
    )
    .replacen("[server]\n", "[server]\nrequest_timeout_ms = 400\n", 1);
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let c = common::Cluster {
        nodes,
        miroir,
        metrics_port,
    };
    let base = c.miroir.url();
    movies(&base, 0).await;
    slow_movies(&c);

    // A search every node answers late.
    let (s, e) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": ""})),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (504, Some("miroir_request_timeout")),
        "{e}"
    );
    assert_eq!(e["type"], "system", "{e}");
    assert!(
        e["link"].as_str().is_some() && e["message"].as_str().is_some(),
        "{e}"
    );
    // A request passed to one node.
    let (s, e) = call(&base, "GET", "/indexes/movies/settings/ranking-rules", None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (504, Some("miroir_request_timeout")),
        "{e}"
    );
    // A write: answered at the deadline, and applied on every replica anyway.
    let docs: Vec<Value> = (0..50)
        .map(|i| json!({"id": i, "title": format!("m{i}")}))
        .collect();
    let (s, e) = call(
        &base,
        "POST",
        "/indexes/movies/documents",
        Some(Value::Array(docs)),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (504, Some("miroir_request_timeout")),
        "{e}"
    );
    for node in &c.nodes {
        node.faults().clear();
    }
    let mut total = 0;
    for _ in 0..200 {
        let mut counts = Vec::new();
        for node in &c.nodes {
            let (_, stats) = call(&node.url(), "GET", "/indexes/movies/stats", None).await;
            counts.push(stats["numberOfDocuments"].as_u64().unwrap_or(0));
        }
        total = counts.iter().sum::<u64>();
        if total == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        total, 50,
        "the write past the deadline was not completed on the nodes"
    );
    // Without faults the same routes answer within the deadline.
    let (s, r) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": ""})),
    )
    .await;
    assert_eq!(
        (s, r["estimatedTotalHits"].as_u64()),
        (200, Some(50)),
        "{r}"
    );
}

/// The `ExecReload=` commands of the systemd unit, for this binary, file and main pid.
fn unit_reload_commands(config: &Path, main_pid: u32) -> Vec<String> {
    let unit = std::fs::read_to_string(repo_root().join("systemd/miroir.service")).expect("unit");
    unit.lines()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .map(|cmd| {
            cmd.replace("/usr/local/bin/miroir", &miroir_bin().to_string_lossy())
                .replace("/etc/miroir/miroir.toml", &config.to_string_lossy())
                .replace("$MAINPID", &main_pid.to_string())
        })
        .collect()
}

/// The upgraded process is detached, not a child of the test: stopped by its pid on drop.
struct Terminate(u32);

impl Drop for Terminate {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(self.0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(self.0) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.0.to_string())
                .status();
        }
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// One client of the load: writes, pass-through reads and searches, until `stop`.
async fn client_loop(
    base: String,
    worker: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    (sent, retried): (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    // Reads reuse connections and, like HTTP clients may for idempotent requests (RFC 9110
    // 9.2.2), retry once when a kept-alive connection is closed under them: the old process
    // closes its idle connections when it exits, and a request can cross that close on the
    // wire. Writes, which may not be retried blindly, use a new connection each, which the
    // handover must never fail.
    let reads = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let writes = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let request = |client: &reqwest::Client| match n % 4 {
            0 => client
                .post(format!("{base}/indexes/movies/documents"))
                .json(&json!([{"id": worker * 1_000_000 + n, "title": format!("w{worker} n{n}")}])),
            1 => client.get(format!("{base}/version")),
            2 => client.get(format!("{base}/tasks?limit=1")),
            _ => client
                .post(format!("{base}/indexes/movies/search"))
                .json(&json!({"q": "film", "limit": 5})),
        };
        sent.fetch_add(1, Ordering::Relaxed);
        let outcome = if n.is_multiple_of(4) {
            request(&writes).bearer_auth(KEY).send().await
        } else {
            match request(&reads).bearer_auth(KEY).send().await {
                Err(e) if e.is_request() => {
                    retried.fetch_add(1, Ordering::Relaxed);
                    request(&reads).bearer_auth(KEY).send().await
                }
                other => other,
            }
        };
        match outcome {
            Ok(resp) if resp.status().is_success() => {
                let write = n.is_multiple_of(4);
                match resp.bytes().await {
                    Ok(_) if write => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => failures.lock().unwrap().push(format!("body: {e}")),
                }
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                failures.lock().unwrap().push(format!("{status}: {body}"));
            }
            Err(e) => failures.lock().unwrap().push(format!("request: {e:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_upgrade_through_the_units_reload_fails_no_request_under_load() {
    let mut c = cluster(3, "").await;
    let base = c.miroir.url();
    let before = movies(&base, 100).await;

    let (stop, acked, sent, retried) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let failures = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (1..=4)
        .map(|w| {
            tokio::spawn(client_loop(
                base.clone(),
                w,
                stop.clone(),
                acked.clone(),
                failures.clone(),
                (sent.clone(), retried.clone()),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // `systemctl reload miroir`, as the unit spells it.
    let old_pid = c.miroir.pid();
    let data_dir = c.miroir.dir().join("data");
    let pid_file = data_dir.join("miroir.pid");
    let log_path = c.miroir.dir().join("upgraded.log");
    let started = Instant::now();
    for cmd in unit_reload_commands(&c.miroir.config_path, old_pid) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log");
        let status = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .expect("run reload command");
        assert!(
            status.success(),
            "`{cmd}` failed:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
    let read_pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
    };
    // systemd follows the pid in the pid file when the old main process exits: it must name
    // the new process by then.
    let mut named_before_exit = None;
    let mut upgraded: Option<Terminate> = None;
    while !c.miroir.has_exited() {
        named_before_exit = read_pid().filter(|p| *p != old_pid);
        if let (None, Some(pid)) = (&upgraded, named_before_exit) {
            upgraded = Some(Terminate(pid));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the old process never exited:\n{}",
            c.miroir.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let handed_over = started.elapsed();
    let new_pid =
        named_before_exit.expect("the pid file named the new process before the old exited");
    assert!(
        alive(new_pid),
        "new process {new_pid} is not running:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let failed = failures.lock().unwrap().clone();
    let new_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!(
        "upgrade under load: {} requests, {} failed, {} reads retried once on a closed kept-alive connection, {} writes acknowledged; old process gone {} ms after the reload began",
        sent.load(Ordering::Relaxed),
        failed.len(),
        retried.load(Ordering::Relaxed),
        acked.load(Ordering::Relaxed),
        handed_over.as_millis()
    );

    // The new process holds the stores: the task from before, every acknowledged write, the
    // applied topology.
    let (s, task) = call(&base, "GET", &format!("/tasks/{before}"), None).await;
    let expected = 100 + acked.load(Ordering::Relaxed);
    let mut total = 0;
    for _ in 0..400 {
        let (_, stats) = call(&base, "GET", "/indexes/movies/stats", None).await;
        total = stats["numberOfDocuments"].as_u64().unwrap_or(0);
        if total == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let topology = admin_get(&base, "/_miroir/topology").await;
    drop(upgraded);
    assert!(
        failed.is_empty(),
        "{} failed requests: {:#?}\nnew process:\n{new_log}",
        failed.len(),
        &failed[..failed.len().min(20)]
    );
    assert_eq!(
        (s, task["status"].as_str()),
        (200, Some("succeeded")),
        "{task}"
    );
    assert_eq!(total, expected, "documents after the upgrade");
    assert_eq!(topology["layoutVersion"], 1, "{topology}");
    assert!(new_log.contains("took over"), "{new_log}");
}

/// Debian's `chromium` (installed by scripts/setup.sh), or `CHROMIUM`.
/// A connection the server accepted just before a graceful stop began, whose client writes its
/// request a moment after, is answered, not closed: Pingora stops accepting and drops every
/// connection still waiting for a request at the same instant, and Miroir puts a pause
/// between the two (the cause of a write failing once in a while during an upgrade).
#[tokio::test]
async fn a_request_on_a_connection_accepted_just_before_a_stop_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = common::cluster(1, "").await;
    let addr = c.miroir.url().trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    // Accepted and waiting for its first request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.miroir.signal("TERM");
    // The stop has begun: nothing new is accepted any more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = format!("GET /version HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", common::KEY);
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the request was not answered: {answer:?}"
    );
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium on `url` with `args` (a fresh profile each time); its stdout.
async fn headless(browser: &Path, profile: &Path, url: &str, args: &[String]) -> String {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true)
    .stdin(Stdio::null())
    .stderr(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished in time")
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(state, documents)` of each node row the browser rendered, by node id.
fn rendered_nodes(dom: &str) -> Vec<(String, String, u64)> {
    let mut rows = Vec::new();
    for row in dom.split("<tr class=\"node\"").skip(1) {
        let attr = |name: &str| {
            row.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        let docs = row
            .split("class=\"documents\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(u64::MAX);
        rows.push((attr("data-node"), attr("data-state"), docs));
    }
    rows
}

async fn node_state(base: &str, node: &str) -> String {
    let topology = admin_get(base, "/_miroir/topology").await;
    topology["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["id"] == node)
        .map(|n| n["status"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn admin_page_in_headless_chromium_shows_the_nodes_and_a_node_stopping() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium (scripts/setup.sh installs Debian's `chromium`)");
        return;
    };
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    movies(&base, 120).await;

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-ui");
    std::fs::create_dir_all(&out).expect("output directory");
    let profile = TempDir::new("miroir-chromium").expect("profile");
    let page = format!(
        "http://admin:{ADMIN_KEY}@127.0.0.1:{}/_miroir/ui",
        c.miroir.port
    );
    let dump = ["--dump-dom".to_owned()];

    // Without the admin key the page shows nothing of the fleet.
    let refused = headless(
        &browser,
        profile.path(),
        &format!("{base}/_miroir/ui"),
        &dump,
    )
    .await;
    assert!(!refused.contains("data-node"), "{refused}");

    let dom = headless(&browser, profile.path(), &page, &dump).await;
    let nodes = rendered_nodes(&dom);
    let states: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        states,
        [("n0", "active"), ("n1", "active"), ("n2", "active")],
        "{dom}"
    );
    assert_eq!(
        nodes.iter().map(|n| n.2).sum::<u64>(),
        120,
        "documents per node: {nodes:?}"
    );
    assert!(
        dom.contains("id=\"tasks\"") && dom.contains("documentAdditionOrUpdate"),
        "{dom}"
    );
    assert!(dom.contains("none in progress"), "{dom}");
    // The configuration is shown with its secrets masked.
    assert!(
        dom.contains("id=\"config\"") && dom.contains("***"),
        "{dom}"
    );
    assert!(
        !dom.contains(KEY) && !dom.contains(ADMIN_KEY),
        "a secret is on the page"
    );

    c.nodes[1].stop().await;
    for _ in 0..200 {
        if node_state(&base, "n1").await == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dom = headless(&browser, profile.path(), &page, &dump).await;
    let nodes = rendered_nodes(&dom);
    let states: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        states,
        [("n0", "active"), ("n1", "failed"), ("n2", "active")],
        "{dom}"
    );

    let shot = out.join("admin-ui.png");
    let _ = std::fs::remove_file(&shot);
    let args = [
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,1000".to_owned(),
    ];
    headless(&browser, profile.path(), &page, &args).await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("admin page screenshot: {}", shot.display());
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Some(tool) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        eprintln!("skipped: no systemd-analyze (scripts/setup.sh installs Debian's `systemd`)");
        return;
    };
    // The units as installed, with the binary where this build put it: the single service,
    // and an instance of the template for several Miroirs on one host.
    let dir = TempDir::new("miroir-unit").expect("temp dir");
    for (source, installed) in [
        ("miroir.service", "miroir.service"),
        ("miroir@.service", "miroir@a.service"),
    ] {
        let unit = std::fs::read_to_string(repo_root().join("systemd").join(source)).expect("unit");
        let file = dir.path().join(installed);
        std::fs::write(
            &file,
            unit.replace("/usr/local/bin/miroir", &miroir_bin().to_string_lossy()),
        )
        .expect("write unit");
        let out = Command::new(tool)
            .arg("verify")
            .arg(&file)
            .output()
            .expect("run systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Warnings (an unknown key, a bad value) do not change the exit status: none may name
        // the unit.
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains(installed)).collect();
        assert!(
            out.status.success() && warnings.is_empty(),
            "{installed}: {stderr}"
        );
    }
    let unit = std::fs::read_to_string(repo_root().join("systemd/miroir.service")).expect("unit");
    assert!(unit.contains(
        "ExecReload=/usr/local/bin/miroir --config /etc/miroir/miroir.toml --upgrade --daemon"
    ));
}

/// Every `miroir_*` name in the dashboard's queries.
fn dashboard_metrics(dashboard: &Value, found: &mut Vec<String>, queries: &mut usize) {
    match dashboard {
        Value::Object(map) => {
            for (k, v) in map {
                if let (true, Some(expr)) = (k == "expr", v.as_str()) {
                    *queries += 1;
                    let names: Vec<String> = expr
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|t| t.starts_with("miroir_"))
                        .map(str::to_owned)
                        .collect();
                    assert!(!names.is_empty(), "a query names no Miroir metric: {expr}");
                    found.extend(names);
                } else {
                    dashboard_metrics(v, found, queries);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| dashboard_metrics(v, found, queries)),
        _ => {}
    }
}

#[tokio::test]
async fn dashboard_queries_only_metrics_miroir_exports() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("dashboards/miroir.json")).expect("dashboard"),
    )
    .expect("dashboard is JSON");
    let (mut used, mut queries) = (Vec::new(), 0);
    dashboard_metrics(&dashboard, &mut used, &mut queries);
    used.sort();
    used.dedup();

    // A workload that touches every family: reads, writes, a pass-through, a node missing
    // writes and catching up, a rejected reload.
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    movies(&base, 0).await;
    call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": ""})),
    )
    .await;
    call(&base, "GET", "/version", None).await;
    c.nodes[2].stop().await;
    for i in 0..5 {
        let docs: Vec<Value> = (i * 20..i * 20 + 20).map(|d| json!({"id": d})).collect();
        call(
            &base,
            "POST",
            "/indexes/movies/documents",
            Some(Value::Array(docs)),
        )
        .await;
    }
    c.nodes[2].restart().await.expect("restart");
    c.miroir.write_config("this is not a configuration");
    let mut exported = Vec::new();
    for _ in 0..400 {
        let text = metrics_text(c.metrics_port).await;
        exported = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        exported.sort();
        exported.dedup();
        if used.iter().all(|u| exported.contains(u)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let missing: Vec<&String> = used.iter().filter(|u| !exported.contains(u)).collect();
    eprintln!("dashboard: {queries} queries over {} metrics", used.len());
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics Miroir does not export: {missing:?}\nexported: {exported:?}"
    );
    for family in [
        "miroir_requests_total",
        "miroir_request_duration_seconds_bucket",
        "miroir_node_state",
        "miroir_upstream_duration_seconds_bucket",
        "miroir_hints_pending",
        "miroir_hints_total",
        "miroir_settings_drift_repaired_total",
        "miroir_topology_shard_moves_pending",
        "miroir_shard_copy_documents_total",
    ] {
        assert!(
            used.iter().any(|u| u == family),
            "the dashboard does not show {family}"
        );
    }
}
