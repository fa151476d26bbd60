//! A node's state: indexes, the task queue, keys and experimental features, behind one mutex
//! (critical sections are short and never await), plus the worker's wake-up and run switch.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use meili_sim_engine::{IndexData, MeiliError};
use serde_json::{json, Map, Value};
use tokio::sync::{watch, Notify};

use crate::clock::{now, rfc3339};
use crate::error::index_not_found;
use crate::faults::Faults;
use crate::keys::KeyStore;
use crate::settings;
use crate::tasks::{Op, Task};

/// One index: the engine's data plus the settings exactly as GET returns them.
#[derive(Debug, Clone)]
pub struct Index {
    pub data: IndexData,
    pub settings: Map<String, Value>,
}

impl Index {
    pub fn new(uid: &str, primary_key: Option<String>) -> Self {
        let mut index = Self {
            data: IndexData::new(uid, primary_key, &rfc3339(now())),
            settings: Map::new(),
        };
        index.set_settings(settings::default_view());
        index
    }

    pub fn set_settings(&mut self, view: Map<String, Value>) {
        self.data.settings = settings::to_engine(&view);
        self.settings = view;
    }

    pub fn touch(&mut self) {
        self.data.updated_at = rfc3339(now());
    }

    pub fn view(&self) -> Value {
        json!({
            "uid": self.data.uid,
            "createdAt": self.data.created_at,
            "updatedAt": self.data.updated_at,
            "primaryKey": self.data.primary_key,
        })
    }
}

/// Experimental features Meilisearch 1.50 can toggle at runtime, all off by default.
pub const FEATURES: &[&str] = &[
    "metrics",
    "logsRoute",
    "editDocumentsByFunction",
    "containsFilter",
    "dynamicSearchRules",
    "network",
    "getTaskDocumentsRoute",
    "taskQueueCompactionRoute",
    "compositeEmbedders",
    "chatCompletions",
    "multimodal",
    "foreignKeys",
    "disableDocumentsFetchQueue",
    "legacySearch",
    "renderRoute",
];

#[derive(Debug)]
pub struct Db {
    pub indexes: BTreeMap<String, Index>,
    pub tasks: BTreeMap<u32, Task>,
    next_task_uid: u32,
    next_batch_uid: u32,
    pub keys: KeyStore,
    pub features: Map<String, Value>,
}

impl Db {
    pub fn new(master_key: Option<String>, seed: u64) -> Self {
        let features = FEATURES
            .iter()
            .map(|f| ((*f).to_owned(), json!(false)))
            .collect();
        Self {
            indexes: BTreeMap::new(),
            tasks: BTreeMap::new(),
            next_task_uid: 0,
            next_batch_uid: 0,
            keys: KeyStore::new(master_key, seed),
            features,
        }
    }

    pub fn index(&self, uid: &str) -> Result<&Index, MeiliError> {
        self.indexes.get(uid).ok_or_else(|| index_not_found(uid))
    }

    pub fn feature(&self, name: &str) -> bool {
        self.features
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Registers a task; returns its 202 summary.
    pub fn enqueue(
        &mut self,
        index_uid: Option<&str>,
        op: Op,
        details: Option<Map<String, Value>>,
        custom_metadata: Option<String>,
    ) -> Value {
        let uid = self.next_task_uid;
        self.next_task_uid += 1;
        let task = Task::new(
            uid,
            index_uid.map(str::to_owned),
            op,
            details,
            now(),
            custom_metadata,
        );
        let summary = task.summary();
        self.tasks.insert(uid, task);
        summary
    }

    /// The next task to run, in Meilisearch's priority: cancelations, then deletions, then
    /// everything else in enqueue order. Marks it processing in its own batch.
    pub fn start_next_task(&mut self) -> Option<u32> {
        let enqueued = || {
            self.tasks
                .values()
                .filter(|t| t.status == crate::tasks::Status::Enqueued)
        };
        let uid = enqueued()
            .find(|t| t.kind == "taskCancelation")
            .or_else(|| enqueued().find(|t| t.kind == "taskDeletion"))
            .or_else(|| enqueued().next())
            .map(|t| t.uid)?;
        let batch = self.next_batch_uid;
        self.next_batch_uid += 1;
        let task = self.tasks.get_mut(&uid)?;
        task.status = crate::tasks::Status::Processing;
        task.batch_uid = Some(batch);
        task.started_at = Some(now());
        Some(uid)
    }
}

/// Everything the HTTP handlers and the worker share.
#[derive(Debug)]
pub struct Shared {
    pub name: String,
    pub task_delay: Duration,
    db: Mutex<Db>,
    pub wake: Notify,
    pub faults: Faults,
    /// `false` while the node is stopped: the worker pauses like a stopped process would.
    pub running: watch::Sender<bool>,
}

impl Shared {
    pub fn new(name: String, master_key: Option<String>, seed: u64, task_delay: Duration) -> Self {
        Self {
            name,
            task_delay,
            db: Mutex::new(Db::new(master_key, seed)),
            wake: Notify::new(),
            faults: Faults::new(seed),
            running: watch::Sender::new(true),
        }
    }

    /// A poisoned lock only means a handler panicked mid-request; the data is still usable.
    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues and wakes the worker.
    pub fn enqueue(
        &self,
        index_uid: Option<&str>,
        op: Op,
        details: Option<Map<String, Value>>,
        custom_metadata: Option<String>,
    ) -> Value {
        let summary = self.db().enqueue(index_uid, op, details, custom_metadata);
        self.wake.notify_one();
        summary
    }
}
