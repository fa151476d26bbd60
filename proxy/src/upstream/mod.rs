//! The wire to one node: a pooled keep-alive HTTP/1.1 connection (made by Pingora's
//! connector), one request written and its whole answer read. No choice of node, no retry on
//! another one: that is `node_io`'s job. Pass-through traffic does not come here; it rides
//! Pingora's proxy pipeline.

pub(crate) mod batch;
mod budget;
mod client;
mod peer;
mod pool;
mod wire;

#[cfg(test)]
mod test_support;

pub use budget::{AnswerBudget, Caller};
pub use client::{NodeClient, NodeRequest, NodeResponse, NodeResult, UpstreamError};
pub use peer::NodePeer;
