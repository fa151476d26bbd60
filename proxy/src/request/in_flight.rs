//! Requests under one `Idempotency-Key` taken one at a time: a second request with the key
//! waits for the first to be recorded, then finds its task instead of sending to the nodes
//! again.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The keys with a request in flight.
#[derive(Default)]
pub struct InFlight {
    keys: DashMap<String, Arc<Mutex<()>>>,
}

/// The turn of one request with its key; the key is forgotten once no request holds or
/// waits for it.
pub struct Turn<'a> {
    keys: &'a DashMap<String, Arc<Mutex<()>>>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl InFlight {
    /// Waits until no other request with `key` is in flight.
    pub async fn turn(&self, key: &str) -> Turn<'_> {
        let lock = self.keys.entry(key.to_owned()).or_default().clone();
        Turn {
            keys: &self.keys,
            key: key.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        // Waiters clone the lock under the map's shard lock, so a count of one (the map's)
        // here means nobody holds or waits for it.
        self.keys
            .remove_if(&self.key, |_, lock| Arc::strong_count(lock) == 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_request_per_key_at_a_time_and_nothing_kept_after() {
        let in_flight = Arc::new(InFlight::default());
        let first = in_flight.turn("k").await;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                let _second = in_flight.turn("k").await;
                tx.send(()).ok();
            })
        };
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "the second waits for the first");
        let _other = in_flight.turn("other").await;
        drop(first);
        waiter.await.unwrap();
        assert!(rx.await.is_ok());
        assert!(!in_flight.keys.contains_key("k"));
    }
}
