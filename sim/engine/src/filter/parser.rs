//! Recursive descent over the filter string: `OR` of `AND` of `NOT`-prefixed primaries
//! (parenthesized expressions, geo functions, conditions), with `filter-parser`'s messages.

use super::{Expr, Field, Op, Operand};
use crate::error::MeiliError;

pub(super) const OPERATIONS: &str = "Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon`";
const KEYWORDS: [&str; 14] = [
    "AND",
    "OR",
    "IN",
    "NOT",
    "TO",
    "EXISTS",
    "IS",
    "NULL",
    "EMPTY",
    "CONTAINS",
    "STARTS",
    "WITH",
    "_geoRadius",
    "_geoBoundingBox",
];
/// Meilisearch allows 2000 levels; the simulator's debug-build frames are larger than nom's,
/// so it stops at 400 (about 100 nested parentheses) to stay within a 2 MiB thread stack.
const MAX_DEPTH: usize = 400;
pub(super) fn parse_str(source: &str, code: &str) -> Result<Option<Expr>, MeiliError> {
    if source.trim().is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        chars: source.chars().collect(),
        pos: 0,
        source,
    };
    let result = parser.parse_or(0).and_then(|expr| {
        parser.skip_ws();
        if parser.pos < parser.chars.len() {
            let rest = parser.pos;
            let end = parser.trimmed_end();
            Err(parser.error(
                rest,
                end,
                format!(
                    "Found unexpected characters at the end of the filter: `{}`. You probably forgot an `OR` or an `AND` rule.",
                    parser.text(rest, end).escape_debug()
                ),
            ))
        } else {
            Ok(expr)
        }
    });
    result
        .map(Some)
        .map_err(|e| MeiliError::invalid(e.code.unwrap_or(code), e.message))
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    source: &'a str,
}

/// A parse failure: Meilisearch's message, and the error code when it is not the caller's.
struct ParseError {
    message: String,
    code: Option<&'static str>,
}

