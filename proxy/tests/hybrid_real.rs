//! Hybrid search (`hybrid.semanticRatio`) through Miroir over 3 real Meilisearch nodes
//! against 1 real node holding the same documents, with a `userProvided` embedder: the hits,
//! their scores, `semanticHitCount`, totals and facets must be one node's. Runs only with
//! `MEILI_BIN` (or the shared binary).

mod common;

use std::collections::BTreeSet;

use common::corpus::{canonical, corpus, WORDS};
use common::{call, compared};
use miroir_testkit::{require_meili_bin, NodeKind};
use serde_json::{json, Value};

const DIMS: usize = 3;

/// Documents point roughly along the first axis, queries across it: similarities spread
/// around 0.5–0.8, in the range of partial keyword matches, so the two halves interleave.
fn vector(i: usize) -> Vec<f64> {
    let x = i as f64;
    vec![1.0, 0.8 * (x * 0.7).sin(), 0.8 * (x * 1.3).cos()]
}

fn query_vector(k: usize) -> Vec<f64> {
    let x = k as f64;
    vec![0.2, (x * 0.9).sin(), (x * 0.9).cos()]
}

fn documents() -> Vec<Value> {
    corpus(300)
        .into_iter()
        .enumerate()
        .map(|(i, mut d)| {
            d["_vectors"] = json!({ "e": vector(i) });
            d
        })
        .collect()
}

/// Default settings but for the embedder, the facets and explicit searchable attributes
/// (with `["*"]` each node ranks attributes in its own field order, a documented bound).
fn settings() -> Value {
    json!({
        "filterableAttributes": ["genre", "year"],
        "searchableAttributes": ["title", "overview", "genre"],
        "embedders": {"e": {"source": "userProvided", "dimensions": DIMS}},
    })
}

/// The hits as groups of equal `_rankingScore` (a node orders equal scores by internal id,
/// which no merge sees), each a set of the hit's JSON (fields sorted) without the score.
fn groups(resp: &Value) -> Vec<(String, BTreeSet<String>)> {
    let mut out: Vec<(String, BTreeSet<String>)> = Vec::new();
    for hit in resp["hits"].as_array().into_iter().flatten() {
        let score = format!("{:.9}", hit["_rankingScore"].as_f64().unwrap_or(-1.0));
        let mut h = canonical(hit);
        if let Some(o) = h.as_object_mut() {
            o.remove("_rankingScore");
        }
        match out.last_mut() {
            Some((s, set)) if *s == score => {
                set.insert(h.to_string());
            }
            _ => out.push((score, BTreeSet::from([h.to_string()]))),
        }
    }
    out
}

/// The same scores in the same order, and the same hits in every group the window does not
/// cut: the first and last groups may hold different ties of a larger group.
fn same_ranking(a: &[(String, BTreeSet<String>)], b: &[(String, BTreeSet<String>)]) -> bool {
    let sizes = |g: &[(String, BTreeSet<String>)]| -> Vec<(String, usize)> {
        g.iter().map(|(s, h)| (s.clone(), h.len())).collect()
    };
    sizes(a) == sizes(b) && (a.len() < 3 || a[1..a.len() - 1] == b[1..b.len() - 1])
}

fn meta(resp: &Value) -> Value {
    let mut v = resp.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["hits", "processingTimeMs", "requestUid"] {
            o.remove(k);
        }
    }
    v
}

fn queries() -> Vec<Value> {
    let mut out = Vec::new();
    for ratio in [0.0, 0.3, 0.5, 0.7, 0.9, 1.0] {
        for (i, w) in WORDS.iter().enumerate().step_by(3) {
            let hybrid = json!({"embedder": "e", "semanticRatio": ratio});
            let v = query_vector(i);
            out.push(json!({"q": w, "vector": v, "hybrid": hybrid, "showRankingScore": true}));
            out.push(
                json!({"q": format!("{w} storm"), "vector": v, "hybrid": hybrid,
                "showRankingScore": true, "limit": 40}),
            );
            // Partial matches score low enough for semantic hits to come between.
            out.push(
                json!({"q": format!("{w} storm garden ocean"), "vector": v, "hybrid": hybrid,
                "showRankingScore": true, "limit": 7, "offset": 5, "facets": ["genre"]}),
            );
            out.push(
                json!({"q": w, "vector": v, "hybrid": hybrid, "showRankingScore": true,
                "filter": "year > 1995", "page": 2, "hitsPerPage": 6}),
            );
            out.push(
                json!({"q": w, "vector": v, "hybrid": hybrid, "showRankingScore": true,
                "attributesToRetrieve": ["title"], "limit": 10}),
            );
            // The vector searched with is shown after the query.
            out.push(
                json!({"q": w, "vector": v, "hybrid": hybrid, "showRankingScore": true,
                "retrieveVectors": true, "limit": 5}),
            );
        }
        // Keyword hits strong enough for the keyword results to stand alone.
        out.push(
            json!({"q": "red", "vector": query_vector(7), "limit": 3, "showRankingScore": true,
            "hybrid": {"embedder": "e", "semanticRatio": ratio}}),
        );
    }
    out
}

