//! Test harness for Miroir's test suite: starts simulated (`meili-sim`) or real Meilisearch
//! nodes on 127.0.0.1 ephemeral ports, and offers a tiny JSON-over-HTTP client.

pub mod client;
mod node;
pub mod proxy;
mod real;
pub mod redis;
pub mod relay;
pub mod tempdir;

pub use client::{wait_task, wait_task_timeout, Client};
pub use node::{start_node, start_node_with, NodeKind, TestNode};
pub use real::meili_bin;

/// Evaluates to the real Meilisearch binary path, or prints why the test is skipped and
/// returns from the calling test when there is none (`MEILI_BIN` unset and no
/// `../shared/meilisearch/meilisearch` beside the repository).
#[macro_export]
macro_rules! require_meili_bin {
    () => {
        match $crate::meili_bin() {
            Some(path) => path,
            None => {
                eprintln!("skipped: no Meilisearch binary (set MEILI_BIN, or put one at ../shared/meilisearch/meilisearch) to run this real-node test");
                return;
            }
        }
    };
}
