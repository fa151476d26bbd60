//! What tells one document from another where one answer holds the hits of several searches
//! of an index (hybrid's keyword and semantic halves, federated queries on one index): its
//! primary key value, as Meilisearch tells them apart by internal id.

use serde_json::{Map, Value};

use super::plan::widen_retrieve;

/// How hits of one index are identified, and what was retrieved only for that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub primary_key: Option<String>,
    /// Field paths added to `attributesToRetrieve` for the identity; removed from hits.
    pub strip: Vec<String>,
    /// The subset of `strip` the client would not see in `_formatted` either.
    pub strip_formatted: Vec<String>,
}

impl Identity {
    /// Makes `body` retrieve the primary key (when the client's `attributesToRetrieve` leaves
    /// it out) and remembers to strip it again. A node that does not display the key (a
    /// `displayedAttributes` without it) returns hits without it: [`Identity::key`] then falls
    /// back to the hit's fields.
    pub fn retrieve(body: &mut Map<String, Value>, primary_key: Option<&str>) -> Self {
        let Some(pk) = primary_key else {
            return Self::default();
        };
        let (strip, strip_formatted) = widen_retrieve(body, &[pk.to_owned()]).unwrap_or_default();
        Self {
            primary_key: Some(pk.to_owned()),
            strip,
            strip_formatted,
        }
    }

    /// The hit's identity within its index: its primary key value, or, when the hit does not
    /// carry it, its fields without the `_` extras Miroir and Meilisearch add.
    pub fn key(&self, hit: &Value) -> String {
        if let Some(value) = self.primary_key.as_deref().and_then(|pk| hit.get(pk)) {
            // Meilisearch's document ids are strings or integers: `1` and `"1"` are one id.
            return match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
        let fields: Map<String, Value> = hit
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !k.starts_with('_'))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        format!("\u{0}{}", Value::Object(fields))
    }

    /// Takes out of `hit` what was retrieved only for the identity.
    pub fn strip(&self, hit: &mut Value) {
        let Some(o) = hit.as_object_mut() else {
            return;
        };
        for f in &self.strip {
            o.shift_remove(f);
        }
        if let Some(Value::Object(formatted)) = o.get_mut("_formatted") {
            for f in &self.strip_formatted {
                formatted.shift_remove(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_primary_key_is_retrieved_for_the_identity_and_stripped_again() {
        let mut body = json!({"attributesToRetrieve": ["title"]})
            .as_object()
            .cloned()
            .unwrap();
        let id = Identity::retrieve(&mut body, Some("sku"));
        assert_eq!(body["attributesToRetrieve"], json!(["title", "sku"]));
        let mut hit = json!({"title": "t", "sku": 7, "_formatted": {"title": "t", "sku": "7"}});
        assert_eq!(id.key(&hit), id.key(&json!({"sku": "7", "title": "other"})));
        id.strip(&mut hit);
        assert_eq!(hit, json!({"title": "t", "_formatted": {"title": "t"}}));
    }

    #[test]
    fn without_the_key_the_fields_tell_documents_apart() {
        let id = Identity::default();
        let a = json!({"t": 1, "_rankingScore": 0.5});
        assert_eq!(id.key(&a), id.key(&json!({"t": 1, "_rankingScore": 0.9})));
        assert_ne!(id.key(&a), id.key(&json!({"t": 2})));
    }
}
