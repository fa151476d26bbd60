//! JSON and NDJSON bodies: one validating serde_json pass that borrows every top-level value as
//! raw bytes, extracts the document id and locates each document in the body. No tree is built.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Deserializer, Value};

use super::errors;
use super::format::PayloadFormat;
use super::pk::{self, IdSlot, KeySeed, PrimaryKey};
use super::scan::{offset, Doc, Scan};
use crate::error::MiroirError;
use crate::hidden::RESERVED_PREFIX;

/// An array of documents or a single document, as Meilisearch reads `application/json`.
pub(crate) fn scan_json(
    body: &[u8],
    primary_key: Result<Option<PrimaryKey>, MiroirError>,
    shards: u32,
) -> Result<Scan, MiroirError> {
    let mut sink = Sink::new(body, shards, primary_key);
    let mut de = Deserializer::from_slice(body);
    let parsed = if body.iter().find(|b| !is_ws(**b)) == Some(&b'[') {
        // Meilisearch streams the array and never looks past its closing bracket.
        de.deserialize_seq(ArrayVisitor { sink: &mut sink })
    } else {
        single_object(&mut de, &mut sink)
    };
    if let Some(e) = sink.broken.take() {
        return Err(e);
    }
    parsed.map_err(|e| errors::malformed_json(PayloadFormat::Json, &e))?;
    sink.finish()
}

/// Objects one after the other, separated by optional whitespace.
pub(crate) fn scan_ndjson(
    body: &[u8],
    primary_key: Result<Option<PrimaryKey>, MiroirError>,
    shards: u32,
) -> Result<Scan, MiroirError> {
    let mut sink = Sink::new(body, shards, primary_key);
    let mut at = 0;
    while let Some(skip) = body[at..].iter().position(|b| !is_ws(*b)) {
        at += skip;
        // A deserializer per document: serde_json's stream reader takes no seed.
        let mut de = Deserializer::from_slice(&body[at..]);
        let facts = match sink.seed().deserialize(&mut de) {
            Ok(facts) => facts,
            Err(e) => return Err(ndjson_error(body, &e)),
        };
        at = match sink.accept(facts, at) {
            Some(next) => next,
            None => return Err(sink.broken.take().unwrap_or_else(unlocatable)),
        };
    }
    sink.finish()
}

/// Meilisearch's exact NDJSON error, positions included: the per-document deserializers above
/// count lines from each document, so the error path rescans the body the way Meilisearch does.
fn ndjson_error(body: &[u8], fallback: &serde_json::Error) -> MiroirError {
    for value in Deserializer::from_slice(body).into_iter::<&RawValue>() {
        match value {
            Err(e) => return errors::malformed_json(PayloadFormat::Ndjson, &e),
            Ok(raw) if !raw.get().starts_with('{') => {
                return errors::not_documents(PayloadFormat::Ndjson)
            }
            Ok(_) => {}
        }
    }
    errors::malformed_json(PayloadFormat::Ndjson, fallback)
}

fn single_object<'b>(
    de: &mut Deserializer<serde_json::de::SliceRead<'b>>,
    sink: &mut Sink<'b>,
) -> serde_json::Result<()> {
    let facts = sink.seed().deserialize(&mut *de)?;
    de.end()?;
    match sink.accept(facts, 0) {
        Some(_) => Ok(()),
        None => Err(de::Error::custom("unlocatable document")),
    }
}

fn unlocatable() -> MiroirError {
    errors::internal("a parsed document could not be located in the body")
}

/// JSON's insignificant whitespace.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Collects documents as the parser meets them.
struct Sink<'b> {
    body: &'b [u8],
    shards: u32,
    /// `None` until inferred from the first document.
    primary_key: Option<PrimaryKey>,
    docs: Vec<Doc>,
    /// The first document-level error. Parsing goes on, because Meilisearch rejects a
    /// malformed payload before it looks at any document: a later syntax error wins.
    rejected: Option<MiroirError>,
    /// An internal inconsistency; wins over everything.
    broken: Option<MiroirError>,
}

impl<'b> Sink<'b> {
    fn new(
        body: &'b [u8],
        shards: u32,
        primary_key: Result<Option<PrimaryKey>, MiroirError>,
    ) -> Self {
        let (primary_key, rejected) = match primary_key {
            Ok(pk) => (pk, None),
            Err(e) => (None, Some(e)),
        };
        Self {
            body,
            shards,
            primary_key,
            docs: Vec::new(),
            rejected,
            broken: None,
        }
    }

