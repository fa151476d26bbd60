//! What Miroir writes when it copies from one Meilisearch node to another (a shard move, an
//! import): documents as `documents/fetch` returned them, keys as `GET /keys` listed them.

use serde_json::{Map, Value};

/// A fetched document ready to be written back: `_vectors: {}` (the index has no embedder)
/// is dropped; anything else is written as read.
pub fn writable_document(doc: &mut Value) {
    if let Value::Object(o) = doc {
        if o.get("_vectors")
            .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
        {
            o.remove("_vectors");
        }
    }
}

/// A document id as nodes compare and Miroir records it: a string as is, a number as its
/// decimal text (`/documents/42` and `{"id": 42}` name the same document).
pub fn document_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `POST /keys` body that recreates a listed key with the same uid (hence, under the same
/// master key, the same key string).
pub fn key_creation(key: &Value) -> Value {
    let fields = [
        "uid",
        "name",
        "description",
        "actions",
        "indexes",
        "expiresAt",
    ];
    Value::Object(
        fields
            .iter()
            .map(|f| ((*f).to_owned(), key[*f].clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_vectors_are_dropped_and_real_ones_kept() {
        let mut empty = json!({"id": 1, "_vectors": {}});
        writable_document(&mut empty);
        assert_eq!(empty, json!({"id": 1}));
        let mut real = json!({"id": 2, "_vectors": {"e": [1.0]}});
        writable_document(&mut real);
        assert_eq!(real, json!({"id": 2, "_vectors": {"e": [1.0]}}));
    }

    #[test]
    fn a_key_is_recreated_with_its_uid_and_rights_only() {
        let listed = json!({"uid": "u", "key": "secret", "name": "n", "description": null,
            "actions": ["search"], "indexes": ["*"], "expiresAt": null, "createdAt": "t"});
        assert_eq!(
            key_creation(&listed),
            json!({"uid": "u", "name": "n", "description": null, "actions": ["search"],
                "indexes": ["*"], "expiresAt": null})
        );
    }
}