type PResult<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn text(&self, start: usize, end: usize) -> String {
        self.chars[start..end].iter().collect()
    }

    fn locator(&self, start: usize, end: usize) -> String {
        format!("{}:{} {}", start + 1, end + 1, self.source)
    }

    fn error(&self, start: usize, end: usize, message: String) -> ParseError {
        ParseError {
            message: format!("{message}\n{}", self.locator(start, end)),
            code: None,
        }
    }

    fn trimmed_end(&self) -> usize {
        let mut end = self.chars.len();
        while end > self.pos && self.chars[end - 1].is_whitespace() {
            end -= 1;
        }
        end
    }

    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Consumes `word` when it stands alone (not followed by a value character).
    fn keyword(&mut self, word: &str) -> bool {
        let save = self.pos;
        self.skip_ws();
        let len = word.chars().count();
        let matches = self.chars.len() >= self.pos + len
            && self.chars[self.pos..self.pos + len]
                .iter()
                .copied()
                .eq(word.chars())
            && !self
                .chars
                .get(self.pos + len)
                .is_some_and(|c| is_value_char(*c));
        if matches {
            self.pos += len;
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn symbol(&mut self, sym: &str) -> bool {
        let save = self.pos;
        self.skip_ws();
        let len = sym.chars().count();
        if self.chars.len() >= self.pos + len
            && self.chars[self.pos..self.pos + len]
                .iter()
                .copied()
                .eq(sym.chars())
        {
            self.pos += len;
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn parse_or(&mut self, depth: usize) -> PResult<Expr> {
        self.check_depth(depth)?;
        let mut items = vec![self.parse_and(depth + 1)?];
        while self.keyword("OR") {
            items.push(self.parse_and(depth + 1)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self, depth: usize) -> PResult<Expr> {
        self.check_depth(depth)?;
        let mut items = vec![self.parse_not(depth + 1)?];
        while self.keyword("AND") {
            items.push(self.parse_not(depth + 1)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn parse_not(&mut self, depth: usize) -> PResult<Expr> {
        self.check_depth(depth)?;
        let save = self.pos;
        if self.keyword("NOT") {
            // `NOT IN` / `NOT EXISTS` after a field are handled by the condition parser; here
            // NOT starts an expression.
            return Ok(match self.parse_not(depth + 1) {
                Ok(Expr::Not(inner)) => *inner,
                Ok(other) => Expr::Not(Box::new(other)),
                Err(e) => {
                    self.pos = save;
                    return Err(e);
                }
            });
        }
        self.parse_primary(depth + 1)
    }

    fn check_depth(&self, depth: usize) -> PResult<()> {
        if depth > MAX_DEPTH {
            Err(self.error(
                self.pos,
                self.chars.len(),
                "The filter exceeded the maximum depth limit. Try rewriting the filter so that it contains fewer nested conditions.".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn parse_primary(&mut self, depth: usize) -> PResult<Expr> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some('(') {
            self.pos += 1;
            let inner = self.parse_or(depth + 1)?;
            if !self.symbol(")") {
                let end = self.trimmed_end();
                return Err(self.error(
                    start,
                    end,
                    format!(
                        "Expression `{}` is missing the following closing delimiter: `)`.",
                        self.text(start, end).escape_debug()
                    ),
                ));
            }
            return Ok(inner);
        }
        if self.keyword("_geoRadius") {
            return self.parse_geo_radius(start);
        }
        if self.keyword("_geoBoundingBox") {
            return self.parse_geo_box(start);
        }
        self.parse_condition(start)
    }

    fn invalid_primary(&self, start: usize) -> ParseError {
        let end = self.trimmed_end().max(start);
        let text = self.text(start, end);
        let tail = if text.trim().is_empty() {
            "but instead got nothing.".to_owned()
        } else {
            format!("at `{}`.", text.escape_debug())
        };
        self.error(start, end, format!("{OPERATIONS} {tail}"))
    }

    fn parse_condition(&mut self, start: usize) -> PResult<Expr> {
        let field_start = self.pos;
        let (name, quoted) = match self.parse_value() {
            Ok(v) => v,
            Err(_) => return Err(self.invalid_primary(start)),
        };
        let field_end = self.pos_before_ws();
        if !quoted && ["_geo", "_geoDistance", "_geoPoint"].contains(&name.as_str()) {
            let end = self.trimmed_end();
            return Err(self.error(
                field_start,
                end,
                format!("`{name}` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates."),
            ));
        }
        let (loc_start, loc_end) = if quoted {
            (field_start + 1, field_end.saturating_sub(1))
        } else {
            (field_start, field_end)
        };
        let field = Field {
            name,
            locator: self.locator(loc_start, loc_end),
        };

        for (sym, make) in [
            ("<=", Op::LowerEq as fn(Operand) -> Op),
            (">=", Op::GreaterEq),
            ("!=", Op::NotEqual),
            ("<", Op::Lower),
            (">", Op::Greater),
            ("=", Op::Equal),
        ] {
            if self.symbol(sym) {
                let value = self.expect_value()?;
                return Ok(Expr::Condition {
                    field,
                    op: make(value.into()),
                });
            }
        }
        if self.keyword("IN") {
            let values = self.parse_in_body()?;
            return Ok(Expr::Condition {
                field,
                op: Op::In(values.into_iter().map(Operand::from).collect()),
            });
        }
        let save = self.pos;
        if self.keyword("NOT") {
            if self.keyword("IN") {
                let values = self
                    .parse_in_body()?
                    .into_iter()
                    .map(Operand::from)
                    .collect();
                return Ok(Expr::Not(Box::new(Expr::Condition {
                    field,
                    op: Op::In(values),
                })));
            }
            if self.keyword("EXISTS") {
                return Ok(Expr::Not(Box::new(Expr::Condition {
                    field,
                    op: Op::Exists,
                })));
            }
            if let Some(op) = self.parse_string_operator()? {
                return Ok(Expr::Not(Box::new(Expr::Condition { field, op })));
            }
            self.pos = save;
        }
        if let Some(op) = self.parse_string_operator()? {
            return Ok(Expr::Condition { field, op });
        }
        if self.keyword("EXISTS") {
            return Ok(Expr::Condition {
                field,
                op: Op::Exists,
            });
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            let op = if self.keyword("NULL") {
                Op::Null
            } else if self.keyword("EMPTY") {
                Op::Empty
            } else {
                return Err(self.invalid_primary(start));
            };
            let cond = Expr::Condition { field, op };
            return Ok(if negated {
                Expr::Not(Box::new(cond))
            } else {
                cond
            });
        }
        // `field from TO to`
        let save = self.pos;
        if let Ok((from, _)) = self.parse_value() {
            if self.keyword("TO") {
                let to = self.expect_value()?;
                return Ok(Expr::Condition {
                    field,
                    op: Op::Between(from.into(), to.into()),
                });
            }
        }
        self.pos = save;
        Err(self.invalid_primary(start))
    }

    /// `STARTS WITH value`, or `CONTAINS`, which Meilisearch gates behind an experimental
    /// feature the simulator does not enable.
    fn parse_string_operator(&mut self) -> PResult<Option<Op>> {
        let save = self.pos;
        if self.keyword("STARTS") {
            if self.keyword("WITH") {
                let value = self.expect_value()?;
                return Ok(Some(Op::StartsWith(value.into())));
            }
            self.pos = save;
            return Ok(None);
        }
        self.skip_ws();
        let keyword_start = self.pos;
        if self.keyword("CONTAINS") {
            let mut e = self.error(
                keyword_start,
                keyword_start + "CONTAINS".len(),
                "Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. See https://github.com/orgs/meilisearch/discussions/763".into(),
            );
            e.code = Some("feature_not_enabled");
            return Err(e);
        }
        self.pos = save;
        Ok(None)
    }

    fn pos_before_ws(&self) -> usize {
        let mut p = self.pos;
        while p > 0 && self.chars[p - 1].is_whitespace() {
            p -= 1;
        }
        p
    }

    fn expect_value(&mut self) -> PResult<String> {
        self.parse_value().map(|(v, _)| v)
    }

    fn parse_in_body(&mut self) -> PResult<Vec<String>> {
        if !self.symbol("[") {
            let end = self.trimmed_end();
            return Err(self.error(self.pos, end, "Expected `[` after `IN` keyword.".into()));
        }
        let mut values = Vec::new();
        self.skip_ws();
        if self.peek() != Some(']') {
            values.push(self.expect_value()?);
            while self.symbol(",") {
                self.skip_ws();
                if self.peek() == Some(']') {
                    break;
                }
                values.push(self.expect_value()?);
            }
        }
        if !self.symbol("]") {
            let end = self.trimmed_end();
            let message = if self.pos >= self.chars.len() {
                "Expected matching `]` after the list of field names given to `IN[`".to_owned()
            } else {
                format!(
                    "Expected only comma-separated field names inside `IN[..]` but instead found `{}`.",
                    self.text(self.pos, end).escape_debug()
                )
            };
            return Err(self.error(self.pos, end, message));
        }
        Ok(values)
    }

    /// A quoted or bare value. Returns the unescaped text and whether it was quoted; consumes
    /// trailing whitespace.
    fn parse_value(&mut self) -> PResult<(String, bool)> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                let mut out = String::new();
                loop {
                    match self.peek() {
                        None => {
                            let end = self.chars.len();
                            return Err(self.error(
                                start,
                                end,
                                format!(
                                    "Expression `{}` is missing the following closing delimiter: `{q}`.",
                                    self.text(start, end).escape_debug()
                                ),
                            ));
                        }
                        Some('\\') => {
                            let next = self.chars.get(self.pos + 1).copied();
                            match next {
                                Some('n') => out.push('\n'),
                                Some('t') => out.push('\t'),
                                Some('r') => out.push('\r'),
                                Some('0') => out.push('\0'),
                                Some(c) => out.push(c),
                                None => out.push('\\'),
                            }
                            self.pos += 2;
                        }
                        Some(c) if c == q => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
                self.skip_ws();
                Ok((out, true))
            }
            _ => {
                while self.peek().is_some_and(is_value_char) {
                    self.pos += 1;
                }
                let word = self.text(start, self.pos);
                if word.is_empty() || KEYWORDS.contains(&word.as_str()) {
                    let mut end = start;
                    while end < self.chars.len() && !is_syntax_char(self.chars[end]) {
                        end += 1;
                    }
                    let shown = self.text(start, end);
                    self.pos = start;
                    let message = if shown.trim().is_empty() {
                        "Was expecting a value but instead got nothing.".to_owned()
                    } else if KEYWORDS.contains(&shown.as_str()) {
                        format!("Was expecting a value but instead got `{0}`, which is a reserved keyword. To use `{0}` as a field name or a value, surround it by quotes.", shown.escape_debug())
                    } else {
                        format!(
                            "Was expecting a value but instead got `{}`.",
                            shown.escape_debug()
                        )
                    };
                    return Err(self.error(start, end, message));
                }
                self.skip_ws();
                Ok((word, false))
            }
        }
    }

    fn parse_numbers(&mut self, open: char, close: char) -> Option<Vec<f64>> {
        if !self.symbol(&open.to_string()) {
            return None;
        }
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
            {
                self.pos += 1;
            }
            out.push(self.text(start, self.pos).parse::<f64>().ok()?);
            if self.symbol(",") {
                continue;
            }
            if self.symbol(&close.to_string()) {
                return Some(out);
            }
            return None;
        }
    }

    fn parse_geo_radius(&mut self, start: usize) -> PResult<Expr> {
        let Some(args) = self.parse_numbers('(', ')') else {
            let end = self.trimmed_end();
            return Err(self.error(start, end, "The `_geoRadius` filter must be in the form: `_geoRadius(latitude, longitude, radius, optionalResolution)`.".into()));
        };
        if !(3..=4).contains(&args.len()) {
            let end = self.pos;
            return Err(self.error(
                start,
                end,
                format!(
                    "Was expecting 3 or 4 arguments for `_geoRadius`, but instead found {}.",
                    args.len()
                ),
            ));
        }
        self.skip_ws();
        Ok(Expr::GeoRadius {
            lat: args[0],
            lng: args[1],
            radius: args[2],
        })
    }

    fn parse_geo_box(&mut self, start: usize) -> PResult<Expr> {
        let bad = |p: &Self| {
            let end = p.trimmed_end();
            p.error(start, end, "The `_geoBoundingBox` filter expects two pairs of arguments: `_geoBoundingBox([latitude, longitude], [latitude, longitude])`.".into())
        };
        if !self.symbol("(") {
            return Err(bad(self));
        }
        let first = self.parse_numbers('[', ']');
        let comma = self.symbol(",");
        let second = self.parse_numbers('[', ']');
        let close = self.symbol(")");
        match (first, comma, second, close) {
            (Some(a), true, Some(b), true) if a.len() == 2 && b.len() == 2 => {
                self.skip_ws();
                Ok(Expr::GeoBox {
                    top_right: (a[0], a[1]),
                    bottom_left: (b[0], b[1]),
                })
            }
            _ => Err(bad(self)),
        }
    }
}

fn is_value_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn is_syntax_char(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '=' | '<' | '>' | '!')
}
