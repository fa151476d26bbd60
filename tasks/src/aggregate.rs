//! One Meilisearch task view out of the node tasks behind a Miroir task. Pure: the caller
//! fetches each node's `GET /tasks/{uid}` and hands the answers in.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::record::TaskRecord;

/// What one node said about its part.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeView {
    /// The node's task object (`GET /tasks/{uid}`).
    Task(Value),
    /// The node could not be asked (down, timeout); its part is still pending as far as
    /// Miroir knows.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enqueued => "enqueued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "enqueued" => Status::Enqueued,
            "processing" => Status::Processing,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "canceled" => Status::Canceled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Canceled)
    }
}

/// Counters a node reports for its own share; their sum over all nodes counts every copy.
const COPY_COUNTERS: [&str; 3] = ["indexedDocuments", "deletedDocuments", "editedDocuments"];

/// Aggregates `views` (one per `record.node_tasks` entry, same order) into the task object a
/// single Meilisearch would show. `copies` is how many nodes hold each document (RF × RG), so
/// per-copy counters divide back to logical counts.
pub fn aggregate(record: &TaskRecord, views: &[NodeView], copies: u32) -> Value {
    let mut status_parts = Vec::with_capacity(views.len());
    let mut error: Option<Value> = None;
    let mut started: Option<OffsetDateTime> = None;
    let mut finished: Option<OffsetDateTime> = None;
    let mut counters = [0u64; COPY_COUNTERS.len()];
    let mut node_details: Option<Map<String, Value>> = None;
    let mut canceled_by: Option<Value> = None;

    for (part, view) in record.node_tasks.iter().zip(views) {
        if let Some(refused) = &part.error {
            status_parts.push(Some(Status::Failed));
            error.get_or_insert_with(|| refused.clone());
            continue;
        }
        let NodeView::Task(task) = view else {
            status_parts.push(None);
            continue;
        };
        let status = task["status"]
            .as_str()
            .and_then(Status::parse)
            .unwrap_or(Status::Enqueued);
        status_parts.push(Some(status));
        if status == Status::Failed && error.is_none() {
            error = task.get("error").filter(|e| !e.is_null()).cloned();
        }
        if status == Status::Canceled && canceled_by.is_none() {
            canceled_by = task.get("canceledBy").cloned();
        }
        started = earliest(started, parse_time(&task["startedAt"]));
        finished = latest(finished, parse_time(&task["finishedAt"]));
        if let Some(details) = task.get("details").and_then(Value::as_object) {
            for (slot, key) in counters.iter_mut().zip(COPY_COUNTERS) {
                *slot += details.get(key).and_then(Value::as_u64).unwrap_or(0);
            }
            node_details.get_or_insert_with(|| details.clone());
        }
    }

    // A task with no node part (a registry-only deletion, a cancelation that matched
    // nothing) is done the moment it is recorded.
    if record.node_tasks.is_empty() {
        let at = parse_time(&json!(record.enqueued_at));
        started = at;
        finished = at;
        status_parts.push(Some(Status::Succeeded));
    }
    let status = combine(&status_parts);
    let details = merge_details(record, node_details, &counters, copies, status);
    let finished = if status.is_terminal() { finished } else { None };
    // A task that ended without any node processing it (every node refused its part) was
    // still started and finished, as on a node: at its enqueue time.
    if status.is_terminal() && started.is_none() {
        started = finished.or_else(|| parse_time(&json!(record.enqueued_at)));
    }
    let finished = if status.is_terminal() {
        finished.or(started)
    } else {
        None
    };
    let duration = match (started, finished) {
        (Some(s), Some(f)) => Value::String(iso_duration(f - s)),
        _ => Value::Null,
    };
    let mut view = json!({
        "uid": record.uid.0,
        "batchUid": if status == Status::Enqueued { Value::Null } else { json!(record.uid.0) },
        "indexUid": record.index_uid,
        "status": status.as_str(),
        "type": record.kind,
        // The Miroir cancelation when it is known; a node names its own task.
        "canceledBy": match (status, record.canceled_by) {
            (Status::Canceled, Some(by)) => json!(by.0),
            _ => canceled_by.unwrap_or(Value::Null),
        },
        "details": details,
        "error": if status == Status::Failed { error.unwrap_or(Value::Null) } else { Value::Null },
        "duration": duration,
        "enqueuedAt": record.enqueued_at,
        "startedAt": started.map(format_time).unwrap_or(Value::Null),
        "finishedAt": finished.map(format_time).unwrap_or(Value::Null),
    });
    if let (Some(meta), Some(obj)) = (&record.custom_metadata, view.as_object_mut()) {
        obj.insert("customMetadata".into(), json!(meta));
    }
    view
}

