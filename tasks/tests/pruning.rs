//! The registry's automatic cleanup, as Meilisearch 1.50's task queue does it: at the limit,
//! the oldest finished tasks go (at most a batch, and only two or more), and a finished
//! `taskDeletion` task says so; on every backend.

mod common;

use std::collections::BTreeSet;

use common::{Backends, Store};
use miroir_tasks::{Pruned, Status, TaskQuery, TaskRecord, TaskUid};
use serde_json::json;
use time::macros::datetime;

/// Task `uid`, enqueued `uid` seconds after midnight; finished (its view cached) or not.
fn task(uid: u64, finished: bool) -> TaskRecord {
    let enqueued = format!("2026-01-01T00:00:{uid:02}.5Z");
    TaskRecord {
        uid: TaskUid(uid),
        index_uid: Some("movies".into()),
        kind: "documentAdditionOrUpdate".into(),
        enqueued_at: enqueued.clone(),
        node_tasks: Vec::new(),
        custom_metadata: None,
        details: None,
        terminal: finished.then(|| {
            json!({"uid": uid, "status": "succeeded", "enqueuedAt": enqueued,
                   "startedAt": enqueued, "finishedAt": enqueued, "canceledBy": null})
        }),
        replays: Vec::new(),
        awaiting: Vec::new(),
        canceled_by: None,
    }
}

fn uids(store: &Store) -> Vec<u64> {
    let all = TaskQuery {
        reverse: true,
        ..TaskQuery::default()
    };
    let page = store.list(&all, &BTreeSet::new()).expect("list");
    page.results.iter().map(|r| r.uid.0).collect()
}

#[test]
fn at_the_limit_the_oldest_finished_tasks_go_and_a_deletion_task_says_so() {
    let backends = Backends::new();
    for (backend, store) in backends.stores("limit") {
        eprintln!("{backend}");
        at_the_limit(&store);
    }
}

fn at_the_limit(store: &Store) {
    // Unfinished tasks among finished ones: 0, 3 and 6 are still running.
    store
        .import((0..13).map(|uid| task(uid, uid % 3 != 0)))
        .expect("import");
    let now = datetime!(2026-01-02 00:00 UTC);
    assert_eq!(store.prune(14, 4, now).expect("prune"), Pruned::NotFull);
    let Pruned::Deleted(deletion) = store.prune(13, 4, now).expect("prune") else {
        panic!("nothing pruned");
    };
    assert_eq!(deletion.uid, TaskUid(13), "the next uid");
    assert_eq!(deletion.kind, "taskDeletion");
    assert_eq!(deletion.index_uid, None);
    assert_eq!(
        deletion.details,
        Some(json!({
            "matchedTasks": 4,
            "deletedTasks": 4,
            "originalFilter": "?beforeEnqueuedAt=2026-01-01T00:00:05.500000001Z&statuses=succeeded,failed,canceled",
        }))
    );
    let view = deletion.terminal.as_ref().expect("finished as recorded");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["enqueuedAt"], "2026-01-02T00:00:00Z");
    // 1, 2, 4 and 5 are gone; the unfinished 0 and 3 stay.
    assert_eq!(uids(store), [0, 3, 6, 7, 8, 9, 10, 11, 12, 13]);
    assert_eq!(store.count().expect("count"), 10);
    let succeeded = TaskQuery {
        statuses: Some([Status::Succeeded].into()),
        types: Some(["taskDeletion".to_owned()].into()),
        ..TaskQuery::default()
    };
    assert_eq!(
        store
            .list(&succeeded, &BTreeSet::new())
            .expect("list")
            .total,
        1
    );
    store.audit().expect("indexes");
}

#[test]
fn fewer_than_two_finished_tasks_are_not_worth_a_deletion() {
    let backends = Backends::new();
    for (backend, store) in backends.stores("few") {
        eprintln!("{backend}");
        few(&store);
    }
}

fn few(store: &Store) {
    store
        .import([task(0, false), task(1, true), task(2, false)])
        .expect("import");
    let now = datetime!(2026-01-02 00:00 UTC);
    assert_eq!(
        store.prune(2, 100, now).expect("prune"),
        Pruned::NothingFinished
    );
    assert_eq!(uids(store), [0, 1, 2]);
    store.import([task(3, true)]).expect("import");
    let Pruned::Deleted(deletion) = store.prune(2, 100, now).expect("prune") else {
        panic!("nothing pruned");
    };
    assert_eq!(
        deletion.details.as_ref().expect("details")["deletedTasks"],
        2
    );
    assert_eq!(uids(store), [0, 2, 4]);
    // The deletion itself is finished: with two unfinished tasks and it, one finished task.
    assert_eq!(
        store.prune(2, 100, now).expect("prune"),
        Pruned::NothingFinished
    );
    store.audit().expect("indexes");
}
