//! Sending one request to one node over Pingora's pooled keep-alive connector, and reading
//! its whole answer.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora_core::connectors::http::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_http::RequestHeader;

use super::budget::{AnswerBudget, Caller};
use super::peer::NodePeer;
use crate::telemetry::metrics;

/// Why a node gave no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    Connect(String),
    Timeout,
    Protocol(String),
    /// The whole request went out but the connection closed before an answer: the node may
    /// have applied it. Never resent blindly (see `node_io::once`).
    Unanswered(String),
    /// The answer would overdraw the client request's answer budget: the request's fault,
    /// not the node's.
    AnswerTooLarge,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect failed: {e}"),
            UpstreamError::Timeout => write!(f, "timed out"),
            UpstreamError::Protocol(e) => write!(f, "bad response: {e}"),
            UpstreamError::Unanswered(e) => {
                write!(f, "connection closed after the request was sent: {e}")
            }
            UpstreamError::AnswerTooLarge => write!(f, "answer over the request's budget"),
        }
    }
}

/// A node's answer, or why there was none.
pub type NodeResult = Result<NodeResponse, UpstreamError>;

/// A node's complete answer.
#[derive(Debug)]
pub struct NodeResponse {
    pub status: u16,
    pub body: Bytes,
}

pub struct NodeClient {
    connector: Connector,
}

impl NodeClient {
    pub fn new(pool_size: usize) -> Self {
        let mut options = ConnectorOptions::new(pool_size);
        options.keepalive_pool_size = pool_size;
        Self {
            connector: Connector::new(Some(options)),
        }
    }

    /// Sends one request and reads the whole answer, within `timeout` overall.
    pub async fn send(
        &self,
        node: &NodePeer,
        req: &NodeRequest<'_>,
        timeout: Duration,
    ) -> Result<NodeResponse, UpstreamError> {
        let started = Instant::now();
        // Boxed: the exchange's state is large, and every future holding this one (the scatter's
        // hedges, the timeout) would otherwise be moved and copied with it on each request.
        let result = tokio::time::timeout(timeout, Box::pin(self.exchange(node, req)))
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
        let status = result.as_ref().map_or(0, |r| r.status);
        metrics::upstream_request(node.id.as_str(), status, started.elapsed());
        result
    }

    /// A connection taken from the pool may have been closed by the node while idle; it then
    /// fails before any answer, where a new connection would have worked: try again, each
    /// time on another connection. Once the whole request went out, only a read is tried
    /// again: the node may have applied a write whose answer was lost, and a second copy
    /// would run twice (an edit by function) or fail (an index creation).
    async fn exchange(
        &self,
        node: &NodePeer,
        req: &NodeRequest<'_>,
    ) -> Result<NodeResponse, UpstreamError> {
        const STALE_RETRIES: u32 = 2;
        let mut retries = 0;
        loop {
            match self.exchange_once(node, req).await {
                Ok(resp) => return Ok(resp),
                Err(f) if f.sent && !f.answered && !req.repeatable() => {
                    return Err(UpstreamError::Unanswered(f.error.to_string()))
                }
                Err(f) if f.reused && !f.answered && retries < STALE_RETRIES => retries += 1,
                Err(f) => return Err(f.error),
            }
        }
    }

    async fn exchange_once(
        &self,
        node: &NodePeer,
        req: &NodeRequest<'_>,
    ) -> Result<NodeResponse, Failure> {
        let peer = &node.peer;
        let (mut session, reused) =
            self.connector
                .get_http_session(peer)
                .await
                .map_err(|e| Failure {
                    error: UpstreamError::Connect(e.to_string()),
                    reused: false,
                    sent: false,
                    answered: false,
                })?;
        let fail = |sent: bool, answered: bool| {
            move |e: Box<pingora_core::Error>| Failure {
                error: UpstreamError::Protocol(e.to_string()),
                reused,
                sent,
                answered,
            }
        };
        let mut head = RequestHeader::build(req.method, req.path.as_bytes(), None)
            .map_err(fail(false, false))?;
        head.insert_header("Host", node.host_header.as_str())
            .map_err(fail(false, false))?;
        if let Some(auth) = req.auth {
            head.insert_header("Authorization", format!("Bearer {auth}"))
                .map_err(fail(false, false))?;
        }
        if let Some(ct) = req.content_type {
            head.insert_header("Content-Type", ct)
                .map_err(fail(false, false))?;
        }
        if let Some(id) = req.request_id {
            head.insert_header("X-Request-Id", id)
                .map_err(fail(false, false))?;
        }
        // Pingora frames a client body only by an explicit length.
        let body_len: usize = req.body.iter().map(Bytes::len).sum();
        if body_len > 0 || matches!(req.method, "POST" | "PUT" | "PATCH") {
            head.insert_header("Content-Length", body_len.to_string())
                .map_err(fail(false, false))?;
        }
        session
            .write_request_header(Box::new(head))
            .await
            .map_err(fail(false, false))?;
        // A node may answer before reading the body (Meilisearch refuses a bad key at once and
        // closes the connection): a failed body write still leaves an answer to read.
        let mut body_error = None;
        for chunk in req.body {
            if let Err(e) = session.write_request_body(chunk.clone(), false).await {
                body_error = Some(e);
                break;
            }
        }
        if body_error.is_none() {
            if let Err(e) = session.finish_request_body().await {
                body_error = Some(e);
            }
        }
        // Until every byte of the request was written, the node cannot have acted on it.
        let sent = body_error.is_none();
        if let Err(e) = session.read_response_header().await {
            return Err(fail(sent, false)(body_error.unwrap_or(e)));
        }
        let status = session
            .response_header()
            .map(|h| h.status.as_u16())
            .ok_or_else(|| Failure {
                error: UpstreamError::Protocol("no response header".into()),
                reused,
                sent,
                answered: false,
            })?;
        // An answer read in one chunk is kept as it came; only a second chunk starts a copy.
        let mut body = AnswerBody::default();
        while let Some(chunk) = session
            .read_response_body()
            .await
            .map_err(fail(sent, true))?
        {
            if req.budget.is_some_and(|b| !b.take(chunk.len() as u64)) {
                // Read no further; the connection is left unfinished, so it is not reused.
                return Err(Failure {
                    error: UpstreamError::AnswerTooLarge,
                    reused,
                    sent,
                    answered: true,
                });
            }
            body.push(chunk);
        }
        // A connection whose request was cut short is not reused.
        if body_error.is_none() {
            self.connector
                .release_http_session(session, peer, Some(node.idle_timeout))
                .await;
        }
        Ok(NodeResponse {
            status,
            body: body.into_bytes(),
        })
    }
}

