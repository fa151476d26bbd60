//! Federated multi-search through Miroir over 3 real Meilisearch nodes against one real node
//! holding the same documents: hits of several queries in the order one node gives them,
//! custom ranking rules and sorts included. Runs only with `MEILI_BIN`.

mod common;

use common::{call, compared};
use miroir_testkit::{require_meili_bin, NodeKind};
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
    let docs: Vec<Value> = (1..=40)
        .map(|i: u64| {
            let fruit = if i % 2 == 1 { "apple" } else { "pear" };
            json!({"id": i, "name": format!("{fruit} n{i}"), "rank": i, "price": (i * 7) % 13})
        })
        .collect();
    let settings = json!({
        "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness", "rank:desc"],
        "sortableAttributes": ["price"],
    });
    let fleet = compared(NodeKind::Real, &["fed"], &settings, &docs).await;
    let (reference, miroir) = (&fleet.reference, &fleet.miroir);
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
    // The same multi-search asked of one node and of Miroir.
    let both = |body: &Value| {
        let body = Some(body.clone());
        async move {
            let one = call(&reference.url(), "POST", "/multi-search", body.clone()).await;
            let through = call(&miroir.url(), "POST", "/multi-search", body).await;
            (one, through)
        }
    };
    for body in cases {
        let ((s1, one), (s2, through)) = both(&body).await;
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
    let ((s1, one), (s2, through)) = both(&body).await;
    assert_eq!(
        (s1, &one["code"]),
        (400, &json!("invalid_search_facets")),
        "{one}"
    );
    assert_eq!((s1, &one), (s2, &through));
}
