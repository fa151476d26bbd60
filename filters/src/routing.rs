//! Routing arithmetic: which shard a document key belongs to and which nodes hold each shard.
//!
//! Everything here is a pure function of (shard count, replication factor, node ids per group).
//! [`Placement`] precomputes the whole assignment once per topology so the request path only
//! indexes into slices; health, load and I/O stay with the caller.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use xxhash_rust::xxh64::Xxh64;

/// Rust's `str::hash` appends this byte; the seed design hashed through `Hash`, so the byte
/// stream keeps it for compatibility with its fixtures.
const STR_TERMINATOR: u8 = 0xFF;

/// A logical shard, `0..S`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

/// The shards one node is asked to answer for. When they are every shard the node holds, its
/// whole index is the answer and no `_miroir_shard` clause is needed (nor the node's work of
/// evaluating it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeScope<'a> {
    pub shards: &'a [ShardId],
    pub whole_node: bool,
}

impl<'a> NodeScope<'a> {
    /// Only `shards` of what the node holds.
    pub fn shards(shards: &'a [ShardId]) -> Self {
        Self {
            shards,
            whole_node: false,
        }
    }

    /// The shards a clause must restrict the node to; `None` for its whole index.
    pub fn filter(&self) -> Option<&'a [ShardId]> {
        (!self.whole_node).then_some(self.shards)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A replica group, `0..RG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A node's stable identity. It feeds the placement hash, so renaming a node moves its shards.
///
/// Validated: 1 to [`NodeId::MAX_LEN`] bytes of ASCII letters, digits, `-`, `_` and `.`, so it is
/// safe in metric labels, headers and log lines. Cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

/// Why a string is not a valid [`NodeId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeIdError {
    Empty,
    TooLong,
    InvalidChar(char),
}

impl fmt::Display for NodeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("node id must not be empty"),
            Self::TooLong => write!(f, "node id must be at most {} bytes", NodeId::MAX_LEN),
            Self::InvalidChar(c) => write!(
                f,
                "node id may only contain ASCII letters, digits, '-', '_' and '.', found {c:?}"
            ),
        }
    }
}

impl std::error::Error for NodeIdError {}

impl NodeId {
    pub const MAX_LEN: usize = 128;

