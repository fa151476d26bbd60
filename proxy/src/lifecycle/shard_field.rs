//! Keeping `_miroir_shard` filterable on every node, whatever clients do to the settings:
//! searches AND a `_miroir_shard IN [...]` clause into node filters, so the field must stay
//! filterable. The pure rewrites are in `miroir_filters::hidden`; this module sends them.

use bytes::Bytes;
use miroir_filters::hidden;
use miroir_filters::search::{display, facet_limit};
use serde_json::{json, Value};

use super::display::repair_display;
use super::patch_every_node;
use crate::cluster::Runtime;
use crate::node_io;
use crate::request::Incoming;
use crate::shared::Shared;

/// The body of a settings update as the nodes get it: the displayed attributes widened for
/// the merge (see `display`), `_miroir_shard` kept among the filterable attributes, and
/// `maxValuesPerFacet` widened (see `facet_limit`); the shard field masked in the filter of a
/// delete or an edit.
pub fn rewrite_update(route: &str, body: &Bytes) -> Bytes {
    let body = display::rewrite_update(route, body).map_or_else(|| body.clone(), Bytes::from);
    let body = facet_limit::rewrite_update(route, &body).map_or(body, Bytes::from);
    let body = hidden::mask_write_filter(route, &body).map_or(body, Bytes::from);
    hidden::keep_shard_filterable(route, &body).map_or(body, Bytes::from)
}

/// Whether a broadcast route resets the filterable attributes, so the field must be put back,
/// or changes what the nodes must display for the merge (then [`restore`] widens it).
pub fn resets(route: &str) -> bool {
    filterable_reset(route) || display::affects_display(route)
}

fn filterable_reset(route: &str) -> bool {
    matches!(
        route,
        "settings.reset" | "settings.filterable_attributes.reset"
    )
}

/// Sends the filterable attributes plus `_miroir_shard` to every node (a settings task each,
/// processed before anything enqueued after it).
async fn add_everywhere(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    current: &Value,
) {
    let body = json!({ "filterableAttributes": hidden::with_shard_filterable(current) });
    let all_ok = patch_every_node(shared, rt, inc, index_uid, &body).await;
    if all_ok {
        shared.cluster.indexes.set_shard_filterable(index_uid, true);
    } else {
        log::warn!(target: "miroir::settings", "could not make `{}` filterable on every node for `{index_uid}`; retrying on the next write", hidden::SHARD_FIELD);
    }
}

/// Makes sure `_miroir_shard` is filterable on `index_uid` before documents are sent (creating
/// the index's settings if it does not exist yet).
pub async fn ensure(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    if shared.cluster.indexes.shard_filterable(index_uid) {
        return;
    }
    let path = format!("/indexes/{index_uid}/settings/filterable-attributes");
    let Ok(resp) = node_io::any(&shared.cluster, rt, &path, rt.node_key()).await else {
        return;
    };
    match resp.status {
        200 => {
            let current = resp.json().unwrap_or(Value::Null);
            if current
                .as_array()
                .is_some_and(|l| l.iter().any(hidden::is_shard_rule))
            {
                shared.cluster.indexes.set_shard_filterable(index_uid, true);
            } else {
                add_everywhere(shared, rt, inc, index_uid, &current).await;
            }
        }
        404 => add_everywhere(shared, rt, inc, index_uid, &json!([])).await,
        // A refusal (auth): the write itself will be refused the same way.
        _ => {}
    }
}

/// After a reset of the filterable attributes, puts the field back on every node; after an
/// update the display depends on, widens the nodes' displayed list for the merge.
/// `display_set`: the client's update carried the nodes' whole displayed list already.
pub async fn restore(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    display_set: bool,
) {
    if display::affects_display(inc.route) {
        if !display_set {
            repair_display(shared, rt, inc, index_uid).await;
        }
        if !filterable_reset(inc.route) {
            return;
        }
    }
    shared
        .cluster
        .indexes
        .set_shard_filterable(index_uid, false);
    add_everywhere(shared, rt, inc, index_uid, &json!([])).await;
}

/// After an index creation every node accepted: the field must be filterable before any
/// document arrives. The creation of an index that already exists fails on the nodes, so the
/// settings task queued behind it keeps the filterable attributes the index has (read now)
/// rather than resetting them.
pub async fn after_creation(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) {
    shared
        .cluster
        .indexes
        .set_shard_filterable(index_uid, false);
    ensure(shared, rt, inc, index_uid).await;
}
