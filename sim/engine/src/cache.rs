//! Per-index cache of tokenized documents, so a search does not re-tokenize 10 000 documents.
//! `IndexData`'s document methods invalidate entries; a change of tokenizer settings drops the
//! whole cache.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::fields;
use crate::matching::leaf_text;
use crate::model::{Document, Settings};
use crate::tokenize::{normalize, Tokenizer, HARD_GAP};

/// One tokenized leaf path of a document: `(word id, position)` pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedField {
    pub path: String,
    pub word_count: u32,
    pub tokens: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CachedDoc {
    pub fields: Vec<CachedField>,
}

/// The settings that change how a document is tokenized.
#[derive(Debug, Clone, PartialEq, Default)]
struct TokenizerKey {
    separators: BTreeSet<String>,
    non_separators: BTreeSet<String>,
    dictionary: BTreeSet<String>,
    /// Normalized; stop words take a position but are not indexed.
    stop_words: BTreeSet<String>,
}

impl TokenizerKey {
    fn of(settings: &Settings) -> Self {
        Self {
            separators: settings.separator_tokens.clone(),
            non_separators: settings.non_separator_tokens.clone(),
            dictionary: settings.dictionary.clone(),
            stop_words: settings.stop_words.iter().map(|w| normalize(w)).collect(),
        }
    }
}

#[derive(Default)]
struct State {
    key: TokenizerKey,
    vocab: HashMap<String, u32>,
    words: Vec<String>,
    /// Indexed by internal id (dense in practice).
    docs: Vec<Option<CachedDoc>>,
    /// Every field path of every document (the fields-ids map), sorted; `None` when stale.
    paths: Option<Vec<String>>,
}

/// Interior-mutable so searches (which only borrow the index) can fill it. Cloning an index
/// starts with an empty cache.
#[derive(Default)]
pub struct SearchCache {
    state: Mutex<State>,
}

impl Clone for SearchCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for SearchCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SearchCache")
    }
}

/// What a search sees: the tokenized documents (in the order asked) and the vocabulary.
pub struct Snapshot<'a> {
    pub docs: Vec<&'a CachedDoc>,
    pub words: &'a [String],
}

impl SearchCache {
    /// Forgets one document (it was replaced or deleted).
    pub fn invalidate(&self, id: u32) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = state.docs.get_mut(id as usize) {
            *slot = None;
        }
        state.paths = None;
    }

    /// Forgets every document.
    pub fn clear(&self) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::default();
    }

    /// Every field path (nested ones included) of the index's documents, sorted.
    pub fn field_paths<'d>(&self, docs: impl Iterator<Item = &'d Document>) -> Vec<String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .paths
            .get_or_insert_with(|| {
                let mut paths = Vec::new();
                for doc in docs {
                    fields::paths(doc, &mut paths);
                }
                paths.sort();
                paths
            })
            .clone()
    }

    /// Runs `f` over the tokenized form of `docs`, tokenizing only new or changed documents.
    pub fn with_docs<R>(
        &self,
        settings: &Settings,
        docs: &[(u32, &Document)],
        f: impl FnOnce(Snapshot<'_>) -> R,
    ) -> R {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = TokenizerKey::of(settings);
        if state.key != key {
            *state = State {
                key,
                ..State::default()
            };
        }
        let tokenizer = Tokenizer::new(settings);
        for (id, doc) in docs {
            let slot = *id as usize;
            if state.docs.len() <= slot {
                state.docs.resize(slot + 1, None);
            }
            if state.docs[slot].is_none() {
                let cached = tokenize_doc(&tokenizer, doc, &mut state);
                state.docs[slot] = Some(cached);
            }
        }
        let state = &*state;
        let snapshot = Snapshot {
            docs: docs
                .iter()
                .filter_map(|(id, _)| state.docs[*id as usize].as_ref())
                .collect(),
            words: &state.words,
        };
        f(snapshot)
    }
}

fn tokenize_doc(tokenizer: &Tokenizer<'_>, doc: &Document, state: &mut State) -> CachedDoc {
    let mut out: Vec<CachedField> = Vec::new();
    let mut next_position: Vec<u32> = Vec::new();
    for (path, value) in fields::leaves(doc) {
        if path == "_vectors"
            || path.starts_with("_vectors.")
            || path == "_geo"
            || path.starts_with("_geo.")
        {
            continue;
        }
        let Some(text) = leaf_text(value) else {
            continue;
        };
        let index = match out.iter().position(|f| f.path == path) {
            Some(i) => i,
            None => {
                out.push(CachedField {
                    path: path.clone(),
                    word_count: 0,
                    tokens: Vec::new(),
                });
                next_position.push(0);
                out.len() - 1
            }
        };
        let tokens = tokenizer.tokenize(&text, next_position[index]).tokens;
        let Some(last) = tokens.last() else { continue };
        next_position[index] = last.position + HARD_GAP;
        let field = &mut out[index];
        for token in tokens {
            if state.key.stop_words.contains(&token.word) {
                continue;
            }
            field.word_count += 1;
            let id = match state.vocab.get(&token.word) {
                Some(id) => *id,
                None => {
                    let id = u32::try_from(state.words.len()).unwrap_or(u32::MAX);
                    state.words.push(token.word.clone());
                    state.vocab.insert(token.word, id);
                    id
                }
            };
            field.tokens.push((id, token.position));
        }
    }
    CachedDoc { fields: out }
}
