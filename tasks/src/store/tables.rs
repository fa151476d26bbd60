//! The redb tables of the embedded store, and the store's rows (`rows`) over them: read-only
//! inside a read transaction, writable inside a write transaction.

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction,
};

use super::rows::{Cell, FactsIter, Rows, RowsMut, Uids};
use super::{backend, StoreError};
use crate::index::{CellKey, Facts, FactsRow, Summary};
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

type CellInfo = (&'static str, &'static str, u8, u64);

/// The tables `Rows` reads, as a read or a write transaction opened them.
pub(super) struct Tables<T, F, C, N, B, I> {
    pub(super) tasks: T,
    pub(super) facts: F,
    pub(super) by_cell: C,
    pub(super) by_canceler: N,
    pub(super) blocks: B,
    pub(super) cell_info: I,
}

pub(super) type ReadRows = Tables<
    ReadOnlyTable<u64, &'static [u8]>,
    ReadOnlyTable<u64, FactsRow>,
    ReadOnlyTable<(u32, u64), ()>,
    ReadOnlyTable<(u64, u64), ()>,
    ReadOnlyTable<(u8, u64), &'static [u8]>,
    ReadOnlyTable<u32, CellInfo>,
>;

impl ReadRows {
    pub(super) fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            tasks: txn.open_table(TASKS).map_err(backend)?,
            facts: txn.open_table(FACTS).map_err(backend)?,
            by_cell: txn.open_table(BY_CELL).map_err(backend)?,
            by_canceler: txn.open_table(BY_CANCELER).map_err(backend)?,
            blocks: txn.open_table(BLOCKS).map_err(backend)?,
            cell_info: txn.open_table(CELL_INFO).map_err(backend)?,
        })
    }
}

type WriteTables<'t> = Tables<
    Table<'t, u64, &'static [u8]>,
    Table<'t, u64, FactsRow>,
    Table<'t, (u32, u64), ()>,
    Table<'t, (u64, u64), ()>,
    Table<'t, (u8, u64), &'static [u8]>,
    Table<'t, u32, CellInfo>,
>;

/// The rows of a write transaction: the tables `Rows` reads, and those only writes use.
pub(super) struct WriteRows<'t> {
    pub(super) t: WriteTables<'t>,
    pub(super) meta: Table<'t, &'static str, u64>,
    pub(super) idempotency: Table<'t, &'static str, &'static str>,
    cells: Table<'t, (&'static str, &'static str, u8), u32>,
}

impl<'t> WriteRows<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            t: Tables {
                tasks: txn.open_table(TASKS).map_err(backend)?,
                facts: txn.open_table(FACTS).map_err(backend)?,
                by_cell: txn.open_table(BY_CELL).map_err(backend)?,
                by_canceler: txn.open_table(BY_CANCELER).map_err(backend)?,
                blocks: txn.open_table(BLOCKS).map_err(backend)?,
                cell_info: txn.open_table(CELL_INFO).map_err(backend)?,
            },
            meta: txn.open_table(META).map_err(backend)?,
            idempotency: txn.open_table(IDEMPOTENCY).map_err(backend)?,
            cells: txn.open_table(CELLS).map_err(backend)?,
        })
    }
}

