//! Facet distributions through Miroir over 3 nodes against one node holding every document,
//! with facets of many distinct values (so a node's own `maxValuesPerFacet` cut matters),
//! in both `sortFacetValuesBy` orders, at the default limit and a small one. The real-node
//! test runs only with `MEILI_BIN` and also checks the simulator against the real reference;
//! the simulator test always runs.

mod common;

use std::collections::BTreeSet;

use common::{call, compared, wait_idle, Compared};
use miroir_testkit::{require_meili_bin, start_node, NodeKind, TestNode};
use serde_json::{json, Value};

const DOCS: usize = 4000;
const WORDS: [&str; 8] = [
    "amber", "river", "stone", "garden", "silver", "rocket", "harbor", "forest",
];

/// `(index, faceting)`: both orders, Meilisearch's default limit and a small one.
fn indexes() -> [(&'static str, Value); 4] {
    [
        ("alpha100", json!({"sortFacetValuesBy": {"*": "alpha"}})),
        ("count100", json!({"sortFacetValuesBy": {"*": "count"}})),
        (
            "alpha10",
            json!({"maxValuesPerFacet": 10, "sortFacetValuesBy": {"*": "alpha"}}),
        ),
        (
            "count10",
            json!({"maxValuesPerFacet": 10, "sortFacetValuesBy": {"*": "count"}}),
        ),
    ]
}

fn settings() -> Value {
    json!({
        "filterableAttributes": ["n", "s", "m", "t", "p"],
        "searchableAttributes": ["title"],
    })
}

/// Skewed facets with hundreds of distinct values: `n` numbers, `s` strings (some in
/// capitals), `m` numbers and strings mixed, `t` arrays of tags, `p` prices.
fn documents() -> Vec<Value> {
    (0..DOCS)
        .map(|i| {
            let h = (i * 7919) % DOCS;
            let n = h * h / 64_000;
            let k = (h * 37 % 1000) * (h * 37 % 1000) / 3300;
            // Capitals order among the others by their normalized form. One value keeps one
            // spelling: which of several one node shows depends on its internal document ids.
            let s = if k.is_multiple_of(7) {
                format!("V{k}")
            } else {
                format!("v{k}")
            };
            let m = if i % 3 == 0 {
                json!(format!("w{}", (i * 5) % 30))
            } else {
                json!((i * 13) % 40)
            };
            let tags: Vec<String> = (0..1 + i % 3)
                .map(|j| format!("tag{}", (h / (j + 1)) % 60))
                .collect();
            json!({
                "id": i,
                "title": format!("{} {}", WORDS[i % 8], WORDS[h % 8]),
                "n": n,
                "s": s,
                "m": m,
                "t": tags,
                "p": ((i * 37) % 5000) as f64 / 100.0,
            })
        })
        .collect()
}

/// Filters and queries from a handful of matches to all of them (past the 3000 a node scans
/// document by document in `alpha` order).
fn queries() -> Vec<Value> {
    let facets = json!(["n", "s", "m", "t", "p"]);
    [
        json!({}),
        json!({"filter": "n < 40"}),
        json!({"filter": "n >= 40"}),
        json!({"filter": "p > 12"}),
        json!({"filter": "m EXISTS"}),
        json!({"q": "river"}),
        json!({"q": "amber stone"}),
        json!({"filter": "s = v3 OR s = v12"}),
        json!({"filter": "t = tag5"}),
        json!({"q": "garden", "filter": "n > 100"}),
        json!({"limit": 0}),
        json!({"hitsPerPage": 3, "page": 2}),
    ]
    .into_iter()
    .map(|mut q| {
        q["facets"] = facets.clone();
        q["limit"] = q.get("limit").cloned().unwrap_or(json!(3));
        if q.get("page").is_some() {
            if let Some(o) = q.as_object_mut() {
                o.remove("limit");
            }
        }
        q
    })
    .collect()
}

/// The facet part of an answer, values in the order given (object equality ignores it).
fn facets(resp: &Value) -> Value {
    let ordered = |v: &Value| -> Value {
        v.as_object()
            .map(|o| {
                o.iter()
                    .map(|(facet, values)| {
                        let pairs: Vec<Value> = values
                            .as_object()
                            .map(|vs| vs.iter().map(|(k, c)| json!([k, c])).collect())
                            .unwrap_or_default();
                        json!([facet, pairs])
                    })
                    .collect()
            })
            .unwrap_or(Value::Null)
    };
    json!({
        "facetDistribution": ordered(&resp["facetDistribution"]),
        "facetStats": resp["facetStats"],
    })
}

/// The first difference between two facet answers, for the report.
fn first_difference(a: &Value, b: &Value) -> String {
    let (Some(fa), Some(fb)) = (
        a["facetDistribution"].as_array(),
        b["facetDistribution"].as_array(),
    ) else {
        return format!("{a} / {b}");
    };
    for (x, y) in fa.iter().zip(fb) {
        if x != y {
            let (vx, vy) = (
                x[1].as_array().cloned().unwrap_or_default(),
                y[1].as_array().cloned().unwrap_or_default(),
            );
            let at = vx.iter().zip(&vy).position(|(p, q)| p != q);
            let at = at.unwrap_or(vx.len().min(vy.len()));
            let window =
                |v: &[Value]| -> Vec<Value> { v.iter().skip(at).take(4).cloned().collect() };
            return format!(
                "{}: {} vs {} values; from #{at}: {:?} vs {:?}",
                x[0],
                vx.len(),
                vy.len(),
                window(&vx),
                window(&vy)
            );
        }
    }
    format!("stats {} vs {}", a["facetStats"], b["facetStats"])
}

async fn setup(kind: NodeKind) -> Compared {
    let uids: Vec<&str> = indexes().iter().map(|(uid, _)| *uid).collect();
    let c = compared(kind, &uids, &settings(), &documents()).await;
    for base in [c.miroir.url(), c.reference.url()] {
        for (uid, faceting) in indexes() {
            let path = format!("/indexes/{uid}/settings/faceting");
            let (s, r) = call(&base, "PATCH", &path, Some(faceting)).await;
            assert_eq!(s, 202, "{r}");
        }
    }
    for node in c.nodes.iter().chain([&c.reference]) {
        wait_idle(&node.url()).await;
    }
    c
}

/// Whether two facet answers differ at most in the order of equal counts: the same counts in
/// the same order, and the same values for every count but the last shown (a list cut inside
/// a run of equal counts may keep different values of it). In `count` order a node orders
/// equal counts by its facet tree, which no merge sees (see `facets` in miroir-filters).
fn equal_up_to_ties(a: &Value, b: &Value) -> bool {
    if a["facetStats"] != b["facetStats"] {
        return false;
    }
    let (Some(fa), Some(fb)) = (
        a["facetDistribution"].as_array(),
        b["facetDistribution"].as_array(),
    ) else {
        return a == b;
    };
    fa.len() == fb.len()
        && fa
            .iter()
            .zip(fb)
            .all(|(x, y)| x[0] == y[0] && same_runs(&x[1], &y[1]))
}

/// One run of equal counts in a facet's list: numbers or strings, the count, the values.
type Run = (bool, u64, BTreeSet<String>);

/// A facet's `[value, count]` pairs as runs of equal counts, numbers apart from strings.
fn runs(pairs: &Value) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for pair in pairs.as_array().into_iter().flatten() {
        let key = pair[0].as_str().unwrap_or_default();
        let number = key.parse::<f64>().is_ok();
        let count = pair[1].as_u64().unwrap_or(0);
        match runs.last_mut() {
            Some((n, c, set)) if *n == number && *c == count => {
                set.insert(key.to_owned());
            }
            _ => runs.push((number, count, BTreeSet::from([key.to_owned()]))),
        }
    }
    runs
}

