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
        body: body.as_bytes().to_vec(),
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
