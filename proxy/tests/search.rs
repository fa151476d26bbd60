//! Search through Miroir against one node holding the same documents: the same scores, hit
//! sets within equal scores, totals and facet counts.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::corpus::{
    corpus, displayed_queries, queries, rank_groups, ranking_rules_with_hidden_custom_rule,
    DISPLAYED,
};
use common::*;
use serde_json::{json, Value};

const SETTINGS: &str = r#"{"filterableAttributes":["genre","year","rating"],"sortableAttributes":["year","title","rating"]}"#;

struct Pair {
    cluster: Cluster,
    reference: Vec<meili_sim::SimNode>,
}

async fn pair(nodes: usize, top: &str, extra: &str) -> Pair {
    let cluster = cluster_with(nodes, top, extra).await;
    let reference = sim_nodes(1).await;
    let settings: Value = serde_json::from_str(SETTINGS).unwrap();
    let docs = Value::Array(corpus(300));
    for base in [cluster.miroir.url(), reference[0].url()] {
        let (s, r) = call(
            &base,
            "PATCH",
            "/indexes/movies/settings",
            Some(settings.clone()),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        let (s, r) = call(
            &base,
            "POST",
            "/indexes/movies/documents",
            Some(docs.clone()),
        )
        .await;
        assert_eq!(s, 202, "{r}");
    }
    for node in &cluster.nodes {
        wait_idle(&node.url()).await;
    }
    wait_idle(&reference[0].url()).await;
    Pair { cluster, reference }
}

/// Hits grouped by score, in order: [(score, {ids})].
fn score_groups(resp: &Value) -> Vec<(String, BTreeSet<String>)> {
    let mut groups: Vec<(String, BTreeSet<String>)> = Vec::new();
    for hit in resp["hits"].as_array().unwrap() {
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

fn comparable(resp: &Value) -> Value {
    let mut v = resp.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("hits");
    o.remove("processingTimeMs");
    o.remove("requestUid");
    v
}

#[tokio::test]
async fn merged_search_equals_one_node_holding_everything() {
    let p = pair(3, "", "").await;
    let (proxy, single) = (p.cluster.miroir.url(), p.reference[0].url());
    let mut compared = 0;
    for q in queries() {
        let (s1, through) = call(&proxy, "POST", "/indexes/movies/search", Some(q.clone())).await;
        let (s2, direct) = call(&single, "POST", "/indexes/movies/search", Some(q.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {through} / {direct}");
        assert_eq!(
            comparable(&through),
            comparable(&direct),
            "{q}: totals, pagination, facets"
        );
        let (a, b) = (score_groups(&through), score_groups(&direct));
        // The last group may be cut differently by the limit: compare it by score only.
        let full = a.len().min(b.len()).saturating_sub(1);
        assert_eq!(
            a.iter().map(|g| &g.0).collect::<Vec<_>>(),
            b.iter().map(|g| &g.0).collect::<Vec<_>>(),
            "{q}: score sequence"
        );
        assert_eq!(a[..full], b[..full], "{q}: hit sets within equal scores");
        for hit in through["hits"].as_array().unwrap() {
            assert!(
                hit.as_object()
                    .unwrap()
                    .keys()
                    .all(|k| !k.starts_with("_miroir")),
                "{q}: leaked {hit}"
            );
        }
        compared += 1;
    }
    assert!(compared >= 60);
}

#[tokio::test]
async fn get_search_matches_post_search() {
    let p = pair(2, "", "").await;
    let base = p.cluster.miroir.url();
    let (_, post) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "river", "limit": 5, "facets": ["genre"]})),
    )
    .await;
    let (_, get) = call(
        &base,
        "GET",
        "/indexes/movies/search?q=river&limit=5&facets=genre",
        None,
    )
    .await;
    assert_eq!(comparable(&post), comparable(&get));
    assert_eq!(post["hits"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn rf2_counts_every_document_once() {
    let p = pair(3, "replication_factor = 2\n", "").await;
    let (_, through) = call(
        &p.cluster.miroir.url(),
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "", "limit": 1000, "facets": ["genre"]})),
    )
    .await;
    let (_, direct) = call(
        &p.reference[0].url(),
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "", "limit": 1000, "facets": ["genre"]})),
    )
    .await;
    assert_eq!(through["estimatedTotalHits"], 300);
    assert_eq!(through["facetDistribution"], direct["facetDistribution"]);
    let ids: BTreeSet<String> = through["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 300, "no duplicates");
}

