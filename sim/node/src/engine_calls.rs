//! The server's only door into the search engine (`meili-sim-engine`): every engine call the
//! routes make goes through here, so engine API changes touch one file.

use meili_sim_engine::{Document, Filter, IndexData, MeiliError, Settings};
use serde_json::Value;

/// A parsed filter checked against the index's filterable attributes; `None` for no filter.
pub fn compile_filter(
    value: &Value,
    settings: &Settings,
    code: &str,
) -> Result<Option<Filter>, MeiliError> {
    let Some(filter) = Filter::parse(value, code)? else {
        return Ok(None);
    };
    filter.check_filterable(settings, code)?;
    Ok(Some(filter))
}

pub fn search(
    index: &IndexData,
    query: &Value,
    extra_filter: Option<&Value>,
) -> Result<Value, MeiliError> {
    meili_sim_engine::search(index, query, extra_filter)
}

pub fn similar(
    index: &IndexData,
    body: &Value,
    extra_filter: Option<&Value>,
) -> Result<Value, MeiliError> {
    meili_sim_engine::similar(index, body, extra_filter)
}

/// A document addition's embedder check (`_vectors` present, right dimensions).
pub fn check_vectors(
    index_uid: &str,
    settings: &Settings,
    id: &str,
    doc: &Document,
) -> Result<(), MeiliError> {
    meili_sim_engine::vector::check_document(index_uid, settings, id, doc)
}

/// `_vectors` of a document retrieved with `retrieveVectors`.
pub fn retrieved_vectors(doc: &Document, settings: &Settings) -> Value {
    meili_sim_engine::vector::retrieved(doc, settings)
}

pub fn facet_search(
    index: &IndexData,
    body: &Value,
    extra_filter: Option<&Value>,
) -> Result<Value, MeiliError> {
    meili_sim_engine::facet_search(index, body, extra_filter)
}

pub fn multi_search<'a>(
    body: &Value,
    index: &dyn Fn(&str) -> Option<&'a IndexData>,
    extra_filter: &dyn Fn(&str) -> Option<Value>,
) -> Result<Value, MeiliError> {
    meili_sim_engine::multi_search(body, index, extra_filter)
}

/// A document as the documents routes return it: `displayedAttributes`, then `fields`.
pub fn project(doc: &Document, settings: &Settings, fields: Option<&[String]>) -> Document {
    meili_sim_engine::project(doc, settings, fields)
}
