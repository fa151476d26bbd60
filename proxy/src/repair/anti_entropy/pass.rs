//! The anti-entropy service: each `anti_entropy.interval`, one pass over every index and
//! shard, reading at most `max_documents_per_second` documents from the nodes.
//!
//! A pass first compares the nodes' index sets and key sets (`set_pass`), then reads a shard's documents on every healthy owner with writes flowing and notes the
//! ids whose copies differ. A write in flight can make copies differ for a moment, so those
//! ids are read again with the index's writes held (its write-order lock) once every owner
//! processed what it was sent: only what still differs is repaired, and the repair is handed
//! to the nodes before any later write of the index. Nothing is done while a topology change
//! moves shards, nor on a node that is not active and caught up on its hints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use miroir_filters::routing::{GroupId, ShardId};
use miroir_filters::{hidden, transfer};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::{json, Value};

use super::clock::now_micros;
use super::set_pass;
use super::status::{self, Repair};
use super::verdict::{judge, Copy, Verdict};
use super::Journal;
use crate::cluster::job_lease::JobLease;
use crate::cluster::node_state::NodeState;
use crate::cluster::{Cluster, Runtime};
use crate::fleet::calls::{CallError, Calls};
use crate::fleet::copy::Throttle;
use crate::fleet::prepare::{indexes, IndexInfo};
use crate::upstream::NodePeer;

/// Documents per page read from a node.
const PAGE: usize = 1000;
/// How long the index's writes may be held while its owners finish what they were sent;
/// past it the difference is left to the next pass.
const IDLE_WAIT: Duration = Duration::from_secs(5);

pub struct AntiEntropy {
    cluster: Arc<Cluster>,
    journal: Arc<Journal>,
}

impl AntiEntropy {
    pub fn new(cluster: Arc<Cluster>, journal: Arc<Journal>) -> Self {
        Self { cluster, journal }
    }

    /// Active, with no hints waiting and none being replayed: its copy is what it should be
    /// but for what anti-entropy finds.
    fn caught_up(&self, node: &NodePeer) -> bool {
        self.cluster.node_state(&node.id) == NodeState::Active
            && self.cluster.hints.backlog(node.id.as_str()) == Default::default()
            && !self.cluster.replaying.contains_key(&node.id)
    }

    /// One pass over every index. Returns without repairing anything while shards move.
    pub async fn pass(&self, rt: &Runtime) {
        if self.cluster.topology().change.is_some() {
            return;
        }
        let status = status::get();
        let started = Instant::now();
        status.started(now_micros() / 1000);
        let calls = Calls {
            cluster: &self.cluster,
            rt,
        };
        let pace = Throttle::new(Some(rt.config.anti_entropy.max_documents_per_second));
        let eligible: Vec<&NodePeer> = rt.nodes.iter().filter(|n| self.caught_up(n)).collect();
        let mut all: BTreeMap<String, IndexInfo> = BTreeMap::new();
        let mut lists = Vec::with_capacity(eligible.len());
        for node in &eligible {
            status.requested();
            if let Ok(list) = indexes(&calls, node).await {
                lists.push(
                    list.iter()
                        .map(|i| (i.uid.clone(), i.primary_key.clone()))
                        .collect(),
                );
                for index in list {
                    all.entry(index.uid.clone()).or_insert(index);
                }
            }
        }
        // Index sets and key sets first: an index recreated on a node is refilled below.
        if eligible.len() >= 2 {
            let fresh = |n: &NodePeer| self.caught_up(n);
            if lists.len() == eligible.len() {
                if let Err(e) =
                    set_pass::indexes(&self.cluster, &calls, &eligible, &lists, fresh).await
                {
                    log::info!(target: "miroir::anti_entropy", "index sets: comparison interrupted: {e}");
                }
            }
            if let Err(e) = set_pass::keys(&self.cluster, &calls, &eligible, fresh).await {
                log::info!(target: "miroir::anti_entropy", "key sets: comparison interrupted: {e}");
            }
        }
        for index in all.values() {
            if let Err(e) = self.index(&calls, &pace, index).await {
                log::info!(target: "miroir::anti_entropy", "index `{}`: pass interrupted: {e}", index.uid);
            }
        }
        let retention = rt.config.anti_entropy.deletion_retention.as_micros() as u64;
        if let Err(e) = self
            .journal
            .deletions
            .prune(now_micros().saturating_sub(retention))
            .await
        {
            log::warn!(target: "miroir::anti_entropy", "deletion record not pruned: {e}");
        }
        let took = started.elapsed().as_millis() as u64;
        status.finished(now_micros() / 1000, took);
    }

