//! An immutable configuration snapshot and what is derived from it (placement, prepared node
//! peers). A request loads one at its start and keeps it to its end; a reload swaps in a new
//! one whole.

use std::sync::Arc;

use miroir_conf::Config;
use miroir_filters::routing::Placement;

use crate::upstream::NodePeer;

pub struct Runtime {
    pub config: Arc<Config>,
    /// Indexed like the placement's nodes (and `config.nodes`).
    pub nodes: Vec<NodePeer>,
    pub generation: u64,
}

impl Runtime {
    pub fn build(config: Arc<Config>, generation: u64) -> Self {
        let nodes = config
            .nodes
            .iter()
            .map(|n| NodePeer::new(n, &config.upstream))
            .collect();
        Self {
            config,
            nodes,
            generation,
        }
    }

    pub fn placement(&self) -> &Placement {
        self.config.placement()
    }

    /// The node with id `id`, if the snapshot has one.
    pub fn node(&self, id: &str) -> Option<&NodePeer> {
        self.nodes.iter().find(|n| n.id.as_str() == id)
    }

    /// Miroir's own credential on the nodes, for its bookkeeping reads and writes (settings
    /// behind a merge, primary keys, the shard field): never the client's, whose key may not
    /// allow them.
    pub fn node_key(&self) -> Option<&str> {
        self.config.node_master_key.as_ref().map(|k| k.expose())
    }
}
