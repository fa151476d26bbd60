//! The primary key of a write and each document's id, by Meilisearch's rules: resolution and
//! inference as in milli's `guess_primary_key.rs`, id extraction (nested keys included) and
//! validation as in milli's `documents/primary_key.rs` and indexer `de.rs`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::errors;
use crate::error::MiroirError;
use crate::routing::{shard_for_key, ShardId};

/// Separates the levels of a nested primary key such as `product.id`.
const LEVEL_SEPARATOR: char = '.';
/// Meilisearch's longest accepted string id is 511 bytes.
const MAX_ID_BYTES: usize = 511;

/// The primary key a batch is split by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PrimaryKey {
    name: String,
    nested: bool,
    inferred: bool,
}

impl PrimaryKey {
    fn new(name: &str, inferred: bool) -> Self {
        Self {
            name: name.to_owned(),
            nested: name.contains(LEVEL_SEPARATOR),
            inferred,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn inferred(&self) -> bool {
        self.inferred
    }

    /// Offers one top-level field of a document: if it holds the id (or, for a nested key, an
    /// object holding it), the id is extracted into `slot`.
    pub(crate) fn offer<'de>(&self, field: &str, value: &'de RawValue, slot: &mut IdSlot<'de>) {
        if !self.nested {
            if field == self.name {
                slot.put(value);
            }
            return;
        }
        offer_components(&self.name, field, value, slot);
    }
}

/// The primary key given for a write, or `None` when it must be inferred from the first
/// document. A `primaryKey` parameter that differs from the index's own is an error.
pub(crate) fn choose(
    index_primary_key: Option<&str>,
    param_primary_key: Option<&str>,
) -> Result<Option<PrimaryKey>, MiroirError> {
    match (index_primary_key, param_primary_key) {
        (Some(index), Some(param)) if index != param => {
            Err(errors::primary_key_already_exists(index))
        }
        (Some(name), _) | (None, Some(name)) => Ok(Some(PrimaryKey::new(name, false))),
        (None, None) => Ok(None),
    }
}

/// Infers the primary key from the first document's top-level field names: exactly one of them
/// must end with `id`, case-insensitively.
pub(crate) fn infer<'n>(fields: impl Iterator<Item = &'n str>) -> Result<PrimaryKey, MiroirError> {
    let mut candidates: Vec<&str> = fields
        .filter(|f| f.to_lowercase().ends_with("id"))
        .collect();
    candidates.sort_unstable();
    // Meilisearch reads the document into a map, where a repeated name counts once.
    candidates.dedup();
    match candidates.as_slice() {
        [] => Err(errors::no_primary_key_candidate()),
        [name] => Ok(PrimaryKey::new(name, true)),
        several => Err(errors::multiple_primary_key_candidates(several)),
    }
}

/// A valid document id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DocId<'de> {
    Str(Cow<'de, str>),
    U64(u64),
    I64(i64),
}

impl DocId<'_> {
    /// The document's shard; integers hash as their decimal string, like
    /// [`crate::routing::canonical_key`].
    pub(crate) fn shard(&self, shards: u32) -> ShardId {
        let mut digits = itoa::Buffer::new();
        let key = match self {
            DocId::Str(s) => s.as_ref(),
            DocId::U64(n) => digits.format(*n),
            DocId::I64(n) => digits.format(*n),
        };
        shard_for_key(key, shards)
    }
}

