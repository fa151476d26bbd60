//! Latency memory per node, for replica choice and hedging: an EWMA weighted by in-flight
//! requests, a window of recent answers for the p95, and a time-based probe so a node that
//! was avoided gets measured again. Kept across config reloads by node id.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use miroir_filters::routing::{NodeId, NodeIdx};

use super::Runtime;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sample {
    Measured,
    /// The answer to a probe: the memory it replaces is stale, so it replaces the EWMA.
    Probe,
    /// A failure or a lost race: moves the EWMA only, since in the p95 window it would push
    /// the node's hedge delay up to the penalty.
    Penalty,
}

/// Latency memory of one node.
#[derive(Default)]
pub struct NodeStats {
    /// EWMA of response time, in microseconds (0 = no sample yet).
    ewma_us: AtomicU64,
    in_flight: AtomicU32,
    recent: Mutex<VecDeque<u32>>,
    /// The p95 of `recent` when it was last worked out, in microseconds (0 = not yet), and
    /// the samples added since: every search reads it, so it is sorted again only every
    /// [`P95_EVERY`] samples.
    p95_us: AtomicU32,
    since_p95: AtomicU32,
    /// `now_ms() + 1` at the last sample or probe claim (0 = never).
    last_seen_ms: AtomicU64,
    /// A probe was claimed and its request not sent yet.
    probe_pending: AtomicBool,
}

const RECENT: usize = 64;
/// Samples after which the p95 is worked out again: it moves little between two of them.
const P95_EVERY: u32 = 8;
/// Weight of a new sample in the EWMA.
const ALPHA: f64 = 0.2;
/// A replica without a sample for this long gets one request, so a node that recovered is
/// measured again. Time-based rather than a share of requests: a slow node then costs a few
/// extra node requests per second (probes are raced against a hedge from the start, so
/// clients never wait for one), not a fixed percentage of all searches.
const PROBE_AFTER_MS: u64 = 250;

