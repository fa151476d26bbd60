//! Meilisearch's automatic cleanup of its task queue (1.50, `IndexScheduler::tick` then
//! `Queue::cleanup_task_queue`): with `max_number_of_tasks` tasks or more, the oldest finished
//! tasks (at most 100 000, and only if there are two or more, so it never deletes just its
//! own previous deletion) are deleted by a `taskDeletion` task whose filter reads
//! `?beforeEnqueuedAt=<newest deleted task's enqueuedAt + 1 ns>&statuses=succeeded,failed,canceled`.
//! Miroir does the same in one transaction and records the deletion already finished.

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::indexer::Indexer;
use super::reader::merge_cells;
use super::rows::RowsMut;
use super::{backend, Pruned, StoreError};
use crate::aggregate::aggregate;
use crate::index::UNSETTLED;
use crate::query::TaskQuery;
use crate::record::{NewTask, TaskRecord, TaskUid};

/// See [`super::TaskStore::prune`]. The caller commits when something was deleted.
pub(super) fn prune(
    rows: &mut impl RowsMut,
    limit: u64,
    batch: usize,
    now: OffsetDateTime,
) -> Result<Pruned, StoreError> {
    if rows.task_count()? < limit {
        return Ok(Pruned::NotFull);
    }
    let settled: Vec<u32> = rows
        .cells()?
        .into_iter()
        .filter(|c| c.status != UNSETTLED)
        .map(|c| c.id)
        .collect();
    let oldest_first = TaskQuery {
        reverse: true,
        ..TaskQuery::default()
    };
    let doomed = merge_cells(&*rows, &settled, &oldest_first, batch, &Default::default())?;
    // Meilisearch needs two: deleting only its own earlier deletion could loop.
    let Some(&newest) = doomed.last().filter(|_| doomed.len() >= 2) else {
        return Ok(Pruned::NothingFinished);
    };
    let newest_enqueued = rows
        .record(newest)?
        .and_then(|r| OffsetDateTime::parse(&r.enqueued_at, &Rfc3339).ok())
        .unwrap_or(now);
    // As Meilisearch words it: one nanosecond after the newest deleted task.
    let before = (newest_enqueued + time::Duration::nanoseconds(1))
        .format(&Rfc3339)
        .map_err(backend)?;
    let uid = rows.allocate_uid()?;
    let record = deletion(uid, &doomed, &before, now)?;
    let mut ix = Indexer::new(rows);
    for &uid in &doomed {
        ix.rows.remove_record(uid)?;
        ix.remove(uid)?;
    }
    ix.rows.put_record(&record)?;
    ix.add(&record)?;
    ix.flush()?;
    Ok(Pruned::Deleted(Box::new(record)))
}

/// The finished `taskDeletion` task that says what a cleanup deleted.
fn deletion(
    uid: TaskUid,
    doomed: &[u64],
    before: &str,
    now: OffsetDateTime,
) -> Result<TaskRecord, StoreError> {
    let mut record = NewTask {
        index_uid: None,
        kind: "taskDeletion".into(),
        enqueued_at: now.format(&Rfc3339).map_err(backend)?,
        node_tasks: Vec::new(),
        custom_metadata: None,
        details: Some(json!({
            "matchedTasks": doomed.len(),
            "deletedTasks": doomed.len(),
            "originalFilter": format!("?beforeEnqueuedAt={before}&statuses=succeeded,failed,canceled"),
        })),
    }
    .with_uid(uid);
    // No node part: done as recorded.
    record.terminal = Some(aggregate(&record, &[], 1));
    Ok(record)
}
