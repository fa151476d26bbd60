//! What Miroir keeps about one request between Pingora's phases.

use std::sync::Arc;
use std::time::Instant;

use miroir_filters::error::MiroirError;
use miroir_filters::routes::{RouteClass, RouteSpec};

use super::handover::Busy;
use crate::cluster::aliases::AliasTable;
use crate::cluster::Runtime;

pub struct RequestCtx {
    pub started: Instant,
    pub request_id: String,
    /// The configuration snapshot the request runs on, start to end.
    pub runtime: Option<Arc<Runtime>>,
    pub route: Option<&'static RouteSpec>,
    pub index_uid: Option<String>,
    /// The alias table the request resolved its names with, once (see `aliases`).
    pub aliases: Option<Arc<AliasTable>>,
    /// A search on an alias of several indexes: those indexes.
    pub alias_targets: Option<Arc<[String]>>,
    /// What the request's alias forbids, answered once its key is checked.
    pub alias_refused: Option<MiroirError>,
    /// Nodes tried for a pass-through request, by runtime index; the last is the current one.
    pub tried: Vec<usize>,
    /// Body bytes relayed so far (a chunked body has no declared length to check up front).
    pub body_bytes: u64,
    pub status: u16,
    /// The process does not exit while the request runs (see `handover`).
    _busy: Busy,
}

impl RequestCtx {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            request_id: String::new(),
            runtime: None,
            route: None,
            index_uid: None,
            aliases: None,
            alias_targets: None,
            alias_refused: None,
            tried: Vec::new(),
            body_bytes: 0,
            status: 0,
            _busy: Busy::start(),
        }
    }

    /// The route class as metrics and the access log name it.
    pub fn class_label(&self) -> &'static str {
        self.route.map_or("pass_one", |r| class_label(r.class))
    }
}

pub fn class_label(class: RouteClass) -> &'static str {
    match class {
        RouteClass::PassOne => "pass_one",
        RouteClass::Broadcast => "broadcast",
        RouteClass::ShardRouted => "shard_routed",
        RouteClass::FanOutMerge => "fan_out_merge",
        RouteClass::Miroir => "miroir",
        RouteClass::Unsupported => "unsupported",
    }
}
