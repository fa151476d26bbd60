//! Miroir request logic, pure and testable without a socket.
pub mod error;
pub mod hidden;
pub mod query;
pub mod routes;
pub mod routing;
pub mod search;
pub mod transfer;
pub mod write;
