//! The life of one node as Miroir sees it, fed by active health checks and by live traffic
//! (passive checks):
//!
//! ```text
//!   active --fail--> suspect --fail x unhealthy_threshold--> failed
//!     ^                 |                                      | ok
//!     +------ok---------+                                      v
//!     +--ok x healthy_threshold, no hints left-- recovering <--+
//!                                                   ^   |fail -> failed
//!      active/suspect --missed a write (hinted)-----+
//! ```
//!
//! Reads use `active` and `suspect` nodes only: a `recovering` node answers but still lacks
//! writes it missed (its hints are being replayed), and a `failed` one does not answer.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Active,
    /// Failed a check or a live request; still used until the failures add up.
    Suspect,
    Failed,
    /// Answering again (or behind on writes): replaying its hints, not serving reads.
    Recovering,
}

impl NodeState {
    pub const ALL: [NodeState; 4] = [
        NodeState::Active,
        NodeState::Suspect,
        NodeState::Failed,
        NodeState::Recovering,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Suspect => "suspect",
            NodeState::Failed => "failed",
            NodeState::Recovering => "recovering",
        }
    }

    /// Whether reads may use the node.
    pub fn serves_reads(self) -> bool {
        matches!(self, NodeState::Active | NodeState::Suspect)
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => NodeState::Suspect,
            2 => NodeState::Failed,
            3 => NodeState::Recovering,
            _ => NodeState::Active,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            NodeState::Active => 0,
            NodeState::Suspect => 1,
            NodeState::Failed => 2,
            NodeState::Recovering => 3,
        }
    }
}

/// The thresholds of `[health]`.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Consecutive failures that make a node `failed`.
    pub unhealthy: u32,
    /// Consecutive successes that make a `recovering` node `active` (once caught up).
    pub healthy: u32,
}

/// A state change, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: NodeState,
    pub to: NodeState,
}

/// One node's state; shared by every request, so transitions are serialized by a small lock
/// while reads of the state are a relaxed atomic load.
pub struct NodeHealth {
    state: AtomicU8,
    transition: Mutex<Streaks>,
    /// Unix millis of the last state change.
    last_change_ms: AtomicU64,
    /// Consecutive failures, as last computed (for the topology).
    failures: AtomicU32,
}

#[derive(Default)]
struct Streaks {
    ok: u32,
    fail: u32,
}

impl NodeHealth {
    pub fn new(initial: NodeState) -> Self {
        Self {
            state: AtomicU8::new(initial.to_u8()),
            transition: Mutex::new(Streaks::default()),
            last_change_ms: AtomicU64::new(now_ms()),
            failures: AtomicU32::new(0),
        }
    }

    pub fn state(&self) -> NodeState {
        NodeState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn is_healthy(&self) -> bool {
        self.state().serves_reads()
    }

    pub fn last_change_ms(&self) -> u64 {
        self.last_change_ms.load(Ordering::Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    fn set(&self, to: NodeState) -> Option<Transition> {
        let from = NodeState::from_u8(self.state.swap(to.to_u8(), Ordering::Relaxed));
        (from != to).then(|| {
            self.last_change_ms.store(now_ms(), Ordering::Relaxed);
            Transition { from, to }
        })
    }

    /// Records one outcome. `active_check` distinguishes a health check from live traffic:
    /// only checks bring a failed node back. `caught_up`: the node has no hints waiting.
    pub fn observe(
        &self,
        ok: bool,
        active_check: bool,
        caught_up: bool,
        t: Thresholds,
    ) -> Option<Transition> {
        let mut streaks = self.transition.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            streaks.fail = 0;
            streaks.ok = streaks.ok.saturating_add(1);
        } else {
            streaks.ok = 0;
            streaks.fail = streaks.fail.saturating_add(1);
        }
        self.failures.store(streaks.fail, Ordering::Relaxed);
        let state = self.state();
        let next = match (state, ok) {
            (NodeState::Active | NodeState::Suspect, false)
                if streaks.fail >= t.unhealthy.max(1) =>
            {
                NodeState::Failed
            }
            (NodeState::Active, false) => NodeState::Suspect,
            (NodeState::Suspect, true) => NodeState::Active,
            (NodeState::Failed, true) if active_check => NodeState::Recovering,
            (NodeState::Recovering, false) if streaks.fail >= t.unhealthy.max(1) => {
                NodeState::Failed
            }
            (NodeState::Recovering, true) if caught_up && streaks.ok >= t.healthy.max(1) => {
                NodeState::Active
            }
            (s, _) => s,
        };
        self.set(next)
    }

    /// The node missed a write (now hinted): it must not serve reads until it caught up.
    pub fn fell_behind(&self) -> Option<Transition> {
        let _guard = self.transition.lock().unwrap_or_else(|p| p.into_inner());
        match self.state() {
            NodeState::Active | NodeState::Suspect => self.set(NodeState::Recovering),
            _ => None,
        }
    }

    /// The node's hints are all replayed: a recovering node that passes its checks is active.
    pub fn caught_up(&self, t: Thresholds) -> Option<Transition> {
        let streaks = self.transition.lock().unwrap_or_else(|p| p.into_inner());
        match self.state() {
            NodeState::Recovering if streaks.ok >= t.healthy.max(1) => self.set(NodeState::Active),
            _ => None,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        unhealthy: 3,
        healthy: 2,
    };

    fn states(h: &NodeHealth, outcomes: &[(bool, bool, bool)]) -> Vec<NodeState> {
        outcomes
            .iter()
            .map(|&(ok, check, caught_up)| {
                h.observe(ok, check, caught_up, T);
                h.state()
            })
            .collect()
    }

    #[test]
    fn failures_go_through_suspect_to_failed_and_back_through_recovering() {
        use NodeState::*;
        let h = NodeHealth::new(Active);
        let seen = states(
            &h,
            &[
                (false, true, true),
                (false, false, true),
                (false, true, true),
                (true, false, true), // live traffic does not revive a failed node
                (true, true, true),
                (true, true, true),
            ],
        );
        assert_eq!(
            seen,
            [Suspect, Suspect, Failed, Failed, Recovering, Active],
            "the success streak counts the live success too"
        );
        assert!(h.is_healthy());
    }

    #[test]
    fn a_suspect_node_that_answers_is_active_again() {
        let h = NodeHealth::new(NodeState::Active);
        h.observe(false, false, true, T);
        assert_eq!(h.state(), NodeState::Suspect);
        assert!(h.is_healthy(), "suspect nodes still serve");
        let t = h.observe(true, false, true, T);
        assert_eq!(
            t,
            Some(Transition {
                from: NodeState::Suspect,
                to: NodeState::Active
            })
        );
    }

    #[test]
    fn a_node_behind_on_writes_recovers_only_once_caught_up() {
        let h = NodeHealth::new(NodeState::Active);
        assert!(h.fell_behind().is_some());
        assert!(!h.is_healthy());
        for _ in 0..5 {
            h.observe(true, true, false, T);
        }
        assert_eq!(h.state(), NodeState::Recovering);
        assert!(h.caught_up(T).is_some());
        assert_eq!(h.state(), NodeState::Active);
        // Failing while recovering goes back to failed.
        h.fell_behind();
        for _ in 0..3 {
            h.observe(false, true, false, T);
        }
        assert_eq!(h.state(), NodeState::Failed);
        assert!(h.fell_behind().is_none(), "a failed node stays failed");
    }
}
