//! Online resharding's record: the indexes whose shard count S is being changed, the phase
//! each is in, and the mirror of their writes. While an index is resharded, a hidden shadow
//! index (`_miroir_reshard_<uid>`) holds the other layout: the new S while it is filled
//! (`Copying`, `Verifying`), the old S once the two swapped places on the nodes (`Flipped`),
//! where it is kept for a rollback. Every write the index accepts meanwhile is also kept, in
//! the index's write order, in one durable log (the hint store, under a key no node id can
//! take), and `reshard/` replays it on the shadow: both layouts receive the same writes in the
//! same order. Kept in Miroir's data directory (`reshards.json`), saved before it is visible.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use dashmap::DashMap;
use miroir_filters::routing::NodeId;
use miroir_handoff::Hint;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::durable;
use super::kept::Kept;
use super::Cluster;

const FILE: &str = "reshards.json";
/// Outcomes kept for `GET /_miroir/reshards`; the oldest is dropped first.
const HISTORY: usize = 20;

/// Index uids Miroir keeps for itself: never listed, never reachable by a client.
pub const INTERNAL_PREFIX: &str = "_miroir_";
const SHADOW_PREFIX: &str = "_miroir_reshard_";
/// Meilisearch's longest index uid.
pub const MAX_UID_BYTES: usize = 400;

pub fn shadow_of(index: &str) -> String {
    format!("{SHADOW_PREFIX}{index}")
}

pub fn is_internal(uid: &str) -> bool {
    uid.starts_with(INTERNAL_PREFIX)
}

/// The hint-store queue of `index`'s mirrored writes.
pub fn log_key(index: &str) -> String {
    format!("#reshard:{index}")
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// The shadow, with the new S, is filled from the index; writes wait in the log.
    Copying,
    /// The copy is in: the log is replayed as it grows, the layouts compared, then swapped.
    Verifying,
    /// Clients use the new layout; the shadow holds the old one, kept up to date.
    Flipped,
    /// Going back to the old layout (from `Flipped`), or dropping the shadow.
    RollingBack,
    /// Dropping the old layout for good.
    Finishing,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reshard {
    pub index: String,
    pub shadow: String,
    pub from: u32,
    pub to: u32,
    pub phase: Phase,
    pub started_at: String,
    pub flipped_at: Option<String>,
    /// When the old layout is dropped (ms since the epoch), once flipped.
    pub keep_until_ms: Option<u64>,
    /// A mirrored write was lost after the flip: the old layout is no longer exact, so a
    /// rollback is refused.
    #[serde(default)]
    pub rollback_unsafe: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub index: String,
    pub from: u32,
    pub to: u32,
    /// `finished`, `rolledBack` or `canceled`.
    pub outcome: String,
    pub at: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Book {
    active: BTreeMap<String, Reshard>,
    done: VecDeque<Outcome>,
}

/// What a write asks of a reshard besides being mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The copy cannot absorb a write (an edit by function replayed over a copy that already
    /// has it, or a mirrored write lost): the shadow is emptied and filled again.
    Restart,
    /// The index was deleted, renamed or swapped: the reshard is abandoned.
    Cancel,
}

/// How far a reshard got, for `miroir ctl reshard status` and metrics.
#[derive(Default)]
pub struct Progress {
    pub expected: AtomicU64,
    pub copied: AtomicU64,
    pub replayed: AtomicU64,
    pub verified: AtomicU64,
    pub repaired: AtomicU64,
    /// Copies started over (an edit by function, a mirrored write lost).
    pub restarts: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl Progress {
    pub fn json(&self) -> Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "expectedDocuments": n(&self.expected),
            "copiedDocuments": n(&self.copied),
            "replayedWrites": n(&self.replayed),
            "verifiedDocuments": n(&self.verified),
            "repairedDocuments": n(&self.repaired),
            "copyRestarts": n(&self.restarts),
            "lastError": self.last_error.lock().map(|e| e.clone()).unwrap_or(None),
        })
    }
}

pub struct Reshards {
    path: PathBuf,
    book: ArcSwap<Book>,
    changing: tokio::sync::Mutex<()>,
    signals: DashMap<String, Signal>,
    progress: DashMap<String, Arc<Progress>>,
}

