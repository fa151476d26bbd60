//! Federated multi-search as a pure function: the per-query answers (each already merged over
//! the shards, so each is what one node would answer) become one list ordered by weighted
//! ranking score, as Meilisearch's federated search orders it (research §3.3).
//!
//! A document matched by several queries of one index appears once, told apart by its
//! primary key value (by its retrieved fields when the nodes do not display the key).
//!
//! Hits are ordered as Meilisearch orders them across queries, by their weighted ranking
//! details (`weighted`). Exactness bounds beyond those of the single-index merge: a hit whose
//! details do not give every weighted value (a run of rules after a sort rule holding
//! `proximity`, `attribute` or `exactness` before its last rule) is ordered by its weighted
//! `_rankingScore` alone; several queries on one index have their totals and facet counts
//! summed, where Meilisearch counts the union of their matches (one node computes facets and
//! the total over the union of the queries' match sets, which no per-query count reveals).

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use super::identity::Identity;
use super::weighted::{self, Weighted};

/// One query's answer and how it takes part in the federation.
#[derive(Debug, Clone)]
pub struct FederatedQuery {
    pub index_uid: String,
    pub weight: f64,
    /// The client asked for `_rankingScore` on this query.
    pub show_score: bool,
    /// The client asked for `_rankingScoreDetails` on this query (the merge always reads
    /// them).
    pub show_details: bool,
    /// The client asked for `retrieveVectors` on this query (its `queryVector` is shown in
    /// the federation's `queryVectors`).
    pub retrieve_vectors: bool,
    /// The query's merged search response (asked with `showRankingScore`).
    pub answer: Value,
    /// How the index's documents are told apart (see [`Identity::retrieve`]).
    pub identity: Identity,
}

/// The `federation` object of a multi-search, read.
#[derive(Debug, Clone, Default)]
pub struct Federation {
    pub offset: usize,
    pub limit: usize,
    /// `(page, hitsPerPage)` in page mode.
    pub page: Option<(usize, usize)>,
    /// `mergeFacets`: `Some(maxValuesPerFacet)`.
    pub merge_facets: Option<usize>,
    /// `distinct`: at most one hit per value of this attribute over every query (each query
    /// is asked with it too, so each index's count and facets are distinct already).
    pub distinct: Option<String>,
    /// `showPerformanceDetails`: the queries are asked for theirs and the slowest is shown.
    pub performance_details: bool,
}

impl Federation {
    /// Hits every query must return so the merged window is exact.
    pub fn depth(&self) -> usize {
        match self.page {
            Some((page, hpp)) => page.saturating_mul(hpp),
            None => self.offset.saturating_add(self.limit),
        }
    }

    fn window(&self) -> (usize, usize) {
        match self.page {
            Some((page, hpp)) => (page.saturating_sub(1).saturating_mul(hpp), hpp),
            None => (self.offset, self.limit),
        }
    }
}

/// Hit fields Meilisearch writes after the document (and after `_federation`).
const TRAILING: [&str; 4] = [
    "_formatted",
    "_matchesPosition",
    "_rankingScore",
    "_rankingScoreDetails",
];

/// A hit's place in Meilisearch's order across queries: its weighted values (`None` when its
/// details do not give them) and its weighted `_rankingScore`.
type OrderKey = (Option<Vec<Weighted>>, f64);

fn score(hit: &Value, weight: f64) -> f64 {
    hit["_rankingScore"].as_f64().unwrap_or(0.0) * weight
}

