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
    let Some(encoding) = session
        .get_header(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return Ok(buf.freeze());
    };
    let body = buf.freeze();
    // A large body decompresses off the async worker (a document upload may take a while).
    if body.len() < 64 * 1024 {
        return decode(Some(&encoding), body, limit);
    }
    tokio::task::spawn_blocking(move || decode(Some(&encoding), body, limit))
        .await
        .map_err(|e| MiroirError::new(Code::Internal, format!("decompressing the body: {e}")))?
}

/// The body as a node reads it: decompressed when its `Content-Encoding` is exactly `gzip`,
/// `deflate` (zlib) or `br`, as Meilisearch 1.50 (actix) decompresses it; any other value
/// leaves it as sent. At most `limit` bytes once decompressed.
fn decode(encoding: Option<&str>, body: Bytes, limit: u64) -> Result<Bytes, MiroirError> {
    use std::io::Read;
    let encoding = encoding.map(str::trim).unwrap_or_default();
    let mut reader: Box<dyn Read + '_> = if encoding.eq_ignore_ascii_case("gzip") {
        Box::new(flate2::read::GzDecoder::new(&body[..]))
    } else if encoding.eq_ignore_ascii_case("deflate") {
        Box::new(flate2::read::ZlibDecoder::new(&body[..]))
    } else if encoding.eq_ignore_ascii_case("br") {
        Box::new(brotli::Decompressor::new(&body[..], 4096))
    } else {
        return Ok(body);
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit as usize));
    let read = (&mut reader)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out);
    match read {
        Ok(_) if out.len() as u64 > limit => Err(payload_too_large(limit)),
        Ok(_) => Ok(Bytes::from(out)),
        // Meilisearch's words (actix's payload error around the decoder's).
        Err(e) => Err(MiroirError::new(
            Code::BadRequest,
            format!(
                "Error that occur during reading payload: payload reached EOF before completing: {:?}",
                Some(e)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const JSON: &[u8] = br#"{"q":"x","limit":1}"#;

    #[test]
    fn bodies_are_decompressed_as_a_node_decompresses_them() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(JSON).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        assert_eq!(decode(Some("gzip"), gz.clone(), 1 << 20).unwrap(), JSON);
        assert_eq!(decode(Some("GZIP "), gz.clone(), 1 << 20).unwrap(), JSON);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(JSON).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(decode(Some("deflate"), z, 1 << 20).unwrap(), JSON);
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(JSON)
            .unwrap();
        assert_eq!(decode(Some("br"), Bytes::from(br), 1 << 20).unwrap(), JSON);
        // Other values are no encoding a node knows: the body stays as sent.
        for other in ["x-gzip", "zstd", "gzip, identity", "identity"] {
            assert_eq!(decode(Some(other), gz.clone(), 1 << 20).unwrap(), gz);
        }
        // Decompressed, a body is held to the limit.
        let e = decode(Some("gzip"), gz, 5).unwrap_err();
        assert_eq!(e.code, Code::PayloadTooLarge);
    }

    #[test]
    fn a_body_that_is_not_what_its_encoding_says_is_refused_in_meilisearchs_words() {
        let e = decode(Some("gzip"), Bytes::from_static(JSON), 1 << 20).unwrap_err();
        assert_eq!(e.code, Code::BadRequest);
        assert_eq!(
            e.message,
            "Error that occur during reading payload: payload reached EOF before completing: Some(Custom { kind: InvalidInput, error: \"invalid gzip header\" })"
        );
        let e = decode(Some("deflate"), Bytes::from_static(JSON), 1 << 20).unwrap_err();
        assert!(
            e.message.ends_with("error: \"corrupt deflate stream\" })"),
            "{}",
            e.message
        );
    }
}
