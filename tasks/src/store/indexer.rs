//! The write side of the indexes: kept in step with the records inside each write
//! transaction.

use std::collections::HashMap;

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::{decode, BLOCKS, BY_CANCELER, BY_CELL, CELLS, CELL_INFO, FACTS, TASKS};
use super::{backend, StoreError};
use crate::index::{describe, CellKey, Facts, FactsRow, Summary, LEVELS};
use crate::record::TaskRecord;

/// Drops the index tables and writes them again from the records.
pub(super) fn rebuild_indexes(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(FACTS).map_err(backend)?;
    txn.delete_table(BY_CELL).map_err(backend)?;
    txn.delete_table(BY_CANCELER).map_err(backend)?;
    txn.delete_table(CELLS).map_err(backend)?;
    txn.delete_table(CELL_INFO).map_err(backend)?;
    txn.delete_table(BLOCKS).map_err(backend)?;
    let tasks = txn.open_table(TASKS).map_err(backend)?;
    let mut ix = Indexer::open(txn)?;
    for entry in tasks.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        ix.add(&decode(k.value(), v.value())?)?;
    }
    ix.flush()
}

/// Keeps the index tables in step with the records inside one write transaction. Counts and
/// block summaries are changed in memory and written once, by `flush`.
pub(super) struct Indexer<'t> {
    facts: Table<'t, u64, FactsRow>,
    pub(super) by_cell: Table<'t, (u32, u64), ()>,
    by_canceler: Table<'t, (u64, u64), ()>,
    cells: Table<'t, (&'static str, &'static str, u8), u32>,
    pub(super) cell_info: Table<'t, u32, (&'static str, &'static str, u8, u64)>,
    blocks: Table<'t, (u8, u64), &'static [u8]>,
    counts: HashMap<u32, i64>,
    summaries: HashMap<(u8, u64), Summary>,
}

impl<'t> Indexer<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            facts: txn.open_table(FACTS).map_err(backend)?,
            by_cell: txn.open_table(BY_CELL).map_err(backend)?,
            by_canceler: txn.open_table(BY_CANCELER).map_err(backend)?,
            cells: txn.open_table(CELLS).map_err(backend)?,
            cell_info: txn.open_table(CELL_INFO).map_err(backend)?,
            blocks: txn.open_table(BLOCKS).map_err(backend)?,
            counts: HashMap::new(),
            summaries: HashMap::new(),
        })
    }

    /// The id of a cell, created on first use.
    fn cell(&mut self, key: &CellKey) -> Result<u32, StoreError> {
        let found = self
            .cells
            .get((key.index.as_str(), key.kind.as_str(), key.status))
            .map_err(backend)?
            .map(|v| v.value());
        if let Some(id) = found {
            return Ok(id);
        }
        let id = match self.cell_info.last().map_err(backend)? {
            Some((k, _)) => k.value() + 1,
            None => 0,
        };
        self.cells
            .insert((key.index.as_str(), key.kind.as_str(), key.status), id)
            .map_err(backend)?;
        self.cell_info
            .insert(id, (key.index.as_str(), key.kind.as_str(), key.status, 0))
            .map_err(backend)?;
        Ok(id)
    }

    fn summary(&mut self, level: u8, block: u64) -> Result<&mut Summary, StoreError> {
        if !self.summaries.contains_key(&(level, block)) {
            let stored = self
                .blocks
                .get((level, block))
                .map_err(backend)?
                .map(|v| Summary::decode(v.value()).unwrap_or_default())
                .unwrap_or_default();
            self.summaries.insert((level, block), stored);
        }
        Ok(self.summaries.entry((level, block)).or_default())
    }

    /// Indexes a stored record (not indexed yet).
    pub(super) fn add(&mut self, record: &TaskRecord) -> Result<(), StoreError> {
        let (key, dates) = describe(record);
        let facts = Facts {
            cell: self.cell(&key)?,
            dates,
        };
        self.put(record.uid.0, facts)
    }

    fn put(&mut self, uid: u64, facts: Facts) -> Result<(), StoreError> {
        self.facts.insert(uid, facts.row()).map_err(backend)?;
        self.by_cell
            .insert((facts.cell, uid), ())
            .map_err(backend)?;
        if let Some(by) = facts.dates.canceled_by {
            self.by_canceler.insert((by, uid), ()).map_err(backend)?;
        }
        *self.counts.entry(facts.cell).or_default() += 1;
        for (level, shift) in LEVELS {
            self.summary(level, uid >> shift)?.add(&facts);
        }
        Ok(())
    }

    /// Removes a task from the indexes; returns what they held.
    pub(super) fn remove(&mut self, uid: u64) -> Result<Option<Facts>, StoreError> {
        let Some(row) = self.facts.remove(uid).map_err(backend)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let facts = Facts::from_row(row);
        self.by_cell.remove((facts.cell, uid)).map_err(backend)?;
        if let Some(by) = facts.dates.canceled_by {
            self.by_canceler.remove((by, uid)).map_err(backend)?;
        }
        *self.counts.entry(facts.cell).or_default() -= 1;
        for (level, shift) in LEVELS {
            self.summary(level, uid >> shift)?.remove(&facts);
        }
        Ok(Some(facts))
    }

    /// Brings a changed record's index entries up to date.
    pub(super) fn reindex(&mut self, record: &TaskRecord) -> Result<(), StoreError> {
        let uid = record.uid.0;
        let (key, dates) = describe(record);
        let facts = Facts {
            cell: self.cell(&key)?,
            dates,
        };
        let old = self.facts.get(uid).map_err(backend)?.map(|v| v.value());
        if old.map(Facts::from_row) == Some(facts) {
            return Ok(());
        }
        self.remove(uid)?;
        self.put(uid, facts)
    }

    /// Writes the changed counts and summaries; drops emptied cells and blocks.
    pub(super) fn flush(mut self) -> Result<(), StoreError> {
        for (cell, delta) in std::mem::take(&mut self.counts) {
            let info = self.cell_info.get(cell).map_err(backend)?.map(|v| {
                let (index, kind, status, count) = v.value();
                (index.to_owned(), kind.to_owned(), status, count)
            });
            let Some((index, kind, status, count)) = info else {
                continue;
            };
            let count = (count as i64 + delta).max(0) as u64;
            if count == 0 {
                self.cell_info.remove(cell).map_err(backend)?;
                self.cells
                    .remove((index.as_str(), kind.as_str(), status))
                    .map_err(backend)?;
            } else {
                self.cell_info
                    .insert(cell, (index.as_str(), kind.as_str(), status, count))
                    .map_err(backend)?;
            }
        }
        for (key, summary) in std::mem::take(&mut self.summaries) {
            if summary.is_empty() {
                self.blocks.remove(key).map_err(backend)?;
            } else {
                self.blocks
                    .insert(key, summary.encode().as_slice())
                    .map_err(backend)?;
            }
        }
        Ok(())
    }
}
