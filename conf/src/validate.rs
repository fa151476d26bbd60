//! Turns the raw TOML structs into a [`Config`], collecting every problem on the way.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miroir_filters::routing::{GroupId, NodeId, Placement};

use crate::address::{parse_node_url, Resolve};
use crate::config::{
    Admin, AntiEntropy, Config, Handoff, Health, Log, Metrics, Node, NodeAddress, Scatter, Server,
    SettingsSync, TaskStore, Tls, Topology, Upstream, Webhooks,
};
use crate::error::Problem;
use crate::raw::{
    RawAntiEntropy, RawBackend, RawConfig, RawHandoff, RawHealth, RawMetrics, RawNode, RawScatter,
    RawServer, RawSettingsSync, RawTaskStore, RawTopology, RawUpstream, RawWebhooks,
};
use crate::secret::Secret;
use crate::{ENV_ADMIN_API_KEY, ENV_MASTER_KEY, ENV_NODE_MASTER_KEY};

/// Where values come from besides the file.
pub(crate) struct Inputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub resolve: Resolve<'a>,
}

pub(crate) fn validate(raw: RawConfig, inputs: &Inputs<'_>) -> Result<Config, Vec<Problem>> {
    let mut check = Checker {
        problems: Vec::new(),
        inputs,
    };
    let master_key = check.secret("master_key", raw.master_key, ENV_MASTER_KEY);
    let own_node_key = check.secret("node_master_key", raw.node_master_key, ENV_NODE_MASTER_KEY);
    if own_node_key.is_some() && master_key.is_none() {
        // Miroir would be open to anyone while acting on secured nodes with their master key
        // (reading every task, creating indexes): no client key could limit that.
        check.problem(
            "node_master_key",
            "is set but master_key is not: Miroir would be open to every client while acting \
             on the nodes with their master key; set master_key (or MIROIR_MASTER_KEY) too",
        );
    }
    let node_master_key = own_node_key.or_else(|| master_key.clone());
    let admin_key = check.secret("admin.api_key", raw.admin.api_key, ENV_ADMIN_API_KEY);

    check.positive("shards", raw.shards);
    check.positive("replication_factor", raw.replication_factor);
    check.positive("replica_groups", raw.replica_groups);
    let nodes = check.nodes(&raw.nodes, raw.replica_groups);
    let topology = (raw.shards, raw.replication_factor, raw.replica_groups);
    let placement = check.placement(topology, nodes.as_deref());

    let server = check.server(raw.server);
    let data_dir = PathBuf::from(&raw.data_dir);
    if raw.data_dir.is_empty() {
        check.problem("data_dir", "must not be empty");
    }
    let task_store = check.task_store(raw.task_store, &data_dir);
    let upstream = check.upstream(raw.upstream);
    let health = check.health(raw.health);
    let scatter = check.scatter(raw.scatter);
    let metrics = check.metrics(raw.metrics);
    let settings_sync = check.settings_sync(raw.settings_sync);
    let handoff = check.handoff(raw.handoff);
    let topology = check.topology(raw.topology);
    let anti_entropy = check.anti_entropy(raw.anti_entropy);
    let webhooks = check.webhooks(raw.webhooks);
    check.distinct_listeners(&server, metrics.as_ref());

    match (check.problems.is_empty(), server, nodes, placement) {
        (true, Some(server), Some(mut nodes), Some(placement)) => {
            // Placement order, so that `NodeIdx(i)` is `nodes[i]`.
            nodes.sort_by_key(|node| placement.index_of(node.id.as_str()));
            Ok(Config {
                shards: raw.shards,
                replication_factor: raw.replication_factor,
                replica_groups: raw.replica_groups,
                write_quorum: raw.write_quorum,
                master_key,
                node_master_key,
                data_dir,
                server,
                nodes,
                upstream,
                task_store,
                health,
                scatter,
                admin: Admin { api_key: admin_key },
                metrics,
                log: Log {
                    format: raw.log.format,
                    level: raw.log.level,
                },
                settings_sync,
                handoff,
                topology,
                anti_entropy,
                webhooks,
                placement,
            })
        }
        _ => Err(check.problems),
    }
}

struct Checker<'a> {
    problems: Vec<Problem>,
    inputs: &'a Inputs<'a>,
}

