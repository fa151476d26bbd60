//! A node is asked for fewer hits than the client's window when its share of the shards makes
//! more unlikely (`miroir_filters::search::depth`), and for the rest when the window still
//! takes all it gave. Here a sort puts the best hits all on one node: every page through
//! Miroir must still equal one node's, over simulated and real Meilisearch nodes, and the
//! node must have been asked again.

mod common;

use std::collections::BTreeSet;

use common::{call, compared, kinds, metrics_text, upstream_requests, wait_idle};
use serde_json::{json, Value};

fn settings() -> Value {
    json!({ "filterableAttributes": ["group"], "sortableAttributes": ["boost"] })
}

fn documents() -> Vec<Value> {
    (0..300u64)
        .map(|i| json!({ "id": i, "group": i % 3, "boost": i, "title": format!("doc {i} alpha") }))
        .collect()
}

fn ids(resp: &Value) -> Vec<Value> {
    resp["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["id"].clone())
        .collect()
}

/// Everything but the hits and timings.
fn meta(resp: &Value) -> Value {
    let mut v = resp.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["hits", "processingTimeMs", "requestUid"] {
            o.remove(k);
        }
    }
    v
}

#[tokio::test]
async fn a_window_held_by_one_node_is_fetched_from_it_again_and_answers_as_one_node() {
    for kind in kinds() {
        let c = compared(kind, &["items"], &settings(), &documents()).await;
        let (proxy, reference) = (c.miroir.url(), c.reference.url());

        // The documents the first node holds get the highest boosts.
        let (s, held) = call(
            &c.nodes[0].url(),
            "GET",
            "/indexes/items/documents?limit=1000&fields=id",
            None,
        )
        .await;
        assert_eq!(s, 200, "{held}");
        let first: BTreeSet<u64> = held["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["id"].as_u64())
            .collect();
        assert!(
            (60..240).contains(&first.len()),
            "{kind:?}: node 0 holds {} of 300",
            first.len()
        );
        let boosts: Vec<Value> = (0..300u64)
            .map(|i| json!({ "id": i, "boost": if first.contains(&i) { 10_000 + i } else { i } }))
            .collect();
        for base in [&proxy, &reference] {
            let (s, r) = call(base, "PUT", "/indexes/items/documents", Some(json!(boosts))).await;
            assert_eq!(s, 202, "{r}");
        }
        for node in c.nodes.iter().chain([&c.reference]) {
            wait_idle(&node.url()).await;
        }

        let searches = [
            json!({ "sort": ["boost:desc"] }),
            json!({ "sort": ["boost:desc"], "offset": 7, "limit": 30 }),
            json!({ "sort": ["boost:desc"], "page": 2, "hitsPerPage": 15 }),
            json!({ "q": "alpha", "sort": ["boost:desc"], "limit": 50, "facets": ["group"] }),
            json!({ "sort": ["boost:desc"], "filter": "group = 1", "limit": 25 }),
            json!({ "q": "doc", "sort": ["boost:asc"], "limit": 40 }),
            json!({ "q": "alpha", "limit": 10 }),
        ];
        for q in &searches {
            let (s1, through) =
                call(&proxy, "POST", "/indexes/items/search", Some(q.clone())).await;
            let (s2, direct) =
                call(&reference, "POST", "/indexes/items/search", Some(q.clone())).await;
            assert_eq!((s1, s2), (200, 200), "{kind:?} {q}: {through} / {direct}");
            if q["sort"] != json!(null) {
                assert_eq!(ids(&through), ids(&direct), "{kind:?} {q}");
            } else {
                // Tied hits: one node orders them by internal id.
                assert_eq!(ids(&through).len(), ids(&direct).len(), "{kind:?} {q}");
            }
            assert_eq!(meta(&through), meta(&direct), "{kind:?} {q}");
        }
        // Three nodes a search, and the first node once more: at least 40 node requests for
        // 10 searches (health checks and settings reads only add to it).
        let before = upstream_requests(&metrics_text(c.metrics_port).await);
        for _ in 0..10 {
            let (s, r) = call(
                &proxy,
                "POST",
                "/indexes/items/search",
                Some(searches[0].clone()),
            )
            .await;
            assert_eq!(s, 200, "{r}");
        }
        let asked = upstream_requests(&metrics_text(c.metrics_port).await) - before;
        assert!(
            asked >= 40.0,
            "{kind:?}: {asked} node requests for 10 searches"
        );
    }
}
