//! The split batch: one buffer of tagged documents per shard, and node bodies as chunk lists
//! over those buffers, so building a node's body copies no document byte.

use std::fmt;

use bytes::Bytes;

use super::format::PayloadFormat;
use super::scan::Scan;
use crate::hidden::{shard_value, version_value, SHARD_FIELD, VERSION_FIELD};
use crate::routing::ShardId;

/// A validated batch, its documents tagged with `_miroir_shard` and grouped by shard.
#[derive(Clone)]
pub struct Split {
    /// The primary key the documents were split by. Send it to every node as `primaryKey`, so
    /// no node infers another one from a different first document.
    pub primary_key: String,
    /// Whether the primary key was inferred from the first document.
    pub primary_key_inferred: bool,
    /// Documents in the batch.
    pub documents: usize,
    format: PayloadFormat,
    /// The CSV header row with the shard column appended; empty for JSON and NDJSON.
    header: Bytes,
    /// Indexed by shard.
    parts: Vec<Part>,
}

#[derive(Clone, Default)]
struct Part {
    /// JSON: documents joined by `,`. NDJSON: documents each followed by `\n`. CSV: rows each
    /// followed by `\n`, without the header.
    bytes: Bytes,
    docs: usize,
}

impl Split {
    /// Copies every accepted document once, into its shard's buffer, tagged. Each buffer is
    /// sized before it is filled, so none is ever reallocated.
    pub(crate) fn assemble(
        body: &[u8],
        format: PayloadFormat,
        scan: Scan,
        shards: u32,
        version: Option<u64>,
    ) -> Self {
        let version = version.map(version_value);
        let tags: Vec<Vec<u8>> = (0..shards)
            .map(|s| tag(format, s, version.as_deref()))
            .collect();
        let mut sizes = vec![0usize; tags.len()];
        let mut counts = vec![0usize; tags.len()];
        for doc in &scan.docs {
            let s = doc.shard as usize;
            counts[s] += 1;
            // The tag plus one separator bounds what is added to a document.
            sizes[s] += doc.range().len() + tags[s].len() + 1;
        }
        let mut buffers: Vec<Vec<u8>> = sizes.iter().map(|n| Vec::with_capacity(*n)).collect();
        for doc in &scan.docs {
            let s = doc.shard as usize;
            let buffer = &mut buffers[s];
            let bytes = &body[doc.range()];
            match format {
                PayloadFormat::Json => {
                    if !buffer.is_empty() {
                        buffer.push(b',');
                    }
                    push_tagged_object(buffer, bytes, &tags[s]);
                }
                PayloadFormat::Ndjson => push_tagged_object(buffer, bytes, &tags[s]),
                PayloadFormat::Csv { .. } => {
                    buffer.extend_from_slice(bytes);
                    buffer.extend_from_slice(&tags[s]);
                }
            }
        }
        let header = match (&scan.csv_header, format) {
            (Some(header), PayloadFormat::Csv { delimiter }) => {
                // An untyped CSV column is a string column, typed header or not.
                let mut line = body[header.line.clone()].to_vec();
                line.push(delimiter);
                push_csv_cell(&mut line, SHARD_FIELD, delimiter);
                if version.is_some() {
                    line.push(delimiter);
                    push_csv_cell(&mut line, VERSION_FIELD, delimiter);
                }
                line.push(b'\n');
                Bytes::from(line)
            }
            _ => Bytes::new(),
        };
        let parts = buffers
            .into_iter()
            .zip(counts)
            .map(|(bytes, docs)| Part {
                bytes: Bytes::from(bytes),
                docs,
            })
            .collect();
        Self {
            primary_key: scan.primary_key.name().to_owned(),
            primary_key_inferred: scan.primary_key.inferred(),
            documents: scan.docs.len(),
            format,
            header,
            parts,
        }
    }

    /// The format of the node bodies: the request's own.
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// S, the number of shards the batch was split into.
    pub fn shards(&self) -> u32 {
        self.parts.len() as u32
    }

    /// Documents of one shard; 0 for a shard outside `0..S`.
    pub fn shard_docs(&self, shard: ShardId) -> usize {
        self.parts.get(shard.0 as usize).map_or(0, |p| p.docs)
    }

    /// Documents a node holding `shards` receives. A node with none needs no request: an empty
    /// NDJSON body is Meilisearch's `missing_payload`.
    pub fn node_docs(&self, shards: &[ShardId]) -> usize {
        shards.iter().map(|s| self.shard_docs(*s)).sum()
    }

