//! Miroir's task registry. A client write becomes one Miroir task with an integer uid from a
//! durable monotonic sequence (so every SDK's wait loop works unchanged); the record maps it
//! to the node tasks behind it, and [`aggregate`] turns their views into one Meilisearch task.
//! [`TaskQuery`] says which tasks a listing wants; the store answers it from indexes it keeps
//! beside the records, and keeps at most as many tasks as Meilisearch does.

pub mod aggregate;
mod index;
pub mod query;
pub mod record;
pub mod store;

pub use aggregate::{aggregate, NodeView, Status};
pub use query::{nanos, parse_date, settled_view, view_date, DateRange, TaskQuery};
pub use record::{Idempotency, NewTask, NodeTask, Replay, TaskRecord, TaskUid};
pub use store::{
    Claim, Created, EmbeddedStore, Page, Pruned, RedisStore, StoreError, TaskStore, MAX_TASKS,
    PRUNE_BATCH,
};