/// The same runs, with the same values but in the last run of numbers and of strings (where
/// the list may be cut).
fn same_runs(a: &Value, b: &Value) -> bool {
    let (ra, rb) = (runs(a), runs(b));
    let shape = |r: &[Run]| -> Vec<(bool, u64, usize)> {
        r.iter().map(|(n, c, s)| (*n, *c, s.len())).collect()
    };
    let last_of_section = |r: &[Run], i: usize| r.get(i + 1).is_none_or(|next| next.0 != r[i].0);
    shape(&ra) == shape(&rb) && (0..ra.len()).all(|i| last_of_section(&ra, i) || ra[i] == rb[i])
}

/// Every query on every index through one side and the other.
struct Outcome {
    n: usize,
    same: usize,
    /// Equal but for the order of equal counts.
    same_but_ties: usize,
    mismatches: Vec<String>,
}

async fn compare(a: &str, b: &str) -> Outcome {
    let (mut same, mut same_but_ties, mut n, mut mismatches) = (0, 0, 0, Vec::new());
    for (uid, _) in indexes() {
        for q in queries() {
            n += 1;
            let path = format!("/indexes/{uid}/search");
            let (s1, r1) = call(a, "POST", &path, Some(q.clone())).await;
            let (s2, r2) = call(b, "POST", &path, Some(q.clone())).await;
            assert_eq!((s1, s2), (200, 200), "{uid} {q}: {r1} / {r2}");
            let (f1, f2) = (facets(&r1), facets(&r2));
            let totals = |r: &Value| (r["estimatedTotalHits"].clone(), r["totalHits"].clone());
            let same_totals = totals(&r1) == totals(&r2);
            if f1 == f2 && same_totals {
                same += 1;
            } else {
                let ties = same_totals && equal_up_to_ties(&f1, &f2);
                same_but_ties += usize::from(ties);
                let kind = if ties { "tie order" } else { "DIFF" };
                let diff = first_difference(&f1, &f2);
                mismatches.push(format!("{kind} {uid} {q}: {diff}"));
            }
        }
    }
    Outcome {
        n,
        same,
        same_but_ties,
        mismatches,
    }
}

