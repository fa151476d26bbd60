//! Filling the shadow and proving it equal to the index:
//!
//! 1. `backfill`: each shard of the index, paged from a replica that holds all of it and has
//!    processed every write enqueued before the reshard began, written to the shadow through
//!    Miroir's own write path (so split by the shadow's S). Every copied document is at least
//!    as new as the mirror log's start.
//! 2. `replay`: the mirror log, in order, over the copy. Document writes and deletions are
//!    idempotent, so a write the copy already holds is harmless; an edit by function is not,
//!    and restarts the copy instead (see `cluster::reshards::mirror`).
//! 3. `digest` and `differences`: every document's id and content (hidden fields left out) on
//!    both layouts; what differs is settled against the index with writes held (`repair`).

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::ShardId;
use miroir_filters::{hidden, transfer};
use serde_json::{json, Value};

use super::internal;
use crate::cluster::reshards::{self, Progress};
use crate::cluster::Runtime;
use crate::fleet::calls::{CallError, Calls};
use crate::fleet::copy::Throttle;
use crate::repair::handoff;
use crate::shared::Shared;
use crate::telemetry::metrics;
use crate::upstream::NodePeer;

/// Ids fetched at once when settling differences.
const PAGE: usize = 1000;

pub fn failed(e: CallError) -> MiroirError {
    MiroirError::new(Code::Internal, e.to_string())
}

/// A replica of `shard` of `index` that is up and has no write waiting for it: it holds the
/// whole shard.
pub fn source<'r>(
    shared: &Shared,
    rt: &'r Runtime,
    (index, shard): (&str, ShardId),
) -> Result<&'r NodePeer, MiroirError> {
    let p = rt.reads();
    let cluster = &shared.cluster;
    (0..p.groups())
        .flat_map(|g| {
            p.replicas(miroir_filters::routing::GroupId(g), shard)
                .iter()
        })
        .filter_map(|idx| rt.node(p.node(*idx).as_str()))
        .find(|n| cluster.is_healthy(&n.id) && !handoff::must_queue(cluster, &n.id))
        .ok_or_else(|| {
            MiroirError::new(
                Code::NoNodeAvailable,
                format!("no replica of shard {} of `{index}` is up to date", shard.0),
            )
        })
}

/// One page of `shard` of `index` on `node`, as `documents/fetch` answers it; `None` when the
/// index is gone.
async fn fetch_page(
    calls: &Calls<'_>,
    node: &NodePeer,
    (index, shard): (&str, ShardId),
    (offset, limit): (usize, usize),
    vectors: bool,
) -> Result<Option<Value>, MiroirError> {
    let body = json!({
        "filter": hidden::shard_clause(&[shard]),
        "limit": limit,
        "offset": offset,
        "retrieveVectors": vectors,
    });
    let path = format!("/indexes/{index}/documents/fetch");
    calls.post_read(node, &path, &body).await.map_err(failed)
}

/// A document as fetched, ready to be written to the other layout: without the hidden fields
/// (the write path sets its own) and without an empty `_vectors`.
fn portable(mut doc: Value) -> Value {
    if let Value::Object(o) = &mut doc {
        o.retain(|k, _| !k.starts_with(hidden::RESERVED_PREFIX));
    }
    transfer::writable_document(&mut doc);
    doc
}

