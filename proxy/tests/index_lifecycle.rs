//! Index lifecycle through Miroir with a node down or refusing: a creation, deletion, update
//! or swap a node missed (down, or a server error) is kept in its log and replayed on it in
//! order when it is back; a creation some node refused, or whose task failed on one, is
//! undone everywhere. Also instance-wide broadcasts (experimental features, and
//! dumps and snapshots on real nodes) and the routes Miroir does not serve.

mod common;

use std::time::Duration;

use common::*;
use meili_sim::ErrorRate;
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{require_meili_bin, start_node, wait_task, NodeKind, TestNode};
use serde_json::{json, Value};

/// Sends `method path body` through Miroir, expects 202 and waits for the Miroir task.
async fn task_through(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, summary) = call(base, method, path, body).await;
    assert_eq!(status, 202, "{summary}");
    let uid = summary["taskUid"].as_u64().expect("taskUid");
    wait_task(base, KEY, uid).await
}

async fn index_status(url: &str, uid: &str) -> u16 {
    call(url, "GET", &format!("/indexes/{uid}"), None).await.0
}

#[tokio::test]
async fn an_index_created_with_a_node_down_reaches_it_from_its_log_when_it_is_back() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    c.nodes[1].stop().await;

    let task = task_through(
        &base,
        "POST",
        "/indexes",
        Some(json!({"uid": "movies", "primaryKey": "id"})),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["type"], "indexCreation");
    assert_eq!(task["miroir"]["pendingReplays"], json!(["n1"]), "{task}");
    for node in [&c.nodes[0], &c.nodes[2]] {
        assert_eq!(index_status(&node.url(), "movies").await, 200);
    }

    c.nodes[1].restart().await.expect("restart");
    let back = &c.nodes[1];
    let replayed = eventually(Duration::from_secs(10), || async move {
        index_status(&back.url(), "movies").await == 200
    })
    .await;
    assert!(replayed, "the missed creation was not replayed on n1");
    let (_, index) = call(&back.url(), "GET", "/indexes/movies", None).await;
    assert_eq!(index["primaryKey"], "id", "{index}");
}

#[tokio::test]
async fn a_creation_a_node_answers_with_a_server_error_is_rolled_forward_to_it() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    c.nodes[2].faults().set_error_rate(ErrorRate {
        rate: 1.0,
        status: 500,
        path_prefix: Some("/indexes".into()),
    });
    let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": "books"}))).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(index_status(&c.nodes[0].url(), "books").await, 200);
    c.nodes[2].faults().clear();
    let nodes = &c.nodes;
    let everywhere = eventually(Duration::from_secs(10), || async move {
        for node in nodes {
            if index_status(&node.url(), "books").await != 200 {
                return false;
            }
        }
        true
    })
    .await;
    assert!(everywhere, "n2 never got the creation it missed");
}

#[tokio::test]
async fn a_creation_whose_task_fails_on_one_node_is_undone_on_the_others() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    c.nodes[0]
        .faults()
        .fail_next_task("internal", "disk on fire");
    let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": "songs"}))).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["message"], "disk on fire", "{task}");
    let nodes = &c.nodes;
    let gone = eventually(Duration::from_secs(5), || async move {
        for node in nodes {
            if index_status(&node.url(), "songs").await != 404 {
                return false;
            }
        }
        true
    })
    .await;
    assert!(gone, "the index stayed on the nodes that created it");
}