    async fn index(
        &self,
        calls: &Calls<'_>,
        pace: &Throttle,
        index: &IndexInfo,
    ) -> Result<(), CallError> {
        let Some(pk) = index.primary_key.as_deref() else {
            return Ok(()); // no document was ever written
        };
        let rt = calls.rt;
        // Documents without a shard field were not written through Miroir.
        for node in rt.nodes.iter().filter(|n| self.caught_up(n)) {
            match self.strays(calls, index, pk, node).await {
                // The shard field not filterable there yet: the settings repair's job.
                Ok(()) | Err(CallError::Refused { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let p = rt.reads();
        // The index's own S: the placement may be wider.
        let shards = self.cluster.shard_counts.of(&index.uid).min(p.shards());
        for s in 0..shards {
            let shard = ShardId(s);
            let owners: Vec<&NodePeer> = (0..p.groups())
                .flat_map(|g| p.replicas(GroupId(g), shard))
                .map(|i| &rt.nodes[i.index()])
                .filter(|n| self.caught_up(n))
                .collect();
            if owners.len() < 2 {
                continue;
            }
            let mut held = Vec::with_capacity(owners.len());
            for node in &owners {
                held.push(
                    self.read_shard(calls, pace, node, &index.uid, pk, shard)
                        .await?,
                );
            }
            let ids: BTreeSet<&String> = held.iter().flat_map(|h| h.keys()).collect();
            let differing: Vec<String> = ids
                .into_iter()
                .filter(|id| {
                    let first = held[0].get(*id);
                    held.iter().any(|h| h.get(*id) != first)
                })
                .cloned()
                .collect();
            if !differing.is_empty() {
                self.settle(calls, index, pk, &owners, differing).await?;
            }
        }
        Ok(())
    }

    /// Id → copy of every document of `shard` on `node`.
    async fn read_shard(
        &self,
        calls: &Calls<'_>,
        pace: &Throttle,
        node: &NodePeer,
        index: &str,
        pk: &str,
        shard: ShardId,
    ) -> Result<HashMap<String, Copy>, CallError> {
        let path = format!("/indexes/{index}/documents/fetch");
        let filter = hidden::shard_clause(&[shard]);
        let mut held = HashMap::new();
        let mut offset = 0;
        loop {
            let body = json!({ "filter": filter, "limit": PAGE, "offset": offset });
            status::get().requested();
            let Some(page) = calls.post_read(node, &path, &body).await? else {
                break;
            };
            let docs = page["results"].as_array().map_or(&[][..], Vec::as_slice);
            for doc in docs {
                if let Some(id) = transfer::document_id(&doc[pk]) {
                    held.insert(id, Copy::of(doc));
                }
            }
            status::get().read(docs.len() as u64);
            pace.pace(docs.len() as u64).await;
            offset += docs.len();
            if docs.len() < PAGE {
                break;
            }
        }
        Ok(held)
    }

    /// Confirms the differences with the index's writes held and repairs what remains.
    async fn settle(
        &self,
        calls: &Calls<'_>,
        index: &IndexInfo,
        pk: &str,
        owners: &[&NodePeer],
        ids: Vec<String>,
    ) -> Result<(), CallError> {
        let _turn = self.cluster.write_turn(&index.uid).await;
        for node in owners {
            status::get().requested();
            match tokio::time::timeout(IDLE_WAIT, calls.wait_index_idle(node, &index.uid)).await {
                Ok(done) => done?,
                Err(_) => return Ok(()), // busy: the next pass looks again
            }
        }
        let mut held: Vec<HashMap<String, Value>> = Vec::with_capacity(owners.len());
        for node in owners {
            match fetch_ids(calls, node, &index.uid, pk, &ids, None).await? {
                Some(found) => held.push(found),
                // The index is gone from an owner (deleted behind Miroir's back since the
                // pass listed it): documents written now would create it without its
                // settings. The index-set comparison of the next pass recreates it first.
                None => return Ok(()),
            }
        }
        let evidence = self
            .journal
            .deletions
            .evidence(&index.uid, ids.clone())
            .await
            .map_err(|why| CallError::Unreachable {
                node: "deletion record".into(),
                why,
            })?;
        let mut writes: Vec<Vec<Value>> = vec![Vec::new(); owners.len()];
        let mut deletes: Vec<Vec<String>> = vec![Vec::new(); owners.len()];
        let mut kinds: Vec<(Repair, u64)> = Vec::new();
        for id in &ids {
            let copies: Vec<Option<Copy>> = held.iter().map(|h| h.get(id).map(Copy::of)).collect();
            let mut verdict = judge(&copies, evidence.deleted_at(id));
            if let Verdict::Write { from, .. } = &verdict {
                let latest = copies[*from].and_then(|c| c.version);
                if self
                    .deleted_by_filter(
                        calls,
                        owners[*from],
                        index,
                        pk,
                        id,
                        latest,
                        &evidence.filters,
                    )
                    .await?
                {
                    let on = (0..copies.len()).filter(|&i| copies[i].is_some()).collect();
                    verdict = Verdict::Delete { on };
                }
            }
            match verdict {
                Verdict::Same => {}
                Verdict::Write { from, to } => {
                    let Some(doc) = held[from].get(id) else {
                        continue;
                    };
                    let mut doc = doc.clone();
                    transfer::writable_document(&mut doc);
                    for t in to {
                        let kind = match copies[t] {
                            None => Repair::Missing,
                            Some(_) => Repair::Different,
                        };
                        kinds.push((kind, 1));
                        writes[t].push(doc.clone());
                    }
                }
                Verdict::Delete { on } => {
                    for t in on {
                        kinds.push((Repair::Extra, 1));
                        deletes[t].push(id.clone());
                    }
                }
                Verdict::Unresolved(why) => {
                    status::get().unresolved();
                    log::warn!(target: "miroir::anti_entropy", "index `{}`: document `{id}` left as is: {why}", index.uid);
                }
            }
        }
        for (i, node) in owners.iter().enumerate() {
            if !writes[i].is_empty() {
                let path = format!("/indexes/{}/documents?primaryKey={pk}", index.uid);
                let body = Bytes::from(Value::Array(std::mem::take(&mut writes[i])).to_string());
                status::get().requested();
                calls.enqueue(node, ("POST", &path), body, &[]).await?;
            }
            if !deletes[i].is_empty() {
                let path = format!("/indexes/{}/documents/delete-batch", index.uid);
                let body = Bytes::from(json!(deletes[i]).to_string());
                status::get().requested();
                calls.enqueue(node, ("POST", &path), body, &[]).await?;
            }
        }
        for (kind, n) in kinds {
            status::get().repaired(kind, n);
        }
        Ok(())
    }

    /// Whether a deletion by filter newer than the document's latest version removed it: its
    /// copy on `holder` matches one (the copy is unchanged since, so it matched then too).
    #[allow(clippy::too_many_arguments)]
    async fn deleted_by_filter(
        &self,
        calls: &Calls<'_>,
        holder: &NodePeer,
        index: &IndexInfo,
        pk: &str,
        id: &str,
        latest: Option<u64>,
        filters: &[(u64, String)],
    ) -> Result<bool, CallError> {
        for (version, filter) in filters {
            if latest.is_some_and(|v| v > *version) {
                continue;
            }
            let Ok(filter) = serde_json::from_str::<Value>(filter) else {
                continue;
            };
            let ids = [id.to_owned()];
            match fetch_ids(calls, holder, &index.uid, pk, &ids, Some(&filter)).await {
                Ok(Some(found)) if !found.is_empty() => return Ok(true),
                // A filter the index no longer accepts proves nothing either way.
                Ok(_) | Err(CallError::Refused { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Documents `stray` from Miroir's view: no shard field, so never written through it.
    async fn strays(
        &self,
        calls: &Calls<'_>,
        index: &IndexInfo,
        pk: &str,
        node: &NodePeer,
    ) -> Result<(), CallError> {
        let path = format!("/indexes/{}/documents/fetch", index.uid);
        let body = json!({
            "filter": format!("{} NOT EXISTS", hidden::SHARD_FIELD),
            "fields": [pk],
            "limit": PAGE,
        });
        status::get().requested();
        let Some(page) = calls.post_read(node, &path, &body).await? else {
            return Ok(());
        };
        let ids: Vec<String> = page["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| transfer::document_id(&d[pk]))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let n = ids.len() as u64;
        let path = format!("/indexes/{}/documents/delete-batch", index.uid);
        status::get().requested();
        // A write through Miroir always carries the shard field: no write in flight can
        // turn one of these into an acknowledged document.
        calls
            .enqueue(
                node,
                ("POST", &path),
                Bytes::from(json!(ids).to_string()),
                &[],
            )
            .await?;
        status::get().repaired(Repair::Extra, n);
        log::warn!(target: "miroir::anti_entropy", "index `{}`: node {} held {n} document(s) without a shard field (not written through Miroir); deleted", index.uid, node.id);
        Ok(())
    }
}

/// The documents among `ids` that `node` holds (matching `filter` when given), with vectors;
/// `None` when the node has no such index.
async fn fetch_ids(
    calls: &Calls<'_>,
    node: &NodePeer,
    index: &str,
    pk: &str,
    ids: &[String],
    filter: Option<&Value>,
) -> Result<Option<HashMap<String, Value>>, CallError> {
    let path = format!("/indexes/{index}/documents/fetch");
    let mut held = HashMap::new();
    for chunk in ids.chunks(PAGE) {
        let mut body = json!({ "ids": chunk, "limit": chunk.len(), "retrieveVectors": true });
        if let Some(f) = filter {
            body["filter"] = f.clone();
        }
        status::get().requested();
        let Some(page) = calls.post_read(node, &path, &body).await? else {
            return Ok(None);
        };
        for doc in page["results"].as_array().into_iter().flatten() {
            if let Some(id) = transfer::document_id(&doc[pk]) {
                held.insert(id, doc.clone());
            }
        }
    }
    status::get().read(held.len() as u64);
    Ok(Some(held))
}

#[async_trait]
impl BackgroundService for AntiEntropy {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let rt = self.cluster.runtime();
            let cfg = rt.config.anti_entropy.clone();
            // The first pass one interval after the start: a restart costs the nodes nothing.
            tokio::select! {
                _ = tokio::time::sleep(cfg.interval) => {}
                _ = shutdown.changed() => return,
            }
            // One Miroir at a time passes over the fleet (several sharing a Redis).
            let lease = if cfg.enabled {
                JobLease::take(&self.cluster.hints, "anti-entropy").await
            } else {
                None
            };
            if let Some(_lease) = lease {
                let rt = self.cluster.runtime();
                tokio::select! {
                    _ = self.pass(&rt) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}
