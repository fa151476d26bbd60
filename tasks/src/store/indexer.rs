//! The write side of the indexes: kept in step with the records inside each write
//! transaction, whatever backend holds them.

use std::collections::HashMap;

use super::rows::RowsMut;
use super::StoreError;
use crate::index::{describe, CellKey, Facts, Summary, LEVELS};
use crate::record::TaskRecord;

/// Keeps the index entries in step with the records inside one write transaction. Counts
/// and block summaries are changed in memory and written once, by `flush`.
pub(super) struct Indexer<'t, R: RowsMut> {
    pub(super) rows: &'t mut R,
    counts: HashMap<u32, i64>,
    summaries: HashMap<(u8, u64), Summary>,
}

impl<'t, R: RowsMut> Indexer<'t, R> {
    pub(super) fn new(rows: &'t mut R) -> Self {
        Self {
            rows,
            counts: HashMap::new(),
            summaries: HashMap::new(),
        }
    }

    /// The id of a cell, created on first use.
    fn cell(&mut self, key: &CellKey) -> Result<u32, StoreError> {
        match self.rows.cell_id(key)? {
            Some(id) => Ok(id),
            None => self.rows.create_cell(key),
        }
    }

    fn summary(&mut self, level: u8, block: u64) -> Result<&mut Summary, StoreError> {
        if !self.summaries.contains_key(&(level, block)) {
            let stored = self.rows.summary(level, block)?.unwrap_or_default();
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
        self.rows.put_facts(uid, facts)?;
        self.rows.cell_insert(facts.cell, uid)?;
        if let Some(by) = facts.dates.canceled_by {
            self.rows.canceler_insert(by, uid)?;
        }
        *self.counts.entry(facts.cell).or_default() += 1;
        for (level, shift) in LEVELS {
            self.summary(level, uid >> shift)?.add(&facts);
        }
        Ok(())
    }

    /// Removes a task from the indexes; returns what they held.
    pub(super) fn remove(&mut self, uid: u64) -> Result<Option<Facts>, StoreError> {
        let Some(facts) = self.rows.facts(uid)? else {
            return Ok(None);
        };
        self.rows.remove_facts(uid)?;
        self.rows.cell_remove(facts.cell, uid)?;
        if let Some(by) = facts.dates.canceled_by {
            self.rows.canceler_remove(by, uid)?;
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
        if self.rows.facts(uid)? == Some(facts) {
            return Ok(());
        }
        self.remove(uid)?;
        self.put(uid, facts)
    }

    /// Writes the changed counts and summaries; drops emptied cells and blocks.
    pub(super) fn flush(mut self) -> Result<(), StoreError> {
        for (cell, delta) in std::mem::take(&mut self.counts) {
            let Some((key, count)) = self.rows.cell_info(cell)? else {
                continue;
            };
            let count = (count as i64 + delta).max(0) as u64;
            if count == 0 {
                self.rows.drop_cell(cell, &key)?;
            } else {
                self.rows.set_cell_count(cell, &key, count)?;
            }
        }
        for ((level, block), summary) in std::mem::take(&mut self.summaries) {
            if summary.is_empty() {
                self.rows.remove_summary(level, block)?;
            } else {
                self.rows.put_summary(level, block, &summary)?;
            }
        }
        Ok(())
    }
}
