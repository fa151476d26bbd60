//! Search under node faults, RF 2 on 3 simulated nodes: a slow node is hedged around and then
//! avoided, a hanging node or one answering 5xx costs neither completeness nor the deadline.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meili_sim::{ErrorRate, Latency};
use serde_json::{json, Value};

const DOCS: usize = 320;
const SEARCH: &str = "/indexes/movies/search";
const GENRES: [&str; 3] = ["drama", "comedy", "action"];
const WORDS: [&str; 8] = [
    "red", "blue", "green", "river", "mountain", "city", "night", "storm",
];

/// The tests here measure latency: one at a time, so they do not time each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn corpus() -> Value {
    (0..DOCS)
        .map(|i| {
            let w = |k: usize| WORDS[(i * 7 + k * 5 + i / 3) % WORDS.len()];
            json!({
                "id": i,
                "title": format!("{} {} {}", w(0), w(1), w(2)),
                "genre": GENRES[i % 3],
            })
        })
        .collect()
}

/// RF 2 over 3 nodes with `scatter` settings, `DOCS` documents indexed. Health checks are
/// rare so the upstream request counters are (almost) all searches.
async fn rf2_cluster(scatter: &str) -> Cluster {
    let nodes = sim_nodes(3).await;
    let (port, metrics_port) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&meili_sim::SimNode> = nodes.iter().collect();
    let toml = config(
        port,
        metrics_port,
        &refs,
        &format!("[scatter]\n{scatter}\n"),
    )
    .replacen("shards = 8\n", "shards = 8\nreplication_factor = 2\n", 1)
    .replacen("interval_ms = 100\n", "interval_ms = 5000\n", 1);
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let c = Cluster {
        nodes,
        miroir,
        metrics_port,
    };
    let base = c.miroir.url();
    let (s, r) = call(
        &base,
        "PATCH",
        "/indexes/movies/settings",
        Some(json!({"filterableAttributes": ["genre"]})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    let (s, r) = call(&base, "POST", "/indexes/movies/documents", Some(corpus())).await;
    assert_eq!(s, 202, "{r}");
    for node in &c.nodes {
        wait_idle(&node.url()).await;
    }
    c
}

fn query(i: usize) -> Value {
    json!({"q": WORDS[i % WORDS.len()], "limit": 10, "facets": ["genre"]})
}

/// Sequential searches; returns each one's latency. Every answer must be complete: the
/// same total as `expected` gives for that query.
async fn run(base: &str, n: usize, expected: &[Value]) -> Vec<Duration> {
    let http = client();
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let resp = http
            .post(format!("{base}{SEARCH}"))
            .bearer_auth(KEY)
            .json(&query(i))
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let degraded = resp.headers().get("x-miroir-degraded").cloned();
        let body: Value = resp.json().await.expect("json");
        took.push(started.elapsed());
        assert_eq!(status, 200, "search {i}: {body}");
        assert!(degraded.is_none(), "search {i} degraded: {degraded:?}");
        let want = &expected[i % expected.len()];
        assert_eq!(
            (
                &body["estimatedTotalHits"],
                &body["facetDistribution"],
                body["hits"].as_array().map(Vec::len)
            ),
            (
                &want["estimatedTotalHits"],
                &want["facetDistribution"],
                want["hits"].as_array().map(Vec::len)
            ),
            "search {i} incomplete"
        );
    }
    took
}

/// The answers of a healthy cluster to the query set, the reference for completeness.
async fn expected(base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..WORDS.len() {
        let (s, body) = call(base, "POST", SEARCH, Some(query(i))).await;
        assert_eq!(s, 200, "{body}");
        assert!(body["estimatedTotalHits"].as_u64().unwrap_or(0) > 0);
        out.push(body);
    }
    out
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let idx = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Search requests each node answered so far, from Miroir's upstream counters. Requests
/// abandoned to a hedge (probes of the slow node, a few per second) are not counted there.
async fn node_requests(c: &Cluster) -> Vec<f64> {
    let text = metrics_text(c.metrics_port).await;
    (0..c.nodes.len())
        .map(|i| {
            let prefix = format!("miroir_upstream_requests_total{{node=\"n{i}\"");
            text.lines()
                .filter(|l| l.starts_with(&prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .collect()
}

fn search_latency(delay: Duration) -> Latency {
    // Only searches: health checks must still pass, or the node would simply be dropped.
    Latency {
        min: delay,
        max: delay,
        path_prefix: Some(SEARCH.into()),
    }
}

#[tokio::test]
async fn hedging_keeps_p99_when_one_node_is_300ms_slower() {
    let _serial = SERIAL.lock().await;
    let c = rf2_cluster("hedge_after_ms_floor = 5\nnode_timeout_ms = 2000").await;
    let base = c.miroir.url();
    let want = expected(&base).await;
    run(&base, 50, &want).await;
    let healthy = run(&base, 200, &want).await;

    let (p50_ok, p99_ok) = (percentile(&healthy, 0.5), percentile(&healthy, 0.99));
    println!(
        "hedging: healthy p50 {:.2} ms p99 {:.2} ms",
        ms(p50_ok),
        ms(p99_ok)
    );
    // A request that meets the slow node is hedged after the floor (5 ms) and answered by the
    // other replica, so it costs the floor plus a healthy answer; the margin absorbs
    // scheduling noise on a loaded 2-core machine. Still far below the 300 ms slowdown.
    let bound = p99_ok * 2 + Duration::from_millis(25);

    c.nodes[1]
        .faults()
        .set_latency(search_latency(Duration::from_millis(300)));
    // Right after the slowdown (the node's history says it is fast), then once its own
    // recent latencies say it is slow (exploration still probes it now and then).
    for phase in ["just slowed", "steady slow"] {
        if phase == "steady slow" {
            run(&base, 400, &want).await;
        }
        let slow = run(&base, 200, &want).await;
        let (p50, p99, max) = (
            percentile(&slow, 0.5),
            percentile(&slow, 0.99),
            percentile(&slow, 1.0),
        );
        println!(
            "hedging: one node +300 ms, {phase}: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            ms(p50),
            ms(p99),
            ms(max)
        );
        assert!(
            p99 <= bound,
            "{phase}: p99 {:.2} ms with a slow node, healthy p99 {:.2} ms",
            ms(p99),
            ms(p99_ok)
        );
    }
}

#[tokio::test]
async fn ewma_sends_few_requests_to_a_slow_replica() {
    let _serial = SERIAL.lock().await;
    let c = rf2_cluster("").await;
    let base = c.miroir.url();
    let want = expected(&base).await;
    c.nodes[2]
        .faults()
        .set_latency(search_latency(Duration::from_millis(50)));
    run(&base, 40, &want).await;
    let before = node_requests(&c).await;
    run(&base, 200, &want).await;
    let after = node_requests(&c).await;
    let delta: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: f64 = delta.iter().sum();
    let share = delta[2] / total;
    println!(
        "ewma: node requests over 200 searches {delta:?}, slow node share {:.1} %",
        share * 100.0
    );
    assert!(share < 0.20, "slow node got {:.1} %", share * 100.0);

    // Recovered: a probe measures it again within about a second and it gets its share back.
    c.nodes[2].faults().clear();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        run(&base, 20, &want).await;
    }
    let before = node_requests(&c).await;
    run(&base, 200, &want).await;
    let after = node_requests(&c).await;
    let delta: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let share = delta[2] / delta.iter().sum::<f64>();
    println!(
        "ewma: after recovery {delta:?}, recovered node share {:.1} %",
        share * 100.0
    );
    assert!(share > 0.10, "recovered node got {:.1} %", share * 100.0);
}

#[tokio::test]
async fn a_hanging_node_costs_neither_results_nor_the_node_timeout() {
    let _serial = SERIAL.lock().await;
    let c = rf2_cluster("node_timeout_ms = 500").await;
    let base = c.miroir.url();
    let want = expected(&base).await;
    c.nodes[0].faults().set_hang(Some(SEARCH.into()));
    let took = run(&base, 60, &want).await;
    let max = percentile(&took, 1.0);
    println!(
        "hang: 60 searches complete, p50 {:.2} ms p99 {:.2} ms max {:.2} ms (node timeout 500 ms)",
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
        ms(max)
    );
    assert!(
        max < Duration::from_millis(500),
        "slowest {:.1} ms",
        ms(max)
    );
}

#[tokio::test]
async fn a_node_answering_5xx_to_every_search_leaves_results_complete() {
    let _serial = SERIAL.lock().await;
    let c = rf2_cluster("").await;
    let base = c.miroir.url();
    let want = expected(&base).await;
    c.nodes[1].faults().set_error_rate(ErrorRate {
        rate: 1.0,
        status: 500,
        path_prefix: Some(SEARCH.into()),
    });
    let took = run(&base, 60, &want).await;
    println!(
        "5xx: 60 searches complete, p99 {:.2} ms",
        ms(percentile(&took, 0.99))
    );
    let after = node_requests(&c).await;
    println!("5xx: node requests {after:?}");
}
