//! Idle keep-alive connections to nodes, newest first.
//!
//! Pingora's pool hands every released connection to a task that watches it while idle, and
//! takes it back from that task on reuse: a spawn and two wakeups per node request. Here an
//! idle connection is only checked when it is taken (a read that must find nothing), and
//! connections idle past the node's timeout are dropped as the pool is used.
//!
//! Each worker thread keeps its own: a connection's readiness is reported by the runtime it
//! was made on, and with one runtime per thread (no work stealing) a connection used from
//! another thread would cost a wakeup of its own thread on every read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::FutureExt;
use pingora_core::protocols::Stream;
use tokio::io::AsyncReadExt;

struct Idle {
    stream: Stream,
    since: Instant,
}

/// A small number naming the current thread, given on its first use of a pool.
fn thread_slot() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    thread_local! {
        static SLOT: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

pub(super) struct Pool {
    /// By node peer (`NodePeer::pool_key`) and thread: oldest at the front.
    idle: DashMap<(u64, u32), VecDeque<Idle>>,
    per_node: usize,
}

impl Pool {
    pub fn new(per_node: usize) -> Self {
        Self {
            idle: DashMap::new(),
            per_node,
        }
    }

    /// The most recently used connection to `key` this thread made that is still open, idle
    /// less than `max_idle`.
    pub fn take(&self, key: u64, max_idle: Duration) -> Option<Stream> {
        let key = (key, thread_slot());
        loop {
            let idle = self.idle.get_mut(&key)?.pop_back()?;
            if idle.since.elapsed() < max_idle {
                let mut stream = idle.stream;
                if quiet(&mut stream) {
                    return Some(stream);
                }
            }
        }
    }

    /// Keeps `stream` for the next request to `key`; drops what has been idle past `max_idle`
    /// and, past `per_node`, the oldest.
    pub fn put(&self, key: u64, stream: Stream, max_idle: Duration) {
        let mut dropped = Vec::new();
        {
            let mut list = self.idle.entry((key, thread_slot())).or_default();
            while list
                .front()
                .is_some_and(|i| i.since.elapsed() >= max_idle || list.len() >= self.per_node)
            {
                dropped.extend(list.pop_front());
            }
            list.push_back(Idle {
                stream,
                since: Instant::now(),
            });
        }
        // Closed outside the map's lock.
        drop(dropped);
    }
}

/// An idle connection is usable when reading it would wait: the node neither closed it nor
/// sent anything unasked.
fn quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    stream.read(&mut byte).now_or_never().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::test_support::pair;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn closed_chatty_and_stale_connections_are_never_reused() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let pool = Pool::new(8);
        let long = Duration::from_secs(60);

        let (open, _keep) = pair(&listener).await;
        let (closed, server) = pair(&listener).await;
        let (chatty, mut talker) = pair(&listener).await;
        pool.put(1, open, long);
        pool.put(1, closed, long);
        pool.put(1, chatty, long);
        drop(server);
        talker
            .write_all(b"HTTP/1.1 408\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The chatty and the closed one are skipped; the open one is handed out.
        assert!(pool.take(1, long).is_some());
        assert!(pool.take(1, long).is_none());

        let (old, _keep_old) = pair(&listener).await;
        pool.put(2, old, long);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(pool.take(2, Duration::from_millis(10)).is_none());
    }

    #[tokio::test]
    async fn a_full_pool_drops_its_oldest() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let pool = Pool::new(2);
        let long = Duration::from_secs(60);
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (s, server) = pair(&listener).await;
            servers.push(server);
            pool.put(7, s, long);
        }
        assert_eq!(pool.idle.get(&(7, thread_slot())).map(|l| l.len()), Some(2));
        // Another thread has none of this thread's connections.
        let pool = std::sync::Arc::new(pool);
        let other = pool.clone();
        let taken = std::thread::spawn(move || other.take(7, long).is_some()).join();
        assert!(matches!(taken, Ok(false)));
        assert!(pool.take(7, long).is_some());
    }
}
