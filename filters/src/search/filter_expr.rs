//! Reading a filter expression without running it: the attributes it names (for warnings),
//! and the primary-key values it pins. When every document a filter can match has one of a
//! few known ids, only the shards of those ids need to be asked (the others would answer no
//! hit, no facet value and no total).
//!
//! Read strictly, as Meilisearch reads filters (keywords upper case, `AND` binding tighter than
//! `OR`); anything this reader does not fully understand pins nothing, so the search fans out
//! as usual. How Meilisearch compares a filter value with an id decides which ids a value can
//! match (checked against Meilisearch 1.50):
//! - strings compare without case (`id = abc` matches `ABC` and `abc`), so a value with a
//!   letter (or any character outside ASCII) could match ids in any number of shards: it pins
//!   nothing;
//! - numbers compare by value (`id = 05`, `id = 5.0` and `id = 5` all match the integer id
//!   5), so a numeric value also names the canonical integer, when it is exactly one.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::routing::{shard_for_key, ShardId};

/// The ids the filter's matches must have one of, canonical (see
/// [`crate::routing::canonical_key`]); `None` when it does not pin the primary key `pk`.
pub fn pinned_keys(filter: &Value, pk: &str) -> Option<BTreeSet<String>> {
    match filter {
        Value::String(expr) => {
            let tokens = tokenize(expr)?;
            let mut parser = Parser {
                tokens: &tokens,
                at: 0,
                pk,
            };
            let pins = parser.or()?;
            // Trailing input is a syntax error the nodes report; nothing is pinned then.
            (parser.at == tokens.len()).then_some(pins).flatten()
        }
        // An array is an AND of its items; an inner array an OR of its strings.
        Value::Array(items) => smallest(items.iter().map(|item| {
            match item {
                Value::String(_) => pinned_keys(item, pk),
                Value::Array(alternatives) if !alternatives.is_empty() => alternatives
                    .iter()
                    .map(|a| a.is_string().then(|| pinned_keys(a, pk)).flatten())
                    .try_fold(BTreeSet::new(), |mut all, pins| {
                        all.extend(pins?);
                        Some(all)
                    }),
                _ => None,
            }
        })),
        _ => None,
    }
}

/// The attributes a filter's conditions name, in order and without repeats; `None` when the
/// filter cannot be read (the nodes report why).
pub fn attributes(filter: &Value) -> Option<Vec<String>> {
    let mut names = Vec::new();
    collect_attributes(filter, &mut names)?;
    Some(names)
}

fn collect_attributes(filter: &Value, names: &mut Vec<String>) -> Option<()> {
    match filter {
        Value::String(expr) => {
            let tokens = tokenize(expr)?;
            let mut at_condition = true;
            let mut depth = 0usize;
            for t in &tokens {
                match t {
                    Token::Open if at_condition => {}
                    Token::Word(w) if at_condition && w == "NOT" => {}
                    Token::Word(w) | Token::Quoted(w) if at_condition && depth == 0 => {
                        // `_geoRadius(...)` and the like name no attribute of the index.
                        if !w.starts_with("_geo") && !names.contains(w) {
                            names.push(w.clone());
                        }
                        at_condition = false;
                    }
                    Token::OpenList | Token::Open => depth += 1,
                    Token::CloseList | Token::Close if depth > 0 => depth -= 1,
                    Token::Word(w) if depth == 0 && (w == "AND" || w == "OR") => {
                        at_condition = true
                    }
                    _ => {}
                }
            }
            Some(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| collect_attributes(item, names)),
        _ => None,
    }
}

/// The shards of an index with `shards` shards a read must ask: those of the `pinned` ids
/// (at least one, which judges the request), else all of them.
pub fn shards_to_ask(pinned: Option<&BTreeSet<String>>, shards: u32) -> Vec<ShardId> {
    let Some(keys) = pinned else {
        return (0..shards).map(ShardId).collect();
    };
    let mut asked: Vec<ShardId> = keys.iter().map(|k| shard_for_key(k, shards)).collect();
    asked.sort_unstable();
    asked.dedup();
    if asked.is_empty() {
        asked.push(ShardId(0));
    }
    asked
}

/// Of conjuncts, the pin with the fewest ids (every match satisfies all of them).
fn smallest(pins: impl Iterator<Item = Option<BTreeSet<String>>>) -> Option<BTreeSet<String>> {
    pins.flatten().min_by_key(BTreeSet::len)
}

/// The ids a literal can match, or `None` when they cannot be listed.
fn candidates(literal: &str) -> Option<Vec<String>> {
    let plain = |c: char| c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | '+');
    if literal.is_empty() || !literal.chars().all(plain) {
        return None;
    }
    let mut keys = vec![literal.to_owned()];
    if let Ok(n) = literal.parse::<f64>() {
        // Integers are exact in an f64 up to 2^53; beyond, one value stands for several ids.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if n.abs() >= EXACT {
            return None;
        }
        if n.fract() == 0.0 {
            keys.push(format!("{}", n as i64));
        }
    }
    Some(keys)
}

#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    Eq,
    /// Another comparison operator.
    Op,
    Quoted(String),
    Word(String),
}

fn tokenize(expr: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' | ',' | '=' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenList,
                    ']' => Token::CloseList,
                    ',' => Token::Comma,
                    _ => Token::Eq,
                });
            }
            '!' | '<' | '>' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                tokens.push(Token::Op);
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\\' => s.push(chars.next()?),
                        q if q == c => break,
                        other => s.push(other),
                    }
                }
                tokens.push(Token::Quoted(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "()[],=!<>\"'".contains(c) {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(s));
            }
        }
    }
    Some(tokens)
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    pk: &'t str,
}

