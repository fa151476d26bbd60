//! A Meilisearch-compatible node simulator: a test double for Miroir's test suite, not a
//! product and not a Meilisearch replacement. It answers over HTTP like a Meilisearch 1.50 node
//! for what Miroir relies on (auth, indexes, documents, tasks, settings, search), keeps
//! everything in memory, and can be stopped, restarted and fault-injected by tests.

mod apply;
mod auth;
mod clock;
mod compress;
mod doc_sort;
mod engine_calls;
mod error;
mod faults;
mod ids;
mod keys;
mod node;
mod payload;
mod routes;
mod server;
mod settings;
mod sizes;
mod state;
mod task_query;
mod tasks;
mod worker;

pub use auth::sign_tenant_token;
pub use faults::{Cut, ErrorRate, Faults, Latency, TaskFailure};
pub use keys::derive_key;
pub use node::{SimConfig, SimNode};