/// Merges the answers of `queries` (in query order) under `federation`.
pub fn merge_federated(queries: &[FederatedQuery], federation: &Federation) -> Value {
    let streams: Vec<&[Value]> = queries
        .iter()
        .map(|q| q.answer["hits"].as_array().map_or(&[][..], Vec::as_slice))
        .collect();
    // Each hit's place in Meilisearch's order across queries: its weighted values, and its
    // weighted `_rankingScore`.
    let keys: Vec<Vec<OrderKey>> = streams
        .iter()
        .zip(queries)
        .map(|(hits, q)| {
            hits.iter()
                .map(|h| (weighted::values(h, q.weight), score(h, q.weight)))
                .collect()
        })
        .collect();
    let mut heads = vec![0usize; streams.len()];
    let (skip, take) = federation.window();
    let mut seen = HashSet::new();
    let mut distinct_seen = HashSet::new();
    let mut duplicates = 0u64;
    let mut kept = 0usize;
    let mut hits = Vec::new();
    let mut semantic_hits = 0u64;
    while kept < skip + take {
        // The best head in Meilisearch's order (`weighted`); equal ones go to the earlier
        // query. Each query's own order is kept.
        let mut best: Option<(usize, &OrderKey)> = None;
        for (i, stream) in keys.iter().enumerate() {
            let Some(key) = stream.get(heads[i]) else {
                continue;
            };
            let better = best.is_none_or(|(_, b)| match (&key.0, &b.0) {
                (Some(k), Some(bk)) => weighted::compare(k, key.1, bk, b.1).is_gt(),
                // Details missing or unreadable: the weighted global score alone.
                _ => key.1 - b.1 > f64::EPSILON,
            });
            if better {
                best = Some((i, key));
            }
        }
        let Some((i, &(_, weighted))) = best else {
            break;
        };
        let hit = &streams[i][heads[i]];
        heads[i] += 1;
        let q = &queries[i];
        if !seen.insert((q.index_uid.as_str(), q.identity.key(hit))) {
            continue;
        }
        if let Some(value) = federation
            .distinct
            .as_deref()
            .and_then(|field| distinct_value(hit, field))
        {
            if !distinct_seen.insert(value) {
                duplicates += 1;
                continue;
            }
        }
        if kept >= skip {
            let mut hit = hit.clone();
            // A hit of a semantic side ranked by its vector (its details hold `vectorSort`).
            if hit["_rankingScoreDetails"].get("vectorSort").is_some() {
                semantic_hits += 1;
            }
            q.identity.strip(&mut hit);
            if let Some(o) = hit.as_object_mut() {
                if !queries[i].show_score {
                    o.shift_remove("_rankingScore");
                }
                if !queries[i].show_details {
                    o.shift_remove("_rankingScoreDetails");
                }
                // Meilisearch writes it with the document, before `_formatted` and the scores.
                let at = o
                    .keys()
                    .position(|k| TRAILING.contains(&k.as_str()))
                    .unwrap_or(o.len());
                o.shift_insert(
                    at,
                    "_federation".into(),
                    json!({
                        "indexUid": queries[i].index_uid,
                        "queriesPosition": i,
                        "weightedRankingScore": weighted,
                    }),
                );
            }
            hits.push(hit);
        }
        kept += 1;
    }

    let total: u64 = queries
        .iter()
        .map(|q| {
            q.answer["estimatedTotalHits"]
                .as_u64()
                .or_else(|| q.answer["totalHits"].as_u64())
                .unwrap_or(0)
        })
        .sum::<u64>()
        // Hits of one distinct value from several queries were counted by each.
        .saturating_sub(duplicates);
    let processing = queries
        .iter()
        .filter_map(|q| q.answer["processingTimeMs"].as_u64())
        .max()
        .unwrap_or(0);

    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    // Where any query asked for its vectors: each one's query vector, by query position.
    if queries.iter().any(|q| q.retrieve_vectors) {
        let vectors: Map<String, Value> = queries
            .iter()
            .enumerate()
            .filter(|(_, q)| q.retrieve_vectors)
            .filter_map(|(i, q)| Some((i.to_string(), q.answer.get("queryVector")?.clone())))
            .collect();
        out.insert("queryVectors".into(), Value::Object(vectors));
    }
    out.insert("processingTimeMs".into(), processing.into());
    match federation.page {
        Some((page, hpp)) => {
            out.insert("hitsPerPage".into(), hpp.into());
            out.insert("page".into(), page.into());
            let pages = if hpp == 0 {
                0
            } else {
                total.div_ceil(hpp as u64)
            };
            out.insert("totalPages".into(), pages.into());
            out.insert("totalHits".into(), total.into());
        }
        None => {
            out.insert("limit".into(), federation.limit.into());
            out.insert("offset".into(), federation.offset.into());
            out.insert("estimatedTotalHits".into(), total.into());
        }
    }
    let by_index = facets_by_index(queries);
    match federation.merge_facets {
        Some(max_values) if !by_index.is_empty() => {
            let (distribution, stats) = merge_all(&by_index, max_values);
            out.insert("facetDistribution".into(), distribution);
            out.insert("facetStats".into(), stats);
        }
        _ if !by_index.is_empty() => {
            let map = by_index
                .into_iter()
                .map(|(index, f)| {
                    (
                        index,
                        json!({"distribution": f.distribution, "stats": f.stats}),
                    )
                })
                .collect();
            out.insert("facetsByIndex".into(), Value::Object(map));
        }
        _ => {}
    }
    if let Some(uid) = queries
        .iter()
        .find_map(|q| q.answer.get("requestUid").cloned())
    {
        out.insert("requestUid".into(), uid);
    }
    if federation.performance_details {
        // The queries run side by side: the slowest one's breakdown is the request's.
        let slowest = queries
            .iter()
            .filter(|q| q.answer.get("performanceDetails").is_some())
            .max_by_key(|q| q.answer["processingTimeMs"].as_u64().unwrap_or(0));
        if let Some(q) = slowest {
            out.insert(
                "performanceDetails".into(),
                q.answer["performanceDetails"].clone(),
            );
        }
    }
    // Where any query searched semantically: the page's hits from a semantic side.
    if queries
        .iter()
        .any(|q| q.answer.get("semanticHitCount").is_some())
    {
        out.insert("semanticHitCount".into(), semantic_hits.into());
    }
    Value::Object(out)
}

