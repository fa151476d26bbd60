//! The content coding of the answers Miroir writes itself, chosen as one Meilisearch node
//! (actix-web's `Compress`) chooses it, so a client asking for compression gets its answers
//! compressed as from one node: `br`, `gzip` or `deflate`, whichever the client weights
//! highest (`q`), `br` before `gzip` before `deflate` at equal weight, nothing when
//! `identity` weighs more or nothing it names is known. An entry whose weight is not a valid
//! `q` (above 1, more than three decimals) or that carries any other parameter is ignored;
//! `*` and unknown codings are ignored. Levels are the node's: gzip and deflate fastest,
//! brotli quality 3 with a 4 MB window.

use std::io::Write;

use http::header::GetAll;
use http::HeaderValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Deflate,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// What an entry names: a coding, or `identity` (no coding).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Named {
    Coding(Coding),
    Identity,
}

impl Named {
    /// The node's order among equal weights.
    fn preference(self) -> u8 {
        match self {
            Named::Coding(Coding::Brotli) => 3,
            Named::Coding(Coding::Gzip) => 2,
            Named::Coding(Coding::Deflate) => 1,
            Named::Identity => 0,
        }
    }
}

/// The coding for a request's `Accept-Encoding` headers, if any.
pub fn negotiate(accept: GetAll<'_, HeaderValue>) -> Option<Coding> {
    let mut best: Option<(u16, Named)> = None;
    for value in accept {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for entry in value.split(',') {
            let Some((weight, named)) = entry_of(entry) else {
                continue;
            };
            let better =
                best.is_none_or(|(w, n)| (weight, named.preference()) > (w, n.preference()));
            if weight > 0 && better {
                best = Some((weight, named));
            }
        }
    }
    match best {
        Some((_, Named::Coding(c))) => Some(c),
        _ => None,
    }
}

/// One `Accept-Encoding` entry: its weight in thousandths and what it names.
fn entry_of(entry: &str) -> Option<(u16, Named)> {
    let mut parts = entry.split(';');
    let token = parts.next()?.trim();
    let named = if token.eq_ignore_ascii_case("br") {
        Named::Coding(Coding::Brotli)
    } else if token.eq_ignore_ascii_case("gzip") {
        Named::Coding(Coding::Gzip)
    } else if token.eq_ignore_ascii_case("deflate") {
        Named::Coding(Coding::Deflate)
    } else if token.eq_ignore_ascii_case("identity") {
        Named::Identity
    } else {
        return None;
    };
    let mut weight = 1000;
    for param in parts {
        let (name, value) = param.trim().split_once('=')?;
        if !name.eq_ignore_ascii_case("q") {
            return None;
        }
        weight = quality(value)?;
    }
    Some((weight, named))
}

/// A `q` value in thousandths: `0` or `1` with at most three decimals, at most 1.
fn quality(q: &str) -> Option<u16> {
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    let weight = whole + thousandths;
    (weight <= 1000).then_some(weight)
}

/// `body` in `coding`.
pub fn encode(coding: Coding, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let out = Vec::with_capacity(body.len() / 4 + 64);
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            e.write_all(body)?;
            e.finish()
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(out, flate2::Compression::fast());
            e.write_all(body)?;
            e.finish()
        }
        Coding::Brotli => {
            let mut e = brotli::CompressorWriter::new(out, 32 * 1024, 3, 22);
            e.write_all(body)?;
            // Finishes the stream.
            Ok(e.into_inner())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn chosen(values: &[&str]) -> Option<&'static str> {
        let mut headers = http::HeaderMap::new();
        for v in values {
            headers.append(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        negotiate(headers.get_all(http::header::ACCEPT_ENCODING)).map(Coding::name)
    }

    /// Each case as a Meilisearch 1.50 node answered it.
    #[test]
    fn chooses_as_one_node_chooses() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&[""], None),
            (&["gzip"], Some("gzip")),
            (&["gzip, deflate"], Some("gzip")),
            (&["gzip, deflate, br"], Some("br")),
            (&["gzip, br"], Some("br")),
            (&["deflate, gzip"], Some("gzip")),
            (&["br"], Some("br")),
            (&["deflate"], Some("deflate")),
            (&["zstd"], None),
            (&["zstd, gzip"], Some("gzip")),
            (&["identity"], None),
            (&["*"], None),
            (&["*, gzip;q=0.5"], Some("gzip")),
            (&["*;q=0.5, gzip"], Some("gzip")),
            (&["x-gzip"], None),
            (&["compress, gzip"], Some("gzip")),
            (&["GZIP"], Some("gzip")),
            (&[" gzip , deflate "], Some("gzip")),
            (&["gzip;q=0.5, br;q=0.9"], Some("br")),
            (&["gzip;q=0.9, br;q=0.5"], Some("gzip")),
            (&["br;q=0, gzip"], Some("gzip")),
            (&["gzip;q=0"], None),
            (&["identity, gzip"], Some("gzip")),
            (&["identity;q=1, gzip;q=0.5"], None),
            (&["br;q=0.001"], Some("br")),
            (&["br;q=1.0, gzip;q=1.0"], Some("br")),
            (&["deflate;q=0.9, gzip;q=0.8"], Some("deflate")),
            (&["deflate, br;q=0.9"], Some("deflate")),
            (&["deflate;q=0.5, gzip;q=0.5, br;q=0.5"], Some("br")),
            (&["gzip;q=0.5, deflate;q=0.5"], Some("gzip")),
            (&["gzip;Q=0.5, br;q=0.4"], Some("gzip")),
            (&["gzip ;q=0.5"], Some("gzip")),
            (&["gzip;q=bad"], None),
            (&["gzip;q=1.5"], None),
            (&["gzip;q=0.1234"], None),
            (&["gzip;level=1"], None),
            (&["gzip", "br"], Some("br")),
        ];
        for (values, expected) in cases {
            assert_eq!(chosen(values), *expected, "Accept-Encoding: {values:?}");
        }
    }

    #[test]
    fn every_coding_decodes_to_the_body() {
        let body = br#"{"hits":[{"id":1,"title":"river"}],"query":"river"}"#.repeat(50);
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
            let encoded = encode(coding, &body).expect("encode");
            assert!(
                encoded.len() < body.len() / 4,
                "{coding:?}: {}",
                encoded.len()
            );
            let mut decoded = Vec::new();
            match coding {
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(encoded.as_slice()).read_to_end(&mut decoded)
                }
                Coding::Deflate => {
                    flate2::read::ZlibDecoder::new(encoded.as_slice()).read_to_end(&mut decoded)
                }
                Coding::Brotli => {
                    brotli::Decompressor::new(encoded.as_slice(), 4096).read_to_end(&mut decoded)
                }
            }
            .expect("decode");
            assert_eq!(decoded, body, "{coding:?}");
        }
    }
}
