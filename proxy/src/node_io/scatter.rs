//! Scatter for reads: one replica per shard, chosen by latency (`cluster::latency`: EWMA
//! weighted by in-flight requests, with probes), hedged when a node is later than its recent
//! p95, and retried on another replica, then another group, when it fails.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, Either};
use miroir_conf::UnavailableShardPolicy;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::{GroupId, NodeIdx, NodeScope, ShardId};

use crate::cluster::latency::{InFlight, NodeStats};
use crate::cluster::{Cluster, Runtime};
use crate::upstream::{batch, Caller, NodeRequest, NodeResponse, UpstreamError};

/// One answer of a node for a set of shards.
pub struct ShardAnswer {
    /// The node that answered.
    pub node: NodeIdx,
    pub shards: Vec<ShardId>,
    pub response: NodeResponse,
}

/// What a scatter produced.
#[derive(Default)]
pub struct Gathered {
    pub answers: Vec<ShardAnswer>,
    /// Shards no replica answered for.
    pub missing: Vec<ShardId>,
    /// The answers would have overdrawn the request's answer budget.
    pub over_budget: bool,
}

impl Gathered {
    /// `node`'s answer for all of `shards`.
    fn answered(node: NodeIdx, shards: Vec<ShardId>, response: NodeResponse) -> Self {
        Self {
            answers: vec![ShardAnswer {
                node,
                shards,
                response,
            }],
            ..Self::default()
        }
    }

    /// The `X-Miroir-Degraded` value naming the missing shards, when the policy allows a
    /// partial answer; the error to answer when it does not (or when nothing answered).
    pub fn degraded(&self, rt: &Runtime) -> Result<Option<String>, MiroirError> {
        if self.over_budget {
            return Err(answer_too_large(rt));
        }
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
        Ok(Some(format!("shards={list}")))
    }
}

/// What a request that reads more than `server.max_answer_bytes` of node answers gets.
pub fn answer_too_large(rt: &Runtime) -> MiroirError {
    MiroirError::new(
        Code::AnswerTooLarge,
        format!(
            "The nodes' answers to this request would exceed {} bytes (`server.max_answer_bytes`); ask for fewer documents or fields.",
            rt.config.server.max_answer_bytes
        ),
    )
}

/// A read request for a set of shards: the body depends on the shards a node answers for.
pub trait ShardRequest: Sync {
    fn method(&self) -> &str;
    fn path(&self) -> &str;
    fn body(&self, scope: NodeScope<'_>) -> Vec<u8>;
}

struct Scatter<'a, R: ShardRequest> {
    cluster: &'a Cluster,
    rt: &'a Runtime,
    req: &'a R,
    caller: Caller<'a>,
    /// The index's S: a node holds its shards below it.
    index_shards: u32,
    /// An answer overdrew the request's budget: nothing more is asked.
    over_budget: AtomicBool,
}

/// One replica per shard, grouped by node, as a read chooses them (healthy, `group` first,
/// by latency); shards without any usable replica apart.
pub fn cover(
    (cluster, rt): (&Cluster, &Runtime),
    shards: &[ShardId],
    group: GroupId,
    exclude: &BTreeSet<NodeIdx>,
) -> (Vec<(NodeIdx, Vec<ShardId>)>, Vec<ShardId>) {
    let p = rt.reads();
    let groups =
        || std::iter::once(group).chain((0..p.groups()).map(GroupId).filter(|g| *g != group));
    let mut by_node: Vec<(NodeIdx, Vec<ShardId>)> = Vec::new();
    let mut missing = Vec::new();
    // The usable replicas of one shard in one group; reused, since every search covers all
    // its shards.
    let mut usable: Vec<NodeIdx> = Vec::new();
    for &shard in shards {
        let choice = groups().find_map(|g| {
            usable.clear();
            usable.extend(
                p.replicas(g, shard)
                    .iter()
                    .copied()
                    .filter(|n| !exclude.contains(n) && cluster.is_healthy(p.node(*n))),
            );
            // Prefer a node already asked for another shard: fewer requests.
            usable
                .iter()
                .copied()
                .find(|n| by_node.iter().any(|(m, _)| m == n))
                .or_else(|| cluster.latencies.choose(rt, &usable))
        });
        match choice {
            Some(n) => match by_node.iter_mut().find(|(m, _)| *m == n) {
                Some((_, list)) => list.push(shard),
                None => {
                    // Room for every shard: one allocation per node, not one per doubling.
                    let mut list = Vec::with_capacity(shards.len());
                    list.push(shard);
                    by_node.push((n, list));
                }
            },
            None => missing.push(shard),
        }
    }
    (by_node, missing)
}

