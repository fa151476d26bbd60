//! What the fleet looks like now: the configuration snapshot and placement (`runtime`), each
//! node's state (`node_state`, fed by `health_checks` and by live traffic), how fast each
//! node answers (`latency`), what Miroir knows of each index (`indexes`), and the per-index
//! write order every replica follows. This folder holds state and the rules that change it;
//! it never imports a request path.

pub mod aliases;
pub mod change_progress;
pub(crate) mod durable;
pub mod health_checks;
pub mod indexes;
pub mod job_lease;
pub mod kept;
pub mod latency;
pub mod move_log;
pub mod node_state;
pub mod reshards;
mod runtime;
pub mod shard_counts;
pub mod shared_record;
pub mod shared_topology;
pub mod topology;
pub mod write_order;
mod writes_held;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use miroir_conf::Config;
use miroir_filters::routing::{GroupId, NodeId, ShardId};
use miroir_handoff::HintStore;

pub use runtime::Runtime;
pub use writes_held::WritesHeld;

use crate::telemetry::metrics;
use crate::upstream::NodeClient;
use indexes::IndexKnowledge;
use latency::Latencies;
use node_state::{NodeHealth, NodeState, Thresholds, Transition};
use shard_counts::ShardCounts;
use topology::{Placements, Topology};

pub struct Cluster {
    runtime: ArcSwap<Runtime>,
    /// The applied topology and any change in progress, with the placements derived from
    /// them; changed only by `fleet/` (under this lock, saved before it is used), or
    /// installed from the record several Miroirs share (`shared_topology`).
    topology: std::sync::Mutex<Installed>,
    health: DashMap<NodeId, Arc<NodeHealth>>,
    round_robin: AtomicUsize,
    /// Rotates reads across replica groups.
    read_rotation: AtomicU64,
    /// Miroir's own requests to nodes.
    pub client: NodeClient,
    /// Node latencies for replica choice and hedging.
    pub latencies: Latencies,
    /// Per index: merge settings and the shard field's state.
    pub indexes: IndexKnowledge,
    /// Per index: its shard count S, durable.
    pub shard_counts: ShardCounts,
    /// Writes replicas missed, waiting for replay: a node with some left is not caught up.
    pub hints: Arc<HintStore>,
    /// Per index: held while a write is handed to the nodes (or to their hint queues), so
    /// every replica receives an index's writes in the order Miroir accepted them.
    write_order: write_order::WriteOrder,
    /// Nodes whose hints are being replayed: not caught up even once their queue is empty.
    pub replaying: DashMap<NodeId, ()>,
    /// Nodes whose move log missed a write: their shard copies start over.
    pub broken_move_logs: DashMap<NodeId, ()>,
    /// Held shared by every write while it is handed to nodes and move logs; held alone by a
    /// topology step that changes where writes go (a new owner's move log drained and its
    /// writes sent directly from then on), so no write straddles the change. Such a step
    /// holds it through [`Cluster::hold_writes`], which also holds every other Miroir's.
    pub write_gate: tokio::sync::RwLock<()>,
    /// How the topology change in progress is going.
    pub change: change_progress::ChangeProgress,
    /// Indexes whose shard count is being changed, and the mirror of their writes.
    pub reshards: reshards::Reshards,
    /// Held shared by every read Miroir answers; held alone for the instant a reshard swaps
    /// an index's two layouts on the nodes, so no read mixes them.
    pub read_gate: tokio::sync::RwLock<()>,
}

/// The topology this Miroir works with, and the generation of the shared record it came
/// from (0 with the embedded store, which no other Miroir shares).
struct Installed {
    topology: Topology,
    placements: Arc<Placements>,
    generation: u64,
}

/// A topology to commit, with the generation it was derived from: a commit fails rather than
/// overwrite a change another Miroir made meanwhile (see `shared_topology::publish`).
pub struct Draft {
    pub base: u64,
    pub topology: Topology,
}

impl Draft {
    /// `topology` in place of the drafted one, from the same generation.
    pub fn replace(self, topology: Topology) -> Self {
        Self {
            base: self.base,
            topology,
        }
    }
}

impl std::ops::Deref for Draft {
    type Target = Topology;
    fn deref(&self) -> &Topology {
        &self.topology
    }
}

