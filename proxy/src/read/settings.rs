//! Settings reads: one node's answer, with Miroir's hidden fields taken out (`_miroir_shard`
//! among the filterable attributes, the merge's fields past the displayed-attributes marker,
//! the widening of `maxValuesPerFacet`).

use miroir_filters::hidden;

use crate::cluster::Runtime;
use crate::node_io;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;

/// Routes whose answer lists the filterable or displayed attributes or the faceting limit,
/// which Miroir reads itself to hide what it added.
pub fn hides(route: &str) -> bool {
    matches!(
        route,
        "settings.get"
            | "settings.filterable_attributes.get"
            | "settings.displayed_attributes.get"
            | "settings.faceting.get"
    )
}

/// A settings read with the hidden fields taken out.
pub async fn read_settings(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    match node_io::any(&shared.cluster, rt, &inc.path, inc.auth.as_deref()).await {
        Ok(resp) if resp.status == 200 => match hidden::strip_settings(inc.route, &resp.body) {
            Some(body) => Reply::raw(200, body),
            None => Reply::relay(&resp),
        },
        Ok(resp) => Reply::relay(&resp),
        Err(e) => e.into(),
    }
}
