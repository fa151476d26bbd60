//! The proxy foundation over real HTTP: Miroir as a child process in front of simulated
//! Meilisearch nodes on 127.0.0.1.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use miroir_filters::routes::{RouteClass, ROUTES};
use miroir_testkit::proxy::{free_port, MiroirProcess};
use serde_json::json;

#[tokio::test]
async fn every_pass_one_route_reaches_a_node_and_answers_like_it() {
    let c = cluster(1, "").await;
    create_index_on(&c.nodes[0], "movies").await;
    let (node, proxy) = (c.nodes[0].url(), c.miroir.url());
    let mut checked = 0;
    for spec in ROUTES.iter().filter(|r| r.class == RouteClass::PassOne) {
        let path = spec
            .template
            .replace("{uid}", "movies")
            .replace("{index_uid}", "movies")
            .replace("{key}", "00000000-0000-4000-8000-000000000000")
            .replace("{id}", "1")
            .replace("{ws}", "default")
            .replace("{uuid}", "00000000-0000-4000-8000-000000000000");
        let body = matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
        let direct = call(&node, spec.method.as_str(), &path, body.clone()).await;
        let through = call(&proxy, spec.method.as_str(), &path, body).await;
        assert_eq!(
            through.0,
            direct.0,
            "{} {path}: status through Miroir",
            spec.method.as_str()
        );
        if direct.0 == 200 {
            // Same node, same state: the same document, except per-request fields.
            let strip = |mut v: serde_json::Value| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("requestUid");
                }
                v
            };
            assert_eq!(
                strip(through.1),
                strip(direct.1),
                "{} {path}: body",
                spec.method.as_str()
            );
        } else {
            assert_eq!(
                through.1["code"],
                direct.1["code"],
                "{} {path}: error code",
                spec.method.as_str()
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} pass-through routes in the table"
    );
}

#[tokio::test]
async fn routes_not_served_yet_answer_a_meilisearch_shaped_error_naming_the_route() {
    let c = cluster(2, "").await;
    let (status, body) = call(&c.miroir.url(), "GET", "/metrics", None).await;
    assert_eq!(status, 501);
    assert_eq!(body["code"], "miroir_not_implemented");
    assert_eq!(body["type"], "invalid_request");
    assert!(
        body["message"].as_str().unwrap().contains("/metrics"),
        "{body}"
    );
    assert!(body["link"].as_str().unwrap().starts_with("https://"));
    let (status, body) = call(
        &c.miroir.url(),
        "POST",
        "/export",
        Some(json!({"url": "x"})),
    )
    .await;
    assert_eq!(status, 501);
    assert_eq!(body["code"], "miroir_unsupported_route");
}

