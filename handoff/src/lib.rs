//! Miroir's hint store. When a replica misses a write (down, timed out, 5xx), the exact
//! request it should have received is kept here, durably and in acceptance order per node,
//! until it is replayed. A node's queue has a byte cap: past it the node is marked as needing
//! a full resync instead of growing the store without bound.
//!
//! Pure storage (a crash-safe redb file); deciding when to hint and replaying belong to the
//! proxy.

mod board;
mod hint;
mod marks;
mod redis_log;
mod store;

pub use board::{Beat, Board, Member, GATE_MS, MEMBER_MS};
pub use hint::Hint;
pub use marks::Marks;
pub use store::{HintError, HintStore, NodeBacklog, Seq, Ticket, LEASE_MS, ORDER_MS};
