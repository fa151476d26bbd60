//! The read side of the indexes: the cells, the uid lists of cells merged in a listing's
//! order, block summaries walked and counted. Every entry read is counted (`Reads`): a page's
//! cost, which tests hold independent of the registry's size.

use std::cell::Cell as Counter;
use std::collections::{BinaryHeap, HashMap};

use redb::ReadableTable;

use super::tables::{decode, BLOCKS, BY_CANCELER, BY_CELL, CELL_INFO, FACTS, TASKS};
use super::{backend, StoreError};
use crate::index::{code_status, Facts, FactsRow, Summary, Verdict, LEVELS};
use crate::query::TaskQuery;
use crate::record::TaskRecord;

/// Cells with at most this many wanted: a page merges their uid lists; with more, it walks
/// the block summaries.
pub(super) const MERGE_CELLS: usize = 32;

/// How many table entries (index rows, records, summaries) a read has gone through.
#[derive(Debug, Default)]
pub(super) struct Reads(Counter<u64>);

impl Reads {
    pub(super) fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }

    pub(super) fn get(&self) -> u64 {
        self.0.get()
    }
}

/// One cell as a listing sees it.
#[derive(Debug, Clone)]
pub(super) struct Cell {
    pub(super) id: u32,
    pub(super) index: String,
    pub(super) kind: String,
    pub(super) status: u8,
    pub(super) count: u64,
}

