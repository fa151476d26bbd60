//! `userProvided` embeddings: reading a document's `_vectors`, the similarity Meilisearch
//! reports for them (cosine, `1 - distance` with hannoy's distance `(1 - cos) / 2`), the
//! `_vectors` shape of retrieved documents, and the checks a semantic search or a document
//! addition makes. There is no model: only vectors sent by the client exist.

use serde_json::{json, Map, Value};

use crate::error::{ErrorType, MeiliError};
use crate::model::{Document, Settings};
use crate::params::SearchParams;

/// The embeddings of `doc` for `embedder`, in the order given (`[..]` is one embedding,
/// `[[..], [..]]` several, `{"embeddings": ..}` the retrieved form, `null` none).
pub fn embeddings(doc: &Document, embedder: &str) -> Vec<Vec<f32>> {
    match doc.get("_vectors").and_then(|v| v.get(embedder)) {
        Some(Value::Object(o)) => o.get("embeddings").map(list).unwrap_or_default(),
        Some(v) => list(v),
        None => Vec::new(),
    }
}

fn list(v: &Value) -> Vec<Vec<f32>> {
    match v {
        Value::Array(items) if items.iter().all(Value::is_array) => items
            .iter()
            .filter_map(Value::as_array)
            .map(|a| floats(a))
            .collect(),
        Value::Array(items) if !items.is_empty() => vec![floats(items)],
        _ => Vec::new(),
    }
}

fn floats(items: &[Value]) -> Vec<f32> {
    items
        .iter()
        .map(|x| x.as_f64().unwrap_or(0.0) as f32)
        .collect()
}

/// Meilisearch's similarity between two embeddings: `(1 + cos) / 2`, in f32 as hannoy
/// computes it.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    };
    let distance = (1.0 - cos) / 2.0;
    (1.0 - distance).clamp(0.0, 1.0)
}

/// The best similarity of any of `doc`'s embeddings to `target`; `None` without embeddings.
pub fn best_similarity(doc: &Document, embedder: &str, target: &[f32]) -> Option<f32> {
    embeddings(doc, embedder)
        .iter()
        .map(|e| similarity(e, target))
        .fold(None, |best: Option<f32>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        })
}

/// A float as Meilisearch prints a stored f32 (its shortest form, `1.0` for `1`).
fn f32_json(x: f32) -> Value {
    format!("{x}")
        .parse::<f64>()
        .map_or(Value::Null, Value::from)
}

/// `_vectors` of a retrieved document: every configured embedder with its embeddings.
pub fn retrieved(doc: &Document, settings: &Settings) -> Value {
    let mut out = Map::new();
    for name in settings.embedders.keys() {
        let embeddings: Vec<Value> = embeddings(doc, name)
            .into_iter()
            .map(|e| Value::Array(e.into_iter().map(f32_json).collect()))
            .collect();
        out.insert(
            name.clone(),
            json!({"embeddings": embeddings, "regenerate": false}),
        );
    }
    Value::Object(out)
}

