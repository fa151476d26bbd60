//! The search path as pure functions: [`plan`] turns a client's search body into node
//! sub-requests (each restricted to the shards its node answers for), [`merge`] turns the node
//! answers into the response one Meilisearch node holding every document would give.
//!
//! Exactness bounds, beyond Meilisearch's own per-node dictionaries (research §8):
//! - ties (equal ranking keys) are ordered by position then node, not by internal id; with
//!   distinct, which of several tied documents sharing a value is kept follows that order, and
//!   so do the facet counts of the other fields;
//! - with [`NodeDisplay::Restricted`] (nodes holding a displayed list Miroir did not write),
//!   a `sort` rule on a non-displayed field stops the comparison at that rule, and a
//!   non-displayed distinct attribute or facet is invisible to cross-shard distinct. With
//!   [`NodeDisplay::All`] the nodes also display every sortable field, custom ranking rule
//!   field and the distinct attribute ([`display`]), so sorts merge exactly; a non-displayed
//!   facet that is none of these stays invisible to cross-shard distinct;
//! - facet counts are exact when no node has more values for a facet than the node
//!   `maxValuesPerFacet` ([`IndexContext::node_max_values_per_facet`], the client's widened by
//!   [`facet_limit`]); in `count` order equal counts come largest value first, where one node
//!   with few matches may order some of them by its facet tree;
//! - with distinct, totals, facet counts and `facetStats` are exact when no node matches more
//!   documents than the node `maxTotalHits` ([`IndexContext::node_max_total_hits`]) and, for
//!   wildcard facets, the client's `attributesToRetrieve` names no nested field; in
//!   offset/limit mode one node's `estimatedTotalHits` with distinct is an estimate that
//!   depends on how far it ranked (Meilisearch 1.50 answers 27 for 3 distinct values of 40
//!   matches with `limit: 1`, 3 with `limit: 20`), where the merge reports its nodes' counts
//!   less the duplicates it dropped;
//! - `searchableAttributes: ["*"]` ranks attributes in each node's field order, which can
//!   differ from one node's: set it explicitly for exact `attributeRank` across nodes;
//! - `metadata` and `queryVector` are not merged; `performanceDetails` is the slowest node's;
//! - a hybrid search (`semanticRatio` strictly between 0 and 1, non-empty `q`) is combined
//!   as one node combines it ([`hybrid`]), from its keyword and semantic halves each merged
//!   over the shards; its documents are told apart by primary key, or by their retrieved
//!   fields when the nodes do not display the key. With `sort` or `distinct` the nodes still
//!   combine per shard and the merge compares their hits' scores as they are, where
//!   `semanticHitCount` counts the page's hits whose ranking details hold `vectorSort`.

mod context;
mod depth;
mod facet_cut;
pub mod facet_limit;
mod facet_section;
mod facets;
mod hit;
mod json;
mod merge;
mod plan;
mod rank;
mod scan;

pub use context::{ranks_by_score, FacetOrder, IndexContext, NodeDisplay};
pub use merge::{merge, merge_parts, merge_parts_at, Depths, Merged, Parts, Segment};
pub use plan::{
    plan, plan_value, DistinctFacets, MergePlan, Pagination, RankBy, SearchPlan, ShardBody,
};
pub mod browse;
pub mod display;
pub mod facet_hits;
pub mod fields;
pub mod similar;
pub mod stats;

mod federated;
mod weighted;
pub use federated::{merge_federated, FederatedQuery, Federation};
pub mod filter_expr;
pub mod hybrid;
mod identity;
pub use identity::Identity;