    /// What the parser must extract from the next document.
    fn seed(&self) -> DocSeed<'_> {
        let checking = self.rejected.is_none();
        DocSeed {
            primary_key: self.primary_key.as_ref().filter(|_| checking),
            collect_fields: checking && self.primary_key.is_none(),
        }
    }

    /// Records a parsed document found at or after `from`; returns the offset just past it, or
    /// `None` (and `broken` set) if it cannot be located.
    fn accept(&mut self, facts: DocFacts<'b>, from: usize) -> Option<usize> {
        let Some((start, close)) = locate(self.body, from, &facts) else {
            self.broken = Some(unlocatable());
            return None;
        };
        if self.rejected.is_none() {
            if let Err(e) = self.check(facts, start, close) {
                self.rejected = Some(e);
            }
        }
        Some(close + 1)
    }

    fn check(
        &mut self,
        facts: DocFacts<'b>,
        start: usize,
        close: usize,
    ) -> Result<(), MiroirError> {
        let doc = &self.body[start..=close];
        let facts = match &self.primary_key {
            Some(_) => facts,
            None => {
                let primary_key = pk::infer(facts.names.iter().map(AsRef::as_ref))?;
                let seed = DocSeed {
                    primary_key: Some(&primary_key),
                    collect_fields: false,
                };
                let facts = seed
                    .deserialize(&mut Deserializer::from_slice(doc))
                    .map_err(|_| errors::internal("the first document did not parse twice"))?;
                self.primary_key = Some(primary_key);
                facts
            }
        };
        if let Some(field) = facts.reserved {
            return Err(errors::reserved_field(&field));
        }
        let name = self.primary_key.as_ref().map_or("", PrimaryKey::name);
        let id = match facts.id {
            IdSlot::Found(id) => id,
            IdSlot::Missing => return Err(errors::missing_document_id(name, &document(doc))),
            IdSlot::TooMany => return Err(errors::too_many_document_ids(name, &document(doc))),
            IdSlot::Invalid(raw) => {
                let id = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                return Err(errors::invalid_document_id(&id));
            }
        };
        self.docs.push(Doc {
            start: offset(start)?,
            end: offset(close)?,
            shard: id.shard(self.shards).0,
        });
        Ok(())
    }

    fn finish(self) -> Result<Scan, MiroirError> {
        if let Some(e) = self.broken.or(self.rejected) {
            return Err(e);
        }
        // No document, so nothing to infer from: Meilisearch answers the same.
        let primary_key = self
            .primary_key
            .ok_or_else(errors::no_primary_key_candidate)?;
        Ok(Scan {
            primary_key,
            docs: self.docs,
            csv_header: None,
        })
    }
}

/// A document rendered for an error message, as Meilisearch renders it.
fn document(doc: &[u8]) -> Value {
    serde_json::from_slice(doc)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(doc).into_owned()))
}

/// The `{` at or after `from` and its matching `}`. serde_json has validated the document, so
/// only whitespace, `[` and `,` can precede it, and only whitespace can follow its last value.
fn locate(body: &[u8], from: usize, facts: &DocFacts<'_>) -> Option<(usize, usize)> {
    let start = from + body.get(from..)?.iter().position(|b| *b == b'{')?;
    let after = if facts.fields == 0 {
        start + 1
    } else {
        facts.values_end.checked_sub(body.as_ptr() as usize)?
    };
    let close = after + body.get(after..)?.iter().position(|b| !is_ws(*b))?;
    (body[close] == b'}').then_some((start, close))
}

/// Drives the top-level array, handing each document to the sink as soon as it is parsed.
struct ArrayVisitor<'s, 'b> {
    sink: &'s mut Sink<'b>,
}

impl<'b> Visitor<'b> for ArrayVisitor<'_, 'b> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a nonempty sequence")
    }

    fn visit_seq<A: SeqAccess<'b>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut cursor = 0;
        while let Some(facts) = seq.next_element_seed(self.sink.seed())? {
            cursor = self
                .sink
                .accept(facts, cursor)
                .ok_or_else(|| de::Error::custom("unlocatable document"))?;
        }
        Ok(())
    }
}

/// What to extract from one document.
struct DocSeed<'p> {
    /// `None` once the batch is rejected (only syntax matters then) or while inferring.
    primary_key: Option<&'p PrimaryKey>,
    /// Keep the field names, to infer the primary key from the first document.
    collect_fields: bool,
}

/// What one document says about itself.
#[derive(Default)]
struct DocFacts<'de> {
    fields: usize,
    /// Address just past the last value; the closing `}` follows after whitespace.
    values_end: usize,
    id: IdSlot<'de>,
    /// The first top-level field with the reserved prefix.
    reserved: Option<Cow<'de, str>>,
    names: Vec<Cow<'de, str>>,
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = DocFacts<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = DocFacts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut facts = DocFacts::default();
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            facts.fields += 1;
            facts.values_end = value.get().as_ptr() as usize + value.get().len();
            if facts.reserved.is_none() && name.starts_with(RESERVED_PREFIX) {
                facts.reserved = Some(name.clone());
            }
            if let Some(pk) = self.primary_key {
                pk.offer(&name, value, &mut facts.id);
            }
            if self.collect_fields {
                facts.names.push(name);
            }
        }
        Ok(facts)
    }
}
