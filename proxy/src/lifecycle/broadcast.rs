//! Broadcast: one client request applied to every node, answered as one Meilisearch response.
//! Task-creating routes become one Miroir task over the node tasks; synchronous routes
//! (keys, experimental features) answer as one node would when every node agrees. What a
//! node missed is handed to `repair` (hints for settings and document deletions, replays and
//! rollbacks for index operations).

use std::borrow::Cow;

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden;
use miroir_filters::query;
use miroir_handoff::{Hint, Seq};
use miroir_tasks::{Created, NewTask, NodeTask, Replay};
use serde_json::Value;

use super::{display, facet_limit, keys, shard_field};
use crate::cluster::{move_log, reshards, Runtime};
use crate::node_io::{self, accepted_task_uid, failure_json, missed, once};
use crate::repair::{handoff, index_repairs, settings_drift};
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::tasks;
use crate::upstream::{NodeRequest, NodeResponse, NodeResult};

pub async fn broadcast(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    record_deletion(shared, inc).await;
    let mut body = [shard_field::rewrite_update(
        inc.route,
        &keys::with_key_uid(inc),
    )];
    let display_set = match display::with_whole_display(shared, rt, inc, &body[0]).await {
        Some(whole) => {
            body[0] = whole;
            true
        }
        None => false,
    };
    let chunks: &[Bytes] = if body[0].is_empty() { &[] } else { &body };
    let logged = handoff::logged_route(inc.route);
    let (results, hinted) = if logged {
        send_or_hint(shared, rt, inc, chunks).await
    } else {
        let results = node_io::every(
            &shared.cluster,
            rt,
            inc.node_request(chunks),
            rt.config.scatter.node_timeout,
        )
        .await;
        (results, Vec::new())
    };
    if matches!(inc.route, "index.delete" | "swap_indexes") {
        // Writes of the index in a move log would land on the wrong index (or bring a deleted
        // one back): the copies start over.
        for (i, node) in rt.nodes.iter().enumerate() {
            if !rt.copying(i).is_empty() {
                move_log::break_log(&shared.cluster, &node.id).await;
            }
        }
    }
    let lost: Vec<usize> = (0..rt.nodes.len())
        .filter(|i| logged && missed(&results[*i]) && !hinted.iter().any(|(h, _)| h == i))
        .collect();
    // Some node applied it: whatever the client is answered, the nodes that missed it get it
    // from their log (rolled forward), never left to differ.
    let applied = results.iter().any(applied);
    let reply = broadcast_outcome(shared, rt, inc, (&body, display_set), results, &hinted).await;
    if applied {
        for i in lost {
            handoff::lost(&shared.cluster, &rt.nodes[i].id).await;
        }
    } else {
        let hints: Vec<_> = hinted
            .iter()
            .map(|(i, seq)| (rt.nodes[*i].id.clone(), *seq))
            .collect();
        handoff::forget(&shared.cluster, &hints).await;
    }
    reply
}

/// Deletions are remembered before any node gets them, so a replica that misses one is never
/// taken for the one that is right (see `repair::anti_entropy`).
async fn record_deletion(shared: &Shared, inc: &Incoming) {
    let Some(index) = &inc.index_uid else { return };
    let journal = &shared.anti_entropy;
    match inc.route {
        "documents.clear" | "index.delete" => journal.cleared(index).await,
        "documents.delete_by_filter" => {
            // The filter as the nodes get it (the shard field masked).
            let body = hidden::mask_write_filter(inc.route, &inc.body);
            let filter = serde_json::from_slice::<Value>(body.as_deref().unwrap_or(&inc.body))
                .ok()
                .and_then(|b| b.get("filter").cloned());
            if let Some(filter) = filter {
                journal.deleted_by_filter(index, filter.to_string()).await;
            }
        }
        _ => {}
    }
}

/// The node took the change: a task accepted, or a synchronous change made.
fn applied(result: &NodeResult) -> bool {
    result
        .as_ref()
        .is_ok_and(|resp| (200..300).contains(&resp.status))
}

/// Changes a node may miss and get later from its log, in the order Miroir accepted them
/// (see `handoff::logged_route`).
async fn send_or_hint(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    chunks: &[Bytes],
) -> (Vec<NodeResult>, Vec<(usize, Seq)>) {
    let scope = handoff::log_scope(inc.route, inc.index_uid.as_deref(), &inc.body);
    let _turn = shared.cluster.write_turn(&scope).await;
    let path = once::tagged(&inc.method, &inc.path);
    let req = NodeRequest {
        path: &path,
        ..inc.node_request(chunks)
    };
    let outcome = handoff::send_every(&shared.cluster, rt, &req, || {
        as_hint(inc, (&scope, &path), chunks)
    })
    .await;
    if inc.route == "index.delete" && outcome.0.iter().any(applied) {
        // Before the index's next write can be split.
        super::index_shards::deleted(shared, rt, &scope).await;
    }
    if let Some(index_uid) = &inc.index_uid {
        keep_for_copies(shared, rt, inc, index_uid, chunks).await;
        if outcome.0.iter().any(applied) || !outcome.1.is_empty() {
            mirror_for_reshard(shared, inc, index_uid).await;
        }
    } else if inc.route == "swap_indexes" {
        reshards::swapped(&shared.cluster, &inc.body);
    }
    outcome
}