/// What a sub-expression pins: `Some(None)` parsed and pins nothing, `None` not understood.
type Pins = Option<Option<BTreeSet<String>>>;

impl Parser<'_> {
    fn keyword(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word)
    }

    fn or(&mut self) -> Pins {
        let mut branches = vec![self.and()?];
        while self.keyword("OR") {
            self.at += 1;
            branches.push(self.and()?);
        }
        // Every branch must pin: their union.
        Some(
            branches
                .into_iter()
                .try_fold(BTreeSet::new(), |mut all, b| {
                    all.extend(b?);
                    Some(all)
                }),
        )
    }

    fn and(&mut self) -> Pins {
        let mut conjuncts = vec![self.not()?];
        while self.keyword("AND") {
            self.at += 1;
            conjuncts.push(self.not()?);
        }
        Some(smallest(conjuncts.into_iter()))
    }

    fn not(&mut self) -> Pins {
        if self.keyword("NOT") {
            self.at += 1;
            self.not()?;
            return Some(None);
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            if self.tokens.get(self.at) != Some(&Token::Close) {
                return None;
            }
            self.at += 1;
            return Some(inner);
        }
        self.condition()
    }

    /// One condition: the tokens up to the next `AND`, `OR` or `)` outside brackets.
    fn condition(&mut self) -> Pins {
        let start = self.at;
        let mut depth = 0usize;
        while let Some(t) = self.tokens.get(self.at) {
            match t {
                Token::Open | Token::OpenList => depth += 1,
                Token::Close | Token::CloseList if depth == 0 => break,
                Token::Close | Token::CloseList => depth -= 1,
                Token::Word(w) if depth == 0 && (w == "AND" || w == "OR") => break,
                _ => {}
            }
            self.at += 1;
        }
        let condition = &self.tokens[start..self.at];
        if condition.is_empty() {
            return None;
        }
        Some(self.pin(condition))
    }

    fn pin(&self, condition: &[Token]) -> Option<BTreeSet<String>> {
        let value = |t: &Token| match t {
            Token::Word(w) | Token::Quoted(w) => candidates(w),
            _ => None,
        };
        match condition {
            [Token::Word(field), Token::Eq, v] if field == self.pk => {
                Some(value(v)?.into_iter().collect())
            }
            [Token::Word(field), Token::Word(kw), Token::OpenList, list @ .., Token::CloseList]
                if field == self.pk && kw == "IN" =>
            {
                let mut keys = BTreeSet::new();
                for (i, t) in list.iter().enumerate() {
                    match (i % 2, t) {
                        (0, t) => keys.extend(value(t)?),
                        (_, Token::Comma) => {}
                        _ => return None,
                    }
                }
                // `[a, b,]` is accepted by Meilisearch too; `[a b]` is not a list.
                Some(keys)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(filter: Value) -> Option<Vec<String>> {
        pinned_keys(&filter, "id").map(|s| s.into_iter().collect())
    }

    fn set(list: &[&str]) -> Option<Vec<String>> {
        let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        v.sort();
        Some(v)
    }

    #[test]
    fn equality_and_lists_pin_their_ids() {
        assert_eq!(keys(json!("id = 5")), set(&["5"]));
        assert_eq!(keys(json!("id=05")), set(&["05", "5"]));
        assert_eq!(keys(json!("id = 5.0")), set(&["5", "5.0"]));
        assert_eq!(keys(json!("id IN [1, 2,3]")), set(&["1", "2", "3"]));
        assert_eq!(keys(json!("id = \"12\" AND genre = horror")), set(&["12"]));
        assert_eq!(
            keys(json!("genre = horror AND (id = 1 OR id = 2)")),
            set(&["1", "2"])
        );
        assert_eq!(keys(json!("id = 1 OR id IN [2, 3]")), set(&["1", "2", "3"]));
        assert_eq!(keys(json!(["id = 7", "genre = a"])), set(&["7"]));
        assert_eq!(
            keys(json!([["id = 7", "id = 8"], "x > 1"])),
            set(&["7", "8"])
        );
        assert_eq!(keys(json!("id = 4_2")), set(&["4_2"]));
        assert_eq!(keys(json!("id IN []")), set(&[]));
    }

    #[test]
    fn attributes_are_the_conditions_fields() {
        assert_eq!(
            attributes(&json!(
                "(id = 1 OR NOT genre IN [a, b]) AND year 1990 TO 2000"
            )),
            Some(vec!["id".into(), "genre".into(), "year".into()])
        );
        assert_eq!(
            attributes(&json!([
                ["a = 1", "b EXISTS"],
                "_geoRadius(1, 2, 3)",
                "a > 2"
            ])),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(attributes(&json!("a = \"unterminated")), None);
    }

    #[test]
    fn anything_else_pins_nothing() {
        for filter in [
            json!("id = abc"),
            json!("id = 5 OR genre = a"),
            json!("NOT id = 5"),
            json!("id NOT IN [5]"),
            json!("id != 5"),
            json!("id > 5"),
            json!("id 1 TO 5"),
            json!("other = 5"),
            json!("id = 5 and x = 1"),
            json!("id = 5 )"),
            json!("(id = 5"),
            json!("id IN [5 6]"),
            json!("id = 99999999999999999999"),
            json!("id = \"5é\""),
            json!([["id = 6", "x = 1"]]),
            json!(5),
            json!("_geoRadius(1, 2, 3)"),
        ] {
            assert_eq!(keys(filter.clone()), None, "{filter}");
        }
        // Still narrowed by the one conjunct that pins.
        assert_eq!(keys(json!("id = 5 AND id != 6")), set(&["5"]));
    }
}
