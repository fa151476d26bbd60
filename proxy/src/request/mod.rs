//! A client request as the request paths see it (`Incoming`), the answer they give
//! (`Reply`), the body limit Meilisearch words its own way, and requests sharing an
//! `Idempotency-Key` taken one at a time (`InFlight`). `server` builds the first
//! from a Pingora session and writes the second.

mod in_flight;
mod incoming;
mod limits;
mod payload;
mod reply;

pub use in_flight::InFlight;
pub use incoming::Incoming;
pub use limits::payload_too_large;
pub use payload::{found, json_content_type, json_object};
pub use reply::{Reply, DEGRADED, STREAM_FROM};
