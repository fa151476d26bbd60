//! A client request as the request paths see it (`Incoming`), the answer they give
//! (`Reply`), and the body limit Meilisearch words its own way. `server` builds the first
//! from a Pingora session and writes the second.

mod incoming;
mod limits;
mod reply;

pub use incoming::Incoming;
pub use limits::payload_too_large;
pub use reply::{Reply, DEGRADED, STREAM_FROM};
