//! Reading a client's request body when Miroir itself handles the request (broadcast, split):
//! answers `Expect: 100-continue` first, and stops at the configured limit.

use bytes::{Bytes, BytesMut};
use miroir_filters::error::{Code, MiroirError};
use pingora_proxy::Session;

use crate::request::payload_too_large;

/// `payload_too_large` when the declared `Content-Length` is over `limit`: the body is then
/// never read, so the connection must not be reused.
pub fn declared_too_large(session: &Session, limit: u64) -> Option<MiroirError> {
    let declared = session
        .get_header(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    (declared > limit).then(|| payload_too_large(limit))
}

pub async fn read(session: &mut Session, limit: u64) -> Result<Bytes, MiroirError> {
    let expects_continue = session
        .get_header(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // Pingora marks the connection for closing when it answers before the body is read,
    // which the 100 Continue is; the keep-alive state is restored once the body is in.
    let keepalive = session.get_keepalive();
    if expects_continue {
        // Without this, curl and others wait a second before sending the body.
        session.write_continue_response().await.map_err(|e| {
            MiroirError::new(
                Code::BadRequest,
                format!("could not answer 100-continue: {e}"),
            )
        })?;
    }
    // Sized up front from Content-Length: growing by doubling would briefly hold two copies of
    // a large body, and the write path's memory budget is about twice the body.
    let declared = session
        .get_header(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .min(limit);
    let mut buf = BytesMut::with_capacity(declared as usize);
    loop {
        let chunk = session.read_request_body().await.map_err(|e| {
            MiroirError::new(
                Code::BadRequest,
                format!("could not read the request body: {e}"),
            )
        })?;
        let Some(chunk) = chunk else { break };
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(payload_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    if expects_continue {
        session.set_keepalive(keepalive);
    }
    Ok(buf.freeze())
}
