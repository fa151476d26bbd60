//! What every request reads: the current configuration snapshot with everything derived from
//! it (placement, prepared node peers), swapped whole on reload, and the node health table,
//! which outlives reloads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use miroir_conf::{Config, Scheme, TaskStore as TaskStoreConfig};
use miroir_handoff::HintStore;
use miroir_tasks::{EmbeddedStore, TaskStore};

use crate::scatter::Latencies;
use crate::upstream::NodeClient;
use miroir_filters::routing::{GroupId, NodeId, Placement, ShardId};
use miroir_filters::search::IndexContext;
use pingora_core::upstreams::peer::HttpPeer;
use std::time::Instant;

use crate::metrics;
use crate::node_state::{NodeHealth, NodeState, Thresholds, Transition};

/// One node as requests need it: an `HttpPeer` prepared once per config version.
pub struct NodeRuntime {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub group: u32,
    pub host_header: String,
    pub peer: HttpPeer,
    pub idle_timeout: Duration,
}

/// An immutable configuration snapshot and what is derived from it.
pub struct Runtime {
    pub config: Arc<Config>,
    /// Indexed like the placement's nodes (and `config.nodes`).
    pub nodes: Vec<NodeRuntime>,
    pub generation: u64,
}

impl Runtime {
    pub fn build(config: Arc<Config>, generation: u64) -> Self {
        let up = &config.upstream;
        let nodes = config
            .nodes
            .iter()
            .map(|n| {
                let addr = n.address.socket;
                let tls = n.address.scheme == Scheme::Https;
                let mut peer = HttpPeer::new(addr, tls, n.address.host.clone());
                peer.options.connection_timeout = Some(up.connect_timeout);
                peer.options.read_timeout = Some(up.read_timeout);
                peer.options.idle_timeout = Some(up.idle_timeout);
                NodeRuntime {
                    id: n.id.clone(),
                    addr,
                    group: n.group.0,
                    host_header: format!("{}:{}", n.address.host, n.address.port),
                    peer,
                    idle_timeout: up.idle_timeout,
                }
            })
            .collect();
        Self {
            config,
            nodes,
            generation,
        }
    }

    pub fn placement(&self) -> &Placement {
        self.config.placement()
    }

    /// Miroir's own credential on the nodes, for its bookkeeping reads and writes (settings
    /// behind a merge, primary keys, the shard field): never the client's, whose key may not
    /// allow them.
    pub fn node_key(&self) -> Option<&str> {
        self.config.node_master_key.as_ref().map(|k| k.expose())
    }
}

fn thresholds(rt: &Runtime) -> Thresholds {
    Thresholds {
        unhealthy: rt.config.health.unhealthy_threshold,
        healthy: rt.config.health.healthy_threshold,
    }
}

/// Everything shared by the proxy service and the background services.
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    health: DashMap<NodeId, Arc<NodeHealth>>,
    round_robin: AtomicUsize,
    /// Miroir's task registry.
    pub tasks: Arc<dyn TaskStore>,
    /// Miroir's own requests to nodes (broadcast, task views, health checks).
    pub client: NodeClient,
    /// Node latencies for replica choice and hedging.
    pub latencies: Latencies,
    /// Per index: the settings a search merge depends on, and when they were read.
    pub contexts: DashMap<String, (Instant, Arc<IndexContext>)>,
    /// Indexes known to have `_miroir_shard` filterable on every node.
    pub shard_filterable: DashMap<String, ()>,
    /// Rotates reads across replica groups.
    pub read_rotation: AtomicU64,
    /// Index operations to undo or replay on one node (`index_lifecycle`).
    pub lifecycle_jobs: crate::index_lifecycle::Jobs,
    /// Indexes to compare across nodes once a settings update finished (`settings_sync`).
    pub settings_checks: crate::settings_sync::Checks,
    /// Writes replicas missed, waiting for replay.
    pub hints: Arc<HintStore>,
    /// Per index: held while a write is handed to the nodes (or to their hint queues), so
    /// every replica receives an index's writes in the order Miroir accepted them.
    write_order: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Nodes whose hints are being replayed: not caught up even once their queue is empty.
    pub replaying: DashMap<NodeId, ()>,
    /// Clients' keys resolved to their rights, for the routes Miroir answers itself.
    pub access: crate::access::Cache,
}

