//! A structural JSON scanner for node search answers: where the `hits` array is, each hit's
//! bytes and top-level entries, found only as far as the merge reads them.
//!
//! A node answer is JSON Meilisearch wrote, `{"hits":[...],"query":...}` with the hits first:
//! the members after the hits are read backwards from the end, so the hits a page does not
//! need are never looked at. What is used is checked (structure, string escapes, UTF-8 of the
//! hits and values taken, but not control characters inside strings); an answer laid out
//! otherwise is read whole with serde_json instead. Strings, the bulk of a hit's bytes, are
//! skipped with `memchr`.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

/// Nesting deeper than serde_json's own limit is refused (no recursion without bound).
const MAX_DEPTH: usize = 128;

/// Why bytes are not the JSON expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError(pub &'static str);

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

type Scan<T> = Result<T, ScanError>;

fn err<T>(what: &'static str) -> Scan<T> {
    Err(ScanError(what))
}

#[inline]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

#[inline]
fn expect(b: &[u8], i: usize, c: u8, what: &'static str) -> Scan<usize> {
    if b.get(i) == Some(&c) {
        Ok(i + 1)
    } else {
        err(what)
    }
}

/// `b[i]` is a string's opening quote: the index after its closing quote.
#[inline]
fn string_end(b: &[u8], i: usize) -> Scan<usize> {
    match plain_string_end(b, i) {
        Some(end) => Ok(end),
        None => long_string_end(b, i + 1),
    }
}

/// The index after the closing quote of the string opening at `b[i]` when it is short and
/// has no escape; `None` otherwise. Most strings are (keys, words): eight bytes at a time
/// beats `memchr`'s setup there.
#[inline]
fn plain_string_end(b: &[u8], i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes of `w` equal to `c` have their high bit set in the result; the lowest such
    // byte is exact (the borrow only reaches bytes above it).
    let equal = |w: u64, c: u8| {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let mut j = i + 1;
    for _ in 0..4 {
        let chunk: [u8; 8] = b.get(j..j + 8)?.try_into().ok()?;
        let w = u64::from_le_bytes(chunk);
        let quote = equal(w, b'"');
        let slash = equal(w, b'\\');
        if quote | slash != 0 {
            // The first of them decides: a quote ends the string, a backslash needs care.
            return (quote.trailing_zeros() < slash.trailing_zeros())
                .then(|| j + quote.trailing_zeros() as usize / 8 + 1);
        }
        j += 8;
    }
    None
}

/// [`string_end`] from `b[j]`, inside the string.
fn long_string_end(b: &[u8], mut j: usize) -> Scan<usize> {
    loop {
        let Some(k) = b
            .get(j..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        else {
            return err("an unterminated string");
        };
        let at = j + k;
        if b[at] == b'"' {
            return Ok(at + 1);
        }
        j = match b.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at + 2,
            Some(b'u')
                if b.get(at + 2..at + 6)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                at + 6
            }
            _ => return err("a bad string escape"),
        };
    }
}

/// The value starting at `b[i]` (no whitespace before it): the index after it.
pub(crate) fn skip_value(b: &[u8], i: usize) -> Scan<usize> {
    skip_value_at(b, i, 0)
}

