//! The task model: what a write enqueues, the operation it will run, and the JSON views
//! (`SummarizedTaskView` for the 202, `TaskView` for `/tasks`, one batch per task for
//! `/batches`). Query parsing and matching for `/tasks` lives in `task_query.rs`.

use meili_sim_engine::{Document, MeiliError};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::clock::{iso_duration, rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub const ALL: [&'static str; 5] =
        ["enqueued", "processing", "succeeded", "failed", "canceled"];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enqueued => "enqueued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Canceled)
    }
}

/// Every task type Meilisearch 1.50 knows (for `types=` validation).
pub const TYPES: &[&str] = &[
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexSwap",
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "export",
    "upgradeDatabase",
    "indexCompaction",
    "networkTopologyChange",
    "dsrUpdate",
    "dsrClear",
];

/// What processing a task does. Payloads are dropped once the task has run.
#[derive(Debug, Clone)]
pub enum Op {
    AddDocuments {
        docs: Vec<Document>,
        primary_key: Option<String>,
        merge: bool,
        /// `skipCreation`: documents that do not exist yet are ignored.
        skip_creation: bool,
        /// Without it (a key lacking `indexes.create`), a missing index fails the task.
        allow_index_creation: bool,
    },
    DeleteIds(Vec<String>),
    DeleteFilter(Value),
    Clear,
    Settings {
        patch: Map<String, Value>,
        allow_index_creation: bool,
    },
    CreateIndex {
        primary_key: Option<String>,
    },
    UpdateIndex {
        primary_key: Option<String>,
        new_uid: Option<String>,
    },
    DeleteIndex,
    /// Compaction: the data is in memory, so nothing shrinks; the task reports the sizes.
    Compact,
    /// `(a, b, rename)` pairs.
    Swap(Vec<(String, String, bool)>),
    Cancel {
        matched: Vec<u32>,
    },
    Delete {
        matched: Vec<u32>,
    },
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::AddDocuments { .. } => "documentAdditionOrUpdate",
            Op::DeleteIds(_) | Op::DeleteFilter(_) | Op::Clear => "documentDeletion",
            Op::Settings { .. } => "settingsUpdate",
            Op::CreateIndex { .. } => "indexCreation",
            Op::UpdateIndex { .. } => "indexUpdate",
            Op::DeleteIndex => "indexDeletion",
            Op::Compact => "indexCompaction",
            Op::Swap(_) => "indexSwap",
            Op::Cancel { .. } => "taskCancelation",
            Op::Delete { .. } => "taskDeletion",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub uid: u32,
    pub batch_uid: Option<u32>,
    pub index_uid: Option<String>,
    pub status: Status,
    pub kind: &'static str,
    pub op: Option<Op>,
    /// `DetailsView` as JSON, updated when the task finishes.
    pub details: Option<Map<String, Value>>,
    pub error: Option<MeiliError>,
    pub canceled_by: Option<u32>,
    pub enqueued_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub custom_metadata: Option<String>,
}

impl Task {
    pub fn new(
        uid: u32,
        index_uid: Option<String>,
        op: Op,
        details: Option<Map<String, Value>>,
        enqueued_at: OffsetDateTime,
        custom_metadata: Option<String>,
    ) -> Self {
        Self {
            uid,
            batch_uid: None,
            index_uid,
            status: Status::Enqueued,
            kind: op.kind(),
            op: Some(op),
            details,
            error: None,
            canceled_by: None,
            enqueued_at,
            started_at: None,
            finished_at: None,
            custom_metadata,
        }
    }

    /// The 202 body of the route that enqueued the task.
    pub fn summary(&self) -> Value {
        let mut v = json!({
            "taskUid": self.uid,
            "indexUid": self.index_uid,
            "status": self.status.as_str(),
            "type": self.kind,
            "enqueuedAt": rfc3339(self.enqueued_at),
        });
        if let Some(meta) = &self.custom_metadata {
            v["customMetadata"] = json!(meta);
        }
        v
    }

    pub fn view(&self) -> Value {
        let duration = match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => json!(iso_duration(f - s)),
            _ => Value::Null,
        };
        let mut v = Map::new();
        v.insert("uid".into(), json!(self.uid));
        v.insert("batchUid".into(), json!(self.batch_uid));
        v.insert("indexUid".into(), json!(self.index_uid));
        v.insert("status".into(), json!(self.status.as_str()));
        v.insert("type".into(), json!(self.kind));
        v.insert("canceledBy".into(), json!(self.canceled_by));
        if let Some(details) = &self.details {
            v.insert("details".into(), Value::Object(details.clone()));
        }
        v.insert(
            "error".into(),
            self.error.as_ref().map_or(Value::Null, MeiliError::to_json),
        );
        v.insert("duration".into(), duration);
        v.insert("enqueuedAt".into(), json!(rfc3339(self.enqueued_at)));
        v.insert("startedAt".into(), json!(self.started_at.map(rfc3339)));
        v.insert("finishedAt".into(), json!(self.finished_at.map(rfc3339)));
        if let Some(meta) = &self.custom_metadata {
            v.insert("customMetadata".into(), json!(meta));
        }
        Value::Object(v)
    }

    /// Meilisearch's batch view; the simulator runs every task in its own batch.
    pub fn batch_view(&self) -> Option<Value> {
        let uid = self.batch_uid?;
        let duration = match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => json!(iso_duration(f - s)),
            _ => Value::Null,
        };
        let mut index_uids = Map::new();
        if let Some(index) = &self.index_uid {
            index_uids.insert(index.clone(), json!(1));
        }
        Some(json!({
            "uid": uid,
            "progress": null,
            "details": self.details.clone().unwrap_or_default(),
            "stats": {
                "totalNbTasks": 1,
                "status": { self.status.as_str(): 1 },
                "types": { self.kind: 1 },
                "indexUids": index_uids,
                // A node times each step of the batch; the simulator has one step.
                "progressTrace": match (self.started_at, self.finished_at) {
                    (Some(s), Some(f)) => json!({
                        "processing tasks": format!("{:.2?}", std::time::Duration::try_from(f - s).unwrap_or_default()),
                    }),
                    _ => json!({}),
                },
            },
            "duration": duration,
            "startedAt": self.started_at.map(rfc3339),
            "finishedAt": self.finished_at.map(rfc3339),
            "batchStrategy": format!(
                "created batch containing only task with id {} of type `{}` that cannot be batched with any other task.",
                self.uid, self.kind
            ),
        }))
    }

    /// Details of a task that did not complete: counters that were pending become 0.
    pub fn zero_pending_details(&mut self) {
        if let Some(details) = &mut self.details {
            for key in [
                "indexedDocuments",
                "deletedDocuments",
                "canceledTasks",
                "deletedTasks",
            ] {
                if details.get(key).is_some_and(Value::is_null) {
                    details.insert(key.into(), json!(0));
                }
            }
        }
    }
}

/// Builds a details object from `(key, value)` pairs, in Meilisearch's field order.
pub fn details(pairs: &[(&str, Value)]) -> Option<Map<String, Value>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}
