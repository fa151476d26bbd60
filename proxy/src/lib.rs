//! Miroir: a sharding and high-availability proxy for Meilisearch Community Edition, on
//! Pingora. `service` is the `ProxyHttp` entry point; routing, splitting and merging live in
//! the `miroir-filters` crate, configuration in `miroir-conf`.

pub mod access;
pub mod admin;
pub mod auth;
pub mod body;
pub mod broadcast;
pub mod cli;
pub mod demo;
pub mod documents;
pub mod facet_search;
pub mod fields;
pub mod handoff;
pub mod health;
pub mod index_lifecycle;
pub mod keys;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod multi_search;
pub mod node_state;
pub mod reload;
pub mod request_id;
pub mod respond;
pub mod scatter;
pub mod search;
pub mod server;
pub mod service;
pub mod settings_sync;
pub mod shard_field;
pub mod similar;
pub mod state;
pub mod stats;
pub mod tasks;
pub mod upstream;
pub mod write;

/// The logger format a configuration asks for.
pub fn log_format(config: &miroir_conf::Config) -> logging::Format {
    match config.log.format {
        miroir_conf::LogFormat::Json => logging::Format::Json,
        miroir_conf::LogFormat::Text => logging::Format::Text,
    }
}
