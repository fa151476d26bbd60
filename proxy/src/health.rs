//! Active health checks: `GET /health` on every node each interval, fed into each node's
//! state machine (`node_state`) next to the passive signals of live traffic.

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

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
            self.shared.observe(&rt, &node.id, ok, true);
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
