//! The validated configuration the proxy runs on: typed, resolved, immutable once built.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use miroir_filters::routing::{GroupId, NodeId, NodeIdx, Placement};
use serde::Deserialize;

use crate::secret::Secret;

/// One validated configuration snapshot. Share it behind an `Arc` and replace it whole on
/// reload; only [`crate::parse`] and [`crate::load`] build one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// S, the logical shard count.
    pub shards: u32,
    /// RF, copies of each shard within a replica group.
    pub replication_factor: u32,
    /// RG, the number of replica groups.
    pub replica_groups: u32,
    /// Acknowledgements a shard needs inside a replica group for a write to count there.
    pub write_quorum: WriteQuorum,
    /// The key clients present to Miroir; `None` leaves the client API open, like Meilisearch
    /// without a master key.
    pub master_key: Option<Secret>,
    /// The key Miroir presents to the nodes.
    pub node_master_key: Option<Secret>,
    pub data_dir: PathBuf,
    pub server: Server,
    /// In [`Placement`] order: `nodes[i]` is the node of `NodeIdx(i)`.
    pub nodes: Vec<Node>,
    pub upstream: Upstream,
    pub task_store: TaskStore,
    pub health: Health,
    pub scatter: Scatter,
    pub admin: Admin,
    /// `None` when the metrics listener is disabled.
    pub metrics: Option<Metrics>,
    pub log: Log,
    pub settings_sync: SettingsSync,
    pub handoff: Handoff,
    pub topology: Topology,
    pub anti_entropy: AntiEntropy,
    pub webhooks: Webhooks,
    pub(crate) placement: Placement,
}

impl Config {
    /// The shard assignment of the configured topology, computed at load time.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The configured node behind a placement index.
    pub fn node(&self, idx: NodeIdx) -> &Node {
        &self.nodes[idx.index()]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub listen: SocketAddr,
    /// Worker threads; `None` means one per core.
    pub threads: Option<NonZeroUsize>,
    /// Idle worker threads take requests from busy ones. Off, each thread serves its own
    /// connections: no thread is woken to look for work, which costs latency, and CPU the
    /// nodes need when they share the machine.
    pub work_stealing: bool,
    pub max_body_bytes: u64,
    /// Bytes of node answers one client request may gather (a search over every shard, a
    /// document page); past it the request fails with `miroir_answer_too_large`.
    pub max_answer_bytes: u64,
    pub request_timeout: Duration,
    pub tls: Option<Tls>,
}

/// A TLS listener next to the plain one. Both files existed when the config was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub listen: SocketAddr,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub address: NodeAddress,
    pub group: GroupId,
}

/// Where a node listens. The host name is kept for the `Host` header and TLS server name;
/// `socket` was resolved at load time so no request waits on DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub socket: SocketAddr,
}

impl NodeAddress {
    /// The URL as a configuration names it: `scheme://host:port`.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.authority())
    }

    /// `host:port` for the `Host` header, with IPv6 literals bracketed.
    pub fn authority(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Connections kept per node.
    pub pool_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStore {
    /// A store inside Miroir's data directory; one Miroir process only.
    Embedded { path: PathBuf },
    /// Shared by several Miroir processes. The URL may embed a password.
    Redis { url: Secret },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed checks before a node is marked down.
    pub unhealthy_threshold: u32,
    /// Consecutive passed checks before a down node is marked up.
    pub healthy_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scatter {
    pub node_timeout: Duration,
    pub retry_on_timeout: bool,
    pub unavailable_shard_policy: UnavailableShardPolicy,
    /// A hedge is never sent sooner than this after the first request.
    pub hedge_after_floor: Duration,
    pub max_hedges_per_query: u32,
}

/// How many replicas of a shard in one replica group must accept a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteQuorum {
    /// More than half of the replication factor.
    Majority,
    /// Every replica.
    All,
    /// Any one replica.
    One,
}

impl WriteQuorum {
    /// Acknowledgements needed in a group of `replication_factor` replicas.
    pub fn required(self, replication_factor: u32) -> u32 {
        match self {
            WriteQuorum::Majority => replication_factor / 2 + 1,
            WriteQuorum::All => replication_factor,
            WriteQuorum::One => 1,
        }
    }
}

/// What a read does when no replica of some shard answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnavailableShardPolicy {
    /// Answer with the shards that responded and flag the response as degraded.
    Partial,
    /// Fail the request.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// `None` disables the admin API.
    pub api_key: Option<Secret>,
}

/// The settings drift detector: compares every index's settings across nodes and repairs the
/// odd node out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsSync {
    pub enabled: bool,
    /// Time between two sweeps over every index.
    pub interval: Duration,
}

/// Webhooks registered through `/webhooks`: where Miroir may call them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Webhooks {
    /// Internal networks (loopback, private, link-local…) a webhook may still reach. Like
    /// Meilisearch (`--experimental-allowed-ip-networks`), Miroir refuses internal
    /// addresses unless listed here.
    pub allowed_ip_networks: Vec<ipnet::IpNet>,
}

/// Anti-entropy: a background pass comparing every shard's replicas document by document and
/// repairing what differs from the latest acknowledged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AntiEntropy {
    pub enabled: bool,
    /// Time between the start of two passes over every index.
    pub interval: Duration,
    /// Documents read from the nodes per second, every replica counted.
    pub max_documents_per_second: u64,
    /// How long a deletion is remembered: a replica that missed it is repaired within this
    /// time; past it, a copy it kept could come back.
    pub deletion_retention: Duration,
}

/// Hinted handoff: the writes a replica missed, kept in Miroir's data directory until the
/// node is back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// Past this many bytes of hints a node is marked as needing a full resync.
    pub max_bytes_per_node: u64,
    /// How often nodes with hints are tried again.
    pub replay_interval: Duration,
}

/// How shard moves of a topology change run (the change itself is staged from the nodes
/// above and applied with `miroir ctl apply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Shards one new owner receives at once.
    pub max_concurrent_moves_per_node: u32,
    /// Bytes per second one new owner receives, all its copies together; `None`: no limit.
    pub max_copy_bytes_per_sec: Option<u64>,
    /// Documents per page copied.
    pub copy_page_size: u32,
    /// How long a resharded index's old layout is kept (and kept up to date) for a
    /// rollback before it is deleted.
    pub reshard_keep: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub format: LogFormat,
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}
