//! Miroir's tasks: one Meilisearch task per client request, over the node tasks that carry it.
//! `registry` records them (the write and broadcast paths use it), `view` shows one as
//! Meilisearch would, `routes`, `filter`, `batches` and `documents` answer the task and batch routes, and
//! `upkeep` caches finished tasks' views and keeps the registry at Meilisearch's size.

mod batches;
mod documents;
mod filter;
pub mod registry;
mod routes;
mod upkeep;
mod view;

pub use batches::batches;
pub use documents::task_documents;
pub use registry::{create, now_rfc3339, record_replays, summary};
pub use routes::{cancel_or_delete, get_task, list_tasks};
pub use upkeep::TaskUpkeep;
