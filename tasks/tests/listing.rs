//! Listings from the store's indexes against a naive reference that judges every task with
//! `TaskQuery::matches`: same page, same total, over generated registries, queries and
//! changes (settling, deleting), with block boundaries crossed at both levels; on every
//! backend.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Backends, Store};
use miroir_tasks::{
    DateRange, EmbeddedStore, NodeTask, Status, TaskQuery, TaskRecord, TaskStore, TaskUid,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};

struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "miroir-listing-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }

    fn store(&self) -> EmbeddedStore {
        EmbeddedStore::open(&self.0.join("tasks.redb")).expect("open store")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const INDEXES: [Option<&str>; 4] = [None, Some("a"), Some("b"), Some("c")];
const KINDS: [&str; 3] = ["documentAdditionOrUpdate", "settingsUpdate", "taskDeletion"];
const STATUSES: [Status; 5] = [
    Status::Enqueued,
    Status::Processing,
    Status::Succeeded,
    Status::Failed,
    Status::Canceled,
];
const SECOND: i64 = 1_000_000_000;
/// 2026-01-01T00:00:00Z in seconds.
const BASE: i64 = 1_767_225_600;

fn date(ns: Option<i64>) -> Value {
    match ns {
        Some(ns) => {
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
                .expect("date in range");
            json!(t
                .format(&time::format_description::well_known::Rfc3339)
                .expect("format"))
        }
        None => Value::Null,
    }
}

/// One generated task: its record and its current view (cached in the record when settled,
/// else what its nodes would say now).
#[derive(Debug, Clone)]
struct Gen {
    record: TaskRecord,
    view: Value,
}

#[derive(Debug, Clone)]
struct Spec {
    gap: u64,
    index: usize,
    kind: usize,
    status: usize,
    settled: bool,
    awaiting: bool,
    jitter: i64,
    started: Option<i64>,
    finished: Option<i64>,
    canceled_by: Option<u64>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![8 => Just(1u64), 1 => 2u64..5, 1 => Just(1000u64), 1 => Just(70_000u64)],
        0..INDEXES.len(),
        0..KINDS.len(),
        0..STATUSES.len(),
        any::<bool>(),
        prop::bool::weighted(0.05),
        -3i64..3,
        prop::option::weighted(0.8, 0i64..4),
        prop::option::weighted(0.7, 0i64..6),
        prop::option::weighted(0.3, 0u64..4),
    )
        .prop_map(
            |(
                gap,
                index,
                kind,
                status,
                settled,
                awaiting,
                jitter,
                started,
                finished,
                canceled_by,
            )| {
                Spec {
                    gap,
                    index,
                    kind,
                    status,
                    settled,
                    awaiting,
                    jitter,
                    started,
                    finished,
                    canceled_by,
                }
            },
        )
}

fn build(specs: &[Spec]) -> Vec<Gen> {
    let mut uid = 0;
    specs
        .iter()
        .map(|s| {
            uid += s.gap;
            // Enqueued roughly in uid order, not exactly (Miroir takes the request's arrival).
            let enqueued = (BASE + uid as i64 % 100_000) * SECOND + s.jitter * SECOND;
            let status = STATUSES[s.status];
            let terminal = status.is_terminal();
            let started = s.started.map(|d| enqueued + d * SECOND);
            let finished = match (terminal, started, s.finished) {
                (true, Some(st), Some(d)) => Some(st + d * SECOND),
                (true, None, Some(d)) => Some(enqueued + d * SECOND),
                _ => None,
            };
            let view = json!({
                "uid": uid,
                "status": status.as_str(),
                "canceledBy": s.canceled_by,
                "enqueuedAt": date(Some(enqueued)),
                "startedAt": date(started),
                "finishedAt": date(finished),
            });
            let settled = s.settled && terminal;
            let record = TaskRecord {
                uid: TaskUid(uid),
                index_uid: INDEXES[s.index].map(str::to_owned),
                kind: KINDS[s.kind].into(),
                enqueued_at: view["enqueuedAt"].as_str().unwrap_or_default().to_owned(),
                node_tasks: vec![NodeTask {
                    node: "n0".into(),
                    task_uid: Some(uid),
                    error: None,
                    share: 0,
                }],
                custom_metadata: None,
                details: None,
                terminal: settled.then(|| view.clone()),
                replays: Vec::new(),
                // A deletion still waiting: its cached view is not its view yet.
                awaiting: if settled && s.awaiting {
                    vec![TaskUid(0)]
                } else {
                    Vec::new()
                },
                canceled_by: None,
            };
            let view = if record.awaiting.is_empty() {
                view
            } else {
                let mut v = view;
                v["status"] = json!("processing");
                v["finishedAt"] = Value::Null;
                v
            };
            Gen { record, view }
        })
        .collect()
}

