//! Meilisearch compresses every answer a client accepts compressed (actix-web's `Compress`):
//! `br` over `gzip` over `deflate` among the codings weighted highest, none when `identity`
//! outweighs them, and a `vary: accept-encoding` line of its own on a compressed answer.

use std::io::Write;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response};

/// `response` in the coding [`chosen`] for its request, if any.
pub async fn as_accepted(coding: Option<&'static str>, response: Response<Body>) -> Response<Body> {
    let Some(coding) = coding else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if bytes.is_empty() {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let Ok(encoded) = encode(coding, &bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    Response::from_parts(parts, Body::from(encoded))
}

/// The coding for the request's `Accept-Encoding`: the highest weight wins, then the node's
/// order; entries with a malformed weight or another parameter do not count.
pub fn chosen(request: &HeaderMap) -> Option<&'static str> {
    const ORDER: [&str; 4] = ["identity", "deflate", "gzip", "br"];
    let mut best: Option<(u32, usize)> = None;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        for entry in value.to_str().unwrap_or("").split(',') {
            let mut fields = entry.split(';').map(str::trim);
            let token = fields.next().unwrap_or("").to_ascii_lowercase();
            let Some(rank) = ORDER.iter().position(|c| *c == token) else {
                continue;
            };
            let weight = fields.try_fold(1000, |_, field| {
                let q = field
                    .strip_prefix("q=")
                    .or_else(|| field.strip_prefix("Q="))?;
                weight_of(q)
            });
            if let Some(weight) = weight.filter(|w| *w > 0) {
                if best.is_none_or(|b| (weight, rank) > b) {
                    best = Some((weight, rank));
                }
            }
        }
    }
    best.map(|(_, rank)| ORDER[rank])
        .filter(|c| *c != "identity")
}

fn weight_of(q: &str) -> Option<u32> {
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    let digits = frac.len() <= 3 && frac.bytes().all(|b| b.is_ascii_digit());
    let weight = match (int, digits) {
        ("0", true) => format!("{frac:0<3}").parse::<u32>().ok()?,
        ("1", true) if frac.bytes().all(|b| b == b'0') => 1000,
        _ => return None,
    };
    Some(weight)
}

fn encode(coding: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body)?;
            e.finish()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body)?;
            e.finish()
        }
        _ => {
            let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 3, 22);
            e.write_all(body)?;
            Ok(e.into_inner())
        }
    }
}