pub(super) fn read_cells(
    info: &impl ReadableTable<u32, (&'static str, &'static str, u8, u64)>,
) -> Result<Vec<Cell>, StoreError> {
    let mut cells = Vec::new();
    for entry in info.iter().map_err(backend)? {
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

/// Whether a cell's tasks pass the query's record filters (types, indexes).
pub(super) fn record_filters_pass(q: &TaskQuery, c: &Cell) -> bool {
    q.types.as_ref().is_none_or(|t| t.contains(&c.kind))
        && q.index_uids
            .as_ref()
            .is_none_or(|i| !c.index.is_empty() && i.contains(&c.index))
}

/// The cells whose tasks can match from what the indexes know: their record filters pass,
/// and they are settled with a wanted status, or unsettled when the query has no view filter
/// (unsettled tasks are otherwise judged by the caller's `pending`).
pub(super) fn wanted_cells(q: &TaskQuery, cells: &[Cell]) -> Vec<u32> {
    cells
        .iter()
        .filter(|c| record_filters_pass(q, c))
        .filter(|c| match code_status(c.status) {
            None => !q.needs_views(),
            Some(s) => q.statuses.as_ref().is_none_or(|wanted| wanted.contains(&s)),
        })
        .map(|c| c.id)
        .collect()
}

/// The uid bounds of a listing: everything at or after `from` in its direction.
pub(super) fn bounds(q: &TaskQuery) -> (u64, u64) {
    match (q.from, q.reverse) {
        (None, _) => (0, u64::MAX),
        (Some(f), false) => (0, f),
        (Some(f), true) => (f, u64::MAX),
    }
}

/// The listing's order: newest first unless `reverse`.
pub(super) fn in_order(q: &TaskQuery, uids: &mut [u64]) {
    uids.sort_unstable();
    if !q.reverse {
        uids.reverse();
    }
}

/// The first `need` uids of several cells' uid lists, merged in the listing's order.
pub(super) fn merge_cells(
    by_cell: &impl ReadableTable<(u32, u64), ()>,
    cells: &[u32],
    q: &TaskQuery,
    need: usize,
    reads: &Reads,
) -> Result<Vec<u64>, StoreError> {
    type Uids<'a> = Box<dyn Iterator<Item = Result<u64, StoreError>> + 'a>;
    let (lo, hi) = bounds(q);
    let mut lists: Vec<Uids<'_>> = Vec::with_capacity(cells.len());
    for &c in cells {
        let range = by_cell.range((c, lo)..=(c, hi)).map_err(backend)?.map(|e| {
            reads.add(1);
            e.map(|(k, _)| k.value().1).map_err(backend)
        });
        lists.push(if q.reverse {
            Box::new(range)
        } else {
            Box::new(range.rev())
        });
    }
    // The heap's greatest key is the next uid in the listing's order.
    let key = |uid: u64| if q.reverse { u64::MAX - uid } else { uid };
    let mut heap = BinaryHeap::new();
    for (i, list) in lists.iter_mut().enumerate() {
        if let Some(uid) = list.next().transpose()? {
            heap.push((key(uid), i));
        }
    }
    let mut out = Vec::new();
    while out.len() < need {
        let Some((k, i)) = heap.pop() else { break };
        out.push(if q.reverse { u64::MAX - k } else { k });
        if let Some(uid) = lists[i].next().transpose()? {
            heap.push((key(uid), i));
        }
    }
    Ok(out)
}

/// The read side of a listing, over one read transaction.
pub(super) struct Reader {
    pub(super) tasks: redb::ReadOnlyTable<u64, &'static [u8]>,
    pub(super) facts: redb::ReadOnlyTable<u64, FactsRow>,
    pub(super) by_cell: redb::ReadOnlyTable<(u32, u64), ()>,
    pub(super) by_canceler: redb::ReadOnlyTable<(u64, u64), ()>,
    pub(super) blocks: redb::ReadOnlyTable<(u8, u64), &'static [u8]>,
    pub(super) cells: Vec<Cell>,
    /// Cell id -> position in `cells`.
    cell_at: HashMap<u32, usize>,
    /// What this read has gone through so far.
    pub(super) reads: Reads,
}

impl Reader {
    pub(super) fn open(txn: &redb::ReadTransaction) -> Result<Self, StoreError> {
        let cell_info = txn.open_table(CELL_INFO).map_err(backend)?;
        let cells = read_cells(&cell_info)?;
        let reads = Reads::default();
        reads.add(cells.len() as u64);
        Ok(Self {
            reads,
            cell_at: cells.iter().enumerate().map(|(i, c)| (c.id, i)).collect(),
            tasks: txn.open_table(TASKS).map_err(backend)?,
            facts: txn.open_table(FACTS).map_err(backend)?,
            by_cell: txn.open_table(BY_CELL).map_err(backend)?,
            by_canceler: txn.open_table(BY_CANCELER).map_err(backend)?,
            blocks: txn.open_table(BLOCKS).map_err(backend)?,
            cells,
        })
    }

    pub(super) fn facts(&self, uid: u64) -> Result<Option<Facts>, StoreError> {
        self.reads.add(1);
        Ok(self
            .facts
            .get(uid)
            .map_err(backend)?
            .map(|v| Facts::from_row(v.value())))
    }

    pub(super) fn cell(&self, id: u32) -> Option<&Cell> {
        self.cell_at.get(&id).map(|&i| &self.cells[i])
    }

    pub(super) fn record(&self, uid: u64) -> Result<Option<TaskRecord>, StoreError> {
        self.reads.add(1);
        let value = self.tasks.get(uid).map_err(backend)?;
        value.map(|v| decode(uid, v.value())).transpose()
    }

    /// The first `need` uids of every task, in the listing's order.
    pub(super) fn walk_all(&self, q: &TaskQuery, need: usize) -> Result<Vec<u64>, StoreError> {
        let (lo, hi) = bounds(q);
        let range = self.facts.range(lo..=hi).map_err(backend)?;
        let keys = |e: Result<(redb::AccessGuard<u64>, _), redb::StorageError>| {
            self.reads.add(1);
            e.map(|(k, _)| k.value()).map_err(backend)
        };
        if q.reverse {
            range.map(keys).take(need).collect()
        } else {
            range.rev().map(keys).take(need).collect()
        }
    }

    /// The blocks of `level` inside `[lo, hi]` (block numbers), in the listing's order.
    pub(super) fn blocks_in(
        &self,
        q: &TaskQuery,
        level: u8,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<(u64, Summary)>, StoreError> {
        let mut out = Vec::new();
        for entry in self
            .blocks
            .range((level, lo)..=(level, hi))
            .map_err(backend)?
        {
            self.reads.add(1);
            let (k, v) = entry.map_err(backend)?;
            out.push((k.value().1, Summary::decode(v.value()).unwrap_or_default()));
        }
        if !q.reverse {
            out.reverse();
        }
        Ok(out)
    }

    /// The settled tasks of one level-1 block passing `test`, in the listing's order.
    pub(super) fn scan_block(
        &self,
        q: &TaskQuery,
        block: u64,
        test: &impl Fn(&Facts) -> bool,
        out: &mut Vec<u64>,
        need: usize,
    ) -> Result<(), StoreError> {
        let (lo, hi) = bounds(q);
        let shift = LEVELS[0].1;
        let from = (block << shift).max(lo);
        let to = (block << shift | ((1 << shift) - 1)).min(hi);
        if from > to {
            return Ok(());
        }
        let range = self.facts.range(from..=to).map_err(backend)?;
        let mut visit = |e: Result<(redb::AccessGuard<u64>, redb::AccessGuard<FactsRow>), _>| {
            self.reads.add(1);
            let (k, v) = e.map_err(backend)?;
            if test(&Facts::from_row(v.value())) {
                out.push(k.value());
            }
            Ok::<bool, StoreError>(out.len() >= need)
        };
        if q.reverse {
            for e in range {
                if visit(e)? {
                    break;
                }
            }
        } else {
            for e in range.rev() {
                if visit(e)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The first `need` tasks passing `test` in the wanted cells, in the listing's order,
    /// skipping the blocks whose summary rules them out.
    pub(super) fn walk_blocks(
        &self,
        q: &TaskQuery,
        wanted: &impl Fn(u32) -> bool,
        test: &impl Fn(&Facts) -> bool,
        need: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let (lo, hi) = bounds(q);
        let [(l1, s1), (l2, s2)] = LEVELS;
        let mut out = Vec::new();
        for (big, summary) in self.blocks_in(q, l2, lo >> s2, hi >> s2)? {
            if summary.judge(wanted, q) == Verdict::None {
                continue;
            }
            let first = (big << (s2 - s1)).max(lo >> s1);
            let last = ((big + 1) << (s2 - s1)).saturating_sub(1).min(hi >> s1);
            for (block, summary) in self.blocks_in(q, l1, first, last)? {
                if summary.judge(wanted, q) == Verdict::None {
                    continue;
                }
                self.scan_block(q, block, test, &mut out, need)?;
                if out.len() >= need {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// How many tasks of the wanted cells pass `test`: whole blocks counted from their
    /// summaries, the others read.
    pub(super) fn count_blocks(
        &self,
        q: &TaskQuery,
        wanted: &impl Fn(u32) -> bool,
        test: &impl Fn(&Facts) -> bool,
    ) -> Result<u64, StoreError> {
        let [(l1, s1), (l2, s2)] = LEVELS;
        let all = TaskQuery {
            from: None,
            reverse: true,
            ..q.clone()
        };
        let mut total = 0;
        for (big, summary) in self.blocks_in(&all, l2, 0, u64::MAX)? {
            match summary.judge(wanted, q) {
                Verdict::None => continue,
                Verdict::All(n) => total += n,
                Verdict::Some => {
                    let first = big << (s2 - s1);
                    let last = ((big + 1) << (s2 - s1)).saturating_sub(1);
                    for (block, summary) in self.blocks_in(&all, l1, first, last)? {
                        match summary.judge(wanted, q) {
                            Verdict::None => {}
                            Verdict::All(n) => total += n,
                            Verdict::Some => {
                                let mut found = Vec::new();
                                self.scan_block(&all, block, test, &mut found, usize::MAX)?;
                                total += found.len() as u64;
                            }
                        }
                    }
                }
            }
        }
        Ok(total)
    }
}