#[derive(Debug, Clone)]
struct QSpec {
    uids: Option<Vec<usize>>,
    statuses: Option<Vec<usize>>,
    types: Option<Vec<usize>>,
    indexes: Option<Vec<usize>>,
    canceled_by: Option<Vec<u64>>,
    dates: [(Option<i64>, Option<i64>); 3],
    from: Option<usize>,
    limit: usize,
    reverse: bool,
}

fn bound() -> impl Strategy<Value = Option<i64>> {
    prop::option::weighted(0.25, 0i64..100_010)
}

fn qspec() -> impl Strategy<Value = QSpec> {
    (
        prop::option::weighted(0.15, prop::collection::vec(0usize..400, 0..6)),
        prop::option::weighted(0.4, prop::collection::vec(0..STATUSES.len(), 1..3)),
        prop::option::weighted(0.3, prop::collection::vec(0..KINDS.len(), 1..3)),
        prop::option::weighted(0.3, prop::collection::vec(1..INDEXES.len(), 0..3)),
        prop::option::weighted(0.1, prop::collection::vec(0u64..4, 1..3)),
        [(bound(), bound()), (bound(), bound()), (bound(), bound())],
        prop::option::weighted(0.3, 0usize..400),
        prop_oneof![Just(1usize), 1usize..30, Just(1000usize)],
        any::<bool>(),
    )
        .prop_map(
            |(uids, statuses, types, indexes, canceled_by, dates, from, limit, reverse)| QSpec {
                uids,
                statuses,
                types,
                indexes,
                canceled_by,
                dates,
                from,
                limit,
                reverse,
            },
        )
}

fn query(q: &QSpec, tasks: &[Gen]) -> TaskQuery {
    // Uids and `from` point at generated tasks, or past them.
    let uid_at = |i: usize| {
        tasks
            .get(i % (tasks.len() + 3))
            .map_or(9_999_999, |t| t.record.uid.0)
    };
    let range = |(a, b): (Option<i64>, Option<i64>)| DateRange {
        after: a.map(|s| (BASE + s) * SECOND),
        before: b.map(|s| (BASE + s) * SECOND),
    };
    TaskQuery {
        uids: q
            .uids
            .as_ref()
            .map(|u| u.iter().map(|&i| uid_at(i)).collect()),
        statuses: q
            .statuses
            .as_ref()
            .map(|s| s.iter().map(|&i| STATUSES[i]).collect()),
        types: q
            .types
            .as_ref()
            .map(|t| t.iter().map(|&i| KINDS[i].to_owned()).collect()),
        index_uids: q.indexes.as_ref().map(|x| {
            x.iter()
                .filter_map(|&i| INDEXES[i].map(str::to_owned))
                .collect()
        }),
        canceled_by: q.canceled_by.as_ref().map(|c| c.iter().copied().collect()),
        enqueued: range(q.dates[0]),
        started: range(q.dates[1]),
        finished: range(q.dates[2]),
        from: q.from.map(uid_at),
        limit: q.limit,
        reverse: q.reverse,
        hidden_indexes: None,
    }
}