fn skip_value_at(b: &[u8], i: usize, depth: usize) -> Scan<usize> {
    match b.get(i) {
        Some(b'"') => string_end(b, i),
        Some(b'{') => {
            if depth >= MAX_DEPTH {
                return err("JSON nested too deep");
            }
            let mut j = skip_ws(b, i + 1);
            if b.get(j) == Some(&b'}') {
                return Ok(j + 1);
            }
            loop {
                if b.get(j) != Some(&b'"') {
                    return err("an object key is not a string");
                }
                j = skip_ws(b, string_end(b, j)?);
                j = skip_ws(b, expect(b, j, b':', "no `:` after an object key")?);
                j = skip_ws(b, skip_value_at(b, j, depth + 1)?);
                match b.get(j) {
                    Some(b',') => j = skip_ws(b, j + 1),
                    Some(b'}') => return Ok(j + 1),
                    _ => return err("no `,` or `}` after an object value"),
                }
            }
        }
        Some(b'[') => {
            if depth >= MAX_DEPTH {
                return err("JSON nested too deep");
            }
            let mut j = skip_ws(b, i + 1);
            if b.get(j) == Some(&b']') {
                return Ok(j + 1);
            }
            loop {
                j = skip_ws(b, skip_value_at(b, j, depth + 1)?);
                match b.get(j) {
                    Some(b',') => j = skip_ws(b, j + 1),
                    Some(b']') => return Ok(j + 1),
                    _ => return err("no `,` or `]` after an array element"),
                }
            }
        }
        Some(b't') => literal(b, i, b"true"),
        Some(b'f') => literal(b, i, b"false"),
        Some(b'n') => literal(b, i, b"null"),
        Some(b'-' | b'0'..=b'9') => number_end(b, i),
        _ => err("not a JSON value"),
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` from `b[i]`: the index after it.
fn number_end(b: &[u8], i: usize) -> Scan<usize> {
    let digits = |mut j: usize| {
        let from = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        (j, j > from)
    };
    let mut j = i + usize::from(b.get(i) == Some(&b'-'));
    j = match b.get(j) {
        Some(b'0') => j + 1,
        Some(b'1'..=b'9') => digits(j).0,
        _ => return err("a malformed number"),
    };
    if b.get(j) == Some(&b'.') {
        let (k, any) = digits(j + 1);
        if !any {
            return err("a malformed number");
        }
        j = k;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let (k, any) = digits(j);
        if !any {
            return err("a malformed number");
        }
        j = k;
    }
    Ok(j)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Scan<usize> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        err("a malformed literal")
    }
}

/// An object entry's key (with its quotes) and value, as ranges of the text scanned; `plain`
/// when the key has no escape.
#[derive(Clone, Debug)]
struct RawEntry {
    key: Range<usize>,
    plain: bool,
    value: Range<usize>,
}

/// The entries of the object starting at `b[i]`, each given to `entry`: the index after the
/// object.
#[inline]
fn object_at(b: &[u8], i: usize, mut entry: impl FnMut(RawEntry) -> Scan<()>) -> Scan<usize> {
    if b.get(i) != Some(&b'{') {
        return err("not a JSON object");
    }
    let mut j = skip_ws(b, i + 1);
    if b.get(j) == Some(&b'}') {
        return Ok(j + 1);
    }
    loop {
        let (key_end, plain, v) = key_at(b, j)?;
        let value_end = skip_value_at(b, v, 1)?;
        entry(RawEntry {
            key: j..key_end,
            plain,
            value: v..value_end,
        })?;
        match after_entry(b, value_end)? {
            Next::Entry(at) => j = at,
            Next::Closed(at) => return Ok(at),
        }
    }
}

/// The object key whose opening quote is `b[j]`: the index after its closing quote, whether
/// it has no escape, and where its value starts (after the `:`).
#[inline]
fn key_at(b: &[u8], j: usize) -> Scan<(usize, bool, usize)> {
    if b.get(j) != Some(&b'"') {
        return err("an object key is not a string");
    }
    let (end, plain) = match plain_string_end(b, j) {
        Some(end) => (end, true),
        None => (long_string_end(b, j + 1)?, false),
    };
    let colon = expect(b, skip_ws(b, end), b':', "no `:` after an object key")?;
    Ok((end, plain, skip_ws(b, colon)))
}

/// What follows an object's entry.
enum Next {
    /// Another entry, starting here.
    Entry(usize),
    /// The object's end; the index after its `}`.
    Closed(usize),
}

/// Reads what follows the object entry that ends at `b[i]`.
#[inline]
fn after_entry(b: &[u8], i: usize) -> Scan<Next> {
    let i = skip_ws(b, i);
    match b.get(i) {
        Some(b',') => Ok(Next::Entry(skip_ws(b, i + 1))),
        Some(b'}') => Ok(Next::Closed(i + 1)),
        _ => err("no `,` or `}` after an object value"),
    }
}

/// Calls `f` with each top-level entry of `text` (exactly one JSON object, whitespace around
/// it allowed): its key unescaped and its value's text. The reference [`each_nested_entry`]
/// is tested against.
#[cfg(test)]
fn each_entry<'a>(
    text: &'a str,
    mut f: impl FnMut(Cow<'a, str>, &'a str) -> Result<(), String>,
) -> Result<(), String> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    let mut failed = None;
    let end = object_at(b, start, |e| {
        let key = text
            .get(e.key)
            .ok_or(ScanError("a key inside a character"))?;
        let value = text
            .get(e.value)
            .ok_or(ScanError("a value inside a character"))?;
        f(key_text(key, e.plain)?, value).map_err(|e| {
            failed = Some(e);
            ScanError("a value not as expected")
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if skip_ws(b, end.map_err(|e| e.to_string())?) != b.len() {
        return Err("bytes after a JSON object".into());
    }
    Ok(())
}

/// Calls `f` with each entry of each member of `text`, exactly one JSON object whose member
/// values are objects (`_rankingScoreDetails`): the member's key and `Some((key, value's
/// text))` for each of its entries, then `None` after its last. One pass over the bytes,
/// where [`each_entry`] inside [`each_entry`] would skip each member once, then read it.
pub fn each_nested_entry<'a>(
    text: &'a str,
    mut f: impl FnMut(&Cow<'a, str>, Option<(Cow<'a, str>, &'a str)>) -> Result<(), String>,
) -> Result<(), String> {
    let b = text.as_bytes();
    // The key at `b[j]`, unescaped, and where its value starts.
    let key = |j: usize| -> Result<(Cow<'a, str>, usize), String> {
        let (end, plain, v) = key_at(b, j)?;
        let quoted = text.get(j..end).ok_or("a key inside a character")?;
        Ok((key_text(quoted, plain)?, v))
    };
    let mut j = skip_ws(b, expect(b, skip_ws(b, 0), b'{', "not a JSON object")?);
    if b.get(j) == Some(&b'}') {
        j += 1;
    } else {
        loop {
            let (member, v) = key(j)?;
            let mut k = skip_ws(b, expect(b, v, b'{', "a member is not an object")?);
            if b.get(k) == Some(&b'}') {
                k += 1;
            } else {
                loop {
                    let (field, v) = key(k)?;
                    let end = skip_value_at(b, v, 2)?;
                    let value = text.get(v..end).ok_or("a value inside a character")?;
                    f(&member, Some((field, value)))?;
                    match after_entry(b, end)? {
                        Next::Entry(at) => k = at,
                        Next::Closed(at) => {
                            k = at;
                            break;
                        }
                    }
                }
            }
            f(&member, None)?;
            match after_entry(b, k)? {
                Next::Entry(at) => j = at,
                Next::Closed(at) => {
                    j = at;
                    break;
                }
            }
        }
    }
    if skip_ws(b, j) != b.len() {
        return Err("bytes after a JSON object".into());
    }
    Ok(())
}

impl From<ScanError> for String {
    fn from(e: ScanError) -> Self {
        e.0.to_owned()
    }
}

/// A top-level entry of an object: its key unescaped, its value's text, and where the entry
/// starts and ends in the object's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub value: &'a str,
    /// Offset of the key's opening quote in the object's text.
    pub key_start: usize,
    /// Offset just after the value in the object's text.
    pub value_end: usize,
}

/// The text of a JSON string with its quotes, unescaped.
/// A key's text with its quotes, unescaped unless `plain` (it has no escape).
#[inline]
fn key_text(quoted: &str, plain: bool) -> Scan<Cow<'_, str>> {
    match quoted.get(1..quoted.len().saturating_sub(1)) {
        Some(inner) if plain => Ok(Cow::Borrowed(inner)),
        _ => unquote(quoted),
    }
}