/// Copies every shard of `index` (S = `from`) into `shadow`.
pub async fn backfill(
    shared: &Shared,
    rt: &Runtime,
    r: &reshards::Reshard,
    primary_key: &str,
    progress: &Progress,
) -> Result<(), MiroirError> {
    let calls = Calls {
        cluster: &shared.cluster,
        rt,
    };
    let page_size = rt.config.topology.copy_page_size as usize;
    let throttle = Throttle::new(rt.config.topology.max_copy_bytes_per_sec);
    let write = format!("/indexes/{}/documents?primaryKey={primary_key}", r.shadow);
    progress.copied.store(0, Ordering::Relaxed);
    progress.expected.store(0, Ordering::Relaxed);
    for shard in 0..r.from {
        let shard = ShardId(shard);
        let node = source(shared, rt, (&r.index, shard))?;
        // Every write enqueued before the mirror began is in what the replica serves.
        calls
            .wait_index_idle(node, &r.index)
            .await
            .map_err(failed)?;
        let mut offset = 0;
        loop {
            let at = (offset, page_size);
            let Some(mut page) = fetch_page(&calls, node, (&r.index, shard), at, true).await?
            else {
                return Err(MiroirError::new(
                    Code::InvalidReshard,
                    format!("`{}` is gone", r.index),
                ));
            };
            if offset == 0 {
                progress
                    .expected
                    .fetch_add(page["total"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
            let docs: Vec<Value> = match page["results"].take() {
                Value::Array(docs) => docs,
                _ => Vec::new(),
            };
            let n = docs.len();
            if n == 0 {
                break;
            }
            let payload =
                Bytes::from(Value::Array(docs.into_iter().map(portable).collect()).to_string());
            let len = payload.len() as u64;
            let json = Some("application/json");
            let reply =
                internal::with_writes_flowing(shared, ("POST", &write), json, payload).await?;
            internal::accepted(&reply, "writing to the shadow index")?;
            progress.copied.fetch_add(n as u64, Ordering::Relaxed);
            metrics::get().reshard_copy_documents.inc_by(n as u64);
            offset += n;
            if n < page_size {
                break;
            }
            throttle.pace(len).await;
        }
    }
    Ok(())
}

/// Sends the mirror log of `index` to its shadow in order, removing each write once Miroir
/// took it. `gated`: the caller holds the write gate alone (a flip), so the writes do not take
/// it. Returns how many were sent.
pub async fn replay(
    shared: &Shared,
    index: &str,
    gated: bool,
    progress: &Progress,
) -> Result<usize, MiroirError> {
    let key = reshards::log_key(index);
    let hints = &shared.cluster.hints;
    let mut sent = 0;
    loop {
        let next = hints
            .first(&key)
            .map_err(|e| MiroirError::new(Code::Internal, format!("reshard log: {e}")))?;
        let Some((seq, hint)) = next else {
            return Ok(sent);
        };
        let body = match hint.body.as_slice() {
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        };
        let (method, path, ct) = (&hint.method, &hint.path, hint.content_type.as_deref());
        let reply = if gated {
            let rt = shared.cluster.runtime();
            internal::request(shared, &rt, (method, path), ct, body).await?
        } else {
            internal::with_writes_flowing(shared, (method, path), ct, body).await?
        };
        if !internal::settled(&reply) {
            return Err(MiroirError::new(
                Code::Internal,
                format!(
                    "replaying {method} {path} answered {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.bytes())
                ),
            ));
        }
        let _ = hints.remove(&key, seq);
        progress.replayed.fetch_add(1, Ordering::Relaxed);
        metrics::get().reshard_replayed_writes.inc();
        sent += 1;
    }
}

/// Waits until every node processed what it was sent for `indexes`, all nodes and indexes at
/// once (the wait is the slowest node's, not their sum: the flip holds writes meanwhile).
pub async fn wait_idle(shared: &Shared, rt: &Runtime, indexes: &[&str]) -> Result<(), MiroirError> {
    let calls = Calls {
        cluster: &shared.cluster,
        rt,
    };
    let calls = &calls;
    let waits = rt
        .nodes
        .iter()
        .filter(|n| shared.cluster.is_healthy(&n.id))
        .flat_map(|node| {
            indexes
                .iter()
                .map(move |index| async move { calls.wait_index_idle(node, index).await })
        });
    futures::future::try_join_all(waits).await.map_err(failed)?;
    Ok(())
}

/// A hash of a document's content as a client sees it: hidden fields left out, object keys in
/// order (two indexes may list a document's fields in different orders).
fn content_hash(doc: &Value) -> u64 {
    fn feed(h: &mut xxhash_rust::xxh3::Xxh3, v: &Value) {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o
                    .keys()
                    .filter(|k| !k.starts_with(hidden::RESERVED_PREFIX) && *k != "_vectors")
                    .collect();
                keys.sort();
                h.write_u8(b'{');
                for k in keys {
                    h.write(k.as_bytes());
                    h.write_u8(b':');
                    feed(h, &o[k.as_str()]);
                }
                h.write_u8(b'}');
            }
            Value::Array(a) => {
                h.write_u8(b'[');
                a.iter().for_each(|x| feed(h, x));
                h.write_u8(b']');
            }
            other => h.write(other.to_string().as_bytes()),
        }
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    feed(&mut h, doc);
    h.finish()
}

/// Every document of `index` (S = `shards`) by id, with its content hash, read shard by shard
/// from replicas that hold them whole.
pub async fn digest(
    shared: &Shared,
    rt: &Runtime,
    (index, shards): (&str, u32),
    primary_key: &str,
    progress: &Progress,
) -> Result<HashMap<String, u64>, MiroirError> {
    let calls = Calls {
        cluster: &shared.cluster,
        rt,
    };
    let page_size = rt.config.topology.copy_page_size as usize;
    let mut all = HashMap::new();
    for shard in 0..shards {
        let shard = ShardId(shard);
        let node = source(shared, rt, (index, shard))?;
        let mut offset = 0;
        loop {
            let at = (offset, page_size);
            let Some(page) = fetch_page(&calls, node, (index, shard), at, false).await? else {
                break;
            };
            let docs = page["results"].as_array().map_or(&[][..], Vec::as_slice);
            for d in docs {
                if let Some(id) = transfer::document_id(&d[primary_key]) {
                    all.insert(id, content_hash(d));
                }
            }
            progress
                .verified
                .fetch_add(docs.len() as u64, Ordering::Relaxed);
            offset += docs.len();
            if docs.len() < page_size {
                break;
            }
        }
    }
    Ok(all)
}

/// The ids whose presence or content differs between the two digests.
pub fn differences(a: &HashMap<String, u64>, b: &HashMap<String, u64>) -> Vec<String> {
    let mut ids: Vec<String> = a
        .iter()
        .filter(|(id, h)| b.get(*id) != Some(*h))
        .map(|(id, _)| id.clone())
        .chain(b.keys().filter(|id| !a.contains_key(*id)).cloned())
        .collect();
    ids.sort();
    ids
}

/// The documents with these ids in `index`, read through Miroir as a client reads them.
async fn fetch_ids(
    shared: &Shared,
    rt: &Runtime,
    index: &str,
    ids: &[String],
) -> Result<Vec<Value>, MiroirError> {
    let path = format!("/indexes/{index}/documents/fetch");
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(PAGE) {
        let body = json!({ "ids": chunk, "limit": PAGE, "retrieveVectors": true });
        let reply = internal::request(
            shared,
            rt,
            ("POST", &path),
            Some("application/json"),
            Bytes::from(body.to_string()),
        )
        .await?;
        if reply.status != 200 {
            return Err(MiroirError::new(
                Code::Internal,
                format!(
                    "reading `{index}` answered {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.bytes())
                ),
            ));
        }
        let mut page: Value = serde_json::from_slice(&reply.bytes())
            .map_err(|e| MiroirError::new(Code::Internal, e.to_string()))?;
        if let Value::Array(docs) = page["results"].take() {
            out.extend(docs);
        }
    }
    Ok(out)
}

/// Of `ids`, those whose presence or content still differs between the index and its shadow
/// (read through Miroir as a client reads them), with the index's documents among them.
pub async fn still_different(
    shared: &Shared,
    rt: &Runtime,
    r: &reshards::Reshard,
    primary_key: &str,
    ids: &[String],
) -> Result<(Vec<String>, Vec<Value>), MiroirError> {
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (ours, theirs) = (
        fetch_ids(shared, rt, &r.index, ids).await?,
        fetch_ids(shared, rt, &r.shadow, ids).await?,
    );
    let by_id = |docs: &[Value]| -> HashMap<String, u64> {
        docs.iter()
            .filter_map(|d| Some((transfer::document_id(&d[primary_key])?, content_hash(d))))
            .collect()
    };
    let differ = differences(&by_id(&ours), &by_id(&theirs));
    let ours = ours
        .into_iter()
        .filter(|d| {
            transfer::document_id(&d[primary_key])
                .is_some_and(|id| differ.binary_search(&id).is_ok())
        })
        .collect();
    Ok((differ, ours))
}

/// Makes the shadow's documents with `ids` what they are in the index. The caller holds the
/// write gate alone and both layouts have processed everything. Returns how many differed.
pub async fn repair(
    shared: &Shared,
    rt: &Runtime,
    r: &reshards::Reshard,
    primary_key: &str,
    ids: &[String],
) -> Result<usize, MiroirError> {
    let (differ, ours) = still_different(shared, rt, r, primary_key, ids).await?;
    if differ.is_empty() {
        return Ok(0);
    }
    let present: std::collections::HashSet<String> = ours
        .iter()
        .filter_map(|d| transfer::document_id(&d[primary_key]))
        .collect();
    let gone: Vec<&String> = differ.iter().filter(|id| !present.contains(*id)).collect();
    if !ours.is_empty() {
        let path = format!("/indexes/{}/documents?primaryKey={primary_key}", r.shadow);
        let docs = Value::Array(ours.into_iter().map(portable).collect());
        let body = Bytes::from(docs.to_string());
        let reply =
            internal::request(shared, rt, ("POST", &path), Some("application/json"), body).await?;
        internal::accepted(&reply, "repairing the shadow index")?;
    }
    if !gone.is_empty() {
        let path = format!("/indexes/{}/documents/delete-batch", r.shadow);
        let body = Bytes::from(json!(gone).to_string());
        let reply =
            internal::request(shared, rt, ("POST", &path), Some("application/json"), body).await?;
        internal::accepted(&reply, "repairing the shadow index")?;
    }
    wait_idle(shared, rt, &[&r.shadow]).await?;
    Ok(differ.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ignores_hidden_fields_and_key_order() {
        let a = json!({"id": 1, "t": "x", "n": {"b": 1, "a": 2}, "_miroir_shard": "3"});
        let b = json!({"n": {"a": 2, "b": 1}, "t": "x", "id": 1, "_miroir_version": "!"});
        assert_eq!(content_hash(&a), content_hash(&b));
        let c = json!({"id": 1, "t": "y", "n": {"a": 2, "b": 1}});
        assert_ne!(content_hash(&a), content_hash(&c));
    }

    #[test]
    fn differences_are_missing_extra_and_changed_ids() {
        let a: HashMap<String, u64> = [("1", 1), ("2", 2), ("3", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let b: HashMap<String, u64> = [("2", 2), ("3", 4), ("4", 4)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(differences(&a, &b), vec!["1", "3", "4"]);
    }
}