#[tokio::test]
async fn creating_an_index_that_exists_fails_and_keeps_its_filterable_attributes() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": "movies"}))).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let task = task_through(
        &base,
        "PUT",
        "/indexes/movies/settings/filterable-attributes",
        Some(json!(["genre"])),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");

    let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": "movies"}))).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["code"], "index_already_exists", "{task}");
    let docs = json!([{"id": 1, "genre": "drama"}, {"id": 2, "genre": "comedy"}]);
    let task = task_through(&base, "POST", "/indexes/movies/documents", Some(docs)).await;
    assert_eq!(task["status"], "succeeded", "{task}");

    let (_, filterable) = call(
        &base,
        "GET",
        "/indexes/movies/settings/filterable-attributes",
        None,
    )
    .await;
    assert_eq!(filterable, json!(["genre"]));
    for node in &c.nodes {
        let (_, on_node) = call(
            &node.url(),
            "GET",
            "/indexes/movies/settings/filterable-attributes",
            None,
        )
        .await;
        assert!(
            on_node
                .as_array()
                .is_some_and(|l| l.contains(&json!("genre"))),
            "{on_node}"
        );
    }
    let (status, page) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"filter": "genre = drama"})),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["hits"], json!([{"id": 1, "genre": "drama"}]));
}

#[tokio::test]
async fn a_deletion_a_down_node_missed_is_replayed_when_it_is_back() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": "films"}))).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    c.nodes[2].stop().await;

    let task = task_through(&base, "DELETE", "/indexes/films", None).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["miroir"]["pendingReplays"], json!(["n2"]), "{task}");
    for node in [&c.nodes[0], &c.nodes[1]] {
        assert_eq!(index_status(&node.url(), "films").await, 404);
    }

    c.nodes[2].restart().await.expect("restart");
    let back = &c.nodes[2];
    let replayed = eventually(Duration::from_secs(5), || async move {
        index_status(&back.url(), "films").await == 404
    })
    .await;
    assert!(replayed, "the missed deletion was not replayed on n2");
    let port = c.metrics_port;
    let counted = eventually(Duration::from_secs(2), || async move {
        let metrics = metrics_text(port).await;
        sample(
            &metrics,
            "miroir_hints_total{node=\"n2\",outcome=\"replayed\"}",
        ) == Some(1.0)
    })
    .await;
    assert!(counted, "{}", metrics_text(port).await);
}

#[tokio::test]
async fn an_update_and_a_swap_a_down_node_missed_are_replayed_in_order_when_it_is_back() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    for uid in ["films", "films_new"] {
        let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": uid}))).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    c.nodes[1].stop().await;
    let task = task_through(
        &base,
        "PATCH",
        "/indexes/films",
        Some(json!({"primaryKey": "code"})),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let task = task_through(
        &base,
        "POST",
        "/swap-indexes",
        Some(json!([{"indexes": ["films", "films_new"]}])),
    )
    .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["miroir"]["pendingReplays"], json!(["n1"]), "{task}");
    let primary_key = |url: String, uid: &'static str| async move {
        call(&url, "GET", &format!("/indexes/{uid}"), None).await.1["primaryKey"].clone()
    };
    // On the nodes that were up, the primary key moved with the swap.
    assert_eq!(primary_key(c.nodes[0].url(), "films_new").await, "code");
    assert_eq!(primary_key(c.nodes[0].url(), "films").await, Value::Null);

    c.nodes[1].restart().await.expect("restart");
    let back = c.nodes[1].url();
    let replayed = eventually(Duration::from_secs(5), || {
        let back = back.clone();
        async move {
            primary_key(back.clone(), "films_new").await == "code"
                && primary_key(back, "films").await == Value::Null
        }
    })
    .await;
    assert!(replayed, "n1 did not get the update, then the swap");
}