fn report(label: &str, o: &Outcome) {
    println!(
        "{label}: {}/{} facet answers equal, {} more equal but for the order of equal counts",
        o.same, o.n, o.same_but_ties
    );
    for m in &o.mismatches {
        println!("MISMATCH {label} {m}");
    }
}

#[tokio::test]
async fn facets_through_miroir_over_real_nodes_equal_one_real_node() {
    let _bin = require_meili_bin!();
    let real = setup(NodeKind::Real).await;
    let through = compare(&real.miroir.url(), &real.reference.url()).await;
    report("real nodes", &through);

    // The simulator, holding the same documents, answers what the real node answers.
    let sim: TestNode = start_node(NodeKind::Sim, common::KEY).await;
    for (uid, faceting) in indexes() {
        let path = format!("/indexes/{uid}/settings");
        let mut s = settings();
        s["faceting"] = faceting;
        let (st, r) = call(&sim.url(), "PATCH", &path, Some(s)).await;
        assert_eq!(st, 202, "{r}");
        let path = format!("/indexes/{uid}/documents");
        let (st, r) = call(&sim.url(), "POST", &path, Some(Value::Array(documents()))).await;
        assert_eq!(st, 202, "{r}");
    }
    wait_idle(&sim.url()).await;
    let fidelity = compare(&sim.url(), &real.reference.url()).await;
    report("simulator vs real node", &fidelity);

    assert_eq!(
        through.same + through.same_but_ties,
        through.n,
        "facets differ from one real node"
    );
    assert_eq!(
        fidelity.same + fidelity.same_but_ties,
        fidelity.n,
        "the simulator differs from real Meilisearch"
    );
}

#[tokio::test]
async fn facets_through_miroir_over_simulated_nodes_equal_one_simulated_node() {
    let sim = setup(NodeKind::Sim).await;
    let through = compare(&sim.miroir.url(), &sim.reference.url()).await;
    report("simulated nodes", &through);
    assert_eq!(
        through.same, through.n,
        "facets differ from one simulated node"
    );
}

