//! The right to run a fleet-wide background job (an anti-entropy pass, a settings sweep, the
//! task registry's pruning) in exactly one Miroir at a time when several share a Redis. A
//! lease in Redis, renewed while the job runs and given back when it ends; a holder that dies
//! stops renewing it, and another Miroir takes the job over once it expires. One Miroir alone
//! (embedded store) always holds it.
//!
//! Fencing: what these jobs change on the nodes goes through the write order, which is
//! itself held by one Miroir at a time, so a holder that stalled past its lease cannot
//! interleave its writes with the new holder's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use miroir_handoff::{HintStore, LEASE_MS};

pub struct JobLease {
    shared: Option<Held>,
}

struct Held {
    hints: Arc<HintStore>,
    key: String,
    renewer: tokio::task::JoinHandle<()>,
    held: Arc<AtomicBool>,
}

impl JobLease {
    /// Takes `job`'s lease, or `None` while another Miroir holds it (or Redis does not
    /// answer): the job waits for its next round.
    pub async fn take(hints: &Arc<HintStore>, job: &str) -> Option<Self> {
        if !hints.shared() {
            return Some(Self { shared: None });
        }
        let key = format!("job:{job}");
        let (store, k) = (hints.clone(), key.clone());
        let taken = tokio::task::spawn_blocking(move || store.lease(&k)).await;
        if !matches!(taken, Ok(Ok(true))) {
            return None;
        }
        let held = Arc::new(AtomicBool::new(true));
        let renewer = tokio::spawn(renew(hints.clone(), key.clone(), held.clone()));
        Some(Self {
            shared: Some(Held {
                hints: hints.clone(),
                key,
                renewer,
                held,
            }),
        })
    }

    /// Whether this Miroir still holds it: a long job stops early once it passed on.
    pub fn held(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|h| h.held.load(Ordering::Relaxed))
    }
}

async fn renew(hints: Arc<HintStore>, key: String, held: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(Duration::from_millis(LEASE_MS / 3)).await;
        let (store, k) = (hints.clone(), key.clone());
        let kept = tokio::task::spawn_blocking(move || store.lease(&k)).await;
        if !matches!(kept, Ok(Ok(true))) {
            log::warn!(target: "miroir::jobs", "lost the lease of {key}");
            held.store(false, Ordering::Relaxed);
            return;
        }
    }
}

impl Drop for JobLease {
    fn drop(&mut self) {
        let Some(h) = self.shared.take() else {
            return;
        };
        h.renewer.abort();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || {
                let _ = h.hints.release(&h.key);
            });
        }
    }
}
