//! Prometheus metrics. Registered in the default registry of the `prometheus` crate that
//! `pingora-prometheus` serves, so they appear on the metrics listener.

use std::sync::OnceLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

pub struct Metrics {
    /// Client requests by route template, route class and status.
    pub requests: IntCounterVec,
    /// Client request latency by route class.
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    /// Requests Miroir sent to nodes, by node and status (0 = no response).
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    /// Config reloads by result (`applied`, `rejected`).
    pub config_reloads: IntCounterVec,
    /// 1 when the node passes its health checks.
    pub node_healthy: IntGaugeVec,
    /// 1 for the node's current state (`active`, `suspect`, `failed`, `recovering`).
    pub node_state: IntGaugeVec,
    /// Hints waiting per node, and their bytes.
    pub hints_pending: IntGaugeVec,
    pub hint_bytes: IntGaugeVec,
    /// Hints by node and outcome (`stored`, `replayed`, `dropped`, `full`).
    pub hints: IntCounterVec,
    /// Index operations Miroir undid or replayed on one node (`operation`, `result`).
    pub index_repairs: IntCounterVec,
    /// A node left holding a different set of indexes than the others: a rollback or a replay
    /// that failed, or gave up (`operation`).
    pub index_divergence: IntCounterVec,
    /// Indexes present on some nodes and missing on others, at the last settings sweep.
    pub indexes_diverged: IntGauge,
    /// Settings of one node patched back to the majority's.
    pub settings_drift_repaired: IntCounter,
    /// Indexes whose settings differ across nodes and were not repaired (no majority, or a
    /// setting Miroir cannot copy), at the last check.
    pub settings_drift_unresolved: IntGauge,
    /// The applied topology's version.
    pub topology_version: IntGauge,
    /// 1 while the configuration file asks for a topology that is not applied.
    pub topology_staged: IntGauge,
    /// Shard moves of the change in progress not yet cut over.
    pub topology_moving: IntGauge,
    /// Steps of a topology change that failed and were tried again.
    pub topology_step_failures: IntCounter,
    /// Documents and bytes copied to new owners by shard moves.
    pub shard_copy_documents: IntCounter,
    pub shard_copy_bytes: IntCounter,
    /// Online resharding: indexes being resharded, documents copied to shadows, mirrored
    /// writes replayed on them, and how long the last flip held writes and reads.
    pub reshards_active: IntGauge,
    pub reshard_copy_documents: IntCounter,
    pub reshard_replayed_writes: IntCounter,
    pub reshard_flip_writes_held_ms: IntGauge,
    pub reshard_flip_reads_held_ms: IntGauge,
    /// Anti-entropy: passes finished, documents read and requests sent to nodes, copies
    /// repaired by kind (`missing`, `extra`, `different`), documents left unresolved.
    pub anti_entropy_passes: IntCounter,
    pub anti_entropy_documents: IntCounter,
    pub anti_entropy_node_requests: IntCounter,
    pub anti_entropy_repairs: IntCounterVec,
    pub anti_entropy_unresolved: IntCounter,
    /// Webhook calls by outcome (`delivered`, `failed`, `refused`: an internal address not
    /// allowed, `dropped`: the queue of finished tasks was full).
    pub webhook_calls: IntCounterVec,
    /// Anti-entropy of key sets and index sets: copies repaired by set (`keys`, `indexes`)
    /// and kind (`missing`, `extra`, `different`), and differences left as they are.
    pub anti_entropy_set_repairs: IntCounterVec,
    pub anti_entropy_set_unresolved: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics, registered on first use.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| {
        // Registration fails only on a duplicate name, which would be a programming error
        // caught by the first test that starts the proxy.
        Metrics {
            requests: register_int_counter_vec!(
                "miroir_requests_total",
                "Client requests by route template, route class and HTTP status",
                &["route", "class", "status"]
            )
            .expect("register miroir_requests_total"),
            request_duration: register_histogram_vec!(
                "miroir_request_duration_seconds",
                "Client request latency by route class",
                &["class"],
                LATENCY_BUCKETS.to_vec()
            )
            .expect("register miroir_request_duration_seconds"),
            in_flight: register_int_gauge!(
                "miroir_requests_in_flight",
                "Client requests being served"
            )
            .expect("register miroir_requests_in_flight"),
            upstream_requests: register_int_counter_vec!(
                "miroir_upstream_requests_total",
                "Requests sent to nodes by node and HTTP status (0 = no response)",
                &["node", "status"]
            )
            .expect("register miroir_upstream_requests_total"),
            upstream_duration: register_histogram_vec!(
                "miroir_upstream_duration_seconds",
                "Node response latency",
                &["node"],
                LATENCY_BUCKETS.to_vec()
            )
            .expect("register miroir_upstream_duration_seconds"),
            config_reloads: register_int_counter_vec!(
                "miroir_config_reloads_total",
                "Configuration reloads by result",
                &["result"]
            )
            .expect("register miroir_config_reloads_total"),
            node_healthy: register_int_gauge_vec!(
                "miroir_node_healthy",
                "1 when the node passes its health checks, else 0",
                &["node"]
            )
            .expect("register miroir_node_healthy"),
            node_state: register_int_gauge_vec!(
                "miroir_node_state",
                "1 for the node's current state (active, suspect, failed, recovering)",
                &["node", "state"]
            )
            .expect("register miroir_node_state"),
            hints_pending: register_int_gauge_vec!(
                "miroir_hints_pending",
                "Writes waiting for replay to a node",
                &["node"]
            )
            .expect("register miroir_hints_pending"),
            hint_bytes: register_int_gauge_vec!(
                "miroir_hint_bytes",
                "Bytes of writes waiting for replay to a node",
                &["node"]
            )
            .expect("register miroir_hint_bytes"),
            hints: register_int_counter_vec!(
                "miroir_hints_total",
                "Hinted writes by node and outcome (stored, replayed, dropped, full)",
                &["node", "outcome"]
            )
            .expect("register miroir_hints_total"),
            index_repairs: register_int_counter_vec!(
                "miroir_index_repairs_total",
                "Index operations undone or replayed on one node, by operation and result",
                &["operation", "result"]
            )
            .expect("register miroir_index_repairs_total"),
            index_divergence: register_int_counter_vec!(
                "miroir_index_divergence_total",
                "Nodes left with different indexes than the others after a failed rollback or replay",
                &["operation"]
            )
            .expect("register miroir_index_divergence_total"),
            indexes_diverged: register_int_gauge!(
                "miroir_indexes_diverged",
                "Indexes present on some nodes and missing on others at the last settings sweep"
            )
            .expect("register miroir_indexes_diverged"),
            settings_drift_repaired: register_int_counter!(
                "miroir_settings_drift_repaired_total",
                "Nodes whose index settings were patched back to the majority's"
            )
            .expect("register miroir_settings_drift_repaired_total"),
            settings_drift_unresolved: register_int_gauge!(
                "miroir_settings_drift_unresolved",
                "Indexes whose settings differ across nodes without a repair, at the last check"
            )
            .expect("register miroir_settings_drift_unresolved"),
            topology_version: register_int_gauge!(
                "miroir_topology_version",
                "Version of the applied topology"
            )
            .expect("register miroir_topology_version"),
            topology_staged: register_int_gauge!(
                "miroir_topology_staged",
                "1 while the configuration asks for a topology that is not applied"
            )
            .expect("register miroir_topology_staged"),
            topology_moving: register_int_gauge!(
                "miroir_topology_shard_moves_pending",
                "Shard moves of the change in progress not yet cut over"
            )
            .expect("register miroir_topology_shard_moves_pending"),
            topology_step_failures: register_int_counter!(
                "miroir_topology_step_failures_total",
                "Steps of a topology change that failed and were tried again"
            )
            .expect("register miroir_topology_step_failures_total"),
            shard_copy_documents: register_int_counter!(
                "miroir_shard_copy_documents_total",
                "Documents copied to new owners by shard moves"
            )
            .expect("register miroir_shard_copy_documents_total"),
            shard_copy_bytes: register_int_counter!(
                "miroir_shard_copy_bytes_total",
                "Bytes of documents copied to new owners by shard moves"
            )
            .expect("register miroir_shard_copy_bytes_total"),
            reshards_active: register_int_gauge!(
                "miroir_reshards_active",
                "Indexes whose shard count is being changed (until their old layout is dropped)"
            )
            .expect("register miroir_reshards_active"),
            reshard_copy_documents: register_int_counter!(
                "miroir_reshard_copy_documents_total",
                "Documents copied into reshards' shadow indexes"
            )
            .expect("register miroir_reshard_copy_documents_total"),
            reshard_replayed_writes: register_int_counter!(
                "miroir_reshard_replayed_writes_total",
                "Writes mirrored for a reshard and replayed on its other layout"
            )
            .expect("register miroir_reshard_replayed_writes_total"),
            reshard_flip_writes_held_ms: register_int_gauge!(
                "miroir_reshard_flip_writes_held_ms",
                "How long the last reshard flip held writes, in milliseconds"
            )
            .expect("register miroir_reshard_flip_writes_held_ms"),
            reshard_flip_reads_held_ms: register_int_gauge!(
                "miroir_reshard_flip_reads_held_ms",
                "How long the last reshard flip held reads, in milliseconds"
            )
            .expect("register miroir_reshard_flip_reads_held_ms"),
            anti_entropy_passes: register_int_counter!(
                "miroir_anti_entropy_passes_total",
                "Anti-entropy passes finished over every index and shard"
            )
            .expect("register miroir_anti_entropy_passes_total"),
            anti_entropy_documents: register_int_counter!(
                "miroir_anti_entropy_documents_read_total",
                "Documents anti-entropy read from the nodes"
            )
            .expect("register miroir_anti_entropy_documents_read_total"),
            anti_entropy_node_requests: register_int_counter!(
                "miroir_anti_entropy_node_requests_total",
                "Requests anti-entropy sent to the nodes"
            )
            .expect("register miroir_anti_entropy_node_requests_total"),
            anti_entropy_repairs: register_int_counter_vec!(
                "miroir_anti_entropy_repairs_total",
                "Document copies anti-entropy repaired, by kind (missing, extra, different)",
                &["kind"]
            )
            .expect("register miroir_anti_entropy_repairs_total"),
            anti_entropy_unresolved: register_int_counter!(
                "miroir_anti_entropy_unresolved_total",
                "Documents whose copies differ with nothing to tell which is right"
            )
            .expect("register miroir_anti_entropy_unresolved_total"),
            webhook_calls: register_int_counter_vec!(
                "miroir_webhook_calls_total",
                "Webhook calls by outcome (delivered, failed, refused, dropped)",
                &["outcome"]
            )
            .expect("register miroir_webhook_calls_total"),
            anti_entropy_set_repairs: register_int_counter_vec!(
                "miroir_anti_entropy_set_repairs_total",
                "Keys and indexes anti-entropy repaired on a node, by set (keys, indexes) and kind (missing, extra, different)",
                &["set", "kind"]
            )
            .expect("register miroir_anti_entropy_set_repairs_total"),
            anti_entropy_set_unresolved: register_int_counter_vec!(
                "miroir_anti_entropy_set_unresolved_total",
                "Keys and indexes that differ across nodes with nothing to tell which copy is right (no majority), by set",
                &["set"]
            )
            .expect("register miroir_anti_entropy_set_unresolved_total"),
        }
    })
}

