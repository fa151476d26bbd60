//! The `distinct` attribute: a document is dropped when it shares a value of the attribute with
//! a better-ranked kept document; documents without the attribute are always kept.

use std::collections::HashSet;

use crate::fields::{self, FacetValue};
use crate::model::Document;

/// Hashable identity of a facet value: numbers by value, strings by normalized form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FacetKey {
    Number(u64),
    String(String),
}

impl From<FacetValue> for FacetKey {
    fn from(v: FacetValue) -> Self {
        match v {
            // -0.0 and 0.0 are one value.
            FacetValue::Number(0.0) => FacetKey::Number(0),
            FacetValue::Number(n) => FacetKey::Number(n.to_bits()),
            FacetValue::String(norm, _) => FacetKey::String(norm),
        }
    }
}

/// Feed documents best first; `keep` says whether each survives.
pub struct Distinct<'a> {
    attr: &'a str,
    seen: HashSet<FacetKey>,
}

impl<'a> Distinct<'a> {
    pub fn new(attr: &'a str) -> Self {
        Self {
            attr,
            seen: HashSet::new(),
        }
    }

    pub fn keep(&mut self, doc: &Document) -> bool {
        let keys: Vec<FacetKey> = fields::facet_values(doc, self.attr)
            .into_iter()
            .map(FacetKey::from)
            .collect();
        if keys.iter().any(|k| self.seen.contains(k)) {
            return false;
        }
        self.seen.extend(keys);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_values_are_dropped_and_missing_attributes_kept() {
        let docs: Vec<Document> = [
            json!({"c": ["red", "blue"]}),
            json!({"c": "Blue"}),
            json!({"c": 0}),
            json!({"c": -0.0}),
            json!({}),
            json!({}),
        ]
        .iter()
        .filter_map(|v| v.as_object().cloned())
        .collect();
        let mut d = Distinct::new("c");
        let kept: Vec<bool> = docs.iter().map(|doc| d.keep(doc)).collect();
        assert_eq!(kept, vec![true, false, true, false, true, true]);
    }
}
