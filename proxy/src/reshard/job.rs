//! One reshard carried through its phases (see `cluster::reshards::Phase`), resumable from
//! its record after a restart: a copy interrupted is simply made again (writes are idempotent
//! and the mirror log, durable, is replayed over it).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use serde_json::{json, Value};

use super::{copy, internal, set_phase};
use crate::cluster::reshards::{self, Phase, Progress, Reshard, Signal};
use crate::cluster::Runtime;
use crate::fleet::calls::Calls;
use crate::shared::Shared;
use crate::tasks;
use crate::telemetry::metrics;

/// Time between two looks at a reshard waiting for something (a node, the retention's end).
const TICK: Duration = Duration::from_millis(250);
/// Comparisons with writes flowing before the flip settles what still differs.
const COMPARISONS: usize = 2;
/// Looks again at what differed, with writes flowing, before the flip.
const RECHECKS: usize = 3;
/// Rounds of draining the nodes' backlog with writes flowing before they are held.
const DRAINS: usize = 8;
/// A drain this short means the backlog is small.
const QUICK_DRAIN: Duration = Duration::from_millis(300);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn internal_error(e: String) -> MiroirError {
    MiroirError::new(Code::Internal, e)
}

/// Runs `index`'s reshard until it ends. Errors are recorded and the step tried again.
pub async fn run(shared: Arc<Shared>, index: String) {
    let progress = shared.cluster.reshards.progress(&index);
    loop {
        let Some(r) = shared.cluster.reshards.get(&index) else {
            return;
        };
        match step(&shared, &r, &progress).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(TICK).await,
            Err(e) => {
                log::warn!(target: "miroir::reshard", "resharding `{index}` ({} to {} shards): {}", r.from, r.to, e.message);
                if let Ok(mut last) = progress.last_error.lock() {
                    *last = Some(e.message.clone());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Does the next thing `r` needs; `Ok(true)` when it moved on, `Ok(false)` when it waits.
async fn step(shared: &Shared, r: &Reshard, progress: &Progress) -> Result<bool, MiroirError> {
    let reshards = &shared.cluster.reshards;
    match (reshards.take_signal(&r.index), r.phase) {
        (Some(Signal::Cancel), _) => {
            drop_shadow(
                shared,
                r,
                (
                    "canceled",
                    Some("the index was deleted, renamed or swapped"),
                ),
            )
            .await?;
            return Ok(true);
        }
        (Some(Signal::Restart), Phase::Copying | Phase::Verifying) => {
            restart(shared, r).await?;
            progress.restarts.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        (Some(Signal::Restart), Phase::Flipped) => {
            reshards
                .update(&r.index, |r| r.rollback_unsafe = true)
                .await
                .map_err(internal_error)?;
        }
        _ => {}
    }
    match r.phase {
        Phase::Copying => {
            let rt = shared.cluster.runtime();
            let pk = prepare_shadow(shared, &rt, r).await?;
            copy::backfill(shared, &rt, r, &pk, progress).await?;
            copy::wait_idle(shared, &rt, &[&r.shadow]).await?;
            set_phase(shared, &r.index, Phase::Verifying).await?;
            Ok(true)
        }
        Phase::Verifying => {
            verify_and_flip(shared, r, progress).await?;
            Ok(true)
        }
        Phase::Flipped => {
            // The old layout follows every write, for a rollback.
            let sent = copy::replay(shared, &r.index, false, progress).await?;
            if r.keep_until_ms.is_some_and(|t| now_ms() >= t) {
                set_phase(shared, &r.index, Phase::Finishing).await?;
                return Ok(true);
            }
            Ok(sent > 0)
        }
        Phase::Finishing => {
            drop_shadow(shared, r, ("finished", None)).await?;
            Ok(true)
        }
        Phase::RollingBack if r.flipped_at.is_some() => {
            flip(shared, r, progress, &[]).await?;
            Ok(true)
        }
        Phase::RollingBack => {
            let why = Some("rolled back by an operator");
            drop_shadow(shared, r, ("rolledBack", why)).await?;
            Ok(true)
        }
    }
}

/// The index's primary key, and the shadow created with it and the index's settings (as a
/// client reads them; Miroir adds its own as for any index).
async fn prepare_shadow(shared: &Shared, rt: &Runtime, r: &Reshard) -> Result<String, MiroirError> {
    let calls = Calls {
        cluster: &shared.cluster,
        rt,
    };
    let node = rt
        .nodes
        .iter()
        .find(|n| shared.cluster.is_healthy(&n.id))
        .ok_or_else(|| MiroirError::new(Code::NoNodeAvailable, "No Meilisearch node is up."))?;
    let info = calls
        .get(node, &format!("/indexes/{}", r.index))
        .await
        .map_err(copy::failed)?
        .ok_or_else(|| {
            MiroirError::new(
                Code::InvalidReshard,
                format!("Index `{}` not found.", r.index),
            )
        })?;
    let pk = info["primaryKey"].as_str().unwrap_or("id").to_owned();
    let exists = calls
        .get(node, &format!("/indexes/{}", r.shadow))
        .await
        .map_err(copy::failed)?
        .is_some();
    if !exists {
        let body = json!({ "uid": r.shadow, "primaryKey": pk });
        gated(shared, ("POST", "/indexes"), body).await?;
    }
    let path = format!("/indexes/{}/settings", r.index);
    let settings = internal::request(shared, rt, ("GET", &path), None, Bytes::new()).await?;
    if settings.status != 200 {
        return Err(MiroirError::new(
            Code::Internal,
            format!(
                "reading the settings of `{}` answered {}",
                r.index, settings.status
            ),
        ));
    }
    let settings: Value = serde_json::from_slice(&settings.bytes())
        .map_err(|e| MiroirError::new(Code::Internal, e.to_string()))?;
    let path = format!("/indexes/{}/settings", r.shadow);
    gated(shared, ("PATCH", &path), patchable(settings)).await?;
    copy::wait_idle(shared, rt, &[&r.shadow]).await?;
    Ok(pk)
}

/// Settings as read, as a `PATCH` takes them: features not enabled on the nodes answer null
/// when read and are refused when written.
fn patchable(mut settings: Value) -> Value {
    if let Value::Object(o) = &mut settings {
        o.retain(|_, v| !v.is_null());
    }
    settings
}

/// A change to the shadow with writes flowing; 202 expected.
async fn gated(
    shared: &Shared,
    (method, path): (&str, &str),
    body: Value,
) -> Result<(), MiroirError> {
    let body = Bytes::from(body.to_string());
    let json = Some("application/json");
    let reply = internal::with_writes_flowing(shared, (method, path), json, body).await?;
    internal::accepted(&reply, &format!("{method} {path}"))
}

/// The copy starts over: with writes held, the mirror log is emptied and the shadow's
/// documents cleared (both then begin again from what the index holds now).
async fn restart(shared: &Shared, r: &Reshard) -> Result<(), MiroirError> {
    let _gate = shared.cluster.write_gate.write().await;
    let rt = shared.cluster.runtime();
    clear_log(shared, &r.index)?;
    let path = format!("/indexes/{}/documents", r.shadow);
    internal::request(shared, &rt, ("DELETE", &path), None, Bytes::new()).await?;
    shared
        .cluster
        .reshards
        .update(&r.index, |r| r.phase = Phase::Copying)
        .await
        .map_err(internal_error)
}

fn clear_log(shared: &Shared, index: &str) -> Result<(), MiroirError> {
    let key = reshards::log_key(index);
    let hints = &shared.cluster.hints;
    while let Some((seq, _)) = hints
        .first(&key)
        .map_err(|e| MiroirError::new(Code::Internal, format!("reshard log: {e}")))?
    {
        let _ = hints.remove(&key, seq);
    }
    Ok(())
}

/// Compares the layouts with writes flowing (the log replayed first), then flips, settling
/// what still differed with writes held.
async fn verify_and_flip(
    shared: &Shared,
    r: &Reshard,
    progress: &Progress,
) -> Result<(), MiroirError> {
    let rt = shared.cluster.runtime();
    let pk = primary_key(shared, &rt, &r.index).await?;
    let mut suspects = Vec::new();
    for _ in 0..COMPARISONS {
        copy::replay(shared, &r.index, false, progress).await?;
        copy::wait_idle(shared, &rt, &[&r.index, &r.shadow]).await?;
        progress.verified.store(0, Ordering::Relaxed);
        let a = copy::digest(shared, &rt, (&r.index, r.from), &pk, progress).await?;
        let b = copy::digest(shared, &rt, (&r.shadow, r.to), &pk, progress).await?;
        suspects = copy::differences(&a, &b);
        if suspects.is_empty() {
            break;
        }
    }
    // Most differences are writes that were in flight while the layouts were read: looked at
    // again once both processed them, they are gone, and the flip holds writes only for what
    // is left.
    for _ in 0..RECHECKS {
        if suspects.is_empty() {
            break;
        }
        copy::replay(shared, &r.index, false, progress).await?;
        copy::wait_idle(shared, &rt, &[&r.index, &r.shadow]).await?;
        suspects = copy::still_different(shared, &rt, r, &pk, &suspects)
            .await?
            .0;
    }
    flip(shared, r, progress, &suspects).await
}

async fn primary_key(shared: &Shared, rt: &Runtime, index: &str) -> Result<String, MiroirError> {
    let calls = Calls {
        cluster: &shared.cluster,
        rt,
    };
    for node in rt.nodes.iter().filter(|n| shared.cluster.is_healthy(&n.id)) {
        if let Ok(Some(info)) = calls.get(node, &format!("/indexes/{index}")).await {
            return Ok(info["primaryKey"].as_str().unwrap_or("id").to_owned());
        }
    }
    Err(MiroirError::new(
        Code::NoNodeAvailable,
        format!("the primary key of `{index}` could not be read"),
    ))
}

/// Swaps the index and its shadow on every node, with writes held (the log drained, every
/// node idle, `suspects` settled) and, for the instant of the swap, reads held too: every
/// request sees one layout whole, the old before and the new after. Needs every node up, so
/// that none keeps a layout the others swapped.
async fn flip(
    shared: &Shared,
    r: &Reshard,
    progress: &Progress,
    suspects: &[String],
) -> Result<(), MiroirError> {
    let cluster = &shared.cluster;
    if let Some(down) = cluster
        .runtime()
        .nodes
        .iter()
        .find(|n| !cluster.is_healthy(&n.id))
    {
        return Err(MiroirError::new(
            Code::NoNodeAvailable,
            format!("waiting for node {} to be up before the swap", down.id),
        ));
    }
    // The nodes' backlog drained with writes flowing, until what arrives meanwhile is
    // processed quickly: writes are then held only for that.
    for _ in 0..DRAINS {
        let waited = std::time::Instant::now();
        copy::replay(shared, &r.index, false, progress).await?;
        let rt = cluster.runtime();
        copy::wait_idle(shared, &rt, &[&r.index, &r.shadow]).await?;
        if waited.elapsed() < QUICK_DRAIN {
            break;
        }
    }
    let _writes = cluster.write_gate.write().await;
    let held = std::time::Instant::now();
    let rt = cluster.runtime();
    copy::replay(shared, &r.index, true, progress).await?;
    copy::wait_idle(shared, &rt, &[&r.index, &r.shadow]).await?;
    if r.phase == Phase::Verifying {
        let pk = primary_key(shared, &rt, &r.index).await?;
        let fixed = copy::repair(shared, &rt, r, &pk, suspects).await?;
        progress.repaired.fetch_add(fixed as u64, Ordering::Relaxed);
    }
    log::info!(target: "miroir::reshard", "`{}`: writes held {} ms before the swap ({} differences settled)", r.index, held.elapsed().as_millis(), suspects.len());
    // The shard counts change as the swap is accepted, durably: counts already swapped mean a
    // Miroir stopped between the swap and its record, and only the record is left to write.
    let target = if r.phase == Phase::Verifying {
        r.to
    } else {
        r.from
    };
    if cluster.shard_counts.of(&r.index) != target {
        swap(shared, &rt, r, held).await?;
    }
    let (keep, at) = (
        rt.config.topology.reshard_keep.as_millis() as u64,
        tasks::now_rfc3339(),
    );
    let forward = r.phase == Phase::Verifying;
    cluster
        .reshards
        .update(&r.index, |r| {
            if forward {
                r.phase = Phase::Flipped;
                r.flipped_at = Some(at);
                r.keep_until_ms = Some(now_ms() + keep);
            } else {
                // Back on the old layout: what is left is dropping the shadow.
                r.flipped_at = None;
            }
        })
        .await
        .map_err(internal_error)
}

/// The swap itself, with reads held until every node processed it.
async fn swap(
    shared: &Shared,
    rt: &Runtime,
    r: &Reshard,
    held: std::time::Instant,
) -> Result<(), MiroirError> {
    let cluster = &shared.cluster;
    let _reads = cluster.read_gate.write().await;
    let swapping = std::time::Instant::now();
    let body = json!([{ "indexes": [r.index, r.shadow] }]);
    let reply = internal::request(
        shared,
        rt,
        ("POST", "/swap-indexes"),
        Some("application/json"),
        Bytes::from(body.to_string()),
    )
    .await?;
    internal::accepted(&reply, &format!("swapping `{}` with its shadow", r.index))?;
    let calls = Calls { cluster, rt };
    let swapped = rt.nodes.iter().map(|node| calls.wait_idle(node));
    futures::future::try_join_all(swapped)
        .await
        .map_err(copy::failed)?;
    let (writes, reads) = (held.elapsed().as_millis(), swapping.elapsed().as_millis());
    log::info!(target: "miroir::reshard", "`{}` and its shadow swapped; writes held {writes} ms, reads {reads} ms", r.index);
    let m = metrics::get();
    m.reshard_flip_writes_held_ms.set(writes as i64);
    m.reshard_flip_reads_held_ms.set(reads as i64);
    // Every index's cached settings may have changed places.
    cluster.indexes.forget_all();
    forget_task(shared, &reply).await;
    Ok(())
}

/// The swap is Miroir's own: its task is not a client's to see.
async fn forget_task(shared: &Shared, reply: &crate::request::Reply) {
    let uid = serde_json::from_slice::<Value>(&reply.bytes())
        .ok()
        .and_then(|v| v["taskUid"].as_u64());
    if let Some(uid) = uid {
        let store = shared.tasks.clone();
        let gone =
            tokio::task::spawn_blocking(move || store.delete(&[miroir_tasks::TaskUid(uid)])).await;
        if !matches!(gone, Ok(Ok(_))) {
            log::warn!(target: "miroir::reshard", "the swap's task {uid} stays listed");
        }
    }
}

/// Ends the reshard and deletes the shadow (whichever layout it holds then), with writes held
/// so that none is mirrored after the record ends.
async fn drop_shadow(
    shared: &Shared,
    r: &Reshard,
    (outcome, reason): (&str, Option<&str>),
) -> Result<(), MiroirError> {
    let _gate = shared.cluster.write_gate.write().await;
    let rt = shared.cluster.runtime();
    shared
        .cluster
        .reshards
        .end(
            &r.index,
            (outcome, tasks::now_rfc3339()),
            reason.map(str::to_owned),
        )
        .await
        .map_err(internal_error)?;
    clear_log(shared, &r.index)?;
    let path = format!("/indexes/{}", r.shadow);
    let reply = internal::request(shared, &rt, ("DELETE", &path), None, Bytes::new()).await?;
    if reply.status != 202 && reply.status != 404 {
        log::warn!(target: "miroir::reshard", "deleting `{}` answered {}", r.shadow, reply.status);
    }
    log::info!(target: "miroir::reshard", "resharding `{}` from {} to {} shards: {outcome}", r.index, r.from, r.to);
    Ok(())
}
