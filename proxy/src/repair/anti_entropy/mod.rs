//! Anti-entropy, the backstop behind hinted handoff: a background pass compares the nodes'
//! index sets and key sets, then each shard's copies on its healthy owners, document by
//! document, and repairs what is missing, extra or different from the latest acknowledged
//! write (from the majority, for keys and indexes).
//!
//! Meilisearch keeps no tombstones, so a document held by one replica only is either a missed
//! insert or a missed deletion. Two records tell them apart: every document write stamps its
//! documents with a version (`_miroir_version`, from [`Clock`]), and every deletion is
//! remembered with its version in [`Deletions`] for longer than a pass takes.
//!
//! - `clock`: the versions writes and deletions are stamped with;
//! - `deletions`: the durable record of deletions (by id, whole index, by filter);
//! - `verdict`: what one document's copies should become (pure);
//! - `sets`: what one key's or one index's copies across nodes should become (pure);
//! - `pass`: the background service reading, confirming and repairing;
//! - `set_pass`: the key sets and index sets compared and repaired at the start of a pass;
//! - `status`: what the passes found and repaired, for `/_miroir/topology` and `miroir ctl`.

mod clock;
mod deletions;
mod pass;
mod set_pass;
mod sets;
pub mod status;
mod verdict;

use std::path::Path;
use std::sync::Arc;

use miroir_handoff::HintStore;

pub use clock::Clock;
pub use deletions::Deletions;
pub use pass::AntiEntropy;

/// What the write path records for anti-entropy: the versions it stamps, the deletions.
pub struct Journal {
    pub clock: Clock,
    pub deletions: Deletions,
}

impl Journal {
    /// The record at `path`, or in the Redis of `hints` when several Miroirs share it.
    pub fn open(path: &Path, hints: &Arc<HintStore>) -> Result<Self, String> {
        let deletions = match hints.shared() {
            true => Deletions::shared(hints.clone()),
            false => Deletions::open(path)?,
        };
        Ok(Self {
            clock: Clock::default(),
            deletions,
        })
    }

    /// Remembers that `ids` of `index` were deleted; a failure is logged, not fatal: the
    /// hints still carry the deletion to replicas that missed it.
    pub async fn deleted_ids(&self, index: &str, ids: Vec<String>) {
        let version = self.clock.next();
        if let Err(e) = self.deletions.record_ids(index, ids, version).await {
            log::warn!(target: "miroir::anti_entropy", "index `{index}`: deletion not recorded: {e}");
        }
    }

    /// Remembers that every document of `index` was deleted (cleared, or the index deleted).
    pub async fn cleared(&self, index: &str) {
        let version = self.clock.next();
        if let Err(e) = self.deletions.record_clear(index, version).await {
            log::warn!(target: "miroir::anti_entropy", "index `{index}`: deletion not recorded: {e}");
        }
    }

    /// Remembers a deletion by filter (the filter as the client sent it, JSON).
    pub async fn deleted_by_filter(&self, index: &str, filter: String) {
        let version = self.clock.next();
        if let Err(e) = self.deletions.record_filter(index, filter, version).await {
            log::warn!(target: "miroir::anti_entropy", "index `{index}`: deletion not recorded: {e}");
        }
    }
}
