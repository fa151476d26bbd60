//! Active health checks: `GET /health` on every node each interval; a node flips state after
//! the configured number of consecutive failures or successes.

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::metrics;
use crate::state::Shared;
use crate::upstream::{NodeClient, NodeRequest};

pub struct HealthChecker {
    pub shared: Arc<Shared>,
    pub client: NodeClient,
}

impl HealthChecker {
    async fn check_all(&self) {
        let rt = self.shared.runtime();
        let hc = &rt.config.health;
        let checks = rt.nodes.iter().map(|node| async move {
            let ok = matches!(
                self.client.send(node, &NodeRequest::get("/health", None), hc.timeout).await,
                Ok(r) if r.status == 200
            );
            (node, ok)
        });
        for (node, ok) in futures::future::join_all(checks).await {
            let Some(health) = self.shared.health(&node.id) else {
                continue;
            };
            if let Some(now_healthy) =
                health.record(ok, hc.healthy_threshold, hc.unhealthy_threshold)
            {
                metrics::get()
                    .node_healthy
                    .with_label_values(&[node.id.as_str()])
                    .set(i64::from(now_healthy));
                if now_healthy {
                    log::info!(target: "miroir::health", "node {} ({}) is healthy again", node.id, node.addr);
                } else {
                    log::warn!(target: "miroir::health", "node {} ({}) failed its health checks", node.id, node.addr);
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.check_all().await;
            let interval = self.shared.runtime().config.health.interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
