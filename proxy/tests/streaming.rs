//! Large merged answers are streamed: written chunked from the node answers' own bytes, the
//! same JSON as the answer framed with `Content-Length`, on a connection that stays usable.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Documents of about 300 bytes: a page of 1000 is far above the streaming threshold.
fn docs(n: usize) -> Value {
    let words = [
        "amber", "river", "stone", "garden", "silver", "rocket", "harbor",
    ];
    Value::Array(
        (0..n)
            .map(|i| {
                let text: Vec<&str> = (0..40).map(|k| words[(i + k * 3) % words.len()]).collect();
                json!({
                    "id": i,
                    "title": format!("{} {}", words[i % 7], words[(i / 7) % 7]),
                    "text": text.join(" "),
                    "price": (i * 37) % 1000,
                })
            })
            .collect(),
    )
}

async fn loaded_cluster(extra: &str) -> Cluster {
    // Health checks patient enough for simulated nodes busy with pages of 1000 hits on a
    // loaded machine: this file is about framing, not about failing nodes.
    let nodes = sim_nodes(3).await;
    let (port, metrics_port) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&meili_sim::SimNode> = nodes.iter().collect();
    let toml = config(port, metrics_port, &refs, extra)
        .replace("interval_ms = 100\n", "interval_ms = 1000\n")
        .replace("timeout_ms = 100\n", "timeout_ms = 1000\n")
        .replace("unhealthy_threshold = 2\n", "unhealthy_threshold = 3\n");
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
        "/indexes/big/settings",
        Some(json!({"sortableAttributes": ["price"]})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    let (s, r) = call(&base, "POST", "/indexes/big/documents", Some(docs(1500))).await;
    assert_eq!(s, 202, "{r}");
    for node in &c.nodes {
        wait_idle(&node.url()).await;
    }
    c
}

fn post(path: &str, body: &str, version: &str) -> String {
    format!(
        "POST {path} {version}\r\nHost: miroir\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The answer without what differs from one request to the next.
fn content(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.remove("processingTimeMs");
            m.remove("requestUid");
        }
    }
    strip(&mut v);
    if let Some(results) = v.get_mut("results").and_then(Value::as_array_mut) {
        results.iter_mut().for_each(strip);
    }
    v
}

/// `a == b` without printing answers of a megabyte.
fn same(a: &Value, b: &Value, what: &str) {
    assert!(
        a == b,
        "{what}: {} vs {} bytes of JSON",
        a.to_string().len(),
        b.to_string().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_search_arrives_chunked_equal_to_the_framed_answer_and_the_connection_lives_on() {
    let c = loaded_cluster("").await;
    let search = r#"{"q":"garden","limit":1000,"sort":["price:asc"],"showRankingScore":true}"#;

    let mut conn = RawConn::connect(c.miroir.port).await;
    conn.write(post("/indexes/big/search", search, "HTTP/1.1").as_bytes())
        .await;
    let streamed = conn.read_response().await;
    assert_eq!(streamed.status, 200, "{}", streamed.json());
    assert_eq!(streamed.header("transfer-encoding"), Some("chunked"));
    assert_eq!(streamed.header("content-length"), None);
    assert!(streamed.header("x-request-id").is_some());
    assert!(streamed.body.len() > 100_000, "{}", streamed.body.len());
    let streamed = streamed.json();
    assert_eq!(streamed["hits"].as_array().map(Vec::len), Some(1000));

    // Keep-alive: the same connection answers again, a small answer framed by length.
    let small = conn.get("/indexes/big/search?q=garden&limit=2").await;
    assert_eq!(small.status, 200, "{}", small.json());
    assert!(small.header("content-length").is_some());
    assert_eq!(small.json()["hits"].as_array().map(Vec::len), Some(2));

    // The same merge without streaming: an HTTP/1.0 client gets it framed by length.
    let mut old = RawConn::connect(c.miroir.port).await;
    old.write(post("/indexes/big/search", search, "HTTP/1.0").as_bytes())
        .await;
    let framed = old.read_response().await;
    assert_eq!(framed.status, 200, "{}", framed.json());
    assert_eq!(framed.header("transfer-encoding"), None);
    assert!(framed.header("content-length").is_some());
    same(
        &content(streamed.clone()),
        &content(framed.json()),
        "streamed vs framed",
    );

    // The pieces of a multi-search are streamed together, each result the search's own.
    let multi = json!({"queries": [
        {"indexUid": "big", "q": "garden", "limit": 1000, "sort": ["price:asc"], "showRankingScore": true},
        {"indexUid": "big", "q": "garden", "limit": 2},
    ]})
    .to_string();
    conn.write(post("/multi-search", &multi, "HTTP/1.1").as_bytes())
        .await;
    let many = conn.read_response().await;
    assert_eq!(many.status, 200, "{}", many.json());
    assert_eq!(many.header("transfer-encoding"), Some("chunked"));
    let many = many.json();
    let mut first = content(many["results"][0].clone());
    assert_eq!(
        first.as_object_mut().and_then(|m| m.remove("indexUid")),
        Some(json!("big"))
    );
    same(&first, &content(streamed), "multi-search result vs search");
    assert_eq!(many["results"][1]["hits"], small.json()["hits"]);

    // And the connection still serves a request.
    let again = conn.get("/indexes/big/search?q=garden&limit=1000").await;
    assert_eq!(again.status, 200, "{}", again.json());
    assert_eq!(again.json()["hits"].as_array().map(Vec::len), Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streamed_partial_answer_still_carries_the_degraded_header() {
    let c = loaded_cluster(
        "[scatter]\nnode_timeout_ms = 1000\nunavailable_shard_policy = \"partial\"\n",
    )
    .await;
    c.nodes[0].stop().await;
    let port = c.miroir.port;
    let degraded = eventually(Duration::from_secs(10), || async move {
        let mut conn = RawConn::connect(port).await;
        let r = conn.get("/indexes/big/search?limit=1000").await;
        r.status == 200
            && r.header("transfer-encoding") == Some("chunked")
            && r.header("x-miroir-degraded")
                .is_some_and(|v| v.starts_with("shards="))
            && r.header("x-request-id").is_some()
            && r.json()["hits"].as_array().is_some_and(|h| !h.is_empty())
    })
    .await;
    assert!(degraded, "a chunked partial answer with X-Miroir-Degraded");
}