impl std::ops::DerefMut for Draft {
    fn deref_mut(&mut self) -> &mut Topology {
        &mut self.topology
    }
}

fn thresholds(rt: &Runtime) -> Thresholds {
    Thresholds {
        unhealthy: rt.config.health.unhealthy_threshold,
        healthy: rt.config.health.healthy_threshold,
    }
}

impl Cluster {
    pub fn new(
        config: Config,
        (topology, placements, generation): (Topology, Placements, u64),
        (hints, shard_counts, reshards): (Arc<HintStore>, ShardCounts, reshards::Reshards),
    ) -> Self {
        let client = NodeClient::new(config.upstream.pool_size);
        let placements = Arc::new(placements);
        let runtime = Runtime::build(Arc::new(config), placements.clone(), 1);
        let cluster = Self {
            runtime: ArcSwap::from_pointee(runtime),
            topology: std::sync::Mutex::new(Installed {
                topology,
                placements,
                generation,
            }),
            health: DashMap::new(),
            round_robin: AtomicUsize::new(0),
            read_rotation: AtomicU64::new(0),
            client,
            latencies: Latencies::default(),
            indexes: IndexKnowledge::default(),
            shard_counts,
            hints,
            write_order: Default::default(),
            replaying: DashMap::new(),
            broken_move_logs: DashMap::new(),
            write_gate: tokio::sync::RwLock::new(()),
            change: Default::default(),
            reshards,
            read_gate: tokio::sync::RwLock::new(()),
        };
        cluster.sync_health_table();
        cluster
    }

    /// The snapshot a request works with from start to end.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Replaces the snapshot with a new configuration and the same topology; in-flight
    /// requests keep the one they loaded.
    pub fn install(&self, config: Config) -> Arc<Runtime> {
        let guard = self.lock_topology();
        self.swap(Arc::new(config), guard.placements.clone())
    }

    /// The applied topology and any change in progress.
    pub fn topology(&self) -> Topology {
        self.lock_topology().topology.clone()
    }

    /// The topology, to change and commit (see [`Draft`]).
    pub fn draft(&self) -> Draft {
        let guard = self.lock_topology();
        Draft {
            base: guard.generation,
            topology: guard.topology.clone(),
        }
    }

    /// The generation of the shared record installed (0 with the embedded store).
    pub fn topology_generation(&self) -> u64 {
        self.lock_topology().generation
    }

    /// Installs a topology already saved durably, with its placements, as `generation` of
    /// the shared record (0 with the embedded store). An older generation than the one
    /// installed is ignored: `false`.
    pub fn install_topology(
        &self,
        (topology, placements): (Topology, Placements),
        generation: u64,
    ) -> bool {
        let placements = Arc::new(placements);
        let mut guard = self.lock_topology();
        if generation < guard.generation {
            return false;
        }
        *guard = Installed {
            topology,
            placements: placements.clone(),
            generation,
        };
        // Under the lock, so two installs cannot swap their runtimes in the wrong order.
        self.swap(self.runtime.load().config.clone(), placements);
        true
    }

    fn lock_topology(&self) -> std::sync::MutexGuard<'_, Installed> {
        // The guarded value is replaced whole, so a panic elsewhere cannot leave it torn.
        self.topology.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn swap(&self, config: Arc<Config>, placements: Arc<Placements>) -> Arc<Runtime> {
        let generation = self.runtime.load().generation + 1;
        let runtime = Arc::new(Runtime::build(config, placements, generation));
        self.runtime.store(runtime.clone());
        self.sync_health_table();
        runtime
    }

    fn sync_health_table(&self) {
        let rt = self.runtime.load();
        for node in &rt.nodes {
            self.health.entry(node.id.clone()).or_insert_with(|| {
                // Optimistic, so a fresh start serves at once; a node with hints left from
                // before a restart replays them before it serves reads.
                let backlog = self.hints.backlog(node.id.as_str());
                let initial = if backlog.hints > 0 || backlog.needs_resync {
                    NodeState::Recovering
                } else {
                    NodeState::Active
                };
                publish(&node.id, initial);
                Arc::new(NodeHealth::new(initial))
            });
        }
        self.health
            .retain(|id, _| rt.nodes.iter().any(|n| &n.id == id));
    }

