//! A small tokenizer in the spirit of charabia: lowercase, strip common Latin diacritics, split on
//! non-alphanumerics, and number word positions the way milli does (+1 across a soft separator,
//! +8 across a hard one such as `. `, `, `, `;`, `!`, `?`). The index's `separatorTokens`,
//! `nonSeparatorTokens` and `dictionary` adjust the split.

use crate::model::Settings;

/// Distance added between words across a hard separator, and between two values of a field.
pub const HARD_GAP: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Normalized (lowercased, diacritics stripped) word.
    pub word: String,
    pub position: u32,
    /// Byte range of the word in the original text.
    pub start: usize,
    pub end: usize,
}

/// A tokenized text: its words and whether it ended on a separator (query prefix rule).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub tokens: Vec<Token>,
    pub ends_with_separator: bool,
    /// Byte ranges of separator runs that contained a `-` right after whitespace (or at the
    /// start): the next word is a negative query word.
    pub negated: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Sep {
    None,
    Soft,
    Hard,
}

pub struct Tokenizer<'a> {
    settings: &'a Settings,
}

impl<'a> Tokenizer<'a> {
    pub fn new(settings: &'a Settings) -> Self {
        Self { settings }
    }

    /// Tokenizes `text`, numbering words from `first_position`.
    pub fn tokenize(&self, text: &str, first_position: u32) -> Tokens {
        let mut out = Tokens::default();
        let mut position: Option<u32> = None;
        let mut sep = Sep::None;
        let mut sep_text = String::new();
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if let Some(len) = self.dictionary_match(rest, i == 0 || sep != Sep::None) {
                push_word(
                    &mut out,
                    &mut position,
                    &mut sep,
                    &mut sep_text,
                    text,
                    i,
                    i + len,
                    first_position,
                );
                i += len;
                continue;
            }
            if let Some(len) = self.custom_separator(rest) {
                sep_text.push_str(&rest[..len]);
                if sep == Sep::None {
                    sep = Sep::Soft;
                }
                i += len;
                continue;
            }
            let word_len = self.word_len(rest);
            if word_len > 0 {
                push_word(
                    &mut out,
                    &mut position,
                    &mut sep,
                    &mut sep_text,
                    text,
                    i,
                    i + word_len,
                    first_position,
                );
                i += word_len;
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            sep_text.push(c);
            let hard = matches!(c, '!' | ';' | '?' | '¡' | '§' | '¶' | '¿' | '\0')
                || (c.is_whitespace() && sep_text.len() >= 2 && {
                    let prev = sep_text[..sep_text.len() - c.len_utf8()].chars().last();
                    matches!(prev, Some('.' | ','))
                });
            sep = if hard || sep == Sep::Hard {
                Sep::Hard
            } else {
                Sep::Soft
            };
            if c == '-' {
                let before = &sep_text[..sep_text.len() - 1];
                if before.is_empty() && out.tokens.is_empty() && i == 0
                    || before.chars().last().is_some_and(char::is_whitespace)
                {
                    out.negated.push(i);
                }
            }
            i += c.len_utf8();
        }
        out.ends_with_separator = sep != Sep::None;
        out
    }

