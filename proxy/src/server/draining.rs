//! The proxy app with a pause between the two halves of Pingora's shutdown. When a graceful
//! upgrade or stop begins, Pingora stops accepting and, at once, drops every connection that
//! is waiting for a request: a connection accepted a moment before, whose client has not yet
//! written its request, is closed unanswered (seen as a write failing with "connection closed
//! before message completed" during an upgrade under load). Waiting a little before that
//! drop lets such requests arrive and be served; the process is not accepting anything new
//! meanwhile, so the wait only delays its exit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;

/// How long connections accepted before the shutdown have to send their request.
const ACCEPTED_GRACE: Duration = Duration::from_secs(1);

pub struct Draining<A>(pub Arc<A>);

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Draining<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.0.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(ACCEPTED_GRACE).await;
        self.0.cleanup().await;
    }
}
