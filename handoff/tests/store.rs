//! The hint store on a real file: order per node, caps, removal, restart survival.

use miroir_handoff::{Hint, HintError, HintStore, NodeBacklog};

fn path(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("miroir-handoff-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.join("hints.redb")
}

fn hint(index: &str, body: &str) -> Hint {
    Hint {
        index_uid: index.into(),
        method: "POST".into(),
        path: format!("/indexes/{index}/documents"),
        content_type: Some("application/json".into()),
        body: vec![bytes::Bytes::from(body.to_owned())],
        maybe_applied: false,
    }
}

/// Entry `n` of a writer: a document write, a settings update, an index deletion, creation or
/// swap, or a key creation, update or deletion, each carrying `body` so its place is known.
fn entry(index: &str, n: usize, body: &str) -> Hint {
    let (scope, method, path) = match n % 8 {
        0 => (index, "POST", format!("/indexes/{index}/documents")),
        1 => (index, "PATCH", format!("/indexes/{index}/settings")),
        2 => (index, "DELETE", format!("/indexes/{index}")),
        3 => (index, "POST", "/indexes".to_owned()),
        4 => ("", "POST", "/swap-indexes".to_owned()),
        5 => ("", "POST", "/keys".to_owned()),
        6 => ("", "PATCH", format!("/keys/{index}")),
        _ => ("", "DELETE", format!("/keys/{index}")),
    };
    Hint {
        index_uid: scope.into(),
        method: method.into(),
        path,
        content_type: Some("application/json".into()),
        body: vec![bytes::Bytes::from(body.to_owned())],
        maybe_applied: false,
    }
}

#[test]
fn hints_replay_in_order_per_node_and_survive_a_restart() {
    let file = path("order");
    {
        let store = HintStore::open(&file).unwrap();
        let a1 = store.append("a", &hint("m", "[1]"), 1 << 20).unwrap();
        let b1 = store.append("b", &hint("m", "[2]"), 1 << 20).unwrap();
        let a2 = store.append("a", &hint("n", "[3]"), 1 << 20).unwrap();
        assert!(a1 < b1 && b1 < a2);
        assert_eq!(store.backlog("a").hints, 2);
        assert_eq!(store.backlog("b").hints, 1);
        assert_eq!(store.backlog("c"), NodeBacklog::default());
        assert_eq!(store.first("a").unwrap().unwrap(), (a1, hint("m", "[1]")));
        assert!(store.remove("a", a1).unwrap());
        assert!(
            !store.remove("a", a1).unwrap(),
            "a second removal finds nothing"
        );
        assert!(!store.contains("a", a1));
        assert!(store.contains("a", a2));
    }
    // Reopened: the remaining hints, their order and the backlog are all still there.
    let store = HintStore::open(&file).unwrap();
    let (seq, h) = store.first("a").unwrap().unwrap();
    assert_eq!(h, hint("n", "[3]"));
    assert_eq!(store.backlog("a").hints, 1);
    assert_eq!(store.backlogs().len(), 2);
    store.remove("a", seq).unwrap();
    assert_eq!(store.backlog("a"), NodeBacklog::default());
    assert!(store.first("a").unwrap().is_none());
    let next = store.append("a", &hint("m", "[4]"), 1 << 20).unwrap();
    assert!(
        next.0 > seq.0,
        "sequence numbers never repeat across restarts"
    );
}

#[test]
fn a_full_queue_refuses_hints_and_a_resync_mark_is_durable() {
    let file = path("cap");
    let store = HintStore::open(&file).unwrap();
    let big = hint("m", &"x".repeat(600));
    let cap = 1000;
    store.append("a", &big, cap).unwrap();
    match store.append("a", &big, cap) {
        Err(HintError::Full { node, cap: c }) => assert_eq!((node.as_str(), c), ("a", cap)),
        other => panic!("expected Full, got {other:?}"),
    }
    let b = store.backlog("a");
    assert!(!b.needs_resync, "a refused hint alone loses nothing");
    assert_eq!(b.hints, 1);
    // A small hint still fits.
    store.append("a", &hint("m", "[]"), cap).unwrap();
    store.mark_resync("a").unwrap();
    // Once the node needs a resync, nothing more is kept for it.
    assert!(store.append("a", &hint("m", "[]"), cap).is_err());
    drop(store);
    let store = HintStore::open(&file).unwrap();
    assert!(store.backlog("a").needs_resync, "the mark is durable");
    store.clear_resync("a").unwrap();
    assert!(!store.backlog("a").needs_resync);
    assert_eq!(store.backlog("a").hints, 2);
}

/// Many writers and replayers side by side, across nodes and indexes, with every kind of entry
/// a node's log holds: every count and byte total stays exact, each node's entries stay in
/// append order (whatever their kind), and a reopened store agrees.
#[test]
fn concurrent_appends_and_removals_keep_exact_counts_and_order() {
    use std::sync::Arc;
    let file = path("concurrent");
    let store = Arc::new(HintStore::open(&file).unwrap());
    let nodes = ["a", "b", "c"];
    let mut threads = Vec::new();
    // Writers: 4 threads x 3 nodes x 50 hints, bodies naming (thread, n) in order.
    for t in 0..4 {
        let store = store.clone();
        threads.push(std::thread::spawn(move || {
            for n in 0..50 {
                for node in nodes {
                    let body = format!("[{t},{n}]");
                    store
                        .append(node, &entry(&format!("index-{t}"), n, &body), u64::MAX)
                        .unwrap();
                }
            }
        }));
    }
    // Replayers: take hints off node "a" while the writers run.
    let removed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..2 {
        let (store, removed) = (store.clone(), removed.clone());
        threads.push(std::thread::spawn(move || {
            for _ in 0..200 {
                if let Some((seq, _)) = store.first("a").unwrap() {
                    if store.remove("a", seq).unwrap() {
                        removed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let removed = removed.load(std::sync::atomic::Ordering::Relaxed);
    // 600 hints were appended, with sequence numbers from 1.
    let present = |node: &str| {
        (1..=600u64)
            .filter(|&s| store.contains(node, miroir_handoff::Seq(s)))
            .count() as u64
    };
    for node in nodes {
        let expected = 200 - if node == "a" { removed } else { 0 };
        assert_eq!(present(node), expected, "node {node}: hints in the store");
        assert_eq!(
            store.backlog(node).hints,
            expected,
            "node {node}: counted hints"
        );
    }
    // Each node's remaining hints come back in append order per writer thread.
    for node in ["b", "c"] {
        let mut last = [-1i64; 4];
        while let Some((seq, h)) = store.first(node).unwrap() {
            let body = String::from_utf8(h.body.concat()).unwrap();
            let v: Vec<i64> = serde_json::from_str(&body).unwrap();
            assert_eq!(
                h,
                entry(&format!("index-{}", v[0]), v[1] as usize, &body),
                "node {node}: the entry comes back as it was kept"
            );
            assert!(
                v[1] > last[v[0] as usize],
                "node {node}: {body} after {}",
                last[v[0] as usize]
            );
            last[v[0] as usize] = v[1];
            store.remove(node, seq).unwrap();
        }
        assert_eq!(
            store.backlog(node),
            NodeBacklog::default(),
            "node {node}: nothing left, nothing counted"
        );
    }
    drop(store);
    let reopened = HintStore::open(&file).unwrap();
    let expected = 200 - removed;
    assert_eq!(
        reopened.backlog("a").hints,
        expected,
        "the durable counts agree"
    );
    assert_eq!(reopened.backlog("b"), NodeBacklog::default());
}

/// Queued hints count in their node's backlog before they are on disk (a later write queues
/// behind them), keep the order they were queued in, are committed together when queued
/// together, and a store dropped with hints still queued commits them first.
#[test]
fn queued_hints_count_at_once_keep_their_order_and_are_committed_before_close() {
    let file = path("queued");
    let store = HintStore::open(&file).unwrap();
    let tickets: Vec<_> = (0..300)
        .map(|n| {
            let node = if n % 3 == 0 { "b" } else { "a" };
            let t = store
                .enqueue(node, hint("m", &format!("[{n}]")), u64::MAX)
                .unwrap();
            (node, t)
        })
        .collect();
    // Counted as soon as queued, committed or not.
    assert_eq!(store.backlog("a").hints, 200);
    assert_eq!(store.backlog("b").hints, 100);
    let seqs: Vec<_> = tickets
        .into_iter()
        .map(|(_, t)| t.wait().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence follows queue order"
    );
    let mut seen = Vec::new();
    while let Some((seq, h)) = store.first("a").unwrap() {
        seen.push(String::from_utf8(h.body.concat()).unwrap());
        store.remove("a", seq).unwrap();
    }
    let expected: Vec<String> = (0..300)
        .filter(|n| n % 3 != 0)
        .map(|n| format!("[{n}]"))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(store.backlog("a"), NodeBacklog::default());

    // Queued and never waited for: dropping the store commits them before the file closes.
    for n in 0..50 {
        drop(
            store
                .enqueue("c", hint("m", &format!("[{n}]")), u64::MAX)
                .unwrap(),
        );
    }
    drop(store);
    let reopened = HintStore::open(&file).unwrap();
    assert_eq!(reopened.backlog("c").hints, 50);
    assert_eq!(reopened.backlog("b").hints, 100);
    let (_, first) = reopened.first("c").unwrap().unwrap();
    assert_eq!(first.body.concat(), b"[0]");
}

/// A queue's cap counts the hints still on their way to disk.
#[test]
fn the_cap_counts_queued_hints() {
    let file = path("queued-cap");
    let store = HintStore::open(&file).unwrap();
    let one = hint("m", "[1]").size();
    let first = store.enqueue("a", hint("m", "[1]"), 2 * one).unwrap();
    let second = store.enqueue("a", hint("m", "[2]"), 2 * one).unwrap();
    assert!(matches!(
        store.enqueue("a", hint("m", "[3]"), 2 * one),
        Err(HintError::Full { .. })
    ));
    first.wait().unwrap();
    second.wait().unwrap();
    assert_eq!(store.backlog("a").hints, 2);
}
