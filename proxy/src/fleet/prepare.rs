//! A node joining the fleet first receives what every node holds, before any write or read
//! reaches it: every index (same uid, primary key and settings, `_miroir_shard` filterable
//! among them) and every key (same uid, so nodes sharing the master key derive the same key
//! string). Each step is idempotent: a restarted change runs it again.

use std::collections::BTreeSet;

use bytes::Bytes;
use miroir_filters::transfer;
use serde_json::{json, Map, Value};

use super::calls::{CallError, Calls};
use crate::upstream::NodePeer;

/// An index as a change needs it.
#[derive(Clone, Debug)]
pub struct IndexInfo {
    pub uid: String,
    pub primary_key: Option<String>,
}

/// Every index `node` has, in uid order.
pub async fn indexes(calls: &Calls<'_>, node: &NodePeer) -> Result<Vec<IndexInfo>, CallError> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let path = format!("/indexes?limit=1000&offset={offset}");
        let Some(page) = calls.get(node, &path).await? else {
            break;
        };
        let results = page["results"].as_array().cloned().unwrap_or_default();
        offset += results.len();
        all.extend(results.iter().filter_map(|i| {
            Some(IndexInfo {
                uid: i["uid"].as_str()?.to_owned(),
                primary_key: i["primaryKey"].as_str().map(str::to_owned),
            })
        }));
        if results.len() < 1000 {
            break;
        }
    }
    all.sort_by(|a, b| a.uid.cmp(&b.uid));
    Ok(all)
}

/// Gives `target` every index of `source` that it lacks, with the same settings.
pub async fn copy_indexes(
    calls: &Calls<'_>,
    source: &NodePeer,
    target: &NodePeer,
) -> Result<usize, CallError> {
    let wanted = indexes(calls, source).await?;
    let held: BTreeSet<String> = indexes(calls, target)
        .await?
        .into_iter()
        .map(|i| i.uid)
        .collect();
    let mut last = None;
    for index in &wanted {
        let create = !held.contains(&index.uid);
        last = copy_index(calls, source, target, index, create)
            .await?
            .or(last);
    }
    if let Some(uid) = last {
        calls.wait_task(target, uid).await?;
    }
    Ok(wanted.len())
}

/// Gives `target` the index `index` of `source` (created first when `create`) with the same
/// settings; the uid of the last task enqueued.
pub async fn copy_index(
    calls: &Calls<'_>,
    source: &NodePeer,
    target: &NodePeer,
    index: &IndexInfo,
    create: bool,
) -> Result<Option<u64>, CallError> {
    let mut last = None;
    if create {
        let mut creation = Map::new();
        creation.insert("uid".into(), json!(index.uid));
        if let Some(pk) = &index.primary_key {
            creation.insert("primaryKey".into(), json!(pk));
        }
        let body = Bytes::from(Value::Object(creation).to_string());
        last = calls
            .enqueue(target, ("POST", "/indexes"), body, &[])
            .await?;
    }
    // Settings every time: a restarted step may have created the index without them.
    let path = format!("/indexes/{}/settings", index.uid);
    let Some(settings) = calls.get(source, &path).await? else {
        return Ok(last); // deleted on the source meanwhile
    };
    let body = Bytes::from(settings.to_string());
    Ok(calls
        .enqueue(target, ("PATCH", &path), body, &[])
        .await?
        .or(last))
}

/// Makes `target`'s keys those of `source`: the same uids (so the same key strings), and
/// none of its own (its default keys have uids no other node has).
pub async fn copy_keys(
    calls: &Calls<'_>,
    source: &NodePeer,
    target: &NodePeer,
) -> Result<usize, CallError> {
    let keys = |v: Option<Value>| -> Vec<Value> {
        v.and_then(|v| v["results"].as_array().cloned())
            .unwrap_or_default()
    };
    let wanted = keys(calls.get(source, "/keys?limit=10000").await?);
    let held = keys(calls.get(target, "/keys?limit=10000").await?);
    let uid = |k: &Value| k["uid"].as_str().map(str::to_owned);
    let held_uids: BTreeSet<String> = held.iter().filter_map(uid).collect();
    let wanted_uids: BTreeSet<String> = wanted.iter().filter_map(uid).collect();
    for key in &wanted {
        if key["uid"].as_str().is_none_or(|u| held_uids.contains(u)) {
            continue;
        }
        let body = Bytes::from(transfer::key_creation(key).to_string());
        calls.enqueue(target, ("POST", "/keys"), body, &[]).await?;
    }
    for key in &held {
        let Some(u) = key["uid"].as_str() else {
            continue;
        };
        if !wanted_uids.contains(u) {
            let path = format!("/keys/{u}");
            calls
                .enqueue(target, ("DELETE", &path), Bytes::new(), &[204, 404])
                .await?;
        }
    }
    Ok(wanted.len())
}
