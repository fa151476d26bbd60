//! `TestNode`: one Meilisearch node for a test, simulated or real, behind one interface.

use std::sync::atomic::{AtomicU64, Ordering};

use meili_sim::{Faults, SimConfig, SimNode};

use crate::real::{meili_bin, RealNode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An in-process `meili-sim` node.
    Sim,
    /// A real Meilisearch process from `MEILI_BIN`.
    Real,
}

enum Inner {
    Sim(SimNode),
    Real(tokio::sync::Mutex<RealNode>),
}

pub struct TestNode {
    inner: Inner,
    url: String,
    master_key: String,
}

/// Starts a node with `master_key`. Panics with the reason when it cannot (this is test
/// setup: failing loudly is the useful behaviour). Simulated nodes get distinct seeds in start
/// order, so, like real nodes, their default keys differ.
pub async fn start_node(kind: NodeKind, master_key: &str) -> TestNode {
    static NEXT_SEED: AtomicU64 = AtomicU64::new(1);
    let cfg = SimConfig {
        master_key: Some(master_key.to_owned()),
        seed: NEXT_SEED.fetch_add(1, Ordering::Relaxed),
        ..SimConfig::default()
    };
    start_node_with(kind, cfg).await
}

/// Like `start_node`, with the simulator's full configuration (ignored except for the master
/// key by real nodes).
pub async fn start_node_with(kind: NodeKind, cfg: SimConfig) -> TestNode {
    let master_key = cfg.master_key.clone().unwrap_or_default();
    match kind {
        NodeKind::Sim => {
            let node = SimNode::start(cfg)
                .await
                .unwrap_or_else(|e| panic!("cannot start meili-sim: {e}"));
            TestNode {
                url: node.url(),
                inner: Inner::Sim(node),
                master_key,
            }
        }
        NodeKind::Real => {
            let bin = meili_bin().unwrap_or_else(|| panic!("NodeKind::Real needs MEILI_BIN"));
            let node = RealNode::start(bin, &master_key)
                .await
                .unwrap_or_else(|e| panic!("cannot start Meilisearch: {e}"));
            TestNode {
                url: node.url(),
                inner: Inner::Real(tokio::sync::Mutex::new(node)),
                master_key,
            }
        }
    }
}

impl TestNode {
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn master_key(&self) -> &str {
        &self.master_key
    }

    pub fn kind(&self) -> NodeKind {
        match self.inner {
            Inner::Sim(_) => NodeKind::Sim,
            Inner::Real(_) => NodeKind::Real,
        }
    }

    /// Where a real node writes its dumps; `None` for a simulated one (it writes none).
    pub async fn dumps_dir(&self) -> Option<std::path::PathBuf> {
        match &self.inner {
            Inner::Sim(_) => None,
            Inner::Real(node) => Some(node.lock().await.dumps_dir()),
        }
    }

    /// Everything a real node keeps on disk; `None` for a simulated one (it keeps nothing).
    pub async fn home(&self) -> Option<std::path::PathBuf> {
        match &self.inner {
            Inner::Sim(_) => None,
            Inner::Real(node) => Some(node.lock().await.home()),
        }
    }

    /// Fault controls; simulated nodes only.
    pub fn faults(&self) -> Option<&Faults> {
        match &self.inner {
            Inner::Sim(node) => Some(node.faults()),
            Inner::Real(_) => None,
        }
    }

    /// The simulated node itself, for tests that need more than the common interface.
    pub fn sim(&self) -> Option<&SimNode> {
        match &self.inner {
            Inner::Sim(node) => Some(node),
            Inner::Real(_) => None,
        }
    }

    /// Takes the node down; its data survives for `restart`.
    pub async fn stop(&self) {
        match &self.inner {
            Inner::Sim(node) => node.stop().await,
            Inner::Real(node) => node.lock().await.stop(),
        }
    }

    pub async fn restart(&self) {
        let result = match &self.inner {
            Inner::Sim(node) => node.restart().await,
            Inner::Real(node) => node.lock().await.restart().await,
        };
        if let Err(e) = result {
            panic!("cannot restart node at {}: {e}", self.url);
        }
    }

    /// A client authenticated with the master key.
    pub fn client(&self) -> crate::Client {
        crate::Client::new(&self.url, Some(&self.master_key))
    }

    /// Waits for task `uid` to finish and returns it.
    pub async fn wait_task(&self, uid: u64) -> serde_json::Value {
        crate::wait_task(&self.url, &self.master_key, uid).await
    }
}
