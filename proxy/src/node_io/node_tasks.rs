//! One node's own tasks, read with Miroir's node key: what became of one, and waiting until
//! a node has processed everything up to one.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{Cluster, Runtime};
use crate::upstream::{NodePeer, NodeRequest};

/// What became of a node task.
pub enum TaskState {
    Succeeded,
    /// Failed or canceled, with the error's code.
    Failed(Option<String>),
    Pending,
    /// The node did not answer.
    Unknown,
}

pub async fn task_state(cluster: &Cluster, rt: &Runtime, node: &NodePeer, uid: u64) -> TaskState {
    let path = format!("/tasks/{uid}");
    let timeout = rt.config.scatter.node_timeout;
    let Ok(resp) = cluster
        .client
        .send(node, &NodeRequest::get(&path, rt.node_key()), timeout)
        .await
    else {
        return TaskState::Unknown;
    };
    let task = match resp.status {
        200 => resp.json().unwrap_or(Value::Null),
        // The node lost its task (restarted without it): nothing left to wait for.
        404 => return TaskState::Failed(Some("task_not_found".into())),
        _ => return TaskState::Unknown,
    };
    match task["status"].as_str() {
        Some("succeeded") => TaskState::Succeeded,
        Some("failed") | Some("canceled") => {
            TaskState::Failed(task["error"]["code"].as_str().map(str::to_owned))
        }
        _ => TaskState::Pending,
    }
}

/// Waits, at most `wait`, until the node finished its task `uid`, and so everything before
/// it; `false` when it did not, stopped answering, or no longer has the task (its data was
/// lost: what came before is not known to be there).
pub async fn wait_processed(
    cluster: &Cluster,
    rt: &Runtime,
    node: &NodePeer,
    uid: u64,
    wait: Duration,
) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match task_state(cluster, rt, node, uid).await {
            TaskState::Failed(Some(code)) if code == "task_not_found" => return false,
            TaskState::Succeeded | TaskState::Failed(_) => return true,
            TaskState::Pending => tokio::time::sleep(Duration::from_millis(25)).await,
            TaskState::Unknown => return false,
        }
    }
    false
}