    /// The body for one node holding `shards` (each listed once), as chunks to write in order,
    /// and its total length for `Content-Length`. The chunks share the shard buffers.
    ///
    /// JSON gives one array, NDJSON the documents line by line, CSV one header row (with the
    /// `_miroir_shard` column) and the rows. Shards outside `0..S` hold nothing.
    pub fn node_body(&self, shards: &[ShardId]) -> (Vec<Bytes>, usize) {
        let mut parts = shards
            .iter()
            .filter_map(|s| self.parts.get(s.0 as usize))
            .filter(|p| p.docs > 0)
            .map(|p| p.bytes.clone());
        let mut chunks = Vec::with_capacity(2 * shards.len() + 2);
        match self.format {
            PayloadFormat::Json => {
                chunks.push(Bytes::from_static(b"["));
                if let Some(first) = parts.next() {
                    chunks.push(first);
                    for part in parts {
                        chunks.push(Bytes::from_static(b","));
                        chunks.push(part);
                    }
                }
                chunks.push(Bytes::from_static(b"]"));
            }
            PayloadFormat::Ndjson => chunks.extend(parts),
            PayloadFormat::Csv { .. } => {
                chunks.push(self.header.clone());
                chunks.extend(parts);
            }
        }
        let len = chunks.iter().map(Bytes::len).sum();
        (chunks, len)
    }
}

/// Sizes only: the buffers can hold a whole batch.
impl fmt::Debug for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Split")
            .field("primary_key", &self.primary_key)
            .field("primary_key_inferred", &self.primary_key_inferred)
            .field("documents", &self.documents)
            .field("format", &self.format)
            .field("shards", &self.parts.len())
            .field(
                "bytes",
                &self.parts.iter().map(|p| p.bytes.len()).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

/// What closes a document of `shard`: for JSON `,"_miroir_shard":"<value>"}` (see
/// `hidden::shard_value`), for NDJSON the same and a newline, for CSV the shard cell and a
/// newline; with a `version`, its field or cell after the shard's.
fn tag(format: PayloadFormat, shard: u32, version: Option<&str>) -> Vec<u8> {
    let value = shard_value(ShardId(shard));
    let fields = match version {
        Some(v) => format!(",\"{SHARD_FIELD}\":\"{value}\",\"{VERSION_FIELD}\":\"{v}\"}}"),
        None => format!(",\"{SHARD_FIELD}\":\"{value}\"}}"),
    };
    match format {
        PayloadFormat::Json => fields.into_bytes(),
        PayloadFormat::Ndjson => (fields + "\n").into_bytes(),
        PayloadFormat::Csv { delimiter } => {
            let mut tag = vec![delimiter];
            push_csv_cell(&mut tag, &value, delimiter);
            if let Some(v) = version {
                tag.push(delimiter);
                push_csv_cell(&mut tag, v, delimiter);
            }
            tag.push(b'\n');
            tag
        }
    }
}

/// Splices the tag in place of the object's closing brace: `object` runs from `{` up to, not
/// including, its `}`. An object without fields takes the tag without its leading comma.
fn push_tagged_object(buffer: &mut Vec<u8>, object: &[u8], tag: &[u8]) {
    let empty = object.get(1..).is_none_or(|fields| {
        fields
            .iter()
            .all(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    });
    buffer.extend_from_slice(object);
    buffer.extend_from_slice(if empty { &tag[1..] } else { tag });
}

/// A CSV cell, quoted when the delimiter (or a quote or line break) would break it.
fn push_csv_cell(out: &mut Vec<u8>, text: &str, delimiter: u8) {
    let needs_quotes = text
        .bytes()
        .any(|b| b == delimiter || matches!(b, b'"' | b'\r' | b'\n'));
    if !needs_quotes {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    out.push(b'"');
    for b in text.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(object: &str) -> String {
        let mut out = Vec::new();
        push_tagged_object(
            &mut out,
            object.as_bytes(),
            &tag(PayloadFormat::Json, 7, None),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tag_replaces_the_closing_brace() {
        assert_eq!(tagged(r#"{"id":1"#), r#"{"id":1,"_miroir_shard":"..."}"#);
        assert_eq!(tagged("{"), r#"{"_miroir_shard":"..."}"#);
        assert_eq!(tagged("{ \n\t"), "{ \n\t\"_miroir_shard\":\"...\"}");
        assert_eq!(
            tagged("{ \"a\" : { } \n"),
            "{ \"a\" : { } \n,\"_miroir_shard\":\"...\"}"
        );
    }

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        push_csv_cell(&mut out, "_miroir_shard:number", b',');
        assert_eq!(out, b"_miroir_shard:number");
        out.clear();
        push_csv_cell(&mut out, "_miroir_shard:number", b':');
        assert_eq!(out, b"\"_miroir_shard:number\"");
        assert_eq!(
            tag(PayloadFormat::Csv { delimiter: b';' }, 12, None),
            b";..--\n"
        );
        assert_eq!(
            tag(PayloadFormat::Csv { delimiter: b';' }, 1, Some(".-")),
            b";.;.-\n"
        );
        assert_eq!(
            tag(PayloadFormat::Json, 1, Some(".-")),
            br#","_miroir_shard":".","_miroir_version":".-"}"#
        );
        assert_eq!(
            tag(PayloadFormat::Csv { delimiter: b'.' }, 12, None),
            b".\"..--\"\n"
        );
    }
}