/// The reference: every task judged on its record and current view.
fn reference(tasks: &[Gen], q: &TaskQuery) -> (u64, Vec<u64>) {
    let mut matching: Vec<u64> = tasks
        .iter()
        .filter(|t| q.matches(&t.record, &t.view))
        .map(|t| t.record.uid.0)
        .collect();
    let total = matching.len() as u64;
    if !q.reverse {
        matching.reverse();
    }
    let page = matching
        .into_iter()
        .filter(|&u| match (q.from, q.reverse) {
            (None, _) => true,
            (Some(f), false) => u <= f,
            (Some(f), true) => u >= f,
        })
        .take(q.limit)
        .collect();
    (total, page)
}

/// What the proxy hands the store: the unsettled tasks whose current view passes (all of
/// them, whatever the page's start).
fn pending(store: &Store, tasks: &BTreeMap<u64, Gen>, q: &TaskQuery) -> BTreeSet<u64> {
    let every = TaskQuery {
        from: None,
        ..q.clone()
    };
    store
        .unsettled(&every, usize::MAX)
        .expect("unsettled")
        .iter()
        .filter(|r| q.matches_view(&tasks[&r.uid.0].view))
        .map(|r| r.uid.0)
        .collect()
}

fn check(store: &Store, tasks: &BTreeMap<u64, Gen>, q: &TaskQuery) {
    let all: Vec<Gen> = tasks.values().cloned().collect();
    let (total, page) = reference(&all, q);
    let got = store.list(q, &pending(store, tasks, q)).expect("list");
    let uids: Vec<u64> = got.results.iter().map(|r| r.uid.0).collect();
    assert_eq!((got.total, &uids), (total, &page), "query {q:?}");
}

#[test]
fn pages_and_totals_equal_the_naive_reference() {
    let backends = Backends::new();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let cases = (
        prop::collection::vec(spec(), 0..400),
        prop::collection::vec(qspec(), 12),
        prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    );
    runner
        .run(&cases, |(specs, queries, settle, delete)| {
            for (backend, store) in backends.stores("prop") {
                eprintln!("{backend}");
                one_case(&store, &specs, &queries, &settle, &delete);
            }
            Ok(())
        })
        .expect("listings equal the reference");
}

fn one_case(
    store: &Store,
    specs: &[Spec],
    queries: &[QSpec],
    settle: &[prop::sample::Index],
    delete: &[prop::sample::Index],
) {
    let generated = build(specs);
    store
        .import(generated.iter().map(|g| g.record.clone()))
        .expect("import");
    let mut tasks: BTreeMap<u64, Gen> =
        generated.into_iter().map(|g| (g.record.uid.0, g)).collect();
    store.audit().expect("indexes after import");
    for q in queries {
        check(
            store,
            &tasks,
            &query(q, &tasks.values().cloned().collect::<Vec<_>>()),
        );
    }
    // Finished tasks get their view cached; some tasks are deleted.
    if !tasks.is_empty() {
        let uids: Vec<u64> = tasks.keys().copied().collect();
        let mut views = Vec::new();
        for i in settle {
            let t = &tasks[&uids[i.index(uids.len())]];
            let status = t.view["status"].as_str().unwrap_or_default();
            if t.record.terminal.is_none() && matches!(status, "succeeded" | "failed" | "canceled")
            {
                views.push((t.record.uid, t.view.clone()));
            }
        }
        for (uid, view) in &views {
            tasks.get_mut(&uid.0).expect("task").record.terminal = Some(view.clone());
        }
        store.settle(views).expect("settle");
        let doomed: Vec<TaskUid> = delete
            .iter()
            .map(|i| TaskUid(uids[i.index(uids.len())]))
            .collect();
        store.delete(&doomed).expect("delete");
        for uid in &doomed {
            tasks.remove(&uid.0);
        }
    }
    store.audit().expect("indexes after settling and deleting");
    for q in queries {
        check(
            store,
            &tasks,
            &query(q, &tasks.values().cloned().collect::<Vec<_>>()),
        );
    }
}