pub(crate) fn unquote(quoted: &str) -> Scan<Cow<'_, str>> {
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .ok_or(ScanError("not a JSON string"))?;
    if !inner.as_bytes().contains(&b'\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(quoted)
        .map(Cow::Owned)
        .map_err(|_| ScanError("a bad string escape"))
}

/// The entry of `text` at `e`'s ranges.
fn entry_at(text: &str, e: RawEntry) -> Scan<Entry<'_>> {
    let quoted = text
        .get(e.key.clone())
        .ok_or(ScanError("a key inside a character"))?;
    Ok(Entry {
        key: key_text(quoted, e.plain)?,
        value: text
            .get(e.value.clone())
            .ok_or(ScanError("a value inside a character"))?,
        key_start: e.key.start,
        value_end: e.value.end,
    })
}

/// The top-level entries of `text`, which must be exactly one JSON object (whitespace around
/// it allowed).
pub fn object_entries(text: &str) -> Scan<Vec<Entry<'_>>> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    let mut entries = Vec::with_capacity(16);
    let end = object_at(b, start, |e| {
        entries.push(entry_at(text, e)?);
        Ok(())
    })?;
    if skip_ws(b, end) != b.len() {
        return err("bytes after a JSON object");
    }
    Ok(entries)
}

/// One hit of a node answer: its text and its top-level entries, in order.
#[derive(Debug)]
pub struct ScannedHit<'a> {
    pub text: &'a str,
    pub entries: Vec<Entry<'a>>,
}

