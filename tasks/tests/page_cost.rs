//! A listing's cost does not grow with the registry: the same queries over 2 000 and over
//! 200 000 tasks read about as many table entries (`Page::reads`), each about its page; on
//! every backend (Redis: each entry a command's worth of data, uid lists read in chunks).

mod common;

use std::collections::BTreeSet;

use common::{Backends, Store};
use miroir_tasks::{parse_date, DateRange, Status, TaskQuery, TaskRecord, TaskUid};
use serde_json::json;

const INDEXES: [&str; 3] = ["a", "b", "c"];
const KINDS: [&str; 2] = ["documentAdditionOrUpdate", "settingsUpdate"];

/// The instant task `uid` was enqueued: one second after the previous one.
fn at(uid: u64) -> String {
    let t = time::macros::datetime!(2026-01-01 00:00 UTC) + time::Duration::seconds(uid as i64);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("date")
}

/// A finished task; one in 50 failed, the last ten are unfinished.
fn task(uid: u64, count: u64) -> TaskRecord {
    let status = if uid % 50 == 7 { "failed" } else { "succeeded" };
    let finished = uid + 10 < count;
    TaskRecord {
        uid: TaskUid(uid),
        index_uid: Some(INDEXES[(uid % 3) as usize].into()),
        kind: KINDS[uid.is_multiple_of(7) as usize].into(),
        enqueued_at: at(uid),
        node_tasks: Vec::new(),
        custom_metadata: None,
        details: None,
        terminal: finished.then(|| {
            json!({"uid": uid, "status": status, "canceledBy": null,
                   "enqueuedAt": at(uid), "startedAt": at(uid), "finishedAt": at(uid)})
        }),
        replays: Vec::new(),
        awaiting: Vec::new(),
        canceled_by: None,
    }
}

fn filled(store: Store, count: u64) -> Store {
    store
        .import((0..count).map(|uid| task(uid, count)))
        .expect("import");
    store
}

/// The queries, as a function of the registry's size (positions relative to its end).
fn queries(count: u64) -> Vec<(&'static str, TaskQuery)> {
    let page = |q: TaskQuery| TaskQuery { limit: 20, ..q };
    let recent = DateRange {
        after: parse_date(&at(count - 500)),
        before: None,
    };
    vec![
        ("newest", page(TaskQuery::default())),
        (
            "from the middle",
            page(TaskQuery {
                from: Some(count / 2),
                ..TaskQuery::default()
            }),
        ),
        (
            "oldest first",
            page(TaskQuery {
                reverse: true,
                ..TaskQuery::default()
            }),
        ),
        (
            "failed",
            page(TaskQuery {
                statuses: Some([Status::Failed].into()),
                ..TaskQuery::default()
            }),
        ),
        (
            "one index, one type",
            page(TaskQuery {
                index_uids: Some(["b".to_owned()].into()),
                types: Some(["settingsUpdate".to_owned()].into()),
                ..TaskQuery::default()
            }),
        ),
        (
            "named uids",
            page(TaskQuery {
                uids: Some([1, count / 3, count / 2, count - 1].into()),
                ..TaskQuery::default()
            }),
        ),
        (
            "enqueued recently",
            page(TaskQuery {
                enqueued: recent,
                ..TaskQuery::default()
            }),
        ),
        (
            "finished recently and failed",
            page(TaskQuery {
                finished: recent,
                statuses: Some([Status::Failed].into()),
                ..TaskQuery::default()
            }),
        ),
    ]
}

#[test]
fn a_page_reads_as_much_over_200_000_tasks_as_over_2_000() {
    let backends = Backends::new();
    let smalls = backends.stores("small");
    let larges = backends.stores("large");
    for ((backend, small), (_, large)) in smalls.into_iter().zip(larges) {
        eprintln!("{backend}");
        let started = std::time::Instant::now();
        let (small, large) = (filled(small, 2_000), filled(large, 200_000));
        eprintln!("{backend}: filled in {:?}", started.elapsed());
        same_cost(&small, &large);
    }
}

fn same_cost(small: &Store, large: &Store) {
    let none = BTreeSet::new();
    for ((name, qs), (_, ql)) in queries(2_000).into_iter().zip(queries(200_000)) {
        let s = small.list(&qs, &none).expect("list");
        let l = large.list(&ql, &none).expect("list");
        assert_eq!(l.results.len(), s.results.len(), "{name}");
        assert!(
            l.total > s.total || ql.uids.is_some() || name.contains("recently"),
            "{name}"
        );
        // Date bounds are counted from block summaries (one per 65 536 uids, one per 1 024
        // inside a 65 536-uid block the bound cuts) and the rows of the 1 024-uid block it
        // cuts: where the bound falls in its block changes the cost by up to one block.
        assert!(
            l.reads <= s.reads + 1_024 + 64 + 200_000 / 65_536 + 1,
            "{name}: {} entries over 200 000 tasks, {} over 2 000",
            l.reads,
            s.reads
        );
        assert!(l.reads <= 4 * 1_024, "{name}: {} entries", l.reads);
        eprintln!("{name}: {} / {} entries", s.reads, l.reads);
    }
}
