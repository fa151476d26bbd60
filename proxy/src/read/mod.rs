//! The read paths: each asks one replica per shard (`node_io::scatter`) and merges the
//! answers as one node holding every document would answer (`miroir_filters::search`).
//! `context` holds the index settings a merge depends on.

pub mod alias_search;
pub mod browse;
mod context;
pub mod document;
pub mod explain;
pub mod facet_search;
pub mod fields;
pub mod indexes;
pub mod multi_search;
pub mod search;
pub mod settings;
pub mod similar;
pub mod stats;

use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

/// The client's request as it is, to one node at `path`, whose answer is the answer: for
/// bodies Miroir cannot take apart, which a node then refuses with Meilisearch's own error.
async fn relay_as_sent(shared: &Shared, rt: &Runtime, inc: &Incoming, path: &str) -> Reply {
    let body = [inc.body.clone()];
    let req = crate::upstream::NodeRequest {
        path,
        ..inc.node_request(&body)
    };
    match node_io::one(&shared.cluster, rt, &req).await {
        Ok(resp) => Reply::relay(&resp),
        Err(e) => e.into(),
    }
}
