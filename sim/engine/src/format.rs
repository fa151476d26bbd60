//! `_formatted` (highlight and crop) and `_matchesPosition` for one hit. Matches are the
//! document words that match a query term; a prefix match covers only the typed prefix.

use serde_json::{json, Map, Value};

use crate::crop::{self, WordHit};
use crate::matching::{leaf_text, Matcher};
use crate::model::attribute_matches;
use crate::tokenize::{Token, Tokenizer};

/// The formatting options of a search request.
pub struct FormatOptions<'a> {
    pub highlight: Vec<String>,
    /// `(attribute, crop length)`.
    pub crop: Vec<(String, usize)>,
    pub pre_tag: &'a str,
    pub post_tag: &'a str,
    pub crop_marker: &'a str,
}

impl FormatOptions<'_> {
    pub fn is_active(&self) -> bool {
        !self.highlight.is_empty() || !self.crop.is_empty()
    }

    fn highlights(&self, path: &str) -> bool {
        self.highlight
            .iter()
            .any(|a| a == "*" || attribute_matches(a, path))
    }

    fn crop_length(&self, path: &str) -> Option<usize> {
        self.crop
            .iter()
            .find(|(a, _)| a == "*" || attribute_matches(a, path))
            .map(|(_, l)| *l)
    }
}

/// Parses `attributesToCrop` entries (`attr` or `attr:length`).
pub fn crop_list(list: &[String], default_length: usize) -> Vec<(String, usize)> {
    list.iter()
        .map(|entry| match entry.rsplit_once(':') {
            Some((attr, len)) => match len.parse() {
                Ok(l) => (attr.to_owned(), l),
                Err(_) => (entry.clone(), default_length),
            },
            None => (entry.clone(), default_length),
        })
        .collect()
}

/// A matched part of a text: its byte range and the word it belongs to.
struct Span {
    start: usize,
    end: usize,
    hit: WordHit,
}

/// The matched parts of `text`, in order.
fn matched_spans(
    text: &str,
    tokens: &[Token],
    matcher: &mut Matcher<'_>,
    exact_only: bool,
) -> Vec<Span> {
    let mut out = Vec::new();
    for (word, t) in tokens.iter().enumerate() {
        if matcher.is_stop_word(&t.word) {
            continue;
        }
        let all = matcher.word_matches(&t.word);
        let matches: Vec<_> = all
            .iter()
            .filter(|m| !exact_only || (m.typos == 0 && m.highlight_chars.is_none()))
            .collect();
        if matches.is_empty() {
            continue;
        }
        // The longest coverage wins (a full-word match beats a prefix).
        let chars = if matches.iter().any(|m| m.highlight_chars.is_none()) {
            None
        } else {
            matches.iter().filter_map(|m| m.highlight_chars).max()
        };
        let end = match chars {
            None => t.end,
            Some(n) => text[t.start..t.end]
                .char_indices()
                .nth(n)
                .map_or(t.end, |(i, _)| t.start + i),
        };
        let terms = matches.iter().map(|m| m.term).collect();
        out.push(Span {
            start: t.start,
            end,
            hit: WordHit { word, terms },
        });
    }
    out
}

/// Formats one leaf string, returning the formatted text.
fn format_text(
    text: &str,
    tokens: &[Token],
    spans: &[Span],
    highlight: bool,
    crop: Option<usize>,
    opts: &FormatOptions<'_>,
) -> String {
    let (from, to, before, after) = match crop {
        Some(0) => (0, 0, false, false),
        Some(len) if len < tokens.len() => {
            let hits: Vec<WordHit> = spans.iter().map(|s| s.hit.clone()).collect();
            let (start, end) = crop::window(tokens.len(), &hits, len);
            (
                tokens[start].start,
                tokens[end - 1].end,
                start > 0,
                end < tokens.len(),
            )
        }
        _ => (0, text.len(), false, false),
    };
    let mut out = String::new();
    if before {
        out.push_str(opts.crop_marker);
    }
    let mut cursor = from;
    if highlight {
        for span in spans.iter().filter(|s| s.start >= from && s.end <= to) {
            out.push_str(&text[cursor..span.start]);
            out.push_str(opts.pre_tag);
            out.push_str(&text[span.start..span.end]);
            out.push_str(opts.post_tag);
            cursor = span.end;
        }
    }
    out.push_str(&text[cursor..to]);
    if after {
        out.push_str(opts.crop_marker);
    }
    out
}

/// A hit's `_formatted` and `_matchesPosition` objects.
pub struct FormattedHit {
    pub formatted: Map<String, Value>,
    pub matches_position: Map<String, Value>,
}

