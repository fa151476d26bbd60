//! How a topology change is going, for `miroir ctl status`/`watch`, the admin API and
//! metrics: per shard move, documents and bytes copied, and the step it is at. Kept in
//! memory; the change itself is durable in `topology.json`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use serde_json::{json, Value};

/// One new owner's copy of one shard (every index).
#[derive(Debug)]
pub struct MoveProgress {
    pub documents: AtomicU64,
    pub bytes: AtomicU64,
    /// Documents the shard held on its source when the copy started (every index).
    pub expected: AtomicU64,
    pub started: Instant,
}

impl Default for MoveProgress {
    fn default() -> Self {
        Self {
            documents: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl MoveProgress {
    pub fn json(&self) -> Value {
        let documents = self.documents.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        json!({
            "documentsCopied": documents,
            "bytesCopied": self.bytes.load(Ordering::Relaxed),
            "documentsExpected": self.expected.load(Ordering::Relaxed),
            "documentsPerSecond": (documents as f64 / seconds).round(),
        })
    }
}

/// The fleet service's shared state: progress, the step it is at, and a bell to ring when
/// an operator starts a change.
#[derive(Default)]
pub struct ChangeProgress {
    /// Keyed by (new owner, group, shard).
    moves: DashMap<(String, u32, u32), Arc<MoveProgress>>,
    /// What the change service is doing, or why it is waiting.
    pub step: std::sync::Mutex<String>,
    pub wake: tokio::sync::Notify,
    /// Serializes every topology mutation (apply, the service's steps).
    pub mutate: tokio::sync::Mutex<()>,
}

impl ChangeProgress {
    pub fn of(&self, node: &str, group: u32, shard: u32) -> Arc<MoveProgress> {
        self.moves
            .entry((node.to_owned(), group, shard))
            .or_default()
            .clone()
    }

    pub fn get(&self, node: &str, group: u32, shard: u32) -> Option<Arc<MoveProgress>> {
        self.moves
            .get(&(node.to_owned(), group, shard))
            .map(|p| p.clone())
    }

    pub fn restart(&self, node: &str, group: u32, shard: u32) -> Arc<MoveProgress> {
        let fresh = Arc::new(MoveProgress::default());
        self.moves
            .insert((node.to_owned(), group, shard), fresh.clone());
        fresh
    }

    pub fn clear(&self) {
        self.moves.clear();
    }

    pub fn set_step(&self, step: impl Into<String>) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = step.into();
    }

    pub fn step(&self) -> String {
        self.step.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
