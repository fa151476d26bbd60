//! The hint store under concurrent writers: hints kept per second and the time one `append`
//! waits (until its hint is durable), for 1 to 16 writer threads. Uses only `append`, so the
//! same file measures any version of the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir_handoff::{Hint, HintStore};

fn hint(body: &bytes::Bytes) -> Hint {
    Hint {
        index_uid: "bench".into(),
        method: "POST".into(),
        path: "/indexes/bench/documents".into(),
        content_type: Some("application/json".into()),
        body: vec![body.clone()],
        maybe_applied: false,
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("miroir-bench-hints-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let body = bytes::Bytes::from(vec![b'x'; 16 * 1024]);
    for threads in [1usize, 4, 16] {
        let store = Arc::new(HintStore::open(&dir.join(format!("{threads}.redb"))).unwrap());
        let budget = Duration::from_secs(2);
        let started = Instant::now();
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (store, body) = (store.clone(), body.clone());
                std::thread::spawn(move || {
                    let mut waits = Vec::new();
                    let node = format!("node-{}", t % 3);
                    while started.elapsed() < budget {
                        let one = Instant::now();
                        store.append(&node, &hint(&body), u64::MAX).unwrap();
                        waits.push(one.elapsed());
                    }
                    waits
                })
            })
            .collect();
        let mut waits: Vec<Duration> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        let elapsed = started.elapsed();
        waits.sort_unstable();
        let p = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        println!(
            "{threads:>2} writers, 16 KB hints: {:>7.0} hints/s, append p50 {:.2} ms, p99 {:.2} ms",
            waits.len() as f64 / elapsed.as_secs_f64(),
            p(0.5),
            p(0.99)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