#[tokio::test]
async fn hybrid_search_over_real_nodes_combines_like_one_real_node() {
    let _bin = require_meili_bin!();
    let real = compared(NodeKind::Real, &["h"], &settings(), &documents()).await;
    let (proxy, reference) = (real.miroir.url(), real.reference.url());
    let all = queries();
    let (mut exact, mut mismatches) = (0, Vec::new());
    let mut combined = 0;
    for q in &all {
        let (s1, through) = call(&proxy, "POST", "/indexes/h/search", Some(q.clone())).await;
        let (s2, direct) = call(&reference, "POST", "/indexes/h/search", Some(q.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {through} / {direct}");
        if direct["semanticHitCount"].as_u64().is_some_and(|n| n > 0)
            && direct["hits"]
                .as_array()
                .is_some_and(|h| h.len() as u64 > direct["semanticHitCount"].as_u64().unwrap_or(0))
        {
            combined += 1;
        }
        let (a, b) = (groups(&through), groups(&direct));
        if meta(&through) == meta(&direct) && same_ranking(&a, &b) {
            exact += 1;
        } else {
            mismatches.push(format!(
                "{q}\n    meta miroir {}\n         node   {}\n    hits miroir {a:?}\n         node   {b:?}",
                meta(&through),
                meta(&direct)
            ));
        }
    }
    let n = all.len();
    println!(
        "hybrid, real nodes: {exact}/{n} queries equal to one node (hits, scores, semanticHitCount, totals, facets); {combined} mixed keyword and semantic hits"
    );
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(combined > 0, "no query mixed keyword and semantic hits");
    assert_eq!(
        exact,
        n,
        "{} hybrid searches differ from one node",
        n - exact
    );

    // The embedder is judged as one node judges it.
    let bad =
        json!({"q": "red", "vector": [1.0], "hybrid": {"embedder": "e", "semanticRatio": 0.5}});
    let missing = json!({"q": "red", "hybrid": {"embedder": "nope", "semanticRatio": 0.5}});
    for body in [bad, missing] {
        let (s1, e1) = call(&proxy, "POST", "/indexes/h/search", Some(body.clone())).await;
        let (s2, e2) = call(&reference, "POST", "/indexes/h/search", Some(body.clone())).await;
        assert_eq!(
            (s1, &e1["code"], &e1["message"]),
            (s2, &e2["code"], &e2["message"]),
            "{body}"
        );
    }

    // A federated multi-search with a hybrid query: the page's semantic hits counted, the
    // query vectors of the queries that asked for them.
    for (ratio, vectors) in [(0.9, true), (0.5, false), (1.0, true)] {
        let hybrid = json!({"embedder": "e", "semanticRatio": ratio});
        let body = json!({"federation": {"limit": 8}, "queries": [
            {"indexUid": "h", "q": "red", "vector": query_vector(7), "hybrid": hybrid, "retrieveVectors": vectors},
            {"indexUid": "h", "q": "storm", "attributesToRetrieve": ["id"]},
        ]});
        let (s1, through) = call(&proxy, "POST", "/multi-search", Some(body.clone())).await;
        let (s2, direct) = call(&reference, "POST", "/multi-search", Some(body.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{body}: {through} / {direct}");
        assert!(direct["semanticHitCount"].is_u64(), "{direct}");
        // (Totals of several queries on one index are summed: see the README.)
        for key in ["semanticHitCount", "queryVectors"] {
            assert_eq!(through.get(key), direct.get(key), "{key} of {body}");
        }
        let positions = |v: &Value| -> Vec<Value> {
            v["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| h["_federation"]["queriesPosition"].clone())
                .collect()
        };
        assert_eq!(positions(&through), positions(&direct), "{body}");
    }
}
