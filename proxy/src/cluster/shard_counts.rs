//! Each index's shard count S, fixed when the index is created and kept in Miroir's data
//! directory (`shard_counts.json`; with several Miroirs, in Redis too, so that every Miroir
//! splits an index by the same S, see `shared_record`). The configuration's `shards` is only
//! the default for
//! indexes created after it is loaded: changing it never moves a document of an existing
//! index (that would be resharding).
//!
//! Indexes that existed before Miroir recorded counts (or were created on the nodes behind
//! its back) have no entry and use `unlisted`, the fleet's S when the file was first written.
//! Shard k's owners do not depend on S (rendezvous hashing per shard), so one placement as
//! wide as the largest S serves every index: an index with S shards uses slots `0..S`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use miroir_handoff::HintStore;
use serde::{Deserialize, Serialize};

use super::shared_record::{Record, Synced};

const FILE: &str = "shard_counts.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recorded {
    unlisted: u32,
    indexes: HashMap<String, u32>,
}

pub struct ShardCounts {
    record: Arc<Record<Recorded>>,
}

impl ShardCounts {
    /// Opens the record (shared through `hints` when several Miroirs share it); on a first
    /// start, indexes without an entry use `unlisted`.
    pub fn open(data_dir: &Path, unlisted: u32, hints: &Arc<HintStore>) -> Result<Self, String> {
        let initial = || Recorded {
            unlisted,
            indexes: HashMap::new(),
        };
        let record = Record::open_or(data_dir, (FILE, "shard_counts"), hints, initial)?;
        Ok(Self {
            record: Arc::new(record),
        })
    }

    /// The record, for the follower that keeps it in step with other Miroirs.
    pub fn synced(&self) -> Arc<dyn Synced> {
        self.record.clone()
    }

    /// S of `index`.
    pub fn of(&self, index: &str) -> u32 {
        let r = self.record.load();
        r.indexes.get(index).copied().unwrap_or(r.unlisted)
    }

    /// The largest S of any index: the placement must be at least this wide.
    pub fn widest(&self) -> u32 {
        let r = self.record.load();
        r.indexes.values().copied().fold(r.unlisted, u32::max)
    }

    /// Every recorded index with its S, and the S of the others.
    pub fn snapshot(&self) -> (u32, Vec<(String, u32)>) {
        let r = self.record.load();
        let mut list: Vec<(String, u32)> = r.indexes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        list.sort();
        (r.unlisted, list)
    }

    /// Records `shards` for `index`, a new index (it does not exist on the nodes), unless it
    /// already has a count: a creation accepted earlier and not yet processed keeps its own.
    pub async fn record_new(&self, index: &str, shards: u32) -> Result<u32, String> {
        self.change(|r| *r.indexes.entry(index.to_owned()).or_insert(shards))
            .await
    }

    /// `index` is being deleted: whatever index is created with its uid next gets `shards`.
    /// Every later write reaches each node after the deletion, so none splits by the old S.
    pub async fn reset(&self, index: &str, shards: u32) -> Result<(), String> {
        self.change(|r| {
            r.indexes.insert(index.to_owned(), shards);
        })
        .await
    }

    /// Two indexes swap their documents, so their counts; `rename` moves `a`'s to `b` and
    /// gives `a`'s uid `shards` for its next index.
    pub async fn swap(&self, a: &str, b: &str, rename: bool, shards: u32) -> Result<(), String> {
        self.change(|r| {
            let sa = r.indexes.get(a).copied().unwrap_or(r.unlisted);
            let sb = if rename {
                shards
            } else {
                r.indexes.get(b).copied().unwrap_or(r.unlisted)
            };
            r.indexes.insert(b.to_owned(), sa);
            r.indexes.insert(a.to_owned(), sb);
        })
        .await
    }

    /// Applies `f` to a copy, saves it (off the async workers; shared, once every Miroir
    /// installed it) and only then makes it visible: what requests use is never ahead of what
    /// a restart would find.
    async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Recorded) -> T,
    ) -> Result<T, String> {
        let turn = self.record.turn().await?;
        let mut next = Recorded::clone(&turn.current());
        let out = f(&mut next);
        turn.save(next).await?;
        Ok(out)
    }
}
