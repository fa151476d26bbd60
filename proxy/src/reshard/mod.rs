//! Online resharding: an index's shard count S changed while clients read and write it. A
//! hidden shadow index with the new S and the same settings is filled from the index
//! (`copy::backfill`) while every write is mirrored to it in order (`cluster::reshards`), the
//! two layouts are compared by id and content (`copy::digest`), and with writes held for the
//! instant of the swap they trade places on the nodes (`job::flip`). The old layout stays,
//! kept up to date, for `topology.reshard_keep_secs`, so a rollback loses nothing; then it is
//! deleted. Operated through `/_miroir/reshards` and `miroir ctl reshard`.

mod copy;
mod internal;
mod job;

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use miroir_filters::error::{Code, MiroirError};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::{json, Value};

use crate::cluster::reshards::{self, Phase, Reshard};
use crate::fleet::calls::Calls;
use crate::shared::Shared;
use crate::tasks;

/// Largest S Miroir accepts for one index.
const MAX_SHARDS: u32 = 1024;

/// `POST /_miroir/reshards` `{"index": "...", "shards": N}`: starts changing the index's S.
pub async fn start(shared: &Shared, body: &Value) -> Result<Value, MiroirError> {
    let invalid = |m: String| MiroirError::new(Code::InvalidReshard, m);
    let index = body["index"]
        .as_str()
        .ok_or_else(|| invalid("`index` must be the uid of an index.".into()))?
        .to_owned();
    let to = body["shards"]
        .as_u64()
        .filter(|s| (1..=u64::from(MAX_SHARDS)).contains(s))
        .ok_or_else(|| {
            invalid(format!(
                "`shards` must be a whole number from 1 to {MAX_SHARDS}."
            ))
        })? as u32;
    let cluster = &shared.cluster;
    if reshards::is_internal(&index) || shared.aliases.load().get(&index).is_some() {
        return Err(invalid(format!(
            "`{index}` is not an index Miroir can reshard."
        )));
    }
    let shadow = reshards::shadow_of(&index);
    if shadow.len() > reshards::MAX_UID_BYTES {
        return Err(invalid(format!(
            "`{index}` is too long to reshard: its shadow index would pass Meilisearch's {} bytes.",
            reshards::MAX_UID_BYTES
        )));
    }
    if cluster.reshards.get(&index).is_some() {
        return Err(MiroirError::new(
            Code::ReshardInProgress,
            format!("`{index}` is already being resharded (`miroir ctl reshard status`)."),
        ));
    }
    if cluster.topology().change.is_some() {
        return Err(MiroirError::new(
            Code::TopologyChangeInProgress,
            "A topology change is in progress; reshard once it finished (`miroir ctl watch`).",
        ));
    }
    if matches!(
        cluster.runtime().config.task_store,
        miroir_conf::TaskStore::Redis { .. }
    ) {
        return Err(invalid(
            "Resharding needs every write to pass through this Miroir; with \
             `task_store.backend = \"redis\"` other Miroirs write the index too."
                .into(),
        ));
    }
    let from = cluster.shard_counts.of(&index);
    if from == to {
        return Err(invalid(format!("`{index}` already has {to} shards.")));
    }
    let rt = cluster.runtime();
    let calls = Calls { cluster, rt: &rt };
    let node = rt
        .nodes
        .iter()
        .find(|n| cluster.is_healthy(&n.id))
        .ok_or_else(|| MiroirError::new(Code::NoNodeAvailable, "No Meilisearch node is up."))?;
    if calls
        .get(node, &format!("/indexes/{index}"))
        .await
        .map_err(copy::failed)?
        .is_none()
    {
        return Err(MiroirError::new(
            Code::InvalidReshard,
            format!("Index `{index}` not found."),
        ));
    }
    crate::fleet::widen_to(cluster, to)
        .await
        .map_err(|e| MiroirError::new(Code::Internal, e))?;
    let reshard = Reshard {
        index: index.clone(),
        shadow: shadow.clone(),
        from,
        to,
        phase: Phase::Copying,
        started_at: tasks::now_rfc3339(),
        flipped_at: None,
        keep_until_ms: None,
        rollback_unsafe: false,
    };
    {
        // Alone at the gate: every write came before the mirror began, or is mirrored.
        let _gate = cluster.write_gate.write().await;
        if cluster.reshards.get(&index).is_some() {
            return Err(MiroirError::new(
                Code::ReshardInProgress,
                format!("`{index}` is already being resharded (`miroir ctl reshard status`)."),
            ));
        }
        cluster
            .shard_counts
            .reset(&shadow, to)
            .await
            .map_err(|e| MiroirError::new(Code::Internal, e))?;
        cluster
            .reshards
            .begin(reshard.clone())
            .await
            .map_err(|e| MiroirError::new(Code::Internal, e))?;
    }
    log::info!(target: "miroir::reshard", "resharding `{index}` from {from} to {to} shards");
    Ok(view(shared, &reshard))
}

