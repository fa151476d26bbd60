//! Who may do what: the credential a request carries (`credentials`) and, on the routes
//! Miroir answers itself, what a Meilisearch key allows (`rights`), judged as a node would.

pub mod credentials;
pub mod rights;
pub mod tenant;

pub use credentials::{bearer, constant_time_eq, node_credential, replaced_credential};
pub use rights::{Access, KeyCache};
