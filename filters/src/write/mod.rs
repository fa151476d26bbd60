//! The write-path splitter: validates a document batch exactly as one Meilisearch node would,
//! tags every document with its shard and groups the documents by shard, all before any node is
//! contacted. Pure: no I/O; the proxy turns the result into one request per node.
//!
//! Documents are never re-serialized: each one is copied once from the body into its shard's
//! buffer with `"_miroir_shard":N` spliced before its closing brace (or appended as a CSV
//! column), and node bodies are chunk lists over those buffers.

mod csv;
mod errors;
mod format;
mod ids;
mod json;
mod pk;
mod scan;
mod split;

pub use format::{csv_delimiter, PayloadFormat};
pub use ids::split_ids;
pub use split::Split;

use std::fmt;

use crate::error::MiroirError;

/// A document write as the client sent it.
#[derive(Clone, Copy)]
pub struct SplitInput<'a> {
    pub body: &'a [u8],
    pub format: PayloadFormat,
    /// The index's primary key, if it has one.
    pub index_primary_key: Option<&'a str>,
    /// The request's `primaryKey` query parameter.
    pub param_primary_key: Option<&'a str>,
    /// S, the number of shards; at least 1.
    pub shards: u32,
}

/// The body's length, not its bytes.
impl fmt::Debug for SplitInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitInput")
            .field("body_len", &self.body.len())
            .field("format", &self.format)
            .field("index_primary_key", &self.index_primary_key)
            .field("param_primary_key", &self.param_primary_key)
            .field("shards", &self.shards)
            .finish()
    }
}

/// Validates a batch and splits it by shard, or returns the error Meilisearch would answer.
///
/// When a batch breaks several rules, a malformed payload anywhere wins (Meilisearch rejects it
/// before reading any document); otherwise the first document-level error, in document order,
/// is returned. A conflicting `primaryKey` counts as the first document-level error.
pub fn split(input: SplitInput<'_>) -> Result<Split, MiroirError> {
    split_versioned(input, None)
}

/// Like [`split`], each document also stamped with `_miroir_version` = `version` (the write's
/// place in the index's history, see `hidden::version_value`).
pub fn split_versioned(input: SplitInput<'_>, version: Option<u64>) -> Result<Split, MiroirError> {
    let SplitInput {
        body,
        format,
        index_primary_key,
        param_primary_key,
        shards,
    } = input;
    if shards == 0 {
        return Err(errors::internal("the shard count is 0"));
    }
    if body.is_empty() {
        return Err(errors::missing_payload(format));
    }
    scan::check_body_len(body)?;
    let primary_key = pk::choose(index_primary_key, param_primary_key);
    let scan = match format {
        PayloadFormat::Json => json::scan_json(body, primary_key, shards)?,
        PayloadFormat::Ndjson => json::scan_ndjson(body, primary_key, shards)?,
        PayloadFormat::Csv { delimiter } => csv::scan_csv(body, delimiter, primary_key, shards)?,
    };
    Ok(Split::assemble(body, format, scan, shards, version))
}

/// How many documents a batch holds, as a node counts them in `receivedDocuments`: the
/// elements of a JSON array (or 1 for one object), the non-blank lines of NDJSON, the records
/// of a CSV body. For a body `split` found well-formed; 0 for anything else.
pub fn count_documents(body: &[u8], format: PayloadFormat) -> usize {
    match format {
        PayloadFormat::Json => match serde_json::from_slice::<OneOrMany>(body) {
            Ok(OneOrMany(n)) => n,
            Err(_) => 0,
        },
        PayloadFormat::Ndjson => body
            .split(|b| *b == b'\n')
            .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
            .count(),
        PayloadFormat::Csv { delimiter } => ::csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_reader(body)
            .records()
            .count(),
    }
}

/// A JSON object (one document) or an array of them, counted without being kept.
struct OneOrMany(usize);

impl<'de> serde::Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Count;
        impl<'de> serde::de::Visitor<'de> for Count {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("documents")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(OneOrMany(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OneOrMany, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(OneOrMany(1))
            }
        }
        d.deserialize_any(Count)
    }
}

#[cfg(test)]
mod count_tests {
    use super::*;

    #[test]
    fn documents_are_counted_as_a_node_counts_them() {
        assert_eq!(
            count_documents(br#"[{"a":1},{"b":[1,{}]}, {}]"#, PayloadFormat::Json),
            3
        );
        assert_eq!(count_documents(br#" {"a":1} "#, PayloadFormat::Json), 1);
        assert_eq!(count_documents(b"[]", PayloadFormat::Json), 0);
        assert_eq!(
            count_documents(b"{\"a\":1}\n\n {\"b\":2}\n", PayloadFormat::Ndjson),
            2
        );
        let csv = PayloadFormat::Csv { delimiter: b',' };
        assert_eq!(count_documents(b"title,n\n\"x\ny\",1\nz,2\n", csv), 2);
    }
}
