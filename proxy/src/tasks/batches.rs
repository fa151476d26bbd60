//! `GET /batches` and `GET /batches/{uid}`: Miroir batches nothing, so each task is shown as
//! its own batch with the task's uid.

use miroir_filters::error::{Code, MiroirError};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::routes::{get_task, list_tasks};
use crate::cluster::Runtime;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

/// A Miroir task seen as a Meilisearch batch: Miroir batches nothing, so each task is its own
/// batch with the task's uid.
fn batch_of(task: &Value) -> Value {
    let status = task["status"].as_str().unwrap_or("enqueued");
    let mut index_uids = serde_json::Map::new();
    if let Some(uid) = task["indexUid"].as_str() {
        index_uids.insert(uid.to_owned(), json!(1));
    }
    json!({
        "uid": task["uid"],
        "progress": null,
        "details": task["details"],
        "stats": {
            "totalNbTasks": 1,
            "status": { status: 1 },
            "types": { task["type"].as_str().unwrap_or("unknown"): 1 },
            "indexUids": index_uids,
            "progressTrace": progress_trace(task),
        },
        "duration": task["duration"],
        "startedAt": task["startedAt"],
        "finishedAt": task["finishedAt"],
        "batchStrategy": "Miroir runs each task in its own batch",
    })
}

/// A node lists the time each step of a batch took, written as Rust's `{:.2?}` writes a
/// duration (`1.01s`, `75.46µs`). Miroir's steps are the nodes' work as a whole: the batch's
/// one step is `processing tasks`, from the earliest start to the latest finish.
fn progress_trace(task: &Value) -> Value {
    let at = |k: &str| {
        task[k]
            .as_str()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    };
    match (at("startedAt"), at("finishedAt")) {
        (Some(start), Some(end)) => {
            let took = std::time::Duration::try_from(end - start).unwrap_or_default();
            json!({ "processing tasks": format!("{took:.2?}") })
        }
        _ => json!({}),
    }
}

/// `GET /batches` and `GET /batches/{uid}`, derived from the task registry.
pub async fn batches(shared: &Shared, rt: &Runtime, inc: &Incoming, uid: Option<&str>) -> Reply {
    match uid {
        Some(raw) => {
            let reply = get_task(shared, rt, inc, raw).await;
            if reply.status != 200 {
                // Meilisearch names the batch, not the task, in these errors.
                return match raw.parse::<u64>() {
                    Ok(n) if reply.status == 404 => Reply::error(&MiroirError::new(
                        Code::BatchNotFound,
                        format!("Batch `{n}` not found."),
                    )),
                    Err(_) if reply.status == 400 => Reply::error(&MiroirError::new(
                        Code::InvalidBatchUids,
                        format!(
                            "Batch uid `{raw}` is invalid. It should only contain numeric characters."
                        ),
                    )),
                    _ => reply,
                };
            }
            let task: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            Reply::json(200, &batch_of(&task))
        }
        None => {
            let reply = list_tasks(shared, rt, inc).await;
            if reply.status != 200 {
                return reply;
            }
            let mut page: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            if let Some(results) = page["results"].as_array_mut() {
                for r in results.iter_mut() {
                    *r = batch_of(r);
                }
            }
            Reply::json(200, &page)
        }
    }
}