    pub fn new(id: &str) -> Result<Self, NodeIdError> {
        if id.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(NodeIdError::TooLong);
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(NodeIdError::InvalidChar(c));
        }
        Ok(Self(Arc::from(id)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The hash input for a primary-key value: strings as they are, integers as their decimal
/// string, so `{"id": 42}` and `DELETE /documents/42` land on the same shard. Meilisearch
/// accepts no other JSON type as a document id.
pub fn canonical_key(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// `XXH64(seed 0, utf8(key) ‖ 0xFF) mod shards`.
///
/// # Panics
/// Never for a validated topology; `shards == 0` is a division by zero, which [`Placement`]
/// and the config rule out before any key is routed.
pub fn shard_for_key(key: &str, shards: u32) -> ShardId {
    let mut hasher = Xxh64::new(0);
    hasher.update(key.as_bytes());
    hasher.update(&[STR_TERMINATOR]);
    // The remainder is < shards, so it fits in u32.
    ShardId((hasher.digest() % u64::from(shards)) as u32)
}

/// Rendezvous score of `node_id` for `shard`: `XXH64(seed 0, u32_le(shard) ‖ utf8(node_id) ‖ 0xFF)`.
pub fn hrw_score(shard: ShardId, node_id: &str) -> u64 {
    let mut hasher = Xxh64::new(0);
    hasher.update(&shard.0.to_le_bytes());
    hasher.update(node_id.as_bytes());
    hasher.update(&[STR_TERMINATOR]);
    hasher.digest()
}

/// Position of a node in [`Placement::nodes`]. Only meaningful for the placement that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIdx(u32);

impl NodeIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why a topology cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementError {
    ZeroShards,
    ZeroReplicationFactor,
    NoGroups,
    EmptyGroup(GroupId),
    /// A group has fewer nodes than the replication factor.
    GroupTooSmall {
        group: GroupId,
        nodes: usize,
        replication_factor: u32,
    },
    DuplicateNode(NodeId),
    /// Two placements a change cannot blend.
    Incompatible(String),
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroShards => f.write_str("the shard count must be greater than 0"),
            Self::ZeroReplicationFactor => {
                f.write_str("the replication factor must be greater than 0")
            }
            Self::NoGroups => f.write_str("there must be at least one replica group"),
            Self::EmptyGroup(g) => write!(f, "replica group {g} has no nodes"),
            Self::GroupTooSmall {
                group,
                nodes,
                replication_factor,
            } => write!(
                f,
                "replica group {group} has {nodes} node(s), fewer than the replication factor {replication_factor}"
            ),
            Self::DuplicateNode(id) => write!(f, "node id {id:?} appears more than once"),
            Self::Incompatible(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for PlacementError {}

/// The full shard-to-node assignment of one topology, computed once.
///
/// Nodes are numbered group by group and, within a group, by id ascending, so the numbering and
/// the assignment depend only on the set of ids, never on the order they were listed in.
#[derive(Clone, PartialEq, Eq)]
pub struct Placement {
    shards: u32,
    replication_factor: u32,
    nodes: Vec<NodeId>,
    node_group: Vec<GroupId>,
    /// `group_start[g]..group_start[g + 1]` are the node indexes of group `g`.
    group_start: Vec<u32>,
    /// The replicas of shard `s` in group `g` are
    /// `replicas[slot_start[g * S + s]..slot_start[g * S + s + 1]]`, highest score first. A
    /// placement computed from one topology has RF per slot; one blended across a topology
    /// change (see [`Placement::blend`]) may have more, or fewer.
    slot_start: Vec<u32>,
    replicas: Vec<NodeIdx>,
    /// Shards each node holds, ascending, indexed by node.
    owned: Vec<Vec<ShardId>>,
}

/// Which side of a topology change a (group, shard) slot follows in [`Placement::blend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The old owners only.
    From,
    /// The new owners only.
    To,
    /// Old and new owners: writes during a move reach both.
    Both,
}

/// A (group, shard) whose owner set differs between two placements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerChange {
    pub group: GroupId,
    pub shard: ShardId,
    /// Owners only in the new placement: each needs a copy of the shard.
    pub gained: Vec<NodeId>,
    /// Owners only in the old placement: each drops the shard once the change is done.
    pub lost: Vec<NodeId>,
    /// Owners in both: the copy sources that hold the whole shard.
    pub kept: Vec<NodeId>,
}

/// The slots whose owners differ between `from` and `to` (same shard and group counts),
/// group by group, shard by shard. HRW keeps every other slot where it is, so these are the
/// only copies a change needs.
pub fn owner_changes(from: &Placement, to: &Placement) -> Vec<OwnerChange> {
    let mut changes = Vec::new();
    for g in 0..from.groups().max(to.groups()) {
        let group = GroupId(g);
        for s in 0..from.shards.min(to.shards) {
            let shard = ShardId(s);
            let old: Vec<&NodeId> = from
                .replicas_in(group, shard)
                .iter()
                .map(|&i| from.node(i))
                .collect();
            let new: Vec<&NodeId> = to
                .replicas_in(group, shard)
                .iter()
                .map(|&i| to.node(i))
                .collect();
            let gained: Vec<NodeId> = new
                .iter()
                .filter(|n| !old.contains(n))
                .map(|n| (*n).clone())
                .collect();
            let lost: Vec<NodeId> = old
                .iter()
                .filter(|n| !new.contains(n))
                .map(|n| (*n).clone())
                .collect();
            if gained.is_empty() && lost.is_empty() {
                continue;
            }
            let kept = old
                .iter()
                .filter(|n| new.contains(n))
                .map(|n| (*n).clone())
                .collect();
            changes.push(OwnerChange {
                group,
                shard,
                gained,
                lost,
                kept,
            });
        }
    }
    changes
}

/// The answer of [`Placement::covering_set`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Covering {
    /// One entry per chosen node, ascending by node index, each with its shards ascending.
    pub by_node: Vec<(NodeIdx, Vec<ShardId>)>,
    /// Shards for which the caller chose no replica, ascending.
    pub uncovered: Vec<ShardId>,
}

impl Placement {
    /// `groups[g]` lists the node ids of replica group `g`.
    pub fn new(
        shards: u32,
        replication_factor: u32,
        groups: Vec<Vec<NodeId>>,
    ) -> Result<Self, PlacementError> {
        if shards == 0 {
            return Err(PlacementError::ZeroShards);
        }
        if replication_factor == 0 {
            return Err(PlacementError::ZeroReplicationFactor);
        }
        if groups.is_empty() {
            return Err(PlacementError::NoGroups);
        }
        let mut nodes = Vec::new();
        let mut node_group = Vec::new();
        let mut group_start = vec![0];
        for (g, mut members) in groups.into_iter().enumerate() {
            let group = GroupId(g as u32);
            if members.is_empty() {
                return Err(PlacementError::EmptyGroup(group));
            }
            if members.len() < replication_factor as usize {
                return Err(PlacementError::GroupTooSmall {
                    group,
                    nodes: members.len(),
                    replication_factor,
                });
            }
            members.sort();
            node_group.extend(std::iter::repeat_n(group, members.len()));
            nodes.append(&mut members);
            group_start.push(nodes.len() as u32);
        }
        let mut sorted: Vec<&NodeId> = nodes.iter().collect();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(PlacementError::DuplicateNode(pair[0].clone()));
        }

        let rf = replication_factor as usize;
        let group_count = group_start.len() - 1;
        let mut replicas = Vec::with_capacity(group_count * shards as usize * rf);
        let mut slot_start = Vec::with_capacity(group_count * shards as usize + 1);
        slot_start.push(0);
        let mut owned = vec![Vec::new(); nodes.len()];
        let mut ranked: Vec<(u64, NodeIdx)> = Vec::new();
        for g in 0..group_count {
            let members = group_start[g]..group_start[g + 1];
            for s in 0..shards {
                let shard = ShardId(s);
                ranked.clear();
                ranked.extend(
                    members
                        .clone()
                        .map(|i| (hrw_score(shard, nodes[i as usize].as_str()), NodeIdx(i))),
                );
                // Score descending; node indexes follow id order within a group, so ascending
                // index is the id tie-break.
                ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                for &(_, idx) in &ranked[..rf] {
                    replicas.push(idx);
                    owned[idx.index()].push(shard);
                }
                slot_start.push(replicas.len() as u32);
            }
        }
        Ok(Self {
            shards,
            replication_factor,
            nodes,
            node_group,
            group_start,
            slot_start,
            replicas,
            owned,
        })
    }

    /// One placement for the duration of a topology change from `from` to `to`: each
    /// (group, shard) slot takes its replicas from the side `side` names, both sides' replicas
    /// for [`Side::Both`] (old owners first). Nodes are the union of both, numbered like
    /// [`Placement::new`] numbers them, so two blends of the same pair share node indexes.
    /// The replication factor stays `from`'s: the quorum of a write is judged by it.
    pub fn blend(
        from: &Placement,
        to: &Placement,
        side: impl Fn(GroupId, ShardId) -> Side,
    ) -> Result<Placement, PlacementError> {
        if from.shards != to.shards {
            return Err(PlacementError::Incompatible(format!(
                "the shard count changes from {} to {}",
                from.shards, to.shards
            )));
        }
        // A group only one side has (added or removed) has no replicas on the other.
        let groups = from.groups().max(to.groups());
        let mut nodes = Vec::new();
        let mut node_group = Vec::new();
        let mut group_start = vec![0];
        for g in 0..groups {
            let group = GroupId(g);
            let mut members: Vec<NodeId> = Vec::new();
            members.extend(from.group_members(group).map(|i| from.node(i).clone()));
            members.extend(to.group_members(group).map(|i| to.node(i).clone()));
            members.sort();
            members.dedup();
            node_group.extend(std::iter::repeat_n(group, members.len()));
            nodes.append(&mut members);
            group_start.push(nodes.len() as u32);
        }
        let index_in = |id: &NodeId| {
            nodes
                .iter()
                .position(|n| n == id)
                .map(|i| NodeIdx(i as u32))
        };
        for (i, id) in nodes.iter().enumerate() {
            let in_from = from.index_of(id.as_str()).map(|n| from.group_of(n));
            let in_to = to.index_of(id.as_str()).map(|n| to.group_of(n));
            if let (Some(a), Some(b)) = (in_from, in_to) {
                if a != b {
                    return Err(PlacementError::Incompatible(format!(
                        "node {id:?} moves from replica group {a} to {b}"
                    )));
                }
            }
            debug_assert_eq!(index_in(id), Some(NodeIdx(i as u32)));
        }
        let mut slot_start = vec![0];
        let mut replicas = Vec::new();
        let mut owned = vec![Vec::new(); nodes.len()];
        for g in 0..groups {
            let group = GroupId(g);
            for s in 0..from.shards {
                let shard = ShardId(s);
                let start = replicas.len();
                let sides: &[&Placement] = match side(group, shard) {
                    Side::From => &[from],
                    Side::To => &[to],
                    Side::Both => &[from, to],
                };
                for p in sides {
                    for &r in p.replicas_in(group, shard) {
                        let idx = index_in(p.node(r)).expect("every node of both sides is listed");
                        if !replicas[start..].contains(&idx) {
                            replicas.push(idx);
                            owned[idx.index()].push(shard);
                        }
                    }
                }
                slot_start.push(replicas.len() as u32);
            }
        }
        Ok(Self {
            shards: from.shards,
            replication_factor: from.replication_factor,
            nodes,
            node_group,
            group_start,
            slot_start,
            replicas,
            owned,
        })
    }

    /// The same placement with the nodes `drop` names taken out of each slot (a node being
    /// rebuilt, which must not serve the shard until its copy is complete). Node numbering is
    /// unchanged; a slot may end up empty.
    pub fn without(&self, drop: impl Fn(GroupId, ShardId, &NodeId) -> bool) -> Placement {
        let mut slot_start = vec![0];
        let mut replicas = Vec::with_capacity(self.replicas.len());
        let mut owned = vec![Vec::new(); self.nodes.len()];
        for g in 0..self.groups() {
            for s in 0..self.shards {
                let (group, shard) = (GroupId(g), ShardId(s));
                for &r in self.replicas(group, shard) {
                    if !drop(group, shard, &self.nodes[r.index()]) {
                        replicas.push(r);
                        owned[r.index()].push(shard);
                    }
                }
                slot_start.push(replicas.len() as u32);
            }
        }
        Placement {
            slot_start,
            replicas,
            owned,
            ..self.clone()
        }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    pub fn replication_factor(&self) -> u32 {
        self.replication_factor
    }

    pub fn groups(&self) -> u32 {
        (self.group_start.len() - 1) as u32
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// # Panics
    /// If `idx` was issued by another placement with more nodes.
    pub fn node(&self, idx: NodeIdx) -> &NodeId {
        &self.nodes[idx.index()]
    }

    pub fn group_of(&self, idx: NodeIdx) -> GroupId {
        self.node_group[idx.index()]
    }

    /// The index of the node with this id, if it is part of the topology.
    pub fn index_of(&self, id: &str) -> Option<NodeIdx> {
        self.nodes
            .iter()
            .position(|n| n.as_str() == id)
            .map(|i| NodeIdx(i as u32))
    }

    /// Node indexes of a group, ascending by id; empty for a group outside `0..groups()`.
    pub fn group_members(&self, group: GroupId) -> impl ExactSizeIterator<Item = NodeIdx> {
        let g = group.0 as usize;
        let range = match (self.group_start.get(g), self.group_start.get(g + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        };
        range.map(NodeIdx)
    }

    /// The replicas of `shard` in `group` (RF of them outside a topology change), highest
    /// score first.
    ///
    /// # Panics
    /// If `group` or `shard` is out of range.
    pub fn replicas(&self, group: GroupId, shard: ShardId) -> &[NodeIdx] {
        assert!(shard.0 < self.shards, "shard {shard} out of range");
        let slot = group.0 as usize * self.shards as usize + shard.0 as usize;
        let (start, end) = (self.slot_start[slot], self.slot_start[slot + 1]);
        &self.replicas[start as usize..end as usize]
    }

    /// Like [`Placement::replicas`], empty for a group this placement does not have.
    pub fn replicas_in(&self, group: GroupId, shard: ShardId) -> &[NodeIdx] {
        match group.0 < self.groups() {
            true => self.replicas(group, shard),
            false => &[],
        }
    }

    /// Whether every shard has a replica in `group`: the group can answer a search alone.
    pub fn covers(&self, group: GroupId) -> bool {
        group.0 < self.groups()
            && (0..self.shards).all(|s| !self.replicas(group, ShardId(s)).is_empty())
    }

    /// Every node that must receive a write to `shard`: its replicas in every group, group by
    /// group. Groups are disjoint, so the entries are distinct.
    pub fn write_targets(&self, shard: ShardId) -> impl Iterator<Item = NodeIdx> + '_ {
        (0..self.groups()).flat_map(move |g| self.replicas(GroupId(g), shard).iter().copied())
    }

    /// The shards `node` holds in its own group, ascending.
    pub fn shards_of(&self, node: NodeIdx) -> &[ShardId] {
        &self.owned[node.index()]
    }

    /// Picks one replica per shard of `group` with `choose` (the caller's health and latency
    /// policy) and groups the shards by the chosen node. A choice outside the shard's replicas
    /// would read a shard from a node that does not hold it, so it counts as no choice.
    pub fn covering_set(
        &self,
        group: GroupId,
        mut choose: impl FnMut(ShardId, &[NodeIdx]) -> Option<NodeIdx>,
    ) -> Covering {
        let mut slot_of_node: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let mut covering = Covering::default();
        for s in 0..self.shards {
            let shard = ShardId(s);
            let replicas = self.replicas(group, shard);
            match choose(shard, replicas).filter(|c| replicas.contains(c)) {
                Some(node) => match slot_of_node[node.index()] {
                    Some(slot) => covering.by_node[slot].1.push(shard),
                    None => {
                        slot_of_node[node.index()] = Some(covering.by_node.len());
                        covering.by_node.push((node, vec![shard]));
                    }
                },
                None => covering.uncovered.push(shard),
            }
        }
        covering.by_node.sort_unstable_by_key(|(node, _)| *node);
        covering
    }
}

impl fmt::Debug for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Placement")
            .field("shards", &self.shards)
            .field("replication_factor", &self.replication_factor)
            .field("groups", &self.groups())
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}
