//! A client request as Miroir handles it itself: method, path, the credential to present to
//! nodes, and the body once read.

use bytes::Bytes;

use crate::upstream::{AnswerBudget, Caller, NodeRequest};

#[derive(Clone)]
pub struct Incoming {
    pub method: String,
    /// Path and query string.
    pub path: String,
    /// The bearer token to present to nodes.
    pub auth: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub request_id: String,
    /// The `Idempotency-Key` request header.
    pub idempotency_key: Option<String>,
    /// When Miroir received the request (RFC 3339): a task's `enqueuedAt`, which must not be
    /// later than its nodes' `startedAt`.
    pub received_at: String,
    /// The route's name in the route table.
    pub route: &'static str,
    /// The index the route names, if any.
    pub index_uid: Option<String>,
    /// What the request may still read from nodes (`server.max_answer_bytes`).
    pub budget: AnswerBudget,
}

impl Incoming {
    /// The request as it is, to one node, with `body` as its body.
    pub fn node_request<'a>(&'a self, body: &'a [Bytes]) -> NodeRequest<'a> {
        NodeRequest {
            method: &self.method,
            path: &self.path,
            auth: self.auth.as_deref(),
            content_type: self.content_type.as_deref(),
            body,
            request_id: Some(&self.request_id),
            budget: Some(&self.budget),
            relay: None,
        }
    }

    /// Node requests on the client's behalf: its credential, request id and answer budget.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            auth: self.auth.as_deref(),
            request_id: &self.request_id,
            budget: &self.budget,
        }
    }

    /// The query string, without its `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.path.split_once('?').map_or("", |(_, q)| q)
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// Whether the client declared a JSON body, as Meilisearch requires.
    pub fn is_json(&self) -> bool {
        self.content_type.as_deref().is_some_and(|c| {
            c.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
    }
}
