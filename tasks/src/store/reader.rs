//! The read side of the indexes: the cells, the uid lists of cells merged in a listing's
//! order, block summaries walked and counted. Every entry read is counted (`Reads`): a page's
//! cost, which tests hold independent of the registry's size.

use std::cell::Cell as Counter;
use std::collections::{BinaryHeap, HashMap};

use super::rows::{Cell, Rows, Uids};
use super::StoreError;
use crate::index::{code_status, Facts, Summary, Verdict, LEVELS};
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

/// Whether a cell's tasks pass the query's record filters (types, indexes).
pub(super) fn record_filters_pass(q: &TaskQuery, c: &Cell) -> bool {
    q.types.as_ref().is_none_or(|t| t.contains(&c.kind))
        && q.index_uids
            .as_ref()
            .is_none_or(|i| !c.index.is_empty() && i.contains(&c.index))
        && q.hidden_indexes
            .is_none_or(|prefix| !c.index.starts_with(prefix))
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
    rows: &impl Rows,
    cells: &[u32],
    q: &TaskQuery,
    need: usize,
    reads: &Reads,
) -> Result<Vec<u64>, StoreError> {
    let (lo, hi) = bounds(q);
    let mut lists: Vec<Uids<'_>> = Vec::with_capacity(cells.len());
    for &c in cells {
        let list = rows
            .cell_uids(c, lo, hi, !q.reverse)?
            .inspect(|_| reads.add(1));
        lists.push(Box::new(list));
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

/// The read side of a listing, over one backend's rows.
pub(super) struct Reader<R: Rows> {
    pub(super) rows: R,
    pub(super) cells: Vec<Cell>,
    /// Cell id -> position in `cells`.
    cell_at: HashMap<u32, usize>,
    /// What this read has gone through so far.
    pub(super) reads: Reads,
}

impl<R: Rows> Reader<R> {
    pub(super) fn open(rows: R) -> Result<Self, StoreError> {
        let cells = rows.cells()?;
        let reads = Reads::default();
        reads.add(cells.len() as u64);
        Ok(Self {
            reads,
            cell_at: cells.iter().enumerate().map(|(i, c)| (c.id, i)).collect(),
            rows,
            cells,
        })
    }

    pub(super) fn facts(&self, uid: u64) -> Result<Option<Facts>, StoreError> {
        self.reads.add(1);
        self.rows.facts(uid)
    }

    pub(super) fn cell(&self, id: u32) -> Option<&Cell> {
        self.cell_at.get(&id).map(|&i| &self.cells[i])
    }

    pub(super) fn record(&self, uid: u64) -> Result<Option<TaskRecord>, StoreError> {
        self.reads.add(1);
        self.rows.record(uid)
    }

    /// The first `need` uids of every task, in the listing's order.
    pub(super) fn walk_all(&self, q: &TaskQuery, need: usize) -> Result<Vec<u64>, StoreError> {
        let (lo, hi) = bounds(q);
        self.rows
            .facts_range(lo, hi, !q.reverse)?
            .take(need)
            .map(|e| {
                self.reads.add(1);
                e.map(|(uid, _)| uid)
            })
            .collect()
    }

    /// The blocks of `level` inside `[lo, hi]` (block numbers), in the listing's order.
    pub(super) fn blocks_in(
        &self,
        q: &TaskQuery,
        level: u8,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<(u64, Summary)>, StoreError> {
        let mut out = self.rows.blocks(level, lo, hi)?;
        self.reads.add(out.len() as u64);
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
        for entry in self.rows.facts_range(from, to, !q.reverse)? {
            self.reads.add(1);
            let (uid, facts) = entry?;
            if test(&facts) {
                out.push(uid);
            }
            if out.len() >= need {
                break;
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
