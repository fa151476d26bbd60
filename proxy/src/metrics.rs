//! Prometheus metrics. Registered in the default registry of the `prometheus` crate that
//! `pingora-prometheus` serves, so they appear on the metrics listener.

use std::sync::OnceLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
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
        }
    })
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
