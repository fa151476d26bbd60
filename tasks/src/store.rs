//! The task store: a trait the proxy codes against, and the embedded backend (a crash-safe
//! redb file under Miroir's data directory, one process). A Redis backend for several Miroir
//! processes implements the same trait.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::record::{Idempotency, NewTask, TaskRecord, TaskUid};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task store I/O: {0}")]
    Backend(String),
    #[error("task store holds a corrupt record for task {0}: {1}")]
    Corrupt(u64, String),
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// What creating a task did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(TaskRecord),
    /// The idempotency key was seen with the same request: the original task.
    Replayed(TaskRecord),
    /// The idempotency key was seen with a different request.
    KeyReused {
        original: TaskUid,
    },
}

/// Which tasks a listing returns; `uid`s descend unless `reverse`.
pub struct ListQuery<'a> {
    /// Start at this uid (inclusive), in the listing's direction.
    pub from: Option<u64>,
    pub limit: usize,
    pub reverse: bool,
    pub filter: &'a dyn Fn(&TaskRecord) -> bool,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub results: Vec<TaskRecord>,
    /// How many tasks match the filter in all.
    pub total: usize,
    /// The uid the next page starts at.
    pub next: Option<u64>,
}

pub trait TaskStore: Send + Sync {
    /// Allocates the next uid and stores the task in one durable step, so uids never repeat,
    /// across restarts too. With an idempotency key already seen, stores nothing and says
    /// what the key refers to.
    fn create(
        &self,
        task: NewTask,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError>;
    fn get(&self, uid: TaskUid) -> Result<Option<TaskRecord>, StoreError>;
    /// What an idempotency key was first used for: the request digest and its task.
    fn idempotency(&self, key: &str) -> Result<Option<(String, TaskUid)>, StoreError>;
    /// Replaces a stored record (same uid).
    fn update(&self, record: &TaskRecord) -> Result<(), StoreError>;
    fn list(&self, query: &ListQuery<'_>) -> Result<Page, StoreError>;
    /// Deletes tasks; returns how many existed.
    fn delete(&self, uids: &[TaskUid]) -> Result<usize, StoreError>;
}

const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Idempotency key -> (digest, task uid) as `digest\0uid`.
const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("idempotency");
const NEXT_UID: &str = "next_uid";

pub struct EmbeddedStore {
    db: Database,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file; every committed write survives a crash.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(TASKS).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
            txn.open_table(IDEMPOTENCY).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(Self { db })
    }

    /// Stores `records` as they are (their uids kept), many per commit, and moves the uid
    /// sequence past them: fills a registry for benchmarks and tests without one commit per
    /// task.
    pub fn import(&self, records: impl IntoIterator<Item = TaskRecord>) -> Result<(), StoreError> {
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let txn = self.db.begin_write().map_err(backend)?;
            {
                let mut tasks = txn.open_table(TASKS).map_err(backend)?;
                let mut meta = txn.open_table(META).map_err(backend)?;
                let mut next = meta
                    .get(NEXT_UID)
                    .map_err(backend)?
                    .map_or(0, |v| v.value());
                for record in records.by_ref().take(50_000) {
                    tasks
                        .insert(record.uid.0, encode(&record)?.as_slice())
                        .map_err(backend)?;
                    next = next.max(record.uid.0 + 1);
                }
                meta.insert(NEXT_UID, next).map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
        }
        Ok(())
    }
}

fn decode(uid: u64, bytes: &[u8]) -> Result<TaskRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(uid, e.to_string()))
}

fn encode(record: &TaskRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(backend)
}