/// Publishes a node's state: one gauge per state label in `all`, 1 for `current`.
pub fn set_node_state(node: &str, current: &str, all: &[&str], serves_reads: bool) {
    let m = get();
    for &s in all {
        m.node_state
            .with_label_values(&[node, s])
            .set(i64::from(s == current));
    }
    m.node_healthy
        .with_label_values(&[node])
        .set(i64::from(serves_reads));
}

/// Counts one request Miroir sent to a node (`status` 0: no answer) and its duration.
pub fn upstream_request(node: &str, status: u16, took: std::time::Duration) {
    let m = get();
    m.upstream_requests
        .with_label_values(&[node, &status_label(status)])
        .inc();
    m.upstream_duration
        .with_label_values(&[node])
        .observe(took.as_secs_f64());
}

/// Publishes a node's hint backlog.
pub fn set_backlog(node: &str, backlog: miroir_handoff::NodeBacklog) {
    let m = get();
    m.hints_pending
        .with_label_values(&[node])
        .set(i64::try_from(backlog.hints).unwrap_or(i64::MAX));
    m.hint_bytes
        .with_label_values(&[node])
        .set(i64::try_from(backlog.bytes).unwrap_or(i64::MAX));
}

/// A status code as a label, without allocating for the common ones.
pub fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    let known = match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        413 => "413",
        499 => "499",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        _ => return std::borrow::Cow::Owned(status.to_string()),
    };
    std::borrow::Cow::Borrowed(known)
}