impl<'a> ScannedHit<'a> {
    /// `text`, one JSON object.
    #[cfg(test)]
    pub fn new(text: &'a str) -> Scan<Self> {
        Ok(Self {
            text,
            entries: object_entries(text)?,
        })
    }

    /// The value of the entry named `key` (the last one, as serde_json reads duplicates).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value)
    }
}

/// The hits of one node answer, scanned one at a time.
#[derive(Debug, Clone)]
pub struct Hits<'a> {
    bytes: &'a [u8],
    /// The entries of the hit being scanned, kept between hits to spare an allocation each.
    scratch: Vec<RawEntry>,
    /// Where the next hit (or the `,` before it) is looked for.
    pos: usize,
    /// The array's closing `]`.
    end: usize,
    first: bool,
}

impl<'a> Hits<'a> {
    /// The hits of the array whose elements lie in `bytes[range]` (between its brackets).
    fn new(bytes: &'a [u8], range: Range<usize>) -> Self {
        Self {
            bytes,
            // A hit has about a dozen top-level entries.
            scratch: Vec::with_capacity(16),
            pos: range.start,
            end: range.end,
            first: true,
        }
    }

    /// The next hit, `None` after the last.
    pub fn next_hit(&mut self) -> Scan<Option<ScannedHit<'a>>> {
        let b = self.bytes;
        let mut i = skip_ws(b, self.pos);
        if i >= self.end {
            return if i == self.end {
                Ok(None)
            } else {
                err("the hits array ends inside a hit")
            };
        }
        if !self.first {
            i = skip_ws(b, expect(b, i, b',', "no `,` between hits")?);
        }
        self.first = false;
        // Ranges first: the hit's text is checked as UTF-8 once its end is known (only the
        // hits the merge takes are ever checked).
        let scratch = &mut self.scratch;
        scratch.clear();
        let hit_end = object_at(b, i, |e| {
            scratch.push(e);
            Ok(())
        })?;
        if hit_end > self.end {
            return err("a hit runs past the hits array");
        }
        self.pos = hit_end;
        let text =
            std::str::from_utf8(&b[i..hit_end]).map_err(|_| ScanError("a hit is not UTF-8"))?;
        let mut entries = Vec::with_capacity(scratch.len());
        for e in scratch.drain(..) {
            let e = RawEntry {
                key: e.key.start - i..e.key.end - i,
                plain: e.plain,
                value: e.value.start - i..e.value.end - i,
            };
            entries.push(entry_at(text, e)?);
        }
        Ok(Some(ScannedHit { text, entries }))
    }
}

