//! `POST /multi-search` through Miroir over 3 simulated nodes against one node holding every
//! document: plain results in order, Meilisearch's errors, and federated merges.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

const WORDS: [&str; 12] = [
    "red", "blue", "green", "river", "mountain", "city", "night", "storm", "silver", "garden",
    "ocean", "winter",
];
const GENRES: [&str; 5] = ["drama", "comedy", "action", "horror", "documentary"];

fn corpus(range: std::ops::Range<usize>) -> Value {
    range
        .map(|i| {
            let w = |k: usize| WORDS[(i * 7 + k * 5 + i / 3) % WORDS.len()];
            json!({
                "id": i,
                "title": format!("{} {} {}", w(0), w(1), w(2)),
                "overview": format!("a story of {} and {} in the {}", w(3), w(4), w(5)),
                "genre": GENRES[i % GENRES.len()],
                "year": 1980 + (i * 13) % 40,
            })
        })
        .collect()
}

struct Pair {
    cluster: Cluster,
    reference: Vec<meili_sim::SimNode>,
}

/// Indexes `movies` (ids 0..200) and `series` (200..320) through Miroir and on the reference.
async fn pair() -> Pair {
    let cluster = cluster(3, "").await;
    let reference = sim_nodes(1).await;
    let settings =
        json!({"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]});
    let mut through_miroir = Vec::new();
    for base in [cluster.miroir.url(), reference[0].url()] {
        for (index, docs) in [("movies", corpus(0..200)), ("series", corpus(200..320))] {
            let (s, r) = call(
                &base,
                "PATCH",
                &format!("/indexes/{index}/settings"),
                Some(settings.clone()),
            )
            .await;
            assert_eq!(s, 202, "{r}");
            let (s, r) = call(
                &base,
                "POST",
                &format!("/indexes/{index}/documents"),
                Some(docs),
            )
            .await;
            assert_eq!(s, 202, "{r}");
            if base == cluster.miroir.url() {
                through_miroir.push(r["taskUid"].as_u64().expect("task uid"));
            }
        }
    }
    // Miroir's tasks, not only the nodes' queues: a write a loaded node missed is replayed
    // to it, and the task succeeds once it is.
    for uid in through_miroir {
        assert_eq!(
            wait_task(&cluster.miroir.url(), uid).await["status"],
            "succeeded"
        );
    }
    for node in &cluster.nodes {
        wait_idle(&node.url()).await;
    }
    wait_idle(&reference[0].url()).await;
    Pair { cluster, reference }
}

impl Pair {
    async fn both(&self, body: Value) -> ((u16, Value), (u16, Value)) {
        let through = call(
            &self.cluster.miroir.url(),
            "POST",
            "/multi-search",
            Some(body.clone()),
        )
        .await;
        let direct = call(
            &self.reference[0].url(),
            "POST",
            "/multi-search",
            Some(body),
        )
        .await;
        (through, direct)
    }
}

/// Hits as (score, {ids}) groups, in order.
fn score_groups(hits: &Value, key: impl Fn(&Value) -> String) -> Vec<(String, BTreeSet<String>)> {
    let mut groups: Vec<(String, BTreeSet<String>)> = Vec::new();
    for hit in hits.as_array().into_iter().flatten() {
        let score = key(hit);
        let id = format!("{}/{}", hit["_federation"]["indexUid"], hit["id"]);
        match groups.last_mut() {
            Some((s, ids)) if *s == score => {
                ids.insert(id);
            }
            _ => groups.push((score, BTreeSet::from([id]))),
        }
    }
    groups
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
    v
}

/// Same ranking up to the order inside the first and last groups of equal scores (the window
/// can cut them differently: ties are ordered by node, not by internal id).
fn assert_same_ranking(a: &Value, b: &Value, key: impl Fn(&Value) -> String + Copy, what: &str) {
    let (ga, gb) = (score_groups(a, key), score_groups(b, key));
    assert_eq!(
        ga.iter().map(|g| &g.0).collect::<Vec<_>>(),
        gb.iter().map(|g| &g.0).collect::<Vec<_>>(),
        "{what}: score sequence"
    );
    let full = ga.len().min(gb.len()).saturating_sub(1);
    if full > 1 {
        assert_eq!(
            ga[1..full],
            gb[1..full],
            "{what}: hit sets within equal scores"
        );
    }
}

fn score_key(hit: &Value) -> String {
    format!("{:.9}", hit["_rankingScore"].as_f64().unwrap_or(-1.0))
}

fn weighted_key(hit: &Value) -> String {
    format!(
        "{:.9}",
        hit["_federation"]["weightedRankingScore"]
            .as_f64()
            .unwrap_or(-1.0)
    )
}

#[tokio::test]
async fn plain_multi_search_answers_each_query_like_one_node() {
    let p = pair().await;
    let body = json!({"queries": [
        {"indexUid": "movies", "q": "river", "showRankingScore": true, "limit": 7, "facets": ["genre"]},
        {"indexUid": "series", "q": "storm night", "showRankingScore": true, "filter": "year > 1990", "hitsPerPage": 5, "page": 2},
        {"indexUid": "movies", "q": "", "showRankingScore": true, "sort": ["year:desc"], "offset": 3, "limit": 4},
    ]});
    let ((s1, through), (s2, direct)) = p.both(body).await;
    assert_eq!((s1, s2), (200, 200), "{through} / {direct}");
    let (a, b) = (
        through["results"].as_array().unwrap(),
        direct["results"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 3);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x["indexUid"], y["indexUid"], "query {i}");
        let keys = ["hits", "processingTimeMs", "requestUid"];
        assert_eq!(
            without(x, &keys),
            without(y, &keys),
            "query {i}: totals, facets"
        );
        assert_same_ranking(&x["hits"], &y["hits"], score_key, &format!("query {i}"));
    }
    // `indexUid` comes first, as Meilisearch writes it.
    let raw = client()
        .post(format!("{}/multi-search", p.cluster.miroir.url()))
        .bearer_auth(KEY)
        .json(&json!({"queries": [{"indexUid": "series", "q": "red", "limit": 1}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.starts_with(r#"{"results":[{"indexUid":"series","hits":["#),
        "{raw}"
    );
}

#[tokio::test]
async fn one_failing_query_fails_the_request_with_meilisearchs_error() {
    let p = pair().await;
    for body in [
        json!({"queries": [{"indexUid": "movies", "q": "red"}, {"indexUid": "nope", "q": "red"}]}),
        json!({"queries": [{"indexUid": "movies", "q": "red"}, {"indexUid": "series", "filter": "title = x"}]}),
        json!({"queries": [{"indexUid": "movies", "federationOptions": {"weight": 2.0}}]}),
        json!({"queries": [{"indexUid": "movies"}], "federation": {}, "unknown": 1}),
        json!({"queries": [{"indexUid": "movies", "limit": 3}], "federation": {}}),
        json!({"queries": [{"indexUid": "movies", "facets": ["genre"]}], "federation": {}}),
        json!({"nope": []}),
    ] {
        let ((s1, e1), (s2, e2)) = p.both(body.clone()).await;
        assert_eq!(
            (s1, &e1["code"], &e1["message"]),
            (s2, &e2["code"], &e2["message"]),
            "{body}"
        );
        assert!(s1 >= 400, "{body}: {e1}");
    }
    let ((_, e), _) = p
        .both(json!({"queries": [{"indexUid": "movies"}, {"indexUid": "nope"}]}))
        .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Inside `.queries[1]`: "),
        "{e}"
    );
}

/// `POST /multi-search` with `token` (none: no `Authorization` header).
async fn multi_search_as(base: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client().post(format!("{base}/multi-search")).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn auth_errors_name_a_query_only_when_its_index_is_forbidden_as_on_one_node() {
    let p = pair().await;
    let bases = [p.cluster.miroir.url(), p.reference[0].url()];
    // A key that may search `movies` only, on each target.
    let mut movies_only = Vec::new();
    for base in &bases {
        let (s, key) = call(
            base,
            "POST",
            "/keys",
            Some(json!({"actions": ["search"], "indexes": ["movies"], "expiresAt": null})),
        )
        .await;
        assert_eq!(s, 201, "{key}");
        movies_only.push(key["key"].as_str().unwrap().to_owned());
    }
    let body = json!({"queries": [{"indexUid": "movies"}, {"indexUid": "series"}]});
    let federated =
        json!({"federation": {}, "queries": [{"indexUid": "movies"}, {"indexUid": "series"}]});
    let wrong = Some("wrong".to_owned());
    let movies = [Some(movies_only[0].clone()), Some(movies_only[1].clone())];
    for (what, token, body) in [
        ("no key", [None, None], &body),
        ("a wrong key", [wrong.clone(), wrong], &body),
        ("a key for movies only", movies.clone(), &body),
        ("a key for movies only, federated", movies, &federated),
    ] {
        let through = multi_search_as(&bases[0], token[0].as_deref(), body).await;
        let direct = multi_search_as(&bases[1], token[1].as_deref(), body).await;
        assert_eq!(
            (through.0, &through.1["code"], &through.1["message"]),
            (direct.0, &direct.1["code"], &direct.1["message"]),
            "{what}"
        );
        assert!(through.0 >= 400, "{what}: {}", through.1);
    }
    let (_, e) = multi_search_as(&bases[0], Some(&movies_only[0]), &body).await;
    assert_eq!(
        e["message"],
        "Inside `.queries[1]`: The provided API key is invalid."
    );
    let (_, e) = multi_search_as(&bases[0], Some("wrong"), &body).await;
    assert_eq!(e["message"], "The provided API key is invalid.");
}

#[tokio::test]
async fn federated_search_merges_by_weighted_score_like_one_node() {
    let p = pair().await;
    let cases = [
        json!({"federation": {"limit": 12}, "queries": [
            {"indexUid": "movies", "q": "river"},
            {"indexUid": "series", "q": "river", "federationOptions": {"weight": 1.5}},
        ]}),
        json!({"federation": {"offset": 5, "limit": 10, "facetsByIndex": {"movies": ["genre"], "series": ["genre", "year"]}}, "queries": [
            {"indexUid": "movies", "q": "storm", "showRankingScore": true},
            {"indexUid": "series", "q": "green city", "federationOptions": {"weight": 0.5}},
        ]}),
        json!({"federation": {"limit": 8, "facetsByIndex": {"movies": ["genre"], "series": ["genre"]}, "mergeFacets": {}}, "queries": [
            {"indexUid": "movies", "q": "ocean", "filter": "year > 1995"},
            {"indexUid": "series", "q": "ocean"},
        ]}),
        json!({"federation": {"page": 2, "hitsPerPage": 6}, "queries": [
            {"indexUid": "series", "q": "winter"},
            {"indexUid": "movies", "q": "garden", "federationOptions": {"weight": 0.9}},
        ]}),
    ];
    for body in cases {
        let ((s1, through), (s2, direct)) = p.both(body.clone()).await;
        assert_eq!((s1, s2), (200, 200), "{body}: {through} / {direct}");
        let keys = ["hits", "processingTimeMs", "requestUid"];
        assert_eq!(
            without(&through, &keys),
            without(&direct, &keys),
            "{body}: totals, facets"
        );
        assert_same_ranking(
            &through["hits"],
            &direct["hits"],
            weighted_key,
            &body.to_string(),
        );
        for (x, y) in through["hits"]
            .as_array()
            .unwrap()
            .iter()
            .zip(direct["hits"].as_array().unwrap())
        {
            assert_eq!(
                x.as_object().unwrap().keys().collect::<Vec<_>>(),
                y.as_object().unwrap().keys().collect::<Vec<_>>(),
                "{body}: hit fields"
            );
        }
    }
}