/// One status for the whole task from its parts' (`None`: a node that could not be asked).
/// A part a node still applies keeps the task running even when another part failed, so a
/// client that saw it end reads every node's result. Then any failure fails it and any
/// cancelation cancels it (a node that cannot be asked does not hold that back); it
/// succeeded only when every part did.
pub fn combine(parts: &[Option<Status>]) -> Status {
    if parts.is_empty() || parts.iter().all(|s| *s == Some(Status::Enqueued)) {
        return Status::Enqueued;
    }
    let running = parts.iter().any(|s| s.is_some_and(|s| !s.is_terminal()));
    if running {
        Status::Processing
    } else if parts.contains(&Some(Status::Failed)) {
        Status::Failed
    } else if parts.contains(&Some(Status::Canceled)) {
        Status::Canceled
    } else if parts.iter().all(|s| *s == Some(Status::Succeeded)) {
        Status::Succeeded
    } else {
        Status::Processing
    }
}

fn merge_details(
    record: &TaskRecord,
    node_details: Option<Map<String, Value>>,
    counters: &[u64],
    copies: u32,
    status: Status,
) -> Value {
    let mut details = node_details.unwrap_or_default();
    let logical = |total: u64| match per_copy(record) {
        Some((items, carried)) => {
            ((u128::from(total) * u128::from(items) + u128::from(carried) / 2)
                / u128::from(carried)) as u64
        }
        None => total / u64::from(copies.max(1)),
    };
    for (key, total) in COPY_COUNTERS.iter().zip(counters) {
        if details.contains_key(*key) {
            // While parts are pending or after a failure, the counters are what a single
            // node shows then: null, and 0 once failed.
            let value = match status {
                Status::Succeeded => json!(logical(*total)),
                // An edit by function that failed shows no counts at all.
                Status::Failed | Status::Canceled if record.kind != "documentEdition" => json!(0),
                _ => Value::Null,
            };
            details.insert((*key).to_owned(), value);
        }
    }
    if let Some(Value::Object(mine)) = &record.details {
        for (k, v) in mine {
            // Miroir's placeholder for a counter only the nodes know does not hide theirs.
            if v.is_null() && COPY_COUNTERS.contains(&k.as_str()) && details.contains_key(k) {
                continue;
            }
            details.insert(k.clone(), v.clone());
        }
        // A split write knows how many documents it received: once every part succeeded they
        // were all indexed, when the nodes' counts say nothing. Where they do, theirs stand
        // (documents repeating an id are indexed once, as one node counts them).
        let counted = details.get("indexedDocuments").is_some_and(Value::is_u64);
        if status == Status::Succeeded && !counted {
            if let Some(received) = mine.get("receivedDocuments").filter(|v| v.is_u64()) {
                details.insert("indexedDocuments".into(), received.clone());
            }
        }
    }
    if details.is_empty() && record.details.is_none() {
        Value::Null
    } else {
        Value::Object(details)
    }
}

/// For a write whose parts say what they carried: the logical items (documents received, ids
/// provided) and the copies of them the counted parts carried. A replica that gets the write
/// from its log later has no part, so its copies are in neither the counters nor `carried`.
fn per_copy(record: &TaskRecord) -> Option<(u64, u64)> {
    let mine = record.details.as_ref()?;
    let items = ["receivedDocuments", "providedIds"]
        .iter()
        .find_map(|k| mine.get(*k).and_then(Value::as_u64))?;
    // Parts that carried none (settings on a node the write gave no document) count nothing.
    let carried: u64 = record
        .node_tasks
        .iter()
        .filter(|t| t.task_uid.is_some())
        .map(|t| t.share)
        .sum();
    (items > 0 && carried > 0).then_some((items, carried))
}

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

fn format_time(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}

