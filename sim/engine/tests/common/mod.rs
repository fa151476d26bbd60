//! Corpora and helpers shared by the integration tests.

#![allow(dead_code)]

use meili_sim_engine::{IndexData, Settings};
use serde_json::{json, Value};

/// Builds an index from documents keyed by `id`.
pub fn index_with(uid: &str, settings: Settings, docs: Value) -> IndexData {
    let mut index = IndexData::new(uid, Some("id".into()), "2026-01-01T00:00:00Z");
    index.settings = settings;
    for doc in docs.as_array().cloned().unwrap_or_default() {
        let id = match &doc["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        index.put_document(id, doc.as_object().cloned().unwrap());
    }
    index
}

/// Meilisearch's own test corpus (`tests/common/mod.rs` DOCUMENTS).
pub fn movies() -> Value {
    json!([
        {"title": "Shazam!", "id": "287947", "color": ["green", "blue"]},
        {"title": "Captain Marvel", "id": "299537", "color": ["yellow", "blue"]},
        {"title": "Escape Room", "id": "522681", "color": ["yellow", "red"]},
        {"title": "How to Train Your Dragon: The Hidden World", "id": "166428", "color": ["green", "red"]},
        {"title": "Gläss", "id": "450465", "color": ["blue", "red"]}
    ])
}

pub fn movies_index() -> IndexData {
    let settings = Settings {
        filterable_attributes: vec!["title".into(), "color".into(), "id".into()],
        sortable_attributes: ["title".to_string(), "id".to_string()]
            .into_iter()
            .collect(),
        ..Settings::default()
    };
    index_with("movies", settings, movies())
}

pub fn ids(response: &Value) -> Vec<String> {
    response["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| match &h["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
