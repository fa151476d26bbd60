//! Holding every write of the fleet while a topology step changes where writes go (a change
//! begins, a new owner's move log is drained and its writes sent directly from then on, the
//! new layout applied), so that no write straddles the switch.
//!
//! One Miroir: its write gate, held alone. Several sharing a Redis: the board's gate first
//! (one holder at a time), then this Miroir's own, then every other live Miroir says it holds
//! its writes too (each once its writes in flight are done, see `shared_topology::Follower`);
//! they let writes go again only after installing what the holder committed meanwhile. A
//! Miroir that stopped beating is gone and not waited for; a holder that dies stops renewing
//! the gate, which opens by itself ([`GATE_MS`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir_handoff::{HintStore, GATE_MS};
use tokio::sync::RwLockWriteGuard;

use super::shared_topology::{on_board, sync};
use super::Cluster;

/// How long a step waits for the gate, then for the other Miroirs to hold their writes,
/// before it gives up (and is tried again).
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(5);

/// Every write held until dropped (commit what changes where writes go before).
pub struct WritesHeld<'a> {
    _local: RwLockWriteGuard<'a, ()>,
    _fleet: Option<FleetGate>,
}

/// The board's gate, closed by this Miroir: renewed until dropped, then opened.
struct FleetGate {
    hints: Arc<HintStore>,
    holder: String,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for FleetGate {
    fn drop(&mut self) {
        self.keeper.abort();
        let (hints, holder) = (self.hints.clone(), std::mem::take(&mut self.holder));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || {
                if let Some(board) = hints.board() {
                    let _ = board.open_gate(&holder);
                }
            });
        }
    }
}

/// Names each closing of the gate apart, so an acknowledgement of an earlier one never
/// counts for this one.
static CLOSINGS: AtomicU64 = AtomicU64::new(0);

impl Cluster {
    /// Holds every write of the fleet (see the module's documentation). `Err` when several
    /// Miroirs share a Redis and it does not answer, or another Miroir neither holds its
    /// writes nor stops beating within [`WAIT`].
    pub async fn hold_writes(&self) -> Result<WritesHeld<'_>, String> {
        let Some(member) = self.hints.board().map(|b| b.member().to_owned()) else {
            return Ok(WritesHeld {
                _local: self.write_gate.write().await,
                _fleet: None,
            });
        };
        let deadline = Instant::now() + WAIT;
        let holder = format!("{member}/{}", CLOSINGS.fetch_add(1, Ordering::Relaxed));
        loop {
            let h = holder.clone();
            if on_board(&self.hints, move |b| b.close_gate(&h)).await? {
                break;
            }
            if Instant::now() > deadline {
                return Err("another Miroir holds the fleet's writes; trying again".into());
            }
            tokio::time::sleep(POLL).await;
        }
        let fleet = FleetGate {
            hints: self.hints.clone(),
            holder: holder.clone(),
            keeper: tokio::spawn(keep(self.hints.clone(), holder.clone())),
        };
        let local = self.write_gate.write().await;
        loop {
            let (members, acks) = on_board(&self.hints, |b| Ok((b.members()?, b.acks()?))).await?;
            let waiting: Vec<&str> = members
                .iter()
                .map(|(m, _)| m.as_str())
                .filter(|m| *m != member && acks.get(*m) != Some(&holder))
                .collect();
            if waiting.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Miroir {} did not hold its writes in time; trying again",
                    waiting.join(", ")
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        // Every other Miroir is held: what one committed before it was is installed here.
        sync(self).await?;
        Ok(WritesHeld {
            _local: local,
            _fleet: Some(fleet),
        })
    }
}

async fn keep(hints: Arc<HintStore>, holder: String) {
    loop {
        tokio::time::sleep(Duration::from_millis(GATE_MS / 5)).await;
        let h = holder.clone();
        match on_board(&hints, move |b| b.close_gate(&h)).await {
            Ok(true) => {}
            Ok(false) => {
                log::error!(target: "miroir::topology", "the fleet's write gate expired while held (this Miroir stalled)");
                return;
            }
            Err(e) => {
                log::warn!(target: "miroir::topology", "cannot renew the fleet's write gate: {e}")
            }
        }
    }
}
