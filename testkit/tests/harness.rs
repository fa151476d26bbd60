//! The harness itself: simulated nodes through the common interface, and the real-node path
//! (skipped with a printed reason when `MEILI_BIN` is unset).

use miroir_testkit::{require_meili_bin, start_node, wait_task, NodeKind};
use serde_json::json;

#[tokio::test]
async fn sim_node_round_trip_with_stop_and_restart() {
    let node = start_node(NodeKind::Sim, "harness-master-key").await;
    assert_eq!(node.kind(), NodeKind::Sim);
    assert!(node.faults().is_some());
    let c = node.client();
    let (status, summary) = c.post("/indexes/h/documents", json!([{"id": 1}])).await;
    assert_eq!(status, 202);
    let task = wait_task(
        &node.url(),
        node.master_key(),
        summary["taskUid"].as_u64().unwrap(),
    )
    .await;
    assert_eq!(task["status"], "succeeded");
    node.stop().await;
    node.restart().await;
    let fresh = node.client();
    assert_eq!(
        fresh.get("/indexes/h/documents/1").await,
        (200, json!({"id": 1}))
    );
    assert_eq!(fresh.with_key(None).get("/indexes").await.0, 401);
}

#[tokio::test]
async fn real_node_round_trip_with_stop_and_restart() {
    let _bin = require_meili_bin!();
    let node = start_node(NodeKind::Real, "harness-master-key-0123456789").await;
    assert!(node.faults().is_none());
    let c = node.client();
    let (status, summary) = c.post("/indexes/h/documents", json!([{"id": 1}])).await;
    assert_eq!(status, 202);
    node.wait_task(summary["taskUid"].as_u64().unwrap()).await;
    node.stop().await;
    node.restart().await;
    assert_eq!(
        node.client().get("/indexes/h/documents/1").await.0,
        200,
        "data survives a restart"
    );
}
