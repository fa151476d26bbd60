//! Active health checks: `GET /health` on every node each interval, each result fed into the
//! node's state machine (`node_state`) next to the passive signals of live traffic.
//!
//! The probe is `pingora-load-balancing`'s `HttpHealthCheck`. Its `LoadBalancer` health
//! bookkeeping is not used: it flips a backend between two states on active checks alone,
//! while a Miroir node has four states that live-request failures and unreplayed hints move
//! too, so every single result goes to `Cluster::observe`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::ErrorType;
use pingora_http::RequestHeader;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck};
use pingora_load_balancing::Backend;

use super::{Cluster, Runtime};
use crate::telemetry::metrics;
use crate::upstream::NodePeer;

pub struct HealthChecker {
    pub cluster: Arc<Cluster>,
}

/// The probes of one configuration version.
struct Probes {
    generation: u64,
    nodes: Vec<Option<(Backend, HttpHealthCheck)>>,
}

fn probe(node: &NodePeer, rt: &Runtime) -> Option<(Backend, HttpHealthCheck)> {
    let backend = Backend::new(&node.addr.to_string()).ok()?;
    let mut check = HttpHealthCheck::new(&node.peer.sni, node.peer.is_tls());
    let mut req = RequestHeader::build("GET", b"/health", None).ok()?;
    req.insert_header("Host", node.host_header.as_str()).ok()?;
    check.req = req;
    check.reuse_connection = true;
    let timeout = Some(rt.config.health.timeout);
    check.peer_template.options.connection_timeout = timeout;
    check.peer_template.options.read_timeout = timeout;
    check.peer_template.options.write_timeout = timeout;
    Some((backend, check))
}

impl Probes {
    fn for_runtime(rt: &Runtime) -> Self {
        Self {
            generation: rt.generation,
            nodes: rt.nodes.iter().map(|n| probe(n, rt)).collect(),
        }
    }
}

impl HealthChecker {
    async fn check_all(&self, rt: &Runtime, probes: &Probes) {
        let checks = rt
            .nodes
            .iter()
            .zip(&probes.nodes)
            .map(|(node, probe)| async move {
                let started = Instant::now();
                let status = match probe {
                    Some(probe) => probe_status(probe, rt.config.health.timeout).await,
                    None => 0,
                };
                metrics::upstream_request(node.id.as_str(), status, started.elapsed());
                (node, status == 200)
            });
        for (node, ok) in futures::future::join_all(checks).await {
            self.cluster.observe(rt, &node.id, ok, true);
        }
    }
}

/// The status a node's `/health` answered with (0: none within `timeout`).
async fn probe_status((backend, check): &(Backend, HttpHealthCheck), timeout: Duration) -> u16 {
    match tokio::time::timeout(timeout, check.check(backend)).await {
        Ok(Ok(())) => 200,
        // The probe's error names the status of an answer other than 200.
        Ok(Err(e)) => match e.etype() {
            ErrorType::CustomCode(_, code) => *code,
            _ => 0,
        },
        Err(_) => 0,
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut probes = Probes::for_runtime(&self.cluster.runtime());
        loop {
            let rt = self.cluster.runtime();
            if probes.generation != rt.generation {
                probes = Probes::for_runtime(&rt);
            }
            self.check_all(&rt, &probes).await;
            tokio::select! {
                _ = tokio::time::sleep(rt.config.health.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
