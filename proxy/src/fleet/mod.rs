//! Changing the fleet online. An operator stages a new topology (the configuration file's
//! `nodes`, groups and `replication_factor`, or `drain`), looks at the `plan`, and `apply`s
//! it; the `service` then carries the change through its phases (see
//! `cluster::topology::Phase`): joining nodes receive every index and key (`prepare`), each
//! moving shard is copied, its move log replayed and the copy reconciled with its source
//! (`copy`), reads cut over shard by shard, and the old owners drop what they no longer own.
//! Writes never stop; every step is recorded in `topology.json` and resumes after a restart.

pub(crate) mod calls;
pub(crate) mod copy;
pub(crate) mod prepare;
mod service;

pub use service::ChangeService;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::ShardId;
use serde_json::{json, Value};

use crate::cluster::shared_topology::{self, CommitError};
use crate::cluster::topology::{self, Change, Layout, MoveState, Phase, Topology, TopologyFile};
use crate::cluster::{Cluster, Draft, Runtime};
use calls::Calls;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The layout `apply` would move to: the file's when it differs, else `None`.
fn staged(cluster: &Cluster, rt: &Runtime) -> Option<Layout> {
    topology::staged(&rt.config, &cluster.topology())
}

/// The layout without `node`, for `drain`.
fn without(layout: &Layout, node: &str) -> Result<Layout, MiroirError> {
    if !layout.nodes.iter().any(|n| n.id == node) {
        return Err(MiroirError::new(
            Code::InvalidTopologyChange,
            format!("Node `{node}` is not part of the applied topology."),
        ));
    }
    let mut to = layout.clone();
    to.version += 1;
    to.nodes.retain(|n| n.id != node);
    Ok(to)
}

/// The indexes that have a shard `shard` (each index has its own S).
fn with_shard<'i>(
    cluster: &'i Cluster,
    indexes: &'i [prepare::IndexInfo],
    shard: u32,
) -> impl Iterator<Item = &'i prepare::IndexInfo> + 'i {
    let counts = &cluster.shard_counts;
    indexes.iter().filter(move |i| shard < counts.of(&i.uid))
}

fn invalid(e: String) -> MiroirError {
    MiroirError::new(Code::InvalidTopologyChange, e)
}

