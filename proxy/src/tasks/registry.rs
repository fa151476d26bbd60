//! Miroir's task registry as the request paths use it: recording a task (off the async
//! workers: a commit waits for fsync) and Meilisearch's 202 summary of an accepted one.

use std::sync::Arc;

use miroir_filters::error::{Code, MiroirError};
use miroir_tasks::{
    Created, Idempotency, NewTask, Replay, StoreError, TaskRecord, TaskStore, TaskUid,
};
use serde_json::{json, Value};

use crate::shared::Shared;

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn store_error(e: impl std::fmt::Display) -> MiroirError {
    log::error!(target: "miroir::tasks", "task store: {e}");
    MiroirError::new(Code::Internal, "Miroir's task store failed; see its log.")
}

fn unavailable(e: &str) -> MiroirError {
    log::warn!(target: "miroir::tasks", "task store: {e}");
    MiroirError::new(
        Code::TaskStoreUnavailable,
        "Miroir's task store (Redis) cannot be reached, so no task can be recorded: the \
         request was not applied. Searches and other reads still work; retry the write later.",
    )
}

/// Runs a blocking store call off the async workers (a commit waits for fsync, a Redis
/// round trip for the network).
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn TaskStore>,
    f: impl FnOnce(&dyn TaskStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, MiroirError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(StoreError::Unavailable(e))) => Err(unavailable(&e)),
        Ok(Err(e)) => Err(store_error(e)),
        Err(e) => Err(store_error(e)),
    }
}

/// Refuses a write before any node gets it when no task could be recorded for it now (the
/// shared store is down): nothing is acknowledged without its durable task.
pub async fn ready(shared: &Shared) -> Result<(), MiroirError> {
    blocking(&shared.tasks, |s| s.ready()).await
}

/// Records a task; at the registry's limit, wakes the cleanup (`upkeep`).
pub async fn create(
    shared: &Shared,
    task: NewTask,
    idem: Option<Idempotency>,
) -> Result<Created, MiroirError> {
    let (created, count) = blocking(&shared.tasks, move |s| {
        let created = s.create(task, idem.as_ref())?;
        Ok((created, s.count()?))
    })
    .await?;
    if count >= super::upkeep::max_tasks() {
        shared.task_upkeep.notify_one();
    }
    Ok(created)
}

/// Sets the replicas a new task's write waits for (`replays`), off the async workers.
pub async fn record_replays(shared: &Shared, uid: TaskUid, replays: Vec<Replay>) {
    let result = blocking(&shared.tasks, move |s| {
        s.modify(uid, &mut |r| r.replays = replays.clone())
    })
    .await;
    if let Err(e) = result {
        log::error!(target: "miroir::tasks", "task {}: could not record its pending replays: {e}", uid.0);
    }
}

/// Meilisearch's 202 answer for an accepted write.
pub fn summary(record: &TaskRecord) -> Value {
    let mut v = json!({
        "taskUid": record.uid.0,
        "indexUid": record.index_uid,
        "status": "enqueued",
        "type": record.kind,
        "enqueuedAt": record.enqueued_at,
    });
    if let (Some(meta), Some(obj)) = (&record.custom_metadata, v.as_object_mut()) {
        obj.insert("customMetadata".into(), json!(meta));
    }
    v
}

/// Records a task that fails without any node taking part: a batch a node would accept and
/// then fail (documents without a usable id, a primary key that cannot be inferred), judged
/// by Miroir before any node is touched. Its view is final at once: `failed`, with `error`,
/// started and finished when it was enqueued. The client gets the usual 202 summary.
pub async fn create_failed(
    shared: &Shared,
    task: NewTask,
    idem: Option<Idempotency>,
    error: &MiroirError,
) -> Result<Created, MiroirError> {
    let mut record = match create(shared, task, idem).await? {
        Created::New(record) => record,
        // The same request again under its Idempotency-Key: the task recorded the first time.
        other => return Ok(other),
    };
    let at = record.enqueued_at.clone();
    let mut view = json!({
        "uid": record.uid.0,
        "batchUid": record.uid.0,
        "indexUid": record.index_uid,
        "status": "failed",
        "type": record.kind,
        "canceledBy": null,
        "details": record.details,
        "error": error.to_json(),
        "duration": "PT0S",
        "enqueuedAt": at,
        "startedAt": at,
        "finishedAt": at,
    });
    if let (Some(meta), Some(obj)) = (&record.custom_metadata, view.as_object_mut()) {
        obj.insert("customMetadata".into(), json!(meta));
    }
    record.terminal = Some(view.clone());
    let stored = record.clone();
    blocking(&shared.tasks, move |s| s.update(&stored)).await?;
    // Settled at birth: the upkeep never sees it finish, so the webhooks hear of it here.
    shared.webhooks.finished(vec![view]);
    Ok(Created::New(record))
}
