//! One missed write and its on-disk form.

use serde::{Deserialize, Serialize};

/// The request a node missed, replayed as is (with Miroir's own credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub index_uid: String,
    pub method: String,
    /// Path and query string.
    pub path: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    index_uid: &'a str,
    method: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    content_type: Option<&'a str>,
}

impl Hint {
    /// Bytes the hint occupies against its node's cap.
    pub fn size(&self) -> u64 {
        (self.body.len() + self.path.len() + self.index_uid.len() + 64) as u64
    }

    /// `header length (u32 LE) | header JSON | body`: the body is stored verbatim, never
    /// re-encoded.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let header = Header {
            index_uid: &self.index_uid,
            method: &self.method,
            path: &self.path,
            content_type: self.content_type.as_deref(),
        };
        // Serializing plain strings cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(4 + header.len() + self.body.len());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let header: Header<'_> = serde_json::from_slice(bytes.get(4..4 + len)?).ok()?;
        Some(Self {
            index_uid: header.index_uid.to_owned(),
            method: header.method.to_owned(),
            path: header.path.to_owned(),
            content_type: header.content_type.map(str::to_owned),
            body: bytes.get(4 + len..)?.to_vec(),
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
            body: b"{\"id\":1}\n{\"id\":2}\n".to_vec(),
        };
        assert_eq!(Hint::decode(&hint.encode()), Some(hint.clone()));
        hint.content_type = None;
        hint.body.clear();
        assert_eq!(Hint::decode(&hint.encode()), Some(hint));
        assert_eq!(Hint::decode(b"\x05\x00"), None);
    }
}
