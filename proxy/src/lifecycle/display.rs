//! The nodes' displayed attributes: the client's list, a marker, then every field the merge
//! reads (see `miroir_filters::search::display`), kept so after each settings update that
//! changes what the merge needs.

use bytes::Bytes;
use miroir_filters::search::display;
use serde_json::{Map, Value};

use super::patch_every_node;
use crate::cluster::Runtime;
use crate::node_io;
use crate::request::Incoming;
use crate::shared::Shared;

/// After a client's settings update that changes what the nodes must display (see
/// `miroir_filters::search::display`): the nodes' displayed list with every field the merge
/// reads, sent to every node behind the client's update (a settings task each, not a
/// Miroir task).
pub async fn repair_display(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    shared.cluster.indexes.forget_context(index_uid);
    let Some(wanted) = wanted_display(shared, rt, index_uid, inc.route, &inc.body).await else {
        return;
    };
    let body = serde_json::json!({ "displayedAttributes": wanted });
    if !patch_every_node(shared, rt, inc, index_uid, &body).await {
        log::warn!(target: "miroir::settings", "could not widen the displayed attributes of `{index_uid}` on every node: a sort on a field hidden from clients may not merge exactly");
    }
}

/// `body` (a settings update as the nodes get it) with the nodes' whole displayed list, when
/// the client's update sets the displayed attributes and the nodes need more than its list:
/// the client's own task then reads succeeded only once the merge can read every field it
/// needs (no update of Miroir's queued behind it).
pub async fn with_whole_display(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    body: &Bytes,
) -> Option<Bytes> {
    let index = inc.index_uid.as_deref()?;
    if !display::sets_displayed(inc.route, &inc.body) {
        return None;
    }
    let wanted = wanted_display(shared, rt, index, inc.route, &inc.body).await?;
    display::with_displayed(inc.route, body, &wanted).map(Bytes::from)
}

/// The nodes' displayed list once the client's update (`route`, `body`) is applied, when it
/// must differ from the client's: the client's list, the marker, then every field the merge
/// reads. Computed from the nodes' settings with their queued settings updates and the
/// client's update applied, so it is right unless another settings update reaches the nodes
/// between that read and the update.
pub async fn wanted_display(
    shared: &Shared,
    rt: &Runtime,
    index_uid: &str,
    route: &str,
    body: &[u8],
) -> Option<Vec<String>> {
    let path = format!("/indexes/{index_uid}/settings");
    let resp = node_io::any(&shared.cluster, rt, &path, rt.node_key())
        .await
        .ok()?;
    let mut current = match (resp.status, resp.json()) {
        (200, Some(Value::Object(map))) => map,
        // Created by this very update.
        (404, _) => Map::new(),
        _ => return None,
    };
    // Settings updates still queued on the nodes (the client's own among them when it was
    // sent) apply first: their details carry the values they set.
    let pending = format!(
        "/tasks?indexUids={index_uid}&types=settingsUpdate&statuses=enqueued,processing&limit=1000"
    );
    if let Ok(resp) = node_io::any(&shared.cluster, rt, &pending, rt.node_key()).await {
        let mut tasks: Vec<(u64, Vec<u8>)> = resp
            .json()
            .and_then(|v| v["results"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| Some((t["uid"].as_u64()?, serde_json::to_vec(&t["details"]).ok()?)))
            .collect();
        tasks.sort_unstable_by_key(|t| t.0);
        for (_, details) in &tasks {
            if let Some(next) = display::after_update(&current, "settings.update", details) {
                current = next;
            }
        }
    }
    display::repair(&display::after_update(&current, route, body)?)
}
