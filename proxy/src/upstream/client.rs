//! Sending one request to one node over a pooled keep-alive connection (`pool`, `wire`),
//! and reading its whole answer. Connections are made by Pingora's transport connector (TCP
//! or TLS).

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora_core::connectors::TransportConnector;
use pingora_core::protocols::Stream;
use pingora_timeout::fast_timeout::fast_timeout;

use super::batch;
use super::budget::{AnswerBudget, Caller};
use super::peer::NodePeer;
use super::pool::Pool;
use super::wire::{self, ReadError};
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
    /// The node's headers, for a relayed request only (see `NodeRequest::relay`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Bytes,
}

pub struct NodeClient {
    /// Makes new connections only; its own pool is not used (see `pool`).
    connector: TransportConnector,
    pool: Pool,
}

impl NodeClient {
    /// `pool_size`: idle connections kept per node and worker thread.
    pub fn new(pool_size: usize) -> Self {
        Self {
            connector: TransportConnector::new(None),
            pool: Pool::new(pool_size),
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
        // Pingora's coarse timer (10 ms steps): a tokio timer wakes the worker's own reactor
        // through its eventfd each time one is armed earlier than the next due timer.
        let result = fast_timeout(timeout, Box::pin(self.exchange(node, req)))
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
        let encoded = wire::encode(req, &node.host_header).map_err(UpstreamError::Protocol)?;
        let mut retries = 0;
        loop {
            match self.exchange_once(node, req, &encoded).await {
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
        encoded: &wire::Encoded<'_>,
    ) -> Result<NodeResponse, Failure> {
        let (mut stream, reused) = match self.pool.take(node.pool_key, node.idle_timeout) {
            Some(s) => (s, true),
            None => {
                // Boxed: a connection attempt (a TLS handshake's state) is kilobytes, and every
                // exchange would otherwise carry, allocate and copy that room.
                let s = Box::pin(self.connector.new_stream(&node.peer))
                    .await
                    .map_err(|e| Failure {
                        error: UpstreamError::Connect(e.to_string()),
                        reused: false,
                        sent: false,
                        answered: false,
                    })?;
                (s, false)
            }
        };
        // A node may answer before reading the body (Meilisearch refuses a bad key at once and
        // closes the connection): a failed write still leaves an answer to read.
        let write_error = write(&mut stream, encoded, !node.peer.is_tls()).await.err();
        // Until every byte of the request was written, the node cannot have acted on it.
        let sent = write_error.is_none();
        let answer = wire::read(
            &mut stream,
            req.method == "HEAD",
            req.relay.is_some(),
            req.budget,
        )
        .await
        .map_err(|f| Failure {
            error: match (f.error, &write_error) {
                (ReadError::OverBudget, _) => UpstreamError::AnswerTooLarge,
                (_, Some(w)) if !f.answered => UpstreamError::Protocol(w.to_string()),
                (ReadError::Io(e), _) => UpstreamError::Protocol(e.to_string()),
                (ReadError::Protocol(p), _) => UpstreamError::Protocol(p),
            },
            reused,
            sent,
            answered: f.answered,
        })?;
        // A connection whose request was cut short, or whose answer did not end cleanly, is
        // not reused.
        if sent && answer.reusable {
            self.pool.put(node.pool_key, stream, node.idle_timeout);
        }
        Ok(NodeResponse {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }
}

/// Writes a request. On a plain TCP connection, a request in one buffer leaves with the client
/// request's other node requests (`batch`); what did not go out is written here.
async fn write(stream: &mut Stream, encoded: &wire::Encoded<'_>, plain: bool) -> io::Result<()> {
    if let Some(whole) = encoded.whole().filter(|_| plain) {
        match batch::send(stream, whole).await {
            None => {}
            Some(Ok(n)) if n == whole.len() => return Ok(()),
            Some(Ok(n)) => return wire::write_rest(stream, &whole[n..]).await,
            // Nothing went out.
            Some(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Some(Err(e)) => return Err(e),
        }
    }
    wire::write(stream, encoded).await
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
    /// A relayed request: the client's headers go on to the node (but those Miroir sets) and
    /// the node's headers come back in the answer.
    pub relay: Option<&'a http::HeaderMap>,
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
            relay: None,
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
            relay: None,
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