    /// Length of the word starting at `rest` (alphanumerics and non-separator tokens).
    fn word_len(&self, rest: &str) -> usize {
        let mut len = 0;
        let mut chars = rest.char_indices().peekable();
        while let Some((idx, c)) = chars.peek().copied() {
            if let Some(l) = self.non_separator(&rest[idx..]) {
                len = idx + l;
                while chars.peek().is_some_and(|(j, _)| *j < len) {
                    chars.next();
                }
                continue;
            }
            if idx > 0 && self.custom_separator(&rest[idx..]).is_some() {
                break;
            }
            if c.is_alphanumeric() {
                len = idx + c.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        len
    }

    fn dictionary_match(&self, rest: &str, at_boundary: bool) -> Option<usize> {
        if !at_boundary || self.settings.dictionary.is_empty() {
            return None;
        }
        self.settings
            .dictionary
            .iter()
            .filter(|w| !w.is_empty())
            .filter_map(|w| {
                let head = rest.get(..w.len())?;
                let boundary = !rest[w.len()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric);
                (head.eq_ignore_ascii_case(w) && boundary).then_some(w.len())
            })
            .max()
    }

    fn custom_separator(&self, rest: &str) -> Option<usize> {
        self.settings
            .separator_tokens
            .iter()
            .filter(|s| !s.is_empty() && rest.starts_with(s.as_str()))
            .map(String::len)
            .max()
    }

    fn non_separator(&self, rest: &str) -> Option<usize> {
        self.settings
            .non_separator_tokens
            .iter()
            .filter(|s| !s.is_empty() && rest.starts_with(s.as_str()))
            .map(String::len)
            .max()
    }
}

#[allow(clippy::too_many_arguments)]
fn push_word(
    out: &mut Tokens,
    position: &mut Option<u32>,
    sep: &mut Sep,
    sep_text: &mut String,
    text: &str,
    start: usize,
    end: usize,
    first_position: u32,
) {
    let next = match *position {
        None => first_position,
        Some(p) if *sep == Sep::Hard => p + HARD_GAP,
        Some(p) => p + 1,
    };
    *position = Some(next);
    *sep = Sep::None;
    sep_text.clear();
    out.tokens.push(Token {
        word: normalize(&text[start..end]),
        position: next,
        start,
        end,
    });
}

/// Lowercases and strips common Latin diacritics (`Café` -> `cafe`).
pub fn normalize(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        for l in c.to_lowercase() {
            match fold(l) {
                Some(s) => out.push_str(s),
                None => out.push(l),
            }
        }
    }
    out
}

fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(settings: &Settings, text: &str) -> Vec<(String, u32)> {
        Tokenizer::new(settings)
            .tokenize(text, 0)
            .tokens
            .into_iter()
            .map(|t| (t.word, t.position))
            .collect()
    }

    #[test]
    fn soft_separators_add_one_and_hard_separators_add_eight() {
        let s = Settings::default();
        assert_eq!(
            words(&s, "The Café-bar. Next, one; two"),
            vec![
                ("the".into(), 0),
                ("cafe".into(), 1),
                ("bar".into(), 2),
                ("next".into(), 10),
                ("one".into(), 18),
                ("two".into(), 26)
            ]
        );
    }

    #[test]
    fn byte_offsets_point_into_the_original_text() {
        let s = Settings::default();
        let t = Tokenizer::new(&s).tokenize("Éclair au café", 0);
        assert_eq!(t.tokens[0].word, "eclair");
        assert_eq!((t.tokens[0].start, t.tokens[0].end), (0, 7));
        assert_eq!(
            &"Éclair au café"[t.tokens[2].start..t.tokens[2].end],
            "café"
        );
    }

    #[test]
    fn custom_separators_non_separators_and_dictionary_change_the_split() {
        let mut s = Settings::default();
        s.separator_tokens.insert("x".into());
        s.non_separator_tokens.insert("@".into());
        s.dictionary.insert("C++".into());
        assert_eq!(
            words(&s, "axb me@home C++ rocks")
                .into_iter()
                .map(|(w, _)| w)
                .collect::<Vec<_>>(),
            vec!["a", "b", "me@home", "c++", "rocks"]
        );
    }

    #[test]
    fn query_ending_in_space_is_flagged_and_dash_after_space_negates() {
        let s = Settings::default();
        let t = Tokenizer::new(&s).tokenize("big -cat ", 0);
        assert!(t.ends_with_separator);
        assert_eq!(t.negated, vec![4]);
        assert!(
            !Tokenizer::new(&s)
                .tokenize("big cat", 0)
                .ends_with_separator
        );
    }
}