fn task(uid: u64, index: &str, status: Option<&str>) -> TaskRecord {
    let view = status.map(|s| {
        json!({
            "uid": uid, "status": s, "canceledBy": null,
            "enqueuedAt": "2026-01-01T00:00:00Z", "startedAt": "2026-01-01T00:00:01Z",
            "finishedAt": "2026-01-01T00:00:02Z",
        })
    });
    TaskRecord {
        uid: TaskUid(uid),
        index_uid: Some(index.into()),
        kind: "documentAdditionOrUpdate".into(),
        enqueued_at: "2026-01-01T00:00:00Z".into(),
        node_tasks: Vec::new(),
        custom_metadata: None,
        details: None,
        terminal: view,
        replays: Vec::new(),
        awaiting: Vec::new(),
        canceled_by: None,
    }
}

#[test]
fn a_cached_view_moves_a_task_between_statuses_and_an_update_keeps_the_indexes() {
    let backends = Backends::new();
    for (backend, store) in backends.stores("moves") {
        eprintln!("{backend}");
        moves(&store);
    }
}

fn moves(store: &Store) {
    store
        .import([task(0, "a", None), task(1, "a", Some("failed"))])
        .expect("import");
    let failed = TaskQuery {
        statuses: Some([Status::Failed].into()),
        ..TaskQuery::default()
    };
    assert_eq!(
        store.list(&failed, &BTreeSet::new()).expect("list").total,
        1
    );
    let pending = BTreeSet::from([0]);
    assert_eq!(
        store.list(&failed, &pending).expect("list").total,
        2,
        "an unsettled task its nodes call failed"
    );
    store
        .settle(vec![(
            TaskUid(0),
            task(0, "a", Some("failed")).terminal.expect("view"),
        )])
        .expect("settle");
    assert_eq!(
        store.list(&failed, &BTreeSet::new()).expect("list").total,
        2
    );
    // Settling again changes nothing; an update moving the task to another index does.
    store
        .settle(vec![(
            TaskUid(0),
            task(0, "a", Some("succeeded")).terminal.expect("view"),
        )])
        .expect("settle");
    assert_eq!(
        store.list(&failed, &BTreeSet::new()).expect("list").total,
        2
    );
    let mut moved = store.get(TaskUid(0)).expect("get").expect("task");
    moved.index_uid = Some("b".into());
    store.update(&moved).expect("update");
    let in_b = TaskQuery {
        index_uids: Some(["b".to_owned()].into()),
        ..TaskQuery::default()
    };
    assert_eq!(store.list(&in_b, &BTreeSet::new()).expect("list").total, 1);
    // An update of a deleted task does not bring it back.
    store.delete(&[TaskUid(0)]).expect("delete");
    store.update(&moved).expect("update");
    assert!(store.get(TaskUid(0)).expect("get").is_none());
    assert!(!store
        .modify(TaskUid(0), &mut |r| r.details = None)
        .expect("modify"));
    store.audit().expect("audit");
}

#[test]
fn a_store_without_indexes_gets_them_when_opened() {
    let dir = Dir::new("upgrade");
    let path = dir.0.join("tasks.redb");
    std::fs::create_dir_all(&dir.0).expect("dir");
    {
        // The layout of earlier versions: records and the uid sequence only.
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut tasks = txn
                .open_table(redb::TableDefinition::<u64, &[u8]>::new("tasks"))
                .expect("tasks");
            for uid in 0..3000u64 {
                let r = task(uid, ["a", "b"][uid as usize % 2], Some("succeeded"));
                tasks
                    .insert(uid, serde_json::to_vec(&r).expect("json").as_slice())
                    .expect("insert");
            }
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .expect("meta");
            meta.insert("next_uid", 3000).expect("next");
        }
        txn.commit().expect("commit");
    }
    let store = dir.store();
    store.audit().expect("indexes built");
    let in_a = TaskQuery {
        index_uids: Some(["a".to_owned()].into()),
        limit: 2,
        ..TaskQuery::default()
    };
    let page = store.list(&in_a, &BTreeSet::new()).expect("list");
    assert_eq!(page.total, 1500);
    assert_eq!(
        page.results.iter().map(|r| r.uid.0).collect::<Vec<_>>(),
        [2998, 2996]
    );
}
