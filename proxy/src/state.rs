//! What every request reads: the current configuration snapshot with everything derived from
//! it (placement, prepared node peers), swapped whole on reload, and the node health table,
//! which outlives reloads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use miroir_conf::{Config, Scheme, TaskStore as TaskStoreConfig};
use miroir_tasks::{EmbeddedStore, TaskStore};

use crate::scatter::Latencies;
use crate::upstream::NodeClient;
use miroir_filters::routing::{GroupId, NodeId, Placement, ShardId};
use miroir_filters::search::IndexContext;
use pingora_core::upstreams::peer::HttpPeer;
use std::time::Instant;

use crate::metrics;

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

/// Health of one node, driven by the active checker.
pub struct NodeHealth {
    healthy: AtomicBool,
    consecutive_ok: AtomicU32,
    consecutive_fail: AtomicU32,
    /// Unix millis of the last state change.
    last_change_ms: std::sync::atomic::AtomicU64,
}

impl NodeHealth {
    fn new() -> Self {
        // Optimistic until proven otherwise, so a fresh start serves at once.
        Self {
            healthy: AtomicBool::new(true),
            consecutive_ok: AtomicU32::new(0),
            consecutive_fail: AtomicU32::new(0),
            last_change_ms: std::sync::atomic::AtomicU64::new(now_ms()),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn last_change_ms(&self) -> u64 {
        self.last_change_ms.load(Ordering::Relaxed)
    }

    /// Records one check; returns `Some(new_state)` when the state flipped.
    pub fn record(&self, ok: bool, healthy_after: u32, unhealthy_after: u32) -> Option<bool> {
        let (streak, other) = if ok {
            (&self.consecutive_ok, &self.consecutive_fail)
        } else {
            (&self.consecutive_fail, &self.consecutive_ok)
        };
        other.store(0, Ordering::Relaxed);
        let n = streak.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let threshold = if ok { healthy_after } else { unhealthy_after };
        let was = self.is_healthy();
        if was != ok && n >= threshold.max(1) {
            self.healthy.store(ok, Ordering::Relaxed);
            self.last_change_ms.store(now_ms(), Ordering::Relaxed);
            return Some(ok);
        }
        None
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
}

impl Shared {
    /// Opens the task store the configuration names.
    pub fn open(config: Config) -> Result<Arc<Self>, String> {
        let tasks: Arc<dyn TaskStore> = match &config.task_store {
            TaskStoreConfig::Embedded { path } => {
                let file = path.join("tasks.redb");
                Arc::new(
                    EmbeddedStore::open(&file)
                        .map_err(|e| format!("task store {}: {e}", file.display()))?,
                )
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
                metrics::get()
                    .node_healthy
                    .with_label_values(&[node.id.as_ref()])
                    .set(1);
                Arc::new(NodeHealth::new())
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
