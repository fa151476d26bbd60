//! The applied topology: which nodes, in which replica groups, hold how many copies of each
//! shard. It lives in Miroir's data directory (`topology.json`), not in the configuration
//! file: the file says what the operator wants, and a difference is staged until
//! `miroir ctl apply` turns it into a change that moves shards (see `fleet/`). A reload
//! never moves a shard by itself.
//!
//! A change in progress is recorded beside the layout, with each shard move's state, so a
//! restart (even after SIGKILL) resumes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use miroir_conf::{Config, Node};
use miroir_filters::routing::{owner_changes, GroupId, NodeId, Placement, ShardId, Side};
use serde::{Deserialize, Serialize};

const FILE: &str = "topology.json";

/// The file's topology when it differs from the applied one: a change to plan and apply.
pub fn staged(config: &Config, topology: &Topology) -> Option<Layout> {
    let applied = &topology.layout;
    let wanted = Layout::from_config(config, applied.version + 1, applied.shards);
    (!wanted.same_fleet(applied)).then_some(wanted)
}

/// Logs what the file asks for that is not applied.
pub fn report_staged(config: &Config, topology: &Topology) {
    let applied = &topology.layout;
    let m = crate::telemetry::metrics::get();
    m.topology_version.set(applied.version as i64);
    let is_staged = staged(config, topology).is_some();
    m.topology_staged.set(i64::from(is_staged));
    if is_staged {
        log::warn!(
            target: "miroir::topology",
            "the configuration's nodes or replication differ from the applied topology (version {}); \
             nothing moves until `miroir ctl plan` and `miroir ctl apply`",
            applied.version
        );
    }
    if config.shards > applied.shards && topology.change.is_some() {
        log::warn!(
            target: "miroir::topology",
            "`shards = {}` is wider than the placement ({} shards) and a topology change is in \
             progress: indexes created before it finishes get {} shards",
            config.shards,
            applied.shards,
            applied.shards
        );
    }
}

/// The topology with its placement widened to the configuration's `shards`, when that is
/// wider and no change is in progress (the new slots hold nothing yet, so nothing moves; a
/// change in progress planned its moves over the old width). `shards` is the S of indexes
/// created from now on; an existing index keeps its own (see `shard_counts`).
pub fn widened(config: &Config, topology: &Topology) -> Option<Topology> {
    widened_to(config.shards, topology)
}

/// The topology with its placement at least `width` shards wide (see [`widened`]).
pub fn widened_to(width: u32, topology: &Topology) -> Option<Topology> {
    if topology.change.is_some() || width <= topology.layout.shards {
        return None;
    }
    let mut next = topology.clone();
    next.layout.shards = width;
    Some(next)
}

/// One node of a layout, as an operator names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutNode {
    pub id: String,
    pub address: String,
    pub replica_group: u32,
}

/// A versioned topology. Version 1 is the file's topology at Miroir's first start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    pub version: u64,
    /// The placement's width: shard slots `0..shards`, at least every index's S (each index
    /// uses the slots below its own S, see `shard_counts`). It only grows.
    pub shards: u32,
    pub replication_factor: u32,
    pub replica_groups: u32,
    pub nodes: Vec<LayoutNode>,
}

impl Layout {
    /// The topology the configuration file asks for, as layout `version`.
    pub fn from_config(config: &Config, version: u64, shards: u32) -> Self {
        let mut nodes: Vec<LayoutNode> = config
            .nodes
            .iter()
            .map(|n| LayoutNode {
                id: n.id.to_string(),
                address: n.address.url(),
                replica_group: n.group.0,
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Self {
            version,
            shards,
            replication_factor: config.replication_factor,
            replica_groups: config.replica_groups,
            nodes,
        }
    }

    /// Same nodes, addresses, groups and replication factor (the version aside).
    pub fn same_fleet(&self, other: &Layout) -> bool {
        self.replication_factor == other.replication_factor
            && self.replica_groups == other.replica_groups
            && self.nodes == other.nodes
    }

    pub fn placement(&self) -> Result<Placement, String> {
        let mut groups: Vec<Vec<NodeId>> = vec![Vec::new(); self.replica_groups as usize];
        for n in &self.nodes {
            let id = NodeId::new(&n.id).map_err(|e| e.to_string())?;
            let group = groups.get_mut(n.replica_group as usize).ok_or_else(|| {
                format!(
                    "node {:?}: replica group {} does not exist",
                    n.id, n.replica_group
                )
            })?;
            group.push(id);
        }
        Placement::new(self.shards, self.replication_factor, groups).map_err(|e| e.to_string())
    }

    /// The nodes, resolved like the file's nodes.
    pub fn resolve(&self) -> Result<Vec<Node>, String> {
        self.nodes
            .iter()
            .map(|n| {
                miroir_conf::resolve_node(
                    &n.id,
                    &n.address,
                    n.replica_group,
                    &miroir_conf::system_resolve,
                )
                .map_err(|e| format!("node {:?}: {e}", n.id))
            })
            .collect()
    }
}

/// Where one shard move stands. Only shards whose owner set changes move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MoveState {
    /// The copy runs (or will); writes for the new owners go to their move logs and reads
    /// stay on the old owners.
    Copying,
    /// Copied and the move log replayed: writes reach the new owners directly; reads stay on
    /// the old owners until the copy is verified.
    Replayed,
    /// Verified: reads use the new owners.
    CutOver,
}

/// One (group, shard) whose owners change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveRecord {
    pub group: u32,
    pub shard: u32,
    /// Nodes that receive a copy.
    pub to: Vec<String>,
    /// Nodes that drop the shard once the change is done.
    pub from: Vec<String>,
    /// Old owners that stay: copy sources that hold all of it.
    pub kept: Vec<String>,
    pub state: MoveState,
}

