//! Handing each node its part of a write, in the index's write order: sent, or kept as a
//! hint when the node is down, behind on older writes, or misses it now (no answer, 5xx).

use std::borrow::Cow;
use std::collections::BTreeSet;

use bytes::Bytes;
use miroir_filters::routing::{NodeIdx, ShardId};
use miroir_handoff::{Hint, Seq};

use super::quorum::judge_with;
use crate::cluster::kept::Kept;
use crate::cluster::{move_log, reshards, Cluster, Runtime};
use crate::node_io::{accepted_task_uid, missed, once};
use crate::repair::handoff;
use crate::request::Incoming;
use crate::upstream::{NodeRequest, NodeResult};

/// One node's part of a write.
pub(super) struct Part {
    pub node: NodeIdx,
    pub path: String,
    pub body: Vec<Bytes>,
    pub content_type: Option<String>,
    /// For the node's move log (shards it is receiving a copy of), not for the node now.
    pub move_log: bool,
    /// Documents or ids the part carries (0 for a request without any).
    pub items: u64,
}

/// The outcome of handing the parts to their nodes.
#[derive(Default)]
pub(super) struct Sent {
    pub parts: Vec<(NodeIdx, NodeResult)>,
    /// Parts kept for replay (hinted handoff) instead of reaching their node.
    pub hinted: Vec<(NodeIdx, Seq)>,
    /// Parts that neither reached their node nor could be kept for it.
    pub lost: Vec<NodeIdx>,
    /// Parts kept in their node's move log.
    pub logged: Vec<NodeIdx>,
    /// Documents or ids each sent part carried, for logical task counts.
    pub items: Vec<(NodeIdx, u64)>,
}

impl Sent {
    pub(super) fn accepted(&self, node: NodeIdx) -> bool {
        self.parts
            .iter()
            .any(|(n, r)| *n == node && accepted_task_uid(r).is_some())
    }

    /// Kept for the node, durably: as a hint, or in its move log (a node being rebuilt).
    /// Documents or ids the node's sent part carried.
    pub(super) fn items(&self, node: NodeIdx) -> u64 {
        self.items
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, i)| i)
            .sum()
    }

    pub(super) fn hinted(&self, node: NodeIdx) -> bool {
        self.hinted.iter().any(|(n, _)| *n == node) || self.logged.contains(&node)
    }
}

/// Hands each part to its node, in the index's write order: sent, or kept as a hint when the
/// node is down, behind on older writes, or misses it now (no answer, 5xx).
pub(super) async fn send_parts(
    cluster: &Cluster,
    rt: &Runtime,
    (inc, auth): (&Incoming, Option<&str>),
    (index_uid, shards): (&str, &BTreeSet<ShardId>),
    method: &str,
    mut parts: Vec<Part>,
) -> Sent {
    for part in &mut parts {
        if let Cow::Owned(path) = once::tagged(method, &part.path) {
            part.path = path;
        }
    }
    let turn = cluster.write_turn(index_uid).await;
    let (logged, parts): (Vec<&Part>, Vec<&Part>) = parts.iter().partition(|part| part.move_log);
    let (queued, direct): (Vec<&Part>, Vec<&Part>) = parts
        .into_iter()
        .partition(|part| handoff::must_queue(cluster, &rt.nodes[part.node.index()].id));
    let mut sent = Sent {
        parts: Vec::with_capacity(direct.len()),
        ..Sent::default()
    };
    // Kept parts take their place in their node's log under the write order; their commit
    // is waited for once the order is released (see `Keeping`).
    let mut keeping = Keeping::default();
    for part in queued {
        keeping.hint(cluster, rt, (index_uid, method), (part, false));
    }
    for part in logged {
        let node = &rt.nodes[part.node.index()].id;
        let entry = move_log::keep(cluster, node, as_hint(index_uid, method, part, false));
        keeping.logged.push((part.node, entry));
    }
    // A write that cannot reach its quorum even if every reachable node accepts it (replicas
    // down and their hint queues full) is refused before any node is touched.
    let reachable: Vec<NodeIdx> = direct.iter().map(|p| p.node).collect();
    let refused = !judge_with(rt, shards, |n| reachable.contains(&n), |n| keeping.taken(n))
        .failed
        .is_empty();
    if !refused {
        let sends = direct.iter().map(|part| {
            let req = NodeRequest {
                method,
                path: &part.path,
                auth,
                content_type: part.content_type.as_deref(),
                body: &part.body,
                request_id: Some(&inc.request_id),
                budget: None,
                relay: None,
            };
            let node = &rt.nodes[part.node.index()];
            async move { (*part, once::send(cluster, rt, node, &req, false).await) }
        });
        for (part, result) in futures::future::join_all(sends).await {
            let answered = !missed(&result);
            cluster.observe(rt, &rt.nodes[part.node.index()].id, answered, false);
            if !answered {
                let maybe_applied = once::uncertain(&result);
                keeping.hint(cluster, rt, (index_uid, method), (part, maybe_applied));
            }
            sent.parts.push((part.node, result));
            sent.items.push((part.node, part.items));
        }
    }
    // An index being resharded keeps the write for its other layout, in the same order.
    let mirrored = (!refused)
        .then(|| {
            reshards::mirror(
                cluster,
                &reshards::Write {
                    route: inc.route,
                    index: index_uid,
                    method,
                    path: &inc.path,
                    content_type: inc.content_type.as_deref(),
                    body: std::slice::from_ref(&inc.body),
                },
            )
        })
        .flatten();
    // Later writes of the index may go on: a node with a hint on its way queues them behind it.
    drop(turn);
    keeping.durable(cluster, &mut sent).await;
    if let Some(kept) = mirrored {
        reshards::durable(cluster, index_uid, kept).await;
    }
    sent
}

/// The parts of one write kept for their nodes, on their way to disk.
#[derive(Default)]
struct Keeping {
    hinted: Vec<(NodeIdx, Kept)>,
    logged: Vec<(NodeIdx, Kept)>,
}

impl Keeping {
    /// Keeps a part its node missed as a hint, replayed when the node is back.
    fn hint(
        &mut self,
        cluster: &Cluster,
        rt: &Runtime,
        (index_uid, method): (&str, &str),
        (part, maybe_applied): (&Part, bool),
    ) {
        let hint = as_hint(index_uid, method, part, maybe_applied);
        let kept = handoff::keep(cluster, &rt.nodes[part.node.index()].id, hint);
        self.hinted.push((part.node, kept));
    }

    /// Whether the store took a part for `node`, as a hint or in its move log (counted toward
    /// the quorum in its place).
    fn taken(&self, node: NodeIdx) -> bool {
        (self.hinted.iter().chain(&self.logged)).any(|(n, k)| *n == node && k.taken())
    }

    /// Waits for every kept part's commit and records where each ended.
    async fn durable(self, cluster: &Cluster, sent: &mut Sent) {
        for (node, kept) in self.hinted {
            match handoff::durable(cluster, kept).await {
                Some(seq) => sent.hinted.push((node, seq)),
                None => sent.lost.push(node),
            }
        }
        for (node, entry) in self.logged {
            if move_log::durable(cluster, entry).await.is_some() {
                sent.logged.push(node);
            }
        }
    }
}

fn as_hint(index_uid: &str, method: &str, part: &Part, maybe_applied: bool) -> Hint {
    Hint {
        index_uid: index_uid.to_owned(),
        method: method.to_owned(),
        path: part.path.clone(),
        content_type: part.content_type.clone(),
        // The request's chunks, shared: the store copies them once, into its page.
        body: part.body.clone(),
        maybe_applied,
    }
}