fn earliest(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// ISO 8601 as Meilisearch prints durations: `PT0.012345S`, `PT1M2.5S`.
pub fn iso_duration(d: time::Duration) -> String {
    let total = d.as_seconds_f64().max(0.0);
    let hours = (total / 3600.0).floor();
    let minutes = ((total - hours * 3600.0) / 60.0).floor();
    let seconds = total - hours * 3600.0 - minutes * 60.0;
    let mut s = String::from("PT");
    if hours > 0.0 {
        s.push_str(&format!("{hours}H"));
    }
    if minutes > 0.0 {
        s.push_str(&format!("{minutes}M"));
    }
    let secs = format!("{seconds:.9}");
    let secs = secs.trim_end_matches('0').trim_end_matches('.');
    s.push_str(&format!("{secs}S"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NodeTask, TaskUid};

    fn record(nodes: &[&str]) -> TaskRecord {
        TaskRecord {
            uid: TaskUid(7),
            index_uid: Some("movies".into()),
            kind: "documentAdditionOrUpdate".into(),
            enqueued_at: "2026-01-01T00:00:00Z".into(),
            node_tasks: nodes
                .iter()
                .map(|n| NodeTask {
                    node: (*n).into(),
                    task_uid: Some(1),
                    error: None,
                    share: 0,
                })
                .collect(),
            custom_metadata: None,
            details: Some(json!({"receivedDocuments": 10})),
            terminal: None,
            replays: Vec::new(),
            awaiting: Vec::new(),
            canceled_by: None,
        }
    }

    fn node_task(status: &str, indexed: u64, started: &str, finished: &str) -> NodeView {
        NodeView::Task(json!({
            "status": status,
            "details": {"receivedDocuments": 5, "indexedDocuments": indexed},
            "startedAt": started,
            "finishedAt": finished,
            "error": null,
        }))
    }

    #[test]
    fn an_edit_by_function_counts_every_nodes_edits_and_none_once_failed() {
        let mut r = record(&["a", "b"]);
        r.kind = "documentEdition".into();
        r.details = None;
        let at = "2026-01-01T00:00:01Z";
        let edit = |status: &str, edited: u64| {
            NodeView::Task(json!({
                "status": status,
                "details": {"editedDocuments": edited, "deletedDocuments": 0},
                "startedAt": at, "finishedAt": at, "error": null,
            }))
        };
        let v = aggregate(&r, &[edit("succeeded", 87), edit("succeeded", 54)], 1);
        assert_eq!(v["details"]["editedDocuments"], 141);
        let v = aggregate(&r, &[edit("failed", 0), edit("succeeded", 54)], 1);
        assert_eq!(v["details"]["editedDocuments"], Value::Null);
        assert_eq!(v["details"]["deletedDocuments"], Value::Null);
    }

    #[test]
    fn documents_repeating_an_id_count_once_as_the_nodes_count_them() {
        // Ten documents received, two of them repeating an id: the parts carried 6 and 4
        // and their nodes indexed 5 and 3.
        let mut r = record(&["a", "b"]);
        r.node_tasks[0].share = 6;
        r.node_tasks[1].share = 4;
        let at = "2026-01-01T00:00:01Z";
        let views = [
            node_task("succeeded", 5, at, at),
            node_task("succeeded", 3, at, at),
        ];
        let v = aggregate(&r, &views, 1);
        assert_eq!(v["details"]["receivedDocuments"], 10);
        assert_eq!(v["details"]["indexedDocuments"], 8);
    }

    #[test]
    fn succeeded_only_when_every_part_did_with_earliest_start_and_latest_finish() {
        let r = record(&["a", "b"]);
        let views = [
            node_task(
                "succeeded",
                6,
                "2026-01-01T00:00:01Z",
                "2026-01-01T00:00:02Z",
            ),
            node_task(
                "succeeded",
                4,
                "2026-01-01T00:00:00.5Z",
                "2026-01-01T00:00:03Z",
            ),
        ];
        let v = aggregate(&r, &views, 1);
        assert_eq!(v["status"], "succeeded");
        assert_eq!(
            v["details"]["receivedDocuments"], 10,
            "Miroir's own count wins"
        );
        assert_eq!(v["details"]["indexedDocuments"], 10);
        assert_eq!(v["startedAt"], "2026-01-01T00:00:00.5Z");
        assert_eq!(v["finishedAt"], "2026-01-01T00:00:03Z");
        assert_eq!(v["duration"], "PT2.5S");
        assert_eq!(v["uid"], 7);
    }

    #[test]
    fn a_failed_part_fails_the_task_with_the_nodes_error() {
        let r = record(&["a", "b"]);
        let failed = NodeView::Task(json!({
            "status": "failed",
            "details": {"indexedDocuments": 0},
            "error": {"message": "bad", "code": "invalid_document_id", "type": "invalid_request", "link": "l"},
        }));
        let v = aggregate(&r, &[node_task("succeeded", 5, "", ""), failed], 1);
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"]["code"], "invalid_document_id");
        assert_eq!(
            v["error"]["message"], "bad",
            "the node's own words, as one node"
        );
        assert_eq!(v["details"]["indexedDocuments"], 0);
    }

    #[test]
    fn a_failed_part_waits_for_parts_a_node_still_applies() {
        let r = record(&["a", "b", "c"]);
        let failed = NodeView::Task(json!({"status": "failed", "error": {"code": "internal"}}));
        let running = aggregate(
            &r,
            &[
                node_task("processing", 0, "", ""),
                node_task("succeeded", 5, "", ""),
                failed.clone(),
            ],
            1,
        );
        assert_eq!(running["status"], "processing", "{running}");
        assert_eq!(running["error"], Value::Null);
        // A node that cannot be asked does not hold a failure back.
        let ended = aggregate(
            &r,
            &[NodeView::Unknown, node_task("succeeded", 5, "", ""), failed],
            1,
        );
        assert_eq!(ended["status"], "failed", "{ended}");
    }

    #[test]
    fn pending_parts_keep_the_task_processing() {
        let r = record(&["a", "b"]);
        let v = aggregate(
            &r,
            &[node_task("succeeded", 5, "", ""), NodeView::Unknown],
            1,
        );
        assert_eq!(v["status"], "processing");
        assert_eq!(v["finishedAt"], Value::Null);
        assert_eq!(v["details"]["indexedDocuments"], Value::Null);
        let v = aggregate(
            &r,
            &[
                node_task("enqueued", 0, "", ""),
                node_task("enqueued", 0, "", ""),
            ],
            1,
        );
        assert_eq!(v["status"], "enqueued");
        assert_eq!(v["batchUid"], Value::Null);
    }

    #[test]
    fn copies_divide_per_copy_counters_back_to_logical_counts() {
        let r = record(&["a", "b", "c"]);
        let views = [
            node_task("succeeded", 4, "", ""),
            node_task("succeeded", 4, "", ""),
            node_task("succeeded", 12, "", ""),
        ];
        // RF 2: 10 documents stored as 20 copies.
        assert_eq!(aggregate(&r, &views, 2)["details"]["indexedDocuments"], 10);
    }

    #[test]
    fn counts_stay_logical_when_a_replica_gets_the_write_later() {
        // RF 2, 10 ids: `c` is down and hinted (no part); `a` and `b` carried 6 and 8 of the
        // 20 copies and deleted them all.
        let mut r = record(&["a", "b"]);
        r.details = Some(json!({"providedIds": 10, "deletedDocuments": null}));
        r.node_tasks[0].share = 6;
        r.node_tasks[1].share = 8;
        let deleted = |n: u64| {
            NodeView::Task(
                json!({"status": "succeeded", "details": {"providedIds": n, "deletedDocuments": n}}),
            )
        };
        let v = aggregate(&r, &[deleted(6), deleted(8)], 2);
        assert_eq!(v["details"]["deletedDocuments"], 10, "{v}");
        assert_eq!(v["details"]["providedIds"], 10, "{v}");
    }

    #[test]
    fn a_refused_part_fails_the_task() {
        let mut r = record(&["a"]);
        r.node_tasks[0].error = Some(
            json!({"message": "no", "code": "index_not_found", "type": "invalid_request", "link": "l"}),
        );
        let v = aggregate(&r, &[NodeView::Unknown], 1);
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"]["code"], "index_not_found");
        // Ended without a node processing it: started and finished when recorded, as a
        // node's failed task has both.
        assert_eq!(v["startedAt"], r.enqueued_at.as_str());
        assert_eq!(v["finishedAt"], r.enqueued_at.as_str());
        assert_eq!(v["duration"], "PT0S");
    }

    #[test]
    fn a_task_without_node_parts_is_done_when_recorded() {
        let mut r = record(&[]);
        r.kind = "taskCancelation".into();
        let v = aggregate(&r, &[], 1);
        assert_eq!(v["status"], "succeeded");
        assert_eq!(v["startedAt"], r.enqueued_at.as_str());
        assert_eq!(v["duration"], "PT0S");
    }

    #[test]
    fn durations_print_like_meilisearch() {
        assert_eq!(iso_duration(time::Duration::milliseconds(12)), "PT0.012S");
        assert_eq!(iso_duration(time::Duration::seconds(62)), "PT1M2S");
        assert_eq!(iso_duration(time::Duration::ZERO), "PT0S");
    }
}