/// Milliseconds since the first call, a clock cheap enough for every request.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl NodeStats {
    fn record(&self, took: Duration, sample: Sample) {
        let us = took.as_micros().min(u32::MAX as u128) as u32;
        let old = self.ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 || sample == Sample::Probe {
            us as f64
        } else {
            ALPHA * us as f64 + (1.0 - ALPHA) * old as f64
        };
        self.ewma_us.store(new.max(1.0) as u64, Ordering::Relaxed);
        self.last_seen_ms.store(now_ms() + 1, Ordering::Relaxed);
        if sample == Sample::Penalty {
            return;
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(us);
            self.since_p95.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lower is better: expected latency times the queue ahead of us.
    fn cost(&self) -> u64 {
        let ewma = self.ewma_us.load(Ordering::Relaxed).max(1);
        ewma.saturating_mul(u64::from(self.in_flight.load(Ordering::Relaxed)) + 1)
    }

    /// Takes the mark of a claimed probe: the next request to this node is that probe.
    pub fn take_probe(&self) -> bool {
        self.probe_pending.swap(false, Ordering::Relaxed)
    }

    /// True for the one caller that may probe this node now (nothing heard for a while).
    fn claim_probe(&self) -> bool {
        let last = self.last_seen_ms.load(Ordering::Relaxed);
        let now = now_ms() + 1;
        let claimed = now.saturating_sub(last) >= PROBE_AFTER_MS
            && self
                .last_seen_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if claimed {
            self.probe_pending.store(true, Ordering::Relaxed);
        }
        claimed
    }

    /// The 95th percentile of the recent answers, once there are enough of them.
    pub fn p95(&self) -> Option<Duration> {
        let cached = self.p95_us.load(Ordering::Relaxed);
        if cached != 0 && self.since_p95.load(Ordering::Relaxed) < P95_EVERY {
            return Some(Duration::from_micros(u64::from(cached)));
        }
        let recent = self.recent.lock().ok()?;
        if recent.len() < 8 {
            return None;
        }
        let mut v = [0u32; RECENT];
        let v = &mut v[..recent.len()];
        for (slot, us) in v.iter_mut().zip(recent.iter()) {
            *slot = *us;
        }
        v.sort_unstable();
        // At least 1: 0 marks "not worked out yet".
        let p95 = v[(v.len() * 95 / 100).min(v.len() - 1)].max(1);
        self.since_p95.store(0, Ordering::Relaxed);
        self.p95_us.store(p95, Ordering::Relaxed);
        Some(Duration::from_micros(u64::from(p95)))
    }
}

/// Per-node latency memory, kept across config reloads by node id.
#[derive(Default)]
pub struct Latencies {
    nodes: DashMap<NodeId, Arc<NodeStats>>,
}

impl Latencies {
    pub fn stats(&self, id: &NodeId) -> Arc<NodeStats> {
        // A read lock and no copy of the id, except the first time a node is seen.
        if let Some(stats) = self.nodes.get(id) {
            return stats.clone();
        }
        self.nodes.entry(id.clone()).or_default().clone()
    }

    /// The replica to ask among `candidates` (already filtered to usable ones).
    pub fn choose(&self, rt: &Runtime, candidates: &[NodeIdx]) -> Option<NodeIdx> {
        let stats = |n: NodeIdx| self.stats(&rt.nodes[n.index()].id);
        let best = candidates
            .iter()
            .copied()
            .min_by_key(|&n| stats(n).cost())?;
        let probe = candidates
            .iter()
            .copied()
            .find(|&n| n != best && stats(n).claim_probe());
        Some(probe.unwrap_or(best))
    }
}

/// One request to a node in flight. Dropped unfinished when a hedge won: the in-flight count
/// must still come down, and the node was slower than its rival, so that is recorded too
/// (twice the time it had: a guess, but one that lets the EWMA see a node that is always
/// beaten). A probe raced from the start proves nothing by losing and records nothing.
pub struct InFlight {
    stats: Arc<NodeStats>,
    started: Instant,
    done: bool,
    probe: bool,
}

impl InFlight {
    pub fn start(stats: Arc<NodeStats>, probe: bool) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            stats,
            started: Instant::now(),
            done: false,
            probe,
        }
    }

    /// Records the answer's latency, or `took` instead.
    pub fn finish(&mut self, took: Option<Duration>) {
        self.done = true;
        match took {
            Some(penalty) => self.stats.record(penalty, Sample::Penalty),
            None if self.probe => self.stats.record(self.started.elapsed(), Sample::Probe),
            None => self.stats.record(self.started.elapsed(), Sample::Measured),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done && !self.probe {
            self.stats
                .record(self.started.elapsed() * 2, Sample::Penalty);
        }
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn penalties_move_the_ewma_but_not_the_hedge_delay() {
        let s = NodeStats::default();
        for _ in 0..10 {
            s.record(ms(2), Sample::Measured);
        }
        let cost = s.cost();
        for _ in 0..5 {
            s.record(ms(5000), Sample::Penalty);
        }
        assert!(s.cost() > cost * 100, "the node is avoided");
        assert_eq!(s.p95(), Some(ms(2)), "hedging still expects 2 ms from it");
    }

    #[test]
    fn the_p95_follows_new_answers_within_a_few_samples() {
        let s = NodeStats::default();
        for _ in 0..RECENT {
            s.record(ms(2), Sample::Measured);
        }
        assert_eq!(s.p95(), Some(ms(2)));
        // The node slows down: a quarter of the window at 40 ms moves the p95 there.
        for _ in 0..RECENT / 4 {
            s.record(ms(40), Sample::Measured);
        }
        assert_eq!(s.p95(), Some(ms(40)));
        // Read again before enough new samples: the same value, without sorting again.
        s.record(ms(1), Sample::Measured);
        assert_eq!(s.p95(), Some(ms(40)));
    }

    #[test]
    fn a_probe_answer_replaces_stale_memory() {
        let s = NodeStats::default();
        s.record(ms(300), Sample::Measured);
        s.record(ms(3), Sample::Probe);
        assert_eq!(s.ewma_us.load(Ordering::Relaxed), 3000);
    }

    #[test]
    fn a_probe_is_granted_once_per_interval() {
        let s = NodeStats::default();
        s.last_seen_ms.store(1, Ordering::Relaxed);
        // `now_ms` starts at 0 on first use: wait out the interval from there.
        now_ms();
        std::thread::sleep(ms(PROBE_AFTER_MS + 5));
        assert!(s.claim_probe());
        assert!(!s.claim_probe(), "the mark moved: the next probe waits");
        assert!(s.probe_pending.load(Ordering::Relaxed));
    }

    #[test]
    fn a_request_abandoned_to_a_hedge_still_leaves_the_in_flight_count() {
        let stats = Arc::new(NodeStats::default());
        drop(InFlight::start(stats.clone(), false));
        assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0);
        assert!(
            stats.ewma_us.load(Ordering::Relaxed) > 0,
            "recorded as a loss"
        );
        let probe = Arc::new(NodeStats::default());
        drop(InFlight::start(probe.clone(), true));
        assert_eq!(probe.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(
            probe.ewma_us.load(Ordering::Relaxed),
            0,
            "a lost probe proves nothing"
        );
    }
}
