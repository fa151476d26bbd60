//! The embedded backend: one redb file, written by one process.

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde_json::Value;
use time::OffsetDateTime;

use super::indexer::{rebuild_indexes, Indexer};
use super::reader::Reader;
use super::tables::{
    allocate_uid, decode, encode, IDEMPOTENCY, INDEX_VERSION, INDEX_VERSION_NOW, META, NEXT_UID,
    TASKS,
};
use super::{audit, backend, prune, Created, Page, Pruned, StoreError, TaskStore};
use crate::query::TaskQuery;
use crate::record::{Idempotency, NewTask, TaskRecord, TaskUid};

pub struct EmbeddedStore {
    db: Database,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file; every committed write survives a crash. Builds the
    /// indexes when the file has none yet (a store from an older version).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(TASKS).map_err(backend)?;
            txn.open_table(IDEMPOTENCY).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let version = meta.get(INDEX_VERSION).map_err(backend)?.map(|v| v.value());
            if version != Some(INDEX_VERSION_NOW) {
                rebuild_indexes(&txn)?;
                meta.insert(INDEX_VERSION, INDEX_VERSION_NOW)
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)?;
        Ok(Self { db })
    }

    /// Stores `records` as they are (their uids kept), many per commit, and moves the uid
    /// sequence past them: fills a registry for benchmarks and tests without one commit per
    /// task. A record with the uid of a stored one replaces it.
    pub fn import(&self, records: impl IntoIterator<Item = TaskRecord>) -> Result<(), StoreError> {
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let txn = self.db.begin_write().map_err(backend)?;
            {
                let mut tasks = txn.open_table(TASKS).map_err(backend)?;
                let mut meta = txn.open_table(META).map_err(backend)?;
                let mut ix = Indexer::open(&txn)?;
                let mut next = meta
                    .get(NEXT_UID)
                    .map_err(backend)?
                    .map_or(0, |v| v.value());
                for record in records.by_ref().take(50_000) {
                    let uid = record.uid.0;
                    tasks
                        .insert(uid, encode(&record)?.as_slice())
                        .map_err(backend)?;
                    ix.remove(uid)?;
                    ix.add(&record)?;
                    next = next.max(uid + 1);
                }
                ix.flush()?;
                meta.insert(NEXT_UID, next).map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
        }
        Ok(())
    }

    /// Checks every index against the records (tests): the facts, cell lists, cancelers,
    /// counts and block summaries a rebuild would write, spans no narrower than the tasks.
    #[doc(hidden)]
    pub fn audit(&self) -> Result<(), String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        audit::audit(&txn).map_err(|e| format!("audit: {e}"))
    }
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
            let uid = allocate_uid(&mut meta)?;
            let record = task.with_uid(uid);
            tasks
                .insert(uid.0, encode(&record)?.as_slice())
                .map_err(backend)?;
            let mut ix = Indexer::open(&txn)?;
            ix.add(&record)?;
            ix.flush()?;
            if let Some(idem) = idempotency {
                let value = format!("{}\0{}", idem.request_digest, uid.0);
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
        let mut replace = |r: &mut TaskRecord| *r = record.clone();
        self.modify(record.uid, &mut replace).map(|_| ())
    }

    fn modify(
        &self,
        uid: TaskUid,
        change: &mut dyn FnMut(&mut TaskRecord),
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut tasks = txn.open_table(TASKS).map_err(backend)?;
            let stored = tasks
                .get(uid.0)
                .map_err(backend)?
                .map(|v| decode(uid.0, v.value()))
                .transpose()?;
            let Some(mut record) = stored else {
                return Ok(false);
            };
            change(&mut record);
            record.uid = uid;
            tasks
                .insert(uid.0, encode(&record)?.as_slice())
                .map_err(backend)?;
            let mut ix = Indexer::open(&txn)?;
            ix.reindex(&record)?;
            ix.flush()?;
        }
        txn.commit().map_err(backend)?;
        Ok(true)
    }

    fn settle(&self, views: Vec<(TaskUid, Value)>) -> Result<Vec<TaskUid>, StoreError> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let mut settled = Vec::with_capacity(views.len());
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut tasks = txn.open_table(TASKS).map_err(backend)?;
            let mut ix = Indexer::open(&txn)?;
            for (uid, view) in views {
                let stored = tasks
                    .get(uid.0)
                    .map_err(backend)?
                    .map(|v| decode(uid.0, v.value()))
                    .transpose()?;
                let Some(mut record) = stored.filter(|r| r.terminal.is_none()) else {
                    continue;
                };
                record.terminal = Some(view);
                tasks
                    .insert(uid.0, encode(&record)?.as_slice())
                    .map_err(backend)?;
                ix.reindex(&record)?;
                settled.push(uid);
            }
            ix.flush()?;
        }
        txn.commit().map_err(backend)?;
        Ok(settled)
    }

    fn unsettled(&self, q: &TaskQuery, max: usize) -> Result<Vec<TaskRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        Reader::open(&txn)?.unsettled(q, max)
    }

    fn list(&self, q: &TaskQuery, pending: &BTreeSet<u64>) -> Result<Page, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        Reader::open(&txn)?.page(q, pending)
    }

    fn delete(&self, uids: &[TaskUid]) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let mut removed = 0;
        {
            let mut tasks = txn.open_table(TASKS).map_err(backend)?;
            let mut ix = Indexer::open(&txn)?;
            for uid in uids {
                if tasks.remove(uid.0).map_err(backend)?.is_some() {
                    removed += 1;
                }
                ix.remove(uid.0)?;
            }
            ix.flush()?;
        }
        txn.commit().map_err(backend)?;
        Ok(removed)
    }

    fn count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let tasks = txn.open_table(TASKS).map_err(backend)?;
        tasks.len().map_err(backend)
    }

    fn prune(&self, limit: u64, batch: usize, now: OffsetDateTime) -> Result<Pruned, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let pruned = prune::prune(&txn, limit, batch, now)?;
        if matches!(pruned, Pruned::Deleted(_)) {
            txn.commit().map_err(backend)?;
        }
        Ok(pruned)
    }
}