impl Shared {
    /// Opens the task store the configuration names.
    pub fn open(config: Config) -> Result<Arc<Self>, String> {
        let (tasks, hints): (Arc<dyn TaskStore>, _) = match &config.task_store {
            TaskStoreConfig::Embedded { path } => {
                let hints_file = path.join("hints.redb");
                let hints = HintStore::open(&hints_file)
                    .map_err(|e| format!("hint store {}: {e}", hints_file.display()))?;
                let file = path.join("tasks.redb");
                let tasks = EmbeddedStore::open(&file)
                    .map_err(|e| format!("task store {}: {e}", file.display()))?;
                (Arc::new(tasks), Arc::new(hints))
            }
            TaskStoreConfig::Redis { .. } => return Err(
                "task_store.backend = \"redis\" is not available in this version; use \"embedded\""
                    .into(),
            ),
        };
        let client = NodeClient::new(config.upstream.pool_size);
        let runtime = Runtime::build(Arc::new(config), 1);
        let shared = Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            health: DashMap::new(),
            round_robin: AtomicUsize::new(0),
            tasks,
            client,
            latencies: Latencies::default(),
            contexts: DashMap::new(),
            shard_filterable: DashMap::new(),
            read_rotation: AtomicU64::new(0),
            lifecycle_jobs: Default::default(),
            settings_checks: Default::default(),
            hints,
            write_order: DashMap::new(),
            replaying: DashMap::new(),
            access: crate::access::Cache::default(),
        });
        shared.sync_health_table();
        Ok(shared)
    }

    /// The snapshot a request works with from start to end.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Replaces the snapshot; in-flight requests keep the one they loaded.
    pub fn install(&self, config: Config) -> Arc<Runtime> {
        let generation = self.runtime.load().generation + 1;
        let runtime = Arc::new(Runtime::build(Arc::new(config), generation));
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
                metrics::set_node_state(node.id.as_str(), initial);
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
        self.health(id).is_none_or(|h| h.is_healthy())
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
        self.announce(id, change);
    }

    /// The node missed a write that is now hinted.
    pub fn fell_behind(&self, id: &NodeId) {
        if let Some(health) = self.health(id) {
            self.announce(id, health.fell_behind());
        }
    }

    /// The node's hints are replayed.
    pub fn caught_up(&self, rt: &Runtime, id: &NodeId) {
        if let Some(health) = self.health(id) {
            self.announce(id, health.caught_up(thresholds(rt)));
        }
    }

    fn announce(&self, id: &NodeId, change: Option<Transition>) {
        let Some(Transition { from, to }) = change else {
            return;
        };
        metrics::set_node_state(id.as_str(), to);
        let (from, to) = (from.as_str(), to.as_str());
        match to {
            "active" => log::info!(target: "miroir::health", "node {id}: {from} -> {to}"),
            _ => log::warn!(target: "miroir::health", "node {id}: {from} -> {to}"),
        }
    }

    /// The lock that orders writes to `index_uid`.
    pub fn write_order(&self, index_uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        if let Some(lock) = self.write_order.get(index_uid) {
            return lock.clone();
        }
        self.write_order
            .entry(index_uid.to_owned())
            .or_default()
            .clone()
    }

    /// Picks a node for a pass-through request: round-robin over healthy nodes not yet
    /// tried, or any untried node when none is known healthy (health may be stale).
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

    /// Shards with no healthy replica in any group.
    pub fn unavailable_shards(&self, rt: &Runtime) -> Vec<ShardId> {
        let p = rt.placement();
        (0..p.shards())
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
