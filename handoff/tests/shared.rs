//! The shared hint store over a real `redis-server`: two stores (two Miroirs) see each
//! other's hints, one at a time replays a queue (the lease) and a replayer whose lease passed
//! on cannot advance the queue (fencing), the write order is held by one at a time and reads
//! the other's hints, and a queue's cap counts every Miroir's hints.

use std::time::{Duration, Instant};

use bytes::Bytes;
use miroir_handoff::{Hint, HintError, HintStore, Seq};
use miroir_testkit::redis::{Persistence, RedisServer};

fn hint(n: u64) -> Hint {
    Hint {
        index_uid: "films".into(),
        method: "POST".into(),
        path: "/indexes/films/documents".into(),
        content_type: Some("application/json".into()),
        body: vec![Bytes::from(format!("[{{\"id\":{n}}}]"))],
        maybe_applied: false,
    }
}

fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn two(redis: &RedisServer, prefix: &str) -> (HintStore, HintStore) {
    let a = HintStore::open_redis(&redis.url(), prefix).expect("open a");
    let b = HintStore::open_redis(&redis.url(), prefix).expect("open b");
    assert!(a.shared() && b.shared());
    (a, b)
}

#[test]
fn two_stores_share_queues_leases_fencing_order_and_caps() {
    let Some(redis) = RedisServer::start(Persistence::AofAlways) else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let (a, b) = two(&redis, "test:hints");
    let cap = 1 << 20;

    // Hints kept by A, in order, are seen and read by B.
    let first = a.append("n1", &hint(1), cap).expect("append");
    let second = a.append("n1", &hint(2), cap).expect("append");
    assert!(second > first);
    assert!(
        eventually(|| b.backlog("n1").hints == 2),
        "{:?}",
        b.backlog("n1")
    );
    assert!(eventually(|| b.contains("n1", first)));
    let (seq, read) = b.first("n1").expect("first").expect("a hint");
    assert_eq!((seq, read.body), (first, hint(1).body));

    // One replayer at a time; the other is fenced off once the lease passed on.
    assert!(b.lease("n1").expect("lease"));
    assert!(!a.lease("n1").expect("lease"));
    assert!(b.remove_leased("n1", first).expect("remove"));
    assert!(matches!(
        a.remove_leased("n1", second),
        Err(HintError::LeaseLost(_))
    ));
    assert_eq!(b.backlog("n1").hints, 1);
    b.release("n1").expect("release");
    assert!(a.lease("n1").expect("lease"));
    assert!(matches!(
        b.remove_leased("n1", second),
        Err(HintError::LeaseLost(_))
    ));
    assert!(a.remove_leased("n1", second).expect("remove"));
    assert!(!a.remove_leased("n1", Seq(second.0 + 100)).expect("absent"));
    assert!(eventually(|| b.backlog("n1").hints == 0));
    assert_eq!(b.first("n1").expect("first"), None);
    a.release("n1").expect("release");

    // The write order: one holder; taking it reads the other's hints at once.
    assert!(a.take_order("films").expect("order"));
    assert!(!b.take_order("films").expect("order"));
    assert!(b.take_order("other").expect("another index"));
    b.release_order("other").expect("release");
    let kept = a.append("n2", &hint(3), cap).expect("append");
    a.release_order("films").expect("release");
    assert!(b.take_order("films").expect("order"));
    assert_eq!(b.backlog("n2").hints, 1, "read with the order, not later");
    assert!(b.renew_order("films").expect("renew"));
    b.release_order("films").expect("release");
    assert!(b.remove("n2", kept).expect("remove"));

    // A queue's cap counts both Miroirs' hints; a full queue refuses in either.
    let size = hint(4).size();
    a.append("n3", &hint(4), 2 * size).expect("first fits");
    assert!(eventually(|| b.backlog("n3").hints == 1));
    b.append("n3", &hint(5), 2 * size).expect("second fits");
    let full = a.append("n3", &hint(6), 2 * size);
    assert!(matches!(full, Err(HintError::Full { .. })), "{full:?}");
    // The resync mark is shared too.
    a.mark_resync("n3").expect("mark");
    assert!(eventually(|| b.backlog("n3").needs_resync));
}

#[test]
fn a_lease_its_holder_stops_renewing_passes_on() {
    let Some(redis) = RedisServer::start(Persistence::None) else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let (a, b) = two(&redis, "test:lease");
    assert!(a.lease("n1").expect("lease"));
    assert!(!b.lease("n1").expect("lease"));
    // A dies without giving it back (its store is dropped without a release).
    drop(a);
    let started = Instant::now();
    let taken = {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if b.lease("n1").expect("lease") {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(taken);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(8), "{waited:?}");
}

/// The board: a record written from a stale generation is refused, members beat with what
/// they installed and the gone are dropped, the gate is held by one at a time and
/// acknowledged by the others; marks keep the highest version and drop the old.
#[test]
fn board_records_members_gate_and_marks() {
    let Some(redis) = RedisServer::start(Persistence::None) else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let (a, b) = two(&redis, "t:board");
    let (ba, bb) = (a.board().expect("shared"), b.board().expect("shared"));
    assert_ne!(ba.member(), bb.member());

    assert_eq!(ba.record("r").unwrap(), None);
    assert_eq!(ba.put_record("r", 0, "one").unwrap(), Ok(1));
    assert_eq!(bb.put_record("r", 0, "two").unwrap(), Err(1), "stale");
    assert_eq!(bb.put_record("r", 1, "two").unwrap(), Ok(2));
    assert_eq!(ba.record("r").unwrap(), Some((2, "two".into())));

    let beat = ba.beat(&[("r", 2)], &["r", "none"]).unwrap();
    assert_eq!(beat.generations, vec![2, 0]);
    assert_eq!(beat.gate, None);
    bb.beat(&[("r", 1)], &["r"]).unwrap();
    let members = ba.members().unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    let installed: Vec<u64> = members.iter().map(|(_, g)| g["r"]).collect();
    assert!(
        installed.contains(&1) && installed.contains(&2),
        "{members:?}"
    );

    assert!(ba.close_gate("a/1").unwrap());
    assert!(!bb.close_gate("b/1").unwrap(), "held by a");
    assert_eq!(bb.beat(&[], &[]).unwrap().gate.as_deref(), Some("a/1"));
    bb.ack_gate("a/1").unwrap();
    assert_eq!(
        ba.acks().unwrap().get(bb.member()).map(String::as_str),
        Some("a/1")
    );
    ba.open_gate("a/1").unwrap();
    assert!(bb.close_gate("b/1").unwrap(), "open again");
    bb.open_gate("b/1").unwrap();

    let (ma, mb) = (a.marks().expect("shared"), b.marks().expect("shared"));
    ma.mark("ids:films", &["1", "2"], 10).unwrap();
    mb.mark("ids:films", &["2", "3"], 5).unwrap();
    assert_eq!(
        mb.versions("ids:films", &["1", "2", "3", "4"]).unwrap(),
        vec![Some(10), Some(10), Some(5), None],
        "each keeps its highest version"
    );
    ma.drop_up_to("ids:films", 5).unwrap();
    assert_eq!(
        mb.all("ids:films").unwrap(),
        vec![("1".into(), 10), ("2".into(), 10)]
    );
    assert_eq!(ma.names_marked().unwrap(), vec!["ids:films".to_owned()]);
    drop(b);
    drop(a);
}