impl TaskStore for EmbeddedStore {
    fn create(
        &self,
        task: NewTask,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let created = {
            let mut tasks = txn.open_table(TASKS).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut keys = txn.open_table(IDEMPOTENCY).map_err(backend)?;
            let seen = match idempotency {
                Some(idem) => keys
                    .get(idem.key.as_str())
                    .map_err(backend)?
                    .map(|v| v.value().to_owned()),
                None => None,
            };
            if let (Some(seen), Some(idem)) = (seen, idempotency) {
                let (digest, uid) = seen.split_once('\0').unwrap_or(("", "0"));
                let uid: u64 = uid.parse().unwrap_or(0);
                if digest != idem.request_digest {
                    return Ok(Created::KeyReused {
                        original: TaskUid(uid),
                    });
                }
                let bytes = tasks.get(uid).map_err(backend)?;
                return match bytes {
                    Some(b) => Ok(Created::Replayed(decode(uid, b.value())?)),
                    // The original task was deleted since: the key refers to nothing now.
                    None => Ok(Created::KeyReused {
                        original: TaskUid(uid),
                    }),
                };
            }
            let uid = meta
                .get(NEXT_UID)
                .map_err(backend)?
                .map_or(0, |v| v.value());
            meta.insert(NEXT_UID, uid + 1).map_err(backend)?;
            let record = task.with_uid(TaskUid(uid));
            tasks
                .insert(uid, encode(&record)?.as_slice())
                .map_err(backend)?;
            if let Some(idem) = idempotency {
                let value = format!("{}\0{uid}", idem.request_digest);
                keys.insert(idem.key.as_str(), value.as_str())
                    .map_err(backend)?;
            }
            Created::New(record)
        };
        txn.commit().map_err(backend)?;
        Ok(created)
    }

    fn get(&self, uid: TaskUid) -> Result<Option<TaskRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let tasks = txn.open_table(TASKS).map_err(backend)?;
        let value = tasks.get(uid.0).map_err(backend)?;
        value.map(|v| decode(uid.0, v.value())).transpose()
    }

    fn idempotency(&self, key: &str) -> Result<Option<(String, TaskUid)>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let keys = txn.open_table(IDEMPOTENCY).map_err(backend)?;
        let value = keys.get(key).map_err(backend)?;
        Ok(value.and_then(|v| {
            let (digest, uid) = v.value().split_once('\0')?;
            Some((digest.to_owned(), TaskUid(uid.parse().ok()?)))
        }))
    }

    fn update(&self, record: &TaskRecord) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut tasks = txn.open_table(TASKS).map_err(backend)?;
            tasks
                .insert(record.uid.0, encode(record)?.as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn list(&self, query: &ListQuery<'_>) -> Result<Page, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let tasks = txn.open_table(TASKS).map_err(backend)?;
        let range = match (query.reverse, query.from) {
            (false, Some(from)) => tasks.range(..=from),
            (false, None) => tasks.range::<u64>(..),
            (true, Some(from)) => tasks.range(from..),
            (true, None) => tasks.range::<u64>(..),
        }
        .map_err(backend)?;
        let mut results = Vec::new();
        let mut next = None;
        let mut push = |entry: Result<
            (redb::AccessGuard<u64>, redb::AccessGuard<&[u8]>),
            redb::StorageError,
        >| {
            let (k, v) = entry.map_err(backend)?;
            let record = decode(k.value(), v.value())?;
            if (query.filter)(&record) {
                if results.len() < query.limit {
                    results.push(record);
                } else if next.is_none() {
                    next = Some(record.uid.0);
                }
            }
            Ok::<bool, StoreError>(next.is_some())
        };
        if query.reverse {
            for entry in range {
                if push(entry)? {
                    break;
                }
            }
        } else {
            for entry in range.rev() {
                if push(entry)? {
                    break;
                }
            }
        }
        // The total counts every match, whatever the page.
        let mut total = 0;
        for entry in tasks.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            if (query.filter)(&decode(k.value(), v.value())?) {
                total += 1;
            }
        }
        Ok(Page {
            results,
            total,
            next,
        })
    }

    fn delete(&self, uids: &[TaskUid]) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let mut removed = 0;
        {
            let mut tasks = txn.open_table(TASKS).map_err(backend)?;
            for uid in uids {
                if tasks.remove(uid.0).map_err(backend)?.is_some() {
                    removed += 1;
                }
            }
        }
        txn.commit().map_err(backend)?;
        Ok(removed)
    }
}