/// The lifecycle of a change; one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Joining nodes receive every index (settings, primary key) and every key; nothing
    /// reads or writes them yet.
    Preparing,
    /// Writes reach old and new owners; shards copy and cut over one by one.
    Moving,
    /// The new layout is applied; old owners drop what they no longer own.
    Cleaning,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The layout applied when the change started; kept for the cleanup, which reaches
    /// nodes the new layout no longer lists.
    pub from: Layout,
    /// The layout being applied (its version is the applied one's plus one).
    pub to: Layout,
    pub phase: Phase,
    pub moves: Vec<MoveRecord>,
    pub started_at_ms: u64,
    /// Nodes rebuilt in place (a resync): each of their shards is copied to them again, and
    /// they serve none of it until its copy is verified.
    #[serde(default)]
    pub rebuilding: Vec<String>,
}

impl Change {
    /// Rebuilds `node` shard by shard from the other owners of each shard (in any group):
    /// after a hint queue overflowed, after it was replaced by an empty node, or on demand.
    pub fn resync(layout: &Layout, node: &str, now_ms: u64) -> Result<Self, String> {
        let p = layout.placement()?;
        if p.index_of(node).is_none() {
            return Err(format!(
                "Node `{node}` is not part of the applied topology."
            ));
        }
        let mut moves = Vec::new();
        if !rebuild_moves((&p, &p), node, &mut moves) {
            return Err(format!(
                "Node `{node}` holds the only copy of its shards: there is nothing to rebuild it from."
            ));
        }
        let mut to = layout.clone();
        to.version += 1;
        Ok(Self {
            from: layout.clone(),
            to,
            phase: Phase::Preparing,
            moves,
            started_at_ms: now_ms,
            rebuilding: vec![node.to_owned()],
        })
    }

    /// Nodes that must receive every index and key before the copies: joining and rebuilt.
    pub fn to_prepare(&self) -> impl Iterator<Item = &LayoutNode> + '_ {
        self.to.nodes.iter().filter(|n| {
            !self.from.nodes.iter().any(|o| o.id == n.id) || self.rebuilding.contains(&n.id)
        })
    }

    pub fn plan(from: &Layout, to: Layout, now_ms: u64) -> Result<Self, String> {
        let (a, b) = (from.placement()?, to.placement()?);
        Placement::blend(&a, &b, |_, _| Side::Both).map_err(|e| e.to_string())?;
        let names = |ids: &[NodeId]| ids.iter().map(|n| n.to_string()).collect();
        let mut moves: Vec<MoveRecord> = owner_changes(&a, &b)
            .into_iter()
            .map(|c| MoveRecord {
                group: c.group.0,
                shard: c.shard.0,
                to: names(&c.gained),
                from: names(&c.lost),
                kept: names(&c.kept),
                state: MoveState::Copying,
            })
            .collect();
        // A slot of a new replica group copies from the shard's owners in the other groups.
        for m in moves
            .iter_mut()
            .filter(|m| m.kept.is_empty() && m.from.is_empty())
        {
            m.kept = (0..a.groups())
                .flat_map(|g| a.replicas(GroupId(g), ShardId(m.shard)).iter())
                .map(|&n| a.node(n).to_string())
                .collect();
        }
        // A node that keeps its id at a new address may be a new, empty machine: it is
        // rebuilt from the other copies, and serves nothing until then.
        let mut rebuilding = Vec::new();
        for n in &to.nodes {
            let moved = from
                .nodes
                .iter()
                .any(|o| o.id == n.id && o.address != n.address);
            if moved && rebuild_moves((&b, &a), &n.id, &mut moves) {
                rebuilding.push(n.id.clone());
            }
        }
        Ok(Self {
            from: from.clone(),
            to,
            phase: Phase::Preparing,
            moves,
            started_at_ms: now_ms,
            rebuilding,
        })
    }

    /// Nodes of the new layout that are not in the old one.
    pub fn joining(&self) -> impl Iterator<Item = &LayoutNode> + '_ {
        self.to
            .nodes
            .iter()
            .filter(|n| !self.from.nodes.iter().any(|o| o.id == n.id))
    }

    fn cut_over(&self) -> BTreeSet<(u32, u32)> {
        self.moves
            .iter()
            .filter(|m| m.state == MoveState::CutOver)
            .map(|m| (m.group, m.shard))
            .collect()
    }

    fn moving(&self) -> BTreeSet<(u32, u32)> {
        self.moves.iter().map(|m| (m.group, m.shard)).collect()
    }
}