impl Reshards {
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join(FILE);
        let book = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Self {
            path,
            book: ArcSwap::from_pointee(book),
            changing: tokio::sync::Mutex::new(()),
            signals: DashMap::new(),
            progress: DashMap::new(),
        })
    }

    pub fn get(&self, index: &str) -> Option<Reshard> {
        self.book.load().active.get(index).cloned()
    }

    pub fn active(&self) -> Vec<Reshard> {
        self.book.load().active.values().cloned().collect()
    }

    pub fn history(&self) -> Vec<Outcome> {
        self.book.load().done.iter().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.book.load().active.is_empty()
    }

    pub fn progress(&self, index: &str) -> Arc<Progress> {
        self.progress.entry(index.to_owned()).or_default().clone()
    }

    /// Takes the signal a write left for `index`'s reshard, if any.
    pub fn take_signal(&self, index: &str) -> Option<Signal> {
        self.signals.remove(index).map(|(_, s)| s)
    }

    fn signal(&self, index: &str, signal: Signal) {
        // A cancelation outranks a restart.
        let mut slot = self.signals.entry(index.to_owned()).or_insert(signal);
        if signal == Signal::Cancel {
            *slot = Signal::Cancel;
        }
    }

    /// Records a new reshard. The caller holds the write gate alone: every write either came
    /// before it (and is in what the copy reads) or is mirrored.
    pub async fn begin(&self, reshard: Reshard) -> Result<(), String> {
        self.progress.insert(reshard.index.clone(), Arc::default());
        self.signals.remove(&reshard.index);
        self.change(move |b| {
            b.active.insert(reshard.index.clone(), reshard);
        })
        .await
    }

    /// Changes `index`'s record (its phase, its flip time).
    pub async fn update(&self, index: &str, f: impl FnOnce(&mut Reshard)) -> Result<(), String> {
        self.change(|b| {
            if let Some(r) = b.active.get_mut(index) {
                f(r);
            }
        })
        .await
    }

    /// Ends `index`'s reshard: nothing is mirrored from then on.
    pub async fn end(
        &self,
        index: &str,
        (outcome, at): (&str, String),
        reason: Option<String>,
    ) -> Result<(), String> {
        let outcome = outcome.to_owned();
        self.change(move |b| {
            if let Some(r) = b.active.remove(index) {
                b.done.push_back(Outcome {
                    index: r.index,
                    from: r.from,
                    to: r.to,
                    outcome,
                    at,
                    reason,
                });
                while b.done.len() > HISTORY {
                    b.done.pop_front();
                }
            }
        })
        .await?;
        self.signals.remove(index);
        Ok(())
    }

    async fn change(&self, f: impl FnOnce(&mut Book)) -> Result<(), String> {
        let _one_at_a_time = self.changing.lock().await;
        let mut next = Book::clone(&self.book.load());
        f(&mut next);
        let next = Arc::new(next);
        let (path, saved) = (self.path.clone(), next.clone());
        tokio::task::spawn_blocking(move || durable::save_json(&path, &*saved))
            .await
            .map_err(|e| e.to_string())??;
        self.book.store(next);
        Ok(())
    }
}

/// One write a client made, as the write path hands it over.
pub struct Write<'a> {
    pub route: &'a str,
    pub index: &'a str,
    pub method: &'a str,
    /// The client's path and query.
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [Bytes],
}

/// Mirrors `write` for its index's reshard, if one runs. Called in the index's write order,
/// once the write went to the nodes (or their hint queues); the returned entry is waited for
/// with [`durable`] once the order is released.
pub fn mirror(cluster: &Cluster, write: &Write<'_>) -> Option<Kept> {
    let reshards = &cluster.reshards;
    let r = reshards.book.load().active.get(write.index).cloned()?;
    match write.route {
        "index.delete" | "swap_indexes" => {
            reshards.signal(write.index, Signal::Cancel);
            return None;
        }
        "index.update" if renames(write) => {
            reshards.signal(write.index, Signal::Cancel);
            return None;
        }
        // Replayed over a copy that may already hold its effect, an edit by function would
        // apply twice: the copy starts over instead.
        "documents.edit" if matches!(r.phase, Phase::Copying | Phase::Verifying) => {
            reshards.signal(write.index, Signal::Restart);
            return None;
        }
        _ => {}
    }
    let rest = write
        .path
        .strip_prefix("/indexes/")
        .and_then(|p| p.strip_prefix(write.index))?;
    let hint = Hint {
        index_uid: r.shadow.clone(),
        method: write.method.to_owned(),
        path: format!("/indexes/{}{rest}", r.shadow),
        content_type: write.content_type.map(str::to_owned),
        body: write.body.to_vec(),
        maybe_applied: false,
    };
    let queue = NodeId::new("reshard").ok()?;
    Some(Kept::enqueue(
        cluster,
        &queue,
        &log_key(write.index),
        hint,
        u64::MAX,
    ))
}

/// Waits until a mirrored write is on disk; one that could not be kept makes the reshard copy
/// again (or, once flipped, refuse a rollback).
pub async fn durable(cluster: &Cluster, index: &str, kept: Kept) {
    if let Err(e) = kept.durable().await {
        log::error!(target: "miroir::reshard", "a write to `{index}` could not be kept for its reshard: {e}");
        cluster.reshards.signal(index, Signal::Restart);
    }
}

/// A swap naming `index`: its reshard is abandoned (called for every swap, whose write order
/// is the instance's, not an index's).
pub fn swapped(cluster: &Cluster, body: &[u8]) {
    let reshards = &cluster.reshards;
    if reshards.is_empty() {
        return;
    }
    let Ok(Value::Array(swaps)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    for swap in &swaps {
        let pair: Vec<&str> = swap["indexes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for uid in &pair {
            // The flip itself swaps an index with its own shadow.
            let own = pair.iter().any(|other| *other == shadow_of(uid));
            if !own && reshards.get(uid).is_some() {
                reshards.signal(uid, Signal::Cancel);
            }
        }
    }
}

fn renames(write: &Write<'_>) -> bool {
    let body: Vec<u8> = write.body.iter().flat_map(|c| c.iter().copied()).collect();
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["uid"].as_str().map(|u| u != write.index))
        .unwrap_or(false)
}
