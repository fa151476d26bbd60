//! Scatter for reads: one replica per shard, chosen by latency (EWMA weighted by in-flight
//! requests, with a little exploration so a recovered node is noticed), hedged when a node is
//! later than its recent p95, and retried on another replica when it fails.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use futures::future::{select, Either};
use miroir_filters::routing::{GroupId, NodeId, NodeIdx, ShardId};

use crate::state::{Runtime, Shared};
use crate::upstream::{NodeRequest, NodeResponse};

/// Latency memory of one node.
#[derive(Default)]
pub struct NodeStats {
    /// EWMA of response time, in microseconds (0 = no sample yet).
    ewma_us: AtomicU64,
    in_flight: AtomicU32,
    recent: Mutex<VecDeque<u32>>,
}

const RECENT: usize = 64;
/// Weight of a new sample in the EWMA.
const ALPHA: f64 = 0.2;
/// Share of choices that ignore the EWMA, so a node that recovered gets measured again.
const EXPLORE_PER_MILLE: u64 = 50;

impl NodeStats {
    fn record(&self, took: Duration) {
        let us = took.as_micros().min(u32::MAX as u128) as u32;
        let old = self.ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            us as f64
        } else {
            ALPHA * us as f64 + (1.0 - ALPHA) * old as f64
        };
        self.ewma_us.store(new.max(1.0) as u64, Ordering::Relaxed);
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
    seed: AtomicU64,
}

impl Latencies {
    pub fn stats(&self, id: &NodeId) -> Arc<NodeStats> {
        self.nodes.entry(id.clone()).or_default().clone()
    }

    fn random(&self) -> u64 {
        // xorshift: cheap, and good enough to spread exploration.
        let mut x = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    /// The replica to ask among `candidates` (already filtered to usable ones).
    pub fn choose(&self, rt: &Runtime, candidates: &[NodeIdx]) -> Option<NodeIdx> {
        if candidates.is_empty() {
            return None;
        }
        let r = self.random();
        if r % 1000 < EXPLORE_PER_MILLE {
            return Some(candidates[(r / 1000) as usize % candidates.len()]);
        }
        candidates
            .iter()
            .copied()
            .min_by_key(|&n| self.stats(&rt.nodes[n.index()].id).cost())
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

    async fn ask(&self, node: NodeIdx, shards: &[ShardId]) -> Option<NodeResponse> {
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
        let stats = self.shared.latencies.stats(&runtime_node.id);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self
            .shared
            .client
            .send(runtime_node, &req, self.rt.config.scatter.node_timeout)
            .await;
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        match result {
            // A 4xx is the request's fault: every replica would say the same.
            Ok(resp) if resp.status < 500 => {
                stats.record(started.elapsed());
                Some(resp)
            }
            _ => {
                // A failure counts as a slow answer so the node is avoided for a while.
                stats.record(self.rt.config.scatter.node_timeout);
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
            let primary = Box::pin(self.ask(node, &shards));
            let timer = Box::pin(tokio::time::sleep(self.hedge_delay(node)));
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
    let s = Scatter {
        shared,
        rt,
        req,
        auth,
        request_id,
    };
    let all: Vec<ShardId> = (0..rt.config.shards).map(ShardId).collect();
    let hedges = rt.config.scatter.max_hedges_per_query;
    let mut gathered = s.recover(&all, group, BTreeSet::new(), hedges).await;
    gathered.missing.sort_unstable();
    gathered.missing.dedup();
    gathered
}
