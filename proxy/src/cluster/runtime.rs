//! An immutable snapshot of what requests work with: the configuration, the placements of the
//! applied topology (and of a change in progress), and prepared node peers. A request loads
//! one at its start and keeps it to its end; a reload or a shard's cutover swaps in a new one
//! whole.

use std::sync::Arc;

use miroir_conf::Config;
use miroir_filters::routing::Placement;

use super::topology::{Placements, WriteSets};
use crate::upstream::NodePeer;
use miroir_filters::routing::{GroupId, NodeIdx, ShardId};

pub struct Runtime {
    pub config: Arc<Config>,
    placements: Arc<Placements>,
    /// Indexed like both placements' nodes.
    pub nodes: Vec<NodePeer>,
    pub generation: u64,
}

impl Runtime {
    pub fn build(config: Arc<Config>, placements: Arc<Placements>, generation: u64) -> Self {
        let nodes = placements
            .nodes
            .iter()
            .map(|n| NodePeer::new(n, &config.upstream))
            .collect();
        Self {
            config,
            placements,
            nodes,
            generation,
        }
    }

    /// Where each shard is read from.
    pub fn reads(&self) -> &Placement {
        &self.placements.reads
    }

    /// The owners a write's quorum counts (see `Placements::owners`).
    pub fn owners(&self) -> &Placement {
        &self.placements.owners
    }

    /// The replica groups that can answer a search alone (a group being added cannot yet).
    pub fn covering_groups(&self) -> &[GroupId] {
        &self.placements.covering_groups
    }

    /// Where each write goes: during a shard move, its old and new owners.
    pub fn writes(&self) -> &Placement {
        &self.placements.writes
    }

    /// The shards a write to `node` carries, split into those sent now and those kept in its
    /// move log while it receives a copy of them.
    pub fn write_sets(&self, node: NodeIdx) -> &WriteSets {
        &self.placements.write_sets[node.index()]
    }

    /// When `node`'s latest rebuild began (ms since the epoch), if it was ever rebuilt.
    pub fn rebuilt_at(&self, node: &str) -> Option<u64> {
        self.placements.rebuilt.get(node).copied()
    }

    /// Whether `node` holds exactly the shards [`Runtime::reads`] gives it (see
    /// `Placements::exact`).
    pub fn holds_exactly(&self, node: NodeIdx) -> bool {
        self.placements
            .exact
            .get(node.index())
            .copied()
            .unwrap_or(false)
    }

    /// The shards `rt.nodes[i]` is receiving a copy of (its move log holds their writes).
    pub fn copying(&self, i: usize) -> &[ShardId] {
        self.placements
            .write_sets
            .get(i)
            .map_or(&[], |sets| sets.logged.as_slice())
    }

    /// How many shard slots the placements have: at least every index's S (see
    /// `shard_counts`).
    pub fn width(&self) -> u32 {
        self.placements.reads.shards()
    }

    /// S of an index created now: the configuration's `shards`, within the placement's width
    /// (which grows to it between topology changes, see `topology::widened`).
    pub fn new_index_shards(&self) -> u32 {
        self.config.shards.min(self.width())
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