/// Adds to `moves` a copy of every shard `node` owns in `p`, from the shard's owners in
/// `sources` (in any group); a slot already moving gets `node` as one more new owner. `false` when some
/// shard has no other copy (nothing is added then).
fn rebuild_moves(
    (p, sources): (&Placement, &Placement),
    node: &str,
    moves: &mut Vec<MoveRecord>,
) -> bool {
    let Some(idx) = p.index_of(node) else {
        return false;
    };
    let mut added = Vec::new();
    for &shard in p.shards_of(idx) {
        let group = p.group_of(idx).0;
        // The shard's owners before the change hold it whole; not the node itself.
        let others: Vec<String> = (0..sources.groups())
            .flat_map(|g| sources.replicas(GroupId(g), shard).iter().copied())
            .map(|n| sources.node(n).to_string())
            .filter(|n| n != node)
            .collect();
        if others.is_empty() {
            return false;
        }
        added.push((group, shard.0, others));
    }
    for (group, shard, others) in added {
        match moves
            .iter_mut()
            .find(|m| m.group == group && m.shard == shard)
        {
            Some(m) => {
                m.kept.retain(|k| k != node);
                if !m.to.iter().any(|t| t == node) {
                    m.to.push(node.to_owned());
                }
            }
            None => moves.push(MoveRecord {
                group,
                shard,
                to: vec![node.to_owned()],
                from: Vec::new(),
                kept: others,
                state: MoveState::Copying,
            }),
        }
    }
    true
}

/// What the data directory holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    pub layout: Layout,
    pub change: Option<Change>,
    /// Per node, when its latest rebuild began (ms since the epoch): node tasks of writes
    /// accepted before then are gone with its old data (or its old machine) and superseded.
    #[serde(default)]
    pub rebuilt: BTreeMap<String, u64>,
}

/// The placements requests use, derived from a [`Topology`].
pub struct Placements {
    /// Where each shard is read: the old owners until its move cut over, without a node
    /// being rebuilt.
    pub reads: Placement,
    /// The owners a write's quorum is judged on: `reads` with the nodes being rebuilt, whose
    /// move log holds the write durably.
    pub owners: Placement,
    /// Where each write goes: old and new owners of a moving shard.
    pub writes: Placement,
    /// The nodes both placements number, in their order.
    pub nodes: Vec<Node>,
    /// Per node (same numbering), the shards its writes split into: sent, and kept in its
    /// move log while it receives a copy of them.
    pub write_sets: Vec<WriteSets>,
    /// The replica groups that hold every shard in `reads`: searches rotate over these.
    pub covering_groups: Vec<GroupId>,
    /// Per node id, when its latest rebuild began (see `Topology::rebuilt`).
    pub rebuilt: BTreeMap<String, u64>,
    /// Per node: it holds exactly the shards `reads` gives it, so a search of its whole index
    /// needs no shard clause. Not so for a node gaining or losing shards in a change, until
    /// the change is over (an old owner keeps a moved shard until the cleanup).
    pub exact: Vec<bool>,
}

/// A node's written shards, split by where their writes go.
#[derive(Clone, Debug, Default)]
pub struct WriteSets {
    pub direct: Vec<ShardId>,
    pub logged: Vec<ShardId>,
}

