//! Hybrid search (`hybrid.semanticRatio` strictly between 0 and 1) as one node combines it
//! (milli's `search/hybrid.rs`): a keyword search and a semantic search, each over the whole
//! window from offset 0, merged by score weighted `1 − semanticRatio` for keyword hits and
//! `semanticRatio` for semantic ones (equal within `f64::EPSILON`: semantic first), a document
//! found by both kept once. When every keyword hit of a full window scores at least 0.45 once
//! weighted, the keyword results stand alone ("good enough", `semanticHitCount: 0`). Hits show
//! their own unweighted `_rankingScore`; the total and facets are those of the union of both
//! searches' matches, which is the semantic search's (it matches every document the filter
//! lets through), or the keyword search's when it stood alone.
//!
//! Each half is asked of the nodes separately and merged over the shards first, so the
//! combination sees what one node's two searches see. Not split (the nodes combine per
//! shard, as before): searches with `sort` or `distinct`, whose combination compares sort
//! values and distinct values across the halves, and placeholder searches (one node runs
//! those as semantic searches).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::context::IndexContext;
use super::identity::Identity;
use super::merge::write_pagination;
use super::plan::{plan_value, push_json_str, MergePlan, Pagination};
use crate::error::{Code, MiroirError};

/// milli's `GOOD_ENOUGH_SCORE`.
const GOOD_ENOUGH_SCORE: f64 = 0.45;
/// Meilisearch's default `semanticRatio`.
const DEFAULT_RATIO: f32 = 0.5;

/// A hybrid search split into its keyword and semantic halves.
#[derive(Clone, Debug)]
pub struct HybridSearch {
    /// The keyword half's search body (no `hybrid`, `vector` or `media`).
    pub keyword: Map<String, Value>,
    /// The semantic half's search body (`semanticRatio: 1.0`).
    pub semantic: Map<String, Value>,
    ratio: f32,
    identity: Identity,
    plan: MergePlan,
    show_score: bool,
}

/// The halves of `body` when it is a hybrid search Miroir combines itself; `None` for any
/// other search (and for malformed parameters, which the nodes judge).
pub fn split(body: &Map<String, Value>, ctx: &IndexContext) -> Option<HybridSearch> {
    let Some(Value::Object(hybrid)) = body.get("hybrid") else {
        return None;
    };
    let ratio = match hybrid.get("semanticRatio") {
        None | Some(Value::Null) => DEFAULT_RATIO,
        Some(Value::Number(n)) => n.as_f64()? as f32,
        Some(_) => return None,
    };
    if !(ratio > 0.0 && ratio < 1.0) {
        return None;
    }
    // A placeholder search is a semantic search on one node.
    if body
        .get("q")
        .and_then(Value::as_str)
        .is_none_or(|q| q.trim().is_empty())
    {
        return None;
    }
    match body.get("sort") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => return None,
    }
    let plan = plan_value(body.clone(), ctx).ok()?.merge;
    if plan.forwarded || plan.distinct.is_some() {
        return None;
    }
    let show_score = plan.show_score;

    let mut base = body.clone();
    for key in ["offset", "limit", "page", "hitsPerPage"] {
        base.remove(key);
    }
    // Both halves from offset 0 over the whole window, as milli runs them.
    let depth = plan.offset + plan.limit;
    match plan.pagination {
        Pagination::OffsetLimit { .. } => {
            base.insert("offset".into(), 0.into());
            base.insert("limit".into(), depth.into());
        }
        Pagination::Page { .. } => {
            base.insert("page".into(), 1.into());
            base.insert("hitsPerPage".into(), depth.into());
        }
    }
    base.insert("showRankingScore".into(), true.into());
    let identity = Identity::retrieve(&mut base, ctx.primary_key.as_deref());

    let mut keyword = base.clone();
    for key in ["hybrid", "vector", "media"] {
        keyword.remove(key);
    }
    let mut semantic = base;
    let mut hybrid = hybrid.clone();
    hybrid.insert("semanticRatio".into(), 1.0.into());
    semantic.insert("hybrid".into(), Value::Object(hybrid));

    Some(HybridSearch {
        keyword,
        semantic,
        ratio,
        identity,
        plan,
        show_score,
    })
}

fn invalid(what: impl std::fmt::Display) -> MiroirError {
    MiroirError::new(
        Code::InvalidNodeAnswer,
        format!("a merged hybrid half is not a search response: {what}"),
    )
}

fn score(hit: &Value) -> f64 {
    hit["_rankingScore"].as_f64().unwrap_or(0.0)
}

