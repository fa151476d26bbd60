//! The node calls a topology change makes, with Miroir's node key: read JSON, enqueue a
//! write, wait until a node has processed an index's writes.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::cluster::{Cluster, Runtime};
use crate::node_io::{task_state, TaskState};
use crate::upstream::{NodePeer, NodeRequest};

/// How long a change waits for a node to process what it was sent before it tries again.
const PROCESS_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub enum CallError {
    /// No answer (down, timeout, connection broken).
    Unreachable { node: String, why: String },
    /// An answer that is not what the step needs.
    Refused {
        node: String,
        status: u16,
        body: String,
    },
    /// The node processed a write and failed it.
    TaskFailed {
        node: String,
        uid: u64,
        code: Option<String>,
    },
    /// A node task still unprocessed after [`PROCESS_WAIT`].
    Slow { node: String, uid: u64 },
    /// The fleet's writes could not be held (see `Cluster::hold_writes`).
    NotHeld(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { node, why } => write!(f, "node {node} did not answer: {why}"),
            Self::Refused { node, status, body } => {
                write!(f, "node {node} answered {status}: {body}")
            }
            Self::TaskFailed { node, uid, code } => write!(
                f,
                "node {node} failed task {uid} ({})",
                code.as_deref().unwrap_or("no error code")
            ),
            Self::Slow { node, uid } => write!(f, "node {node} has not processed task {uid} yet"),
            Self::NotHeld(why) => write!(f, "writes could not be held: {why}"),
        }
    }
}

pub struct Calls<'a> {
    pub cluster: &'a Cluster,
    pub rt: &'a Runtime,
}

impl Calls<'_> {
    fn timeout(&self) -> Duration {
        // Pages of documents take longer than a search: give them the read timeout too.
        self.rt
            .config
            .scatter
            .node_timeout
            .max(self.rt.config.upstream.read_timeout)
    }

    async fn call(&self, node: &NodePeer, req: NodeRequest<'_>) -> Result<(u16, Bytes), CallError> {
        match self.cluster.client.send(node, &req, self.timeout()).await {
            Ok(resp) => Ok((resp.status, resp.body)),
            Err(e) => Err(CallError::Unreachable {
                node: node.id.to_string(),
                why: e.to_string(),
            }),
        }
    }

    fn refused(node: &NodePeer, status: u16, body: &[u8]) -> CallError {
        CallError::Refused {
            node: node.id.to_string(),
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned(),
        }
    }

    /// A `GET` answered 200 with JSON; `None` for 404.
    pub async fn get(&self, node: &NodePeer, path: &str) -> Result<Option<Value>, CallError> {
        let (status, body) = self
            .call(node, NodeRequest::get(path, self.rt.node_key()))
            .await?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|_| Self::refused(node, status, &body)),
            404 => Ok(None),
            _ => Err(Self::refused(node, status, &body)),
        }
    }

    /// A read with a JSON body (`documents/fetch`), answered 200; `None` for 404.
    pub async fn post_read(
        &self,
        node: &NodePeer,
        path: &str,
        body: &Value,
    ) -> Result<Option<Value>, CallError> {
        let body = [Bytes::from(body.to_string())];
        let (status, answer) = self
            .call(
                node,
                NodeRequest::json("POST", path, self.rt.node_key(), &body),
            )
            .await?;
        match status {
            200 => serde_json::from_slice(&answer)
                .map(Some)
                .map_err(|_| Self::refused(node, status, &answer)),
            404 => Ok(None),
            _ => Err(Self::refused(node, status, &answer)),
        }
    }

    /// A write the node enqueues (202): its task uid. `allowed` lists other statuses the step
    /// accepts (for example 409 for an index that already exists), answered as `None`.
    pub async fn enqueue(
        &self,
        node: &NodePeer,
        (method, path): (&str, &str),
        body: Bytes,
        allowed: &[u16],
    ) -> Result<Option<u64>, CallError> {
        let chunks = [body];
        let (status, answer) = self
            .call(
                node,
                NodeRequest::json(method, path, self.rt.node_key(), &chunks),
            )
            .await?;
        if status == 202 || status == 200 || status == 201 {
            let uid = serde_json::from_slice::<Value>(&answer)
                .ok()
                .and_then(|v| v["taskUid"].as_u64());
            return Ok(uid);
        }
        if allowed.contains(&status) {
            return Ok(None);
        }
        Err(Self::refused(node, status, &answer))
    }

    /// Waits until the node processed task `uid`; its failure is an error.
    pub async fn wait_task(&self, node: &NodePeer, uid: u64) -> Result<(), CallError> {
        let deadline = Instant::now() + PROCESS_WAIT;
        let mut pause = Duration::from_millis(5);
        loop {
            match task_state(self.cluster, self.rt, node, uid).await {
                TaskState::Succeeded => return Ok(()),
                TaskState::Failed(code) => {
                    return Err(CallError::TaskFailed {
                        node: node.id.to_string(),
                        uid,
                        code,
                    })
                }
                TaskState::Unknown => {
                    return Err(CallError::Unreachable {
                        node: node.id.to_string(),
                        why: format!("task {uid} could not be read"),
                    })
                }
                TaskState::Pending if Instant::now() >= deadline => {
                    return Err(CallError::Slow {
                        node: node.id.to_string(),
                        uid,
                    })
                }
                TaskState::Pending => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// Waits until the node has no task enqueued or processing, whatever its index.
    pub async fn wait_idle(&self, node: &NodePeer) -> Result<(), CallError> {
        let path = "/tasks?statuses=enqueued,processing&limit=1";
        let Some(page) = self.get(node, path).await? else {
            return Ok(());
        };
        let Some(uid) = page["results"][0]["uid"].as_u64() else {
            return Ok(());
        };
        // Tasks run in uid order: once the newest pending one is done, all are.
        let newest = self
            .get(node, "/tasks?limit=1")
            .await?
            .and_then(|p| p["results"][0]["uid"].as_u64())
            .unwrap_or(uid);
        match self.wait_task(node, newest).await {
            Err(CallError::TaskFailed { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the node processed every task of `index` enqueued so far (a failed one
    /// included: its index is as the node left it).
    pub async fn wait_index_idle(&self, node: &NodePeer, index: &str) -> Result<(), CallError> {
        let path = format!("/tasks?indexUids={index}&limit=1");
        let Some(page) = self.get(node, &path).await? else {
            return Ok(());
        };
        let Some(uid) = page["results"][0]["uid"].as_u64() else {
            return Ok(());
        };
        match self.wait_task(node, uid).await {
            Err(CallError::TaskFailed { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