/// An index being resharded keeps the change for its other layout, in its write order (the
/// client's body: the replay rewrites it as this broadcast did).
async fn mirror_for_reshard(shared: &Shared, inc: &Incoming, index_uid: &str) {
    let write = reshards::Write {
        route: inc.route,
        index: index_uid,
        method: &inc.method,
        path: &inc.path,
        content_type: inc.content_type.as_deref(),
        body: std::slice::from_ref(&inc.body),
    };
    if let Some(kept) = reshards::mirror(&shared.cluster, &write) {
        reshards::durable(&shared.cluster, index_uid, kept).await;
    }
}

/// The request as a node will receive it later: from its log or its move log.
fn as_hint(inc: &Incoming, (scope, path): (&str, &str), chunks: &[Bytes]) -> Hint {
    Hint {
        index_uid: scope.to_owned(),
        method: inc.method.clone(),
        path: path.to_owned(),
        content_type: inc.content_type.clone(),
        body: chunks.to_vec(),
        maybe_applied: false,
    }
}

/// A node receiving a copy of some shards needs this index write again after its copy: a
/// deletion is kept in its move log (applying it twice is harmless); an edit by function is
/// not repeatable, so the node's copies start over from the source, which has applied it.
async fn keep_for_copies(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    chunks: &[Bytes],
) {
    for (i, node) in rt.nodes.iter().enumerate() {
        if rt.copying(i).is_empty() {
            continue;
        }
        match inc.route {
            "documents.clear" | "documents.delete_by_filter" => {
                let hint = as_hint(inc, (index_uid, &inc.path), chunks);
                move_log::append(&shared.cluster, &node.id, hint).await;
            }
            "documents.edit" => move_log::break_log(&shared.cluster, &node.id).await,
            _ => {}
        }
    }
}

async fn broadcast_outcome(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    (body, display_set): (&[Bytes; 1], bool),
    results: Vec<NodeResult>,
    hinted: &[(usize, Seq)],
) -> Reply {
    forget_index_state(shared, inc);
    let accepted = results
        .iter()
        .filter(|r| accepted_task_uid(r).is_some())
        .count();
    if accepted > 0 {
        if let (true, Some(index)) = (shard_field::resets(inc.route), &inc.index_uid) {
            shard_field::restore(shared, rt, inc, index, display_set).await;
        }
        if let (true, Some(index)) = (inc.route.starts_with("settings."), &inc.index_uid) {
            facet_limit::after_update(shared, rt, inc, index).await;
        }
        // A settings update carrying the filterable attributes now includes the shard field
        // on every node that accepted it: later writes must not re-send it, or their update
        // would land after (and replace) the client's queued one.
        if accepted == results.len() && hidden::sets_filterable(inc.route, &inc.body) {
            if let Some(index) = &inc.index_uid {
                shared.cluster.indexes.set_shard_filterable(index, true);
            }
        }
        // A new index gets `_miroir_shard` filterable before any document can arrive: the
        // settings task queues right behind the creation on every node. A creation some
        // node refused is undone instead, before the client hears of the (failed) task.
        if inc.route == "indexes.create" {
            let created = serde_json::from_slice::<Value>(&inc.body).ok();
            if let Some(uid) = created.as_ref().and_then(|v| v["uid"].as_str()) {
                if accepted + hinted.len() == results.len() {
                    shard_field::after_creation(shared, rt, inc, uid).await;
                    facet_limit::ensure(shared, rt, inc, uid).await;
                } else {
                    shared.cluster.indexes.set_shard_filterable(uid, false);
                }
            }
            let hinted_nodes: Vec<usize> = hinted.iter().map(|(i, _)| *i).collect();
            let undone = index_repairs::after_creation(
                &shared.cluster,
                &shared.index_repairs,
                rt,
                inc,
                &results,
                &hinted_nodes,
            )
            .await;
            if undone {
                // Undone where it was made: the nodes that missed it must not make it later.
                let hints: Vec<_> = hinted
                    .iter()
                    .map(|(i, seq)| (rt.nodes[*i].id.clone(), *seq))
                    .collect();
                handoff::forget(&shared.cluster, &hints).await;
            }
        }
        settings_drift::after_update(&shared.settings_checks, rt, inc, &results);
        return record_task(shared, rt, inc, &results, hinted).await;
    }
    let ok = |r: &&NodeResult| {
        r.as_ref()
            .is_ok_and(|resp| (200..300).contains(&resp.status))
    };
    let oks = results.iter().filter(ok).count();
    let kept = |i: usize| hinted.iter().any(|(h, _)| *h == i);
    if oks > 0 && (0..results.len()).all(|i| ok(&&results[i]) || kept(i)) {
        // Applied on every node that answered (they agree: answer as one of them); the others
        // get it from their log before they serve again.
        return results
            .iter()
            .find(|r| ok(r))
            .and_then(|r| r.as_ref().ok())
            .map_or_else(|| Reply::error(&no_node()), Reply::relay);
    }
    if oks > 0 {
        let refused: Vec<&str> = rt
            .nodes
            .iter()
            .zip(&results)
            .enumerate()
            .filter(|(i, (_, r))| !ok(r) && !kept(*i))
            .map(|(_, (n, _))| n.id.as_str())
            .collect();
        log::warn!(
            target: "miroir::broadcast",
            "request {}: {} {} applied on some nodes but not on {}",
            inc.request_id,
            inc.method,
            inc.path.split('?').next().unwrap_or(""),
            refused.join(", ")
        );
        if inc.route == "keys.create" && keys::undo_creation(shared, rt, &body[0], &results).await {
            let hints: Vec<_> = hinted
                .iter()
                .map(|(i, seq)| (rt.nodes[*i].id.clone(), *seq))
                .collect();
            handoff::forget(&shared.cluster, &hints).await;
            return Reply::error(&MiroirError::new(
                Code::NoQuorum,
                format!(
                    "The key was not created on {}; it was deleted again where it was created, so no node has it. Retry it.",
                    refused.join(", ")
                ),
            ));
        }
        return Reply::error(&MiroirError::new(
            Code::NoQuorum,
            format!(
                "The change was applied on some nodes but refused by {}; the nodes that missed it get it when they are back.",
                refused.join(", ")
            ),
        ));
    }
    // Nobody accepted: a client error (or 501) every node agrees on is the answer.
    if let Some(resp) = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .find(|r| r.judged())
    {
        return Reply::relay(resp);
    }
    Reply::error(&MiroirError::new(
        Code::NoNodeAvailable,
        "No Meilisearch node accepted the request.",
    ))
}

