//! The simulator's in-memory model of one index: documents keyed by an internal id (as in
//! Meilisearch, ties in ranking and the browse order follow it) and the typed settings that
//! shape results. The server crate owns the JSON (de)serialization of settings routes and
//! fills this struct; the engine only reads it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::filterable::{self, FilterableRule};

/// A document is a JSON object.
pub type Document = Map<String, Value>;

/// One index's state.
#[derive(Debug, Clone, Default)]
pub struct IndexData {
    pub uid: String,
    pub primary_key: Option<String>,
    /// Documents by internal id. Iteration order is Meilisearch's internal-id order.
    /// Change it through `put_document`/`delete_document`/`clear` (they keep `search_cache`
    /// in step); after editing it directly, call `search_cache.clear()`.
    pub docs: BTreeMap<u32, Document>,
    /// External id (the primary-key value as a string) -> internal id.
    pub external_ids: HashMap<String, u32>,
    /// Every top-level field name in the order it first appeared (Meilisearch's fields-ids
    /// map). `searchableAttributes: ["*"]` ranks attributes in this order.
    pub fields: Vec<String>,
    /// Every dotted path ever seen in a document, parents included (`a`, `a.b`): the names
    /// of Meilisearch's fields-ids map, which keeps them after their documents are gone.
    /// Facet distributions list these. Kept by `put_document`; after inserting into `docs`
    /// directly, call `record_paths`.
    pub field_paths: BTreeSet<String>,
    pub settings: Settings,
    /// RFC 3339 timestamps.
    pub created_at: String,
    pub updated_at: String,
    /// Tokenized documents kept between searches.
    pub search_cache: crate::cache::SearchCache,
}

impl IndexData {
    pub fn new(uid: impl Into<String>, primary_key: Option<String>, now: &str) -> Self {
        Self {
            uid: uid.into(),
            primary_key,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            ..Self::default()
        }
    }

    /// Inserts or replaces a document by its external id. A replaced document keeps its
    /// internal id; a new one takes the lowest free internal id, as Meilisearch does.
    pub fn put_document(&mut self, external_id: String, doc: Document) {
        for key in doc.keys() {
            if !self.fields.iter().any(|f| f == key) {
                self.fields.push(key.clone());
            }
        }
        self.record_paths(&doc);
        let internal = match self.external_ids.get(&external_id) {
            Some(id) => *id,
            None => {
                let id = self.lowest_free_internal_id();
                self.external_ids.insert(external_id, id);
                id
            }
        };
        self.search_cache.invalidate(internal);
        self.docs.insert(internal, doc);
    }

    pub fn get_document(&self, external_id: &str) -> Option<&Document> {
        self.external_ids
            .get(external_id)
            .and_then(|id| self.docs.get(id))
    }

    /// Removes a document; returns whether it existed.
    pub fn delete_document(&mut self, external_id: &str) -> bool {
        match self.external_ids.remove(external_id) {
            Some(id) => {
                self.search_cache.invalidate(id);
                self.docs.remove(&id).is_some()
            }
            None => false,
        }
    }

    pub fn clear(&mut self) {
        self.search_cache.clear();
        self.docs.clear();
        self.external_ids.clear();
    }

    /// Adds the document's dotted paths to `field_paths`.
    pub fn record_paths(&mut self, doc: &Document) {
        let mut buffer = String::new();
        for (key, value) in doc {
            buffer.clear();
            buffer.push_str(key);
            record_paths_of(&mut self.field_paths, &mut buffer, value);
        }
    }

    fn lowest_free_internal_id(&self) -> u32 {
        let mut expected = 0u32;
        for id in self.docs.keys() {
            if *id != expected {
                return expected;
            }
            expected += 1;
        }
        expected
    }

    /// The attributes searched, in ranking order: the setting, or every field in
    /// first-appearance order when it is `["*"]`.
    pub fn searchable_fields(&self) -> Vec<String> {
        match &self.settings.searchable_attributes {
            Some(list) => list.clone(),
            None => self.fields.clone(),
        }
    }
}

