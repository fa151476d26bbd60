//! The index settings a sharded search depends on, as the proxy knows them.

use std::collections::BTreeMap;

/// `faceting.sortFacetValuesBy` for one facet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FacetOrder {
    Alpha,
    Count,
}

/// How the nodes apply `displayedAttributes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeDisplay {
    /// The nodes carry the client's `displayedAttributes`. Exact unless a `sort` rule or the
    /// distinct attribute names a non-displayed field: the nodes then report `"<hidden>"` and
    /// never return the field, so hits tied up to that rule keep each node's order and
    /// cross-shard distinct cannot see the value.
    Restricted,
    /// The nodes display the client's `displayedAttributes` plus every field the merge reads
    /// (see [`super::display`]) and Miroir applies the client's list itself (retrieval,
    /// highlighting, `_matchesPosition`, redacted sort details). Exact.
    All,
}

/// Settings of one index that shape how a search is split and merged.
#[derive(Clone, Debug)]
pub struct IndexContext {
    /// The client-visible `displayedAttributes`; `None` or `["*"]` means every field.
    pub displayed_attributes: Option<Vec<String>>,
    pub node_display: NodeDisplay,
    pub distinct_attribute: Option<String>,
    /// `pagination.maxTotalHits` as the client set it.
    pub max_total_hits: usize,
    /// `pagination.maxTotalHits` on the nodes (at least the client's): how many hits a node
    /// can return. Cross-shard distinct is exact when no node matches more than this.
    pub node_max_total_hits: usize,
    /// `faceting.maxValuesPerFacet` as the client set it.
    pub max_values_per_facet: usize,
    /// `faceting.maxValuesPerFacet` on the nodes (at least the client's). Merged counts are
    /// exact for every facet where no node had more distinct values than this.
    pub node_max_values_per_facet: usize,
    /// `faceting.sortFacetValuesBy`: facet name or `*` -> order.
    pub sort_facet_values_by: BTreeMap<String, FacetOrder>,
    /// The index's primary key: what tells one document from another when one answer holds
    /// hits of several searches (hybrid's two halves, federated queries on one index).
    pub primary_key: Option<String>,
    /// Every ranking rule is a relevancy rule (or `sort`, which ranks nothing without a `sort`
    /// parameter): a hit's `_rankingScore` then orders it as its details do, and nodes need
    /// not write the details (see [`ranks_by_score`]).
    pub relevancy_rules_only: bool,
}

impl Default for IndexContext {
    /// Meilisearch's defaults.
    fn default() -> Self {
        Self {
            displayed_attributes: None,
            node_display: NodeDisplay::Restricted,
            distinct_attribute: None,
            max_total_hits: 1000,
            node_max_total_hits: 1000,
            max_values_per_facet: 100,
            node_max_values_per_facet: 100,
            sort_facet_values_by: BTreeMap::from([("*".to_owned(), FacetOrder::Alpha)]),
            primary_key: None,
            // Unknown rules: the merge reads the details.
            relevancy_rules_only: false,
        }
    }
}

impl IndexContext {
    pub fn facet_order(&self, facet: &str) -> FacetOrder {
        self.sort_facet_values_by
            .get(facet)
            .or_else(|| self.sort_facet_values_by.get("*"))
            .copied()
            .unwrap_or(FacetOrder::Alpha)
    }

    /// The displayed list when it restricts anything.
    pub(crate) fn displayed_restriction(&self) -> Option<&[String]> {
        self.displayed_attributes
            .as_deref()
            .filter(|list| !list.iter().any(|a| a == "*"))
    }
}

/// Whether ranking `rules` order hits by `_rankingScore` alone. Meilisearch folds consecutive
/// relevancy rules into one mixed-radix score (`rank` in each rule's `max_rank`), which orders
/// hits exactly as comparing the rules one by one does; `sort`, `field:asc|desc` and vector
/// rules report values the score leaves out.
pub fn ranks_by_score<'a>(rules: impl IntoIterator<Item = &'a str>) -> bool {
    rules.into_iter().all(|rule| {
        matches!(
            rule,
            "words"
                | "typo"
                | "proximity"
                | "attribute"
                | "attributeRank"
                | "wordPosition"
                | "exactness"
                | "sort"
        )
    })
}

/// Whether `field` (a path such as `a.b`) is covered by the attribute `pattern`: the same name
/// or a parent object of it.
pub(crate) fn covers(pattern: &str, field: &str) -> bool {
    field
        .strip_prefix(pattern)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether `field` is displayed under `displayed` (`None` = everything).
pub(crate) fn is_displayed(displayed: Option<&[String]>, field: &str) -> bool {
    displayed.is_none_or(|list| list.iter().any(|d| covers(d, field)))
}
