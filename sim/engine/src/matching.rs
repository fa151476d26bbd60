//! Finds where the query terms occur in one document: every searchable leaf is tokenized, each
//! word is compared with each term (exact, synonym, prefix, typo), and the occurrences are
//! recorded with their field, position and typo count. Nothing here looks at other documents.

use std::collections::HashMap;

use serde_json::Value;

use crate::cache::{CachedDoc, CachedField};
use crate::model::{attribute_matches, Settings};
use crate::query::Query;
use crate::tokenize::normalize;
use crate::typo;

/// How one document word matches one query term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordMatch {
    pub term: usize,
    pub typos: u8,
    /// The document word is the query word itself (what `exactness` rewards).
    pub exact: bool,
    /// Characters of the document word covered by the match (a prefix match highlights only
    /// the typed prefix).
    pub highlight_chars: Option<usize>,
    /// One word of a phrase: highlighted, but the phrase only matches as a whole.
    pub phrase_part: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub term: usize,
    /// Index into [`DocMatches::fields`].
    pub field: usize,
    pub position: u32,
    pub typos: u8,
    pub exact: bool,
}

/// One searchable field path of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    pub weight: u16,
    pub word_count: u32,
}

#[derive(Debug, Clone, Default)]
pub struct DocMatches {
    pub occurrences: Vec<Occurrence>,
    pub fields: Vec<FieldInfo>,
    pub has_negative: bool,
}

impl DocMatches {
    pub fn matched_terms(&self, term_count: usize) -> Vec<bool> {
        let mut out = vec![false; term_count];
        for o in &self.occurrences {
            out[o.term] = true;
        }
        out
    }
}

/// Which fields are searched and with which weight.
pub struct SearchableFields<'a> {
    settings: &'a Settings,
    search_on: Option<&'a [String]>,
}

impl<'a> SearchableFields<'a> {
    pub fn new(settings: &'a Settings, search_on: Option<&'a [String]>) -> Self {
        Self {
            settings,
            search_on,
        }
    }

    /// The weight of a leaf path (its rank in `searchableAttributes`), or `None` when it is not
    /// searched.
    pub fn weight(&self, path: &str) -> Option<u16> {
        // Reserved fields are never searched.
        if ["_vectors", "_geo"]
            .iter()
            .any(|r| attribute_matches(r, path))
        {
            return None;
        }
        if let Some(list) = self.search_on {
            if !list.iter().any(|p| attribute_matches(p, path)) {
                return None;
            }
        }
        match &self.settings.searchable_attributes {
            None => Some(0),
            Some(list) if list.iter().any(|p| p == "*") => Some(0),
            Some(list) => list
                .iter()
                .position(|p| attribute_matches(p, path))
                .map(|i| u16::try_from(i).unwrap_or(u16::MAX)),
        }
    }

    /// Highest attribute weight, when `searchableAttributes` is an explicit list.
    pub fn max_weight(&self) -> Option<u32> {
        match &self.settings.searchable_attributes {
            Some(list) if !list.iter().any(|p| p == "*") => {
                Some(u32::try_from(list.len().saturating_sub(1)).unwrap_or(u32::MAX))
            }
            _ => None,
        }
    }
}

/// Text of a searchable leaf value, as Meilisearch tokenizes it.
pub fn leaf_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub struct Matcher<'a> {
    query: &'a Query,
    settings: &'a Settings,
    searchable: SearchableFields<'a>,
    cache: HashMap<String, Vec<WordMatch>>,
    by_id: Vec<Option<Vec<WordMatch>>>,
    /// Normalized stop words: never matched in documents (Meilisearch does not index them).
    stop_words: Vec<String>,
    /// Few distinct paths per index, so a linear scan beats hashing.
    field_memo: Vec<(String, (Option<u16>, bool))>,
}

