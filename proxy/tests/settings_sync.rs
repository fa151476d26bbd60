//! Settings stay identical on every node: a node changed behind Miroir's back is patched back
//! to the majority's settings by the drift detector, a settings update through Miroir ends
//! with the same settings everywhere (even when one node's task failed), and a drift without
//! a majority is reported, not repaired.

mod common;

use std::time::Duration;

use common::*;
use meili_sim::SimNode;
use miroir_testkit::wait_task;
use serde_json::{json, Value};

/// A node's full settings, read directly.
async fn settings_on(node: &SimNode, index: &str) -> Value {
    let (status, body) = call(
        &node.url(),
        "GET",
        &format!("/indexes/{index}/settings"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn all_equal(nodes: &[SimNode], index: &str) -> bool {
    let first = settings_on(&nodes[0], index).await;
    for node in &nodes[1..] {
        if settings_on(node, index).await != first {
            return false;
        }
    }
    true
}

/// Sends a request through Miroir and waits for its task; returns the task.
async fn through(base: &str, method: &str, path: &str, body: Value) -> Value {
    let (status, summary) = call(base, method, path, Some(body)).await;
    assert_eq!(status, 202, "{summary}");
    wait_task(base, KEY, summary["taskUid"].as_u64().expect("taskUid")).await
}

/// Changes settings on one node only, behind Miroir's back, and waits for the node's task.
async fn patch_directly(node: &SimNode, index: &str, body: Value) {
    let (status, summary) = call(
        &node.url(),
        "PATCH",
        &format!("/indexes/{index}/settings"),
        Some(body),
    )
    .await;
    assert_eq!(status, 202, "{summary}");
    let task = wait_task(&node.url(), KEY, summary["taskUid"].as_u64().expect("uid")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

async fn movies_with_settings(base: &str) {
    let task = through(
        base,
        "POST",
        "/indexes",
        json!({"uid": "movies", "primaryKey": "id"}),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let task = through(
        base,
        "PATCH",
        "/indexes/movies/settings",
        json!({"filterableAttributes": ["genre"], "sortableAttributes": ["year"]}),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

#[tokio::test]
async fn a_node_changed_behind_miroirs_back_is_repaired_from_the_majority() {
    let c = cluster(3, "[settings_sync]\ninterval_ms = 200\n").await;
    let base = c.miroir.url();
    movies_with_settings(&base).await;
    let before = settings_on(&c.nodes[0], "movies").await;
    patch_directly(
        &c.nodes[1],
        "movies",
        json!({"filterableAttributes": ["year"], "rankingRules": ["typo", "words"]}),
    )
    .await;
    // (The sweep may repair it before it could be read back: the repair count says it ran.)
    let nodes = &c.nodes;
    let repaired = eventually(Duration::from_secs(5), || async move {
        all_equal(nodes, "movies").await
    })
    .await;
    assert!(
        repaired,
        "n1 still differs: {}",
        settings_on(&c.nodes[1], "movies").await
    );
    assert_eq!(settings_on(&c.nodes[1], "movies").await, before);
    assert_eq!(
        before["filterableAttributes"],
        json!(["genre", "_miroir_shard"]),
        "{before}"
    );
    let metrics = metrics_text(c.metrics_port).await;
    assert!(
        sample(&metrics, "miroir_settings_drift_repaired_total").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    // Clients still see the settings without the hidden field.
    let (_, read) = call(&base, "GET", "/indexes/movies/settings", None).await;
    assert_eq!(read["filterableAttributes"], json!(["genre"]), "{read}");
}

#[tokio::test]
async fn a_settings_update_through_miroir_ends_identical_on_every_node() {
    // A sweep interval far beyond the test: only the check after the update can repair.
    let c = cluster(3, "[settings_sync]\ninterval_ms = 600000\n").await;
    let base = c.miroir.url();
    movies_with_settings(&base).await;
    assert!(all_equal(&c.nodes, "movies").await);

    let task = through(
        &base,
        "PUT",
        "/indexes/movies/settings/ranking-rules",
        json!(["words", "typo", "year:desc"]),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert!(all_equal(&c.nodes, "movies").await);

    // One node's task fails: the two that applied the change are the majority, and the
    // third is patched to match once every node task finished.
    c.nodes[2]
        .faults()
        .fail_next_task("internal", "disk on fire");
    let task = through(
        &base,
        "PATCH",
        "/indexes/movies/settings",
        json!({"searchableAttributes": ["title"], "stopWords": ["the"]}),
    )
    .await;
    assert_eq!(task["status"], "failed", "{task}");
    let nodes = &c.nodes;
    let converged = eventually(Duration::from_secs(5), || async move {
        all_equal(nodes, "movies").await
    })
    .await;
    assert!(converged, "n2 was not repaired after the update");
    let settings = settings_on(&c.nodes[2], "movies").await;
    assert_eq!(
        settings["searchableAttributes"],
        json!(["title"]),
        "{settings}"
    );
    assert_eq!(settings["stopWords"], json!(["the"]), "{settings}");
    assert_eq!(
        settings["filterableAttributes"],
        json!(["genre", "_miroir_shard"])
    );
}

#[tokio::test]
async fn a_drift_without_a_majority_is_reported_and_left_alone() {
    let c = cluster(2, "[settings_sync]\ninterval_ms = 200\n").await;
    let base = c.miroir.url();
    movies_with_settings(&base).await;
    patch_directly(
        &c.nodes[0],
        "movies",
        json!({"rankingRules": ["typo", "words"]}),
    )
    .await;
    let drifted = settings_on(&c.nodes[0], "movies").await;

    let port = c.metrics_port;
    let reported = eventually(Duration::from_secs(5), || async move {
        sample(
            &metrics_text(port).await,
            "miroir_settings_drift_unresolved",
        ) == Some(1.0)
    })
    .await;
    assert!(reported, "{}", metrics_text(port).await);
    // Several sweeps later, neither node was overwritten.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(settings_on(&c.nodes[0], "movies").await, drifted);
    assert_ne!(settings_on(&c.nodes[1], "movies").await, drifted);
    assert_eq!(
        sample(
            &metrics_text(port).await,
            "miroir_settings_drift_repaired_total"
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn the_detector_can_be_switched_off() {
    let c = cluster(3, "[settings_sync]\nenabled = false\ninterval_ms = 100\n").await;
    let base = c.miroir.url();
    movies_with_settings(&base).await;
    patch_directly(&c.nodes[1], "movies", json!({"stopWords": ["a"]})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!all_equal(&c.nodes, "movies").await);
}

#[tokio::test]
async fn real_nodes_changed_behind_miroirs_back_are_repaired_from_the_majority() {
    let _bin = miroir_testkit::require_meili_bin!();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(miroir_testkit::start_node(miroir_testkit::NodeKind::Real, KEY).await);
    }
    let (port, metrics_port) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let mut toml = format!(
        "shards = 8\nmaster_key = \"{KEY}\"\ndata_dir = \"{}\"\n\n[server]\nport = {port}\n\n\
         [metrics]\nport = {metrics_port}\n\n[settings_sync]\ninterval_ms = 300\n\n",
        miroir_testkit::proxy::DATA_DIR
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let base = miroir.url();
    movies_with_settings(&base).await;
    let read = |url: String| async move {
        let (status, body) = call(&url, "GET", "/indexes/movies/settings", None).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let before = read(nodes[0].url()).await;
    let (status, summary) = call(
        &nodes[1].url(),
        "PATCH",
        "/indexes/movies/settings",
        Some(json!({"filterableAttributes": ["year"], "stopWords": ["the"], "rankingRules": ["typo", "words"]})),
    )
    .await;
    assert_eq!(status, 202, "{summary}");
    let task = wait_task(
        &nodes[1].url(),
        KEY,
        summary["taskUid"].as_u64().expect("uid"),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");

    let nodes = &nodes;
    let before = &before;
    let repaired = eventually(Duration::from_secs(10), || async move {
        for node in nodes {
            if read(node.url()).await != *before {
                return false;
            }
        }
        true
    })
    .await;
    assert!(repaired, "n1 still differs: {}", read(nodes[1].url()).await);
    println!("real nodes repaired to: {before}");
}

/// A settings task shows what the client sent, as one node would: not the `_miroir_shard`
/// filterable field nor the fields Miroir keeps displayed for the merge.
#[tokio::test]
async fn settings_task_details_show_the_clients_settings_only() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    let body = json!({
        "filterableAttributes": ["genre"],
        "sortableAttributes": ["year"],
        "displayedAttributes": ["title"],
    });
    let task = through(&base, "PATCH", "/indexes/movies/settings", body.clone()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["details"]["filterableAttributes"],
        json!(["genre"]),
        "{task}"
    );
    assert_eq!(
        task["details"]["displayedAttributes"],
        json!(["title"]),
        "{task}"
    );
    let (_, list) = call(&base, "GET", "/tasks?types=settingsUpdate", None).await;
    let listed = &list["results"][0]["details"];
    assert_eq!(listed["filterableAttributes"], json!(["genre"]), "{list}");
    assert_eq!(listed["displayedAttributes"], json!(["title"]), "{list}");
}
