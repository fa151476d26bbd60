//! The redb tables of the embedded store, and how a record is written in them.

use redb::{ReadableTable, Table, TableDefinition};

use super::{backend, StoreError};
use crate::index::FactsRow;
use crate::record::{TaskRecord, TaskUid};

pub(super) const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Idempotency key -> (digest, task uid) as `digest\0uid`.
pub(super) const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("idempotency");
/// Uid -> the task's cell and dates (`index::Facts`).
pub(super) const FACTS: TableDefinition<u64, FactsRow> = TableDefinition::new("task_facts");
/// (cell, uid): each cell's tasks in uid order.
pub(super) const BY_CELL: TableDefinition<(u32, u64), ()> = TableDefinition::new("tasks_by_cell");
/// (canceler uid, uid) of settled tasks canceled by a task cancelation.
pub(super) const BY_CANCELER: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("tasks_by_canceler");
/// (index uid or "", type, settled status) -> cell id.
pub(super) const CELLS: TableDefinition<(&str, &str, u8), u32> = TableDefinition::new("cells");
/// Cell id -> (index uid or "", type, settled status, how many tasks).
pub(super) const CELL_INFO: TableDefinition<u32, (&str, &str, u8, u64)> =
    TableDefinition::new("cell_info");
/// (level, block) -> `index::Summary` of the block's tasks.
pub(super) const BLOCKS: TableDefinition<(u8, u64), &[u8]> = TableDefinition::new("blocks");
pub(super) const NEXT_UID: &str = "next_uid";
/// The layout of the index tables; a store written by a version without them (or another
/// layout) has them rebuilt from the records when opened.
pub(super) const INDEX_VERSION: &str = "index_version";
pub(super) const INDEX_VERSION_NOW: u64 = 1;

pub(super) fn decode(uid: u64, bytes: &[u8]) -> Result<TaskRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(uid, e.to_string()))
}

pub(super) fn encode(record: &TaskRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(backend)
}

/// The next task uid, taken: uids never repeat, across restarts and deletions too.
pub(super) fn allocate_uid(meta: &mut Table<'_, &str, u64>) -> Result<TaskUid, StoreError> {
    let uid = meta
        .get(NEXT_UID)
        .map_err(backend)?
        .map_or(0, |v| v.value());
    meta.insert(NEXT_UID, uid + 1).map_err(backend)?;
    Ok(TaskUid(uid))
}
