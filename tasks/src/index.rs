//! What the store's indexes keep of each task, so a listing reads only what its page needs:
//! the task's cell (index, type, and its final status once its view is cached) and the dates
//! a filter can ask about, and per block of uids a summary (tasks per cell, and the span and
//! count of each date) that lets a walk skip whole blocks and count whole blocks at once.
//! Pure encoding and arithmetic; the tables live in `store`.

use crate::aggregate::Status;
use crate::query::{parse_date, view_date, DateRange, TaskQuery};
use crate::record::TaskRecord;

/// A task whose final view is not cached yet: its status is only known by asking its nodes.
pub(crate) const UNSETTLED: u8 = 0;

pub(crate) fn status_code(s: Status) -> u8 {
    match s {
        Status::Succeeded => 1,
        Status::Failed => 2,
        Status::Canceled => 3,
        Status::Enqueued | Status::Processing => UNSETTLED,
    }
}

pub(crate) fn code_status(code: u8) -> Option<Status> {
    match code {
        1 => Some(Status::Succeeded),
        2 => Some(Status::Failed),
        3 => Some(Status::Canceled),
        _ => None,
    }
}

/// The cell of a task: its index (`""` for none), its type and its settled status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CellKey {
    pub index: String,
    pub kind: String,
    pub status: u8,
}

/// What the indexes know of one task, besides its cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dates {
    /// `enqueuedAt`, `startedAt`, `finishedAt`, in nanoseconds.
    pub at: [Option<i64>; 3],
    pub canceled_by: Option<u64>,
}

/// One task as the indexes know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    pub cell: u32,
    pub dates: Dates,
}

/// A task's cell and dates, from its record (and its cached view once settled).
pub(crate) fn describe(r: &TaskRecord) -> (CellKey, Dates) {
    let index = r.index_uid.clone().unwrap_or_default();
    let settled = crate::query::settled_view(r).and_then(|v| {
        let status = v["status"].as_str().and_then(Status::parse)?;
        status.is_terminal().then_some((v, status))
    });
    match settled {
        Some((v, status)) => (
            CellKey {
                index,
                kind: r.kind.clone(),
                status: status_code(status),
            },
            Dates {
                at: [
                    view_date(&v["enqueuedAt"]),
                    view_date(&v["startedAt"]),
                    view_date(&v["finishedAt"]),
                ],
                canceled_by: v["canceledBy"].as_u64(),
            },
        ),
        None => (
            CellKey {
                index,
                kind: r.kind.clone(),
                status: UNSETTLED,
            },
            Dates {
                at: [parse_date(&r.enqueued_at), None, None],
                canceled_by: None,
            },
        ),
    }
}

/// `Facts` as a table row; `i64::MIN` and `u64::MAX` stand for "none".
pub(crate) type FactsRow = (u32, i64, i64, i64, u64);

impl Facts {
    pub fn row(&self) -> FactsRow {
        let d = |t: Option<i64>| t.unwrap_or(i64::MIN);
        (
            self.cell,
            d(self.dates.at[0]),
            d(self.dates.at[1]),
            d(self.dates.at[2]),
            self.dates.canceled_by.unwrap_or(u64::MAX),
        )
    }

    pub fn from_row(row: FactsRow) -> Self {
        let d = |t: i64| (t != i64::MIN).then_some(t);
        Facts {
            cell: row.0,
            dates: Dates {
                at: [d(row.1), d(row.2), d(row.3)],
                canceled_by: (row.4 != u64::MAX).then_some(row.4),
            },
        }
    }
}

/// The query's date ranges, in the order of `Dates::at`.
pub(crate) fn ranges(q: &TaskQuery) -> [DateRange; 3] {
    [q.enqueued, q.started, q.finished]
}

/// Whether a settled task's dates and cancelation pass the query's view filters (its status
/// is its cell's, judged by the caller).
pub(crate) fn dates_match(q: &TaskQuery, d: &Dates) -> bool {
    q.canceled_by
        .as_ref()
        .is_none_or(|c| d.canceled_by.is_some_and(|u| c.contains(&u)))
        && ranges(q).iter().zip(d.at).all(|(r, t)| r.contains(t))
}

/// Block levels: a level-1 block holds 1 024 consecutive uids, a level-2 block 65 536.
pub(crate) const LEVELS: [(u8, u32); 2] = [(1, 10), (2, 16)];

/// The span of one date over the tasks of a block that have it. Deleting a task does not
/// narrow it (only emptying does): a span may be wider than the tasks, never narrower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Zone {
    pub min: i64,
    pub max: i64,
    /// How many tasks of the block have the date.
    pub present: u32,
}

impl Default for Zone {
    fn default() -> Self {
        Zone {
            min: i64::MAX,
            max: i64::MIN,
            present: 0,
        }
    }
}

/// The tasks of one block: how many per cell, and the span of each date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// `(cell, tasks)`, by cell.
    pub cells: Vec<(u32, u32)>,
    pub zones: [Zone; 3],
}

