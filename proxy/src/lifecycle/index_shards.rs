//! Each index's shard count kept in step with index creation, deletion and swaps (see
//! `cluster::shard_counts`). A deletion or swap changes the counts only once a node applied
//! it, with the indexes' write order held from before it is sent: no write is split by a count
//! that does not match where the nodes will put it. (A deletion is sent under its index's
//! write order by `broadcast`, which calls [`deleted`] before releasing it.)

use std::future::Future;

use miroir_filters::error::{Code, MiroirError};
use serde_json::Value;

use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

/// Runs `send` (the broadcast of `inc`) with the shard counts it changes kept in step.
pub async fn around<F: Future<Output = Reply>>(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    send: F,
) -> Reply {
    match inc.route {
        "indexes.create" => {
            if let Err(e) = before_creation(shared, rt, inc).await {
                return Reply::error(&e);
            }
            send.await
        }
        "swap_indexes" => {
            let uids = touched(inc);
            let mut held = Vec::with_capacity(uids.len());
            // In uid order (`touched` sorts), so two swaps cannot wait on each other.
            for uid in &uids {
                held.push(shared.cluster.write_turn(uid).await);
            }
            let reply = send.await;
            if reply.status == 202 {
                if let Err(e) = after_acceptance(shared, rt, inc).await {
                    log::error!(target: "miroir::lifecycle", "{} accepted, but its shard counts were not recorded: {e}", inc.route);
                }
            }
            reply
        }
        _ => send.await,
    }
}

/// A new index gets the S new indexes get now, recorded before the nodes create it. An index
/// that already exists keeps its own (the creation fails on the nodes anyway).
async fn before_creation(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Result<(), MiroirError> {
    let Some(uid) = body(inc).and_then(|b| b["uid"].as_str().map(str::to_owned)) else {
        // The nodes refuse the body with Meilisearch's own error.
        return Ok(());
    };
    let counts = &shared.cluster.shard_counts;
    let shards = rt.new_index_shards();
    if counts.of(&uid) == shards {
        return Ok(());
    }
    let path = format!("/indexes/{uid}");
    match node_io::any(&shared.cluster, rt, &path, rt.node_key()).await {
        Ok(resp) if resp.status == 404 => {}
        // It exists (or cannot be told): its count stays.
        _ => return Ok(()),
    }
    counts
        .record_new(&uid, shards)
        .await
        .map(drop)
        .map_err(|e| {
            MiroirError::new(
                Code::Internal,
                format!("recording the index's shard count: {e}"),
            )
        })
}

async fn after_acceptance(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Result<(), String> {
    let counts = &shared.cluster.shard_counts;
    let shards = rt.new_index_shards();
    for (a, b, rename) in swaps(inc) {
        counts.swap(&a, &b, rename, shards).await?;
    }
    Ok(())
}

/// `index_uid`'s deletion reached a node: whatever index is created with its uid next gets
/// the S new indexes get now. Called with the index's write order held.
pub async fn deleted(shared: &Shared, rt: &Runtime, index_uid: &str) {
    let counts = &shared.cluster.shard_counts;
    if let Err(e) = counts.reset(index_uid, rt.new_index_shards()).await {
        log::error!(target: "miroir::lifecycle", "index {index_uid} deleted, but its shard count was not reset: {e}");
    }
}

fn body(inc: &Incoming) -> Option<Value> {
    serde_json::from_slice(&inc.body).ok()
}

/// The pairs of a `POST /swap-indexes` body, with their `rename`.
fn swaps(inc: &Incoming) -> Vec<(String, String, bool)> {
    let Some(Value::Array(list)) = body(inc) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|swap| {
            let pair = swap["indexes"].as_array()?;
            let (a, b) = (pair.first()?.as_str()?, pair.get(1)?.as_str()?);
            let rename = swap["rename"].as_bool().unwrap_or(false);
            Some((a.to_owned(), b.to_owned(), rename))
        })
        .collect()
}

/// The indexes a swap changes, sorted and without repeats.
fn touched(inc: &Incoming) -> Vec<String> {
    let mut uids: Vec<String> = swaps(inc)
        .into_iter()
        .flat_map(|(a, b, _)| [a, b])
        .collect();
    uids.sort();
    uids.dedup();
    uids
}