/// Formats every field of a projected hit and collects the match positions.
pub fn format_hit(
    hit: &Map<String, Value>,
    matcher: &mut Matcher<'_>,
    tokenizer: &Tokenizer<'_>,
    opts: &FormatOptions<'_>,
) -> FormattedHit {
    let mut walker = Walker {
        matcher,
        tokenizer,
        opts,
        positions: Map::new(),
    };
    let mut formatted = Map::new();
    for (key, value) in hit {
        let v = walker.value(key, value, &mut Vec::new());
        formatted.insert(key.clone(), v);
    }
    FormattedHit {
        formatted,
        matches_position: walker.positions,
    }
}

/// Walks a hit's values, formatting leaves and recording match positions.
struct Walker<'w, 'm> {
    matcher: &'w mut Matcher<'m>,
    tokenizer: &'w Tokenizer<'w>,
    opts: &'w FormatOptions<'w>,
    positions: Map<String, Value>,
}

impl Walker<'_, '_> {
    /// `indices` are the array positions leading to this value (Meilisearch reports them on
    /// matches found inside arrays).
    fn value(&mut self, path: &str, value: &Value, indices: &mut Vec<usize>) -> Value {
        match value {
            Value::Object(obj) => Value::Object(
                obj.iter()
                    .map(|(k, v)| (k.clone(), self.value(&format!("{path}.{k}"), v, indices)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        indices.push(i);
                        let formatted = self.value(path, v, indices);
                        indices.pop();
                        formatted
                    })
                    .collect(),
            ),
            Value::String(_) | Value::Number(_) => match leaf_text(value) {
                Some(text) => Value::String(self.leaf(path, &text, indices)),
                None => value.clone(),
            },
            other => other.clone(),
        }
    }

    fn leaf(&mut self, path: &str, text: &str, indices: &[usize]) -> String {
        let tokens = self.tokenizer.tokenize(text, 0).tokens;
        let spans = if self.matcher.searchable().weight(path).is_some() {
            let exact_only = self.matcher.exact_attribute(path);
            matched_spans(text, &tokens, self.matcher, exact_only)
        } else {
            Vec::new()
        };
        if !spans.is_empty() {
            let entry = self
                .positions
                .entry(path.to_owned())
                .or_insert_with(|| json!([]));
            if let Value::Array(list) = entry {
                list.extend(spans.iter().map(|s| {
                    let mut bounds = json!({"start": s.start, "length": s.end - s.start});
                    if !indices.is_empty() {
                        bounds["indices"] = json!(indices);
                    }
                    bounds
                }));
            }
        }
        format_text(
            text,
            &tokens,
            &spans,
            self.opts.highlights(path),
            self.opts.crop_length(path),
            self.opts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Settings;
    use crate::query;

    #[test]
    fn highlight_wraps_matches_and_prefix_covers_only_the_typed_part() {
        let settings = Settings::default();
        let q = query::parse("big bat", &settings);
        let mut matcher = Matcher::new(&q, &settings, None);
        let tokenizer = Tokenizer::new(&settings);
        let opts = FormatOptions {
            highlight: vec!["*".into()],
            crop: vec![],
            pre_tag: "<b>",
            post_tag: "</b>",
            crop_marker: "…",
        };
        let hit = json!({"title": "A Big Batman", "n": 5})
            .as_object()
            .cloned()
            .unwrap();
        let f = format_hit(&hit, &mut matcher, &tokenizer, &opts);
        assert_eq!(
            Value::Object(f.formatted),
            json!({"title": "A <b>Big</b> <b>Bat</b>man", "n": "5"})
        );
        assert_eq!(
            Value::Object(f.matches_position),
            json!({"title": [{"start": 2, "length": 3}, {"start": 6, "length": 3}]})
        );
    }

    #[test]
    fn crop_keeps_a_window_around_the_first_match_with_markers() {
        let settings = Settings::default();
        let q = query::parse("seven", &settings);
        let mut matcher = Matcher::new(&q, &settings, None);
        let tokenizer = Tokenizer::new(&settings);
        let opts = FormatOptions {
            highlight: vec![],
            crop: crop_list(&["t:3".into()], 10),
            pre_tag: "<em>",
            post_tag: "</em>",
            crop_marker: "…",
        };
        let hit = json!({"t": "one two three four five six seven eight nine ten"})
            .as_object()
            .cloned()
            .unwrap();
        let f = format_hit(&hit, &mut matcher, &tokenizer, &opts);
        assert_eq!(f.formatted["t"], json!("…six seven eight…"));
    }
}