/// What `node` is asked to answer for `shards` of an index with `index_shards` shards: with
/// no shard clause when they are every shard of the index it holds (and it holds no other
/// documents, see `Runtime::holds_exactly`).
pub fn scope<'s>(
    rt: &Runtime,
    node: NodeIdx,
    shards: &'s [ShardId],
    index_shards: u32,
) -> NodeScope<'s> {
    let held = rt.reads().shards_of(node);
    let whole = held.iter().filter(|s| s.0 < index_shards).count() == shards.len()
        && shards.iter().all(|s| held.contains(s));
    NodeScope {
        shards,
        whole_node: whole && rt.holds_exactly(node),
    }
}

impl<'a, R: ShardRequest> Scatter<'a, R> {
    fn new(
        cluster: &'a Cluster,
        rt: &'a Runtime,
        req: &'a R,
        caller: Caller<'a>,
        index_shards: u32,
    ) -> Self {
        Self {
            cluster,
            rt,
            req,
            caller,
            index_shards,
            over_budget: AtomicBool::new(false),
        }
    }

    async fn ask(&self, node: NodeIdx, shards: &[ShardId], probe: bool) -> Option<NodeResponse> {
        if self.over_budget.load(Ordering::Relaxed) {
            return None;
        }
        // A node asked for every shard it holds answers with its whole index: no shard clause.
        // Not a node gaining or losing shards in a topology change: it may hold documents of
        // shards it does not serve.
        let scope = scope(self.rt, node, shards, self.index_shards);
        let body = [Bytes::from(self.req.body(scope))];
        let req = NodeRequest::json(self.req.method(), self.req.path(), None, &body)
            .on_behalf(self.caller);
        let runtime_node = &self.rt.nodes[node.index()];
        let mut flight = InFlight::start(self.cluster.latencies.stats(&runtime_node.id), probe);
        let result = self
            .cluster
            .client
            .send(runtime_node, &req, self.rt.config.scatter.node_timeout)
            .await;
        match result {
            // A 4xx (or 501) is the request's fault: every replica would say the same.
            Ok(resp) if resp.judged() => {
                flight.finish(None);
                self.cluster.observe(self.rt, &runtime_node.id, true, false);
                Some(resp)
            }
            // The request asked for more than it may read: no replica would do better.
            Err(UpstreamError::AnswerTooLarge) => {
                self.over_budget.store(true, Ordering::Relaxed);
                None
            }
            _ => {
                // A failure counts as a slow answer so the node is avoided for a while, and
                // as a failed passive check.
                flight.finish(Some(self.rt.config.scatter.node_timeout));
                self.cluster
                    .observe(self.rt, &runtime_node.id, false, false);
                None
            }
        }
    }

