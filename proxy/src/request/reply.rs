//! A complete answer to the client, built by a request path and written by `server`.

use bytes::Bytes;
use miroir_filters::error::MiroirError;
use serde_json::Value;

use crate::upstream::NodeResponse;

/// Response header naming what an answer lacks: shards no replica answered for, replica
/// groups a write missed.
pub const DEGRADED: &str = "X-Miroir-Degraded";

/// A body in pieces smaller than this is copied together and framed with `Content-Length`:
/// chunked framing costs a flushed write for the header and for each chunk, which measured
/// up to 20% more CPU per request on 32 KB answers.
pub const STREAM_FROM: usize = 64 * 1024;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The body, unless `parts` holds it ([`Reply::bytes`] reads either).
    pub body: Vec<u8>,
    /// A body in pieces, `body` then empty: a merged search answer, mostly slices of the node
    /// answers, written without being copied together (chunked when large).
    pub parts: Option<Vec<Bytes>>,
    /// Extra response headers (for example `X-Miroir-Degraded`).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn raw(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            body,
            parts: None,
            headers: Vec::new(),
        }
    }

    /// A body in pieces, sent in order.
    pub fn parts(status: u16, parts: Vec<Bytes>) -> Self {
        Self {
            status,
            body: Vec::new(),
            parts: Some(parts),
            headers: Vec::new(),
        }
    }

    /// The whole body, copied together when it is in pieces.
    pub fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.parts {
            Some(parts) => std::borrow::Cow::Owned(parts.concat()),
            None => std::borrow::Cow::Borrowed(&self.body),
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Self::raw(status, value.to_string().into_bytes())
    }

    pub fn error(err: &MiroirError) -> Self {
        Self::raw(err.status(), err.to_body())
    }

    /// A node's answer, as the node gave it.
    pub fn relay(resp: &NodeResponse) -> Self {
        Self::raw(resp.status, resp.body.to_vec())
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// With `X-Miroir-Degraded: value`, when there is one.
    pub fn degraded(self, value: Option<String>) -> Self {
        match value {
            Some(v) => self.with_header(DEGRADED, v),
            None => self,
        }
    }
}

impl From<MiroirError> for Reply {
    fn from(err: MiroirError) -> Self {
        Reply::error(&err)
    }
}
