//! What brings a replica back in line with the others after it missed something:
//! - `handoff`: the writes a replica missed, kept durably in order per node (hints);
//! - `replay`: those writes sent again once the node answers, before it serves reads;
//! - `index_repairs`: index creations undone, and deletions, updates and swaps replayed, on
//!   the nodes that missed them;
//! - `majority`: the rule they decide by where Miroir keeps no record (a strict majority);
//! - `settings_drift`: each index's settings compared across nodes, the odd one patched;
//! - `anti_entropy`: every shard's documents compared across its owners, the backstop that
//!   repairs whatever the others missed (versions and a record of deletions tell which copy
//!   is right), and each node's key set and index set compared with the others'.
//!
//! Request paths report here what a node missed; the background services do the repairing.

pub mod anti_entropy;
pub mod handoff;
pub mod index_repairs;
pub mod majority;
pub mod replay;
pub mod settings_drift;
