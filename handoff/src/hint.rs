//! One missed write and its on-disk form.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The request a node missed, replayed as is (with Miroir's own credential): a document
/// write or deletion, a settings update, an index creation, update, deletion or swap, a key
/// creation, update or deletion. Everything a node misses goes into one log, so it is
/// replayed in the order Miroir accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The index whose write order the request takes; empty for instance-wide requests
    /// (keys, swaps).
    pub index_uid: String,
    pub method: String,
    /// Path and query string.
    pub path: String,
    pub content_type: Option<String>,
    /// The body as the request's chunks, shared with the request that produced it: keeping
    /// a hint copies the body once, into the store's page. Read back, it is one chunk.
    pub body: Vec<Bytes>,
    /// The node may have applied it already: its answer was lost after the whole request
    /// went out. The replay looks for its task on the node before sending it.
    pub maybe_applied: bool,
}

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    index_uid: &'a str,
    method: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    maybe_applied: bool,
}

impl Hint {
    /// Bytes the hint occupies against its node's cap.
    pub fn size(&self) -> u64 {
        (self.body_len() + self.path.len() + self.index_uid.len() + 64) as u64
    }

    /// Bytes of the body.
    pub fn body_len(&self) -> usize {
        self.body.iter().map(Bytes::len).sum()
    }

    /// The stored form is `header length (u32 LE) | header JSON | body`: this is its first
    /// two parts. The body follows verbatim, written by the store straight into its page.
    pub(crate) fn encoded_header(&self) -> Vec<u8> {
        let header = Header {
            index_uid: &self.index_uid,
            method: &self.method,
            path: &self.path,
            content_type: self.content_type.as_deref(),
            maybe_applied: self.maybe_applied,
        };
        // Serializing plain strings cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(4 + header.len());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out
    }

    /// Writes the stored form into `out`, which is `encoded_header().len() + body_len()` long.
    pub(crate) fn encode_into(&self, header: &[u8], out: &mut [u8]) {
        out[..header.len()].copy_from_slice(header);
        let mut at = header.len();
        for chunk in &self.body {
            out[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        }
    }

    /// The stored form in one buffer.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let header = self.encoded_header();
        let mut out = vec![0; header.len() + self.body_len()];
        self.encode_into(&header, &mut out);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let header: Header<'_> = serde_json::from_slice(bytes.get(4..4 + len)?).ok()?;
        let body = bytes.get(4 + len..)?;
        Some(Self {
            index_uid: header.index_uid.to_owned(),
            method: header.method.to_owned(),
            path: header.path.to_owned(),
            content_type: header.content_type.map(str::to_owned),
            maybe_applied: header.maybe_applied,
            body: if body.is_empty() {
                Vec::new()
            } else {
                vec![Bytes::copy_from_slice(body)]
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_content_type() {
        let mut hint = Hint {
            index_uid: "movies".into(),
            method: "POST".into(),
            path: "/indexes/movies/documents?primaryKey=id".into(),
            content_type: Some("application/x-ndjson".into()),
            body: vec![Bytes::from_static(b"{\"id\":1}\n{\"id\":2}\n")],
            maybe_applied: false,
        };
        assert_eq!(Hint::decode(&hint.encode()), Some(hint.clone()));
        // Chunks are stored as one body.
        let chunked = Hint {
            body: vec![
                Bytes::from_static(b"[{\"id\":1}"),
                Bytes::from_static(b",{\"id\":2}]"),
            ],
            ..hint.clone()
        };
        let read = Hint::decode(&chunked.encode()).unwrap();
        assert_eq!(read.body, [Bytes::from_static(b"[{\"id\":1},{\"id\":2}]")]);
        assert_eq!(read.size(), chunked.size());
        hint.content_type = None;
        hint.body = Vec::new();
        hint.maybe_applied = true;
        assert_eq!(Hint::decode(&hint.encode()), Some(hint));
        assert_eq!(Hint::decode(b"\x05\x00"), None);
    }
}
