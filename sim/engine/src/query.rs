//! Turns `q` into located query terms as milli does: positions follow the tokenizer, stop words
//! are dropped (except as the last token), the last word is a prefix unless the query ends with a
//! separator, `-word` is a negative word, `"several words"` is a phrase, and each term gets its
//! typo budget and synonyms.

use crate::model::Settings;
use crate::tokenize::{normalize, Token, Tokenizer};

/// Meilisearch keeps at most this many query terms.
const MAX_TERMS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub word: String,
    pub chars: Vec<char>,
    /// Position of the word in the query (for `wordPosition` and exactness).
    pub position: u32,
    pub prefix: bool,
    /// Levenshtein budget: 0, 1 or 2.
    pub max_typos: u8,
    /// Single-word synonyms (normalized).
    pub synonyms: Vec<String>,
    /// Multi-word synonyms, matched as phrases: words with their offset from the first.
    pub synonym_phrases: Vec<Vec<(String, u32)>>,
    /// Query position of the term's last word (differs from `position` for phrases).
    pub end_position: u32,
    /// For a phrase: its indexed words with their offset from the first word's position.
    pub phrase: Option<Vec<(String, u32)>>,
}

impl Term {
    /// The typo rule's cost ceiling for this term: the typo budget, or 1 when the budget is 0
    /// because a word may still be matched as split words (milli's `max_typo_cost`); a phrase
    /// allows neither.
    pub fn max_typo_cost(&self) -> u32 {
        if self.phrase.is_some() {
            0
        } else {
            u32::from(self.max_typos.max(1))
        }
    }

    /// Query positions the term covers (milli's `positions.len()`).
    pub fn position_count(&self) -> u32 {
        self.end_position - self.position + 1
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub terms: Vec<Term>,
    pub negative: Vec<String>,
}

impl Query {
    pub fn is_placeholder(&self) -> bool {
        self.terms.is_empty()
    }
}

pub fn parse(q: &str, settings: &Settings) -> Query {
    let tokens = Tokenizer::new(settings).tokenize(q, 0);
    let count = tokens.tokens.len();
    let mut query = Query::default();
    let mut phrase: Option<Vec<&Token>> = None;
    let mut previous_end = 0;
    for (i, token) in tokens.tokens.iter().enumerate() {
        // Each `"` in the separators before this word opens or closes a phrase.
        for _ in q[previous_end..token.start].matches('"') {
            match phrase.take() {
                Some(words) => push_phrase(&mut query, &words, settings),
                None => phrase = Some(Vec::new()),
            }
        }
        previous_end = token.end;
        if let Some(words) = phrase.as_mut() {
            words.push(token);
            continue;
        }
        let is_last = i + 1 == count && !tokens.ends_with_separator;
        if token.start > 0 && tokens.negated.contains(&(token.start - 1)) {
            query.negative.push(token.word.clone());
            continue;
        }
        if !is_last && is_stop_word(&token.word, settings) {
            continue;
        }
        if query.terms.len() == MAX_TERMS {
            break;
        }
        let synonyms = synonyms_of(&token.word, settings);
        query.terms.push(Term {
            chars: token.word.chars().collect(),
            word: token.word.clone(),
            position: token.position,
            prefix: is_last && settings.prefix_search != "disabled",
            max_typos: typo_budget(&token.word, settings),
            synonyms: synonyms.words,
            synonym_phrases: synonyms.phrases,
            end_position: token.position,
            phrase: None,
        });
    }
    // An unclosed phrase runs to the end of the query.
    if let Some(words) = phrase {
        push_phrase(&mut query, &words, settings);
    }
    query
}

fn push_phrase(query: &mut Query, words: &[&Token], settings: &Settings) {
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return;
    };
    let indexed: Vec<(String, u32)> = words
        .iter()
        .filter(|t| !is_stop_word(&t.word, settings))
        .map(|t| (t.word.clone(), t.position - first.position))
        .collect();
    if indexed.is_empty() || query.terms.len() == MAX_TERMS {
        return;
    }
    let text: Vec<&str> = words.iter().map(|t| t.word.as_str()).collect();
    query.terms.push(Term {
        word: text.join(" "),
        chars: Vec::new(),
        position: first.position,
        prefix: false,
        max_typos: 0,
        synonyms: Vec::new(),
        synonym_phrases: Vec::new(),
        end_position: last.position,
        phrase: Some(indexed),
    });
}