impl Checker<'_> {
    fn problem(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::new(key, reason));
    }

    fn positive<T: Default + PartialEq>(&mut self, key: &str, value: T) {
        if value == T::default() {
            self.problem(key, "must be greater than 0");
        }
    }

    /// A non-zero duration in milliseconds.
    fn duration(&mut self, key: &str, ms: u64) -> Duration {
        self.positive(key, ms);
        Duration::from_millis(ms)
    }

    /// The environment variable wins over the file. An empty value is refused rather than
    /// read as "no key", which would silently open the API.
    fn secret(&mut self, key: &str, file: Option<String>, env_var: &str) -> Option<Secret> {
        let (value, origin) = match (self.inputs.env)(env_var) {
            Some(value) => (value, env_var),
            None => (file?, key),
        };
        if value.is_empty() {
            self.problem(origin, "must not be empty; leave it unset for no key");
            return None;
        }
        Some(Secret::new(value))
    }

    fn listen(&mut self, section: &str, bind: &str, port: u16) -> Option<SocketAddr> {
        if port == 0 {
            self.problem(format!("{section}.port"), "must not be 0");
            return None;
        }
        match (self.inputs.resolve)(bind, port) {
            Ok(addr) => Some(addr),
            Err(reason) => {
                self.problem(format!("{section}.bind"), reason);
                None
            }
        }
    }

    fn server(&mut self, raw: RawServer) -> Option<Server> {
        let listen = self.listen("server", &raw.bind, raw.port);
        self.positive("server.max_body_bytes", raw.max_body_bytes);
        self.positive("server.max_answer_bytes", raw.max_answer_bytes);
        let request_timeout = self.duration("server.request_timeout_ms", raw.request_timeout_ms);
        let tls = raw.tls.and_then(|tls| {
            let listen = self.listen("server.tls", &raw.bind, tls.port);
            let cert_path = self.existing_file("server.tls.cert_path", &tls.cert_path);
            let key_path = self.existing_file("server.tls.key_path", &tls.key_path);
            Some(Tls {
                listen: listen?,
                cert_path: cert_path?,
                key_path: key_path?,
            })
        });
        Some(Server {
            listen: listen?,
            threads: NonZeroUsize::new(raw.threads),
            work_stealing: raw.work_stealing,
            max_body_bytes: raw.max_body_bytes,
            max_answer_bytes: raw.max_answer_bytes,
            request_timeout,
            tls,
        })
    }

    fn upstream(&mut self, raw: RawUpstream) -> Upstream {
        self.positive("upstream.pool_size", raw.pool_size);
        Upstream {
            connect_timeout: self.duration("upstream.connect_timeout_ms", raw.connect_timeout_ms),
            read_timeout: self.duration("upstream.read_timeout_ms", raw.read_timeout_ms),
            idle_timeout: self.duration("upstream.idle_timeout_ms", raw.idle_timeout_ms),
            pool_size: raw.pool_size,
        }
    }

    fn health(&mut self, raw: RawHealth) -> Health {
        self.positive("health.unhealthy_threshold", raw.unhealthy_threshold);
        self.positive("health.healthy_threshold", raw.healthy_threshold);
        if raw.timeout_ms > raw.interval_ms {
            self.problem(
                "health.timeout_ms",
                format!(
                    "must not exceed health.interval_ms ({}), or checks would overlap",
                    raw.interval_ms
                ),
            );
        }
        Health {
            interval: self.duration("health.interval_ms", raw.interval_ms),
            timeout: self.duration("health.timeout_ms", raw.timeout_ms),
            unhealthy_threshold: raw.unhealthy_threshold,
            healthy_threshold: raw.healthy_threshold,
        }
    }

    fn scatter(&mut self, raw: RawScatter) -> Scatter {
        Scatter {
            node_timeout: self.duration("scatter.node_timeout_ms", raw.node_timeout_ms),
            retry_on_timeout: raw.retry_on_timeout,
            unavailable_shard_policy: raw.unavailable_shard_policy,
            hedge_after_floor: Duration::from_millis(raw.hedge_after_ms_floor),
            max_hedges_per_query: raw.max_hedges_per_query,
        }
    }

    fn handoff(&mut self, raw: RawHandoff) -> Handoff {
        self.positive("handoff.max_bytes_per_node", raw.max_bytes_per_node);
        Handoff {
            max_bytes_per_node: raw.max_bytes_per_node,
            replay_interval: self.duration("handoff.replay_interval_ms", raw.replay_interval_ms),
        }
    }

    fn topology(&mut self, raw: RawTopology) -> Topology {
        self.positive(
            "topology.max_concurrent_moves_per_node",
            raw.max_concurrent_moves_per_node,
        );
        self.positive("topology.copy_page_size", raw.copy_page_size);
        if raw.copy_page_size > 10_000 {
            self.problem("topology.copy_page_size", "must be at most 10000");
        }
        Topology {
            max_concurrent_moves_per_node: raw.max_concurrent_moves_per_node,
            max_copy_bytes_per_sec: (raw.max_copy_bytes_per_sec > 0)
                .then_some(raw.max_copy_bytes_per_sec),
            copy_page_size: raw.copy_page_size,
            reshard_keep: Duration::from_secs(raw.reshard_keep_secs),
        }
    }

    fn webhooks(&mut self, raw: RawWebhooks) -> Webhooks {
        let mut allowed = Vec::with_capacity(raw.allowed_ip_networks.len());
        for network in &raw.allowed_ip_networks {
            // A bare address is a network of one.
            let parsed = network
                .parse::<ipnet::IpNet>()
                .or_else(|_| network.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => allowed.push(net),
                Err(_) => self.problem(
                    "webhooks.allowed_ip_networks",
                    format!("`{network}` is not an IP network (for example \"10.0.0.0/8\" or \"127.0.0.1\")"),
                ),
            }
        }
        Webhooks {
            allowed_ip_networks: allowed,
        }
    }

    /// Checked even when disabled, so enabling it later cannot fail a reload. Deletions are
    /// kept for at least two passes, or a replica that missed one could resurrect it.
    fn anti_entropy(&mut self, raw: RawAntiEntropy) -> AntiEntropy {
        let interval = self.duration("anti_entropy.interval_ms", raw.interval_ms);
        if interval < Duration::from_millis(100) && !interval.is_zero() {
            self.problem("anti_entropy.interval_ms", "must be at least 100");
        }
        self.positive(
            "anti_entropy.max_documents_per_second",
            raw.max_documents_per_second,
        );
        let retention = Duration::from_secs(raw.deletion_retention_hours.saturating_mul(3600));
        if retention < interval.saturating_mul(2) {
            self.problem(
                "anti_entropy.deletion_retention_hours",
                "must cover at least two intervals: a replica that missed a deletion is repaired only while it is remembered",
            );
        }
        AntiEntropy {
            enabled: raw.enabled,
            interval,
            max_documents_per_second: raw.max_documents_per_second,
            deletion_retention: retention,
        }
    }

    /// The interval is checked even when disabled, so enabling it later cannot fail a reload.
    fn settings_sync(&mut self, raw: RawSettingsSync) -> SettingsSync {
        let interval = self.duration("settings_sync.interval_ms", raw.interval_ms);
        if interval < Duration::from_millis(100) && !interval.is_zero() {
            self.problem(
                "settings_sync.interval_ms",
                "must be at least 100: every sweep reads every index's settings on every node",
            );
        }
        SettingsSync {
            enabled: raw.enabled,
            interval,
        }
    }

    /// `None` when disabled (or invalid, which is recorded as a problem).
    fn metrics(&mut self, raw: RawMetrics) -> Option<Metrics> {
        if !raw.enabled {
            return None;
        }
        self.listen("metrics", &raw.bind, raw.port)
            .map(|listen| Metrics { listen })
    }

    fn existing_file(&mut self, key: &str, path: &str) -> Option<PathBuf> {
        let path = PathBuf::from(path);
        if path.is_file() {
            Some(path)
        } else {
            self.problem(key, format!("no such file: {}", path.display()));
            None
        }
    }

    fn distinct_listeners(&mut self, server: &Option<Server>, metrics: Option<&Metrics>) {
        let Some(server) = server else { return };
        let tls = server.tls.as_ref().map(|tls| tls.listen);
        if tls == Some(server.listen) {
            self.problem("server.tls.port", "must differ from server.port");
        }
        if let Some(metrics) = metrics {
            if metrics.listen == server.listen || Some(metrics.listen) == tls {
                self.problem("metrics.port", "must differ from the server's ports");
            }
        }
    }

    fn task_store(&mut self, raw: RawTaskStore, data_dir: &Path) -> TaskStore {
        match raw.backend {
            RawBackend::Embedded => {
                if raw.url.is_some() {
                    self.problem("task_store.url", "only used with backend = \"redis\"");
                }
                let path = raw
                    .path
                    .map_or_else(|| data_dir.join("tasks"), PathBuf::from);
                TaskStore::Embedded { path }
            }
            RawBackend::Redis => {
                if raw.path.is_some() {
                    self.problem("task_store.path", "only used with backend = \"embedded\"");
                }
                let url = raw.url.unwrap_or_default();
                if url.is_empty() {
                    self.problem("task_store.url", "required when backend = \"redis\"");
                } else if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    self.problem("task_store.url", "must start with redis:// or rediss://");
                }
                TaskStore::Redis {
                    url: Secret::new(url),
                }
            }
        }
    }

    /// Node ids, addresses and groups; `None` if any of them is wrong.
    fn nodes(&mut self, raw: &[RawNode], replica_groups: u32) -> Option<Vec<Node>> {
        if raw.is_empty() {
            self.problem("nodes", "at least one node is required");
            return None;
        }
        let before = self.problems.len();
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        let mut nodes = Vec::with_capacity(raw.len());
        for (i, node) in raw.iter().enumerate() {
            match first_seen.entry(&node.id) {
                Entry::Occupied(first) => self.problem(
                    format!("nodes[{i}].id"),
                    format!("{:?} is already the id of nodes[{}]", node.id, first.get()),
                ),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
            let id = NodeId::new(&node.id)
                .map_err(|e| self.problem(format!("nodes[{i}].id"), e.to_string()))
                .ok();
            if replica_groups > 0 && node.replica_group >= replica_groups {
                self.problem(
                    format!("nodes[{i}].replica_group"),
                    format!(
                        "{} is out of range: replica_groups = {replica_groups} allows 0 to {}",
                        node.replica_group,
                        replica_groups - 1
                    ),
                );
            }
            let address = self.node_address(i, &node.address);
            if let (Some(id), Some(address)) = (id, address) {
                nodes.push(Node {
                    id,
                    address,
                    group: GroupId(node.replica_group),
                });
            }
        }
        (self.problems.len() == before).then_some(nodes)
    }

    fn node_address(&mut self, i: usize, address: &str) -> Option<NodeAddress> {
        let key = format!("nodes[{i}].address");
        let url = parse_node_url(address)
            .map_err(|reason| self.problem(&key, reason))
            .ok()?;
        let socket = (self.inputs.resolve)(url.host, url.port)
            .map_err(|reason| self.problem(&key, reason))
            .ok()?;
        Some(NodeAddress {
            scheme: url.scheme,
            host: url.host.to_owned(),
            port: url.port,
            socket,
        })
    }

    /// Group sizes against RF, then the placement itself.
    fn placement(
        &mut self,
        (shards, replication_factor, replica_groups): (u32, u32, u32),
        nodes: Option<&[Node]>,
    ) -> Option<Placement> {
        let nodes = nodes?;
        if shards == 0 || replication_factor == 0 || replica_groups == 0 {
            return None;
        }
        let mut groups: Vec<Vec<NodeId>> = vec![Vec::new(); replica_groups as usize];
        for node in nodes {
            groups[node.group.0 as usize].push(node.id.clone());
        }
        let before = self.problems.len();
        for (g, members) in groups.iter().enumerate() {
            if members.is_empty() {
                self.problem(
                    "replica_groups",
                    format!("replica group {g} has no nodes (every group must hold all shards)"),
                );
            } else if members.len() < replication_factor as usize {
                self.problem(
                    "replication_factor",
                    format!(
                        "{replication_factor} exceeds the {} node(s) of replica group {g}",
                        members.len()
                    ),
                );
            }
        }
        if self.problems.len() > before {
            return None;
        }
        Placement::new(shards, replication_factor, groups)
            .map_err(|e| self.problem("nodes", e.to_string()))
            .ok()
    }
}
