//! The key sets and index sets of the caught-up nodes compared at the start of each pass,
//! before their documents, and the odd node repaired (see `sets` for the decisions).
//!
//! A difference is acted on only if it is read again, the same, with the changes that could
//! explain it held: keys under the instance-wide write order every key change takes, an
//! index under its own write order (creation, update, deletion and swap take it) once no node
//! has an index or settings task of it queued. The repairs are the node writes the log
//! replays use: keys keep their uid (so the key string every node derives from it), an index
//! gets the majority's primary key and settings, and the document pass that follows in the
//! same pass refills it from the other owners of its shards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use miroir_filters::transfer;
use serde_json::{json, Value};

use super::sets::{judge_index, judge_key, key_view, IndexFix, Judged, KeyFix};
use super::status::{self, Repair, Set};
use crate::cluster::Cluster;
use crate::fleet::calls::{CallError, Calls};
use crate::fleet::prepare::{copy_index, IndexInfo};
use crate::repair::settings_drift::in_flux;
use crate::upstream::NodePeer;

/// How long a pass waits for a recreated index to be ready before reading its documents;
/// past it, the next pass refills it.
const CREATION_WAIT: Duration = Duration::from_secs(30);
/// Keys per page read from a node.
const KEY_PAGE: usize = 1000;

/// Each node's keys, uid → the key as compared.
async fn read_keys(
    calls: &Calls<'_>,
    nodes: &[&NodePeer],
) -> Result<Vec<BTreeMap<String, Value>>, CallError> {
    let mut all = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut held = BTreeMap::new();
        let mut offset = 0;
        loop {
            status::get().requested();
            let path = format!("/keys?limit={KEY_PAGE}&offset={offset}");
            let page = calls.get(node, &path).await?;
            let results = page
                .as_ref()
                .and_then(|p| p["results"].as_array())
                .map_or(&[][..], Vec::as_slice);
            held.extend(
                results
                    .iter()
                    .filter_map(|k| Some((k["uid"].as_str()?.to_owned(), key_view(k)))),
            );
            offset += results.len();
            if results.len() < KEY_PAGE {
                break;
            }
        }
        all.push(held);
    }
    Ok(all)
}

/// The keys that differ, with what to do about each.
fn judge_keys(held: &[BTreeMap<String, Value>]) -> BTreeMap<String, Judged<KeyFix>> {
    let uids: BTreeSet<&String> = held.iter().flat_map(|h| h.keys()).collect();
    uids.into_iter()
        .filter_map(|uid| {
            let copies: Vec<Option<Value>> = held.iter().map(|h| h.get(uid).cloned()).collect();
            match judge_key(&copies) {
                Judged::Same => None,
                judged => Some((uid.clone(), judged)),
            }
        })
        .collect()
}