impl Placements {
    fn new(
        (reads, owners): (Placement, Placement),
        writes: Placement,
        nodes: Vec<Node>,
        logged: &BTreeSet<(String, u32)>,
        inexact: &BTreeSet<&str>,
    ) -> Self {
        let exact = reads
            .nodes()
            .iter()
            .map(|id| !inexact.contains(id.as_str()))
            .collect();
        // Nodes are numbered group by group, so this walks them in numbering order.
        let write_sets = (0..writes.groups())
            .flat_map(|g| writes.group_members(GroupId(g)))
            .map(|n| {
                let id = writes.node(n).as_str();
                let (logged, direct) = writes
                    .shards_of(n)
                    .iter()
                    .partition(|s| logged.contains(&(id.to_owned(), s.0)));
                WriteSets { direct, logged }
            })
            .collect();
        let covering_groups = (0..reads.groups())
            .map(GroupId)
            .filter(|&g| reads.covers(g))
            .collect();
        Self {
            covering_groups,
            reads,
            owners,
            writes,
            nodes,
            write_sets,
            rebuilt: BTreeMap::new(),
            exact,
        }
    }
}

impl Topology {
    pub fn placements(&self) -> Result<Placements, String> {
        let mut placements = self.placements_of_change()?;
        placements.rebuilt = self.rebuilt.clone();
        Ok(placements)
    }

    fn placements_of_change(&self) -> Result<Placements, String> {
        let from = self.layout.placement()?;
        let nodes = self.layout.resolve()?;
        // Nodes gaining or losing shards, until the change is over.
        let inexact: BTreeSet<&str> = self
            .change
            .iter()
            .flat_map(|c| &c.moves)
            .flat_map(|m| m.to.iter().chain(&m.from))
            .map(String::as_str)
            .collect();
        let Some(change) = self.change.as_ref().filter(|c| c.phase != Phase::Cleaning) else {
            let ordered = order(&from, nodes)?;
            return Ok(Placements::new(
                (from.clone(), from.clone()),
                from,
                ordered,
                &BTreeSet::new(),
                &inexact,
            ));
        };
        let to = change.to.placement()?;
        // A node in both layouts is reached at its new address (it may have moved machines).
        let mut joined = change.to.resolve()?;
        joined.extend(
            nodes
                .into_iter()
                .filter(|o| !change.to.nodes.iter().any(|n| n.id == o.id.as_str())),
        );
        let nodes = joined;
        let (moving, cut) = (change.moving(), change.cut_over());
        let slot = |g: GroupId, s: ShardId| (g.0, s.0);
        // While joining nodes prepare, nothing reads or writes them.
        let writes = Placement::blend(&from, &to, |g, s| match change.phase {
            Phase::Preparing => Side::From,
            _ if moving.contains(&slot(g, s)) => Side::Both,
            _ => Side::To,
        })
        .map_err(|e| e.to_string())?;
        let owners = Placement::blend(&from, &to, |g, s| match cut.contains(&slot(g, s)) {
            true => Side::To,
            false => Side::From,
        })
        .map_err(|e| e.to_string())?;
        // A node being rebuilt serves a shard only once its copy is cut over.
        let reads = owners.without(|g, s, id| {
            change.rebuilding.iter().any(|r| r == id.as_str()) && !cut.contains(&slot(g, s))
        });
        let ordered = order(&reads, nodes)?;
        // A new owner's writes for a shard still copying wait in its move log.
        // A node being rebuilt keeps its writes there from the start: it may not even have
        // the index yet.
        let logged: BTreeSet<(String, u32)> = change
            .moves
            .iter()
            .filter(|m| m.state == MoveState::Copying)
            .flat_map(|m| m.to.iter().map(move |n| (n, m.shard)))
            .filter(|(n, _)| change.phase == Phase::Moving || change.rebuilding.contains(n))
            .map(|(n, shard)| (n.clone(), shard))
            .collect();
        Ok(Placements::new(
            (reads, owners),
            writes,
            ordered,
            &logged,
            &inexact,
        ))
    }
}

/// `nodes` in `placement`'s numbering.
fn order(placement: &Placement, nodes: Vec<Node>) -> Result<Vec<Node>, String> {
    placement
        .nodes()
        .iter()
        .map(|id| {
            nodes
                .iter()
                .find(|n| &n.id == id)
                .cloned()
                .ok_or_else(|| format!("node {id} has no address"))
        })
        .collect()
}

/// The durable copy in the data directory.
pub struct TopologyFile {
    path: PathBuf,
}

impl TopologyFile {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded topology, or `None` on a first start.
    pub fn load(&self) -> Result<Option<Topology>, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }

    /// Saves `topology` atomically (see `durable::save_json`). Blocking: call it off the
    /// async workers.
    pub fn save(&self, topology: &Topology) -> Result<(), String> {
        super::durable::save_json(&self.path, topology)
    }
}