/// `path` is a reusable buffer, so known paths cost no allocation.
fn record_paths_of(out: &mut BTreeSet<String>, path: &mut String, value: &Value) {
    if !out.contains(path.as_str()) {
        out.insert(path.clone());
    }
    let mut visit = |obj: &Document, path: &mut String| {
        for (key, v) in obj {
            let len = path.len();
            path.push('.');
            path.push_str(key);
            record_paths_of(out, path, v);
            path.truncate(len);
        }
    };
    match value {
        Value::Object(obj) => visit(obj, path),
        Value::Array(items) => {
            for item in items {
                if let Value::Object(obj) = item {
                    visit(obj, path);
                }
            }
        }
        _ => {}
    }
}

/// `faceting.sortFacetValuesBy` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacetOrder {
    Alpha,
    Count,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypoTolerance {
    pub enabled: bool,
    pub one_typo: u8,
    pub two_typos: u8,
    pub disable_on_words: BTreeSet<String>,
    pub disable_on_attributes: BTreeSet<String>,
    pub disable_on_numbers: bool,
}

impl Default for TypoTolerance {
    fn default() -> Self {
        Self {
            enabled: true,
            one_typo: 5,
            two_typos: 9,
            disable_on_words: BTreeSet::new(),
            disable_on_attributes: BTreeSet::new(),
            disable_on_numbers: false,
        }
    }
}

/// The settings that shape results. `None` in a wildcard setting means `["*"]`.
/// Settings the engine does not interpret (embedders, chat, localizedAttributes, ...) are kept
/// verbatim by the server crate, not here.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub displayed_attributes: Option<Vec<String>>,
    pub searchable_attributes: Option<Vec<String>>,
    /// The string rules of `filterableAttributes` (names taken literally, each covering the
    /// fields nested under it; see `filterable`). Read only when `filterable_rules` is `None`;
    /// the server crate fills both, this one with every rule's patterns for reference.
    pub filterable_attributes: Vec<String>,
    /// Every `filterableAttributes` rule in order, object rules included; `None` means
    /// `filterable_attributes` as string rules. Read it through `Settings::filterable_rules`.
    pub filterable_rules: Option<Vec<FilterableRule>>,
    pub sortable_attributes: BTreeSet<String>,
    /// `words`, `typo`, `proximity`, `attributeRank`, `sort`, `wordPosition`, `exactness`,
    /// `attribute:asc|desc` (older `attribute` is accepted as `attributeRank` +
    /// `wordPosition` by the server crate before it gets here).
    pub ranking_rules: Vec<String>,
    pub stop_words: BTreeSet<String>,
    pub non_separator_tokens: BTreeSet<String>,
    pub separator_tokens: BTreeSet<String>,
    pub dictionary: BTreeSet<String>,
    pub synonyms: BTreeMap<String, Vec<String>>,
    pub distinct_attribute: Option<String>,
    /// `byWord` or `byAttribute`.
    pub proximity_precision: String,
    pub typo_tolerance: TypoTolerance,
    pub max_values_per_facet: usize,
    /// Facet name or `*` -> order.
    pub sort_facet_values_by: BTreeMap<String, FacetOrder>,
    pub max_total_hits: usize,
    pub search_cutoff_ms: Option<u64>,
    pub facet_search: bool,
    /// `indexingTime` or `disabled`.
    pub prefix_search: String,
    /// `userProvided` embedders by name, with their dimensions (other sources cannot embed
    /// here and are left out).
    pub embedders: BTreeMap<String, usize>,
}

pub const DEFAULT_RANKING_RULES: [&str; 7] = [
    "words",
    "typo",
    "proximity",
    "attributeRank",
    "sort",
    "wordPosition",
    "exactness",
];

