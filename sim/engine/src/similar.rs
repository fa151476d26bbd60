//! `POST /indexes/{uid}/similar`: the documents nearest to one document's embeddings, as
//! milli's `Similar` returns them. The target's embedding number `i` is compared with every
//! other document's embedding number `i` (one vector store per position), results are merged
//! by similarity and each document is kept once; the target itself is never returned.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::model::IndexData;
use crate::params::Reader;
use crate::project::project;
use crate::validate;
use crate::vector;

/// The body fields `/similar` accepts, in Meilisearch's order.
pub const SIMILAR_FIELDS: [&str; 11] = [
    "id",
    "offset",
    "limit",
    "filter",
    "embedder",
    "attributesToRetrieve",
    "retrieveVectors",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
    "rankingScoreThreshold",
];

/// Runs `/similar` with `body`; `extra_filter` is a tenant-token filter, which (as in
/// Meilisearch 1.50) decides whether the target document is visible, not the candidates.
pub fn similar(
    index: &IndexData,
    body: &Value,
    extra_filter: Option<&Value>,
) -> Result<Value, MeiliError> {
    let started = Instant::now();
    let r = Reader::new(body, "", &SIMILAR_FIELDS)?;
    let missing = |f: &str| MeiliError::invalid("bad_request", format!("Missing field `{f}`"));
    let id = r.get("id").ok_or_else(|| missing("id"))?;
    let embedder = r
        .string("embedder", "invalid_similar_embedder")?
        .ok_or_else(|| missing("embedder"))?;
    let offset = r.usize("offset", "invalid_similar_offset")?.unwrap_or(0);
    let limit = r.usize("limit", "invalid_similar_limit")?.unwrap_or(20);
    let retrieve = r.strings(
        "attributesToRetrieve",
        "invalid_similar_attributes_to_retrieve",
    )?;
    let retrieve_vectors = r.bool("retrieveVectors", "invalid_similar_retrieve_vectors")?;
    let show_score = r.bool("showRankingScore", "invalid_similar_show_ranking_score")?;
    let show_details = r.bool(
        "showRankingScoreDetails",
        "invalid_similar_show_ranking_score_details",
    )?;
    let show_performance = r.bool(
        "showPerformanceDetails",
        "invalid_similar_show_performance_details",
    )?;
    let threshold = match r.get("rankingScoreThreshold") {
        None => None,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t)) => {
            n.as_f64()
        }
        Some(Value::Number(_)) => {
            return Err(MeiliError::invalid(
                "invalid_similar_ranking_score_threshold",
                "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
            ))
        }
        Some(other) => {
            return Err(r.type_error(
                "rankingScoreThreshold",
                "invalid_similar_ranking_score_threshold",
                "a number",
                other,
            ))
        }
    };

    let settings = &index.settings;
    let (embedder, _) = vector::embedder(settings, &embedder, "invalid_similar_embedder")?;
    // Unlike a search filter, a similar filter error does not name the index.
    let unprefixed = |e: MeiliError| MeiliError {
        message: e
            .message
            .strip_prefix(&format!("Index `{}`: ", index.uid))
            .map_or(e.message.clone(), str::to_owned),
        ..e
    };
    let filter = validate::build_filter(index, r.get("filter"), None, "invalid_similar_filter")
        .map_err(unprefixed)?;
    let tenant = validate::build_filter(index, extra_filter, None, "invalid_similar_filter")?;
    let external = external_id(id)?;
    let not_found = || {
        MeiliError::invalid(
            "not_found_similar_id",
            format!("Document `{external}` not found."),
        )
    };
    let &target = index.external_ids.get(&external).ok_or_else(not_found)?;
    let target_doc = index.docs.get(&target).ok_or_else(not_found)?;
    if tenant.as_ref().is_some_and(|t| !t.matches(target_doc)) {
        return Err(not_found());
    }

    let universe: Vec<(u32, &crate::model::Document)> = index
        .docs
        .iter()
        .filter(|(id, d)| **id != target && filter.as_ref().is_none_or(|f| f.matches(d)))
        .map(|(id, d)| (*id, d))
        .collect();
    // One nearest-neighbour list per embedding position, merged by similarity.
    let mut scored: Vec<(u32, f32)> = Vec::new();
    for (position, t) in vector::embeddings(target_doc, embedder).iter().enumerate() {
        for (id, doc) in &universe {
            if let Some(e) = vector::embeddings(doc, embedder).get(position) {
                scored.push((*id, vector::similarity(e, t)));
            }
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));

    let mut seen: HashSet<u32> = HashSet::from([target]);
    let mut candidates = universe.len();
    let mut page: Vec<(u32, f32)> = Vec::new();
    for (id, score) in scored
        .into_iter()
        .filter(|(id, _)| seen.insert(*id))
        .skip(offset)
        .take(limit)
    {
        if threshold.is_some_and(|t| f64::from(score) < t) {
            // Only the documents seen before this one remain candidates (the target is not one).
            candidates = seen.len() - 2;
            break;
        }
        page.push((id, score));
    }

    let hits: Vec<Value> = page
        .iter()
        .filter_map(|(id, score)| {
            let doc = index.docs.get(id)?;
            let mut hit = project(doc, settings, retrieve.as_deref());
            hit.remove("_vectors");
            if retrieve_vectors {
                hit.insert("_vectors".into(), vector::retrieved(doc, settings));
            }
            let score = f64::from(*score);
            if show_score {
                hit.insert("_rankingScore".into(), json!(score));
            }
            if show_details {
                hit.insert(
                    "_rankingScoreDetails".into(),
                    json!({"vectorSort": {"order": 0, "similarity": score}}),
                );
            }
            Some(Value::Object(hit))
        })
        .collect();
    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("id".into(), json!(external));
    out.insert(
        "processingTimeMs".into(),
        json!(started.elapsed().as_millis()),
    );
    out.insert("limit".into(), json!(limit));
    out.insert("offset".into(), json!(offset));
    out.insert(
        "estimatedTotalHits".into(),
        json!(candidates.min(settings.max_total_hits)),
    );
    if show_performance {
        // Meilisearch lists its internal steps; the simulator has one.
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        out.insert(
            "performanceDetails".into(),
            json!({ "similar": format!("{ms:.2}ms") }),
        );
    }
    Ok(Value::Object(out))
}