impl<'a> Matcher<'a> {
    pub fn new(query: &'a Query, settings: &'a Settings, search_on: Option<&'a [String]>) -> Self {
        Self {
            query,
            settings,
            searchable: SearchableFields::new(settings, search_on),
            cache: HashMap::new(),
            by_id: Vec::new(),
            field_memo: Vec::new(),
            stop_words: settings.stop_words.iter().map(|w| normalize(w)).collect(),
        }
    }

    pub fn searchable(&self) -> &SearchableFields<'a> {
        &self.searchable
    }

    /// How `word` (normalized) matches the query terms; memoized per search.
    pub fn word_matches(&mut self, word: &str) -> &[WordMatch] {
        if !self.cache.contains_key(word) {
            let computed = compute_word_matches(self.query, self.settings, word);
            self.cache.insert(word.to_owned(), computed);
        }
        self.cache.get(word).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn is_stop_word(&self, word: &str) -> bool {
        self.stop_words.iter().any(|w| w == word)
    }

    /// Whether typos are disabled on this attribute (`disableOnAttributes`).
    pub fn exact_attribute(&self, path: &str) -> bool {
        self.settings
            .typo_tolerance
            .disable_on_attributes
            .iter()
            .any(|p| attribute_matches(p, path))
    }

    /// Where the query terms occur in one (tokenized) document.
    pub fn analyze(&mut self, doc: &CachedDoc, words: &[String]) -> DocMatches {
        let mut out = DocMatches::default();
        for cached in &doc.fields {
            let (weight, exact_only) = self.field_info(&cached.path);
            let Some(weight) = weight else { continue };
            let field = out.fields.len();
            out.fields.push(FieldInfo {
                weight,
                word_count: cached.word_count,
            });
            for &(word_id, position) in &cached.tokens {
                let Some(word) = words.get(word_id as usize) else {
                    continue;
                };
                if self.query.negative.contains(word) {
                    out.has_negative = true;
                }
                let slot = self.ensure_matches(word_id, word);
                let Some(matches) = self.by_id[slot].as_ref() else {
                    continue;
                };
                for m in matches {
                    if m.phrase_part || exact_only && !(m.typos == 0 && m.highlight_chars.is_none())
                    {
                        continue;
                    }
                    out.occurrences.push(Occurrence {
                        term: m.term,
                        field,
                        position,
                        typos: m.typos,
                        exact: m.exact,
                    });
                }
            }
            self.phrase_occurrences(cached, field, words, &mut out.occurrences);
        }
        out
    }

    /// A phrase (or multi-word synonym) occurs where its first word sits and every other word
    /// is at the same offset.
    fn phrase_occurrences(
        &self,
        cached: &CachedField,
        field: usize,
        words: &[String],
        out: &mut Vec<Occurrence>,
    ) {
        let word_at = |position: u32| {
            cached
                .tokens
                .binary_search_by_key(&position, |&(_, p)| p)
                .ok()
                .and_then(|i| words.get(cached.tokens[i].0 as usize))
        };
        for (term, t) in self.query.terms.iter().enumerate() {
            // The phrase itself is an exact match; a multi-word synonym is not.
            let phrases = t.phrase.iter().map(|p| (p, true));
            let synonyms = t.synonym_phrases.iter().map(|p| (p, false));
            for (phrase, exact) in phrases.chain(synonyms) {
                let Some((first, _)) = phrase.first() else {
                    continue;
                };
                for &(id, position) in &cached.tokens {
                    if words.get(id as usize) != Some(first) {
                        continue;
                    }
                    let whole = phrase
                        .iter()
                        .skip(1)
                        .all(|(w, offset)| word_at(position + offset) == Some(w));
                    if whole {
                        out.push(Occurrence {
                            term,
                            field,
                            position,
                            typos: 0,
                            exact,
                        });
                    }
                }
            }
        }
    }

    /// `(weight, typos disabled)` of a leaf path, memoized per search.
    fn field_info(&mut self, path: &str) -> (Option<u16>, bool) {
        if let Some((_, info)) = self.field_memo.iter().find(|(p, _)| p == path) {
            return *info;
        }
        let info = (self.searchable.weight(path), self.exact_attribute(path));
        self.field_memo.push((path.to_owned(), info));
        info
    }

    /// Memoizes the matches of vocabulary word `id`; returns its slot in `by_id`.
    fn ensure_matches(&mut self, id: u32, word: &str) -> usize {
        let i = id as usize;
        if self.by_id.len() <= i {
            self.by_id.resize(i + 1, None);
        }
        if self.by_id[i].is_none() {
            self.by_id[i] = Some(compute_word_matches(self.query, self.settings, word));
        }
        i
    }
}

