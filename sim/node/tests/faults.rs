//! Stop/restart and fault injection, in-process and over `/_sim/faults`.

mod common;

use std::time::{Duration, Instant};

use common::{run, start, succeeded};
use meili_sim::{ErrorRate, Latency};
use serde_json::json;

#[tokio::test]
async fn stop_refuses_connections_and_restart_keeps_data_and_port() {
    let (node, c) = start().await;
    succeeded(&c, c.post("/indexes/m/documents", json!([{"id": 1}])).await).await;
    let addr = node.addr();
    node.stop().await;
    let refused = reqwest::Client::new()
        .get(format!("{}/health", node.url()))
        .send()
        .await;
    assert!(refused.is_err(), "a stopped node must not answer");
    node.restart().await.expect("restart");
    assert_eq!(node.addr(), addr);
    assert_eq!(c.get("/indexes/m/documents/1").await.1, json!({"id": 1}));
    succeeded(&c, c.post("/indexes/m/documents", json!([{"id": 2}])).await).await;
}

#[tokio::test]
async fn stop_resets_open_connections() {
    let (node, c) = start().await;
    node.faults().set_hang(None);
    let url = format!("{}/version", node.url());
    let pending = tokio::spawn(async move { reqwest::Client::new().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.stop().await;
    let outcome = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("client released")
        .expect("join");
    assert!(
        outcome.is_err(),
        "the hung request ends with a connection error"
    );
    node.faults().clear();
    node.restart().await.expect("restart");
    assert_eq!(c.get("/health").await.0, 200);
}

#[tokio::test]
async fn latency_applies_to_matching_paths_only() {
    let (node, c) = start().await;
    node.faults().set_latency(Latency {
        min: Duration::from_millis(150),
        max: Duration::from_millis(200),
        path_prefix: Some("/indexes".into()),
    });
    let t = Instant::now();
    c.get("/indexes").await;
    let slow = t.elapsed();
    let t = Instant::now();
    c.get("/health").await;
    let fast = t.elapsed();
    assert!(slow >= Duration::from_millis(150), "{slow:?}");
    assert!(fast < Duration::from_millis(100), "{fast:?}");
}

#[tokio::test]
async fn error_rate_answers_meilisearch_shaped_5xx() {
    let (node, c) = start().await;
    node.faults().set_error_rate(ErrorRate {
        rate: 0.5,
        status: 503,
        path_prefix: None,
    });
    let mut failures = 0;
    for _ in 0..40 {
        let (status, body) = c.get("/health").await;
        if status == 503 {
            failures += 1;
            assert_eq!(body["type"], "system");
            assert!(body["code"].is_string() && body["link"].is_string());
        }
    }
    assert!((8..=32).contains(&failures), "{failures}/40 at rate 0.5");
    node.faults().set_error_rate(ErrorRate {
        rate: 1.0,
        status: 500,
        path_prefix: None,
    });
    let (status, body) = c.get("/health").await;
    assert_eq!((status, body["code"].as_str()), (500, Some("internal")));
    node.faults().clear();
    assert_eq!(c.get("/health").await.0, 200);
}

#[tokio::test]
async fn hang_never_answers_until_the_client_gives_up() {
    let (node, _c) = start().await;
    node.faults().set_hang(Some("/indexes".into()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .get(format!("{}/indexes", node.url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        client
            .get(format!("{}/health", node.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn fail_next_task_fails_exactly_one_task() {
    let (node, c) = start().await;
    node.faults()
        .fail_next_task("internal", "Simulated disk failure.");
    let failed = run(&c, c.post("/indexes/m/documents", json!([{"id": 1}])).await).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["message"], "Simulated disk failure.");
    assert_eq!(failed["error"]["code"], "internal");
    assert_eq!(failed["details"]["indexedDocuments"], 0);
    succeeded(&c, c.post("/indexes/m/documents", json!([{"id": 1}])).await).await;
}

#[tokio::test]
async fn faults_are_controllable_over_http() {
    let (_node, c) = start().await;
    let (status, _) = c
        .post(
            "/_sim/faults",
            json!({"failNextTask": {"code": "internal", "message": "boom"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, state) = c.get("/_sim/faults").await;
    assert_eq!(state["failNextTask"]["message"], "boom");
    let failed = run(&c, c.post("/indexes/m/documents", json!([{"id": 1}])).await).await;
    assert_eq!(failed["error"]["message"], "boom");
    c.post("/_sim/faults", json!({"hang": {"pathPrefix": "/stats"}}))
        .await;
    assert!(
        c.get("/_sim/faults").await.1["hang"].is_object(),
        "fault routes are never hung"
    );
    c.delete("/_sim/faults").await;
    assert_eq!(c.get("/stats").await.0, 200);
    let (status, _) = c.post("/_sim/faults", json!({"bogus": 1})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_stopped_node_does_not_finish_tasks_until_restarted() {
    let cfg = meili_sim::SimConfig {
        master_key: Some(common::MASTER_KEY.into()),
        task_delay: Duration::from_millis(200),
        ..meili_sim::SimConfig::default()
    };
    let (node, c) = common::start_with(cfg).await;
    let (status, summary) = c.post("/indexes/m/documents", json!([{"id": 1}])).await;
    assert_eq!(status, 202);
    node.stop().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let restarted_at = time::OffsetDateTime::now_utc();
    node.restart().await.expect("restart");
    let fresh = miroir_testkit::Client::new(&node.url(), Some(common::MASTER_KEY));
    let task = fresh.wait_task(common::task_uid(&summary)).await;
    let finished = time::OffsetDateTime::parse(
        task["finishedAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        finished >= restarted_at,
        "finished at {finished} while stopped (restart {restarted_at})"
    );
}
