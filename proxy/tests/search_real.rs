//! Search through Miroir over 3 real Meilisearch nodes against 1 real node holding the same
//! documents, on the query set of `search.rs`. Runs only with `MEILI_BIN`. Each node ranks
//! with its own dictionary (prefix and typo derivations come from the words it holds), so a
//! few queries may differ: the test prints every mismatch and asserts a clear majority.

mod common;

use std::collections::BTreeSet;

use common::corpus::{
    canonical, corpus, displayed_queries, queries, rank_groups,
    ranking_rules_with_hidden_custom_rule, DISPLAYED,
};
use common::{call, compared, wait_idle, Compared};
use miroir_testkit::{require_meili_bin, NodeKind};
use serde_json::{json, Value};

/// Explicit searchable attributes: with `["*"]` each node ranks attributes in its own field
/// order (a documented exactness bound), which is not what this test is about.
fn settings() -> Value {
    json!({
        "filterableAttributes": ["genre", "year", "rating"],
        "sortableAttributes": ["year", "title", "rating"],
        "searchableAttributes": ["title", "overview", "genre"],
    })
}

fn score_groups(resp: &Value) -> Vec<(String, BTreeSet<String>)> {
    let mut groups: Vec<(String, BTreeSet<String>)> = Vec::new();
    for hit in resp["hits"].as_array().into_iter().flatten() {
        let score = format!("{:.9}", hit["_rankingScore"].as_f64().unwrap_or(-1.0));
        let id = hit["id"].to_string();
        match groups.last_mut() {
            Some((s, ids)) if *s == score => {
                ids.insert(id);
            }
            _ => groups.push((score, BTreeSet::from([id]))),
        }
    }
    groups
}

/// Totals, pagination and facets: everything but the hits and timings.
fn meta(resp: &Value) -> Value {
    let mut v = resp.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["hits", "processingTimeMs", "requestUid"] {
            o.remove(k);
        }
    }
    v
}

/// 3 real nodes behind Miroir and 1 reference node, each holding `movies` (and `series`,
/// the same documents) with the same settings.
async fn real_cluster() -> Compared {
    compared(
        NodeKind::Real,
        &["movies", "series"],
        &settings(),
        &corpus(300),
    )
    .await
}

#[tokio::test]
async fn real_nodes_behind_miroir_rank_like_one_real_node() {
    let _bin = require_meili_bin!();
    let real = real_cluster().await;
    let proxy = real.miroir.url();
    let reference = &real.reference;
    assert_eq!(real.nodes.len(), 3);

    let (mut meta_ok, mut scores_ok, mut hits_ok, mut exact) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let all = queries();
    for q in &all {
        let (s1, through) = call(&proxy, "POST", "/indexes/movies/search", Some(q.clone())).await;
        let (s2, direct) = call(
            &reference.url(),
            "POST",
            "/indexes/movies/search",
            Some(q.clone()),
        )
        .await;
        assert_eq!((s1, s2), (200, 200), "{q}: {through} / {direct}");
        let (a, b) = (score_groups(&through), score_groups(&direct));
        // The last group may be cut differently by the limit: compare it by score only.
        let full = a.len().min(b.len()).saturating_sub(1);
        let m = meta(&through) == meta(&direct);
        let sc = a.iter().map(|g| &g.0).eq(b.iter().map(|g| &g.0));
        let h = sc && a[..full] == b[..full];
        meta_ok += usize::from(m);
        scores_ok += usize::from(sc);
        hits_ok += usize::from(h);
        if m && h {
            exact += 1;
        } else {
            mismatches.push(format!(
                "{q}\n    meta {}: miroir {} / node {}\n    scores {}: miroir {:?}\n                    node {:?}",
                if m { "same" } else { "DIFF" },
                meta(&through),
                meta(&direct),
                if h { "same" } else { "DIFF" },
                a,
                b
            ));
        }
    }
    let n = all.len();
    println!(
        "real nodes: {exact}/{n} queries exactly equal; totals+pagination+facets {meta_ok}/{n}, \
         score sequence {scores_ok}/{n}, hit sets within equal scores {hits_ok}/{n}"
    );
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    let mut errors_same = 0;
    let errors = [
        json!({"filter": "title = x"}),
        json!({"filter": ["genre = drama", ["title = x", "year > 2000"]]}),
        json!({"filter": "genre = drama AND (year > 2000"}),
        json!({"sort": ["overview:asc"]}),
        json!({"limit": "ten"}),
    ];
    for body in &errors {
        let (s1, e1) = call(&proxy, "POST", "/indexes/movies/search", Some(body.clone())).await;
        let (s2, e2) = call(
            &reference.url(),
            "POST",
            "/indexes/movies/search",
            Some(body.clone()),
        )
        .await;
        if (s1, &e1["code"], &e1["message"]) == (s2, &e2["code"], &e2["message"]) {
            errors_same += 1;
        } else {
            println!("ERROR MISMATCH {body}\n    miroir {s1} {e1}\n    node   {s2} {e2}");
        }
    }
    println!(
        "real nodes: {errors_same}/{} search errors equal (status, code, message)",
        errors.len()
    );
    assert_eq!(
        errors_same,
        errors.len(),
        "search errors differ from Meilisearch's"
    );
    assert!(
        exact * 10 >= n * 8,
        "only {exact}/{n} queries matched exactly"
    );
    assert!(
        meta_ok * 10 >= n * 9,
        "totals/facets matched for only {meta_ok}/{n}"
    );
}

