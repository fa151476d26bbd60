//! The embedded store on a real file: durable uids, restart survival, idempotency, listing.

use std::collections::BTreeSet;

use miroir_tasks::{
    Created, EmbeddedStore, Idempotency, NewTask, NodeTask, TaskQuery, TaskStore, TaskUid,
};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("miroir-tasks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn task(index: &str) -> NewTask {
    NewTask {
        index_uid: Some(index.into()),
        kind: "documentAdditionOrUpdate".into(),
        enqueued_at: "2026-01-01T00:00:00Z".into(),
        node_tasks: vec![NodeTask {
            node: "a".into(),
            task_uid: Some(3),
            error: None,
            share: 0,
        }],
        custom_metadata: None,
        details: None,
    }
}

fn created(c: Created) -> miroir_tasks::TaskRecord {
    match c {
        Created::New(r) => r,
        other => panic!("expected a new task, got {other:?}"),
    }
}

#[test]
fn uids_are_monotonic_and_survive_a_restart() {
    let d = dir("restart");
    let path = d.join("tasks.redb");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(
            created(store.create(task("a"), None).unwrap()).uid,
            TaskUid(0)
        );
        assert_eq!(
            created(store.create(task("b"), None).unwrap()).uid,
            TaskUid(1)
        );
        // A deleted task's uid is never handed out again.
        assert_eq!(store.delete(&[TaskUid(1)]).unwrap(), 1);
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        store.get(TaskUid(0)).unwrap().unwrap().index_uid.as_deref(),
        Some("a")
    );
    assert!(store.get(TaskUid(1)).unwrap().is_none());
    assert_eq!(
        created(store.create(task("c"), None).unwrap()).uid,
        TaskUid(2)
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn idempotency_key_replays_the_same_request_and_refuses_a_different_one() {
    let d = dir("idem");
    let store = EmbeddedStore::open(&d.join("t.redb")).unwrap();
    let key = |digest: &str| Idempotency {
        key: "k1".into(),
        request_digest: digest.into(),
    };
    let first = created(store.create(task("a"), Some(&key("d1"))).unwrap());
    match store.create(task("a"), Some(&key("d1"))).unwrap() {
        Created::Replayed(r) => assert_eq!(r.uid, first.uid),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.create(task("a"), Some(&key("d2"))).unwrap(),
        Created::KeyReused {
            original: first.uid
        }
    );
    // Nothing new was stored by either.
    assert_eq!(
        created(store.create(task("b"), None).unwrap()).uid,
        TaskUid(1)
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn listing_pages_newest_first_with_filter_and_total() {
    let d = dir("list");
    let store = EmbeddedStore::open(&d.join("t.redb")).unwrap();
    for i in 0..10 {
        store
            .create(task(if i % 2 == 0 { "even" } else { "odd" }), None)
            .unwrap();
    }
    let none = BTreeSet::new();
    let even = |limit: usize, from: Option<u64>| TaskQuery {
        index_uids: Some(["even".to_owned()].into()),
        limit,
        from,
        ..TaskQuery::default()
    };
    let uids = |page: &miroir_tasks::Page| page.results.iter().map(|r| r.uid.0).collect::<Vec<_>>();
    let page = store.list(&even(2, None), &none).unwrap();
    assert_eq!(uids(&page), [8, 6]);
    assert_eq!(page.total, 5);
    let page = store.list(&even(10, Some(4)), &none).unwrap();
    assert_eq!(uids(&page), [4, 2, 0]);
    assert_eq!(page.total, 5, "the total ignores where the page starts");
    let oldest_first = TaskQuery {
        from: Some(3),
        limit: 3,
        reverse: true,
        ..TaskQuery::default()
    };
    let page = store.list(&oldest_first, &none).unwrap();
    assert_eq!(uids(&page), [3, 4, 5]);
    assert_eq!(page.total, 10);
    let _ = std::fs::remove_dir_all(d);
}