    fn hedge_delay(&self, stats: &NodeStats) -> Duration {
        let floor = self.rt.config.scatter.hedge_after_floor;
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
            let stats = self
                .cluster
                .latencies
                .stats(&self.rt.nodes[node.index()].id);
            // A probe of a node that may still be slow is hedged at once: the client never
            // waits for it, and the probe's answer is measured when it comes first.
            let probe = stats.take_probe();
            let primary = Box::pin(self.ask(node, &shards, probe));
            if hedges_left == 0 || !self.has_other_replica(&shards, &excluded) {
                // No timer where a hedge has nowhere to go (one replica, the default): arming
                // one costs each search a write to the reactor's eventfd.
                return match primary.await {
                    Some(resp) => Gathered::answered(node, shards, resp),
                    None => self.recover(&shards, group, excluded, hedges_left).await,
                };
            }
            let delay = if probe {
                Duration::ZERO
            } else {
                self.hedge_delay(&stats)
            };
            // Armed once the node requests have left (`batch::after_send`).
            let timer = Box::pin(async move {
                batch::after_send().await;
                tokio::time::sleep(delay).await;
            });
            match select(primary, timer).await {
                Either::Left((Some(resp), _)) => Gathered::answered(node, shards.clone(), resp),
                Either::Left((None, _)) => {
                    self.recover(&shards, group, excluded, hedges_left).await
                }
                Either::Right(((), primary)) => {
                    // Late: ask other replicas too and take whichever completes first.
                    let hedge =
                        Box::pin(self.recover(&shards, group, excluded.clone(), hedges_left - 1));
                    match select(primary, hedge).await {
                        Either::Left((Some(resp), _)) => {
                            Gathered::answered(node, shards.clone(), resp)
                        }
                        Either::Left((None, hedge)) => hedge.await,
                        Either::Right((gathered, _)) if gathered.missing.is_empty() => gathered,
                        Either::Right((_, primary)) => match primary.await {
                            Some(resp) => Gathered::answered(node, shards.clone(), resp),
                            None => Gathered {
                                missing: shards.clone(),
                                ..Gathered::default()
                            },
                        },
                    }
                }
            }
        })
    }

    /// Whether a replica outside `excluded` holds one of `shards`, in any group: somewhere a
    /// hedge could go. Health is not asked: a node may be healthy again when the timer fires.
    fn has_other_replica(&self, shards: &[ShardId], excluded: &BTreeSet<NodeIdx>) -> bool {
        let p = self.rt.reads();
        shards.iter().any(|&shard| {
            (0..p.groups()).any(|g| {
                p.replicas(GroupId(g), shard)
                    .iter()
                    .any(|n| !excluded.contains(n))
            })
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
        let (by_node, mut missing) = cover((self.cluster, self.rt), shards, group, &exclude);
        let fetches = by_node
            .into_iter()
            .map(|(n, s)| self.fetch(n, s, group, exclude.clone(), hedges_left));
        let mut answers = Vec::new();
        for g in futures::future::join_all(fetches).await {
            answers.extend(g.answers);
            missing.extend(g.missing);
        }
        Gathered {
            answers,
            missing,
            ..Gathered::default()
        }
    }
}

/// Asks `node` alone for `shards`, with no hedge and no retry: what a node that answered a
/// scatter is asked next (the rest of its hits). `None` when it failed.
pub async fn ask_node<R: ShardRequest>(
    cluster: &Cluster,
    rt: &Runtime,
    req: &R,
    caller: Caller<'_>,
    (node, index_shards): (NodeIdx, u32),
    shards: &[ShardId],
) -> Option<NodeResponse> {
    Scatter::new(cluster, rt, req, caller, index_shards)
        .ask(node, shards, false)
        .await
}

/// Scatters `req` over one replica of every shard (`0..index_shards`, the index's S) of the
/// group `group`.
pub async fn gather<R: ShardRequest>(
    cluster: &Cluster,
    rt: &Runtime,
    req: &R,
    caller: Caller<'_>,
    (group, index_shards): (GroupId, u32),
) -> Gathered {
    let all: Vec<ShardId> = (0..index_shards).map(ShardId).collect();
    gather_shards(cluster, rt, req, caller, (group, index_shards), &all).await
}

/// Like [`gather`], over only `shards` of the index (reads that concern some shards, or one
/// at a time).
pub async fn gather_shards<R: ShardRequest>(
    cluster: &Cluster,
    rt: &Runtime,
    req: &R,
    caller: Caller<'_>,
    (group, index_shards): (GroupId, u32),
    shards: &[ShardId],
) -> Gathered {
    let s = Scatter::new(cluster, rt, req, caller, index_shards);
    let hedges = rt.config.scatter.max_hedges_per_query;
    let mut gathered = s.recover(shards, group, BTreeSet::new(), hedges).await;
    gathered.missing.sort_unstable();
    gathered.missing.dedup();
    gathered.over_budget = s.over_budget.load(Ordering::Relaxed);
    gathered
}
