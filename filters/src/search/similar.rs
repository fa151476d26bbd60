//! `/similar` across shards, as pure functions.
//!
//! The target document lives on one shard, and only a node holding it can answer
//! Meilisearch's `/similar` (others answer `not_found_similar_id`). So the owner shard answers
//! `/similar` itself, Miroir reads the target's embedding from it, and every other shard
//! answers a semantic search for that embedding (`vector` with `hybrid.semanticRatio: 1.0`),
//! which scores a document with the same similarity `/similar` gives it. The merge orders every
//! hit by `_rankingScore` and applies offset, limit and `rankingScoreThreshold` as one node
//! does (a hit under the threshold ends the page, and the total becomes the hits seen before
//! it). Unlike a search's, the total is capped at `maxTotalHits` while hits past the cap are
//! still returned: what one Meilisearch 1.50 node answers to `/similar`.
//!
//! Exactness bounds: ties keep node order (one node orders them by internal id); a target
//! with several embeddings is searched with its first one (Meilisearch compares embedding `i`
//! with the other documents' embedding `i` only); a custom `field:asc` ranking rule placed
//! before every relevancy rule would order the semantic searches by that field first.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::context::{IndexContext, NodeDisplay};
use super::json::{entries, write_object};
use super::plan::{narrow, push_json_str, ShardBody};
use crate::error::{Code, MiroirError};
use crate::hidden::RESERVED_PREFIX;
use crate::routing::canonical_key;

/// Meilisearch's default `limit` for `/similar`.
const DEFAULT_LIMIT: usize = 20;

/// What a `/similar` request asks for.
#[derive(Clone, Debug)]
pub struct SimilarPlan {
    /// The target's external id, as `/similar` echoes it (and as it hashes to its shard).
    pub id: String,
    pub embedder: String,
    pub offset: usize,
    pub limit: usize,
    pub threshold: Option<f64>,
    pub show_score: bool,
    pub show_details: bool,
    client: Map<String, Value>,
}

fn opt_usize(body: &Map<String, Value>, key: &str, default: usize) -> Option<usize> {
    match body.get(key) {
        None | Some(Value::Null) => Some(default),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Some(_) => None,
    }
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Option<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    }
}

/// Reads the parameters the merge depends on; `None` when one is missing or malformed: the
/// body is then sent as it is to one node, whose answer is Meilisearch's own error. When the
/// nodes display more than the client's `displayedAttributes`, retrieval is narrowed to it.
pub fn plan(mut body: Map<String, Value>, ctx: &IndexContext) -> Option<SimilarPlan> {
    if let (NodeDisplay::All, Some(displayed)) = (ctx.node_display, ctx.displayed_restriction()) {
        let retrieve: Vec<String> = match body.get("attributesToRetrieve") {
            None | Some(Value::Null) => vec!["*".to_owned()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<_>>()?,
            Some(_) => return None,
        };
        body.insert(
            "attributesToRetrieve".into(),
            json!(narrow(&retrieve, displayed)),
        );
    }
    let id = canonical_key(body.get("id")?)?.into_owned();
    let embedder = body.get("embedder")?.as_str()?.to_owned();
    let threshold = match body.get("rankingScoreThreshold") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_f64().filter(|t| (0.0..=1.0).contains(t))?),
        Some(_) => return None,
    };
    Some(SimilarPlan {
        id,
        embedder,
        offset: opt_usize(&body, "offset", 0)?,
        limit: opt_usize(&body, "limit", DEFAULT_LIMIT)?,
        threshold,
        show_score: opt_bool(&body, "showRankingScore")?,
        show_details: opt_bool(&body, "showRankingScoreDetails")?,
        client: body,
    })
}

impl SimilarPlan {
    /// Hits each node returns: the client's whole window, from offset 0.
    fn depth(&self) -> usize {
        self.offset.saturating_add(self.limit)
    }

    /// `/similar` for the shard holding the target: scores always shown, no threshold (the
    /// merge applies it over every shard).
    pub fn owner_body(&self) -> Result<ShardBody, MiroirError> {
        let mut body = self.client.clone();
        body.remove("rankingScoreThreshold");
        body.insert("offset".into(), json!(0));
        body.insert("limit".into(), json!(self.depth()));
        body.insert("showRankingScore".into(), json!(true));
        body.insert("showRankingScoreDetails".into(), json!(true));
        ShardBody::new(body)
    }

    /// `POST documents/fetch` of the target with its embeddings (sent with Miroir's own key).
    pub fn fetch_body(&self) -> Result<ShardBody, MiroirError> {
        let body = json!({"ids": [self.id], "retrieveVectors": true});
        ShardBody::new(body.as_object().cloned().unwrap_or_default())
    }

