//! Every backend (the embedded store on a real file, Redis on a real server): durable uids,
//! restart survival, idempotency and its claims, listing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Backends;
use miroir_tasks::{
    Claim, Created, EmbeddedStore, Idempotency, NewTask, NodeTask, RedisStore, StoreError,
    TaskQuery, TaskStore, TaskUid,
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
    let backends = Backends::new();
    for (backend, store) in backends.stores("idem") {
        eprintln!("{backend}");
        idempotency_key(&*store);
    }
}

fn idempotency_key(store: &dyn TaskStore) {
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
}

#[test]
fn listing_pages_newest_first_with_filter_and_total() {
    let backends = Backends::new();
    for (backend, store) in backends.stores("list") {
        eprintln!("{backend}");
        listing(&*store);
    }
}

fn listing(store: &dyn TaskStore) {
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
}

#[test]
fn redis_uids_and_records_survive_a_new_connection_and_are_shared() {
    let Some(server) = Backends::new().redis else {
        return;
    };
    let a = RedisStore::open_with_prefix(&server.url(), "shared").unwrap();
    let b = RedisStore::open_with_prefix(&server.url(), "shared").unwrap();
    assert_eq!(created(a.create(task("a"), None).unwrap()).uid, TaskUid(0));
    assert_eq!(created(b.create(task("b"), None).unwrap()).uid, TaskUid(1));
    assert_eq!(a.delete(&[TaskUid(1)]).unwrap(), 1);
    assert!(b.get(TaskUid(1)).unwrap().is_none());
    assert_eq!(
        b.get(TaskUid(0)).unwrap().unwrap().index_uid.as_deref(),
        Some("a")
    );
    drop((a, b));
    let c = RedisStore::open_with_prefix(&server.url(), "shared").unwrap();
    assert_eq!(created(c.create(task("c"), None).unwrap()).uid, TaskUid(2));
    c.audit().unwrap();
}

#[test]
fn concurrent_creates_from_two_stores_get_distinct_uids_and_keep_the_indexes() {
    let Some(server) = Backends::new().redis else {
        return;
    };
    let url = server.url();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = RedisStore::open_with_prefix(&url, "race").unwrap();
                (0..50)
                    .map(|_| {
                        created(store.create(task(["a", "b"][t % 2]), None).unwrap())
                            .uid
                            .0
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut uids: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    uids.sort_unstable();
    assert_eq!(
        uids,
        (0..200).collect::<Vec<_>>(),
        "one sequence, no gap, no repeat"
    );
    let store = RedisStore::open_with_prefix(&url, "race").unwrap();
    store.audit().unwrap();
    let page = store.list(&TaskQuery::default(), &BTreeSet::new()).unwrap();
    assert_eq!(page.total, 200);
}

#[test]
fn a_claimed_key_is_busy_for_others_until_its_task_is_recorded_or_released() {
    let backends = Backends::new();
    let Some(server) = &backends.redis else {
        return;
    };
    let a = RedisStore::open_with_prefix(&server.url(), "claims").unwrap();
    let b = RedisStore::open_with_prefix(&server.url(), "claims").unwrap();
    let idem = Idempotency {
        key: "k".into(),
        request_digest: "d".into(),
    };
    let hold = Duration::from_secs(30);
    assert_eq!(a.claim(&idem, hold).unwrap(), Claim::Claimed);
    assert_eq!(b.claim(&idem, hold).unwrap(), Claim::Busy);
    // Released without a task: the other may take it.
    a.release(&idem.key).unwrap();
    assert_eq!(b.claim(&idem, hold).unwrap(), Claim::Claimed);
    assert_eq!(a.claim(&idem, hold).unwrap(), Claim::Busy);
    let uid = created(b.create(task("a"), Some(&idem)).unwrap()).uid;
    assert_eq!(
        a.claim(&idem, hold).unwrap(),
        Claim::Seen("d".into(), uid),
        "recorded: the key names its task"
    );
    // A holder that dies frees the key when its hold ends.
    let other = Idempotency {
        key: "k2".into(),
        request_digest: "d".into(),
    };
    assert_eq!(
        a.claim(&other, Duration::from_millis(100)).unwrap(),
        Claim::Claimed
    );
    assert_eq!(b.claim(&other, hold).unwrap(), Claim::Busy);
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(b.claim(&other, hold).unwrap(), Claim::Claimed);
    // The embedded store answers from its records (one process keeps its own turns).
    for (backend, store) in backends.stores("claims-embedded") {
        if backend == "embedded" {
            assert_eq!(store.claim(&idem, hold).unwrap(), Claim::Claimed);
            let uid = created(store.create(task("a"), Some(&idem)).unwrap()).uid;
            assert_eq!(
                store.claim(&idem, hold).unwrap(),
                Claim::Seen("d".into(), uid)
            );
        }
    }
}

#[test]
fn redis_down_is_unavailable_and_back_works_without_reopening() {
    let Some(mut server) = Backends::new().redis else {
        return;
    };
    let store = RedisStore::open_with_prefix(&server.url(), "down").unwrap();
    assert_eq!(
        created(store.create(task("a"), None).unwrap()).uid,
        TaskUid(0)
    );
    server.kill();
    assert!(matches!(store.ready(), Err(StoreError::Unavailable(_))));
    assert!(matches!(
        store.create(task("a"), None),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.get(TaskUid(0)),
        Err(StoreError::Unavailable(_))
    ));
    // Memory only: the restarted server is empty, but the store reconnects by itself.
    server.restart();
    store.ready().unwrap();
    assert_eq!(
        created(store.create(task("a"), None).unwrap()).uid,
        TaskUid(0)
    );
    let err = RedisStore::open_with_prefix("redis://:sekrit@127.0.0.1:1/0", "x")
        .err()
        .expect("nothing listens on port 1");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("sekrit"), "{err}");
}
