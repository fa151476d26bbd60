//! Federated multi-search through Miroir over 3 real Meilisearch nodes against one real node
//! holding the same documents: hits of several queries in the order one node gives them,
//! custom ranking rules and sorts included. Runs only with `MEILI_BIN`.

mod common;

use common::{call, miroir_bin, wait_idle, KEY};
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{require_meili_bin, start_node, NodeKind};
use serde_json::{json, Value};

/// Each hit as (id, query position).
fn order(answer: &Value) -> Vec<(Value, Value)> {
    answer["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| (h["id"].clone(), h["_federation"]["queriesPosition"].clone()))
        .collect()
}

#[tokio::test]
async fn federated_hits_follow_custom_rules_and_sorts_across_queries() {
    let _bin = require_meili_bin!();
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(start_node(NodeKind::Real, KEY).await);
    }
    let reference = nodes.pop().expect("4 nodes");
    let port = free_port();
    let mut toml = format!(
        "shards = 8\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n[server]\nport = {port}\n\n[metrics]\nenabled = false\n\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    let docs: Value = (1..=40)
        .map(|i: u64| {
            let fruit = if i % 2 == 1 { "apple" } else { "pear" };
            json!({"id": i, "name": format!("{fruit} n{i}"), "rank": i, "price": (i * 7) % 13})
        })
        .collect();
    for base in [miroir.url(), reference.url()] {
        let (s, r) = call(&base, "POST", "/indexes/fed/documents", Some(docs.clone())).await;
        assert_eq!(s, 202, "{r}");
        let settings = json!({
            "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness", "rank:desc"],
            "sortableAttributes": ["price"],
        });
        let (s, r) = call(&base, "PATCH", "/indexes/fed/settings", Some(settings)).await;
        assert_eq!(s, 202, "{r}");
    }
    for node in nodes.iter().chain([&reference]) {
        wait_idle(&node.url()).await;
    }
    let q = |query: &str, extra: Value| {
        let mut body = json!({"indexUid": "fed", "q": query});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        body
    };
    let cases = [
        json!({"federation": {"limit": 6}, "queries": [q("apple", json!({})), q("pear", json!({}))]}),
        json!({"federation": {"limit": 10, "offset": 3}, "queries": [q("pear", json!({})), q("apple", json!({}))]}),
        json!({"federation": {"limit": 8}, "queries": [
            q("apple", json!({"sort": ["price:asc"]})),
            q("pear", json!({"sort": ["price:asc"]})),
        ]}),
        json!({"federation": {"limit": 8}, "queries": [
            q("apple", json!({"federationOptions": {"weight": 0.9}})),
            q("pear", json!({})),
        ]}),
        json!({"federation": {"limit": 5}, "queries": [
            q("apple", json!({"showRankingScoreDetails": true})),
            q("pear", json!({"showRankingScore": true})),
        ]}),
    ];
    for body in cases {
        let (s1, one) = call(
            &reference.url(),
            "POST",
            "/multi-search",
            Some(body.clone()),
        )
        .await;
        let (s2, through) = call(&miroir.url(), "POST", "/multi-search", Some(body.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{body}: {one} vs {through}");
        assert!(!order(&one).is_empty(), "{one}");
        assert_eq!(order(&one), order(&through), "{body}");
        // Details and scores only where the client asked for them.
        for (a, b) in one["hits"]
            .as_array()
            .unwrap()
            .iter()
            .zip(through["hits"].as_array().unwrap())
        {
            for field in ["_rankingScore", "_rankingScoreDetails"] {
                assert_eq!(
                    a.get(field).is_some(),
                    b.get(field).is_some(),
                    "{field} in {body}"
                );
            }
        }
        assert_eq!(
            one["estimatedTotalHits"], through["estimatedTotalHits"],
            "{body}"
        );
    }
    // A facet the index cannot count, asked through `facetsByIndex`: the error names both
    // the query and the federation entry.
    let body = json!({
        "federation": {"facetsByIndex": {"fed": ["name"]}},
        "queries": [q("apple", json!({}))],
    });
    let (s1, one) = call(
        &reference.url(),
        "POST",
        "/multi-search",
        Some(body.clone()),
    )
    .await;
    let (s2, through) = call(&miroir.url(), "POST", "/multi-search", Some(body)).await;
    assert_eq!(
        (s1, &one["code"]),
        (400, &json!("invalid_search_facets")),
        "{one}"
    );
    assert_eq!((s1, &one), (s2, &through));
}
