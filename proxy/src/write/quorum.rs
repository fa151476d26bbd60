//! The write quorum, judged per shard: some replica group must hold the write on
//! `write_quorum` replicas, a durably kept hint standing in for a replica but never alone.

use std::collections::{BTreeMap, BTreeSet};

use miroir_conf::WriteQuorum;
use miroir_filters::routing::{GroupId, NodeIdx, ShardId};

use crate::cluster::Runtime;

/// Per touched shard: did some group reach the quorum, and which groups missed replicas.
pub(super) struct QuorumReport {
    pub failed: Vec<ShardId>,
    pub degraded: BTreeMap<ShardId, BTreeSet<GroupId>>,
}

/// The quorum judgement over any notion of "accepted" and "hinted" (actual or hoped for).
pub(super) fn judge_with(
    rt: &Runtime,
    shards: &BTreeSet<ShardId>,
    accepted: impl Fn(NodeIdx) -> bool,
    hinted: impl Fn(NodeIdx) -> bool,
) -> QuorumReport {
    // Judged on the owners that serve reads, and nodes being rebuilt (their move log keeps
    // the write durably): during a shard move, a new owner's copy is not what searches see.
    let p = rt.owners();
    let quorum: WriteQuorum = rt.config.write_quorum;
    let need = quorum.required(p.replication_factor());
    let mut report = QuorumReport {
        failed: Vec::new(),
        degraded: BTreeMap::new(),
    };
    for &shard in shards {
        let mut reached = false;
        for g in 0..p.groups() {
            let group = GroupId(g);
            let replicas = p.replicas(group, shard);
            let acks = replicas.iter().filter(|&&n| accepted(n)).count() as u32;
            // A durably kept hint stands in for its replica (a sloppy quorum), but never
            // alone: some replica must hold the write itself.
            let hints = replicas.iter().filter(|&&n| hinted(n)).count() as u32;
            reached |= acks >= 1 && acks + hints >= need;
            if (acks as usize) < replicas.len() {
                report.degraded.entry(shard).or_default().insert(group);
            }
        }
        if !reached {
            report.failed.push(shard);
        }
    }
    report
}

pub(super) fn degraded_header(report: &QuorumReport) -> Option<String> {
    if report.degraded.is_empty() {
        return None;
    }
    let shards: Vec<String> = report.degraded.keys().map(|s| s.0.to_string()).collect();
    let groups: BTreeSet<u32> = report.degraded.values().flatten().map(|g| g.0).collect();
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    Some(format!(
        "shards={};groups={}",
        shards.join(","),
        groups.join(",")
    ))
}

pub(super) fn shard_list(shards: &[ShardId]) -> String {
    shards
        .iter()
        .map(|s| s.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