#[tokio::test]
async fn an_experimental_feature_changed_through_miroir_is_on_on_every_node() {
    let c = cluster(3, "").await;
    let (status, body) = call(
        &c.miroir.url(),
        "PATCH",
        "/experimental-features",
        Some(json!({"containsFilter": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["containsFilter"], true, "{body}");
    for node in &c.nodes {
        let (status, features) = call(&node.url(), "GET", "/experimental-features", None).await;
        assert_eq!(status, 200);
        assert_eq!(features["containsFilter"], true, "{features}");
    }
}

#[tokio::test]
async fn network_and_chat_routes_answer_a_meilisearch_error_saying_miroir_does_not_serve_them() {
    let c = cluster(2, "").await;
    let base = c.miroir.url();
    for (method, path, template) in [
        ("GET", "/chats", "/chats"),
        (
            "GET",
            "/chats/support/settings",
            "/chats/{workspace}/settings",
        ),
        (
            "POST",
            "/chats/support/chat/completions",
            "/chats/{workspace}/chat/completions",
        ),
        ("GET", "/network", "/network"),
        ("PATCH", "/network", "/network"),
        ("POST", "/network/control", "/network/control"),
    ] {
        let body = (method != "GET").then(|| json!({}));
        let (status, err) = call(&base, method, path, body).await;
        assert_eq!(status, 501, "{path}: {err}");
        assert_eq!(err["code"], "miroir_unsupported_route", "{path}: {err}");
        assert_eq!(err["type"], "invalid_request");
        assert!(err["link"].as_str().unwrap_or("").starts_with("https://"));
        let message = err["message"].as_str().unwrap_or("");
        assert!(
            message.contains("not supported by Miroir") && message.contains(template),
            "{path}: {message}"
        );
    }
    // A node's own `/network` answer must not leak through.
    let (_, err) = call(&base, "GET", "/network", None).await;
    for node in &c.nodes {
        let (_, direct) = call(&node.url(), "GET", "/network", None).await;
        assert_ne!(direct, err, "a node's own answer leaked through");
    }
}

#[tokio::test]
async fn dumps_and_snapshots_over_three_real_nodes_are_one_task_that_succeeds() {
    let _bin = require_meili_bin!();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(NodeKind::Real, KEY).await);
    }
    let miroir = real_miroir(&nodes).await;
    let base = miroir.url();
    let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": "movies"}))).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    for (path, kind) in [
        ("/dumps", "dumpCreation"),
        ("/snapshots", "snapshotCreation"),
    ] {
        let (status, summary) = call(&base, "POST", path, None).await;
        assert_eq!(status, 202, "{path}: {summary}");
        assert_eq!(summary["type"], kind, "{summary}");
        let uid = summary["taskUid"].as_u64().expect("taskUid");
        let task = wait_task(&base, KEY, uid).await;
        assert_eq!(task["status"], "succeeded", "{path}: {task}");
        assert_eq!(task["uid"], uid);
        println!("{path} through Miroir over 3 real nodes: {task}");
        // One Miroir task: the list shows it once.
        let (_, page) = call(&base, "GET", &format!("/tasks?types={kind}"), None).await;
        assert_eq!(page["total"], 1, "{page}");
    }
}

/// Miroir in front of real nodes `n0`, `n1`, ...
async fn real_miroir(nodes: &[TestNode]) -> MiroirProcess {
    let (port, metrics_port) = (free_port(), free_port());
    let mut toml = format!(
        "shards = 8\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n[server]\nport = {port}\n\n\
         [metrics]\nport = {metrics_port}\n\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    MiroirProcess::start(miroir_bin(), &toml, port).await
}

#[tokio::test]
async fn real_nodes_a_creation_with_a_node_down_reaches_it_when_it_is_back() {
    let _bin = require_meili_bin!();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(NodeKind::Real, KEY).await);
    }
    let miroir = real_miroir(&nodes).await;
    let base = miroir.url();
    nodes[1].stop().await;
    let task = task_through(&base, "POST", "/indexes", Some(json!({"uid": "movies"}))).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    for node in [&nodes[0], &nodes[2]] {
        assert_eq!(index_status(&node.url(), "movies").await, 200);
    }
    nodes[1].restart().await;
    let back = &nodes[1];
    let replayed = eventually(Duration::from_secs(30), || async move {
        index_status(&back.url(), "movies").await == 200
    })
    .await;
    assert!(replayed, "n1 never got the creation it missed");
    println!("real nodes: a creation a down node missed reached it once back");
}
