//! Changes every node must apply: index creation, update, deletion and swap, settings, keys,
//! document deletions by filter (`broadcast`), and what Miroir keeps on the nodes' settings
//! for itself: `_miroir_shard` filterable (`shard_field`), the displayed attributes the merge
//! needs (`display`), keys with one uid everywhere (`keys`).

pub mod broadcast;
mod display;
pub mod keys;
pub mod shard_field;

pub use broadcast::broadcast;