/// Compares the key sets of `nodes` (caught up, at least two) and repairs the odd node out.
/// `still_eligible` tells, with key changes held, whether a node is still caught up.
pub async fn keys(
    cluster: &Cluster,
    calls: &Calls<'_>,
    nodes: &[&NodePeer],
    still_eligible: impl Fn(&NodePeer) -> bool,
) -> Result<(), CallError> {
    let first = judge_keys(&read_keys(calls, nodes).await?);
    if first.is_empty() {
        return Ok(());
    }
    let _turn = cluster.write_turn("").await;
    if !nodes.iter().all(|n| still_eligible(n)) {
        return Ok(());
    }
    let second = judge_keys(&read_keys(calls, nodes).await?);
    for (uid, judged) in second {
        // Seen once only: a change that was under way; the next pass looks again.
        if first.get(&uid) != Some(&judged) {
            continue;
        }
        match judged {
            Judged::Same => {}
            Judged::Unresolved(why) => {
                status::get().set_unresolved(Set::Keys);
                log::warn!(target: "miroir::anti_entropy", "key {uid}: differs across nodes, left as is: {why}");
            }
            Judged::Fix(fixes) => {
                for (i, fix) in fixes {
                    if let Err(e) = fix_key(calls, nodes[i], &uid, &fix).await {
                        log::warn!(target: "miroir::anti_entropy", "key {uid}: repair on node {} failed: {e}", nodes[i].id);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn fix_key(
    calls: &Calls<'_>,
    node: &NodePeer,
    uid: &str,
    fix: &KeyFix,
) -> Result<(), CallError> {
    let path = format!("/keys/{uid}");
    let kind = match fix {
        KeyFix::Create(want) => {
            create_key(calls, node, want).await?;
            Repair::Missing
        }
        KeyFix::Delete => {
            delete_key(calls, node, &path).await?;
            Repair::Extra
        }
        KeyFix::Rename(patch) => {
            status::get().requested();
            let body = Bytes::from(patch.to_string());
            calls.enqueue(node, ("PATCH", &path), body, &[]).await?;
            Repair::Different
        }
        KeyFix::Recreate(want) => {
            delete_key(calls, node, &path).await?;
            create_key(calls, node, want).await?;
            Repair::Different
        }
    };
    status::get().set_repaired(Set::Keys, kind);
    log::info!(target: "miroir::anti_entropy", "key {uid}: node {} repaired ({fix_name}) to the majority's", node.id, fix_name = kind_name(fix));
    Ok(())
}

fn kind_name(fix: &KeyFix) -> &'static str {
    match fix {
        KeyFix::Create(_) => "missing, created",
        KeyFix::Delete => "extra, deleted",
        KeyFix::Rename(_) => "renamed",
        KeyFix::Recreate(_) => "recreated",
    }
}

/// Creates the key with its uid, so the node derives the same key string as the others.
async fn create_key(calls: &Calls<'_>, node: &NodePeer, want: &Value) -> Result<(), CallError> {
    status::get().requested();
    let body = Bytes::from(transfer::key_creation(want).to_string());
    calls.enqueue(node, ("POST", "/keys"), body, &[]).await?;
    Ok(())
}

async fn delete_key(calls: &Calls<'_>, node: &NodePeer, path: &str) -> Result<(), CallError> {
    status::get().requested();
    calls
        .enqueue(node, ("DELETE", path), Bytes::new(), &[204, 404])
        .await?;
    Ok(())
}

/// One index's state on each node: absent, or present with its primary key.
type IndexCopies = Vec<Option<Option<String>>>;

fn copies_of(lists: &[BTreeMap<String, Option<String>>], uid: &str) -> IndexCopies {
    lists.iter().map(|l| l.get(uid).cloned()).collect()
}

/// Compares the index sets `lists` (uid → primary key, one per node of `nodes`, all caught
/// up) and repairs the odd node out. Returns once every recreated index is ready (or
/// [`CREATION_WAIT`] passed), so the document pass that follows refills it.
pub async fn indexes(
    cluster: &Cluster,
    calls: &Calls<'_>,
    nodes: &[&NodePeer],
    lists: &[BTreeMap<String, Option<String>>],
    still_eligible: impl Fn(&NodePeer) -> bool,
) -> Result<(), CallError> {
    let uids: BTreeSet<&String> = lists.iter().flat_map(|l| l.keys()).collect();
    let mut created: Vec<(&NodePeer, u64)> = Vec::new();
    for uid in uids {
        let first = judge_index(&copies_of(lists, uid));
        if first == Judged::Same {
            continue;
        }
        let _turn = cluster.write_turn(uid).await;
        if !nodes.iter().all(|n| still_eligible(n)) {
            return Ok(());
        }
        if in_flux(cluster, calls.rt, Some(uid)).await.contains(uid) {
            continue; // a change of it is queued on some node: the next pass looks again
        }
        let mut copies = Vec::with_capacity(nodes.len());
        for node in nodes {
            status::get().requested();
            let index = calls.get(node, &format!("/indexes/{uid}")).await?;
            copies.push(index.map(|i| i["primaryKey"].as_str().map(str::to_owned)));
        }
        let second = judge_index(&copies);
        if second != first {
            continue;
        }
        match second {
            Judged::Same => {}
            Judged::Unresolved(why) => {
                status::get().set_unresolved(Set::Indexes);
                log::warn!(target: "miroir::anti_entropy", "index `{uid}`: differs across nodes, left as is: {why}");
            }
            Judged::Fix(fixes) => {
                let fixed: Vec<usize> = fixes.iter().map(|(i, _)| *i).collect();
                // A node holding the majority's copy: its settings are the ones to give.
                let Some(source) = (0..nodes.len())
                    .find(|i| !fixed.contains(i) && copies[*i].is_some())
                    .map(|i| nodes[i])
                else {
                    continue;
                };
                for (i, fix) in fixes {
                    match fix_index(calls, source, nodes[i], uid, &fix).await {
                        Ok(task) => {
                            cluster.indexes.forget_context(uid);
                            created.extend(task.map(|t| (nodes[i], t)));
                        }
                        Err(e) => {
                            log::warn!(target: "miroir::anti_entropy", "index `{uid}`: repair on node {} failed: {e}", nodes[i].id);
                        }
                    }
                }
            }
        }
    }
    for (node, task) in created {
        status::get().requested();
        // Past the wait, the next pass refills it.
        if let Ok(Err(e)) = tokio::time::timeout(CREATION_WAIT, calls.wait_task(node, task)).await {
            log::warn!(target: "miroir::anti_entropy", "an index repaired on node {} is not ready: {e}", node.id);
        }
    }
    Ok(())
}

/// Repairs one node's copy of index `uid`; the last task enqueued.
async fn fix_index(
    calls: &Calls<'_>,
    source: &NodePeer,
    node: &NodePeer,
    uid: &str,
    fix: &IndexFix,
) -> Result<Option<u64>, CallError> {
    let (task, kind) = match fix {
        IndexFix::Create(pk) => {
            let index = IndexInfo {
                uid: uid.to_owned(),
                primary_key: pk.clone(),
            };
            status::get().requested();
            (
                copy_index(calls, source, node, &index, true).await?,
                Repair::Missing,
            )
        }
        IndexFix::PrimaryKey(pk) => {
            status::get().requested();
            let body = Bytes::from(json!({ "primaryKey": pk }).to_string());
            let path = format!("/indexes/{uid}");
            (
                calls.enqueue(node, ("PATCH", &path), body, &[]).await?,
                Repair::Different,
            )
        }
    };
    status::get().set_repaired(Set::Indexes, kind);
    log::info!(target: "miroir::anti_entropy", "index `{uid}`: node {} repaired ({fix:?}) from node {}", node.id, source.id);
    Ok(task)
}
