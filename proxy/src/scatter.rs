//! Scatter for reads: one replica per shard, chosen by latency (EWMA weighted by in-flight
//! requests; a replica not measured for a while is probed once so a recovered node is
//! noticed), hedged when a node is later than its recent p95, and retried on another replica
//! when it fails.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use futures::future::{select, Either};
use miroir_conf::UnavailableShardPolicy;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::{GroupId, NodeId, NodeIdx, ShardId};

use crate::state::{Runtime, Shared};
use crate::upstream::{NodeRequest, NodeResponse};

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
    /// `now_ms() + 1` at the last sample or probe claim (0 = never).
    last_seen_ms: AtomicU64,
    /// A probe was claimed and its request not sent yet.
    probe_pending: AtomicBool,
}

const RECENT: usize = 64;
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
        }
    }

    /// Lower is better: expected latency times the queue ahead of us.
    fn cost(&self) -> u64 {
        let ewma = self.ewma_us.load(Ordering::Relaxed).max(1);
        ewma.saturating_mul(u64::from(self.in_flight.load(Ordering::Relaxed)) + 1)
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

    fn p95(&self) -> Option<Duration> {
        let recent = self.recent.lock().ok()?;
        if recent.len() < 8 {
            return None;
        }
        let mut v: Vec<u32> = recent.iter().copied().collect();
        v.sort_unstable();
        Some(Duration::from_micros(u64::from(
            v[(v.len() * 95 / 100).min(v.len() - 1)],
        )))
    }
}

/// Per-node latency memory, kept across config reloads by node id.
#[derive(Default)]
pub struct Latencies {
    nodes: DashMap<NodeId, Arc<NodeStats>>,
}

impl Latencies {
    pub fn stats(&self, id: &NodeId) -> Arc<NodeStats> {
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
struct InFlight {
    stats: Arc<NodeStats>,
    started: Instant,
    done: bool,
    probe: bool,
}

impl InFlight {
    fn start(stats: Arc<NodeStats>, probe: bool) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            stats,
            started: Instant::now(),
            done: false,
            probe,
        }
    }

    /// Records the answer's latency, or `took` instead.
    fn finish(&mut self, took: Option<Duration>) {
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

/// One answer of a node for a set of shards.
pub struct ShardAnswer {
    pub shards: Vec<ShardId>,
    pub response: NodeResponse,
}

/// What a scatter produced.
pub struct Gathered {
    pub answers: Vec<ShardAnswer>,
    /// Shards no replica answered for.
    pub missing: Vec<ShardId>,
}

impl Gathered {
    /// The missing shards as `X-Miroir-Degraded` lists them, when the policy allows a partial
    /// answer; the error to answer when it does not (or when nothing answered).
    pub fn degraded(&self, rt: &Runtime) -> Result<Option<String>, MiroirError> {
        if self.missing.is_empty() {
            return Ok(None);
        }
        let list: Vec<String> = self.missing.iter().map(|s| s.0.to_string()).collect();
        let list = list.join(",");
        if rt.config.scatter.unavailable_shard_policy == UnavailableShardPolicy::Error
            || self.answers.is_empty()
        {
            return Err(MiroirError::new(
                Code::ShardUnavailable,
                format!("No replica of shards {list} answered."),
            ));
        }
        Ok(Some(list))
    }
}

/// A read request for a set of shards: the body depends on the shards.
pub trait ShardRequest: Sync {
    fn method(&self) -> &str;
    fn path(&self) -> &str;
    fn body(&self, shards: &[ShardId]) -> Vec<u8>;
}

struct Scatter<'a, R: ShardRequest> {
    shared: &'a Shared,
    rt: &'a Runtime,
    req: &'a R,
    auth: Option<&'a str>,
    request_id: &'a str,
}

impl<R: ShardRequest> Scatter<'_, R> {
    /// Replicas of `shard` that may be asked, in `group` first, then in the other groups.
    fn candidates(
        &self,
        shard: ShardId,
        group: GroupId,
        exclude: &BTreeSet<NodeIdx>,
    ) -> Vec<Vec<NodeIdx>> {
        let p = self.rt.placement();
        let groups =
            std::iter::once(group).chain((0..p.groups()).map(GroupId).filter(|g| *g != group));
        groups
            .map(|g| {
                p.replicas(g, shard)
                    .iter()
                    .copied()
                    .filter(|n| !exclude.contains(n) && self.shared.is_healthy(p.node(*n)))
                    .collect()
            })
            .collect()
    }

    /// One replica per shard, grouped by node; shards without any usable replica apart.
    fn cover(
        &self,
        shards: &[ShardId],
        group: GroupId,
        exclude: &BTreeSet<NodeIdx>,
    ) -> (Vec<(NodeIdx, Vec<ShardId>)>, Vec<ShardId>) {
        let mut by_node: Vec<(NodeIdx, Vec<ShardId>)> = Vec::new();
        let mut missing = Vec::new();
        for &shard in shards {
            let choice = self.candidates(shard, group, exclude).iter().find_map(|c| {
                // Prefer a node already asked for another shard: fewer requests.
                c.iter()
                    .copied()
                    .find(|n| by_node.iter().any(|(m, _)| m == n))
                    .or_else(|| self.shared.latencies.choose(self.rt, c))
            });
            match choice {
                Some(n) => match by_node.iter_mut().find(|(m, _)| *m == n) {
                    Some((_, list)) => list.push(shard),
                    None => by_node.push((n, vec![shard])),
                },
                None => missing.push(shard),
            }
        }
        (by_node, missing)
    }

