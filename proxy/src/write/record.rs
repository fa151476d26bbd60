//! The client's answer to a write: a refusal every node shares, a quorum failure, or one
//! Miroir task over the node tasks (with the replicas still to get it as pending replays).

use std::borrow::Cow;
use std::collections::BTreeSet;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::query;
use miroir_filters::routing::{NodeId, ShardId};
use miroir_handoff::Seq;
use miroir_tasks::{Created, Idempotency, NewTask, NodeTask, Replay, TaskUid};
use serde_json::Value;

use super::quorum::{degraded_header, judge_with, shard_list, QuorumReport};
use super::send::Sent;
use crate::cluster::Runtime;
use crate::node_io::accepted_task_uid;
use crate::repair::handoff;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::tasks;

/// What a write was, for recording its task.
pub(super) struct Write<'a> {
    pub inc: &'a Incoming,
    pub index_uid: &'a str,
    /// The shards the write touched.
    pub shards: &'a BTreeSet<ShardId>,
    /// Details Miroir knows itself.
    pub details: Value,
    pub idempotency: Option<Idempotency>,
}

/// Turns the parts' answers into the client's answer: a relayed refusal, a quorum failure, or
/// one recorded Miroir task.
pub(super) async fn conclude(shared: &Shared, rt: &Runtime, write: Write<'_>, sent: Sent) -> Reply {
    let hints: Vec<(NodeId, Seq)> = sent
        .hinted
        .iter()
        .map(|(n, seq)| (rt.nodes[n.index()].id.clone(), *seq))
        .collect();
    let reply = judge_and_record(shared, rt, write, &sent).await;
    if reply.status == 202 || applied(&sent) {
        // Acknowledged, or applied on some replica although refused (no quorum, a task-store
        // error): rolled forward, every replica gets it (from its log, or by a resync where
        // no hint could be kept), so none is left to differ.
        for n in &sent.lost {
            handoff::lost(&shared.cluster, &rt.nodes[n.index()].id).await;
        }
    } else {
        // It reached no node (the client may not even be allowed to write): nothing is
        // replayed.
        handoff::forget(&shared.cluster, &hints).await;
    }
    reply
}

/// Some replica accepted a part.
fn applied(sent: &Sent) -> bool {
    sent.parts
        .iter()
        .any(|(_, r)| accepted_task_uid(r).is_some())
}

async fn judge_and_record(shared: &Shared, rt: &Runtime, write: Write<'_>, sent: &Sent) -> Reply {
    let Write {
        inc,
        index_uid,
        shards,
        details,
        idempotency,
    } = write;
    let received_at = inc.received_at.as_str();
    if !sent
        .parts
        .iter()
        .any(|(_, r)| accepted_task_uid(r).is_some())
    {
        // Nobody accepted: a refusal every node shares (auth, validation) is the answer.
        if let Some(resp) = sent
            .parts
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .find(|r| (400..500).contains(&r.status))
        {
            return Reply::relay(resp);
        }
    }
    let report = judge(rt, shards, sent);
    if !report.failed.is_empty() {
        let error = MiroirError::new(
            Code::NoQuorum,
            format!(
                "The write did not reach its quorum for shards {}.",
                shard_list(&report.failed)
            ),
        );
        return Reply::error(&if applied(sent) {
            handoff::rolled_forward(error)
        } else {
            never_applied(error)
        });
    }
    let degraded = degraded_header(&report);
    if let Some(d) = &degraded {
        log::warn!(target: "miroir::write", "degraded write to `{index_uid}`: {d}");
    }
    let first = sent.parts.iter().find_map(|(_, r)| {
        accepted_task_uid(r)
            .and(r.as_ref().ok())
            .and_then(|r| r.json())
    });
    let first = first.unwrap_or(Value::Null);
    let node_tasks = sent
        .parts
        .iter()
        .filter_map(|(n, r)| {
            // Replicas that missed the write do not fail the task: the quorum holds it.
            accepted_task_uid(r).map(|uid| NodeTask {
                node: rt.nodes[n.index()].id.to_string(),
                task_uid: Some(uid),
                error: None,
                share: sent.items(*n),
            })
        })
        .collect();
    let task = NewTask {
        index_uid: Some(index_uid.to_owned()),
        kind: first["type"]
            .as_str()
            .unwrap_or("documentAdditionOrUpdate")
            .to_owned(),
        enqueued_at: received_at.to_owned(),
        node_tasks,
        // The client's own: the nodes hold Miroir's marker (`node_io::once`).
        custom_metadata: query::param(&inc.path, "customMetadata").map(Cow::into_owned),
        details: Some(details),
    };
    let reply = match tasks::create(shared, task, idempotency).await {
        Ok(Created::New(mut r)) => {
            r.replays = sent
                .hinted
                .iter()
                .map(|(n, seq)| Replay {
                    node: rt.nodes[n.index()].id.to_string(),
                    seq: seq.0,
                })
                .collect();
            if !r.replays.is_empty() {
                tasks::record_replays(shared, r.uid, r.replays.clone()).await;
            }
            Reply::json(202, &tasks::summary(&r))
        }
        Ok(Created::Replayed(r)) => Reply::json(202, &tasks::summary(&r)),
        // The nodes have it (some replica accepted it, checked above): it stays.
        Ok(Created::KeyReused { original }) => {
            return Reply::error(&handoff::rolled_forward(key_reused_error(original)))
        }
        Err(e) => return Reply::error(&handoff::rolled_forward(e)),
    };
    reply.degraded(degraded)
}

/// The quorum judgement of what was actually sent.
fn judge(rt: &Runtime, shards: &BTreeSet<ShardId>, sent: &Sent) -> QuorumReport {
    judge_with(rt, shards, |n| sent.accepted(n), |n| sent.hinted(n))
}

pub(super) fn key_reused(original: TaskUid) -> Reply {
    Reply::error(&key_reused_error(original))
}

fn key_reused_error(original: TaskUid) -> MiroirError {
    MiroirError::new(
        Code::IdempotencyKeyReused,
        format!(
            "This Idempotency-Key was used for task {} with a different request.",
            original.0
        ),
    )
}

/// The error of a write no node applied.
fn never_applied(mut error: MiroirError) -> MiroirError {
    error
        .message
        .push_str(" It was applied on no node: nothing of it takes effect.");
    error
}