/// A document addition's check: every embedder needs `_vectors.<name>` (an embedding list or
/// `null`), with the configured dimensions.
pub fn check_document(
    index_uid: &str,
    settings: &Settings,
    id: &str,
    doc: &Document,
) -> Result<(), MeiliError> {
    for (name, dims) in &settings.embedders {
        if doc.get("_vectors").and_then(|v| v.get(name)).is_none() {
            return Err(MeiliError::invalid(
                "vector_embedding_error",
                format!(
                    "Index `{index_uid}`: While embedding documents for embedder `{name}`: no vectors provided for document `{id}`\n- Note: `{name}` has `source: userProvided`, so documents must provide embeddings as an array in `_vectors.{name}`.\n- Hint: opt-out for a document with `_vectors.{name}: null`"
                ),
            ));
        }
        for (i, e) in embeddings(doc, name).iter().enumerate() {
            if e.len() != *dims {
                return Err(MeiliError::invalid(
                    "invalid_vector_dimensions",
                    format!(
                        "Index `{index_uid}`: Invalid vector dimensions in document with id `{id}` in `._vectors.{name}`.\n  - note: embedding #{i} has dimensions {}\n  - note: embedder `{name}` requires {dims}",
                        e.len()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The embedder name a request names, if it exists.
pub(crate) fn embedder<'s>(
    settings: &'s Settings,
    name: &str,
    code: &str,
) -> Result<(&'s String, usize), MeiliError> {
    settings
        .embedders
        .get_key_value(name)
        .map(|(k, d)| (k, *d))
        .ok_or_else(|| {
            MeiliError::invalid(code, format!("Cannot find embedder with name `{name}`."))
        })
}

/// What kind of search `params` asks for, as Meilisearch's `search_kind` decides: `Some` with
/// the embedder and query vector for a semantic search, `None` for a keyword search.
pub(crate) fn semantic(
    params: &SearchParams,
    settings: &Settings,
) -> Result<Option<(String, Vec<f32>)>, MeiliError> {
    let Some(hybrid) = &params.hybrid else {
        if params.vector.is_some() {
            return Err(MeiliError::invalid(
                "missing_search_hybrid",
                "Invalid request: missing `hybrid` parameter when `vector` or `media` are present.",
            ));
        }
        return Ok(None);
    };
    let Some(name) = hybrid.get("embedder").and_then(Value::as_str) else {
        return Err(MeiliError::invalid(
            "invalid_search_embedder",
            "Missing field `embedder` inside `.hybrid`",
        ));
    };
    let ratio = hybrid
        .get("semanticRatio")
        .and_then(Value::as_f64)
        .unwrap_or(0.5);
    if ratio == 0.0 {
        return Ok(None);
    }
    let (name, dims) = embedder(settings, name, "invalid_search_embedder")?;
    let vector = params
        .vector
        .as_ref()
        .and_then(Value::as_array)
        .map(|v| floats(v));
    if let Some(v) = &vector {
        if v.len() != dims {
            return Err(MeiliError::invalid(
                "invalid_vector_dimensions",
                format!(
                    "Invalid vector dimensions: expected: `{dims}`, found: `{}`.",
                    v.len()
                ),
            ));
        }
    }
    let placeholder = params.q.as_deref().is_none_or(|q| q.trim().is_empty());
    match vector {
        Some(v) if ratio == 1.0 || placeholder => Ok(Some((name.clone(), v))),
        // Without a vector a userProvided embedder has nothing to compare: a placeholder
        // search, as Meilisearch answers it.
        None if placeholder => Ok(None),
        _ => Err(MeiliError::new(
            501,
            "not_implemented_in_simulator",
            ErrorType::InvalidRequest,
            "Hybrid search mixing keyword and semantic results (or embedding `q`) is not implemented by the Meilisearch node simulator (a test double).",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn similarity_is_meilisearch_cosine_score() {
        assert_eq!(similarity(&[1.0, 0.0], &[1.0, 0.0]), 1.0);
        assert_eq!(similarity(&[1.0, 0.0], &[0.0, 1.0]), 0.5);
        assert_eq!(similarity(&[1.0, 0.0], &[-1.0, 0.0]), 0.0);
        // Real Meilisearch 1.50 reports 0.996941864490509 for these two.
        let s = similarity(&[1.0, 0.0, 0.0], &[0.9, 0.1, 0.0]);
        assert!((f64::from(s) - 0.996941864490509).abs() < 1e-6);
    }

    #[test]
    fn embeddings_accept_every_input_form_and_retrieve_in_meilisearch_shape() {
        let one = doc(json!({"_vectors": {"e": [1, 0.9]}}));
        let many = doc(json!({"_vectors": {"e": [[1, 0], [0, 1]]}}));
        let stored =
            doc(json!({"_vectors": {"e": {"embeddings": [[0.5, 0.5]], "regenerate": false}}}));
        let none = doc(json!({"_vectors": {"e": null}}));
        assert_eq!(embeddings(&one, "e"), vec![vec![1.0, 0.9]]);
        assert_eq!(embeddings(&many, "e").len(), 2);
        assert_eq!(embeddings(&stored, "e"), vec![vec![0.5, 0.5]]);
        assert!(embeddings(&none, "e").is_empty());
        let settings = Settings {
            embedders: [("e".to_owned(), 2)].into(),
            ..Settings::default()
        };
        assert_eq!(
            retrieved(&one, &settings),
            json!({"e": {"embeddings": [[1.0, 0.9]], "regenerate": false}})
        );
        assert_eq!(
            best_similarity(&many, "e", &[0.0, 1.0]),
            Some(1.0),
            "the best of several embeddings"
        );
        assert_eq!(best_similarity(&none, "e", &[0.0, 1.0]), None);
    }

    #[test]
    fn additions_need_vectors_of_the_right_dimensions() {
        let settings = Settings {
            embedders: [("e".to_owned(), 2)].into(),
            ..Settings::default()
        };
        let missing = check_document("i", &settings, "4", &doc(json!({"id": 4})));
        assert_eq!(missing.unwrap_err().code, "vector_embedding_error");
        let wrong = check_document("i", &settings, "4", &doc(json!({"_vectors": {"e": [1]}})));
        assert_eq!(wrong.unwrap_err().code, "invalid_vector_dimensions");
        assert!(
            check_document("i", &settings, "4", &doc(json!({"_vectors": {"e": null}}))).is_ok()
        );
    }
}
