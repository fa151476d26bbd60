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

/// Up to this age, settings due to be read again still serve the search that finds them due,
/// while they are read in the background: no search waits for the periodic read.
const CONTEXT_SERVES_UNTIL: Duration = Duration::from_secs(10);

/// An index's merge settings as last read.
struct CachedContext {
    read: Instant,
    /// When a search last found them due and had them read again.
    refresh: Option<Instant>,
    context: Arc<IndexContext>,
}

/// What is known of an index's merge settings.
pub enum ContextLookup {
    Fresh(Arc<IndexContext>),
    /// Due: the caller reads them again in the background and uses these meanwhile.
    Due(Arc<IndexContext>),
    /// Never read, forgotten, or too old to serve: read them before searching.
    Unknown,
}

#[derive(Default)]
pub struct IndexKnowledge {
    contexts: DashMap<String, CachedContext>,
    shard_filterable: Known,
    facet_limit_widened: Known,
    /// Indexes Miroir created ahead of their first documents, with their primary key: the
    /// nodes may not have processed the creation when the next write arrives.
    created: DashMap<String, String>,
}

impl IndexKnowledge {
    /// The merge settings of `index`, and whether they are due to be read again. The first
    /// search that finds them due is told so; the others use them as fresh meanwhile.
    pub fn context(&self, index: &str) -> ContextLookup {
        let Some(mut entry) = self.contexts.get_mut(index) else {
            return ContextLookup::Unknown;
        };
        let age = entry.read.elapsed();
        let refreshing = entry.refresh.is_some_and(|at| at.elapsed() < CONTEXT_TTL);
        if age < CONTEXT_TTL || (refreshing && age < CONTEXT_SERVES_UNTIL) {
            return ContextLookup::Fresh(entry.context.clone());
        }
        if age >= CONTEXT_SERVES_UNTIL {
            return ContextLookup::Unknown;
        }
        entry.refresh = Some(Instant::now());
        ContextLookup::Due(entry.context.clone())
    }

    pub fn remember_context(&self, index: &str, context: Arc<IndexContext>) {
        self.contexts.insert(
            index.to_owned(),
            CachedContext {
                read: Instant::now(),
                refresh: None,
                context,
            },
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read_ago(k: &IndexKnowledge, secs: u64) {
        let read = Instant::now()
            .checked_sub(Duration::from_secs(secs))
            .unwrap_or_else(Instant::now);
        k.contexts.insert(
            "i".into(),
            CachedContext {
                read,
                refresh: None,
                context: Arc::new(IndexContext::default()),
            },
        );
    }

    #[test]
    fn due_settings_serve_while_one_search_has_them_read_again() {
        let k = IndexKnowledge::default();
        assert!(matches!(k.context("i"), ContextLookup::Unknown));
        k.remember_context("i", Arc::new(IndexContext::default()));
        assert!(matches!(k.context("i"), ContextLookup::Fresh(_)));

        read_ago(&k, 3);
        assert!(matches!(k.context("i"), ContextLookup::Due(_)));
        // The refresh is under way: the next searches do not start another.
        assert!(matches!(k.context("i"), ContextLookup::Fresh(_)));
        assert!(matches!(k.context("i"), ContextLookup::Fresh(_)));

        // Too old to serve (traffic stopped for a while): read before searching.
        read_ago(&k, 11);
        assert!(matches!(k.context("i"), ContextLookup::Unknown));
        k.forget_context("i");
        assert!(matches!(k.context("i"), ContextLookup::Unknown));
    }
}