    async fn ask(&self, node: NodeIdx, shards: &[ShardId], probe: bool) -> Option<NodeResponse> {
        let body = [Bytes::from(self.req.body(shards))];
        let req = NodeRequest {
            method: self.req.method(),
            path: self.req.path(),
            auth: self.auth,
            content_type: Some("application/json"),
            body: &body,
            request_id: Some(self.request_id),
        };
        let runtime_node = &self.rt.nodes[node.index()];
        let mut flight = InFlight::start(self.shared.latencies.stats(&runtime_node.id), probe);
        let result = self
            .shared
            .client
            .send(runtime_node, &req, self.rt.config.scatter.node_timeout)
            .await;
        match result {
            // A 4xx (or 501) is the request's fault: every replica would say the same.
            Ok(resp) if resp.judged() => {
                flight.finish(None);
                self.shared.observe(self.rt, &runtime_node.id, true, false);
                Some(resp)
            }
            _ => {
                // A failure counts as a slow answer so the node is avoided for a while, and
                // as a failed passive check.
                flight.finish(Some(self.rt.config.scatter.node_timeout));
                self.shared.observe(self.rt, &runtime_node.id, false, false);
                None
            }
        }
    }

    fn hedge_delay(&self, node: NodeIdx) -> Duration {
        let floor = self.rt.config.scatter.hedge_after_floor;
        let stats = self.shared.latencies.stats(&self.rt.nodes[node.index()].id);
        stats
            .p95()
            .map_or(floor.max(Duration::from_millis(50)), |p| p.max(floor))
    }

    /// Answers for `shards` from `node`, hedged and retried on other replicas (never `node`
    /// or anything in `exclude`). Depth bounds the retries.
    fn fetch<'s>(
        &'s self,
        node: NodeIdx,
        shards: Vec<ShardId>,
        group: GroupId,
        exclude: BTreeSet<NodeIdx>,
        hedges_left: u32,
    ) -> futures::future::BoxFuture<'s, Gathered> {
        Box::pin(async move {
            let mut excluded = exclude.clone();
            excluded.insert(node);
            let stats = self.shared.latencies.stats(&self.rt.nodes[node.index()].id);
            // A probe of a node that may still be slow is hedged at once: the client never
            // waits for it, and the probe's answer is measured when it comes first.
            let probe = stats.probe_pending.swap(false, Ordering::Relaxed);
            let delay = if probe {
                Duration::ZERO
            } else {
                self.hedge_delay(node)
            };
            let primary = Box::pin(self.ask(node, &shards, probe));
            let timer = Box::pin(tokio::time::sleep(delay));
            let first = if hedges_left > 0 {
                select(primary, timer).await
            } else {
                Either::Left((primary.await, timer))
            };
            match first {
                Either::Left((Some(resp), _)) => Gathered {
                    answers: vec![ShardAnswer {
                        shards: shards.clone(),
                        response: resp,
                    }],
                    missing: Vec::new(),
                },
                Either::Left((None, _)) => {
                    self.recover(&shards, group, excluded, hedges_left).await
                }
                Either::Right(((), primary)) => {
                    // Late: ask other replicas too and take whichever completes first.
                    let hedge =
                        Box::pin(self.recover(&shards, group, excluded.clone(), hedges_left - 1));
                    match select(primary, hedge).await {
                        Either::Left((Some(resp), _)) => Gathered {
                            answers: vec![ShardAnswer {
                                shards: shards.clone(),
                                response: resp,
                            }],
                            missing: Vec::new(),
                        },
                        Either::Left((None, hedge)) => hedge.await,
                        Either::Right((gathered, _)) if gathered.missing.is_empty() => gathered,
                        Either::Right((_, primary)) => match primary.await {
                            Some(resp) => Gathered {
                                answers: vec![ShardAnswer {
                                    shards: shards.clone(),
                                    response: resp,
                                }],
                                missing: Vec::new(),
                            },
                            None => Gathered {
                                answers: Vec::new(),
                                missing: shards.clone(),
                            },
                        },
                    }
                }
            }
        })
    }

    /// Covers `shards` again without the excluded nodes.
    async fn recover(
        &self,
        shards: &[ShardId],
        group: GroupId,
        exclude: BTreeSet<NodeIdx>,
        hedges_left: u32,
    ) -> Gathered {
        let (by_node, mut missing) = self.cover(shards, group, &exclude);
        let fetches = by_node
            .into_iter()
            .map(|(n, s)| self.fetch(n, s, group, exclude.clone(), hedges_left));
        let mut answers = Vec::new();
        for g in futures::future::join_all(fetches).await {
            answers.extend(g.answers);
            missing.extend(g.missing);
        }
        Gathered { answers, missing }
    }
}

/// Scatters `req` over one replica of every shard of the group `group`.
pub async fn gather<R: ShardRequest>(
    shared: &Shared,
    rt: &Runtime,
    req: &R,
    auth: Option<&str>,
    request_id: &str,
    group: GroupId,
) -> Gathered {
    let all: Vec<ShardId> = (0..rt.config.shards).map(ShardId).collect();
    gather_shards(shared, rt, req, auth, request_id, group, &all).await
}

/// Like [`gather`], over only `shards` (reads that concern some shards, or one at a time).
pub async fn gather_shards<R: ShardRequest>(
    shared: &Shared,
    rt: &Runtime,
    req: &R,
    auth: Option<&str>,
    request_id: &str,
    group: GroupId,
    shards: &[ShardId],
) -> Gathered {
    let s = Scatter {
        shared,
        rt,
        req,
        auth,
        request_id,
    };
    let hedges = rt.config.scatter.max_hedges_per_query;
    let mut gathered = s.recover(shards, group, BTreeSet::new(), hedges).await;
    gathered.missing.sort_unstable();
    gathered.missing.dedup();
    gathered
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
