//! The task store: a trait the proxy codes against, and two backends: the embedded one (a
//! crash-safe redb file under Miroir's data directory, one process) and Redis (one registry
//! shared by several Miroir processes). Both run the same logic (`ops`, `indexer`, `listing`,
//! `prune`) over their own rows (`rows`: redb tables, Redis keys).
//!
//! Besides the records, the store keeps indexes in the same transactions (see
//! `index`): each task's cell and dates, the tasks of each cell in uid order, tasks by their
//! canceler, per-cell counts and per-block summaries. A cell is an (index, type, final
//! status) triple; a task whose final view is not cached yet sits in its index and type's
//! "unsettled" cell.
//!
//! What a listing reads (`Page::reads`), with `limit` L and registry size N:
//! - always: one row per cell (indexes × types × 4, whatever N);
//! - no date or `canceledBy` filter: the total is a sum of cell counts; the page merges the
//!   wanted cells' uid lists (L rows plus one per cell), or walks block summaries when more
//!   than 32 cells are wanted;
//! - `uids`: one row per named uid; `canceledBy`: one per task those cancelations canceled;
//! - date filters: the total counts whole blocks from their summaries (N / 65 536 summaries,
//!   64 more inside a 65 536-uid block a bound cuts, 1 024 rows of a 1 024-uid block it
//!   cuts), and the page walks blocks newest first until it has L tasks;
//! - view filters (status, dates, `canceledBy`) with unsettled tasks: one row per unsettled
//!   task the caller found matching (it asked their nodes: see `TaskStore::unsettled`).
//!
//! Then one record per task of the page.

mod audit;
mod embedded;
mod indexer;
mod listing;
mod ops;
mod prune;
mod reader;
mod redis_rows;
mod redis_store;
mod rows;
mod tables;

use std::collections::BTreeSet;

use serde_json::Value;
use time::OffsetDateTime;

use crate::query::TaskQuery;
use crate::record::{Idempotency, NewTask, TaskRecord, TaskUid};

pub use embedded::EmbeddedStore;
pub use redis_store::RedisStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task store I/O: {0}")]
    Backend(String),
    #[error("task store holds a corrupt record for task {0}: {1}")]
    Corrupt(u64, String),
    /// The store cannot be reached (Redis down, refused, timed out): nothing was changed,
    /// and it may work again without a restart.
    #[error("task store unreachable: {0}")]
    Unavailable(String),
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// What creating a task did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(TaskRecord),
    /// The idempotency key was seen with the same request: the original task.
    Replayed(TaskRecord),
    /// The idempotency key was seen with a different request.
    KeyReused {
        original: TaskUid,
    },
}

/// Whether this process may send a write under an idempotency key (see
/// [`TaskStore::claim`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Nobody used the key yet: this process holds it until its task is recorded or it
    /// releases it.
    Claimed,
    /// The key was used: the request digest and its task.
    Seen(String, TaskUid),
    /// Another process holds the key and has not recorded its task yet: ask again.
    Busy,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// At most `limit` tasks, in the listing's order.
    pub results: Vec<TaskRecord>,
    /// How many tasks match the filters in all, whatever the page.
    pub total: u64,
    /// How many table entries (index rows, block summaries, records) the listing read: its
    /// cost. About the page's size, not the registry's (see the module's documentation).
    pub reads: u64,
}

/// What an automatic cleanup did (see [`TaskStore::prune`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Pruned {
    /// Fewer tasks than the limit: nothing to do.
    NotFull,
    /// At the limit, but fewer than two finished tasks to delete.
    NothingFinished,
    /// The task deletion recorded for the deleted tasks.
    Deleted(Box<TaskRecord>),
}

/// How many tasks Meilisearch keeps before deleting the oldest finished ones (hard-coded in
/// Meilisearch 1.50, `max_number_of_tasks`, with no option to change it).
pub const MAX_TASKS: u64 = 1_000_000;
/// How many finished tasks one automatic cleanup deletes at most.
pub const PRUNE_BATCH: usize = 100_000;

pub trait TaskStore: Send + Sync {
    /// Allocates the next uid and stores the task in one durable step, so uids never repeat,
    /// across restarts too. With an idempotency key already seen, stores nothing and says
    /// what the key refers to.
    fn create(
        &self,
        task: NewTask,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError>;
    /// Takes an idempotency key before its request reaches a node, so that of several
    /// Miroir processes receiving the same key only one sends it: `Claimed` holds the key
    /// for `hold` at most (a holder that dies frees it then), until `create` records its
    /// task under it or `release` gives it back.
    fn claim(&self, idem: &Idempotency, hold: std::time::Duration) -> Result<Claim, StoreError>;
    /// Gives back a claimed key whose request recorded no task.
    fn release(&self, key: &str) -> Result<(), StoreError>;
    /// Whether the store can record a task now: a write is refused before any node gets
    /// it when it cannot.
    fn ready(&self) -> Result<(), StoreError>;
    fn get(&self, uid: TaskUid) -> Result<Option<TaskRecord>, StoreError>;
    /// What an idempotency key was first used for: the request digest and its task.
    fn idempotency(&self, key: &str) -> Result<Option<(String, TaskUid)>, StoreError>;
    /// Replaces a stored record (same uid); a record deleted meanwhile stays deleted.
    fn update(&self, record: &TaskRecord) -> Result<(), StoreError> {
        let mut replace = |r: &mut TaskRecord| *r = record.clone();
        self.modify(record.uid, &mut replace).map(|_| ())
    }
    /// Changes a stored record in one transaction; `false` when it does not exist.
    fn modify(
        &self,
        uid: TaskUid,
        change: &mut dyn FnMut(&mut TaskRecord),
    ) -> Result<bool, StoreError>;
    /// Caches the final views of finished tasks, in one transaction; tasks deleted meanwhile
    /// or already settled are left alone. Returns the uids this call settled: each task is
    /// settled once, so whatever follows a task's end (its webhook call) happens once.
    fn settle(&self, views: Vec<(TaskUid, Value)>) -> Result<Vec<TaskUid>, StoreError>;
    /// The tasks whose final view is not cached yet and that pass the query's record filters
    /// (uids, types, indexes), oldest first from `query.from` (whatever `reverse` says), at
    /// most `max`.
    fn unsettled(&self, query: &TaskQuery, max: usize) -> Result<Vec<TaskRecord>, StoreError>;
    /// A page of the tasks matching `query` (at most `query.limit`, from `query.from`), and
    /// how many match in all. `pending` names the unsettled tasks whose current view passes
    /// the query's view filters, as the caller found by asking their nodes; without view
    /// filters it is not read and unsettled tasks match by their record.
    fn list(&self, query: &TaskQuery, pending: &BTreeSet<u64>) -> Result<Page, StoreError>;
    /// Deletes tasks; returns how many existed.
    fn delete(&self, uids: &[TaskUid]) -> Result<usize, StoreError>;
    /// How many tasks the registry holds.
    fn count(&self) -> Result<u64, StoreError>;
    /// Meilisearch's automatic cleanup: with `limit` tasks or more, deletes the oldest
    /// finished tasks (at most `batch`, and only if there are two or more) and records it as
    /// a finished `taskDeletion` task, as Meilisearch enqueues and processes one.
    fn prune(&self, limit: u64, batch: usize, now: OffsetDateTime) -> Result<Pruned, StoreError>;
}