    /// The semantic search the other shards answer for the target's embedding.
    pub fn vector_body(&self, vector: &Value) -> Result<ShardBody, MiroirError> {
        let mut body = Map::new();
        body.insert("vector".into(), vector.clone());
        body.insert(
            "hybrid".into(),
            json!({"embedder": self.embedder, "semanticRatio": 1.0}),
        );
        body.insert("offset".into(), json!(0));
        body.insert("limit".into(), json!(self.depth()));
        for key in ["filter", "attributesToRetrieve", "retrieveVectors"] {
            if let Some(v) = self.client.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        body.insert("showRankingScore".into(), json!(true));
        body.insert("showRankingScoreDetails".into(), json!(true));
        ShardBody::new(body)
    }

    /// For a target without an embedding: the other shards only count their candidates.
    pub fn count_body(&self) -> Result<ShardBody, MiroirError> {
        let mut body = Map::new();
        body.insert("limit".into(), json!(0));
        if let Some(f) = self.client.get("filter") {
            body.insert("filter".into(), f.clone());
        }
        ShardBody::new(body)
    }
}

/// The target's first embedding for `embedder` in a `documents/fetch` answer, if it has one.
pub fn first_embedding(fetched: &[u8], embedder: &str) -> Option<Value> {
    let v: Value = serde_json::from_slice(fetched).ok()?;
    let e = &v["results"][0]["_vectors"][embedder];
    let list = e.get("embeddings").unwrap_or(e);
    match list.as_array()?.first()? {
        first @ Value::Array(_) => Some(first.clone()),
        // One embedding given as a flat array of numbers.
        Value::Number(_) => Some(list.clone()),
        _ => None,
    }
}

#[derive(Deserialize)]
struct NodeAnswer<'a> {
    #[serde(borrow, default)]
    hits: Vec<&'a RawValue>,
    #[serde(rename = "estimatedTotalHits", default)]
    total: usize,
    /// The owner's breakdown of its `/similar` work, when the client asked for it.
    #[serde(rename = "performanceDetails", borrow, default)]
    performance: Option<&'a RawValue>,
}

fn parse(b: &[u8]) -> Result<NodeAnswer<'_>, MiroirError> {
    let bad = |e: String| MiroirError::new(Code::Internal, e);
    let text = std::str::from_utf8(b).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| bad(format!("a node answer is unreadable: {e}")))
}

/// What the merge reads from one hit.
struct Scored<'a> {
    raw: &'a RawValue,
    score: f64,
    similarity: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct HitScore<'a> {
    #[serde(rename = "_rankingScore", default)]
    score: f64,
    #[serde(rename = "_rankingScoreDetails", borrow, default)]
    details: Option<Details<'a>>,
}

#[derive(Deserialize)]
struct Details<'a> {
    #[serde(rename = "vectorSort", borrow)]
    vector_sort: Option<VectorSort<'a>>,
}

#[derive(Deserialize)]
struct VectorSort<'a> {
    #[serde(borrow)]
    similarity: Option<&'a RawValue>,
}

fn scored(raw: &RawValue) -> Result<Scored<'_>, String> {
    let h: HitScore<'_> =
        serde_json::from_str(raw.get()).map_err(|e| format!("a node hit is unreadable: {e}"))?;
    let similarity = h
        .details
        .and_then(|d| d.vector_sort)
        .and_then(|v| v.similarity)
        .filter(|s| s.get() != "null");
    Ok(Scored {
        raw,
        score: h.score,
        similarity,
    })
}