/// A node answer's body as it is read: the first chunk as is, later ones appended to a copy.
#[derive(Default)]
enum AnswerBody {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl AnswerBody {
    fn push(&mut self, chunk: Bytes) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::One(chunk),
            Self::One(first) => {
                let mut buf = BytesMut::with_capacity(2 * (first.len() + chunk.len()));
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&chunk);
                Self::Many(buf)
            }
            Self::Many(mut buf) => {
                buf.extend_from_slice(&chunk);
                Self::Many(buf)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(b) => b,
            Self::Many(buf) => buf.freeze(),
        }
    }
}

/// Why one attempt failed, and whether trying again on another connection may help.
struct Failure {
    error: UpstreamError,
    /// The connection came from the pool.
    reused: bool,
    /// Every byte of the request was written: the node may have acted on it.
    sent: bool,
    /// The node had started answering.
    answered: bool,
}

/// One request Miroir sends to a node.
#[derive(Debug, Clone, Copy)]
pub struct NodeRequest<'a> {
    pub method: &'a str,
    /// Path and query string.
    pub path: &'a str,
    /// Bearer token.
    pub auth: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// Body chunks, written in order.
    pub body: &'a [Bytes],
    pub request_id: Option<&'a str>,
    /// The client request's answer budget, when the answer is read on its behalf.
    pub budget: Option<&'a AnswerBudget>,
}

impl<'a> NodeRequest<'a> {
    pub fn get(path: &'a str, auth: Option<&'a str>) -> Self {
        Self {
            method: "GET",
            path,
            auth,
            content_type: None,
            body: &[],
            request_id: None,
            budget: None,
        }
    }

    /// A request with a JSON body.
    pub fn json(method: &'a str, path: &'a str, auth: Option<&'a str>, body: &'a [Bytes]) -> Self {
        Self {
            method,
            path,
            auth,
            content_type: Some("application/json"),
            body,
            request_id: None,
            budget: None,
        }
    }

    /// The same request, sent on behalf of the client request `id`.
    pub fn for_request(self, id: &'a str) -> Self {
        Self {
            request_id: Some(id),
            ..self
        }
    }

    /// The same request, on behalf of `caller`: its credential, request id and budget.
    pub fn on_behalf(self, caller: Caller<'a>) -> Self {
        Self {
            auth: caller.auth,
            request_id: Some(caller.request_id),
            budget: Some(caller.budget),
            ..self
        }
    }
}

/// `POST` routes on which Meilisearch only reads.
const READ_POSTS: [&str; 6] = [
    "/search",
    "/multi-search",
    "/facet-search",
    "/similar",
    "/documents/fetch",
    "/fields",
];

impl NodeRequest<'_> {
    /// Sending the request twice does what sending it once does: a read. Every other request
    /// may enqueue a task, so it is not sent again once it may have reached the node.
    pub fn repeatable(&self) -> bool {
        let path = self.path.split('?').next().unwrap_or("");
        match self.method {
            "GET" | "HEAD" => true,
            "POST" => READ_POSTS.iter().any(|r| path.ends_with(r)),
            _ => false,
        }
    }
}

impl NodeResponse {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The node judged the request: anything but a server error. `501 Not Implemented` is a
    /// verdict too: every replica gives it again, and it says nothing about the node's health,
    /// so it is relayed rather than retried, hinted or counted as a failure.
    pub fn judged(&self) -> bool {
        self.status < 500 || self.status == 501
    }
}