/// The external id `/similar` was given, validated as Meilisearch validates document ids.
fn external_id(id: &Value) -> Result<String, MeiliError> {
    let text = match id {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        other => {
            return Err(MeiliError::invalid(
                "invalid_similar_id",
                format!(
                    "Invalid value at `.id`: Document identifier `{other}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
                ),
            ))
        }
    };
    let valid = !text.is_empty()
        && text.len() <= 511
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(MeiliError::invalid(
            "invalid_similar_id",
            format!(
                "Invalid value at `.id`: Document identifier `{}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.",
                id
            ),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Settings;

    /// The corpus real Meilisearch 1.50 answered in the notes below.
    fn index() -> IndexData {
        let mut index = IndexData::new("v", Some("id".into()), "now");
        index.settings = Settings {
            embedders: [("emb".to_owned(), 3)].into(),
            filterable_attributes: vec!["genre".into()],
            ..Settings::default()
        };
        let docs = json!([
            {"id": 1, "genre": "x", "_vectors": {"emb": [1, 0, 0]}},
            {"id": 2, "genre": "y", "_vectors": {"emb": [0.9, 0.1, 0]}},
            {"id": 3, "genre": "x", "_vectors": {"emb": [0, 1, 0]}},
            {"id": 4, "genre": "x", "_vectors": {"emb": null}},
            {"id": "5", "genre": "y", "_vectors": {"emb": [[0.5, 0.5, 0], [0, 0, 1]]}},
            {"id": 6, "_vectors": {"emb": null}},
            {"id": 7, "_vectors": {"emb": [-1, 0, 0]}}
        ]);
        for d in docs.as_array().unwrap() {
            let id = match &d["id"] {
                Value::String(s) => s.clone(),
                n => n.to_string(),
            };
            index.put_document(id, d.as_object().unwrap().clone());
        }
        index
    }

    fn ids(v: &Value) -> Vec<String> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].to_string())
            .collect()
    }

    #[test]
    fn nearest_documents_without_the_target_or_documents_without_vectors() {
        let out = similar(
            &index(),
            &json!({"id": 1, "embedder": "emb", "showRankingScore": true, "showRankingScoreDetails": true}),
            None,
        )
        .unwrap();
        // Real Meilisearch: 2, "5", 3, 7 with scores 0.9969, 0.8536, 0.5, 0.0; total 6.
        assert_eq!(ids(&out), ["2", "\"5\"", "3", "7"]);
        assert_eq!(out["estimatedTotalHits"], 6);
        assert_eq!(out["id"], "1");
        let s = out["hits"][1]["_rankingScore"].as_f64().unwrap();
        assert!((s - 0.8535534143447876).abs() < 1e-6);
        assert_eq!(
            out["hits"][3]["_rankingScoreDetails"],
            json!({"vectorSort": {"order": 0, "similarity": 0.0}})
        );
    }

    #[test]
    fn threshold_cuts_the_candidates_to_the_documents_seen() {
        let idx = index();
        let run = |body: Value| similar(&idx, &body, None).unwrap();
        // Real Meilisearch: offset 1, limit 2, threshold 0.6 -> ["5"], total 2.
        let out = run(
            json!({"id": 1, "embedder": "emb", "offset": 1, "limit": 2, "rankingScoreThreshold": 0.6}),
        );
        assert_eq!(ids(&out), ["\"5\""]);
        assert_eq!(out["estimatedTotalHits"], 2);
        let out = run(json!({"id": 1, "embedder": "emb", "filter": "genre = x"}));
        assert_eq!(ids(&out), ["3"]);
        assert_eq!(out["estimatedTotalHits"], 2);
        // A target without vectors has no neighbours.
        let out = run(json!({"id": 4, "embedder": "emb"}));
        assert_eq!(ids(&out), Vec::<String>::new());
        assert_eq!(out["estimatedTotalHits"], 6);
    }

    #[test]
    fn errors_use_meilisearch_codes() {
        let idx = index();
        let code = |body: Value| similar(&idx, &body, None).unwrap_err().code;
        assert_eq!(
            code(json!({"id": 99, "embedder": "emb"})),
            "not_found_similar_id"
        );
        assert_eq!(
            code(json!({"id": "a b", "embedder": "emb"})),
            "invalid_similar_id"
        );
        assert_eq!(
            code(json!({"id": 1, "embedder": "nope"})),
            "invalid_similar_embedder"
        );
        assert_eq!(code(json!({"id": 1})), "bad_request");
        assert_eq!(
            code(json!({"id": 1, "embedder": "emb", "limit": "x"})),
            "invalid_similar_limit"
        );
        let err = similar(
            &idx,
            &json!({"id": 1, "embedder": "emb", "filter": "foo = 1"}),
            None,
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_similar_filter");
        assert!(!err.message.starts_with("Index"), "{}", err.message);
    }
}
