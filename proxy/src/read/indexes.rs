//! `GET /indexes`: one node's list, without the indexes Miroir keeps for itself (a reshard's
//! shadow), paged as the client asked.

use miroir_filters::query;
use serde_json::Value;

use crate::cluster::{reshards, Runtime};
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

/// Extra entries asked of the node past the client's page: the hidden ones it may hold.
const SLACK: usize = 64;

pub async fn list(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    if shared.cluster.reshards.is_empty() {
        return match node_io::any(&shared.cluster, rt, &inc.path, inc.auth.as_deref()).await {
            Ok(resp) => Reply::relay(&resp),
            Err(e) => e.into(),
        };
    }
    let number = |name: &str, default: usize| {
        query::param(&inc.path, name)
            .map(|v| v.parse::<usize>().map_err(|_| ()))
            .unwrap_or(Ok(default))
    };
    let (Ok(offset), Ok(limit)) = (number("offset", 0), number("limit", 20)) else {
        // The node refuses the parameters with Meilisearch's own error.
        return match node_io::any(&shared.cluster, rt, &inc.path, inc.auth.as_deref()).await {
            Ok(resp) => Reply::relay(&resp),
            Err(e) => e.into(),
        };
    };
    let path = format!("/indexes?offset=0&limit={}", offset + limit + SLACK);
    let resp = match node_io::any(&shared.cluster, rt, &path, inc.auth.as_deref()).await {
        Ok(resp) if resp.status == 200 => resp,
        Ok(resp) => return Reply::relay(&resp),
        Err(e) => return e.into(),
    };
    let Ok(mut page) = serde_json::from_slice::<Value>(&resp.body) else {
        return Reply::relay(&resp);
    };
    let results = match page["results"].take() {
        Value::Array(r) => r,
        _ => Vec::new(),
    };
    let before = results.len();
    let visible: Vec<Value> = results
        .into_iter()
        .filter(|i| !i["uid"].as_str().is_some_and(reshards::is_internal))
        .collect();
    let hidden = (before - visible.len()) as u64;
    let total = page["total"].as_u64().unwrap_or(0).saturating_sub(hidden);
    page["results"] = Value::Array(visible.into_iter().skip(offset).take(limit).collect());
    page["offset"] = offset.into();
    page["limit"] = limit.into();
    page["total"] = total.into();
    Reply::json(200, &page)
}
