//! A node's life as Miroir sees it: active -> suspect -> failed on failed checks, then
//! recovering -> active once it answers again; visible in the topology (with the time of the
//! last change) and in metrics.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

async fn node(base: &str, id: &str) -> Value {
    let topo: Value = client()
        .get(format!("{base}/_miroir/topology"))
        .header("X-Admin-Key", ADMIN_KEY)
        .send()
        .await
        .expect("topology")
        .json()
        .await
        .expect("json");
    topo["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// Polls the node's status until `until`, returning every distinct status seen in order,
/// starting from `from`, the status last seen before the change (a check may already have
/// moved the node on before the first poll).
async fn states_until(base: &str, id: &str, from: &str, until: &str) -> Vec<String> {
    let mut seen: Vec<String> = vec![from.to_owned()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut reached = false;
    while !reached && tokio::time::Instant::now() < deadline {
        let status = node(base, id).await["status"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        reached = status == until;
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reached, "never {until}: {seen:?}");
    seen
}

#[tokio::test]
async fn a_node_goes_suspect_failed_recovering_active_and_metrics_follow() {
    let c = cluster_with(3, "replication_factor = 2\n", "").await;
    // Slower checks with real thresholds, so each state lasts long enough to be seen.
    let toml = c.miroir.config_path.clone();
    let text = std::fs::read_to_string(&toml).expect("config");
    let text = text
        .replace("interval_ms = 100\n", "interval_ms = 150\n")
        .replace("unhealthy_threshold = 2\n", "unhealthy_threshold = 3\n")
        .replace("healthy_threshold = 1\n", "healthy_threshold = 3\n");
    c.miroir.write_config(&text);
    c.miroir.signal("HUP");
    c.miroir
        .wait_for_log("(generation 2)", Duration::from_secs(10))
        .await;
    let base = c.miroir.url();
    let before = node(&base, "n1").await;
    assert_eq!(before["status"], "active");
    let changed_at = before["lastChangeMs"].as_u64().expect("lastChangeMs");

    c.nodes[1].stop().await;
    let seen = states_until(&base, "n1", "active", "failed").await;
    assert_eq!(seen, ["active", "suspect", "failed"]);
    let failed = node(&base, "n1").await;
    assert!(failed["lastChangeMs"].as_u64().unwrap() > changed_at);
    assert!(
        failed["consecutiveFailures"].as_u64().unwrap() >= 3,
        "{failed}"
    );
    assert_eq!(failed["servesReads"], false);
    let m = metrics_text(c.metrics_port).await;
    assert_eq!(
        sample(&m, "miroir_node_state{node=\"n1\",state=\"failed\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "miroir_node_state{node=\"n1\",state=\"active\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&m, "miroir_node_healthy{node=\"n1\"}"), Some(0.0));

    c.nodes[1].restart().await.expect("restart");
    let seen = states_until(&base, "n1", "failed", "active").await;
    assert_eq!(seen, ["failed", "recovering", "active"]);
    let m = metrics_text(c.metrics_port).await;
    assert_eq!(
        sample(&m, "miroir_node_state{node=\"n1\",state=\"active\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_501_from_every_node_is_relayed_and_leaves_the_nodes_active() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    let (status, task) = call(
        &base,
        "POST",
        "/indexes/movies/documents",
        Some(serde_json::json!([{"id": 1, "title": "Carol"}])),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    // The simulator does not implement these routes and answers 501: a verdict every node
    // repeats, not a sign of a failing node.
    for (path, body) in [
        (
            "/indexes/movies/documents/edit",
            serde_json::json!({"function": "doc.title = 1"}),
        ),
        ("/dumps", serde_json::json!({})),
    ] {
        let (status, err) = call(&base, "POST", path, Some(body)).await;
        assert_eq!(status, 501, "{path}: {err}");
        assert_eq!(err["code"], "not_implemented_in_simulator", "{path}: {err}");
    }
    for id in ["n0", "n1", "n2"] {
        let n = node(&base, id).await;
        assert_eq!(
            (n["status"].as_str(), n["consecutiveFailures"].as_u64()),
            (Some("active"), Some(0)),
            "{n}"
        );
    }
    let (status, health) = call(&base, "GET", "/health", None).await;
    assert_eq!(status, 200, "{health}");
}