/// What a change from the applied layout to `to` would do, without doing it: shards that
/// move, and per node the documents it would receive and drop (counted on the nodes).
async fn describe(cluster: &Cluster, rt: &Runtime, to: Layout) -> Result<Value, MiroirError> {
    let applied = cluster.topology();
    let change = Change::plan(&applied.layout, to, now_ms()).map_err(invalid)?;
    // A group emptied or smaller than RF is refused by the placement itself.
    let calls = Calls { cluster, rt };
    let mut per_shard: BTreeMap<u32, u64> = BTreeMap::new();
    if let Some(source) = rt.nodes.iter().find(|n| cluster.is_healthy(&n.id)) {
        if let Ok(indexes) = prepare::indexes(&calls, source).await {
            for m in &change.moves {
                if per_shard.contains_key(&m.shard) {
                    continue;
                }
                let mut total = 0;
                for index in with_shard(cluster, &indexes, m.shard) {
                    // Any holder of the shard counts it (they all hold it whole).
                    let holder = m.kept.first().or(m.from.first()).and_then(|id| rt.node(id));
                    if let Some(node) = holder {
                        total += copy::count(&calls, node, &index.uid, ShardId(m.shard))
                            .await
                            .unwrap_or(0);
                    }
                }
                per_shard.insert(m.shard, total);
            }
        }
    }
    let mut receive: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut drop: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for m in &change.moves {
        let docs = per_shard.get(&m.shard).copied().unwrap_or(0);
        for n in &m.to {
            let e = receive.entry(n).or_default();
            e.0 += 1;
            e.1 += docs;
        }
        for n in &m.from {
            let e = drop.entry(n).or_default();
            e.0 += 1;
            e.1 += docs;
        }
    }
    let per_node = |m: BTreeMap<&str, (u64, u64)>| -> Value {
        m.into_iter()
            .map(|(n, (shards, documents))| {
                (
                    n.to_owned(),
                    json!({"shards": shards, "documents": documents}),
                )
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    let documents: u64 = change
        .moves
        .iter()
        .map(|m| per_shard.get(&m.shard).copied().unwrap_or(0) * m.to.len() as u64)
        .sum();
    Ok(json!({
        "from": applied.layout,
        "to": change.to,
        "moves": change.moves,
        "shardMoves": change.moves.len(),
        "documentsToCopy": documents,
        "receive": per_node(receive),
        "drop": per_node(drop),
        "joining": change.joining().map(|n| n.id.clone()).collect::<Vec<_>>(),
        "rebuilding": change.rebuilding,
    }))
}

/// `POST /_miroir/topology/plan`: what `apply` would do now.
pub async fn plan(cluster: &Cluster, rt: &Runtime) -> Result<Value, MiroirError> {
    match staged(cluster, rt) {
        Some(to) => describe(cluster, rt, to).await,
        None => Ok(json!({ "shardMoves": 0, "staged": false })),
    }
}

/// Widens the placement to the configuration's `shards` when it is wider and no change is in
/// progress (see `topology::widened`): indexes created from then on get that S.
pub async fn widen(cluster: &Cluster) -> Result<(), String> {
    widen_to(cluster, cluster.runtime().config.shards).await
}

/// Widens the placement to `width` shards when it is narrower and no change is in progress
/// (an index resharded to more shards than any other needs the slots).
pub async fn widen_to(cluster: &Cluster, width: u32) -> Result<(), String> {
    let rt = cluster.runtime();
    let _mutating = cluster.change.mutate.lock().await;
    let draft = cluster.draft();
    let Some(wider) = topology::widened_to(width, &draft) else {
        return Ok(());
    };
    let width = wider.layout.shards;
    commit(cluster, &rt, draft.replace(wider))
        .await
        .map_err(|e| e.to_string())?;
    log::info!(target: "miroir::topology", "placement widened to {width} shards: new indexes get {width} shards");
    Ok(())
}

/// `POST /_miroir/topology/apply`: starts the staged change.
pub async fn apply(cluster: &Cluster, rt: &Runtime) -> Result<Value, MiroirError> {
    let Some(to) = staged(cluster, rt) else {
        return Err(MiroirError::new(
            Code::NoTopologyChange,
            "The configuration's topology is the applied one: there is nothing to apply.",
        ));
    };
    start(cluster, rt, |layout| Change::plan(layout, to, now_ms())).await
}

/// `POST /_miroir/nodes/{id}/drain`: moves every shard off `node` to the rest of its group;
/// once done the node holds nothing and is out of the topology (remove it from the file).
pub async fn drain(cluster: &Cluster, rt: &Runtime, node: &str) -> Result<Value, MiroirError> {
    let to = without(&cluster.topology().layout, node)?;
    start(cluster, rt, |layout| Change::plan(layout, to, now_ms())).await
}

/// `POST /_miroir/nodes/{id}/resync`: rebuilds `node` shard by shard from the other copies.
pub async fn resync(cluster: &Cluster, rt: &Runtime, node: &str) -> Result<Value, MiroirError> {
    let node = node.to_owned();
    start(cluster, rt, |layout| {
        Change::resync(layout, &node, now_ms())
    })
    .await
}

async fn start(
    cluster: &Cluster,
    rt: &Runtime,
    plan: impl FnOnce(&Layout) -> Result<Change, String>,
) -> Result<Value, MiroirError> {
    // With writes held, as every switch of where writes go: none is sent with the old
    // placement after the change began (its node tasks might be on a node being rebuilt).
    let _gate = cluster
        .hold_writes()
        .await
        .map_err(|e| MiroirError::new(Code::TopologyChangeInProgress, e))?;
    let _mutating = cluster.change.mutate.lock().await;
    let current = cluster.draft();
    if !cluster.reshards.is_empty() {
        return Err(MiroirError::new(
            Code::TopologyChangeInProgress,
            "An index is being resharded; change the fleet once it is flipped and finished \
             (`miroir ctl reshard status`).",
        ));
    }
    if current.change.is_some() {
        return Err(MiroirError::new(
            Code::TopologyChangeInProgress,
            "A topology change is already in progress; wait for it to finish (`miroir ctl watch`).",
        ));
    }
    let mut change = plan(&current.layout).map_err(invalid)?;
    let mut rebuilt = current.rebuilt.clone();
    for node in &change.rebuilding {
        rebuilt.insert(node.clone(), change.started_at_ms);
    }
    let next = if change.moves.is_empty() && change.to_prepare().next().is_none() {
        // Nothing moves (an address changed, a node with no shard left): applied at once.
        Topology {
            layout: change.to.clone(),
            change: None,
            rebuilt,
        }
    } else {
        if change.to_prepare().next().is_none() {
            change.phase = Phase::Moving;
        }
        Topology {
            layout: current.layout.clone(),
            change: Some(change),
            rebuilt,
        }
    };
    commit(cluster, rt, current.replace(next))
        .await
        .map_err(|e| match e {
            CommitError::Moved { .. } => MiroirError::new(
                Code::TopologyChangeInProgress,
                format!("The topology could not be changed: {e}; try again."),
            ),
            CommitError::Store(e) => MiroirError::new(Code::Internal, e),
        })?;
    cluster.change.clear();
    cluster.change.wake.notify_one();
    Ok(status(cluster))
}

/// Saves `next` in the data directory (and, when several Miroirs share a Redis, publishes
/// it as the shared record's next generation), then installs it: what requests use is never
/// ahead of what a restart would find. Refused when another Miroir committed since `next`
/// was drafted.
pub(crate) async fn commit(
    cluster: &Cluster,
    rt: &Runtime,
    next: Draft,
) -> Result<(), CommitError> {
    let dir = rt.config.data_dir.clone();
    let saved = next.topology.clone();
    let placements = tokio::task::spawn_blocking(move || {
        let placements = saved.placements()?;
        TopologyFile::new(&dir).save(&saved)?;
        Ok::<_, String>(placements)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(CommitError::Store)?;
    let generation = shared_topology::publish(cluster, &next).await?;
    cluster.install_topology((next.topology, placements), generation.unwrap_or(0));
    Ok(())
}

/// The change in progress, for `GET /_miroir/topology` and `miroir ctl status`.
pub fn status(cluster: &Cluster) -> Value {
    let topology = cluster.topology();
    let Some(change) = &topology.change else {
        return json!({ "layoutVersion": topology.layout.version, "change": null });
    };
    let moves: Vec<Value> = change
        .moves
        .iter()
        .flat_map(|m| {
            m.to.iter().map(move |node| {
                let progress = cluster
                    .change
                    .get(node, m.group, m.shard)
                    .map(|p| p.json())
                    .unwrap_or_else(|| json!({}));
                let state = match (change.phase, m.state) {
                    (Phase::Preparing, _) => "waiting",
                    (_, MoveState::Copying) => "copying",
                    (_, MoveState::Replayed) => "verifying",
                    (_, MoveState::CutOver) => "cutOver",
                };
                json!({
                    "group": m.group,
                    "shard": m.shard,
                    "to": node,
                    "from": m.from,
                    "state": state,
                    "progress": progress,
                })
            })
        })
        .collect();
    let done = change
        .moves
        .iter()
        .filter(|m| m.state == MoveState::CutOver)
        .count();
    json!({
        "layoutVersion": topology.layout.version,
        "change": {
            "toVersion": change.to.version,
            "phase": change.phase,
            "step": cluster.change.step(),
            "startedAtMs": change.started_at_ms,
            "rebuilding": change.rebuilding,
            "shardMoves": change.moves.len(),
            "shardMovesDone": done,
            "moves": moves,
        }
    })
}
