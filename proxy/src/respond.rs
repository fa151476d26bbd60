//! Writing answers Miroir gives itself: JSON bodies framed with `Content-Length` (Pingora
//! would otherwise frame them close-delimited) and the request id on every response.

use bytes::Bytes;
use miroir_filters::error::MiroirError;
use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

pub const REQUEST_ID: &str = "X-Request-Id";

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
    let mut header = ResponseHeader::build(status, Some(4 + extra.len()))?;
    for (name, value) in extra {
        header.insert_header(*name, value.as_str())?;
    }
    header.insert_header("Content-Type", "application/json")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header(REQUEST_ID, request_id)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}

pub async fn error(session: &mut Session, err: &MiroirError, request_id: &str) -> Result<()> {
    json(session, err.status(), err.to_body(), request_id).await
}