/// Whether a string is a valid document id: 1 to 511 bytes of `a-z A-Z 0-9 - _`.
pub(crate) fn is_valid_str_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a document says about its id so far.
#[derive(Debug, Default)]
pub(crate) enum IdSlot<'de> {
    #[default]
    Missing,
    Found(DocId<'de>),
    /// The first value found under the primary key that is not a valid id.
    Invalid(&'de RawValue),
    /// A nested primary key matched twice.
    TooMany,
}

impl<'de> IdSlot<'de> {
    /// Records a value found under the primary key. As in Meilisearch, the first invalid value
    /// or the second valid one settles the outcome.
    fn put(&mut self, value: &'de RawValue) {
        if matches!(self, IdSlot::Invalid(_) | IdSlot::TooMany) {
            return;
        }
        *self = match (parse_id(value), &*self) {
            (None, _) => IdSlot::Invalid(value),
            (Some(_), IdSlot::Found(_)) => IdSlot::TooMany,
            (Some(id), _) => IdSlot::Found(id),
        };
    }

    fn settled(&self) -> bool {
        matches!(self, IdSlot::Invalid(_) | IdSlot::TooMany)
    }
}

/// A value as a document id: a valid string, or an integer.
fn parse_id(value: &RawValue) -> Option<DocId<'_>> {
    let id = value.deserialize_any(IdVisitor).ok()?;
    match &id {
        DocId::Str(s) if !is_valid_str_id(s) => None,
        _ => Some(id),
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = DocId<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(DocId::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(DocId::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(DocId::U64(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(DocId::I64(v))
    }
}

/// `(level, rest)` splits of a nested key: `a.b.c` gives `(a, b.c)`, `(a.b, c)`, `(a.b.c, "")`.
fn levels(name: &str) -> impl Iterator<Item = (&str, &str)> {
    name.match_indices(LEVEL_SEPARATOR)
        .map(move |(i, _)| (&name[..i], &name[i + LEVEL_SEPARATOR.len_utf8()..]))
        .chain(std::iter::once((name, "")))
}

fn offer_components<'de>(
    components: &str,
    field: &str,
    value: &'de RawValue,
    slot: &mut IdSlot<'de>,
) {
    if slot.settled() {
        return;
    }
    let Some((_, rest)) = levels(components).find(|(level, _)| *level == field) else {
        return;
    };
    if rest.is_empty() {
        slot.put(value);
    } else {
        // A value that is not an object cannot hold the rest of the key: Meilisearch skips it.
        let _ = value.deserialize_map(NestedVisitor {
            components: rest,
            slot,
        });
    }
}

/// Walks an object looking for the rest of a nested primary key.
struct NestedVisitor<'c, 's, 'de> {
    components: &'c str,
    slot: &'s mut IdSlot<'de>,
}

impl<'de> Visitor<'de> for NestedVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            offer_components(self.components, &field, value, self.slot);
            if self.slot.settled() {
                break;
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the body unless it holds escapes.
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn conflict_with_the_index_primary_key_is_an_error() {
        let e = choose(Some("id"), Some("sku")).unwrap_err();
        assert_eq!(e.code, Code::IndexPrimaryKeyAlreadyExists);
        assert_eq!(e.message, "Index already has a primary key: `id`.");
        assert_eq!(
            choose(Some("id"), Some("id")).unwrap().unwrap().name(),
            "id"
        );
        assert_eq!(choose(None, Some("sku")).unwrap().unwrap().name(), "sku");
        assert!(choose(None, None).unwrap().is_none());
    }

    #[test]
    fn inference_needs_exactly_one_field_ending_with_id() {
        let pk = infer(["title", "productId", "price"].into_iter()).unwrap();
        assert_eq!(pk.name(), "productId");
        assert!(pk.inferred());
        assert_eq!(infer(["ID", "x"].into_iter()).unwrap().name(), "ID");
        let e = infer(["title", "identity"].into_iter()).unwrap_err();
        assert_eq!(e.code, Code::IndexPrimaryKeyNoCandidateFound);
        let e = infer(["uid", "title", "id", "kid"].into_iter()).unwrap_err();
        assert_eq!(e.code, Code::IndexPrimaryKeyMultipleCandidatesFound);
        assert_eq!(e.message, "The primary key inference failed as the engine found 3 fields ending with `id` in their names: 'id' and 'kid'. Please specify the primary key manually using the `primaryKey` query parameter.");
    }

    #[test]
    fn ids_are_integers_or_restricted_strings() {
        assert_eq!(parse_id(raw("42")), Some(DocId::U64(42)));
        assert_eq!(parse_id(raw("-7")), Some(DocId::I64(-7)));
        assert_eq!(parse_id(raw("\"a-B_9\"")), Some(DocId::Str("a-B_9".into())));
        assert_eq!(parse_id(raw("\"\\u0041\"")), Some(DocId::Str("A".into())));
        for bad in [
            "1.5", "1e3", "null", "true", "\"\"", "\"a b\"", "\"é\"", "[1]", "{}",
        ] {
            assert_eq!(parse_id(raw(bad)), None, "{bad}");
        }
        assert!(is_valid_str_id(&"a".repeat(511)));
        assert!(!is_valid_str_id(&"a".repeat(512)));
    }

    #[test]
    fn nested_keys_match_every_split() {
        assert_eq!(
            levels("a.b.c").collect::<Vec<_>>(),
            [("a", "b.c"), ("a.b", "c"), ("a.b.c", "")]
        );
        let pk = PrimaryKey::new("a.b", false);
        let mut slot = IdSlot::Missing;
        pk.offer("a", raw(r#"{"x":1,"b":"k1"}"#), &mut slot);
        assert!(matches!(slot, IdSlot::Found(DocId::Str(ref s)) if s == "k1"));
        pk.offer("a.b", raw("2"), &mut slot);
        assert!(matches!(slot, IdSlot::TooMany));

        let mut slot = IdSlot::Missing;
        pk.offer("a", raw("3"), &mut slot);
        assert!(matches!(slot, IdSlot::Missing));
    }
}