/// The nodes hold the client's `maxValuesPerFacet` widened; clients see theirs in settings
/// reads and task details, through updates and resets.
#[tokio::test]
async fn the_nodes_hold_a_widened_limit_and_clients_see_theirs() {
    let c = compared(NodeKind::Sim, &["i"], &settings(), &documents()[..20]).await;
    let miroir = c.miroir.url();
    let limits = || async {
        let mut out = Vec::new();
        for node in &c.nodes {
            let (_, f) = call(&node.url(), "GET", "/indexes/i/settings/faceting", None).await;
            out.push(f["maxValuesPerFacet"].clone());
        }
        let (_, f) = call(&miroir, "GET", "/indexes/i/settings/faceting", None).await;
        let (_, all) = call(&miroir, "GET", "/indexes/i/settings", None).await;
        (
            out,
            f["maxValuesPerFacet"].clone(),
            all["faceting"]["maxValuesPerFacet"].clone(),
        )
    };
    let idle = || async {
        for node in &c.nodes {
            wait_idle(&node.url()).await;
        }
    };
    assert_eq!(
        limits().await,
        (vec![json!(10_100); 3], json!(100), json!(100))
    );

    let (s, task) = call(
        &miroir,
        "PATCH",
        "/indexes/i/settings/faceting",
        Some(json!({"maxValuesPerFacet": 5})),
    )
    .await;
    assert_eq!(s, 202, "{task}");
    idle().await;
    assert_eq!(limits().await, (vec![json!(10_005); 3], json!(5), json!(5)));
    let path = format!("/tasks/{}", task["taskUid"]);
    let (_, view) = call(&miroir, "GET", &path, None).await;
    assert_eq!(
        view["details"]["faceting"],
        json!({"maxValuesPerFacet": 5}),
        "{view}"
    );

    let (s, _) = call(&miroir, "DELETE", "/indexes/i/settings/faceting", None).await;
    assert_eq!(s, 202);
    idle().await;
    assert_eq!(
        limits().await,
        (vec![json!(10_100); 3], json!(100), json!(100))
    );
}

/// What the merge relies on to tell milli's facet path without asking for the `_miroir_shard`
/// facet: a node's hit count is the number of documents it counted facets over, in both
/// pagination modes, with and without a query, a filter and `distinct` (whose removals a
/// placeholder search applies only to the documents it reached, in the total and the facet
/// counts alike).
async fn totals_are_facet_candidates(nodes: &[TestNode]) -> usize {
    let mut checked = 0;
    for node in nodes {
        for base in queries() {
            for distinct in [None, Some("s"), Some("m")] {
                let mut q = base.clone();
                q["facets"] = json!(["_miroir_shard", "s"]);
                if let Some(d) = distinct {
                    q["distinct"] = json!(d);
                }
                let (st, r) = call(
                    &node.url(),
                    "POST",
                    "/indexes/alpha100/search",
                    Some(q.clone()),
                )
                .await;
                assert_eq!(st, 200, "{q}: {r}");
                let total = r["totalHits"].as_u64().or(r["estimatedTotalHits"].as_u64());
                let counted: u64 = r["facetDistribution"]["_miroir_shard"]
                    .as_object()
                    .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
                assert_eq!(total, Some(counted), "{} {q}: {r}", node.url());
                checked += 1;
            }
        }
    }
    checked
}

#[tokio::test]
async fn a_real_nodes_total_is_the_count_it_faceted_over() {
    let _bin = require_meili_bin!();
    let real = setup(NodeKind::Real).await;
    let checked = totals_are_facet_candidates(&real.nodes).await;
    eprintln!("real nodes: total = facet candidates in {checked} answers");
}

#[tokio::test]
async fn a_simulated_nodes_total_is_the_count_it_faceted_over() {
    let sim = setup(NodeKind::Sim).await;
    let checked = totals_are_facet_candidates(&sim.nodes).await;
    eprintln!("simulated nodes: total = facet candidates in {checked} answers");
}
