//! The store's write operations, once for every backend: each runs inside one transaction
//! of its backend's rows (see `rows`), which commits it whole or not at all.

use serde_json::Value;

use super::indexer::Indexer;
use super::rows::RowsMut;
use super::{Created, StoreError};
use crate::record::{Idempotency, NewTask, TaskRecord, TaskUid};

/// An idempotency key's stored value: `digest\0uid`.
pub(super) fn parse_idempotency(value: &str) -> Option<(String, TaskUid)> {
    let (digest, uid) = value.split_once('\0')?;
    Some((digest.to_owned(), TaskUid(uid.parse().ok()?)))
}

/// See [`super::TaskStore::create`].
pub(super) fn create(
    rows: &mut impl RowsMut,
    task: NewTask,
    idempotency: Option<&Idempotency>,
) -> Result<Created, StoreError> {
    if let Some(idem) = idempotency {
        if let Some(seen) = rows.idempotency(&idem.key)? {
            let (digest, uid) = parse_idempotency(&seen).unwrap_or((String::new(), TaskUid(0)));
            if digest != idem.request_digest {
                return Ok(Created::KeyReused { original: uid });
            }
            return match rows.record(uid.0)? {
                Some(record) => Ok(Created::Replayed(record)),
                // The original task was deleted since: the key refers to nothing now.
                None => Ok(Created::KeyReused { original: uid }),
            };
        }
    }
    let uid = rows.allocate_uid()?;
    let record = task.with_uid(uid);
    rows.put_record(&record)?;
    let mut ix = Indexer::new(rows);
    ix.add(&record)?;
    ix.flush()?;
    if let Some(idem) = idempotency {
        let value = format!("{}\0{}", idem.request_digest, uid.0);
        rows.put_idempotency(&idem.key, &value)?;
    }
    Ok(Created::New(record))
}

/// See [`super::TaskStore::modify`].
pub(super) fn modify(
    rows: &mut impl RowsMut,
    uid: TaskUid,
    change: &mut dyn FnMut(&mut TaskRecord),
) -> Result<bool, StoreError> {
    let Some(mut record) = rows.record(uid.0)? else {
        return Ok(false);
    };
    change(&mut record);
    record.uid = uid;
    rows.put_record(&record)?;
    let mut ix = Indexer::new(rows);
    ix.reindex(&record)?;
    ix.flush()?;
    Ok(true)
}

/// See [`super::TaskStore::settle`].
pub(super) fn settle(
    rows: &mut impl RowsMut,
    views: &[(TaskUid, Value)],
) -> Result<Vec<TaskUid>, StoreError> {
    let mut settled = Vec::with_capacity(views.len());
    let mut ix = Indexer::new(rows);
    for (uid, view) in views {
        let stored = ix.rows.record(uid.0)?;
        let Some(mut record) = stored.filter(|r| r.terminal.is_none()) else {
            continue;
        };
        record.terminal = Some(view.clone());
        ix.rows.put_record(&record)?;
        ix.reindex(&record)?;
        settled.push(*uid);
    }
    ix.flush()?;
    Ok(settled)
}

/// See [`super::TaskStore::delete`].
pub(super) fn delete(rows: &mut impl RowsMut, uids: &[TaskUid]) -> Result<usize, StoreError> {
    let mut removed = 0;
    let mut ix = Indexer::new(rows);
    for uid in uids {
        if ix.rows.remove_record(uid.0)? {
            removed += 1;
        }
        ix.remove(uid.0)?;
    }
    ix.flush()?;
    Ok(removed)
}

/// Stores `records` as they are (their uids kept) and moves the uid sequence past them;
/// a record with the uid of a stored one replaces it.
pub(super) fn import(
    rows: &mut impl RowsMut,
    records: impl Iterator<Item = TaskRecord>,
) -> Result<(), StoreError> {
    let mut next_uid = 0;
    let mut ix = Indexer::new(rows);
    for record in records {
        let uid = record.uid.0;
        ix.rows.put_record(&record)?;
        ix.remove(uid)?;
        ix.add(&record)?;
        next_uid = next_uid.max(uid + 1);
    }
    ix.flush()?;
    rows.raise_next_uid(next_uid)
}