#[tokio::test]
async fn real_nodes_behind_miroir_answer_multi_search_like_one_real_node() {
    let _bin = require_meili_bin!();
    let real = real_cluster().await;
    let proxy = real.miroir.url();
    let reference = real.reference.url();
    let cases = [
        json!({"queries": [
            {"indexUid": "movies", "q": "river", "showRankingScore": true, "limit": 7, "facets": ["genre"]},
            {"indexUid": "series", "q": "storm night", "showRankingScore": true, "hitsPerPage": 5, "page": 2},
        ]}),
        json!({"federation": {"limit": 12}, "queries": [
            {"indexUid": "movies", "q": "river"},
            {"indexUid": "series", "q": "green", "federationOptions": {"weight": 1.5}},
        ]}),
        json!({"federation": {"offset": 3, "limit": 10, "facetsByIndex": {"movies": ["genre"], "series": ["genre", "year"]}}, "queries": [
            {"indexUid": "movies", "q": "storm", "showRankingScore": true},
            {"indexUid": "series", "q": "green city", "federationOptions": {"weight": 0.5}},
        ]}),
        json!({"federation": {"limit": 8, "facetsByIndex": {"movies": ["genre"], "series": ["genre"]}, "mergeFacets": {}}, "queries": [
            {"indexUid": "movies", "q": "ocean", "filter": "year > 1995"},
            {"indexUid": "series", "q": "ocean"},
        ]}),
    ];
    let weighted = |v: &Value| -> Vec<(String, String)> {
        v["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    format!(
                        "{:.9}",
                        h["_federation"]["weightedRankingScore"]
                            .as_f64()
                            .unwrap_or(-1.0)
                    ),
                    h["_federation"]["indexUid"].to_string(),
                )
            })
            .collect()
    };
    let mut same = 0;
    for body in &cases {
        let (s1, through) = call(&proxy, "POST", "/multi-search", Some(body.clone())).await;
        let (s2, direct) = call(&reference, "POST", "/multi-search", Some(body.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{body}: {through} / {direct}");
        let ok = if body.get("federation").is_some() {
            meta(&through) == meta(&direct) && weighted(&through) == weighted(&direct)
        } else {
            through["results"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(direct["results"].as_array().into_iter().flatten())
                .all(|(a, b)| meta(a) == meta(b) && score_groups(a).len() == score_groups(b).len())
        };
        if ok {
            same += 1;
        } else {
            println!(
                "MULTI-SEARCH MISMATCH {body}\n    miroir {}\n    node   {}",
                meta(&through),
                meta(&direct)
            );
        }
    }
    // One index queried twice, retrieving a field many documents share: documents are one
    // when their primary key is, not when their retrieved fields are. (The total is the
    // queries' sum, a documented bound, where one node counts their union.)
    // The filter keeps every match within the page: ties are not cut.
    let twice = json!({"federation": {"limit": 100}, "queries": [
        {"indexUid": "movies", "q": "river", "filter": "year > 2012", "attributesToRetrieve": ["genre"]},
        {"indexUid": "movies", "q": "storm", "filter": "year > 2012", "attributesToRetrieve": ["genre"]},
    ]});
    let (s1, through) = call(&proxy, "POST", "/multi-search", Some(twice.clone())).await;
    let (s2, direct) = call(&reference, "POST", "/multi-search", Some(twice.clone())).await;
    assert_eq!((s1, s2), (200, 200), "{through} / {direct}");
    let shown = |v: &Value| -> Vec<String> {
        let mut hits: Vec<String> = v["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| canonical(h).to_string())
            .collect();
        hits.sort();
        hits
    };
    assert_eq!(weighted(&through), weighted(&direct), "{through}\n{direct}");
    assert_eq!(shown(&through), shown(&direct));
    let found = direct["hits"].as_array().map_or(0, Vec::len);
    assert!((10..100).contains(&found), "{direct}");

    let mut errors_same = 0;
    let errors = [
        json!({"queries": [{"indexUid": "movies", "q": "red"}, {"indexUid": "nope", "q": "red"}]}),
        json!({"queries": [{"indexUid": "movies"}, {"indexUid": "series", "filter": "title = x"}]}),
        json!({"queries": [{"indexUid": "movies", "federationOptions": {"weight": 2.0}}]}),
        json!({"queries": [{"indexUid": "movies", "limit": 3}], "federation": {}}),
    ];
    for body in &errors {
        let (s1, e1) = call(&proxy, "POST", "/multi-search", Some(body.clone())).await;
        let (s2, e2) = call(&reference, "POST", "/multi-search", Some(body.clone())).await;
        if (s1, &e1["code"], &e1["message"]) == (s2, &e2["code"], &e2["message"]) {
            errors_same += 1;
        } else {
            println!(
                "MULTI-SEARCH ERROR MISMATCH {body}\n    miroir {s1} {e1}\n    node   {s2} {e2}"
            );
        }
    }
    println!(
        "real nodes, multi-search: {same}/{} answers and {errors_same}/{} errors equal",
        cases.len(),
        errors.len()
    );
    assert_eq!(
        errors_same,
        errors.len(),
        "errors differ from Meilisearch's"
    );
    assert!(
        same * 2 > cases.len(),
        "only {same}/{} multi-search answers matched",
        cases.len()
    );
}

/// Sorts on fields hidden by `displayedAttributes` (and a hidden custom ranking rule), with
/// real nodes: Miroir keeps the sort values visible to itself and hides them from clients.
#[tokio::test]
async fn real_nodes_merge_sorts_on_hidden_fields_like_one_real_node() {
    let _bin = require_meili_bin!();
    let real = real_cluster().await;
    let (proxy, single) = (real.miroir.url(), real.reference.url());
    for base in [&proxy, &single] {
        let (s, r) = call(
            base,
            "PATCH",
            "/indexes/movies/settings",
            Some(json!({"rankingRules": ranking_rules_with_hidden_custom_rule()})),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        let (s, r) = call(
            base,
            "PUT",
            "/indexes/movies/settings/displayed-attributes",
            Some(json!(DISPLAYED)),
        )
        .await;
        assert_eq!(s, 202, "{r}");
    }
    for node in real.nodes.iter().chain([&real.reference]) {
        wait_idle(&node.url()).await;
    }
    let (_, settings) = call(&proxy, "GET", "/indexes/movies/settings", None).await;
    assert_eq!(settings["displayedAttributes"], json!(DISPLAYED));

    let docs = corpus(300);
    // The sorting queries above, then the whole search query set under the same settings.
    let mut all = displayed_queries();
    all.extend(queries());
    let mut same = 0;
    for q in &all {
        let (s1, through) = call(&proxy, "POST", "/indexes/movies/search", Some(q.clone())).await;
        let (s2, direct) = call(&single, "POST", "/indexes/movies/search", Some(q.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {through} / {direct}");
        for hit in through["hits"].as_array().into_iter().flatten() {
            for field in ["year", "rating", "overview"] {
                assert!(hit.get(field).is_none(), "{q}: {field} shown in {hit}");
            }
        }
        let (a, b) = (
            rank_groups(&through, &docs, q),
            rank_groups(&direct, &docs, q),
        );
        let full = a.len().min(b.len()).saturating_sub(1);
        if meta(&through) == meta(&direct)
            && a.iter().map(|g| &g.0).eq(b.iter().map(|g| &g.0))
            && a[..full] == b[..full]
        {
            same += 1;
        } else {
            println!(
                "MISMATCH {q}\n    miroir {:?}\n    node   {:?}",
                a.iter().map(|g| &g.0).collect::<Vec<_>>(),
                b.iter().map(|g| &g.0).collect::<Vec<_>>()
            );
        }
    }
    println!(
        "real nodes, hidden sort fields: {same}/{} queries equal (order, hits, totals, facets)",
        all.len()
    );
    assert_eq!(same, all.len());
}

/// `maxTotalHits` limits the hits a client can reach, not the totals: a real node reports every
/// match it counted, in both pagination modes and in federated search, and echoes the client's
/// window as sent. A count-only search (`limit: 0`) with distinct counts before distinct.
#[tokio::test]
async fn real_nodes_behind_miroir_count_past_max_total_hits_like_one_real_node() {
    let _bin = require_meili_bin!();
    let real = real_cluster().await;
    let (proxy, single) = (real.miroir.url(), real.reference.url());
    for base in [&proxy, &single] {
        let (s, r) = call(
            base,
            "PATCH",
            "/indexes/series/settings",
            Some(json!({"pagination": {"maxTotalHits": 5}})),
        )
        .await;
        assert_eq!(s, 202, "{r}");
    }
    for node in real.nodes.iter().chain([&real.reference]) {
        wait_idle(&node.url()).await;
    }
    let searches = [
        json!({"q": ""}),
        json!({"q": "", "offset": 4, "limit": 2}),
        json!({"q": "", "offset": 10, "limit": 2}),
        json!({"q": "", "page": 4, "hitsPerPage": 2}),
        json!({"q": "", "page": 1, "hitsPerPage": 0}),
        json!({"q": "", "filter": "genre = drama", "limit": 3, "facets": ["genre"]}),
        json!({"q": "river"}),
        json!({"q": "", "distinct": "genre", "limit": 0, "facets": ["genre"]}),
    ];
    for q in &searches {
        let (s1, through) = call(&proxy, "POST", "/indexes/series/search", Some(q.clone())).await;
        let (s2, direct) = call(&single, "POST", "/indexes/series/search", Some(q.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {through} / {direct}");
        assert_eq!(meta(&through), meta(&direct), "{q}");
        assert_eq!(
            through["hits"].as_array().map(Vec::len),
            direct["hits"].as_array().map(Vec::len),
            "{q}"
        );
    }
    let (_, direct) = call(&single, "POST", "/indexes/series/search", Some(json!({}))).await;
    assert_eq!(
        direct["estimatedTotalHits"], 300,
        "the node counts past the cap"
    );
    let federated = [
        json!({"federation": {"limit": 20}, "queries": [
            {"indexUid": "series", "q": ""}, {"indexUid": "movies", "q": "river"}]}),
        json!({"federation": {"page": 2, "hitsPerPage": 3}, "queries": [
            {"indexUid": "series", "q": ""}, {"indexUid": "movies", "q": "river"}]}),
    ];
    for body in &federated {
        let (s1, through) = call(&proxy, "POST", "/multi-search", Some(body.clone())).await;
        let (s2, direct) = call(&single, "POST", "/multi-search", Some(body.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{body}: {through} / {direct}");
        assert_eq!(meta(&through), meta(&direct), "{body}");
        assert_eq!(
            through["hits"].as_array().map(Vec::len),
            direct["hits"].as_array().map(Vec::len),
            "{body}"
        );
    }
}