#[tokio::test]
async fn settings_read_back_without_the_shard_field() {
    let p = pair(2, "", "").await;
    let (_, settings) = call(
        &p.cluster.miroir.url(),
        "GET",
        "/indexes/movies/settings",
        None,
    )
    .await;
    assert_eq!(
        settings["filterableAttributes"],
        json!(["genre", "year", "rating"])
    );
    let (_, list) = call(
        &p.cluster.miroir.url(),
        "GET",
        "/indexes/movies/settings/filterable-attributes",
        None,
    )
    .await;
    assert_eq!(list, json!(["genre", "year", "rating"]));
    // Each node still filters on it.
    let (_, raw) = call(
        &p.cluster.nodes[0].url(),
        "GET",
        "/indexes/movies/settings/filterable-attributes",
        None,
    )
    .await;
    assert!(
        raw.as_array().unwrap().contains(&json!("_miroir_shard")),
        "{raw}"
    );
    // Replacing the filterable attributes keeps it on the nodes.
    let (s, t) = call(
        &p.cluster.miroir.url(),
        "PUT",
        "/indexes/movies/settings/filterable-attributes",
        Some(json!(["genre"])),
    )
    .await;
    assert_eq!(s, 202, "{t}");
    for node in &p.cluster.nodes {
        wait_idle(&node.url()).await;
    }
    let (_, raw) = call(
        &p.cluster.nodes[1].url(),
        "GET",
        "/indexes/movies/settings/filterable-attributes",
        None,
    )
    .await;
    assert_eq!(raw, json!(["genre", "_miroir_shard"]));
    let (status, _) = call(
        &p.cluster.miroir.url(),
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "red"})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_lost_shard_gives_partial_results_or_an_error_by_policy() {
    let p = pair(3, "", "").await;
    p.cluster.nodes[2].stop().await;
    let resp = client()
        .post(format!("{}/indexes/movies/search", p.cluster.miroir.url()))
        .bearer_auth(KEY)
        .json(&json!({"q": "", "limit": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let degraded = resp
        .headers()
        .get("x-miroir-degraded")
        .expect("degraded header")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(degraded.starts_with("shards="), "{degraded}");
    let body: Value = resp.json().await.unwrap();
    let total = body["estimatedTotalHits"].as_u64().unwrap();
    assert!(total > 0 && total < 300, "partial total {total}");
    drop(p);

    let p = pair(3, "", "[scatter]\nunavailable_shard_policy = \"error\"\n").await;
    p.cluster.nodes[2].stop().await;
    let (status, err) = call(
        &p.cluster.miroir.url(),
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": ""})),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(err["code"], "miroir_shard_unavailable");
}

#[tokio::test]
async fn search_errors_are_meilisearchs() {
    let p = pair(2, "", "").await;
    let base = p.cluster.miroir.url();
    let single = p.reference[0].url();
    for body in [
        json!({"filter": "title = x"}),
        json!({"sort": ["overview:asc"]}),
        json!({"limit": "ten"}),
    ] {
        let (s1, e1) = call(&base, "POST", "/indexes/movies/search", Some(body.clone())).await;
        let (s2, e2) = call(
            &single,
            "POST",
            "/indexes/movies/search",
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (s1, e1["code"].clone()),
            (s2, e2["code"].clone()),
            "{body}: {e1}"
        );
    }
    // Errors that list the filterable attributes are worded exactly as one node words them:
    // the `_miroir_shard` field Miroir keeps filterable is never named.
    for body in [
        json!({"filter": "title = x"}),
        json!({"facets": ["overview"]}),
        json!({"distinct": "overview"}),
    ] {
        let (_, e1) = call(&base, "POST", "/indexes/movies/search", Some(body.clone())).await;
        let (_, e2) = call(
            &single,
            "POST",
            "/indexes/movies/search",
            Some(body.clone()),
        )
        .await;
        assert_eq!(e1["message"], e2["message"], "{body}");
        assert!(!e1.to_string().contains("_miroir"), "{e1}");
    }
    let (s, e) = call(&base, "POST", "/indexes/nope/search", Some(json!({}))).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("index_not_found")));
    let _ = BTreeMap::<u8, u8>::new();
}

/// The client's `displayedAttributes`, ranking rules and sortable fields set through Miroir
/// and on the reference node, the displayed list last (as its own sub-route).
async fn restrict_display(bases: &[String]) {
    for base in bases {
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
}

#[tokio::test]
async fn sorts_on_fields_hidden_by_displayed_attributes_merge_like_one_node() {
    let p = pair(3, "", "").await;
    let (proxy, single) = (p.cluster.miroir.url(), p.reference[0].url());
    restrict_display(&[proxy.clone(), single.clone()]).await;
    for node in &p.cluster.nodes {
        wait_idle(&node.url()).await;
    }
    wait_idle(&single).await;

    // Reads through Miroir show the client's list, not what the nodes hold.
    let (_, settings) = call(&proxy, "GET", "/indexes/movies/settings", None).await;
    assert_eq!(settings["displayedAttributes"], json!(DISPLAYED));
    let (_, list) = call(
        &proxy,
        "GET",
        "/indexes/movies/settings/displayed-attributes",
        None,
    )
    .await;
    assert_eq!(list, json!(DISPLAYED));

    let docs = corpus(300);
    let hidden = ["year", "rating", "overview"];
    // The sorting queries above, then the whole search query set under the same settings.
    for q in displayed_queries().into_iter().chain(queries()) {
        let (s1, through) = call(&proxy, "POST", "/indexes/movies/search", Some(q.clone())).await;
        let (s2, direct) = call(&single, "POST", "/indexes/movies/search", Some(q.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {through} / {direct}");
        assert_eq!(
            comparable(&through),
            comparable(&direct),
            "{q}: totals, facets"
        );
        let (a, b) = (
            rank_groups(&through, &docs, &q),
            rank_groups(&direct, &docs, &q),
        );
        assert!(!a.is_empty(), "{q}: no hits");
        let full = a.len().min(b.len()).saturating_sub(1);
        assert_eq!(
            a.iter().map(|g| &g.0).collect::<Vec<_>>(),
            b.iter().map(|g| &g.0).collect::<Vec<_>>(),
            "{q}: order by score and hidden sort values"
        );
        assert_eq!(
            a[..full],
            b[..full],
            "{q}: hits (fields, _formatted, details)"
        );
        for hit in through["hits"].as_array().into_iter().flatten() {
            for field in hidden {
                assert!(hit.get(field).is_none(), "{q}: {field} shown in {hit}");
                assert!(
                    hit["_formatted"].get(field).is_none(),
                    "{q}: {field} formatted in {hit}"
                );
            }
        }
    }
}

/// `showPerformanceDetails` through Miroir: the breakdown of the slowest node, as an object;
/// absent when not asked for.
#[tokio::test]
async fn performance_details_come_from_the_nodes() {
    let p = pair(2, "", "").await;
    let base = p.cluster.miroir.url();
    let (s, asked) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "a", "showPerformanceDetails": true})),
    )
    .await;
    assert_eq!(s, 200, "{asked}");
    assert!(asked["performanceDetails"].is_object(), "{asked}");
    let (_, plain) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "a"})),
    )
    .await;
    assert!(plain.get("performanceDetails").is_none(), "{plain}");
}

