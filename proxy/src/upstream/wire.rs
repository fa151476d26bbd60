//! HTTP/1.1 on one connection to a node: a request encoded in one piece, and an answer read
//! with its framing (length, chunked, or until the node closes).
//!
//! Head and body leave in one write: two writes cost a node two wakeups and Miroir two
//! sends, which measured a quarter of Miroir's CPU per search.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::budget::AnswerBudget;
use super::client::NodeRequest;

/// A body up to this size is copied behind the head; a larger one is written as it is.
const COALESCE: usize = 64 * 1024;
/// An answer head longer than this is refused.
const MAX_HEAD: usize = 64 * 1024;
/// Headers read from an answer head.
const MAX_HEADERS: usize = 64;
/// The first read's room: a search answer of 20 ordinary documents.
const FIRST_READ: usize = 16 * 1024;

/// A request ready to write: its head, with the body when it is small.
pub(super) struct Encoded<'a> {
    head: Vec<u8>,
    /// Body chunks not copied into `head`.
    rest: &'a [Bytes],
}

/// Encodes `req` for `host`. Refuses a path or header value that would split the request
/// (control bytes, spaces in the path): they come from client input further up.
pub(super) fn encode<'a>(req: &NodeRequest<'a>, host: &str) -> Result<Encoded<'a>, String> {
    let body_len: usize = req.body.iter().map(Bytes::len).sum();
    let inline = body_len <= COALESCE;
    let mut head = Vec::with_capacity(256 + if inline { body_len } else { 0 });
    if !req.path.bytes().all(|b| b.is_ascii_graphic()) || req.method.is_empty() {
        return Err(format!("invalid request target for {}", req.method));
    }
    head.extend_from_slice(req.method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(req.path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut header = |name: &str, parts: &[&str]| -> Result<(), String> {
        if parts
            .iter()
            .any(|p| p.bytes().any(|b| b.is_ascii_control()))
        {
            return Err(format!("invalid {name} header value"));
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        for p in parts {
            head.extend_from_slice(p.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        Ok(())
    };
    header("Host", &[host])?;
    if let Some(auth) = req.auth {
        header("Authorization", &["Bearer ", auth])?;
    }
    if let Some(ct) = req.content_type {
        header("Content-Type", &[ct])?;
    }
    if let Some(id) = req.request_id {
        header("X-Request-Id", &[id])?;
    }
    if body_len > 0 || matches!(req.method, "POST" | "PUT" | "PATCH") {
        let mut n = itoa::Buffer::new();
        header("Content-Length", &[n.format(body_len)])?;
    }
    if let Some(relayed) = req.relay {
        // Parsed from the client's request: no value holds a line break.
        for (name, value) in relayed {
            if relays_request_header(name, req.auth.is_some()) {
                head.extend_from_slice(name.as_str().as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value.as_bytes());
                head.extend_from_slice(b"\r\n");
            }
        }
    }
    head.extend_from_slice(b"\r\n");
    if inline {
        for chunk in req.body {
            head.extend_from_slice(chunk);
        }
    }
    Ok(Encoded {
        head,
        rest: if inline { &[] } else { req.body },
    })
}

/// Headers that frame a message or concern one connection only: never relayed either way
/// (each side of Miroir frames and keeps its own connection).
const HOP_BY_HOP: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Whether a client's request header goes on to the node: not the ones Miroir sets itself
/// (`Host`, the request id, and `Authorization` when it translates the key), nor an
/// `Expect` (the body, if any, is already read).
fn relays_request_header(name: &HeaderName, auth_replaced: bool) -> bool {
    let name = name.as_str();
    match name {
        "host" | "x-request-id" | "expect" => false,
        "authorization" => !auth_replaced,
        _ => !HOP_BY_HOP.contains(&name),
    }
}

/// Whether a node's answer header goes back to the client: not the date (set when the answer
/// leaves) nor a request id (Miroir's own goes back).
fn relays_answer_header(name: &str) -> bool {
    !HOP_BY_HOP
        .iter()
        .chain(&["date", "x-request-id"])
        .any(|h| name.eq_ignore_ascii_case(h))
}

impl Encoded<'_> {
    /// The whole request, when it is one buffer.
    pub(super) fn whole(&self) -> Option<&[u8]> {
        self.rest.is_empty().then_some(&self.head[..])
    }
}

/// Writes the end of a request whose first bytes went out (see `batch`) and flushes it.
pub(super) async fn write_rest<S: AsyncWrite + Unpin>(io: &mut S, rest: &[u8]) -> io::Result<()> {
    io.write_all(rest).await?;
    io.flush().await
}

/// Writes the whole request and flushes it.
pub(super) async fn write<S: AsyncWrite + Unpin>(io: &mut S, req: &Encoded<'_>) -> io::Result<()> {
    io.write_all(&req.head).await?;
    for chunk in req.rest {
        io.write_all(chunk).await?;
    }
    io.flush().await
}

/// A node's whole answer.
pub(super) struct Answer {
    pub status: u16,
    /// The node's headers, when asked for: all but the framing and the connection's own.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The connection may carry another request.
    pub reusable: bool,
}

/// Why an answer could not be read.
pub(super) enum ReadError {
    Io(io::Error),
    Protocol(String),
    /// The body would overdraw the request's answer budget.
    OverBudget,
}

/// A failed read, and whether the node had started answering (its head was read).
pub(super) struct ReadFailure {
    pub error: ReadError,
    pub answered: bool,
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// Reads one answer. `head_request`: the request was a `HEAD`, so no body follows;
/// `keep_headers`: the answer's headers are kept (a relayed answer).
pub(super) async fn read<S: AsyncRead + Unpin>(
    io: &mut S,
    head_request: bool,
    keep_headers: bool,
    budget: Option<&AnswerBudget>,
) -> Result<Answer, ReadFailure> {
    let fail = |answered| move |error| ReadFailure { error, answered };
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    let (status, framing, keep_alive, headers) = loop {
        match parse_head(&buf, head_request, keep_headers).map_err(fail(false))? {
            Some(Head::Interim(len)) => buf.advance(len),
            Some(Head::Final {
                len,
                status,
                framing,
                keep_alive,
                headers,
            }) => {
                buf.advance(len);
                break (status, framing, keep_alive, headers);
            }
            None if buf.len() >= MAX_HEAD => {
                return Err(fail(false)(ReadError::Protocol(
                    "answer head too long".into(),
                )))
            }
            None => {
                if fill(io, &mut buf, FIRST_READ).await.map_err(fail(false))? == 0 {
                    return Err(fail(false)(ReadError::Io(eof("before an answer"))));
                }
            }
        }
    };
    let body = match framing {
        Framing::Length(len) => {
            take(budget, len).map_err(fail(true))?;
            while buf.len() < len {
                let missing = len - buf.len();
                if fill(io, &mut buf, missing).await.map_err(fail(true))? == 0 {
                    return Err(fail(true)(ReadError::Io(eof("inside an answer"))));
                }
            }
            buf.split_to(len).freeze()
        }
        Framing::Chunked => read_chunked(io, &mut buf, budget)
            .await
            .map_err(fail(true))?,
        Framing::Close => {
            take(budget, buf.len()).map_err(fail(true))?;
            loop {
                let before = buf.len();
                if fill(io, &mut buf, FIRST_READ).await.map_err(fail(true))? == 0 {
                    break;
                }
                take(budget, buf.len() - before).map_err(fail(true))?;
            }
            buf.split().freeze()
        }
    };
    Ok(Answer {
        status,
        headers,
        body,
        // Bytes past the answer would be read as the next request's answer.
        reusable: keep_alive && framing != Framing::Close && buf.is_empty(),
    })
}

fn eof(when: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed {when}"),
    )
}

fn take(budget: Option<&AnswerBudget>, bytes: usize) -> Result<(), ReadError> {
    match budget {
        Some(b) if !b.take(bytes as u64) => Err(ReadError::OverBudget),
        _ => Ok(()),
    }
}

/// Reads once into `buf`, with room for at least `want` more bytes.
async fn fill<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    want: usize,
) -> Result<usize, ReadError> {
    buf.reserve(want.max(1024));
    io.read_buf(buf).await.map_err(ReadError::Io)
}

enum Head {
    /// A `1xx` answer before the real one, `len` bytes long.
    Interim(usize),
    Final {
        len: usize,
        status: u16,
        framing: Framing,
        keep_alive: bool,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

/// The answer head at the start of `buf`, or `None` when it is not all there yet; its
/// headers too when `keep_headers`.
fn parse_head(
    buf: &[u8],
    head_request: bool,
    keep_headers: bool,
) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ReadError::Protocol(format!("bad answer head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some(Head::Interim(len)));
    }
    let mut length = None;
    let mut chunked = false;
    let mut close = resp.version != Some(1);
    let mut kept = Vec::new();
    for h in resp.headers.iter() {
        if keep_headers && relays_answer_header(h.name) {
            let name = HeaderName::from_bytes(h.name.as_bytes());
            let value = HeaderValue::from_bytes(h.value);
            match (name, value) {
                (Ok(name), Ok(value)) => kept.push((name, value)),
                _ => return Err(ReadError::Protocol(format!("bad header {}", h.name))),
            }
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| ReadError::Protocol("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(ReadError::Protocol("conflicting Content-Length".into()));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = contains_token(h.value, b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = contains_token(h.value, b"close")
                || (close && !contains_token(h.value, b"keep-alive"));
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else {
        length.map_or(Framing::Close, Framing::Length)
    };
    Ok(Some(Head::Final {
        len,
        status,
        framing,
        keep_alive: !close,
        headers: kept,
    }))
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A chunked body, from what `buf` holds on. The chunks are copied together; `buf` keeps
/// whatever follows the body.
async fn read_chunked<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    budget: Option<&AnswerBudget>,
) -> Result<Bytes, ReadError> {
    let mut body = BytesMut::new();
    loop {
        let (size_len, size) = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((n, size))) => break (n, size),
                Ok(httparse::Status::Partial) => more(io, buf, 64).await?,
                Err(_) => return Err(ReadError::Protocol("bad chunk size".into())),
            }
        };
        let size =
            usize::try_from(size).map_err(|_| ReadError::Protocol("chunk too large".into()))?;
        buf.advance(size_len);
        if size == 0 {
            break;
        }
        take(budget, size)?;
        while buf.len() < size + 2 {
            let missing = size + 2 - buf.len();
            more(io, buf, missing).await?;
        }
        body.extend_from_slice(&buf[..size]);
        if &buf[size..size + 2] != b"\r\n" {
            return Err(ReadError::Protocol("chunk not ended by CRLF".into()));
        }
        buf.advance(size + 2);
    }
    // Trailers, if any, end with an empty line.
    loop {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            return Ok(body.freeze());
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.advance(end + 4);
            return Ok(body.freeze());
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Protocol("trailers too long".into()));
        }
        more(io, buf, 64).await?;
    }
}

async fn more<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    want: usize,
) -> Result<(), ReadError> {
    match fill(io, buf, want).await? {
        0 => Err(ReadError::Io(eof("inside a chunked answer"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(wire: &[u8], head_request: bool) -> Result<Answer, String> {
        // Fed in 7-byte pieces: every framing must cope with answers split anywhere.
        read(&mut Pieces(wire.to_vec()), head_request, true, None)
            .await
            .map_err(|f| match f.error {
                ReadError::Io(e) => e.to_string(),
                ReadError::Protocol(p) => p,
                ReadError::OverBudget => "over budget".into(),
            })
    }

    struct Pieces(Vec<u8>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            out: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let n = self.0.len().min(out.remaining()).min(7);
            out.put_slice(&self.0[..n]);
            self.0.drain(..n);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn answers_are_read_by_their_framing() {
        let a = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (a.status, &a.body[..], a.reusable),
            (200, &b"hello"[..], true)
        );

        let chunked = b"HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n10;x=y\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
        let a = answer(chunked, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.status, &a.body[..]), (202, &b"abc0123456789abcdef"[..]));
        assert!(a.reusable);

        let a = answer(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((&a.body[..], a.reusable), (&b"until the end"[..], false));

        let a = answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.status, a.body.len(), a.reusable), (204, 0, true));

        let a = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.status, a.body.len()), (200, 0));
    }

    #[tokio::test]
    async fn a_relayed_request_carries_the_clients_headers_and_keeps_the_nodes() {
        let mut client = http::HeaderMap::new();
        for (name, value) in [
            ("host", "miroir:7700"),
            ("authorization", "Bearer client"),
            ("origin", "http://shop.example"),
            ("connection", "keep-alive"),
            ("accept-encoding", "gzip"),
            ("x-request-id", "theirs"),
        ] {
            client.insert(name, HeaderValue::from_static(value));
        }
        let relayed = |auth| NodeRequest {
            auth,
            relay: Some(&client),
            ..NodeRequest::get("/version", None).for_request("r1")
        };
        let head =
            |req| String::from_utf8_lossy(&encode(&req, "n1:7700").unwrap().head).into_owned();
        assert_eq!(
            head(relayed(None)),
            "GET /version HTTP/1.1\r\nHost: n1:7700\r\nX-Request-Id: r1\r\nauthorization: Bearer client\r\norigin: http://shop.example\r\naccept-encoding: gzip\r\n\r\n"
        );
        // A translated key replaces the client's.
        assert_eq!(
            head(relayed(Some("node"))),
            "GET /version HTTP/1.1\r\nHost: n1:7700\r\nAuthorization: Bearer node\r\nX-Request-Id: r1\r\norigin: http://shop.example\r\naccept-encoding: gzip\r\n\r\n"
        );

        let a = answer(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nvary: Origin\r\nvary: accept-encoding\r\ncontent-encoding: gzip\r\ndate: x\r\nconnection: keep-alive\r\n\r\nok",
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let kept: Vec<_> = a
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect();
        assert_eq!(
            kept,
            [
                "vary: Origin",
                "vary: accept-encoding",
                "content-encoding: gzip"
            ]
        );
    }

    #[tokio::test]
    async fn broken_answers_are_errors_not_short_bodies() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200",
            b"",
        ] {
            assert!(
                answer(wire, false).await.is_err(),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn requests_go_out_in_one_piece_and_refuse_split_bytes() {
        let body = [Bytes::from_static(b"{\"q\":1}")];
        let req =
            NodeRequest::json("POST", "/indexes/m/search", Some("k"), &body).for_request("r1");
        let enc = encode(&req, "n1:7700").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&enc.head),
            "POST /indexes/m/search HTTP/1.1\r\nHost: n1:7700\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nX-Request-Id: r1\r\nContent-Length: 7\r\n\r\n{\"q\":1}"
        );
        assert!(enc.rest.is_empty());

        let bad = NodeRequest::get("/a b", None);
        assert!(encode(&bad, "h").is_err());
        let bad = NodeRequest::get("/ok", Some("k\r\nX-Evil: 1"));
        assert!(encode(&bad, "h").is_err());
    }
}