fn total(answer: &Map<String, Value>) -> u64 {
    answer
        .get("totalHits")
        .or_else(|| answer.get("estimatedTotalHits"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

impl HybridSearch {
    /// The client's answer from the two halves' merged answers.
    pub fn combine(&self, keyword: &[u8], semantic: &[u8]) -> Result<Vec<u8>, MiroirError> {
        let keyword: Map<String, Value> = serde_json::from_slice(keyword).map_err(invalid)?;
        let semantic: Map<String, Value> = serde_json::from_slice(semantic).map_err(invalid)?;
        let hits = |a: &Map<String, Value>| -> Result<Vec<Value>, MiroirError> {
            match a.get("hits") {
                Some(Value::Array(h)) => Ok(h.clone()),
                _ => Err(invalid("no `hits`")),
            }
        };
        let (k_hits, v_hits) = (hits(&keyword)?, hits(&semantic)?);
        let (from, len) = (self.plan.offset, self.plan.limit);
        // milli weighs with the ratio as an `f32`.
        let k_weight = f64::from(1.0 - self.ratio);
        let v_weight = f64::from(self.ratio);

        let good_enough = k_hits.len() >= from + len
            && k_hits
                .iter()
                .all(|h| score(h) * k_weight >= GOOD_ENOUGH_SCORE);
        let (page, semantic_hits, source) = if good_enough {
            let page: Vec<Value> = k_hits.into_iter().skip(from).take(len).collect();
            (page, 0usize, &keyword)
        } else {
            let (page, semantic_hits) = self.interleave(k_hits, v_hits, k_weight, v_weight);
            (page, semantic_hits, &semantic)
        };

        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"hits\":[");
        for (i, mut hit) in page.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.identity.strip(&mut hit);
            if !self.show_score {
                if let Some(o) = hit.as_object_mut() {
                    o.shift_remove("_rankingScore");
                }
            }
            serde_json::to_writer(&mut out, &hit).map_err(invalid)?;
        }
        out.extend_from_slice(b"],\"query\":");
        push_json_str(&mut out, &self.plan.query);
        // The vector the semantic half searched with (`retrieveVectors`): one node shows it
        // when that half took part, not when the keyword results stood alone.
        if let Some(v) = semantic.get("queryVector").filter(|_| !good_enough) {
            out.extend_from_slice(b",\"queryVector\":");
            serde_json::to_writer(&mut out, v).map_err(invalid)?;
        }
        let processing = [&keyword, &semantic]
            .iter()
            .filter_map(|a| a.get("processingTimeMs").and_then(Value::as_u64))
            .max()
            .unwrap_or(0);
        out.extend_from_slice(b",\"processingTimeMs\":");
        out.extend_from_slice(itoa::Buffer::new().format(processing).as_bytes());
        let total = usize::try_from(total(source)).unwrap_or(usize::MAX);
        write_pagination(&mut out, &self.plan, total);
        for key in [
            "facetDistribution",
            "facetStats",
            "requestUid",
            "performanceDetails",
        ] {
            if let Some(v) = source.get(key) {
                out.push(b',');
                push_json_str(&mut out, key);
                out.push(b':');
                serde_json::to_writer(&mut out, v).map_err(invalid)?;
            }
        }
        out.extend_from_slice(b",\"semanticHitCount\":");
        out.extend_from_slice(itoa::Buffer::new().format(semantic_hits).as_bytes());
        out.push(b'}');
        Ok(out)
    }

    /// Both halves merged by weighted score, each document once; the window, and how many of
    /// its hits came from the semantic half.
    fn interleave(
        &self,
        keyword: Vec<Value>,
        semantic: Vec<Value>,
        k_weight: f64,
        v_weight: f64,
    ) -> (Vec<Value>, usize) {
        let (from, len) = (self.plan.offset, self.plan.limit);
        let mut k = keyword.into_iter().peekable();
        let mut v = semantic.into_iter().peekable();
        let mut seen = HashSet::new();
        let (mut kept, mut page, mut semantic_hits) = (0usize, Vec::new(), 0usize);
        while kept < from + len {
            let take_semantic = match (v.peek(), k.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(vh), Some(kh)) => {
                    let (vs, ks) = (score(vh) * v_weight, score(kh) * k_weight);
                    // milli's merge keeps the semantic hit first unless the keyword one is
                    // greater by more than `f64::EPSILON`.
                    (vs - ks).abs() <= f64::EPSILON || vs > ks
                }
            };
            let Some(hit) = (if take_semantic { v.next() } else { k.next() }) else {
                break;
            };
            if !seen.insert(self.identity.key(&hit)) {
                continue;
            }
            if kept >= from {
                semantic_hits += usize::from(take_semantic);
                page.push(hit);
            }
            kept += 1;
        }
        (page, semantic_hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn ctx() -> IndexContext {
        IndexContext {
            primary_key: Some("id".into()),
            ..IndexContext::default()
        }
    }

    fn answer(hits: &[(u32, f64)], total: u64) -> Vec<u8> {
        let hits: Vec<Value> = hits
            .iter()
            .map(|(id, s)| json!({"id": id, "_rankingScore": s}))
            .collect();
        serde_json::to_vec(&json!({
            "hits": hits, "query": "q", "processingTimeMs": 1, "limit": 9, "offset": 0,
            "estimatedTotalHits": total, "requestUid": "u",
        }))
        .unwrap_or_default()
    }

    fn read(out: &[u8]) -> (Vec<u64>, Value) {
        let v: Value = serde_json::from_slice(out).unwrap_or_default();
        let ids = v["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["id"].as_u64())
            .collect();
        (ids, v)
    }

    #[test]
    fn only_hybrid_searches_with_a_ratio_inside_zero_one_and_a_query_are_split() {
        let h = |v: Value| split(&body(v), &ctx()).is_some();
        let hybrid = json!({"embedder": "e", "semanticRatio": 0.3});
        assert!(h(json!({"q": "a", "hybrid": hybrid})));
        assert!(h(json!({"q": "a", "hybrid": {"embedder": "e"}})));
        assert!(!h(
            json!({"q": "a", "hybrid": {"embedder": "e", "semanticRatio": 0.0}})
        ));
        assert!(!h(
            json!({"q": "a", "hybrid": {"embedder": "e", "semanticRatio": 1}})
        ));
        assert!(!h(json!({"q": "  ", "hybrid": hybrid})));
        assert!(!h(json!({"q": "a", "hybrid": hybrid, "sort": ["y:asc"]})));
        assert!(!h(json!({"q": "a", "hybrid": hybrid, "distinct": "g"})));
        assert!(!h(json!({"q": "a", "hybrid": hybrid, "limit": "x"})));
        assert!(!h(json!({"q": "a"})));

        let s = split(
            &body(
                json!({"q": "a", "hybrid": hybrid, "vector": [1.0], "offset": 3, "limit": 4,
                "attributesToRetrieve": ["t"]}),
            ),
            &ctx(),
        )
        .unwrap();
        assert_eq!(s.keyword.get("hybrid"), None);
        assert_eq!(s.keyword.get("vector"), None);
        assert_eq!(s.semantic["hybrid"]["semanticRatio"], json!(1.0));
        assert_eq!(s.semantic["vector"], json!([1.0]));
        for half in [&s.keyword, &s.semantic] {
            assert_eq!((&half["offset"], &half["limit"]), (&json!(0), &json!(7)));
            assert_eq!(half["attributesToRetrieve"], json!(["t", "id"]));
            assert_eq!(half["showRankingScore"], json!(true));
        }
    }

    #[test]
    fn halves_are_merged_by_weighted_score_each_document_once() {
        let s = split(
            &body(json!({"q": "a", "hybrid": {"embedder": "e", "semanticRatio": 0.5}, "limit": 4})),
            &ctx(),
        )
        .unwrap();
        // Keyword 0.8 × 0.5 = 0.4 < 0.45: not good enough.
        let k = answer(&[(1, 0.8), (2, 0.7), (3, 0.2)], 3);
        let v = answer(&[(4, 0.9), (1, 0.8), (5, 0.1)], 50);
        let (ids, out) = read(&s.combine(&k, &v).unwrap());
        // 4 (0.45), then 1 semantic (0.4) ties 1 keyword (0.4): semantic first, keyword
        // copy dropped; 2 (0.35), 3 (0.1) before 5 (0.05).
        assert_eq!(ids, [4, 1, 2, 3]);
        assert_eq!(out["semanticHitCount"], 2);
        assert_eq!(out["estimatedTotalHits"], 50);
        assert_eq!(out["limit"], 4);
        assert!(out["hits"][0].get("_rankingScore").is_none());
    }

    #[test]
    fn good_enough_keyword_results_stand_alone() {
        let s = split(
            &body(
                json!({"q": "a", "hybrid": {"embedder": "e", "semanticRatio": 0.3},
                "offset": 1, "limit": 1, "showRankingScore": true}),
            ),
            &ctx(),
        )
        .unwrap();
        // 0.7 × 0.7 = 0.49 ≥ 0.45 for both hits of the window.
        let k = answer(&[(1, 0.9), (2, 0.7)], 12);
        let v = answer(&[(4, 0.99)], 50);
        let (ids, out) = read(&s.combine(&k, &v).unwrap());
        assert_eq!(ids, [2]);
        assert_eq!(out["semanticHitCount"], 0);
        assert_eq!(out["estimatedTotalHits"], 12);
        assert_eq!(out["hits"][0]["_rankingScore"], 0.7);
        // One keyword hit short of the window: combined, 1 (0.63) then 4 (0.297).
        let k = answer(&[(1, 0.9)], 1);
        let (ids, out) = read(&s.combine(&k, &v).unwrap());
        assert_eq!(ids, [4]);
        assert_eq!(out["estimatedTotalHits"], 50);
    }
}