fn is_stop_word(word: &str, settings: &Settings) -> bool {
    settings.stop_words.iter().any(|s| normalize(s) == word)
}

fn typo_budget(word: &str, settings: &Settings) -> u8 {
    let tt = &settings.typo_tolerance;
    let len = word.chars().count();
    let disabled_word = tt.disable_on_words.iter().any(|w| normalize(w) == word);
    let number = tt.disable_on_numbers && word.chars().all(|c| c.is_ascii_digit());
    if !tt.enabled || disabled_word || number || len < usize::from(tt.one_typo) {
        0
    } else if len < usize::from(tt.two_typos) {
        1
    } else {
        2
    }
}

/// A word's synonyms, split into single words and multi-word phrases.
#[derive(Default)]
struct Synonyms {
    words: Vec<String>,
    phrases: Vec<Vec<(String, u32)>>,
}

fn synonyms_of(word: &str, settings: &Settings) -> Synonyms {
    let mut out = Synonyms::default();
    let tokenizer = Tokenizer::new(settings);
    for (key, values) in &settings.synonyms {
        if normalize(key.trim()) != word {
            continue;
        }
        for value in values {
            let tokens = tokenizer.tokenize(value, 0).tokens;
            match tokens.as_slice() {
                [] => {}
                [single] => {
                    if single.word != word && !out.words.contains(&single.word) {
                        out.words.push(single.word.clone());
                    }
                }
                several => {
                    let phrase: Vec<(String, u32)> = several
                        .iter()
                        .map(|t| (t.word.clone(), t.position))
                        .collect();
                    if !out.phrases.contains(&phrase) {
                        out.phrases.push(phrase);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_word_is_prefix_unless_query_ends_with_space() {
        let s = Settings::default();
        let q = parse("Harry Pot", &s);
        assert_eq!(q.terms.len(), 2);
        assert!(!q.terms[0].prefix && q.terms[1].prefix);
        assert!(!parse("harry pot ", &s).terms[1].prefix);
    }

    #[test]
    fn stop_words_are_dropped_but_keep_their_position() {
        let mut s = Settings::default();
        s.stop_words.insert("the".into());
        let q = parse("the matrix", &s);
        assert_eq!(q.terms.len(), 1);
        assert_eq!(
            (q.terms[0].word.as_str(), q.terms[0].position),
            ("matrix", 1)
        );
    }

    #[test]
    fn typo_budget_follows_word_length_and_settings() {
        let mut s = Settings::default();
        let budgets: Vec<u8> = parse("cat horse elephants", &s)
            .terms
            .iter()
            .map(|t| t.max_typos)
            .collect();
        assert_eq!(budgets, vec![0, 1, 2]);
        s.typo_tolerance.disable_on_words.insert("horse".into());
        assert_eq!(parse("horse", &s).terms[0].max_typos, 0);
        s.typo_tolerance.enabled = false;
        assert_eq!(parse("elephants", &s).terms[0].max_typos, 0);
    }

    #[test]
    fn quoted_words_form_one_phrase_term() {
        let s = Settings::default();
        let q = parse("\"big cat\" dog", &s);
        assert_eq!(q.terms.len(), 2);
        assert_eq!(
            q.terms[0].phrase,
            Some(vec![("big".into(), 0), ("cat".into(), 1)])
        );
        assert_eq!((q.terms[0].position, q.terms[0].end_position), (0, 1));
        assert!(q.terms[1].phrase.is_none() && q.terms[1].prefix);
        assert_eq!(parse("\"unclosed phrase", &s).terms.len(), 1);
    }

    #[test]
    fn negative_words_and_synonyms() {
        let mut s = Settings::default();
        s.synonyms
            .insert("car".into(), vec!["automobile".into(), "motor car".into()]);
        let q = parse("car -red", &s);
        assert_eq!(q.negative, vec!["red"]);
        assert_eq!(q.terms[0].synonyms, vec!["automobile"]);
        assert_eq!(
            q.terms[0].synonym_phrases,
            vec![vec![("motor".to_string(), 0), ("car".to_string(), 1)]]
        );
    }
}
