//! The per-index write order: held while a write is handed to the nodes (or to their logs),
//! so every replica receives an index's writes in the order Miroir accepted them.
//!
//! In one process it is a lock per index. With a shared hint store (several Miroirs over one
//! Redis) a turn also takes the index's order in Redis, which reads every node's log counts
//! in the same step (a write queues behind hints another Miroir kept), is renewed while the
//! write is on its way, and is given back only once this turn's hints are in Redis.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use miroir_handoff::{HintStore, ORDER_MS};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Default)]
pub struct WriteOrder {
    local: DashMap<String, Arc<Mutex<()>>>,
}

/// A write's turn in its scope's order; the next one starts when it is dropped.
pub struct Turn {
    /// `None` once handed to the task that gives the shared order back.
    local: Option<OwnedMutexGuard<()>>,
    shared: Option<Shared>,
}

struct Shared {
    hints: Arc<HintStore>,
    scope: String,
    renewer: tokio::task::JoinHandle<()>,
}

/// Waits between attempts to take an order another Miroir holds: short, as turns are.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(20);

impl WriteOrder {
    fn lock(&self, scope: &str) -> Arc<Mutex<()>> {
        if let Some(lock) = self.local.get(scope) {
            return lock.clone();
        }
        self.local.entry(scope.to_owned()).or_default().clone()
    }

    /// Waits for `scope`'s turn: this process's earlier writes first, then (shared store)
    /// other Miroirs'. While Redis does not answer it keeps trying: a request's deadline
    /// ends the wait before any node got the write.
    pub async fn turn(&self, hints: &Arc<HintStore>, scope: &str) -> Turn {
        let local = self.lock(scope).lock_owned().await;
        if !hints.shared() {
            return Turn {
                local: Some(local),
                shared: None,
            };
        }
        let mut wait = RETRY_FIRST;
        let mut warned = false;
        loop {
            let (store, key) = (hints.clone(), scope.to_owned());
            let taken = tokio::task::spawn_blocking(move || store.take_order(&key))
                .await
                .unwrap_or(Ok(false));
            match taken {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) if !warned => {
                    warned = true;
                    log::warn!(target: "miroir::handoff", "taking the write order of `{scope}` in Redis: {e}");
                }
                Err(_) => {}
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
        Turn {
            local: Some(local),
            shared: Some(Shared {
                hints: hints.clone(),
                scope: scope.to_owned(),
                renewer: tokio::spawn(renew(hints.clone(), scope.to_owned())),
            }),
        }
    }
}

/// Renews a held order every third of its lifetime, until aborted.
async fn renew(hints: Arc<HintStore>, scope: String) {
    let every = Duration::from_millis(ORDER_MS / 3);
    loop {
        tokio::time::sleep(every).await;
        let (store, key) = (hints.clone(), scope.clone());
        let kept = tokio::task::spawn_blocking(move || store.renew_order(&key)).await;
        if !matches!(kept, Ok(Ok(true))) {
            log::warn!(target: "miroir::handoff", "the write order of `{scope}` could not be renewed in Redis");
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        shared.renewer.abort();
        // The local turn passes on only after the shared one is given back, and that only
        // once this turn's hints are in Redis: the next writer, here or in another Miroir,
        // sees them.
        let local = self.local.take();
        let flushed = shared.hints.flushed();
        let release = async move {
            flushed.await;
            let (store, scope) = (shared.hints.clone(), shared.scope.clone());
            let given = tokio::task::spawn_blocking(move || store.release_order(&scope)).await;
            if !matches!(given, Ok(Ok(()))) {
                // It expires on its own.
                log::warn!(target: "miroir::handoff", "giving back the write order of `{}` in Redis failed", shared.scope);
            }
            drop(local);
        };
        // Without a runtime (shutting down) the shared order expires on its own.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(release);
        }
    }
}
