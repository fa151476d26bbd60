//! What Miroir remembers about one client-visible task.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Miroir task uid: what clients see as `taskUid`, from a durable monotonic sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskUid(pub u64);

/// The part of one node's work behind a Miroir task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTask {
    pub node: String,
    /// The node's own task uid, when the node accepted the request.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task_uid: Option<u64>,
    /// The node's error, when it refused the request outright (Meilisearch error JSON).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<Value>,
    /// How many of the write's documents or ids this part carried (0: not known, an
    /// index-wide request). With a replica missing (hinted, it has no part), per-copy
    /// counters are scaled by these rather than divided by RF × RG.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub share: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A task as stored: everything needed to answer `GET /tasks/{uid}` after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub uid: TaskUid,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index_uid: Option<String>,
    /// Meilisearch's task type (`documentAdditionOrUpdate`, `settingsUpdate`, ...).
    pub kind: String,
    /// RFC 3339, when Miroir accepted the request.
    pub enqueued_at: String,
    pub node_tasks: Vec<NodeTask>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub custom_metadata: Option<String>,
    /// Details Miroir knows itself (for example `receivedDocuments`), merged over the nodes'.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<Value>,
    /// The final aggregated view, kept once the task reached a terminal status so it no
    /// longer depends on the nodes keeping their tasks.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub terminal: Option<Value>,
    /// Replicas that missed the write: each hint kept for them, replayed later.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub replays: Vec<Replay>,
    /// A task deletion: the unfinished tasks it matched, deleted once they finish; the
    /// deletion is not finished before.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub awaiting: Vec<TaskUid>,
    /// The Miroir cancelation that canceled this task (the nodes name their own).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub canceled_by: Option<TaskUid>,
}

/// A write kept for a replica that missed it (hinted handoff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    pub node: String,
    /// The hint's sequence number in the hint store.
    pub seq: u64,
}

/// A new task before it has a uid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub index_uid: Option<String>,
    pub kind: String,
    pub enqueued_at: String,
    pub node_tasks: Vec<NodeTask>,
    pub custom_metadata: Option<String>,
    pub details: Option<Value>,
}

impl NewTask {
    pub(crate) fn with_uid(self, uid: TaskUid) -> TaskRecord {
        TaskRecord {
            uid,
            index_uid: self.index_uid,
            kind: self.kind,
            enqueued_at: self.enqueued_at,
            node_tasks: self.node_tasks,
            custom_metadata: self.custom_metadata,
            details: self.details,
            terminal: None,
            replays: Vec::new(),
            awaiting: Vec::new(),
            canceled_by: None,
        }
    }
}

/// An `Idempotency-Key` request header, bound to a digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// A digest of method, path, query and body.
    pub request_digest: String,
}