#[tokio::test]
async fn a_batch_uid_that_is_not_a_number_is_invalid_batch_uids() {
    let c = cluster(1, "").await;
    let (status, body) = call(&c.miroir.url(), "GET", "/batches/abc", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_batch_uids");
    assert_eq!(
        body["message"],
        "Batch uid `abc` is invalid. It should only contain numeric characters."
    );
    let (status, body) = call(&c.miroir.url(), "GET", "/batches/4242", None).await;
    assert_eq!((status, &body["code"]), (404, &json!("batch_not_found")));
}

#[tokio::test]
async fn unknown_routes_get_the_nodes_own_404() {
    let c = cluster(1, "").await;
    let direct = call(&c.nodes[0].url(), "GET", "/no/such/route", None).await;
    let through = call(&c.miroir.url(), "GET", "/no/such/route", None).await;
    assert_eq!(through.0, 404);
    assert_eq!(through, direct);
}

#[tokio::test]
async fn client_master_key_is_translated_and_other_keys_are_left_to_the_nodes() {
    let nodes = sim_nodes(1).await;
    let (port, metrics) = (free_port(), free_port());
    // Clients use a different master key than the nodes.
    let toml = config(port, metrics, &[&nodes[0]], "").replace(
        &format!("master_key = \"{KEY}\""),
        &format!("master_key = \"client-key\"\nnode_master_key = \"{KEY}\""),
    );
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    let get = |key: &'static str| {
        let url = format!("{}/version", miroir.url());
        async move {
            client()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("client-key").await, 200);
    assert_eq!(get("wrong").await, 403);
    let no_auth = client()
        .get(format!("{}/version", miroir.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status().as_u16(), 401);
}

#[tokio::test]
async fn health_reports_unavailable_when_a_shard_loses_its_only_replica() {
    let c = cluster(2, "").await;
    let health = || async {
        let r = client()
            .get(format!("{}/health", c.miroir.url()))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(health().await, (200, json!({"status": "available"})));
    c.nodes[1].stop().await;
    assert!(eventually(Duration::from_secs(5), || async { health().await.0 == 503 }).await);
    assert_eq!(health().await.1["code"], "miroir_shard_unavailable");
    c.nodes[1].restart().await.unwrap();
    assert!(eventually(Duration::from_secs(5), || async { health().await.0 == 200 }).await);
}

#[tokio::test]
async fn pass_through_fails_over_to_another_node_when_one_refuses_connections() {
    let c = cluster(3, "").await;
    c.nodes[0].stop().await;
    // Before the health checker notices, connection refusals are retried on another node.
    for _ in 0..9 {
        let (status, body) = call(&c.miroir.url(), "GET", "/version", None).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn admin_topology_needs_the_admin_key_and_shows_the_assignment() {
    let c = cluster(3, "").await;
    let url = format!("{}/_miroir/topology", c.miroir.url());
    let no_key = client().get(&url).send().await.unwrap();
    assert_eq!(no_key.status().as_u16(), 403);
    // A Meilisearch key never opens the admin API.
    let master = client().get(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(master.status().as_u16(), 403);
    let ok = client()
        .get(&url)
        .header("X-Admin-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let topo: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(topo["shards"], 8);
    assert_eq!(topo["nodes"].as_array().unwrap().len(), 3);
    let owned: usize = topo["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["shards"].as_array().unwrap().len())
        .sum();
    assert_eq!(owned, 8, "each shard has exactly one owner with RF 1");
    assert_eq!(
        topo["groups"][0]["shards"]["0"].as_array().unwrap().len(),
        1
    );
    let bearer = client()
        .get(&url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_clients() {
    let c = cluster(1, "").await;
    let r = client()
        .get(format!("{}/version", c.miroir.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let id = r
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36);
    let r = client()
        .get(format!("{}/health", c.miroir.url()))
        .header("X-Request-Id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "trace-123");
}

#[tokio::test]
async fn body_over_the_limit_is_refused_with_payload_too_large() {
    let nodes = sim_nodes(1).await;
    let (port, metrics) = (free_port(), free_port());
    let toml = config(port, metrics, &[&nodes[0]], "")
        .replace("[server]\n", "[server]\nmax_body_bytes = 1024\n");
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;

    // Declared length over the limit: refused before anything is read or sent on.
    let big = "x".repeat(2000);
    let r = client()
        .post(format!("{}/indexes/movies/fields", miroir.url()))
        .bearer_auth(KEY)
        .header("Content-Type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(
        body["message"],
        "The provided payload reached the size limit. The maximum accepted payload size is 1 KiB."
    );

    // A chunked body has no declared length: it is cut off once it passes the limit.
    let mut conn = RawConn::connect(port).await;
    let head = format!(
        "POST /indexes/movies/fields HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    conn.write(head.as_bytes()).await;
    // Miroir may answer and close as soon as the limit is passed: later chunks may not land.
    for _ in 0..4 {
        let chunk = format!("{:x}\r\n{}\r\n", 600, "y".repeat(600));
        if !conn.try_write(chunk.as_bytes()).await {
            break;
        }
    }
    conn.try_write(b"0\r\n\r\n").await;
    let resp = conn.read_response().await;
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["code"], "payload_too_large");
}

#[tokio::test]
async fn expect_100_continue_is_answered_without_stalling() {
    let c = cluster(1, "").await;

    // A body Miroir reads itself (a broadcast): it answers 100 Continue, then the request.
    let body = r#"{"uid":"movies","primaryKey":"id"}"#;
    let mut conn = RawConn::connect(c.miroir.port).await;
    let head = format!(
        "POST /indexes HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    conn.write(head.as_bytes()).await;
    let interim = tokio::time::timeout(Duration::from_millis(900), conn.read_response())
        .await
        .expect("no 100 Continue within 900 ms");
    assert_eq!(interim.status, 100);
    conn.write(body.as_bytes()).await;
    let resp = conn.read_response().await;
    assert_eq!(
        resp.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert!(started.elapsed() < Duration::from_millis(900));
    // The connection is still usable afterwards.
    assert_eq!(conn.get("/version").await.status, 200);

    // A pass-through body: the node's own answer to the expectation is relayed at once.
    let mut conn = RawConn::connect(c.miroir.port).await;
    let head = format!(
        "POST /indexes/movies/fields HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    );
    conn.write(head.as_bytes()).await;
    let first = tokio::time::timeout(Duration::from_millis(900), conn.read_response())
        .await
        .expect("answer");
    if first.status == 100 {
        conn.write(b"{}").await;
        assert!(conn.read_response().await.status >= 200);
    }

    // A request Miroir refuses outright is answered at once, without waiting for the body.
    let mut conn = RawConn::connect(c.miroir.port).await;
    let head = format!(
        "POST /export HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    );
    conn.write(head.as_bytes()).await;
    let resp = tokio::time::timeout(Duration::from_millis(900), conn.read_response())
        .await
        .expect("answer");
    assert_eq!(resp.status, 501);
}

#[tokio::test]
async fn metrics_are_exposed_and_count_requests() {
    let c = cluster(1, "").await;
    for _ in 0..3 {
        assert_eq!(call(&c.miroir.url(), "GET", "/version", None).await.0, 200);
    }
    let text = metrics_text(c.metrics_port).await;
    let ok = sample(
        &text,
        "miroir_requests_total{class=\"pass_one\",route=\"/version\",status=\"200\"}",
    );
    assert_eq!(ok, Some(3.0), "{text}");
    assert!(text.contains("miroir_request_duration_seconds_bucket"));
    assert!(text.contains("miroir_requests_in_flight"));
    // The first health check may still be under way when the requests above are answered.
    let checked = eventually(Duration::from_secs(3), || async {
        metrics_text(c.metrics_port)
            .await
            .contains("miroir_upstream_requests_total{node=\"n0\",status=\"200\"}")
    })
    .await;
    assert!(checked, "health checks count as upstream requests");
    assert!(text.contains("miroir_node_healthy{node=\"n0\"} 1"));
}

#[tokio::test]
async fn reload_applies_a_valid_file_on_a_live_keep_alive_connection() {
    let nodes = sim_nodes(1).await;
    create_index_on(&nodes[0], "movies").await;
    let (port, metrics) = (free_port(), free_port());
    let first = config(port, metrics, &[&nodes[0]], "");
    let miroir = MiroirProcess::start(miroir_bin(), &first, port).await;

    let mut conn = RawConn::connect(port).await;
    let body = "[".to_owned() + &"{\"id\": 1},".repeat(200) + "{\"id\": 2}]";
    let post = |body: &str| {
        format!(
            "POST /indexes/movies/documents HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    conn.write(post(&body).as_bytes()).await;
    assert_eq!(
        conn.read_response().await.status,
        202,
        "under the default limit"
    );

    // A smaller body limit in the file; the watcher applies it.
    let second = first.replace("[server]\n", "[server]\nmax_body_bytes = 1000\n");
    miroir.write_config(&second);
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    conn.write(post(&body).as_bytes()).await;
    let resp = conn.read_response().await;
    assert_eq!(resp.status, 413, "same connection, new configuration");
    let text = metrics_text(metrics).await;
    assert_eq!(
        sample(&text, "miroir_config_reloads_total{result=\"applied\"}"),
        Some(1.0)
    );

    // SIGHUP reloads too (here: back to the default limit). A refused body is left unread,
    // so that answer closed its connection, as Meilisearch's does.
    miroir.write_config(&first);
    miroir.signal("HUP");
    miroir
        .wait_for_log("(generation 3)", Duration::from_secs(5))
        .await;
    let mut conn = RawConn::connect(port).await;
    conn.write(post(&body).as_bytes()).await;
    assert_eq!(conn.read_response().await.status, 202);
}

#[tokio::test]
async fn a_reload_never_moves_a_shard_it_stages_the_new_topology() {
    let nodes = sim_nodes(2).await;
    create_index_on(&nodes[1], "only-on-b").await;
    let (port, metrics) = (free_port(), free_port());
    let first = config(port, metrics, &[&nodes[0]], "");
    let miroir = MiroirProcess::start(miroir_bin(), &first, port).await;

    // Node n0's address now names node B: a different fleet, staged, not applied.
    let second = first.replace(&nodes[0].url(), &nodes[1].url());
    miroir.write_config(&second);
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(5))
        .await;
    let (status, _) = call(&miroir.url(), "GET", "/indexes/only-on-b", None).await;
    assert_eq!(status, 404, "still served by node A");
    let topology = admin_get(&miroir.url(), "/_miroir/topology").await;
    assert_eq!(topology["layoutVersion"], 1);
    assert_eq!(
        topology["staged"]["nodes"][0]["address"],
        nodes[1].url().trim_end_matches('/')
    );
    let text = metrics_text(metrics).await;
    assert_eq!(sample(&text, "miroir_topology_staged"), Some(1.0));

    // Applying it moves nothing (same node id, so same shards): it takes effect at once.
    let (status, body) = admin_post(&miroir.url(), "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = call(&miroir.url(), "GET", "/indexes/only-on-b", None).await;
    assert_eq!(status, 200, "served by node B from version 2 on");
    let topology = admin_get(&miroir.url(), "/_miroir/topology").await;
    assert_eq!(topology["layoutVersion"], 2);
    assert!(topology["staged"].is_null(), "{topology}");

    // A second apply has nothing to do, and says so.
    let (status, body) = admin_post(&miroir.url(), "/_miroir/topology/apply").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("miroir_no_topology_change"))
    );

    // A restart keeps the applied topology, whatever the file says.
    let mut miroir = miroir;
    miroir.write_config(&first);
    miroir.crash_and_restart(miroir_bin()).await;
    let (status, _) = call(&miroir.url(), "GET", "/indexes/only-on-b", None).await;
    assert_eq!(status, 200, "the data directory's topology, not the file's");
}

#[tokio::test]
async fn reload_rejects_an_invalid_file_and_keeps_serving_the_old_one() {
    let nodes = sim_nodes(1).await;
    create_index_on(&nodes[0], "movies").await;
    let (port, metrics) = (free_port(), free_port());
    let good = config(port, metrics, &[&nodes[0]], "");
    let miroir = MiroirProcess::start(miroir_bin(), &good, port).await;
    let mut conn = RawConn::connect(port).await;
    assert_eq!(conn.get("/indexes/movies").await.status, 200);

    miroir.write_config(&good.replace("shards = 8", "shards = 0"));
    miroir
        .wait_for_log("rejected", Duration::from_secs(5))
        .await;
    assert!(
        miroir.log().contains("shards"),
        "the log names the bad key:\n{}",
        miroir.log()
    );
    assert_eq!(
        conn.get("/indexes/movies").await.status,
        200,
        "old config still serving"
    );
    let text = metrics_text(metrics).await;
    assert_eq!(
        sample(&text, "miroir_config_reloads_total{result=\"rejected\"}"),
        Some(1.0)
    );

    // A listener change is applied only at restart, and said so.
    miroir.write_config(&good.replace(
        &format!("port = {port}"),
        &format!("port = {}", free_port()),
    ));
    miroir
        .wait_for_log("only after a restart", Duration::from_secs(5))
        .await;
    assert_eq!(conn.get("/indexes/movies").await.status, 200);
}

#[test]
fn check_config_accepts_the_examples_and_names_the_bad_key() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/examples");
    let dir = miroir_testkit::proxy::TempDir::new("check-config").unwrap();
    // check-config reaches the Redis a file names: examples naming one get the test's.
    let redis = miroir_testkit::redis::RedisServer::start(miroir_testkit::redis::Persistence::None);
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let mut path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let mut doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
            if let Some(store) = doc.get_mut("task_store").and_then(|v| v.as_table_mut()) {
                if store.get("backend").and_then(|b| b.as_str()) == Some("redis") {
                    let Some(redis) = &redis else {
                        eprintln!("{}: skipped, no redis-server on PATH", path.display());
                        continue;
                    };
                    store.insert("url".into(), redis.url().into());
                    let copy = dir.path().join(path.file_name().unwrap());
                    std::fs::write(&copy, doc.to_string()).unwrap();
                    path = copy;
                }
            }
            let out = Command::new(miroir_bin())
                .arg("check-config")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            seen += 1;
        }
    }
    assert!(seen >= 2);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "shards = 4\nreplication_factor = 2\n[[nodes]]\nid = \"a\"\naddress = \"http://127.0.0.1:7700\"\n").unwrap();
    let out = Command::new(miroir_bin())
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replication_factor"), "{err}");
}

/// `openssl` arguments for a one-day self-signed certificate and its new key.
fn self_signed<'a>(subject: &'a str, key: &'a str, cert: &'a str) -> [&'a str; 13] {
    [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject, "-keyout",
        key, "-out", cert,
    ]
}

/// Runs `openssl` in `dir` once per argument list; `false` when it is missing or one fails.
fn openssl(dir: &std::path::Path, runs: &[&[&str]]) -> bool {
    runs.iter().all(|args| {
        Command::new("openssl")
            .args(*args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[tokio::test]
async fn tls_listener_serves_the_same_api() {
    let dir = miroir_testkit::proxy::TempDir::new("tls").unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    if !openssl(
        dir.path(),
        &[&self_signed("/CN=localhost", "key.pem", "cert.pem")],
    ) {
        eprintln!("SKIPPED tls_listener_serves_the_same_api: openssl is not available to make a certificate");
        return;
    }
    let nodes = sim_nodes(1).await;
    let (port, metrics, tls_port) = (free_port(), free_port(), free_port());
    let toml = config(port, metrics, &[&nodes[0]], "").replace(
        "[metrics]",
        &format!(
            "[server.tls]\nport = {tls_port}\ncert_path = \"{}\"\nkey_path = \"{}\"\n\n[metrics]",
            cert.display(),
            key.display()
        ),
    );
    let _miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "5"])
        .arg(format!("https://127.0.0.1:{tls_port}/health"))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"status":"available"}"#
    );
}

/// Kills the TLS terminator when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Miroir's own node client over TLS: a node behind a TLS terminator (socat), its
/// certificate's CA trusted through `SSL_CERT_FILE`. Writes, task waits, searches and reads go
/// over pooled TLS connections and answer as over plain HTTP.
#[tokio::test]
async fn a_node_behind_tls_takes_writes_and_answers_searches() {
    let dir = miroir_testkit::proxy::TempDir::new("tls-node").unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    // A test CA and a leaf it signs: rustls refuses a self-signed CA as a server's own
    // certificate.
    let _ = std::fs::write(
        dir.path().join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
    let ca = self_signed("/CN=test-ca", "ca.key", "ca.pem");
    const LEAF: &[&str] = &[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ];
    const SIGNED: &[&str] = &[
        "x509",
        "-req",
        "-days",
        "1",
        "-CAcreateserial",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ];
    if !openssl(dir.path(), &[&ca, LEAF, SIGNED]) {
        eprintln!("SKIPPED a_node_behind_tls_takes_writes_and_answers_searches: openssl is not available to make certificates");
        return;
    }
    let (cert, key) = (path("cert.pem"), path("key.pem"));
    let nodes = sim_nodes(1).await;
    let node_port = nodes[0].url().rsplit(':').next().unwrap_or("").to_owned();
    let tls_port = free_port();
    let Ok(socat) = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},verify=0"
        ))
        .arg(format!("TCP:127.0.0.1:{node_port}"))
        .spawn()
    else {
        eprintln!("SKIPPED a_node_behind_tls_takes_writes_and_answers_searches: socat is not installed (scripts/setup.sh installs it)");
        return;
    };
    let _socat = Child(socat);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the TLS terminator never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (port, metrics) = (free_port(), free_port());
    let toml = config_for(
        port,
        metrics,
        &[format!("https://127.0.0.1:{tls_port}")],
        "",
    );
    let ca = path("ca.pem");
    let miroir =
        MiroirProcess::start_with_env(miroir_bin(), &toml, port, &[("SSL_CERT_FILE", ca.as_str())])
            .await;
    let base = miroir.url();

    let docs: Vec<serde_json::Value> = (0..50)
        .map(|i| json!({"id": i, "title": format!("secure item {i}")}))
        .collect();
    let (s, r) = call(&base, "POST", "/indexes/vault/documents", Some(json!(docs))).await;
    assert_eq!(s, 202, "{r}");
    let task = wait_task(&base, r["taskUid"].as_u64().unwrap_or(0)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    for _ in 0..5 {
        let (s, r) = call(
            &base,
            "POST",
            "/indexes/vault/search",
            Some(json!({"q": "secure", "limit": 5})),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["estimatedTotalHits"], 50, "{r}");
        assert_eq!(r["hits"].as_array().map(Vec::len), Some(5), "{r}");
    }
    let (s, r) = call(&base, "GET", "/indexes/vault/documents/7", None).await;
    assert_eq!((s, &r["title"]), (200, &json!("secure item 7")), "{r}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_carry_no_secrets() {
    let c = cluster(1, "[log]\nformat = \"json\"\n").await;
    assert_eq!(call(&c.miroir.url(), "GET", "/version", None).await.0, 200);
    let (status, _) = call(&c.miroir.url(), "GET", "/keys/some-secret-key-value", None).await;
    assert!(status >= 400);
    // Both requests are logged once answered; wait for the second line.
    let logged = eventually(Duration::from_secs(5), || async {
        c.miroir.log().matches("miroir::access").count() >= 2
    })
    .await;
    assert!(logged, "{}", c.miroir.log());
    let log = c.miroir.log();
    let mut access = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["message"].is_string(),
            "{line}"
        );
        if v["target"] == "miroir::access" {
            access += 1;
        }
    }
    assert!(access >= 2, "{log}");
    assert!(!log.contains(KEY), "the master key reached the log");
    assert!(
        !log.contains("some-secret-key-value"),
        "a key in a path reached the log"
    );
}

/// Both worker layouts (a runtime per thread, each serving the connections it accepts, or one
/// work-stealing runtime) serve many keep-alive clients at once: merged searches and relayed
/// reads each answer as they do one at a time, and the worker threads are those the
/// configuration names.
#[tokio::test]
async fn both_worker_layouts_serve_concurrent_keep_alive_clients() {
    for work_stealing in [false, true] {
        let nodes = sim_nodes(2).await;
        let (port, metrics) = (free_port(), free_port());
        let toml = config(port, metrics, &[&nodes[0], &nodes[1]], "").replacen(
            &format!("[server]\nport = {port}\n"),
            &format!("[server]\nport = {port}\nthreads = 2\nwork_stealing = {work_stealing}\n"),
            1,
        );
        let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
        let base = miroir.url();
        let docs: Vec<_> = (0..40)
            .map(|i| json!({"id": i, "title": format!("river {i}")}))
            .collect();
        let (status, task) = call(
            &base,
            "POST",
            "/indexes/movies/documents",
            Some(json!(docs)),
        )
        .await;
        assert_eq!(status, 202, "{task}");
        let done = wait_task(&base, task["taskUid"].as_u64().expect("taskUid")).await;
        assert_eq!(done["status"], "succeeded", "{done}");

        let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", miroir.pid()))
            .expect("/proc")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect();
        let count = |name: &str| threads.iter().filter(|t| *t == name).count();
        if work_stealing {
            // Its two workers, and the blocking-pool threads it started so far.
            assert!(count("miroir-worker") >= 2, "{threads:?}");
            assert_eq!(count("miroir-w0"), 0, "{threads:?}");
        } else {
            assert_eq!(
                (count("miroir-w0"), count("miroir-w1")),
                (1, 1),
                "{threads:?}"
            );
        }

        let expected_search = call(
            &base,
            "POST",
            "/indexes/movies/search",
            Some(json!({"q": "river", "limit": 5})),
        )
        .await;
        assert_eq!(expected_search.0, 200, "{}", expected_search.1);
        let expected_settings = call(&base, "GET", "/indexes/movies/settings", None).await;
        assert_eq!(expected_settings.0, 200, "{}", expected_settings.1);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let clients = (0..16).map(|c| {
            let (http, base) = (http.clone(), base.clone());
            let (search, settings) = (expected_search.1.clone(), expected_settings.1.clone());
            tokio::spawn(async move {
                for i in 0..20 {
                    let (path, body, expected) = if (c + i) % 2 == 0 {
                        (
                            "/indexes/movies/search",
                            Some(json!({"q": "river", "limit": 5})),
                            &search,
                        )
                    } else {
                        ("/indexes/movies/settings", None, &settings)
                    };
                    let req = match body {
                        Some(b) => http.post(format!("{base}{path}")).json(&b),
                        None => http.get(format!("{base}{path}")),
                    };
                    let resp = req.bearer_auth(KEY).send().await.expect("send");
                    assert_eq!(resp.status(), 200, "client {c}, request {i}: {path}");
                    let got: serde_json::Value = resp.json().await.expect("json");
                    let strip = |v: &serde_json::Value| {
                        let mut v = v.clone();
                        if let Some(o) = v.as_object_mut() {
                            o.remove("processingTimeMs");
                            o.remove("requestUid");
                        }
                        v
                    };
                    assert_eq!(
                        strip(&got),
                        strip(expected),
                        "client {c}, request {i}: {path}"
                    );
                }
            })
        });
        for client in futures::future::join_all(clients).await {
            client.expect("client task");
        }
    }
}