/// The members of a search answer the merge reads, as text, and where its hits are.
#[derive(Debug, Default)]
pub struct AnswerFields<'a> {
    /// Between the hits array's brackets.
    pub hits: Option<Range<usize>>,
    pub processing_time_ms: Option<&'a str>,
    pub estimated_total_hits: Option<&'a str>,
    pub total_hits: Option<&'a str>,
    pub facet_distribution: Option<&'a str>,
    pub facet_stats: Option<&'a str>,
    pub request_uid: Option<&'a str>,
    /// The vector a semantic search searched with, shown with `retrieveVectors`.
    pub query_vector: Option<&'a str>,
    pub semantic_hit_count: Option<&'a str>,
    pub performance_details: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl<'a> AnswerFields<'a> {
    fn set(&mut self, key: &str, value: &'a str) {
        let slot = match key {
            "processingTimeMs" => &mut self.processing_time_ms,
            "estimatedTotalHits" => &mut self.estimated_total_hits,
            "totalHits" => &mut self.total_hits,
            "facetDistribution" => &mut self.facet_distribution,
            "facetStats" => &mut self.facet_stats,
            "requestUid" => &mut self.request_uid,
            "queryVector" => &mut self.query_vector,
            "semanticHitCount" => &mut self.semantic_hit_count,
            "performanceDetails" => &mut self.performance_details,
            "code" => &mut self.code,
            _ => return,
        };
        *slot = Some(value);
    }

    /// The hits, scanned lazily.
    pub fn hit_cursor(&self, bytes: &'a [u8]) -> Option<Hits<'a>> {
        self.hits.clone().map(|r| Hits::new(bytes, r))
    }
}

/// Reads a node's search answer: the members after the hits from the end when the answer
/// starts with them, the whole answer with serde_json otherwise.
pub fn answer_fields(bytes: &[u8]) -> Result<AnswerFields<'_>, String> {
    match hits_first(bytes) {
        Ok(Some(fields)) => Ok(fields),
        // Laid out otherwise, or something the backward reading did not expect: the whole
        // answer, validated.
        Ok(None) | Err(_) => whole(bytes),
    }
}

/// Every member, in order, by serde_json (which checks the whole answer).
fn whole(bytes: &[u8]) -> Result<AnswerFields<'_>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let members: Vec<(Cow<'_, str>, &RawValue)> = {
        let raw: &RawValue = serde_json::from_str(text).map_err(|e| e.to_string())?;
        super::json::entries(raw)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k.0, v))
            .collect()
    };
    let mut fields = AnswerFields::default();
    for (key, value) in members {
        let v = value.get();
        if key == "hits" {
            if !v.starts_with('[') {
                return Err("`hits` is not an array".into());
            }
            let start = (v.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
            if start >= bytes.len() {
                return Err("`hits` outside the answer".into());
            }
            fields.hits = Some(start + 1..start + v.len() - 1);
        } else {
            fields.set(&key, v);
        }
    }
    Ok(fields)
}

