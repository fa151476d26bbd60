//! Miroir's configuration: the TOML schema users write, its validation, and the immutable
//! [`Config`] snapshot the proxy runs on.
//!
//! The proxy never sees raw TOML. [`load`] reads a file, applies secrets from the environment,
//! resolves node addresses and validates everything, reporting every problem with its key.

mod address;
mod config;
mod error;
mod raw;
mod read;
mod reload;
mod secret;
mod validate;

use std::path::Path;

pub use address::{resolve_node, system_resolve, Resolve};
pub use config::{
    Admin, AntiEntropy, Config, Health, Log, LogFormat, LogLevel, Metrics, Node, NodeAddress,
    Scatter, Scheme, Server, SettingsSync, TaskStore, Tls, Topology, UnavailableShardPolicy,
    Upstream, Webhooks, WriteQuorum,
};
pub use error::{ConfigError, Problem};
pub use reload::restart_required;
pub use secret::Secret;

use read::deserialize;
use validate::{validate, Inputs};

/// Overrides `master_key`.
pub const ENV_MASTER_KEY: &str = "MIROIR_MASTER_KEY";
/// Overrides `node_master_key`.
pub const ENV_NODE_MASTER_KEY: &str = "MIROIR_NODE_MASTER_KEY";
/// Overrides `admin.api_key`.
pub const ENV_ADMIN_API_KEY: &str = "MIROIR_ADMIN_API_KEY";

/// Reads and validates the file at `path`, with secrets from the process environment and host
/// names resolved by the system resolver.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: source.clone(),
        problems: vec![Problem::new("file", format!("cannot read: {e}"))],
    })?;
    parse(&text, &source, &|name| std::env::var(name).ok())
}

/// Validates TOML `text`; `source` names it in errors and `env` looks up the secret overrides.
pub fn parse(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_with(text, source, env, &system_resolve)
}

/// [`parse`] with a chosen resolver for node and listen host names.
pub fn parse_with(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    resolve: Resolve<'_>,
) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError {
        source: source.to_owned(),
        problems,
    };
    let raw = deserialize(text).map_err(|p| fail(vec![p]))?;
    validate(raw, &Inputs { env, resolve }).map_err(fail)
}