fn view(shared: &Shared, r: &Reshard) -> Value {
    let mut v = json!({
        "index": r.index,
        "from": r.from,
        "to": r.to,
        "phase": r.phase,
        "startedAt": r.started_at,
        "flippedAt": r.flipped_at,
        "rollbackAvailable": !r.rollback_unsafe,
    });
    if let Some(until) = r.keep_until_ms {
        v["oldLayoutKeptUntilMs"] = json!(until);
    }
    v["progress"] = shared.cluster.reshards.progress(&r.index).json();
    v
}

/// `GET /_miroir/reshards`: the reshards running and the latest outcomes.
pub fn status(shared: &Shared) -> Value {
    let reshards = &shared.cluster.reshards;
    json!({
        "results": reshards.active().iter().map(|r| view(shared, r)).collect::<Vec<_>>(),
        "history": reshards.history(),
    })
}

fn running(shared: &Shared, index: &str) -> Result<Reshard, MiroirError> {
    shared.cluster.reshards.get(index).ok_or_else(|| {
        MiroirError::new(
            Code::ReshardNotFound,
            format!("`{index}` is not being resharded."),
        )
    })
}

/// `POST /_miroir/reshards/{index}/rollback`: back to the old layout (once flipped), or the
/// reshard stopped (before).
pub async fn rollback(shared: &Shared, index: &str) -> Result<Value, MiroirError> {
    let r = running(shared, index)?;
    let refuse = |m: &str| Err(MiroirError::new(Code::ReshardInProgress, m.to_owned()));
    match r.phase {
        Phase::Finishing => return refuse("The old layout is being deleted: it cannot come back."),
        Phase::RollingBack => return refuse("A rollback is already under way."),
        Phase::Flipped if r.rollback_unsafe => {
            return refuse(
                "A write could not be kept for the old layout after the flip: it is no longer \
                 exact, so it cannot come back. Finish the reshard instead.",
            )
        }
        _ => {}
    }
    set_phase(shared, index, Phase::RollingBack).await?;
    Ok(view(shared, &running(shared, index)?))
}

/// `POST /_miroir/reshards/{index}/finish`: drops the old layout now instead of at the end of
/// `topology.reshard_keep_secs`.
pub async fn finish(shared: &Shared, index: &str) -> Result<Value, MiroirError> {
    let r = running(shared, index)?;
    if r.phase != Phase::Flipped {
        return Err(MiroirError::new(
            Code::ReshardInProgress,
            format!("`{index}` is not flipped yet (phase {:?}).", r.phase),
        ));
    }
    set_phase(shared, index, Phase::Finishing).await?;
    Ok(view(shared, &running(shared, index)?))
}

pub(crate) async fn set_phase(
    shared: &Shared,
    index: &str,
    phase: Phase,
) -> Result<(), MiroirError> {
    shared
        .cluster
        .reshards
        .update(index, |r| r.phase = phase)
        .await
        .map_err(|e| MiroirError::new(Code::Internal, e))
}

/// Runs one job per reshard in the record, started again after a restart.
pub struct ReshardService {
    pub shared: Arc<Shared>,
    running: Arc<DashMap<String, ()>>,
}

impl ReshardService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            running: Arc::default(),
        }
    }
}

#[async_trait]
impl BackgroundService for ReshardService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let active = self.shared.cluster.reshards.active();
            crate::telemetry::metrics::get()
                .reshards_active
                .set(active.len() as i64);
            for r in active {
                if self.running.insert(r.index.clone(), ()).is_some() {
                    continue;
                }
                let (shared, running) = (self.shared.clone(), self.running.clone());
                tokio::spawn(async move {
                    job::run(shared, r.index.clone()).await;
                    running.remove(&r.index);
                });
            }
        }
    }
}
