//! Shared setup for the simulator's HTTP tests.
#![allow(dead_code)]

use std::time::Duration;

use meili_sim::{SimConfig, SimNode};
use miroir_testkit::Client;
use serde_json::Value;

pub const MASTER_KEY: &str = "masterKey-0123456789";

pub async fn start() -> (SimNode, Client) {
    start_with(SimConfig {
        master_key: Some(MASTER_KEY.into()),
        ..SimConfig::default()
    })
    .await
}

pub async fn start_with(cfg: SimConfig) -> (SimNode, Client) {
    let key = cfg.master_key.clone();
    let node = SimNode::start(cfg).await.expect("start sim node");
    let client = Client::new(&node.url(), key.as_deref());
    (node, client)
}

pub fn task_uid(summary: &Value) -> u64 {
    summary["taskUid"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a task summary: {summary}"))
}

/// Sends a write and waits for its task; returns the finished task.
pub async fn run(client: &Client, (status, body): (u16, Value)) -> Value {
    assert_eq!(
        status, 202,
        "expected an enqueued task, got {status} {body}"
    );
    client.wait_task(task_uid(&body)).await
}

pub async fn succeeded(client: &Client, resp: (u16, Value)) -> Value {
    let task = run(client, resp).await;
    assert_eq!(task["status"], "succeeded", "task failed: {task}");
    task
}

pub const SHORT: Duration = Duration::from_millis(300);