/// The fast reading: `None` when the answer does not start with its hits.
fn hits_first(b: &[u8]) -> Scan<Option<AnswerFields<'_>>> {
    // `{ "hits" : [`
    let open = skip_ws(b, 0);
    if b.get(open) != Some(&b'{') {
        return Ok(None);
    }
    let key = skip_ws(b, open + 1);
    if b.get(key..key + 6) != Some(b"\"hits\"") {
        return Ok(None);
    }
    let colon = skip_ws(b, key + 6);
    let bracket = skip_ws(b, expect(b, colon, b':', "no `:` after `hits`")?);
    if b.get(bracket) != Some(&b'[') {
        return Ok(None);
    }
    let hits_start = bracket + 1;

    // Backwards from the closing `}`: members until the hits array.
    let mut end = back_ws(b, b.len());
    if end == 0 || b[end - 1] != b'}' {
        return err("no closing `}`");
    }
    end = back_ws(b, end - 1);
    let mut fields = AnswerFields::default();
    loop {
        if end == 0 {
            return err("no opening `{`");
        }
        // A `]` closing an array of objects: the hits (the only one at the top level of a
        // search answer; an array of numbers such as `queryVector` is read through).
        if b[end - 1] == b']' {
            let before = back_ws(b, end - 1);
            if before > hits_start && b[before - 1] == b'}' {
                if end - 1 < hits_start {
                    return err("the hits array ends before it starts");
                }
                fields.hits = Some(hits_start..end - 1);
                break;
            }
        }
        let value_start = value_start_back(b, end, 0)?;
        let value = value_start..end;
        let mut k = back_ws(b, value_start);
        if k == 0 || b[k - 1] != b':' {
            return err("no `:` before a member value");
        }
        k = back_ws(b, k - 1);
        if k == 0 || b[k - 1] != b'"' {
            return err("a member key is not a string");
        }
        let key_start = string_start_back(b, k - 1)?;
        let key =
            std::str::from_utf8(&b[key_start..k]).map_err(|_| ScanError("a key is not UTF-8"))?;
        let key = unquote(key)?;
        if key == "hits" {
            // An empty hits array, or one of non-objects: read through; it must be the first
            // member.
            if value_start + 1 != hits_start || b[end - 1] != b']' {
                return err("a second `hits`");
            }
            fields.hits = Some(hits_start..end - 1);
            break;
        }
        let text = std::str::from_utf8(&b[value]).map_err(|_| ScanError("a value is not UTF-8"))?;
        fields.set(&key, text);
        end = back_ws(b, key_start);
        match end.checked_sub(1).map(|i| b[i]) {
            Some(b',') => end = back_ws(b, end - 1),
            _ => return err("no `,` between members"),
        }
    }
    Ok(Some(fields))
}

/// `end` moved back over whitespace.
#[inline]
fn back_ws(b: &[u8], mut end: usize) -> usize {
    while end > 0 && is_ws(b[end - 1]) {
        end -= 1;
    }
    end
}

/// `b[close]` is a string's closing quote: the index of its opening quote. In JSON a quote
/// inside a string is escaped, so the opening one is the first quote before `close` not
/// preceded by an odd run of backslashes.
fn string_start_back(b: &[u8], close: usize) -> Scan<usize> {
    let mut j = close;
    loop {
        let Some(k) = memchr::memrchr(b'"', &b[..j]) else {
            return err("an unterminated string");
        };
        let mut slashes = 0;
        while k > slashes && b[k - 1 - slashes] == b'\\' {
            slashes += 1;
        }
        if slashes % 2 == 0 {
            return Ok(k);
        }
        j = k;
    }
}

/// The value whose last byte is `b[end - 1]`: the index of its first byte.
fn value_start_back(b: &[u8], end: usize, depth: usize) -> Scan<usize> {
    let last = end - 1;
    match b[last] {
        b'"' => string_start_back(b, last),
        close @ (b'}' | b']') => {
            if depth >= MAX_DEPTH {
                return err("JSON nested too deep");
            }
            let open = if close == b'}' { b'{' } else { b'[' };
            let mut j = back_ws(b, last);
            if j > 0 && b[j - 1] == open {
                return Ok(j - 1);
            }
            loop {
                if j == 0 {
                    return err("an unopened object or array");
                }
                j = back_ws(b, value_start_back(b, j, depth + 1)?);
                if close == b'}' {
                    if j == 0 || b[j - 1] != b':' {
                        return err("no `:` before an object value");
                    }
                    j = back_ws(b, j - 1);
                    if j == 0 || b[j - 1] != b'"' {
                        return err("an object key is not a string");
                    }
                    j = back_ws(b, string_start_back(b, j - 1)?);
                }
                match j.checked_sub(1).map(|i| b[i]) {
                    Some(b',') => j = back_ws(b, j - 1),
                    Some(c) if c == open => return Ok(j - 1),
                    _ => return err("no `,` between values"),
                }
            }
        }
        c if c.is_ascii_alphanumeric() => {
            let mut j = last;
            while j > 0
                && matches!(b[j - 1], b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'+' | b'-')
            {
                j -= 1;
            }
            // Checked forwards: a number or a literal exactly.
            if skip_value(b, j)? != end {
                return err("a malformed scalar");
            }
            Ok(j)
        }
        _ => err("not a JSON value"),
    }
}