    pub fn health(&self, id: &NodeId) -> Option<Arc<NodeHealth>> {
        self.health.get(id).map(|h| h.value().clone())
    }

    pub fn is_healthy(&self, id: &NodeId) -> bool {
        self.health.get(id).is_none_or(|h| h.is_healthy())
    }

    pub fn node_state(&self, id: &NodeId) -> NodeState {
        self.health(id).map_or(NodeState::Active, |h| h.state())
    }

    /// Records a health check or a live request's outcome for a node.
    pub fn observe(&self, rt: &Runtime, id: &NodeId, ok: bool, active_check: bool) {
        let Some(health) = self.health(id) else {
            return;
        };
        // The common case, a healthy node answering, changes nothing.
        if ok && health.state() == NodeState::Active && health.consecutive_failures() == 0 {
            return;
        }
        let caught_up = self.hints.backlog(id.as_str()) == Default::default()
            && !self.replaying.contains_key(id);
        let change = health.observe(ok, active_check, caught_up, thresholds(rt));
        announce(id, change);
    }

    /// The node missed a write that is now hinted.
    pub fn fell_behind(&self, id: &NodeId) {
        if let Some(health) = self.health(id) {
            announce(id, health.fell_behind());
        }
    }

    /// The node's hints are replayed.
    pub fn caught_up(&self, rt: &Runtime, id: &NodeId) {
        if let Some(health) = self.health(id) {
            announce(id, health.caught_up(thresholds(rt)));
        }
    }

    /// Waits for a write's turn in `scope`'s order (an index uid, or "" for instance-wide
    /// writes); the next write's turn starts when it is dropped.
    pub async fn write_turn(&self, scope: &str) -> write_order::Turn {
        self.write_order.turn(&self.hints, scope).await
    }

    /// Picks a node for a request any node can answer: round-robin over healthy nodes not
    /// yet tried, or any untried node when none is known healthy (health may be stale).
    pub fn pick_node(&self, rt: &Runtime, tried: &[usize]) -> Option<usize> {
        let n = rt.nodes.len();
        if n == 0 {
            return None;
        }
        let start = self.round_robin.fetch_add(1, Ordering::Relaxed);
        let untried = |i: &usize| !tried.contains(i);
        let mut order = (0..n).map(|k| (start + k) % n);
        order
            .clone()
            .filter(untried)
            .find(|i| self.is_healthy(&rt.nodes[*i].id))
            .or_else(|| order.find(untried))
    }

    /// The replica group a read goes to, rotating over the groups that hold every shard (a
    /// group being added serves reads once all of it is copied).
    pub fn next_group(&self, rt: &Runtime) -> GroupId {
        let turn = self.read_rotation.fetch_add(1, Ordering::Relaxed);
        match rt.covering_groups() {
            [] => GroupId((turn % u64::from(rt.reads().groups().max(1))) as u32),
            groups => groups[(turn % groups.len() as u64) as usize],
        }
    }

    /// Shards below `shards` with no healthy replica in any group.
    pub fn unavailable_shards(&self, rt: &Runtime, shards: u32) -> Vec<ShardId> {
        let p = rt.reads();
        (0..shards.min(p.shards()))
            .map(ShardId)
            .filter(|&shard| {
                !(0..p.groups()).any(|g| {
                    p.replicas(GroupId(g), shard)
                        .iter()
                        .any(|&i| self.is_healthy(p.node(i)))
                })
            })
            .collect()
    }
}

fn publish(id: &NodeId, state: NodeState) {
    let labels = NodeState::ALL.map(NodeState::as_str);
    metrics::set_node_state(id.as_str(), state.as_str(), &labels, state.serves_reads());
}

fn announce(id: &NodeId, change: Option<Transition>) {
    let Some(Transition { from, to }) = change else {
        return;
    };
    publish(id, to);
    let (from, to) = (from.as_str(), to.as_str());
    match to {
        "active" => log::info!(target: "miroir::health", "node {id}: {from} -> {to}"),
        _ => log::warn!(target: "miroir::health", "node {id}: {from} -> {to}"),
    }
}
