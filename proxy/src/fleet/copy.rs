//! Moving one shard's documents to a new owner, in three steps that together lose nothing and
//! resurrect nothing while writes go on:
//!
//! 1. `copy_shard`: page through the shard on a source that holds all of it and write the
//!    pages to the new owner. From the moment the change started, the new owner's writes for
//!    the shard wait in its move log, and the copy begins only once the source has processed
//!    every write enqueued before it, so each copied document is at least as new as the
//!    log's start.
//! 2. `replay_log`: the move log, in order, over the copy. Replaying a write the copy already
//!    holds is harmless (document writes and deletions are idempotent; an edit by function,
//!    which is not, restarts the copy instead).
//! 3. `reconcile`: the id sets of source and new owner compared; what offset paging skipped
//!    or a replayed deletion removed is fixed while writes wait at the gate, on the few ids
//!    that differ.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use miroir_filters::routing::ShardId;
use miroir_filters::{hidden, transfer};
use miroir_handoff::Hint;
use serde_json::{json, Value};

use super::calls::{CallError, Calls};
use super::prepare::{indexes, IndexInfo};
use crate::cluster::change_progress::MoveProgress;
use crate::cluster::move_log;
use crate::repair::handoff;
use crate::telemetry::metrics;
use crate::upstream::{NodePeer, NodeRequest};

/// Ids of documents fetched or deleted at once when repairing a difference.
const PAGE: usize = 1000;
/// Ids per page when comparing id sets.
const ID_PAGE: usize = 10_000;

fn shard_filter(shard: ShardId) -> Value {
    json!(hidden::shard_clause(&[shard]))
}

/// Documents of `shard` in `index` on `node`.
pub async fn count(
    calls: &Calls<'_>,
    node: &NodePeer,
    index: &str,
    shard: ShardId,
) -> Result<u64, CallError> {
    let path = format!("/indexes/{index}/documents/fetch");
    let body = json!({ "filter": shard_filter(shard), "limit": 0 });
    Ok(calls
        .post_read(node, &path, &body)
        .await?
        .and_then(|v| v["total"].as_u64())
        .unwrap_or(0))
}

/// Paces one new owner's copies to `topology.max_copy_bytes_per_sec`, all of them together.
pub struct Throttle {
    limit: Option<u64>,
    started: Instant,
    bytes: AtomicU64,
}