impl Default for Settings {
    fn default() -> Self {
        Self {
            displayed_attributes: None,
            searchable_attributes: None,
            filterable_attributes: Vec::new(),
            filterable_rules: None,
            sortable_attributes: BTreeSet::new(),
            ranking_rules: DEFAULT_RANKING_RULES
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
            stop_words: BTreeSet::new(),
            non_separator_tokens: BTreeSet::new(),
            separator_tokens: BTreeSet::new(),
            dictionary: BTreeSet::new(),
            synonyms: BTreeMap::new(),
            distinct_attribute: None,
            proximity_precision: "byWord".to_owned(),
            typo_tolerance: TypoTolerance::default(),
            max_values_per_facet: 100,
            sort_facet_values_by: BTreeMap::from([("*".to_owned(), FacetOrder::Alpha)]),
            max_total_hits: 1000,
            search_cutoff_ms: None,
            facet_search: true,
            prefix_search: "indexingTime".to_owned(),
            embedders: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// The `filterableAttributes` rules in order.
    pub fn filterable_rules(&self) -> Cow<'_, [FilterableRule]> {
        match &self.filterable_rules {
            Some(rules) => Cow::Borrowed(rules),
            None => Cow::Owned(
                self.filterable_attributes
                    .iter()
                    .map(|f| FilterableRule::Field(f.clone()))
                    .collect(),
            ),
        }
    }

    /// Whether `attribute` may be filtered and faceted: the first rule matching it enables
    /// filtering.
    pub fn is_filterable(&self, attribute: &str) -> bool {
        filterable::is_filterable(&self.filterable_rules(), attribute)
    }

    /// The patterns of the rules that enable filtering, sorted, as errors list them.
    pub fn filterable_patterns(&self) -> Vec<String> {
        filterable::patterns_where(&self.filterable_rules(), |f| f.is_filterable())
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    pub fn is_sortable(&self, attribute: &str) -> bool {
        self.sortable_attributes
            .iter()
            .any(|p| attribute_matches(p, attribute))
    }

    pub fn facet_order(&self, facet: &str) -> FacetOrder {
        self.sort_facet_values_by
            .get(facet)
            .or_else(|| self.sort_facet_values_by.get("*"))
            .copied()
            .unwrap_or(FacetOrder::Alpha)
    }
}

/// Meilisearch's attribute pattern matching: exact name, `*`, `prefix*`, `*suffix`,
/// `*infix*`, and a nested field matches its parent (`a` covers `a.b`).
pub fn attribute_matches(pattern: &str, attribute: &str) -> bool {
    if pattern == "*" || pattern == attribute {
        return true;
    }
    if let Some(rest) = attribute.strip_prefix(pattern) {
        if rest.starts_with('.') {
            return true;
        }
    }
    let starts = pattern.starts_with('*');
    let ends = pattern.ends_with('*') && pattern.len() > 1;
    match (starts, ends) {
        (true, true) => attribute.contains(&pattern[1..pattern.len() - 1]),
        (true, false) => attribute.ends_with(&pattern[1..]),
        (false, true) => attribute.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn replaced_document_keeps_internal_id_and_holes_are_reused() {
        let mut idx = IndexData::new("movies", Some("id".into()), "2026-01-01T00:00:00Z");
        idx.put_document("a".into(), doc(json!({"id": "a"})));
        idx.put_document("b".into(), doc(json!({"id": "b", "title": "x"})));
        idx.put_document("a".into(), doc(json!({"id": "a", "v": 2})));
        assert_eq!(idx.external_ids["a"], 0);
        assert!(idx.delete_document("a"));
        idx.put_document("c".into(), doc(json!({"id": "c"})));
        assert_eq!(idx.external_ids["c"], 0);
        assert_eq!(idx.fields, vec!["id", "title", "v"]);
    }

    #[test]
    fn patterns_match_like_meilisearch() {
        assert!(attribute_matches("genre", "genre"));
        assert!(attribute_matches("address", "address.city"));
        assert!(attribute_matches("date_*", "date_created"));
        assert!(attribute_matches("*_at", "created_at"));
        assert!(!attribute_matches("genre", "genres"));
    }
}