fn no_node() -> MiroirError {
    MiroirError::new(Code::NoNodeAvailable, "No Meilisearch node is configured.")
}

/// Cached per-index knowledge a broadcast may have made stale.
fn forget_index_state(shared: &Shared, inc: &Incoming) {
    let indexes = &shared.cluster.indexes;
    match &inc.index_uid {
        Some(index) if inc.route == "index.delete" => indexes.forget(index),
        Some(index) => indexes.forget_context(index),
        // Swaps and other global changes: forget everything.
        None => indexes.forget_all(),
    }
}

/// Records one Miroir task over the node tasks and answers Meilisearch's 202 summary.
async fn record_task(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    results: &[NodeResult],
    hinted: &[(usize, Seq)],
) -> Reply {
    let first = results.iter().find_map(|r| {
        accepted_task_uid(r)
            .and(r.as_ref().ok())
            .and_then(NodeResponse::json)
    });
    let first = first.unwrap_or(Value::Null);
    let node_tasks: Vec<NodeTask> = rt
        .nodes
        .iter()
        .zip(results)
        .enumerate()
        // A node that gets the write as a hint later has no part of its own yet.
        .filter(|(i, _)| !hinted.iter().any(|(h, _)| h == i))
        .map(|(_, (node, r))| match accepted_task_uid(r) {
            Some(uid) => NodeTask {
                node: node.id.to_string(),
                task_uid: Some(uid),
                error: None,
                share: 0,
            },
            None => NodeTask {
                node: node.id.to_string(),
                task_uid: None,
                error: Some(failure_json(r)),
                share: 0,
            },
        })
        .collect();
    let task = NewTask {
        index_uid: first["indexUid"].as_str().map(str::to_owned),
        kind: first["type"].as_str().unwrap_or("unknown").to_owned(),
        enqueued_at: inc.received_at.clone(),
        node_tasks,
        // The client's own: the nodes hold Miroir's marker (`node_io::once`).
        custom_metadata: query::param(&inc.path, "customMetadata").map(Cow::into_owned),
        details: None,
    };
    match tasks::create(shared, task, None).await {
        Ok(Created::New(mut record)) => {
            if !hinted.is_empty() {
                record.replays = hinted
                    .iter()
                    .map(|(i, seq)| Replay {
                        node: rt.nodes[*i].id.to_string(),
                        seq: seq.0,
                    })
                    .collect();
                tasks::record_replays(shared, record.uid, record.replays.clone()).await;
            }
            Reply::json(202, &tasks::summary(&record))
        }
        Ok(Created::Replayed(record)) => Reply::json(202, &tasks::summary(&record)),
        Ok(Created::KeyReused { .. }) => Reply::error(&handoff::rolled_forward(MiroirError::new(
            Code::Internal,
            "unexpected idempotency state.",
        ))),
        Err(e) => Reply::error(&handoff::rolled_forward(e)),
    }
}
