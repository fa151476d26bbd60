//! What every request path reaches: the cluster, Miroir's task registry, the cache of keys'
//! rights, and the queues of the repair services. Opened once at startup; the background
//! services hold only the parts they use.

use std::sync::Arc;

use miroir_conf::{Config, Secret, TaskStore as TaskStoreConfig};
use miroir_handoff::HintStore;
use miroir_tasks::{EmbeddedStore, RedisStore, TaskStore};

use crate::auth::{Access, KeyCache};
use crate::cluster::aliases::Aliases;
use crate::cluster::reshards::Reshards;
use crate::cluster::shard_counts::ShardCounts;
use crate::cluster::shared_topology;
use crate::cluster::topology::{self, Layout, Placements, Topology, TopologyFile};
use crate::cluster::{Cluster, Runtime};
use crate::repair::{anti_entropy, index_repairs, settings_drift};
use crate::request::{InFlight, Incoming, Reply};
use crate::webhooks::Webhooks;

/// The prefix of the hint store's keys in a shared Redis.
const HINTS_PREFIX: &str = "miroir:hints";

pub struct Shared {
    pub cluster: Arc<Cluster>,
    /// Index aliases, resolved once per request (see `server::aliases`).
    pub aliases: Aliases,
    /// Miroir's task registry.
    pub tasks: Arc<dyn TaskStore>,
    /// Clients' keys resolved to their rights, for the routes Miroir answers itself.
    pub keys: KeyCache,
    /// Index operations to undo or replay on one node.
    pub index_repairs: Arc<index_repairs::Jobs>,
    /// Indexes to compare across nodes once a settings update finished.
    pub settings_checks: Arc<settings_drift::Checks>,
    /// Write versions and the record of deletions, for anti-entropy.
    pub anti_entropy: Arc<anti_entropy::Journal>,
    /// Wakes the task registry's upkeep (the registry reached its limit).
    pub task_upkeep: tokio::sync::Notify,
    /// Read-your-writes sessions: the pending writes of each.
    pub sessions: crate::server::sessions::Sessions,
    /// Writes under an `Idempotency-Key`, one at a time per key.
    pub idempotency: InFlight,
    /// Webhooks, called as Miroir tasks finish.
    pub webhooks: Arc<Webhooks>,
}

impl Shared {
    /// Opens the stores the configuration names (the task registry and the hint store).
    pub fn open(config: Config) -> Result<Arc<Self>, String> {
        let (tasks, local): (Arc<dyn TaskStore>, _) = match &config.task_store {
            TaskStoreConfig::Embedded { path } => {
                let file = path.join("tasks.redb");
                let tasks = EmbeddedStore::open(&file)
                    .map_err(|e| format!("task store {}: {e}", file.display()))?;
                (Arc::new(tasks), path.clone())
            }
            // The registry is shared (and the hints, the deletion record and the records of
            // the board, through the hint store below).
            TaskStoreConfig::Redis { url } => {
                (Arc::new(open_redis(url)?), config.data_dir.join("tasks"))
            }
        };
        let hints = Arc::new(match &config.task_store {
            TaskStoreConfig::Embedded { .. } => {
                let file = local.join("hints.redb");
                HintStore::open(&file).map_err(|e| format!("hint store {}: {e}", file.display()))?
            }
            // Every node's log is shared: another Miroir replays what one kept.
            TaskStoreConfig::Redis { url } => HintStore::open_redis(url.expose(), HINTS_PREFIX)
                .map_err(|e| format!("hint store (Redis): {e}"))?,
        });
        let deletions = local.join("deletions.redb");
        let journal = Arc::new(
            anti_entropy::Journal::open(&deletions, &hints)
                .map_err(|e| format!("deletion record {}: {e}", deletions.display()))?,
        );
        let (topology, placements, shard_counts) = open_topology(&config, &hints)?;
        // Several Miroirs: the topology they share, installed before the first request.
        let (topology, placements, generation) = match shared_topology::open(&hints, &topology)? {
            None => (topology, placements, 0),
            Some((shared, generation)) => {
                let placements = shared
                    .placements()
                    .map_err(|e| format!("shared topology (Redis): {e}"))?;
                TopologyFile::new(&config.data_dir).save(&shared)?;
                (shared, placements, generation)
            }
        };
        topology::report_staged(&config, &topology);
        let webhooks = Arc::new(Webhooks::open(&config.data_dir, &hints)?);
        let aliases = Aliases::open(&config.data_dir, &hints)?;
        let reshards = Reshards::open(&config.data_dir)?;
        let cluster = Cluster::new(
            config,
            (topology, placements, generation),
            (hints, shard_counts, reshards),
        );
        Ok(Arc::new(Self {
            cluster: Arc::new(cluster),
            aliases,
            tasks,
            keys: KeyCache::default(),
            index_repairs: Default::default(),
            settings_checks: Default::default(),
            anti_entropy: journal,
            task_upkeep: tokio::sync::Notify::new(),
            sessions: Default::default(),
            idempotency: InFlight::default(),
            webhooks,
        }))
    }

    /// Checks that the request's credential allows `action` on Miroir's own routes (see
    /// `auth::rights`); `Err` is the answer a node would give.
    pub async fn authorize(
        &self,
        rt: &Runtime,
        inc: &Incoming,
        action: &str,
    ) -> Result<Access, Reply> {
        self.keys.authorize(&self.cluster, rt, inc, action).await
    }

    /// Like [`Shared::authorize`], for an action on one index.
    pub async fn authorize_on(
        &self,
        rt: &Runtime,
        inc: &Incoming,
        action: &str,
        index_uid: &str,
    ) -> Result<Access, Reply> {
        self.keys
            .authorize_on(&self.cluster, rt, inc, action, index_uid)
            .await
    }
}

/// The shared task registry at `url`, reached now: startup and `check-config` fail when it
/// cannot be (the URL, which may hold a password, is never part of the message).
pub fn open_redis(url: &Secret) -> Result<RedisStore, String> {
    RedisStore::open(url.expose()).map_err(|e| format!("task_store.url: cannot use Redis: {e}"))
}

/// The applied topology from the data directory; on a first start, the file's, saved as
/// version 1. A file that asks for another one is reported, never applied here.
/// Each index's shard count is opened with them: indexes older than its record split by the
/// fleet's S of that time, the placement's width before it is widened.
fn open_topology(
    config: &Config,
    hints: &Arc<HintStore>,
) -> Result<(Topology, Placements, ShardCounts), String> {
    let file = TopologyFile::new(&config.data_dir);
    let (topology, shard_counts) = match file.load()? {
        Some(t) => {
            let counts = ShardCounts::open(&config.data_dir, t.layout.shards, hints)?;
            match topology::widened(config, &t) {
                Some(wider) => {
                    file.save(&wider)?;
                    (wider, counts)
                }
                None => (t, counts),
            }
        }
        None => {
            let t = Topology {
                layout: Layout::from_config(config, 1, config.shards),
                change: None,
                rebuilt: Default::default(),
            };
            file.save(&t)?;
            let counts = ShardCounts::open(&config.data_dir, config.shards, hints)?;
            (t, counts)
        }
    };
    let placements = topology
        .placements()
        .map_err(|e| format!("topology {}: {e}", file.path().display()))?;
    Ok((topology, placements, shard_counts))
}
