//! The embedded backend: one redb file, written by one process.

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde_json::Value;
use time::OffsetDateTime;

use super::indexer::Indexer;
use super::ops::{self, parse_idempotency};
use super::reader::Reader;
use super::rows::Rows;
use super::tables::{
    decode, ReadRows, WriteRows, BLOCKS, BY_CANCELER, BY_CELL, CELLS, CELL_INFO, FACTS,
    IDEMPOTENCY, INDEX_VERSION, INDEX_VERSION_NOW, META, TASKS,
};
use super::{audit, backend, prune, Claim, Created, Page, Pruned, StoreError, TaskStore};
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
            let meta = txn.open_table(META).map_err(backend)?;
            let version = meta.get(INDEX_VERSION).map_err(backend)?.map(|v| v.value());
            drop(meta);
            if version != Some(INDEX_VERSION_NOW) {
                rebuild_indexes(&txn)?;
                let mut meta = txn.open_table(META).map_err(backend)?;
                meta.insert(INDEX_VERSION, INDEX_VERSION_NOW)
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)?;
        Ok(Self { db })
    }

    /// Runs `op` in one write transaction, committed when it succeeds.
    fn write<T>(
        &self,
        op: impl FnOnce(&mut WriteRows<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let out = {
            let mut rows = WriteRows::open(&txn)?;
            op(&mut rows)?
        };
        txn.commit().map_err(backend)?;
        Ok(out)
    }

    fn read(&self) -> Result<Reader<ReadRows>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        Reader::open(ReadRows::open(&txn)?)
    }

    /// Stores `records` as they are (their uids kept), many per commit, and moves the uid
    /// sequence past them: fills a registry for benchmarks and tests without one commit per
    /// task. A record with the uid of a stored one replaces it.
    pub fn import(&self, records: impl IntoIterator<Item = TaskRecord>) -> Result<(), StoreError> {
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            self.write(|rows| ops::import(rows, records.by_ref().take(50_000)))?;
        }
        Ok(())
    }

    /// Checks every index against the records (tests): the facts, cell lists, cancelers,
    /// counts and block summaries a rebuild would write, spans no narrower than the tasks.
    #[doc(hidden)]
    pub fn audit(&self) -> Result<(), String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let rows = ReadRows::open(&txn).map_err(|e| e.to_string())?;
        let mut records = Vec::new();
        for entry in rows.tasks.iter().map_err(|e| e.to_string())? {
            let (k, v) = entry.map_err(|e| e.to_string())?;
            records.push(decode(k.value(), v.value()).map_err(|e| e.to_string())?);
        }
        let listed = rows.by_cell.len().map_err(|e| e.to_string())?;
        let canceled = rows.by_canceler.len().map_err(|e| e.to_string())?;
        audit::audit(&rows, &records, (listed, canceled)).map_err(|e| format!("audit: {e}"))
    }
}

/// Drops the index tables and writes them again from the records.
fn rebuild_indexes(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(FACTS).map_err(backend)?;
    txn.delete_table(BY_CELL).map_err(backend)?;
    txn.delete_table(BY_CANCELER).map_err(backend)?;
    txn.delete_table(CELLS).map_err(backend)?;
    txn.delete_table(CELL_INFO).map_err(backend)?;
    txn.delete_table(BLOCKS).map_err(backend)?;
    let mut rows = WriteRows::open(txn)?;
    let mut records = Vec::new();
    for entry in rows.t.tasks.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        records.push(decode(k.value(), v.value())?);
    }
    let mut ix = Indexer::new(&mut rows);
    for record in &records {
        ix.add(record)?;
    }
    ix.flush()
}

impl TaskStore for EmbeddedStore {
    fn create(
        &self,
        task: NewTask,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        self.write(|rows| ops::create(rows, task, idempotency))
    }

    fn claim(&self, idem: &Idempotency, _hold: std::time::Duration) -> Result<Claim, StoreError> {
        // One process: its own turn per key (the proxy's) already keeps requests apart.
        Ok(match self.idempotency(&idem.key)? {
            Some((digest, uid)) => Claim::Seen(digest, uid),
            None => Claim::Claimed,
        })
    }

    fn release(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn get(&self, uid: TaskUid) -> Result<Option<TaskRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        ReadRows::open(&txn)?.record(uid.0)
    }

    fn idempotency(&self, key: &str) -> Result<Option<(String, TaskUid)>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let keys = txn.open_table(IDEMPOTENCY).map_err(backend)?;
        let value = keys.get(key).map_err(backend)?;
        Ok(value.and_then(|v| parse_idempotency(v.value())))
    }

    fn modify(
        &self,
        uid: TaskUid,
        change: &mut dyn FnMut(&mut TaskRecord),
    ) -> Result<bool, StoreError> {
        self.write(|rows| ops::modify(rows, uid, change))
    }

    fn settle(&self, views: Vec<(TaskUid, Value)>) -> Result<Vec<TaskUid>, StoreError> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|rows| ops::settle(rows, &views))
    }

    fn unsettled(&self, q: &TaskQuery, max: usize) -> Result<Vec<TaskRecord>, StoreError> {
        self.read()?.unsettled(q, max)
    }

    fn list(&self, q: &TaskQuery, pending: &BTreeSet<u64>) -> Result<Page, StoreError> {
        self.read()?.page(q, pending)
    }

    fn delete(&self, uids: &[TaskUid]) -> Result<usize, StoreError> {
        self.write(|rows| ops::delete(rows, uids))
    }

    fn count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let tasks = txn.open_table(TASKS).map_err(backend)?;
        tasks.len().map_err(backend)
    }

    fn prune(&self, limit: u64, batch: usize, now: OffsetDateTime) -> Result<Pruned, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let pruned = {
            let mut rows = WriteRows::open(&txn)?;
            prune::prune(&mut rows, limit, batch, now)?
        };
        if matches!(pruned, Pruned::Deleted(_)) {
            txn.commit().map_err(backend)?;
        }
        Ok(pruned)
    }
}