impl Throttle {
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            started: Instant::now(),
            bytes: AtomicU64::new(0),
        }
    }

    /// Counts `bytes` sent and waits until the average rate is back under the limit.
    pub(crate) async fn pace(&self, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let Some(limit) = self.limit else {
            return;
        };
        let due = Duration::from_secs_f64(total as f64 / limit as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
}

/// Copies `shard` of `index` from `source` to `target`.
pub async fn copy_shard(
    calls: &Calls<'_>,
    index: &IndexInfo,
    shard: ShardId,
    (source, target): (&NodePeer, &NodePeer),
    (progress, throttle): (&MoveProgress, &Throttle),
) -> Result<(), CallError> {
    let page_size = calls.rt.config.topology.copy_page_size as usize;
    // Every write enqueued before the move log began is in what the source serves.
    calls.wait_index_idle(source, &index.uid).await?;
    let fetch = format!("/indexes/{}/documents/fetch", index.uid);
    let write = match &index.primary_key {
        Some(pk) => format!("/indexes/{}/documents?primaryKey={pk}", index.uid),
        None => format!("/indexes/{}/documents", index.uid),
    };
    let mut offset = 0;
    let mut last_task = None;
    loop {
        let body = json!({
            "filter": shard_filter(shard),
            "limit": page_size,
            "offset": offset,
            "retrieveVectors": true,
        });
        let Some(page) = calls.post_read(source, &fetch, &body).await? else {
            return Ok(()); // the index was deleted meanwhile; so it is on the new owner
        };
        if offset == 0 {
            progress
                .expected
                .fetch_add(page["total"].as_u64().unwrap_or(0), Ordering::Relaxed);
        }
        let docs = page["results"].as_array().map_or(&[][..], Vec::as_slice);
        if docs.is_empty() {
            break;
        }
        let payload = Bytes::from(writable(docs).to_string());
        let payload_len = payload.len() as u64;
        progress
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        last_task = calls
            .enqueue(target, ("POST", &write), payload, &[])
            .await?
            .or(last_task);
        progress
            .documents
            .fetch_add(docs.len() as u64, Ordering::Relaxed);
        let m = metrics::get();
        m.shard_copy_documents.inc_by(docs.len() as u64);
        m.shard_copy_bytes.inc_by(payload_len);
        offset += docs.len();
        if docs.len() < page_size {
            break;
        }
        throttle.pace(payload_len).await;
    }
    if let Some(uid) = last_task {
        calls.wait_task(target, uid).await?;
    }
    Ok(())
}

/// Fetched documents as a JSON array a node accepts back.
fn writable(docs: &[Value]) -> Value {
    Value::Array(
        docs.iter()
            .cloned()
            .map(|mut d| {
                transfer::writable_document(&mut d);
                d
            })
            .collect(),
    )
}

/// Sends `target`'s move log to it in order, removing each write once the node took it.
/// Returns how many were sent.
pub async fn replay_log(calls: &Calls<'_>, target: &NodePeer) -> Result<usize, CallError> {
    let key = move_log::key(target.id.as_str());
    let mut sent = 0;
    loop {
        let next =
            handoff::first(calls.cluster, &key)
                .await
                .map_err(|e| CallError::Unreachable {
                    node: target.id.to_string(),
                    why: format!("move log: {e}"),
                })?;
        let Some((seq, hint)) = next else {
            return Ok(sent);
        };
        send_hint(calls, target, &hint).await?;
        let _ = handoff::remove(calls.cluster, &key, seq).await;
        sent += 1;
    }
}

async fn send_hint(calls: &Calls<'_>, target: &NodePeer, hint: &Hint) -> Result<(), CallError> {
    let req = NodeRequest {
        method: &hint.method,
        path: &hint.path,
        auth: calls.rt.node_key(),
        content_type: hint.content_type.as_deref(),
        body: &hint.body,
        request_id: None,
        budget: None,
        relay: None,
    };
    let timeout = calls.rt.config.upstream.read_timeout;
    match calls.cluster.client.send(target, &req, timeout).await {
        // The node judged it: the other replicas got the same verdict when it was new.
        Ok(resp) if resp.judged() => Ok(()),
        Ok(resp) => Err(CallError::Refused {
            node: target.id.to_string(),
            status: resp.status,
            body: String::from_utf8_lossy(&resp.body).into_owned(),
        }),
        Err(e) => Err(CallError::Unreachable {
            node: target.id.to_string(),
            why: e.to_string(),
        }),
    }
}

/// The primary keys of `shard` in `index` on `node`, as canonical strings.
async fn ids(
    calls: &Calls<'_>,
    node: &NodePeer,
    index: &IndexInfo,
    shard: ShardId,
) -> Result<BTreeSet<String>, CallError> {
    let Some(pk) = &index.primary_key else {
        return Ok(BTreeSet::new());
    };
    let path = format!("/indexes/{}/documents/fetch", index.uid);
    let mut all = BTreeSet::new();
    let mut offset = 0;
    loop {
        let body = json!({
            "filter": shard_filter(shard),
            "fields": [pk],
            "limit": ID_PAGE,
            "offset": offset,
        });
        let Some(page) = calls.post_read(node, &path, &body).await? else {
            break;
        };
        let docs = page["results"].as_array().map_or(&[][..], Vec::as_slice);
        all.extend(
            docs.iter()
                .filter_map(|d| transfer::document_id(&d[pk.as_str()])),
        );
        offset += docs.len();
        if docs.len() < ID_PAGE {
            break;
        }
    }
    Ok(all)
}

/// What differs between the two id sets.
#[derive(Debug, Default)]
pub struct Difference {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
}

impl Difference {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares `shard` of `index` on both nodes once they processed what they were sent.
pub async fn compare(
    calls: &Calls<'_>,
    index: &IndexInfo,
    shard: ShardId,
    (source, target): (&NodePeer, &NodePeer),
) -> Result<Difference, CallError> {
    calls.wait_index_idle(source, &index.uid).await?;
    calls.wait_index_idle(target, &index.uid).await?;
    let (a, b) = (
        ids(calls, source, index, shard).await?,
        ids(calls, target, index, shard).await?,
    );
    Ok(Difference {
        missing: a.difference(&b).cloned().collect(),
        extra: b.difference(&a).cloned().collect(),
    })
}

/// Makes the ids in `diff` on `target` what they are on `source`. The caller holds the write
/// gate: both nodes have processed everything, and nothing new arrives.
pub async fn repair(
    calls: &Calls<'_>,
    index: &IndexInfo,
    (source, target): (&NodePeer, &NodePeer),
    diff: &Difference,
) -> Result<(), CallError> {
    calls.wait_index_idle(source, &index.uid).await?;
    calls.wait_index_idle(target, &index.uid).await?;
    let ids: Vec<&String> = diff.missing.iter().chain(&diff.extra).collect();
    let fetch = format!("/indexes/{}/documents/fetch", index.uid);
    let mut present = Vec::new();
    for chunk in ids.chunks(PAGE) {
        let body = json!({ "ids": chunk, "limit": PAGE, "retrieveVectors": true });
        if let Some(page) = calls.post_read(source, &fetch, &body).await? {
            present.extend(page["results"].as_array().cloned().unwrap_or_default());
        }
    }
    let pk = index.primary_key.as_deref().unwrap_or("id");
    let on_source: BTreeSet<String> = present
        .iter()
        .filter_map(|d| transfer::document_id(&d[pk]))
        .collect();
    let gone: Vec<&String> = ids
        .iter()
        .copied()
        .filter(|id| !on_source.contains(*id))
        .collect();
    let mut last = None;
    if !present.is_empty() {
        let path = format!("/indexes/{}/documents?primaryKey={pk}", index.uid);
        let payload = Bytes::from(writable(&present).to_string());
        last = calls.enqueue(target, ("POST", &path), payload, &[]).await?;
    }
    if !gone.is_empty() {
        let path = format!("/indexes/{}/documents/delete-batch", index.uid);
        let payload = Bytes::from(json!(gone).to_string());
        last = calls
            .enqueue(target, ("POST", &path), payload, &[])
            .await?
            .or(last);
    }
    if let Some(uid) = last {
        calls.wait_task(target, uid).await?;
    }
    Ok(())
}

/// Makes the shard the same on both nodes; returns how many ids were rechecked. Once the
/// new owner's writes go to it directly, both nodes receive the same writes in the same order,
/// so they can only differ where the copy left them different (a page skipped while the
/// source changed, a document a replayed deletion removed or a late page brought back). One
/// comparison finds those, with writes flowing; a write in flight may add ids to it, which the
/// repair, with writes held, settles against the source either way.
pub async fn reconcile(
    calls: &Calls<'_>,
    index: &IndexInfo,
    shard: ShardId,
    nodes: (&NodePeer, &NodePeer),
) -> Result<usize, CallError> {
    let diff = compare(calls, index, shard, nodes).await?;
    if diff.is_empty() {
        return Ok(0);
    }
    let _gate = calls
        .cluster
        .hold_writes()
        .await
        .map_err(CallError::NotHeld)?;
    repair(calls, index, nodes, &diff).await?;
    Ok(diff.missing.len() + diff.extra.len())
}

/// Deletes from `target` the indexes `source` does not have, with writes held (so no index is
/// being created meanwhile) once both nodes processed what they were sent. Returns their uids.
pub async fn drop_extra_indexes(
    calls: &Calls<'_>,
    (source, target): (&NodePeer, &NodePeer),
) -> Result<Vec<String>, CallError> {
    let _gate = calls
        .cluster
        .hold_writes()
        .await
        .map_err(CallError::NotHeld)?;
    calls.wait_idle(source).await?;
    calls.wait_idle(target).await?;
    let wanted: BTreeSet<String> = indexes(calls, source)
        .await?
        .into_iter()
        .map(|i| i.uid)
        .collect();
    let mut gone = Vec::new();
    for index in indexes(calls, target).await? {
        if wanted.contains(&index.uid) {
            continue;
        }
        let path = format!("/indexes/{}", index.uid);
        if let Some(uid) = calls
            .enqueue(target, ("DELETE", &path), Bytes::new(), &[404])
            .await?
        {
            calls.wait_task(target, uid).await?;
        }
        gone.push(index.uid);
    }
    Ok(gone)
}
