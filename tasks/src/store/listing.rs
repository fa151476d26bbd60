//! Listings over the indexes: a page and its total, and the unsettled tasks a caller asks
//! its nodes about.

use std::collections::{BTreeSet, HashSet};

use super::reader::{
    in_order, merge_cells, record_filters_pass, wanted_cells, Reader, MERGE_CELLS,
};
use super::rows::Rows;
use super::{Page, StoreError};
use crate::index::{dates_match, Facts, UNSETTLED};
use crate::query::TaskQuery;
use crate::record::TaskRecord;

impl<R: Rows> Reader<R> {
    /// See [`super::TaskStore::unsettled`].
    pub(super) fn unsettled(
        &self,
        q: &TaskQuery,
        max: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let uids = match &q.uids {
            Some(uids) => {
                let mut found = Vec::new();
                for &uid in uids.range(q.from.unwrap_or(0)..) {
                    let Some(f) = self.facts(uid)? else { continue };
                    if self
                        .cell(f.cell)
                        .is_some_and(|c| c.status == UNSETTLED && record_filters_pass(q, c))
                    {
                        found.push(uid);
                    }
                    if found.len() >= max {
                        break;
                    }
                }
                found
            }
            None => {
                let cells: Vec<u32> = self
                    .cells
                    .iter()
                    .filter(|c| c.status == UNSETTLED && record_filters_pass(q, c))
                    .map(|c| c.id)
                    .collect();
                let oldest_first = TaskQuery {
                    from: q.from,
                    reverse: true,
                    ..TaskQuery::default()
                };
                merge_cells(&self.rows, &cells, &oldest_first, max, &self.reads)?
            }
        };
        let mut records = Vec::with_capacity(uids.len());
        for uid in uids {
            records.extend(self.record(uid)?);
        }
        Ok(records)
    }

    /// See [`super::TaskStore::list`].
    pub(super) fn page(&self, q: &TaskQuery, pending: &BTreeSet<u64>) -> Result<Page, StoreError> {
        let wanted_ids = wanted_cells(q, &self.cells);
        let wanted_set: HashSet<u32> = wanted_ids.iter().copied().collect();
        let wanted = |c: u32| wanted_set.contains(&c);
        // Unsettled tasks the caller found matching, still unsettled.
        let mut still_pending = BTreeSet::new();
        if q.needs_views() {
            for &uid in pending {
                let Some(f) = self.facts(uid)? else { continue };
                let pass = self
                    .cell(f.cell)
                    .is_some_and(|c| c.status == UNSETTLED && record_filters_pass(q, c));
                if pass && q.uids.as_ref().is_none_or(|u| u.contains(&uid)) {
                    still_pending.insert(uid);
                }
            }
        }
        let test = |f: &Facts| wanted(f.cell) && dates_match(q, &f.dates);
        let need = q.limit;
        let (total, mut page) = if let Some(uids) = &q.uids {
            // Each named task looked up.
            let mut candidates: Vec<u64> = uids.iter().copied().collect();
            in_order(q, &mut candidates);
            let mut total = 0;
            let mut page = Vec::new();
            for uid in candidates {
                let Some(f) = self.facts(uid)? else { continue };
                let unsettled = self.cell(f.cell).is_none_or(|c| c.status == UNSETTLED);
                let matched = if unsettled && q.needs_views() {
                    still_pending.contains(&uid)
                } else {
                    test(&f)
                };
                if matched {
                    total += 1;
                    if page.len() < need && q.after_from(uid) {
                        page.push(uid);
                    }
                }
            }
            (total, page)
        } else if let Some(cancelers) = &q.canceled_by {
            // The tasks each named cancelation canceled.
            let mut found = Vec::new();
            for &by in cancelers {
                for entry in self.rows.canceled_by(by)? {
                    self.reads.add(1);
                    let uid = entry?;
                    if self.facts(uid)?.is_some_and(|f| test(&f)) {
                        found.push(uid);
                    }
                }
            }
            let total = (found.len() + still_pending.len()) as u64;
            found.retain(|&u| q.after_from(u));
            in_order(q, &mut found);
            found.truncate(need);
            (total, found)
        } else if [q.enqueued, q.started, q.finished]
            .iter()
            .all(|d| d.is_any())
        {
            // Counts per cell give the total; the page reads only its own tasks.
            let total = self
                .cells
                .iter()
                .filter(|c| wanted(c.id))
                .map(|c| c.count)
                .sum::<u64>()
                + still_pending.len() as u64;
            let page = if wanted_ids.len() == self.cells.len() && !q.needs_views() {
                self.walk_all(q, need)?
            } else if wanted_ids.len() <= MERGE_CELLS {
                merge_cells(&self.rows, &wanted_ids, q, need, &self.reads)?
            } else {
                self.walk_blocks(q, &wanted, &test, need)?
            };
            (total, page)
        } else {
            let total = self.count_blocks(q, &wanted, &test)? + still_pending.len() as u64;
            (total, self.walk_blocks(q, &wanted, &test, need)?)
        };
        page.extend(still_pending.into_iter().filter(|&u| q.after_from(u)));
        in_order(q, &mut page);
        // A named task can be both looked up and pending.
        page.dedup();
        page.truncate(need);
        let mut results = Vec::with_capacity(page.len());
        for uid in page {
            results.extend(self.record(uid)?);
        }
        Ok(Page {
            results,
            total,
            reads: self.reads.get(),
        })
    }
}
