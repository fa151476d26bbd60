//! Writing answers Miroir gives itself: JSON bodies framed with `Content-Length` (Pingora
//! would otherwise frame them close-delimited) and the request id on every response. A large
//! body in pieces (a merged search answer) is written chunked, its small pieces gathered into
//! chunks: the whole body is never copied into one buffer.

use bytes::{Bytes, BytesMut};
use miroir_filters::error::MiroirError;
use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::encoding::{self, Coding};
use crate::request::STREAM_FROM;
use crate::upstream::NodeResponse;

pub const REQUEST_ID: &str = "X-Request-Id";

/// The `Vary` value Meilisearch puts on every answer (its CORS layer allows any origin).
const CORS_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// Pieces are gathered into chunks of about this size: Pingora writes and flushes each chunk,
/// and one chunk per piece (a hit, about 1 KB) measured twice the CPU per request on 320 KB
/// answers. A piece this large is a chunk of its own, not copied.
const CHUNK: usize = 128 * 1024;

/// Past an upgrade or stop signal, the answer closes its connection (see `handover`).
pub fn close_when_leaving(session: &mut Session) {
    if super::handover::leaving() {
        session.set_keepalive(None);
    }
}

/// The CORS headers a node would have put on this answer: a browser client (InstantSearch)
/// reads an answer only when it allows the page's origin. Preflights (`OPTIONS`) are relayed
/// to a node, which answers them itself.
fn cors(session: &Session, header: &mut ResponseHeader) -> Result<()> {
    if session
        .req_header()
        .headers
        .contains_key(http::header::ORIGIN)
    {
        header.insert_header("Access-Control-Allow-Origin", "*")?;
    }
    header.insert_header("Vary", CORS_VARY)
}

pub async fn json(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
) -> Result<()> {
    json_with(session, status, body, request_id, &[]).await
}

pub async fn json_with(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Result<()> {
    close_when_leaving(session);
    let mut header = ResponseHeader::build(status, Some(8 + extra.len()))?;
    header.insert_header("Content-Type", "application/json")?;
    // After the default, so an answer that is not JSON names its own type.
    for (name, value) in extra {
        header.insert_header(*name, value.as_str())?;
    }
    cors(session, &mut header)?;
    let mut body = Bytes::from(body);
    if let Some(coding) = coding_for(session, body.len()) {
        if let Some(encoded) = compressed(coding, &body).await {
            header.insert_header("Content-Encoding", coding.name())?;
            // A line of its own after the CORS one, as a node writes it.
            header.append_header("Vary", "accept-encoding")?;
            body = encoded;
        }
    }
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header(REQUEST_ID, request_id)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Writes a body in pieces: chunked when it is large and the client speaks HTTP/1.1, else
/// copied together and framed with `Content-Length`.
pub async fn parts_with(
    session: &mut Session,
    status: u16,
    parts: Vec<Bytes>,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Result<()> {
    close_when_leaving(session);
    let len: usize = parts.iter().map(Bytes::len).sum();
    // A compressed answer is compressed whole (it is a fraction of the parts' size).
    if len < STREAM_FROM
        || session.req_header().version != http::Version::HTTP_11
        || coding_for(session, len).is_some()
    {
        return json_with(session, status, parts.concat(), request_id, extra).await;
    }
    let mut header = ResponseHeader::build(status, Some(6 + extra.len()))?;
    for (name, value) in extra {
        header.insert_header(*name, value.as_str())?;
    }
    header.insert_header("Content-Type", "application/json")?;
    header.insert_header("Transfer-Encoding", "chunked")?;
    header.insert_header(REQUEST_ID, request_id)?;
    cors(session, &mut header)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    // One chunk ready to go, held back so the last one is written with the end of the body.
    let mut ready: Option<Bytes> = None;
    let mut gathering = BytesMut::with_capacity(CHUNK.min(len));
    for part in parts {
        if part.len() < CHUNK {
            gathering.extend_from_slice(&part);
            if gathering.len() < CHUNK {
                continue;
            }
        }
        if let Some(chunk) = ready.take() {
            session.write_response_body(Some(chunk), false).await?;
        }
        if !gathering.is_empty() {
            let chunk = gathering.split().freeze();
            if part.len() < CHUNK {
                ready = Some(chunk);
                continue;
            }
            session.write_response_body(Some(chunk), false).await?;
        }
        ready = Some(part);
    }
    if !gathering.is_empty() {
        if let Some(chunk) = ready.take() {
            session.write_response_body(Some(chunk), false).await?;
        }
        ready = Some(gathering.freeze());
    }
    session.write_response_body(ready, true).await
}

/// The coding the client asked for, as one node chooses it; none for an empty body.
fn coding_for(session: &Session, len: usize) -> Option<Coding> {
    if len == 0 {
        return None;
    }
    encoding::negotiate(
        session
            .req_header()
            .headers
            .get_all(http::header::ACCEPT_ENCODING),
    )
}

/// Bodies from this size are compressed on the blocking pool: a 10 MB browse would hold the
/// worker thread for tens of milliseconds.
const COMPRESS_ASIDE: usize = 256 * 1024;

/// `body` in `coding`; `None` if that fails (the body then goes as it is).
async fn compressed(coding: Coding, body: &Bytes) -> Option<Bytes> {
    let plain = body.clone();
    let encode = move || match encoding::encode(coding, &plain) {
        Ok(encoded) => Some(Bytes::from(encoded)),
        Err(e) => {
            log::warn!(target: "miroir::proxy", "cannot compress an answer ({}): {e}", coding.name());
            None
        }
    };
    if body.len() < COMPRESS_ASIDE {
        return encode();
    }
    tokio::task::spawn_blocking(encode).await.ok().flatten()
}

/// A node's answer relayed with its own headers (CORS included), framed again with
/// `Content-Length`.
pub async fn relayed(session: &mut Session, resp: NodeResponse, request_id: &str) -> Result<()> {
    close_when_leaving(session);
    let mut header = ResponseHeader::build(resp.status, Some(resp.headers.len() + 3))?;
    for (name, value) in resp.headers {
        header.append_header(name, value)?;
    }
    // No body, and no length, on the answers that never have one.
    let bodyless = matches!(resp.status, 100..=199 | 204 | 304);
    if !bodyless {
        header.insert_header("Content-Length", resp.body.len().to_string())?;
    }
    header.insert_header(REQUEST_ID, request_id)?;
    session
        .write_response_header(Box::new(header), bodyless)
        .await?;
    if !bodyless {
        session.write_response_body(Some(resp.body), true).await?;
    }
    Ok(())
}

pub async fn error(session: &mut Session, err: &MiroirError, request_id: &str) -> Result<()> {
    json(session, err.status(), err.to_body(), request_id).await
}
