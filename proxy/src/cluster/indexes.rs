//! What Miroir remembers about each index between requests: the settings a search merge
//! depends on (read from a node, trusted briefly), whether `_miroir_shard` is known to be
//! filterable on every node, and whether the nodes' `maxValuesPerFacet` is known to be
//! widened. Whatever changes an index forgets its entry here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use miroir_filters::search::IndexContext;

/// How long an index's settings are trusted before they are read again.
const CONTEXT_TTL: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct IndexKnowledge {
    contexts: DashMap<String, (Instant, Arc<IndexContext>)>,
    shard_filterable: Known,
    facet_limit_widened: Known,
    /// Indexes Miroir created ahead of their first documents, with their primary key: the
    /// nodes may not have processed the creation when the next write arrives.
    created: DashMap<String, String>,
}

impl IndexKnowledge {
    /// The merge settings of `index`, when read recently enough.
    pub fn context(&self, index: &str) -> Option<Arc<IndexContext>> {
        self.contexts
            .get(index)
            .filter(|entry| entry.0.elapsed() < CONTEXT_TTL)
            .map(|entry| entry.1.clone())
    }

    pub fn remember_context(&self, index: &str, context: Arc<IndexContext>) {
        self.contexts
            .insert(index.to_owned(), (Instant::now(), context));
    }

    pub fn forget_context(&self, index: &str) {
        self.contexts.remove(index);
    }

    /// Whether every node is known to have `_miroir_shard` filterable on `index`.
    pub fn shard_filterable(&self, index: &str) -> bool {
        self.shard_filterable.contains(index)
    }

    pub fn set_shard_filterable(&self, index: &str, filterable: bool) {
        self.shard_filterable.set(index, filterable);
    }

    /// Whether every node is known to hold a widened `maxValuesPerFacet` for `index`.
    pub fn facet_limit_widened(&self, index: &str) -> bool {
        self.facet_limit_widened.contains(index)
    }

    pub fn set_facet_limit_widened(&self, index: &str, widened: bool) {
        self.facet_limit_widened.set(index, widened);
    }

    /// Remembers that Miroir created `index` with `primary_key`.
    pub fn remember_created(&self, index: &str, primary_key: &str) {
        self.created
            .insert(index.to_owned(), primary_key.to_owned());
    }

    /// The primary key of `index` when Miroir created it.
    pub fn created_primary_key(&self, index: &str) -> Option<String> {
        self.created.get(index).map(|pk| pk.value().clone())
    }

    /// Forgets everything about `index`.
    pub fn forget(&self, index: &str) {
        self.contexts.remove(index);
        self.shard_filterable.set(index, false);
        self.facet_limit_widened.set(index, false);
        self.created.remove(index);
    }

    /// Forgets everything about every index (a swap, or another change across indexes).
    pub fn forget_all(&self) {
        self.contexts.clear();
        self.shard_filterable.0.clear();
        self.facet_limit_widened.0.clear();
        self.created.clear();
    }
}

/// Indexes for which something is known to hold on every node.
#[derive(Default)]
struct Known(DashMap<String, ()>);

impl Known {
    fn contains(&self, index: &str) -> bool {
        self.0.contains_key(index)
    }

    fn set(&self, index: &str, holds: bool) {
        if holds {
            self.0.insert(index.to_owned(), ());
        } else {
            self.0.remove(index);
        }
    }
}
