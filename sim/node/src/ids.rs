//! Identifier rules shared by several routes: index uids, document ids and primary keys.

use meili_sim_engine::{Document, MeiliError};
use serde_json::Value;

/// Index uids: ASCII alphanumerics, `-` and `_`, 1 to 400 bytes.
pub fn is_valid_index_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 400
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The external id of a document id value, or Meilisearch's `invalid_document_id` error.
pub fn document_id(value: &Value) -> Result<String, MeiliError> {
    match value {
        Value::String(s) if is_valid_id_str(s) => Ok(s.clone()),
        Value::Number(n) if !n.is_f64() => Ok(n.to_string()),
        other => Err(MeiliError::invalid(
            "invalid_document_id",
            format!(
                "Document identifier `{other}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
            ),
        )),
    }
}

pub fn is_valid_id_str(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The primary-key value of a document; a dotted key descends into nested objects.
pub fn primary_key_value<'a>(doc: &'a Document, primary_key: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(primary_key) {
        return Some(v);
    }
    let (head, rest) = primary_key.split_once('.')?;
    primary_key_value(doc.get(head)?.as_object()?, rest)
}

pub fn missing_document_id(primary_key: &str, doc: &Document) -> MeiliError {
    MeiliError::invalid(
        "missing_document_id",
        format!(
            "Document doesn't have a `{primary_key}` attribute: `{}`.",
            Value::Object(doc.clone())
        ),
    )
}

/// Meilisearch's inference: among the first document's fields, the single one whose
/// lowercased name ends with `id`.
pub fn infer_primary_key(first: Option<&Document>) -> Result<String, MeiliError> {
    let no_candidate = || {
        MeiliError::invalid(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.",
        )
    };
    let first = first.ok_or_else(no_candidate)?;
    let mut candidates: Vec<&String> = first
        .keys()
        .filter(|k| k.to_lowercase().ends_with("id"))
        .collect();
    candidates.sort_unstable();
    match candidates.as_slice() {
        [] => Err(no_candidate()),
        [one] => Ok((*one).clone()),
        many => Err(MeiliError::invalid(
            "index_primary_key_multiple_candidates_found",
            format!(
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{}' and '{}'. Please specify the primary key manually using the `primaryKey` query parameter.",
                many.len(),
                many[0],
                many[1]
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn document_ids_follow_meilisearch_rules() {
        assert_eq!(document_id(&json!(12)).unwrap(), "12");
        assert_eq!(document_id(&json!("a-b_C9")).unwrap(), "a-b_C9");
        assert_eq!(
            document_id(&json!("a b")).unwrap_err().code,
            "invalid_document_id"
        );
        assert!(document_id(&json!(1.5)).is_err());
        assert!(document_id(&json!("x".repeat(512))).is_err());
        assert!(document_id(&json!("x".repeat(511))).is_ok());
    }

    #[test]
    fn inference_needs_exactly_one_candidate() {
        assert_eq!(
            infer_primary_key(Some(&doc(json!({"movieId": 1, "title": "x"})))).unwrap(),
            "movieId"
        );
        let e = infer_primary_key(Some(&doc(json!({"title": "x"})))).unwrap_err();
        assert_eq!(e.code, "index_primary_key_no_candidate_found");
        let e = infer_primary_key(Some(&doc(json!({"id": 1, "uid": 2})))).unwrap_err();
        assert_eq!(e.code, "index_primary_key_multiple_candidates_found");
    }
}