/// What a block summary says about a query.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No task of the block matches.
    None,
    /// Every task of the wanted cells matches: this many.
    All(u64),
    /// Some may: read the block's tasks.
    Some,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.cells.iter().map(|&(_, n)| u64::from(n)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn add(&mut self, f: &Facts) {
        match self.cells.binary_search_by_key(&f.cell, |&(c, _)| c) {
            Ok(i) => self.cells[i].1 += 1,
            Err(i) => self.cells.insert(i, (f.cell, 1)),
        }
        for (zone, t) in self.zones.iter_mut().zip(f.dates.at) {
            if let Some(t) = t {
                zone.min = zone.min.min(t);
                zone.max = zone.max.max(t);
                zone.present += 1;
            }
        }
    }

    pub fn remove(&mut self, f: &Facts) {
        if let Ok(i) = self.cells.binary_search_by_key(&f.cell, |&(c, _)| c) {
            self.cells[i].1 -= 1;
            if self.cells[i].1 == 0 {
                self.cells.remove(i);
            }
        }
        for (zone, t) in self.zones.iter_mut().zip(f.dates.at) {
            if t.is_some() {
                zone.present = zone.present.saturating_sub(1);
                if zone.present == 0 {
                    *zone = Zone::default();
                }
            }
        }
    }

    /// What the block holds for a query whose wanted cells are `wanted` (the caller has no
    /// `canceledBy` filter: spans say nothing of cancelations).
    pub fn judge(&self, wanted: &impl Fn(u32) -> bool, q: &TaskQuery) -> Verdict {
        let matching: u64 = self
            .cells
            .iter()
            .filter(|&&(c, _)| wanted(c))
            .map(|&(_, n)| u64::from(n))
            .sum();
        if matching == 0 {
            return Verdict::None;
        }
        let total = self.total();
        let mut all = q.canceled_by.is_none();
        for (zone, range) in self.zones.iter().zip(ranges(q)) {
            if range.is_any() {
                continue;
            }
            if zone.present == 0 || !range.meets(zone.min, zone.max) {
                return Verdict::None;
            }
            if u64::from(zone.present) != total || !range.covers(zone.min, zone.max) {
                all = false;
            }
        }
        if all {
            Verdict::All(matching)
        } else {
            Verdict::Some
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.cells.len() * 8 + 3 * 20);
        out.extend((self.cells.len() as u32).to_le_bytes());
        for (c, n) in &self.cells {
            out.extend(c.to_le_bytes());
            out.extend(n.to_le_bytes());
        }
        for z in &self.zones {
            out.extend(z.min.to_le_bytes());
            out.extend(z.max.to_le_bytes());
            out.extend(z.present.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut at = 0;
        let mut take = |n: usize| {
            let s = bytes.get(at..at + n)?;
            at += n;
            Some(s)
        };
        let u32_of = |s: &[u8]| s.try_into().ok().map(u32::from_le_bytes);
        let i64_of = |s: &[u8]| s.try_into().ok().map(i64::from_le_bytes);
        let len = u32_of(take(4)?)? as usize;
        let mut cells = Vec::with_capacity(len.min(1 << 16));
        for _ in 0..len {
            cells.push((u32_of(take(4)?)?, u32_of(take(4)?)?));
        }
        let mut zones = [Zone::default(); 3];
        for z in &mut zones {
            z.min = i64_of(take(8)?)?;
            z.max = i64_of(take(8)?)?;
            z.present = u32_of(take(4)?)?;
        }
        Some(Summary { cells, zones })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cell: u32, enq: i64, fin: Option<i64>) -> Facts {
        Facts {
            cell,
            dates: Dates {
                at: [Some(enq), None, fin],
                canceled_by: None,
            },
        }
    }

    #[test]
    fn summaries_count_cells_and_spans_and_round_trip() {
        let mut s = Summary::default();
        s.add(&facts(3, 10, Some(15)));
        s.add(&facts(1, 20, None));
        s.add(&facts(3, 30, Some(35)));
        assert_eq!(s.cells, vec![(1, 1), (3, 2)]);
        assert_eq!(
            s.zones[0],
            Zone {
                min: 10,
                max: 30,
                present: 3
            }
        );
        assert_eq!(
            s.zones[2],
            Zone {
                min: 15,
                max: 35,
                present: 2
            }
        );
        assert_eq!(Summary::decode(&s.encode()), Some(s.clone()));
        s.remove(&facts(1, 20, None));
        assert_eq!(s.cells, vec![(3, 2)]);
        assert_eq!(s.zones[0].present, 2, "spans stay, counts follow");
        s.remove(&facts(3, 10, Some(15)));
        s.remove(&facts(3, 30, Some(35)));
        assert!(s.is_empty());
        assert_eq!(s.zones, [Zone::default(); 3]);
        assert_eq!(Summary::decode(&[1, 0]), None);
    }

    #[test]
    fn a_block_is_skipped_counted_whole_or_read() {
        let mut s = Summary::default();
        s.add(&facts(1, 10, Some(15)));
        s.add(&facts(2, 20, Some(25)));
        let any = |_: u32| true;
        let mut q = TaskQuery::default();
        assert_eq!(s.judge(&any, &q), Verdict::All(2));
        assert_eq!(s.judge(&|c| c == 2, &q), Verdict::All(1));
        assert_eq!(s.judge(&|c| c == 7, &q), Verdict::None);
        q.enqueued.after = Some(5);
        assert_eq!(s.judge(&any, &q), Verdict::All(2));
        q.enqueued.after = Some(10);
        assert_eq!(s.judge(&any, &q), Verdict::Some);
        q.enqueued.after = Some(20);
        assert_eq!(s.judge(&any, &q), Verdict::None);
        q.enqueued = DateRange::default();
        q.started.before = Some(100);
        assert_eq!(s.judge(&any, &q), Verdict::None, "no task has started");
        q.started = DateRange::default();
        s.add(&facts(1, 12, None));
        q.finished.after = Some(0);
        assert_eq!(
            s.judge(&any, &q),
            Verdict::Some,
            "one task has no finishedAt"
        );
    }
}
