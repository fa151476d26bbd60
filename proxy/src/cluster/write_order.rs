//! The per-index write order: held while a write is handed to the nodes (or to their logs),
//! so every replica receives an index's writes in the order Miroir accepted them.
//!
//! In one process it is a lock per index. With a shared hint store (several Miroirs over one
//! Redis) a turn also needs the index's order in Redis. Taking it there reads every node's
//! log counts in the same step (a write queues behind hints another Miroir kept); it is
//! renewed while held, and given back only once this process's hints are in Redis. While
//! writers of this process wait for the index, it is passed on to them without going back
//! to Redis, for a bounded time, so a busy index costs one Redis round trip per burst rather
//! than per write, and another Miroir waits at most that bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use miroir_handoff::{HintStore, ORDER_MS};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Default)]
pub struct WriteOrder {
    scopes: DashMap<String, Arc<Scope>>,
}

/// One scope's order in this process.
#[derive(Default)]
struct Scope {
    lock: Arc<Mutex<Held>>,
    /// Writers of this process waiting for `lock`.
    waiting: AtomicUsize,
}

/// Shared store only: whether this process holds the scope's order in Redis.
#[derive(Default)]
struct Held {
    shared: Option<SharedHold>,
}

struct SharedHold {
    since: Instant,
    keeper: tokio::task::JoinHandle<()>,
}

/// A write's turn in its scope's order; the next one starts when it is dropped.
pub struct Turn {
    scope: Arc<Scope>,
    /// `None` once dropped (or handed to the task that gives the shared order back).
    guard: Option<OwnedMutexGuard<Held>>,
    /// Shared store only: where and what to give back.
    shared: Option<(Arc<HintStore>, String)>,
}

/// Waits between attempts to take an order another Miroir holds: short, as turns are.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(4);
/// How long the shared order stays with this process while its writers keep coming.
const HOLD_MAX: Duration = Duration::from_millis(50);

impl WriteOrder {
    fn scope(&self, name: &str) -> Arc<Scope> {
        if let Some(scope) = self.scopes.get(name) {
            return scope.clone();
        }
        self.scopes.entry(name.to_owned()).or_default().clone()
    }

    /// Waits for `scope`'s turn: this process's earlier writes first, then (shared store)
    /// other Miroirs'. While Redis does not answer it keeps trying: a request's deadline
    /// ends the wait before any node got the write.
    pub async fn turn(&self, hints: &Arc<HintStore>, name: &str) -> Turn {
        let scope = self.scope(name);
        let mut guard = {
            // Counted while waiting, also when the wait is given up (the request dropped).
            let _waiting = Waiting::new(&scope.waiting);
            scope.lock.clone().lock_owned().await
        };
        if !hints.shared() {
            return Turn {
                scope,
                guard: Some(guard),
                shared: None,
            };
        }
        if guard.shared.is_none() {
            take_shared(hints, name).await;
            guard.shared = Some(SharedHold {
                since: Instant::now(),
                keeper: tokio::spawn(keep(hints.clone(), name.to_owned(), scope.lock.clone())),
            });
        }
        Turn {
            scope,
            guard: Some(guard),
            shared: Some((hints.clone(), name.to_owned())),
        }
    }
}

/// One writer waiting for a scope, for as long as the value lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes `name`'s order in Redis, waiting while another Miroir holds it.
async fn take_shared(hints: &Arc<HintStore>, name: &str) {
    let mut wait = RETRY_FIRST;
    let mut warned = false;
    loop {
        let (store, key) = (hints.clone(), name.to_owned());
        let taken = tokio::task::spawn_blocking(move || store.take_order(&key))
            .await
            .unwrap_or(Ok(false));
        match taken {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) if !warned => {
                warned = true;
                log::warn!(target: "miroir::handoff", "taking the write order of `{name}` in Redis: {e}");
            }
            Err(_) => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// Watches a held order until a turn gives it back (and aborts this): renews it every third
/// of its lifetime, and gives it back itself when no turn of this process holds the scope
/// (the writer it was passed on to went away before its turn).
async fn keep(hints: Arc<HintStore>, name: String, lock: Arc<Mutex<Held>>) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(HOLD_MAX).await;
        if let Ok(mut idle) = lock.clone().try_lock_owned() {
            if idle.shared.take().is_some() {
                give_back(hints, name, idle).await;
            }
            return;
        }
        if renewed.elapsed() >= Duration::from_millis(ORDER_MS / 3) {
            renewed = Instant::now();
            let (store, key) = (hints.clone(), name.clone());
            let kept = tokio::task::spawn_blocking(move || store.renew_order(&key)).await;
            if !matches!(kept, Ok(Ok(true))) {
                log::warn!(target: "miroir::handoff", "the write order of `{name}` could not be renewed in Redis");
            }
        }
    }
}

/// Gives `name`'s order back in Redis once this process's hints are there, then lets the
/// next local writer in (holding `guard` until then).
async fn give_back(hints: Arc<HintStore>, name: String, guard: OwnedMutexGuard<Held>) {
    hints.flushed().await;
    let key = name.clone();
    let given = tokio::task::spawn_blocking(move || hints.release_order(&key)).await;
    if !matches!(given, Ok(Ok(()))) {
        // It expires on its own.
        log::warn!(target: "miroir::handoff", "giving back the write order of `{name}` in Redis failed");
    }
    drop(guard);
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let Some((hints, name)) = self.shared.take() else {
            return;
        };
        // Another writer of this process is next: it goes on with the order (its place in
        // the logs is behind this turn's hints, committed or not).
        let young = guard
            .shared
            .as_ref()
            .is_some_and(|h| h.since.elapsed() < HOLD_MAX);
        if young && self.scope.waiting.load(Ordering::Relaxed) > 0 {
            return;
        }
        if let Some(hold) = guard.shared.take() {
            hold.keeper.abort();
        }
        // The local order passes on only after the shared one is given back, and that only
        // once this process's hints are in Redis: the next writer, here or in another
        // Miroir, sees them. Without a runtime (shutting down) it expires on its own.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(give_back(hints, name, guard));
        }
    }
}