/// A request whose node answers add up to more than `server.max_answer_bytes` is refused with
/// a clear error instead of growing Miroir's memory; smaller ones are served as before.
#[tokio::test]
async fn answers_over_the_budget_get_a_clear_error() {
    let nodes = sim_nodes(3).await;
    let (port, metrics) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&meili_sim::SimNode> = nodes.iter().collect();
    let toml = config(port, metrics, &refs, "").replacen(
        "[server]\n",
        "[server]\nmax_answer_bytes = 20000\n",
        1,
    );
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let base = miroir.url();
    let settings: Value = serde_json::from_str(SETTINGS).unwrap();
    let (s, task) = call(&base, "PATCH", "/indexes/movies/settings", Some(settings)).await;
    assert_eq!(s, 202, "{task}");
    let (s, task) = call(
        &base,
        "POST",
        "/indexes/movies/documents",
        Some(Value::Array(corpus(300))),
    )
    .await;
    assert_eq!(s, 202, "{task}");
    for node in &nodes {
        wait_idle(&node.url()).await;
    }
    let (s, small) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "", "limit": 5})),
    )
    .await;
    assert_eq!(s, 200, "{small}");
    for (path, body) in [
        ("/indexes/movies/search", json!({"q": "", "limit": 300})),
        ("/indexes/movies/documents/fetch", json!({"limit": 300})),
        (
            "/indexes/movies/documents/fetch",
            json!({"limit": 300, "sort": ["year:asc"]}),
        ),
    ] {
        let (s, err) = call(&base, "POST", path, Some(body.clone())).await;
        assert_eq!(s, 400, "{path} {body}: {err}");
        assert_eq!(err["code"], "miroir_answer_too_large", "{err}");
        assert_eq!(err["type"], "invalid_request", "{err}");
    }
    // The refusal is the request's, not the nodes': they stay healthy and serve the next one.
    let (s, again) = call(
        &base,
        "POST",
        "/indexes/movies/search",
        Some(json!({"q": "", "limit": 5})),
    )
    .await;
    assert_eq!((s, again["hits"].as_array().map(Vec::len)), (200, Some(5)));
}
