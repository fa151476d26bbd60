//! The write path: document writes split by shard, deletions by id, each part handed to its
//! replicas in the index's write order (`send`), judged against the write quorum (`quorum`)
//! and answered as one Miroir task (`record`). Splitting is pure (`miroir_filters::write`).

mod deletes;
mod documents;
mod idempotency;
mod quorum;
mod record;
mod send;

pub use deletes::{delete_batch, delete_one};
pub use documents::documents;
