//! What the user writes: the TOML schema as plain serde structs with their defaults.
//!
//! Nothing here is validated beyond types; `validate` turns it into [`crate::Config`].

use serde::Deserialize;

use crate::config::{LogFormat, LogLevel, UnavailableShardPolicy, WriteQuorum};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub shards: u32,
    #[serde(default = "one")]
    pub replication_factor: u32,
    #[serde(default = "one")]
    pub replica_groups: u32,
    #[serde(default = "default_write_quorum")]
    pub write_quorum: WriteQuorum,
    pub master_key: Option<String>,
    pub node_master_key: Option<String>,
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub nodes: Vec<RawNode>,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub task_store: RawTaskStore,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub scatter: RawScatter,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub settings_sync: RawSettingsSync,
    #[serde(default)]
    pub handoff: RawHandoff,
    #[serde(default)]
    pub topology: RawTopology,
    #[serde(default)]
    pub anti_entropy: RawAntiEntropy,
    #[serde(default)]
    pub webhooks: RawWebhooks,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub bind: String,
    pub port: u16,
    pub threads: usize,
    pub work_stealing: bool,
    pub max_body_bytes: u64,
    pub max_answer_bytes: u64,
    pub request_timeout_ms: u64,
    pub tls: Option<RawTls>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 7700,
            threads: 0,
            work_stealing: false,
            max_body_bytes: 100 * 1024 * 1024,
            max_answer_bytes: 256 * 1024 * 1024,
            request_timeout_ms: 30_000,
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    #[serde(default = "default_tls_port")]
    pub port: u16,
    pub cert_path: String,
    pub key_path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub id: String,
    pub address: String,
    #[serde(default)]
    pub replica_group: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUpstream {
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub pool_size: usize,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 1_000,
            read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            pool_size: 128,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTaskStore {
    pub backend: RawBackend,
    pub path: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawBackend {
    #[default]
    Embedded,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHealth {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

impl Default for RawHealth {
    fn default() -> Self {
        Self {
            interval_ms: 1_000,
            timeout_ms: 500,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawScatter {
    pub node_timeout_ms: u64,
    pub retry_on_timeout: bool,
    pub unavailable_shard_policy: UnavailableShardPolicy,
    pub hedge_after_ms_floor: u64,
    pub max_hedges_per_query: u32,
}

impl Default for RawScatter {
    fn default() -> Self {
        Self {
            node_timeout_ms: 5_000,
            retry_on_timeout: true,
            unavailable_shard_policy: UnavailableShardPolicy::Partial,
            hedge_after_ms_floor: 20,
            max_hedges_per_query: 2,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAdmin {
    pub api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMetrics {
    pub enabled: bool,
    pub bind: String,
    pub port: u16,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: "127.0.0.1".into(),
            port: 9090,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub format: LogFormat,
    pub level: LogLevel,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: LogLevel::Info,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSettingsSync {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for RawSettingsSync {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 30_000,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawWebhooks {
    pub allowed_ip_networks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAntiEntropy {
    pub enabled: bool,
    pub interval_ms: u64,
    pub max_documents_per_second: u64,
    pub deletion_retention_hours: u64,
}

impl Default for RawAntiEntropy {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 600_000,
            max_documents_per_second: 2_000,
            deletion_retention_hours: 240,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHandoff {
    pub max_bytes_per_node: u64,
    pub replay_interval_ms: u64,
}

impl Default for RawHandoff {
    fn default() -> Self {
        Self {
            max_bytes_per_node: 1024 * 1024 * 1024,
            replay_interval_ms: 250,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTopology {
    pub max_concurrent_moves_per_node: u32,
    pub max_copy_bytes_per_sec: u64,
    pub copy_page_size: u32,
    pub reshard_keep_secs: u64,
}

impl Default for RawTopology {
    fn default() -> Self {
        Self {
            max_concurrent_moves_per_node: 2,
            max_copy_bytes_per_sec: 0,
            copy_page_size: 1000,
            reshard_keep_secs: 86_400,
        }
    }
}

fn one() -> u32 {
    1
}

fn default_write_quorum() -> WriteQuorum {
    WriteQuorum::Majority
}

fn default_data_dir() -> String {
    "./miroir-data".into()
}

fn default_tls_port() -> u16 {
    7443
}