fn compute_word_matches(query: &Query, settings: &Settings, word: &str) -> Vec<WordMatch> {
    let prefix_allowed = settings.prefix_search != "disabled";
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    for (i, term) in query.terms.iter().enumerate() {
        let in_synonym_phrase = term
            .synonym_phrases
            .iter()
            .flatten()
            .any(|(w, _)| w == word);
        if let Some(phrase) = &term.phrase {
            if phrase.iter().any(|(w, _)| w == word) {
                out.push(WordMatch {
                    term: i,
                    typos: 0,
                    exact: true,
                    highlight_chars: None,
                    phrase_part: true,
                });
            }
            continue;
        }
        let found = if term.word == word {
            Some((0, true, None))
        } else if term.synonyms.iter().any(|s| s == word) {
            Some((0, false, None))
        } else if term.prefix && prefix_allowed && word.starts_with(term.word.as_str()) {
            Some((0, false, Some(term.chars.len())))
        } else {
            typo::typos(
                &term.chars,
                &chars,
                term.max_typos,
                term.prefix && prefix_allowed,
            )
            .filter(|t| *t > 0)
            .map(|t| (t, false, None))
        };
        if found.is_none() && in_synonym_phrase {
            out.push(WordMatch {
                term: i,
                typos: 0,
                exact: false,
                highlight_chars: None,
                phrase_part: true,
            });
        }
        if let Some((typos, exact, highlight_chars)) = found {
            out.push(WordMatch {
                term: i,
                typos,
                exact,
                highlight_chars,
                phrase_part: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query;
    use serde_json::json;

    #[test]
    fn occurrences_carry_field_position_and_typos() {
        let settings = Settings::default();
        let q = query::parse("big catz", &settings);
        let doc = json!({"title": "A big cat", "tags": ["cats", "big"]});
        let doc = doc.as_object().cloned().unwrap();
        let cache = crate::cache::SearchCache::default();
        let m = cache.with_docs(&settings, &[(0, &doc)], |snap| {
            Matcher::new(&q, &settings, None).analyze(snap.docs[0], snap.words)
        });
        let got: Vec<_> = m
            .occurrences
            .iter()
            .map(|o| (o.term, o.field, o.position, o.typos))
            .collect();
        // "catz" (4 chars) allows no typo, but as the last word it is a prefix: "cat" does not
        // start with it, "cats" neither.
        assert_eq!(got, vec![(0, 0, 1, 0), (0, 1, 8, 0)]);
        assert_eq!(m.fields[1].word_count, 2);
    }

    #[test]
    fn searchable_attributes_give_weights_and_restrict_fields() {
        let settings = Settings {
            searchable_attributes: Some(vec!["title".into(), "author".into()]),
            ..Settings::default()
        };
        let s = SearchableFields::new(&settings, None);
        assert_eq!(
            (s.weight("title"), s.weight("author"), s.weight("body")),
            (Some(0), Some(1), None)
        );
        assert_eq!(s.max_weight(), Some(1));
        let on = vec!["author".to_string()];
        let s = SearchableFields::new(&settings, Some(&on));
        assert_eq!(s.weight("title"), None);
    }
}