/// A hit's value of the distinct attribute (a dotted path reaches into objects), as a key;
/// `None` when it has none, and such hits are all kept, as on a node.
fn distinct_value(hit: &Value, field: &str) -> Option<String> {
    let mut at = hit;
    for part in field.split('.') {
        at = at.get(part)?;
    }
    (!at.is_null()).then(|| at.to_string())
}

#[derive(Default)]
struct IndexFacets {
    distribution: Map<String, Value>,
    stats: Map<String, Value>,
}

/// Facet counts of every index some query asked facets for, summed over its queries.
fn facets_by_index(queries: &[FederatedQuery]) -> BTreeMap<String, IndexFacets> {
    let mut out: BTreeMap<String, IndexFacets> = BTreeMap::new();
    for q in queries {
        let Some(dist) = q.answer["facetDistribution"].as_object() else {
            continue;
        };
        let entry = out.entry(q.index_uid.clone()).or_default();
        add_distribution(&mut entry.distribution, dist);
        if let Some(stats) = q.answer["facetStats"].as_object() {
            add_stats(&mut entry.stats, stats);
        }
    }
    out
}

fn add_distribution(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (facet, values) in from {
        let slot = into
            .entry(facet.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let (Some(slot), Some(values)) = (slot.as_object_mut(), values.as_object()) else {
            continue;
        };
        for (value, count) in values {
            let sum =
                slot.get(value).and_then(Value::as_u64).unwrap_or(0) + count.as_u64().unwrap_or(0);
            slot.insert(value.clone(), sum.into());
        }
    }
}

fn add_stats(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (facet, s) in from {
        let (Some(min), Some(max)) = (s["min"].as_f64(), s["max"].as_f64()) else {
            continue;
        };
        let merged = match into.get(facet) {
            Some(old) => json!({
                "min": old["min"].as_f64().map_or(min, |m| m.min(min)),
                "max": old["max"].as_f64().map_or(max, |m| m.max(max)),
            }),
            None => json!({"min": min, "max": max}),
        };
        into.insert(facet.clone(), merged);
    }
}

/// `mergeFacets`: one distribution over every index, values in alphabetical order, each
/// facet cut to `max_values`.
fn merge_all(by_index: &BTreeMap<String, IndexFacets>, max_values: usize) -> (Value, Value) {
    let mut distribution = Map::new();
    let mut stats = Map::new();
    for f in by_index.values() {
        add_distribution(&mut distribution, &f.distribution);
        add_stats(&mut stats, &f.stats);
    }
    for values in distribution.values_mut() {
        if let Some(map) = values.as_object_mut() {
            let mut sorted: Vec<(String, Value)> =
                std::mem::take(map).into_iter().collect::<Vec<_>>();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            sorted.truncate(max_values);
            map.extend(sorted);
        }
    }
    (Value::Object(distribution), Value::Object(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(hits: &[(u32, f64)], total: u64) -> Value {
        json!({
            "hits": hits.iter().map(|(id, s)| json!({"id": id, "_rankingScore": s})).collect::<Vec<_>>(),
            "processingTimeMs": 1, "limit": 20, "offset": 0, "estimatedTotalHits": total,
        })
    }

    fn query(index: &str, weight: f64, hits: &[(u32, f64)], total: u64) -> FederatedQuery {
        FederatedQuery {
            index_uid: index.into(),
            weight,
            show_score: false,
            show_details: false,
            retrieve_vectors: false,
            answer: answer(hits, total),
            identity: Identity::default(),
        }
    }

    #[test]
    fn hits_are_ordered_by_weighted_score_and_ties_go_to_the_earlier_query() {
        let queries = [
            query("a", 1.0, &[(1, 0.9), (2, 0.5)], 2),
            query("b", 2.0, &[(3, 0.4), (4, 0.25)], 5),
        ];
        let fed = Federation {
            offset: 0,
            limit: 3,
            ..Federation::default()
        };
        let out = merge_federated(&queries, &fed);
        let ids: Vec<_> = out["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["id"].as_u64().unwrap(),
                    h["_federation"]["queriesPosition"].as_u64().unwrap(),
                )
            })
            .collect();
        // 0.9 (a), 0.8 (b: 0.4 × 2), then 0.5 (a) against 0.5 (b: 0.25 × 2): a first.
        assert_eq!(ids, vec![(1, 0), (3, 1), (2, 0)]);
        assert_eq!(out["estimatedTotalHits"], 7);
        assert!(out["hits"][0].get("_rankingScore").is_none());
        assert_eq!(out["hits"][1]["_federation"]["weightedRankingScore"], 0.8);
    }

    #[test]
    fn documents_are_told_apart_by_primary_key_not_by_their_retrieved_fields() {
        let hit =
            |id: u32, title: &str, s: f64| json!({"id": id, "title": title, "_rankingScore": s});
        let identity = Identity {
            primary_key: Some("id".into()),
            strip: vec!["id".into()],
            strip_formatted: vec!["id".into()],
        };
        let with = |hits: Vec<Value>| FederatedQuery {
            index_uid: "a".into(),
            weight: 1.0,
            show_score: false,
            show_details: false,
            retrieve_vectors: false,
            answer: json!({"hits": hits, "estimatedTotalHits": 2}),
            identity: identity.clone(),
        };
        // Two documents with the same title; one of them matched by both queries.
        let queries = [
            with(vec![hit(1, "same", 0.9), hit(2, "same", 0.8)]),
            with(vec![hit(2, "same", 0.7)]),
        ];
        let fed = Federation {
            limit: 5,
            ..Federation::default()
        };
        let out = merge_federated(&queries, &fed);
        let hits = out["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 2, "{out}");
        assert!(hits
            .iter()
            .all(|h| h.get("id").is_none() && h["title"] == "same"));
    }

    #[test]
    fn a_document_matched_by_two_queries_of_one_index_appears_once() {
        let queries = [
            query("a", 1.0, &[(1, 0.9)], 1),
            query("a", 1.0, &[(1, 0.7), (2, 0.6)], 2),
        ];
        let fed = Federation {
            offset: 1,
            limit: 5,
            ..Federation::default()
        };
        let out = merge_federated(&queries, &fed);
        assert_eq!(out["hits"].as_array().unwrap().len(), 1);
        assert_eq!(out["hits"][0]["id"], 2);
    }
}