/// `text` as a raw JSON value, checked by serde_json (small values: tail members).
pub fn raw(text: &str) -> Result<&RawValue, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            "[a-z\"\\\\/ \u{e9}\u{1F600}\n\t{}\\[\\],:]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z_\"\\\\]{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn texts(v: &Value) -> [String; 2] {
        [v.to_string(), serde_json::to_string_pretty(v).unwrap()]
    }

    proptest! {
        #[test]
        fn skipping_forward_and_backward_finds_the_value_serde_reads(v in arb_json()) {
            for t in texts(&v) {
                let padded = format!("[{t} ,1]");
                let b = padded.as_bytes();
                prop_assert_eq!(skip_value(b, 1), Ok(1 + t.len()));
                prop_assert_eq!(value_start_back(b, 1 + t.len(), 0), Ok(1));
            }
        }

        #[test]
        fn object_entries_are_serdes_entries(v in arb_json()) {
            let v = json!({"a": v.clone(), "b\\\"": [v], "c": 1});
            for t in texts(&v) {
                let ours = object_entries(&t).unwrap();
                let raw: &RawValue = serde_json::from_str(&t).unwrap();
                let theirs = super::super::json::entries(raw).unwrap();
                prop_assert_eq!(ours.len(), theirs.len());
                for (o, (k, val)) in ours.iter().zip(&theirs) {
                    prop_assert_eq!(&o.key, &k.0);
                    prop_assert_eq!(o.value, val.get());
                }
            }
        }

        #[test]
        fn answers_read_backwards_equal_answers_read_whole(
            hits in prop::collection::vec(arb_json(), 0..4),
            facets in arb_json(),
            vector in prop::collection::vec(-1.0f64..1.0, 0..3),
        ) {
            let hits: Vec<Value> = hits.into_iter().map(|h| json!({"h": h})).collect();
            let answer = json!({
                "hits": hits, "query": "q]\\\"", "queryVector": vector, "processingTimeMs": 3,
                "limit": 2, "offset": 0, "estimatedTotalHits": 17, "facetDistribution": {"f": facets},
                "requestUid": "u",
            });
            for t in texts(&answer) {
                let b = t.as_bytes();
                let fast = hits_first(b).unwrap().unwrap();
                let slow = whole(b).unwrap();
                prop_assert_eq!(&fast.hits, &slow.hits);
                prop_assert_eq!(fast.estimated_total_hits, Some("17"));
                prop_assert_eq!(fast.facet_distribution, slow.facet_distribution);
                prop_assert_eq!(fast.request_uid, slow.request_uid);
                let mut cursor = fast.hit_cursor(b).unwrap();
                let mut n = 0;
                while let Some(h) = cursor.next_hit().unwrap() {
                    prop_assert_eq!(serde_json::from_str::<Value>(h.text).unwrap(), hits[n].clone());
                    n += 1;
                }
                prop_assert_eq!(n, hits.len());
            }
        }

        #[test]
        fn any_cut_or_flip_of_an_answer_is_an_error_or_json_never_a_panic(
            cut in 0usize..400, flip in 0usize..400, byte in any::<u8>()
        ) {
            let answer = json!({
                "hits": [{"id": 1, "t": "a \"b\" \\", "_rankingScoreDetails": {"words": {"order": 0, "score": 1.0}}},
                         {"id": 2, "n": [1, {"x": null}]}],
                "query": "q", "processingTimeMs": 3, "estimatedTotalHits": 2, "requestUid": "u",
            }).to_string();
            let mut b = answer.into_bytes();
            let flip = flip % b.len();
            // Control characters inside strings are not looked for (Meilisearch escapes them).
            b[flip] = if byte < 0x20 { b' ' } else { byte };
            b.truncate(cut.min(b.len()));
            if let Ok(fields) = answer_fields(&b) {
                if let Some(mut cursor) = fields.hit_cursor(&b) {
                    while let Ok(Some(h)) = cursor.next_hit() {
                        // What a hit yields is a JSON object serde reads the same way.
                        let ours = object_entries(h.text).unwrap();
                        let v: Value = serde_json::from_str(h.text).unwrap();
                        prop_assert_eq!(ours.len(), v.as_object().unwrap().len());
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn nested_entries_in_one_pass_are_entries_of_entries(
            members in prop::collection::vec(
                ("[a-z:_\"\\\\]{0,8}", prop::collection::vec(("[a-z\"]{0,5}", arb_json()), 0..4)),
                0..5,
            ),
            cut in 0usize..300, damage in any::<bool>(),
        ) {
            let object: serde_json::Map<String, Value> = members
                .into_iter()
                .map(|(k, fields)| (k, Value::Object(fields.into_iter().collect())))
                .collect();
            for mut t in texts(&Value::Object(object)) {
                if damage {
                    let mut at = cut.min(t.len());
                    while !t.is_char_boundary(at) {
                        at -= 1;
                    }
                    t.truncate(at);
                }
                let mut two_passes = Vec::new();
                let expected = each_entry(&t, |member, inner| {
                    each_entry(inner, |k, v| {
                        two_passes.push((member.to_string(), Some((k.into_owned(), v))));
                        Ok(())
                    })?;
                    two_passes.push((member.into_owned(), None));
                    Ok(())
                });
                let mut one_pass = Vec::new();
                let got = each_nested_entry(&t, |member, field| {
                    one_pass.push((member.to_string(), field.map(|(k, v)| (k.into_owned(), v))));
                    Ok(())
                });
                prop_assert_eq!(got.is_ok(), expected.is_ok());
                if got.is_ok() {
                    prop_assert_eq!(one_pass, two_passes);
                }
            }
        }
    }

    #[test]
    fn answers_not_starting_with_their_hits_are_read_whole() {
        let t = r#"{"query":"x","hits":[{"id":1}],"estimatedTotalHits":4}"#;
        let f = answer_fields(t.as_bytes()).unwrap();
        assert_eq!(f.estimated_total_hits, Some("4"));
        let mut c = f.hit_cursor(t.as_bytes()).unwrap();
        assert_eq!(c.next_hit().unwrap().unwrap().text, r#"{"id":1}"#);
        assert!(c.next_hit().unwrap().is_none());
        let e = r#"{"message":"m","code":"invalid_search_filter","type":"t","link":"l"}"#;
        let f = answer_fields(e.as_bytes()).unwrap();
        assert!(f.hits.is_none());
        assert_eq!(f.code, Some("\"invalid_search_filter\""));
        assert!(answer_fields(b"not json").is_err());
        assert!(answer_fields(br#"{"hits":[{"id":1}"#).is_err());
    }

    #[test]
    fn a_hit_cut_short_inside_the_hits_is_an_error_when_reached() {
        // Backwards, the members after the hits look right; the hits do not.
        let t = br#"{"hits":[{"id":1},{"x":[{"y":1}],"processingTimeMs":1}"#;
        let f = answer_fields(t).unwrap();
        let mut c = f.hit_cursor(t).unwrap();
        assert!(c.next_hit().unwrap().is_some());
        assert!(c.next_hit().is_err());
    }
}