/// Merges the owner shard's `/similar` answer with the other shards' semantic searches (or
/// counts) into the answer one node holding every document gives.
pub fn merge(
    plan: &SimilarPlan,
    owner: &[u8],
    others: &[&[u8]],
    max_total_hits: usize,
    processing_ms: u128,
) -> Result<Vec<u8>, MiroirError> {
    let bad = |e: String| MiroirError::new(Code::Internal, e);
    let owner = parse(owner)?;
    let others = others
        .iter()
        .map(|b| parse(b))
        .collect::<Result<Vec<_>, _>>()?;

    let mut total = owner.total;
    let mut hits: Vec<Scored<'_>> = Vec::new();
    for raw in &owner.hits {
        hits.push(scored(raw).map_err(bad)?);
    }
    for answer in &others {
        total += answer.total;
        for raw in &answer.hits {
            let hit = scored(raw).map_err(bad)?;
            // A document without an embedding is never similar to anything.
            if hit.similarity.is_some() {
                hits.push(hit);
            }
        }
    }
    // Stable: equal scores keep the owner first, then shard order, then each node's order.
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));

    let mut total = total.min(max_total_hits);
    let mut page: Vec<&Scored<'_>> = Vec::new();
    for (seen, hit) in hits.iter().enumerate().skip(plan.offset).take(plan.limit) {
        if plan.threshold.is_some_and(|t| hit.score < t) {
            // One node then keeps as candidates only the documents it saw before this one.
            total = seen.min(max_total_hits);
            break;
        }
        page.push(hit);
    }

    let mut out = Vec::with_capacity(256 + page.iter().map(|h| h.raw.get().len()).sum::<usize>());
    out.extend_from_slice(b"{\"hits\":[");
    for (i, hit) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_hit(&mut out, hit, plan).map_err(bad)?;
    }
    out.extend_from_slice(b"],\"id\":");
    push_json_str(&mut out, &plan.id);
    out.extend_from_slice(
        format!(
            ",\"processingTimeMs\":{processing_ms},\"limit\":{},\"offset\":{},\"estimatedTotalHits\":{total}",
            plan.limit, plan.offset
        )
        .as_bytes(),
    );
    if let Some(details) = owner.performance {
        out.extend_from_slice(b",\"performanceDetails\":");
        out.extend_from_slice(details.get().as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

/// A hit as the client sees it: no shard field, scores only when asked, and the details of
/// `/similar` (the vector rule alone) whichever request produced the hit.
fn write_hit(out: &mut Vec<u8>, hit: &Scored<'_>, plan: &SimilarPlan) -> Result<(), String> {
    let fields = entries(hit.raw).map_err(|e| e.to_string())?;
    let details = hit.similarity.map(|s| {
        let mut d = b"{\"vectorSort\":{\"order\":0,\"similarity\":".to_vec();
        d.extend_from_slice(s.get().as_bytes());
        d.extend_from_slice(b"}}");
        d
    });
    let kept = fields.iter().filter_map(|(name, value)| {
        let name = &*name.0;
        if name.starts_with(RESERVED_PREFIX) {
            return None;
        }
        match name {
            "_rankingScore" if !plan.show_score => None,
            "_rankingScoreDetails" if !plan.show_details => None,
            "_rankingScoreDetails" => Some((
                name,
                details.as_deref().unwrap_or_else(|| value.get().as_bytes()),
            )),
            _ => Some((name, value.get().as_bytes())),
        }
    });
    write_object(out, kept);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(v: Value) -> SimilarPlan {
        plan(v.as_object().cloned().unwrap(), &IndexContext::default()).unwrap()
    }

    fn hit(id: u32, score: f64, similarity: Option<f64>) -> Value {
        json!({"id": id, "_miroir_shard": 1, "_rankingScore": score,
               "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": similarity}, "price:asc": {"order": 1, "value": 3.0}}})
    }

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn malformed_or_missing_parameters_are_left_to_a_node() {
        let p = |v: Value| plan(v.as_object().cloned().unwrap(), &IndexContext::default());
        assert!(p(json!({"embedder": "e"})).is_none());
        assert!(p(json!({"id": 1})).is_none());
        assert!(p(json!({"id": 1.5, "embedder": "e"})).is_none());
        assert!(p(json!({"id": 1, "embedder": "e", "limit": "x"})).is_none());
        assert!(p(json!({"id": 1, "embedder": "e", "rankingScoreThreshold": 2})).is_none());
        assert_eq!(p(json!({"id": 42, "embedder": "e"})).unwrap().id, "42");
    }

    #[test]
    fn nodes_get_the_whole_window_with_scores_and_no_threshold() {
        let p = plan_of(
            json!({"id": "a", "embedder": "e", "offset": 3, "limit": 4, "rankingScoreThreshold": 0.5, "filter": "g = 1", "attributesToRetrieve": ["t"]}),
        );
        let owner: Value = serde_json::from_slice(&p.owner_body().unwrap().node_body(
            crate::routing::NodeScope::shards(&[crate::routing::ShardId(2)]),
        ))
        .unwrap();
        assert_eq!(owner["offset"], 0);
        assert_eq!(owner["limit"], 7);
        assert_eq!(owner["showRankingScore"], true);
        assert!(owner.get("rankingScoreThreshold").is_none());
        assert_eq!(
            owner["filter"],
            json!(["g = 1", r#"_miroir_shard IN [".-"]"#])
        );
        let v: Value =
            serde_json::from_slice(&p.vector_body(&json!([1.0, 0.0])).unwrap().node_body(
                crate::routing::NodeScope::shards(&[crate::routing::ShardId(0)]),
            ))
            .unwrap();
        assert_eq!(v["hybrid"], json!({"embedder": "e", "semanticRatio": 1.0}));
        assert_eq!(v["vector"], json!([1.0, 0.0]));
        assert_eq!(v["limit"], 7);
        assert_eq!(v["attributesToRetrieve"], json!(["t"]));
    }

    #[test]
    fn hits_merge_by_score_without_documents_lacking_embeddings() {
        let p = plan_of(json!({"id": 1, "embedder": "e", "limit": 3}));
        let owner = bytes(
            json!({"hits": [hit(2, 0.9, Some(0.9)), hit(3, 0.5, Some(0.5))], "estimatedTotalHits": 4}),
        );
        let other = bytes(
            json!({"hits": [hit(7, 0.7, Some(0.7)), hit(8, 0.0, None)], "estimatedTotalHits": 5}),
        );
        let out: Value =
            serde_json::from_slice(&merge(&p, &owner, &[&other], 1000, 3).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"hits": [{"id": 2}, {"id": 7}, {"id": 3}], "id": "1", "processingTimeMs": 3, "limit": 3, "offset": 0, "estimatedTotalHits": 9})
        );
        let p = plan_of(
            json!({"id": 1, "embedder": "e", "showRankingScore": true, "showRankingScoreDetails": true, "limit": 1}),
        );
        let out: Value =
            serde_json::from_slice(&merge(&p, &owner, &[&other], 6, 0).unwrap()).unwrap();
        assert_eq!(
            out["hits"][0],
            json!({"id": 2, "_rankingScore": 0.9, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": 0.9}}})
        );
        assert_eq!(out["estimatedTotalHits"], 6, "capped by maxTotalHits");
    }

    #[test]
    fn a_hit_under_the_threshold_ends_the_page_and_the_count() {
        let owner = bytes(
            json!({"hits": [hit(2, 0.99, Some(0.99)), hit(3, 0.5, Some(0.5))], "estimatedTotalHits": 3}),
        );
        let other = bytes(
            json!({"hits": [hit(5, 0.85, Some(0.85)), hit(7, 0.0, Some(0.0))], "estimatedTotalHits": 4}),
        );
        // Real Meilisearch on the same documents: offset 1, limit 2, threshold 0.6 -> [5], 2.
        let p = plan_of(
            json!({"id": 1, "embedder": "e", "offset": 1, "limit": 2, "rankingScoreThreshold": 0.6}),
        );
        let out: Value =
            serde_json::from_slice(&merge(&p, &owner, &[&other], 1000, 0).unwrap()).unwrap();
        assert_eq!(out["hits"], json!([{"id": 5}]));
        assert_eq!(out["estimatedTotalHits"], 2);
    }

    #[test]
    fn retrieval_is_narrowed_to_the_client_displayed_attributes() {
        let ctx = IndexContext {
            displayed_attributes: Some(vec!["title".into(), "year".into()]),
            node_display: NodeDisplay::All,
            ..IndexContext::default()
        };
        let p = plan(
            json!({"id": 1, "embedder": "e"})
                .as_object()
                .cloned()
                .unwrap(),
            &ctx,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&p.vector_body(&json!([1.0])).unwrap().node_body(
            crate::routing::NodeScope::shards(&[crate::routing::ShardId(0)]),
        ))
        .unwrap();
        assert_eq!(v["attributesToRetrieve"], json!(["title", "year"]));
        let p = plan(
            json!({"id": 1, "embedder": "e", "attributesToRetrieve": ["price", "title"]})
                .as_object()
                .cloned()
                .unwrap(),
            &ctx,
        )
        .unwrap();
        let o: Value = serde_json::from_slice(&p.owner_body().unwrap().node_body(
            crate::routing::NodeScope::shards(&[crate::routing::ShardId(0)]),
        ))
        .unwrap();
        assert_eq!(o["attributesToRetrieve"], json!(["title"]));
    }

    #[test]
    fn the_target_embedding_is_read_from_the_fetched_document() {
        let fetched = bytes(
            json!({"results": [{"id": 1, "_vectors": {"e": {"embeddings": [[0.5, 0.5], [1.0, 0.0]], "regenerate": false}}}]}),
        );
        assert_eq!(first_embedding(&fetched, "e"), Some(json!([0.5, 0.5])));
        let none = bytes(
            json!({"results": [{"id": 1, "_vectors": {"e": {"embeddings": [], "regenerate": false}}}]}),
        );
        assert_eq!(first_embedding(&none, "e"), None);
        assert_eq!(first_embedding(&none, "other"), None);
    }
}
