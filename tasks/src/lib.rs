//! Miroir's task registry. A client write becomes one Miroir task with an integer uid from a
//! durable monotonic sequence (so every SDK's wait loop works unchanged); the record maps it
//! to the node tasks behind it, and [`aggregate`] turns their views into one Meilisearch task.

pub mod aggregate;
pub mod record;
pub mod store;

pub use aggregate::{aggregate, NodeView, Status};
pub use record::{Idempotency, NewTask, NodeTask, Replay, TaskRecord, TaskUid};
pub use store::{Created, EmbeddedStore, ListQuery, Page, StoreError, TaskStore};
