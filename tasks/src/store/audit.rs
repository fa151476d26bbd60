//! A check of every index against the records, for tests.

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata};

use super::reader::{Cell, Reader};
use super::tables::{decode, TASKS};
use super::{backend, StoreError};
use crate::index::{describe, Facts, Summary, LEVELS};

/// See [`super::EmbeddedStore::audit`].
pub(super) fn audit(txn: &redb::ReadTransaction) -> Result<(), StoreError> {
    let bad = |what: String| Err(StoreError::Backend(what));
    let tasks = txn.open_table(TASKS).map_err(backend)?;
    let r = Reader::open(txn)?;
    let by_key: HashMap<(String, String, u8), &Cell> = r
        .cells
        .iter()
        .map(|c| ((c.index.clone(), c.kind.clone(), c.status), c))
        .collect();
    let mut counts: HashMap<u32, u64> = HashMap::new();
    let mut summaries: HashMap<(u8, u64), Summary> = HashMap::new();
    let mut cancelers = 0;
    for entry in tasks.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let uid = k.value();
        let (key, dates) = describe(&decode(uid, v.value())?);
        let Some(cell) = by_key.get(&(key.index.clone(), key.kind.clone(), key.status)) else {
            return bad(format!("task {uid}: no cell {key:?}"));
        };
        let facts = Facts {
            cell: cell.id,
            dates,
        };
        if r.facts(uid)? != Some(facts) {
            return bad(format!(
                "task {uid}: facts {:?}, not {facts:?}",
                r.facts(uid)?
            ));
        }
        if r.by_cell.get((cell.id, uid)).map_err(backend)?.is_none() {
            return bad(format!("task {uid}: not in its cell's list"));
        }
        if let Some(by) = dates.canceled_by {
            cancelers += 1;
            if r.by_canceler.get((by, uid)).map_err(backend)?.is_none() {
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
    if r.facts.len().map_err(backend)? != tasks.len().map_err(backend)?
        || r.by_cell.len().map_err(backend)? != tasks.len().map_err(backend)?
        || r.by_canceler.len().map_err(backend)? != cancelers
    {
        return bad("index tables hold tasks that are gone".into());
    }
    for c in &r.cells {
        if counts.get(&c.id).copied().unwrap_or(0) != c.count || c.count == 0 {
            return bad(format!(
                "cell {c:?}: {} tasks",
                counts.get(&c.id).copied().unwrap_or(0)
            ));
        }
    }
    if r.blocks.len().map_err(backend)? != summaries.len() as u64 {
        return bad("a block summary for an empty block".into());
    }
    for ((level, block), want) in summaries {
        let stored = r
            .blocks
            .get((level, block))
            .map_err(backend)?
            .and_then(|v| Summary::decode(v.value()));
        let Some(got) = stored else {
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
