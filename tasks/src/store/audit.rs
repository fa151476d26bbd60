//! A check of every index against the records, for tests, over any backend's rows.

use std::collections::HashMap;

use super::rows::{Cell, Rows};
use super::StoreError;
use crate::index::{describe, Facts, Summary, LEVELS};
use crate::record::TaskRecord;

/// Checks the rows' indexes against `records` (every stored record); `entries` is how many
/// entries the backend holds in all cell lists and in all canceler lists.
pub(super) fn audit(
    rows: &impl Rows,
    records: &[TaskRecord],
    entries: (u64, u64),
) -> Result<(), StoreError> {
    let bad = |what: String| Err(StoreError::Backend(what));
    let cells = rows.cells()?;
    let by_key: HashMap<(String, String, u8), &Cell> = cells
        .iter()
        .map(|c| ((c.index.clone(), c.kind.clone(), c.status), c))
        .collect();
    let mut counts: HashMap<u32, u64> = HashMap::new();
    let mut summaries: HashMap<(u8, u64), Summary> = HashMap::new();
    let mut cancelers = 0;
    for record in records {
        let uid = record.uid.0;
        let (key, dates) = describe(record);
        let Some(cell) = by_key.get(&(key.index.clone(), key.kind.clone(), key.status)) else {
            return bad(format!("task {uid}: no cell {key:?}"));
        };
        let facts = Facts {
            cell: cell.id,
            dates,
        };
        let stored = rows.facts(uid)?;
        if stored != Some(facts) {
            return bad(format!("task {uid}: facts {stored:?}, not {facts:?}"));
        }
        if rows.cell_uids(cell.id, uid, uid, false)?.next().is_none() {
            return bad(format!("task {uid}: not in its cell's list"));
        }
        if let Some(by) = dates.canceled_by {
            cancelers += 1;
            let mut under = rows.canceled_by(by)?;
            if !under.any(|u| u.is_ok_and(|u| u == uid)) {
                return bad(format!("task {uid}: not under its canceler"));
            }
        }
        *counts.entry(cell.id).or_default() += 1;
        for (level, shift) in LEVELS {
            summaries
                .entry((level, uid >> shift))
                .or_default()
                .add(&facts);
        }
    }
    let tasks = records.len() as u64;
    let with_facts = rows.facts_range(0, u64::MAX, false)?.count() as u64;
    if with_facts != tasks || entries.0 != tasks || entries.1 != cancelers {
        return bad("index tables hold tasks that are gone".into());
    }
    for c in &cells {
        if counts.get(&c.id).copied().unwrap_or(0) != c.count || c.count == 0 {
            return bad(format!(
                "cell {c:?}: {} tasks",
                counts.get(&c.id).copied().unwrap_or(0)
            ));
        }
    }
    let mut stored = HashMap::new();
    for (level, _) in LEVELS {
        for (block, s) in rows.blocks(level, 0, u64::MAX)? {
            stored.insert((level, block), s);
        }
    }
    if stored.len() != summaries.len() {
        return bad("a block summary for an empty block".into());
    }
    for ((level, block), want) in summaries {
        let Some(got) = stored.get(&(level, block)) else {
            return bad(format!("block {level}/{block}: no summary"));
        };
        let spans = got.zones.iter().zip(&want.zones).all(|(g, w)| {
            g.present == w.present && (w.present == 0 || (g.min <= w.min && g.max >= w.max))
        });
        if got.cells != want.cells || !spans {
            return bad(format!("block {level}/{block}: {got:?}, want {want:?}"));
        }
    }
    Ok(())
}
