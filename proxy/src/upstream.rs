//! Miroir's own requests to nodes (health checks now; fan-out later), over Pingora's pooled
//! keep-alive connector. Pass-through traffic does not come here: it rides Pingora's proxy
//! pipeline.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora_core::connectors::http::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_http::RequestHeader;

use crate::metrics;
use crate::state::NodeRuntime;

/// Why a node gave no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    Connect(String),
    Timeout,
    Protocol(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect failed: {e}"),
            UpstreamError::Timeout => write!(f, "timed out"),
            UpstreamError::Protocol(e) => write!(f, "bad response: {e}"),
        }
    }
}

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
        Self { connector: Connector::new(Some(options)) }
    }

    /// Sends one request and reads the whole answer, within `timeout` overall.
    pub async fn send(
        &self,
        node: &NodeRuntime,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<NodeResponse, UpstreamError> {
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, self.exchange(node, method, path, auth, body))
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
        let m = metrics::get();
        let status = result.as_ref().map(|r| r.status).unwrap_or(0);
        m.upstream_requests.with_label_values(&[node.id.as_ref(), &status.to_string()]).inc();
        m.upstream_duration
            .with_label_values(&[node.id.as_ref()])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn exchange(
        &self,
        node: &NodeRuntime,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<NodeResponse, UpstreamError> {
        let peer = &node.peer;
        let (mut session, _reused) = self
            .connector
            .get_http_session(peer)
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        let protocol = |e: Box<pingora_core::Error>| UpstreamError::Protocol(e.to_string());
        let mut req = RequestHeader::build(method, path.as_bytes(), None).map_err(protocol)?;
        req.insert_header("Host", node.host_header.as_str()).map_err(protocol)?;
        if let Some(auth) = auth {
            req.insert_header("Authorization", format!("Bearer {auth}")).map_err(protocol)?;
        }
        // Pingora frames a client body only by an explicit length.
        let body_len = body.as_ref().map_or(0, |b| b.len());
        if body.is_some() {
            req.insert_header("Content-Type", "application/json").map_err(protocol)?;
        }
        req.insert_header("Content-Length", body_len.to_string()).map_err(protocol)?;
        session.write_request_header(Box::new(req)).await.map_err(protocol)?;
        if let Some(body) = body {
            session.write_request_body(body, true).await.map_err(protocol)?;
        }
        session.finish_request_body().await.map_err(protocol)?;
        session.read_response_header().await.map_err(protocol)?;
        let status = session
            .response_header()
            .map(|h| h.status.as_u16())
            .ok_or_else(|| UpstreamError::Protocol("no response header".into()))?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await.map_err(protocol)? {
            buf.extend_from_slice(&chunk);
        }
        self.connector.release_http_session(session, peer, Some(node.idle_timeout)).await;
        Ok(NodeResponse { status, body: buf.freeze() })
    }
}