impl<T, F, C, N, B, I> Rows for Tables<T, F, C, N, B, I>
where
    T: ReadableTable<u64, &'static [u8]>,
    F: ReadableTable<u64, FactsRow>,
    C: ReadableTable<(u32, u64), ()>,
    N: ReadableTable<(u64, u64), ()>,
    B: ReadableTable<(u8, u64), &'static [u8]>,
    I: ReadableTable<u32, CellInfo>,
{
    fn cells(&self) -> Result<Vec<Cell>, StoreError> {
        let mut cells = Vec::new();
        for entry in self.cell_info.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let (index, kind, status, count) = v.value();
            cells.push(Cell {
                id: k.value(),
                index: index.to_owned(),
                kind: kind.to_owned(),
                status,
                count,
            });
        }
        Ok(cells)
    }

    fn record(&self, uid: u64) -> Result<Option<TaskRecord>, StoreError> {
        let value = self.tasks.get(uid).map_err(backend)?;
        value.map(|v| decode(uid, v.value())).transpose()
    }

    fn facts(&self, uid: u64) -> Result<Option<Facts>, StoreError> {
        let value = self.facts.get(uid).map_err(backend)?;
        Ok(value.map(|v| Facts::from_row(v.value())))
    }

    fn facts_range(&self, lo: u64, hi: u64, descending: bool) -> Result<FactsIter<'_>, StoreError> {
        let range = self.facts.range(lo..=hi).map_err(backend)?;
        let entry = |e: Result<(redb::AccessGuard<u64>, redb::AccessGuard<FactsRow>), _>| {
            let (k, v) = e.map_err(backend)?;
            Ok((k.value(), Facts::from_row(v.value())))
        };
        Ok(if descending {
            Box::new(range.rev().map(entry))
        } else {
            Box::new(range.map(entry))
        })
    }

    fn cell_uids(
        &self,
        cell: u32,
        lo: u64,
        hi: u64,
        descending: bool,
    ) -> Result<Uids<'_>, StoreError> {
        let range = self
            .by_cell
            .range((cell, lo)..=(cell, hi))
            .map_err(backend)?;
        let uid = |e: Result<(redb::AccessGuard<(u32, u64)>, _), redb::StorageError>| {
            e.map(|(k, _)| k.value().1).map_err(backend)
        };
        Ok(if descending {
            Box::new(range.rev().map(uid))
        } else {
            Box::new(range.map(uid))
        })
    }

    fn canceled_by(&self, by: u64) -> Result<Uids<'_>, StoreError> {
        let range = self
            .by_canceler
            .range((by, 0)..=(by, u64::MAX))
            .map_err(backend)?;
        Ok(Box::new(
            range.map(|e| e.map(|(k, _)| k.value().1).map_err(backend)),
        ))
    }

    fn blocks(&self, level: u8, lo: u64, hi: u64) -> Result<Vec<(u64, Summary)>, StoreError> {
        let mut out = Vec::new();
        for entry in self
            .blocks
            .range((level, lo)..=(level, hi))
            .map_err(backend)?
        {
            let (k, v) = entry.map_err(backend)?;
            out.push((k.value().1, Summary::decode(v.value()).unwrap_or_default()));
        }
        Ok(out)
    }

    fn task_count(&self) -> Result<u64, StoreError> {
        self.tasks.len().map_err(backend)
    }
}

impl Rows for WriteRows<'_> {
    fn cells(&self) -> Result<Vec<Cell>, StoreError> {
        self.t.cells()
    }
    fn record(&self, uid: u64) -> Result<Option<TaskRecord>, StoreError> {
        self.t.record(uid)
    }
    fn facts(&self, uid: u64) -> Result<Option<Facts>, StoreError> {
        self.t.facts(uid)
    }
    fn facts_range(&self, lo: u64, hi: u64, desc: bool) -> Result<FactsIter<'_>, StoreError> {
        self.t.facts_range(lo, hi, desc)
    }
    fn cell_uids(&self, c: u32, lo: u64, hi: u64, desc: bool) -> Result<Uids<'_>, StoreError> {
        self.t.cell_uids(c, lo, hi, desc)
    }
    fn canceled_by(&self, by: u64) -> Result<Uids<'_>, StoreError> {
        self.t.canceled_by(by)
    }
    fn blocks(&self, level: u8, lo: u64, hi: u64) -> Result<Vec<(u64, Summary)>, StoreError> {
        self.t.blocks(level, lo, hi)
    }
    fn task_count(&self) -> Result<u64, StoreError> {
        self.t.task_count()
    }
}

