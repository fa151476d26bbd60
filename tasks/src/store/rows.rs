//! What the store's logic reads and writes, whatever holds it: the records, the uid sequence,
//! and the index entries of `index` (facts, cell lists, cancelers, cells, block summaries).
//! The listing, indexing and pruning logic is written once against these traits; each
//! backend (redb tables, Redis keys) implements them inside its own transactions.

use super::StoreError;
use crate::index::{CellKey, Facts, Summary};
use crate::record::{TaskRecord, TaskUid};

/// Uids in order, read lazily.
pub(super) type Uids<'a> = Box<dyn Iterator<Item = Result<u64, StoreError>> + 'a>;
/// Tasks' facts in uid order, read lazily.
pub(super) type FactsIter<'a> = Box<dyn Iterator<Item = Result<(u64, Facts), StoreError>> + 'a>;

/// One cell as a listing sees it.
#[derive(Debug, Clone)]
pub(super) struct Cell {
    pub(super) id: u32,
    pub(super) index: String,
    pub(super) kind: String,
    pub(super) status: u8,
    pub(super) count: u64,
}

/// The read side. Ranges are inclusive; `descending` walks from `hi` down.
pub(super) trait Rows {
    /// Every cell holding tasks, by id.
    fn cells(&self) -> Result<Vec<Cell>, StoreError>;
    fn record(&self, uid: u64) -> Result<Option<TaskRecord>, StoreError>;
    fn facts(&self, uid: u64) -> Result<Option<Facts>, StoreError>;
    /// The tasks with uids in `[lo, hi]`.
    fn facts_range(&self, lo: u64, hi: u64, descending: bool) -> Result<FactsIter<'_>, StoreError>;
    /// The uids of one cell's tasks in `[lo, hi]`.
    fn cell_uids(
        &self,
        cell: u32,
        lo: u64,
        hi: u64,
        descending: bool,
    ) -> Result<Uids<'_>, StoreError>;
    /// The settled tasks the task cancelation `by` canceled, ascending.
    fn canceled_by(&self, by: u64) -> Result<Uids<'_>, StoreError>;
    /// The summaries of `level`'s blocks numbered in `[lo, hi]`, ascending.
    fn blocks(&self, level: u8, lo: u64, hi: u64) -> Result<Vec<(u64, Summary)>, StoreError>;
    /// How many tasks the registry holds.
    fn task_count(&self) -> Result<u64, StoreError>;
}

/// The write side, inside one transaction: reads see the transaction's own writes.
pub(super) trait RowsMut: Rows {
    fn put_record(&mut self, record: &TaskRecord) -> Result<(), StoreError>;
    /// Whether the record existed.
    fn remove_record(&mut self, uid: u64) -> Result<bool, StoreError>;
    /// The next task uid, taken: uids never repeat, across restarts and deletions too.
    fn allocate_uid(&mut self) -> Result<TaskUid, StoreError>;
    /// Moves the uid sequence to at least `next` (imports).
    fn raise_next_uid(&mut self, next: u64) -> Result<(), StoreError>;
    fn put_facts(&mut self, uid: u64, facts: Facts) -> Result<(), StoreError>;
    fn remove_facts(&mut self, uid: u64) -> Result<(), StoreError>;
    fn cell_insert(&mut self, cell: u32, uid: u64) -> Result<(), StoreError>;
    fn cell_remove(&mut self, cell: u32, uid: u64) -> Result<(), StoreError>;
    fn canceler_insert(&mut self, by: u64, uid: u64) -> Result<(), StoreError>;
    fn canceler_remove(&mut self, by: u64, uid: u64) -> Result<(), StoreError>;
    /// The id of a cell, when it exists.
    fn cell_id(&mut self, key: &CellKey) -> Result<Option<u32>, StoreError>;
    /// A new cell, empty, with a fresh id.
    fn create_cell(&mut self, key: &CellKey) -> Result<u32, StoreError>;
    /// A cell's key and count.
    fn cell_info(&mut self, cell: u32) -> Result<Option<(CellKey, u64)>, StoreError>;
    fn set_cell_count(&mut self, cell: u32, key: &CellKey, count: u64) -> Result<(), StoreError>;
    fn drop_cell(&mut self, cell: u32, key: &CellKey) -> Result<(), StoreError>;
    fn summary(&mut self, level: u8, block: u64) -> Result<Option<Summary>, StoreError>;
    fn put_summary(&mut self, level: u8, block: u64, s: &Summary) -> Result<(), StoreError>;
    fn remove_summary(&mut self, level: u8, block: u64) -> Result<(), StoreError>;
    /// What an idempotency key was first used for, as `digest\0uid`.
    fn idempotency(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    fn put_idempotency(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
}
