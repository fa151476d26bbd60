//! What anti-entropy passes found and repaired, for `/_miroir/topology` and `miroir ctl
//! status` (the metrics count the same events for Prometheus).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::telemetry::metrics;

#[derive(Default)]
pub struct Status {
    passes: AtomicU64,
    last_started_ms: AtomicU64,
    last_finished_ms: AtomicU64,
    last_duration_ms: AtomicU64,
    documents_read: AtomicU64,
    node_requests: AtomicU64,
    missing: AtomicU64,
    extra: AtomicU64,
    different: AtomicU64,
    unresolved: AtomicU64,
    keys: SetCounts,
    indexes: SetCounts,
}

/// Repairs of one set (keys or indexes) by kind, and differences left unresolved.
#[derive(Default)]
struct SetCounts {
    missing: AtomicU64,
    extra: AtomicU64,
    different: AtomicU64,
    unresolved: AtomicU64,
}

impl SetCounts {
    fn snapshot(&self) -> Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "missing": n(&self.missing),
            "extra": n(&self.extra),
            "different": n(&self.different),
            "unresolved": n(&self.unresolved),
        })
    }
}

/// The sets compared besides documents.
#[derive(Clone, Copy, Debug)]
pub enum Set {
    Keys,
    Indexes,
}

impl Set {
    fn as_str(self) -> &'static str {
        match self {
            Self::Keys => "keys",
            Self::Indexes => "indexes",
        }
    }
}

static STATUS: std::sync::OnceLock<Status> = std::sync::OnceLock::new();

pub fn get() -> &'static Status {
    STATUS.get_or_init(Status::default)
}

/// What a repair did to one copy.
#[derive(Clone, Copy, Debug)]
pub enum Repair {
    /// Written to an owner that lacked it.
    Missing,
    /// Deleted from an owner that should not hold it (a missed deletion, a stray).
    Extra,
    /// Overwritten on an owner holding an older or corrupt copy.
    Different,
}

impl Repair {
    fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Extra => "extra",
            Self::Different => "different",
        }
    }
}

impl Status {
    pub fn started(&self, now_ms: u64) {
        self.last_started_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn finished(&self, now_ms: u64, took_ms: u64) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.last_finished_ms.store(now_ms, Ordering::Relaxed);
        self.last_duration_ms.store(took_ms, Ordering::Relaxed);
        metrics::get().anti_entropy_passes.inc();
    }

    pub fn read(&self, documents: u64) {
        self.documents_read.fetch_add(documents, Ordering::Relaxed);
        metrics::get().anti_entropy_documents.inc_by(documents);
    }

    pub fn requested(&self) {
        self.node_requests.fetch_add(1, Ordering::Relaxed);
        metrics::get().anti_entropy_node_requests.inc();
    }

    pub fn repaired(&self, kind: Repair, copies: u64) {
        let counter = match kind {
            Repair::Missing => &self.missing,
            Repair::Extra => &self.extra,
            Repair::Different => &self.different,
        };
        counter.fetch_add(copies, Ordering::Relaxed);
        metrics::get()
            .anti_entropy_repairs
            .with_label_values(&[kind.as_str()])
            .inc_by(copies);
    }

    pub fn unresolved(&self) {
        self.unresolved.fetch_add(1, Ordering::Relaxed);
        metrics::get().anti_entropy_unresolved.inc();
    }

    fn set(&self, set: Set) -> &SetCounts {
        match set {
            Set::Keys => &self.keys,
            Set::Indexes => &self.indexes,
        }
    }

    /// One key or index repaired on one node.
    pub fn set_repaired(&self, set: Set, kind: Repair) {
        let counts = self.set(set);
        let counter = match kind {
            Repair::Missing => &counts.missing,
            Repair::Extra => &counts.extra,
            Repair::Different => &counts.different,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::get()
            .anti_entropy_set_repairs
            .with_label_values(&[set.as_str(), kind.as_str()])
            .inc();
    }

    /// One key or index left differing: nothing tells which copy is right.
    pub fn set_unresolved(&self, set: Set) {
        self.set(set).unresolved.fetch_add(1, Ordering::Relaxed);
        metrics::get()
            .anti_entropy_set_unresolved
            .with_label_values(&[set.as_str()])
            .inc();
    }

    pub fn snapshot(&self) -> Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ms = |a: &AtomicU64| Some(n(a)).filter(|v| *v > 0);
        json!({
            "passes": n(&self.passes),
            "lastPassStartedMs": ms(&self.last_started_ms),
            "lastPassFinishedMs": ms(&self.last_finished_ms),
            "lastPassDurationMs": ms(&self.last_duration_ms),
            "documentsRead": n(&self.documents_read),
            "nodeRequests": n(&self.node_requests),
            "repaired": {
                "missing": n(&self.missing),
                "extra": n(&self.extra),
                "different": n(&self.different),
            },
            "unresolved": n(&self.unresolved),
            "keys": self.keys.snapshot(),
            "indexes": self.indexes.snapshot(),
        })
    }
}