impl RowsMut for WriteRows<'_> {
    fn put_record(&mut self, record: &TaskRecord) -> Result<(), StoreError> {
        self.t
            .tasks
            .insert(record.uid.0, encode(record)?.as_slice())
            .map_err(backend)?;
        Ok(())
    }

    fn remove_record(&mut self, uid: u64) -> Result<bool, StoreError> {
        Ok(self.t.tasks.remove(uid).map_err(backend)?.is_some())
    }

    fn allocate_uid(&mut self) -> Result<TaskUid, StoreError> {
        let uid = self
            .meta
            .get(NEXT_UID)
            .map_err(backend)?
            .map_or(0, |v| v.value());
        self.meta.insert(NEXT_UID, uid + 1).map_err(backend)?;
        Ok(TaskUid(uid))
    }

    fn raise_next_uid(&mut self, next: u64) -> Result<(), StoreError> {
        let now = self
            .meta
            .get(NEXT_UID)
            .map_err(backend)?
            .map_or(0, |v| v.value());
        self.meta.insert(NEXT_UID, now.max(next)).map_err(backend)?;
        Ok(())
    }

    fn put_facts(&mut self, uid: u64, facts: Facts) -> Result<(), StoreError> {
        self.t.facts.insert(uid, facts.row()).map_err(backend)?;
        Ok(())
    }

    fn remove_facts(&mut self, uid: u64) -> Result<(), StoreError> {
        self.t.facts.remove(uid).map_err(backend)?;
        Ok(())
    }

    fn cell_insert(&mut self, cell: u32, uid: u64) -> Result<(), StoreError> {
        self.t.by_cell.insert((cell, uid), ()).map_err(backend)?;
        Ok(())
    }

    fn cell_remove(&mut self, cell: u32, uid: u64) -> Result<(), StoreError> {
        self.t.by_cell.remove((cell, uid)).map_err(backend)?;
        Ok(())
    }

    fn canceler_insert(&mut self, by: u64, uid: u64) -> Result<(), StoreError> {
        self.t.by_canceler.insert((by, uid), ()).map_err(backend)?;
        Ok(())
    }

    fn canceler_remove(&mut self, by: u64, uid: u64) -> Result<(), StoreError> {
        self.t.by_canceler.remove((by, uid)).map_err(backend)?;
        Ok(())
    }

    fn cell_id(&mut self, key: &CellKey) -> Result<Option<u32>, StoreError> {
        let found = self
            .cells
            .get((key.index.as_str(), key.kind.as_str(), key.status))
            .map_err(backend)?;
        Ok(found.map(|v| v.value()))
    }

    fn create_cell(&mut self, key: &CellKey) -> Result<u32, StoreError> {
        let id = match self.t.cell_info.last().map_err(backend)? {
            Some((k, _)) => k.value() + 1,
            None => 0,
        };
        self.cells
            .insert((key.index.as_str(), key.kind.as_str(), key.status), id)
            .map_err(backend)?;
        self.set_cell_count(id, key, 0)?;
        Ok(id)
    }

    fn cell_info(&mut self, cell: u32) -> Result<Option<(CellKey, u64)>, StoreError> {
        let info = self.t.cell_info.get(cell).map_err(backend)?;
        Ok(info.map(|v| {
            let (index, kind, status, count) = v.value();
            let key = CellKey {
                index: index.to_owned(),
                kind: kind.to_owned(),
                status,
            };
            (key, count)
        }))
    }

    fn set_cell_count(&mut self, cell: u32, key: &CellKey, count: u64) -> Result<(), StoreError> {
        self.t
            .cell_info
            .insert(
                cell,
                (key.index.as_str(), key.kind.as_str(), key.status, count),
            )
            .map_err(backend)?;
        Ok(())
    }

    fn drop_cell(&mut self, cell: u32, key: &CellKey) -> Result<(), StoreError> {
        self.t.cell_info.remove(cell).map_err(backend)?;
        self.cells
            .remove((key.index.as_str(), key.kind.as_str(), key.status))
            .map_err(backend)?;
        Ok(())
    }

    fn summary(&mut self, level: u8, block: u64) -> Result<Option<Summary>, StoreError> {
        let stored = self.t.blocks.get((level, block)).map_err(backend)?;
        Ok(stored.map(|v| Summary::decode(v.value()).unwrap_or_default()))
    }

    fn put_summary(&mut self, level: u8, block: u64, s: &Summary) -> Result<(), StoreError> {
        self.t
            .blocks
            .insert((level, block), s.encode().as_slice())
            .map_err(backend)?;
        Ok(())
    }

    fn remove_summary(&mut self, level: u8, block: u64) -> Result<(), StoreError> {
        self.t.blocks.remove((level, block)).map_err(backend)?;
        Ok(())
    }

    fn idempotency(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let value = self.idempotency.get(key).map_err(backend)?;
        Ok(value.map(|v| v.value().to_owned()))
    }

    fn put_idempotency(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.idempotency.insert(key, value).map_err(backend)?;
        Ok(())
    }
}
