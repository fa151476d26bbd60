//! Read-your-writes sessions: with `X-Miroir-Session`, a read right after the session's own
//! write sees it, even on nodes slow to process it; without the header, reads are as before
//! (they may not see it yet); a read that waited longer than Miroir's bound says so with
//! `X-Miroir-Session: stale`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn send(
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    session: Option<&str>,
) -> (u16, Option<String>, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(KEY)
        .timeout(Duration::from_secs(30));
    if let Some(s) = session {
        req = req.header("X-Miroir-Session", s);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let header = resp
        .headers()
        .get("x-miroir-session")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, header, resp.json().await.unwrap_or(Value::Null))
}

fn docs(from: u64, n: u64) -> Value {
    json!((from..from + n)
        .map(|i| json!({"id": i, "title": format!("t {i}")}))
        .collect::<Vec<_>>())
}

async fn total(base: &str, session: Option<&str>) -> (u64, Option<String>) {
    let (status, header, found) = send(
        base,
        "POST",
        "/indexes/s/search",
        Some(json!({"q": "", "limit": 0})),
        session,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    (found["estimatedTotalHits"].as_u64().unwrap(), header)
}

#[tokio::test]
async fn a_session_reads_its_own_writes_on_slow_nodes() {
    let c = slow_cluster(3, Duration::from_millis(1500), "").await;
    let base = c.miroir.url();
    // The index exists and is settled before the measured writes.
    let (s, _, task) = send(
        &base,
        "POST",
        "/indexes/s/documents?primaryKey=id",
        Some(docs(0, 5)),
        None,
    )
    .await;
    assert_eq!(s, 202, "{task}");
    wait_task(&base, task["taskUid"].as_u64().unwrap()).await;

    let (s, _, task) = send(
        &base,
        "POST",
        "/indexes/s/documents",
        Some(docs(100, 10)),
        Some("alice"),
    )
    .await;
    assert_eq!(s, 202, "{task}");
    let asked = Instant::now();
    let (seen, header) = total(&base, Some("alice")).await;
    assert_eq!(seen, 15, "the session's read sees its own write");
    assert_eq!(header, None, "not stale");
    println!(
        "the session's read waited {:?} for its write",
        asked.elapsed()
    );

    // Without the header (or another session), a read right after a write may not see it.
    let (s, _, task) = send(
        &base,
        "POST",
        "/indexes/s/documents",
        Some(docs(200, 10)),
        None,
    )
    .await;
    assert_eq!(s, 202, "{task}");
    let (seen, _) = total(&base, Some("bob")).await;
    assert_eq!(
        seen, 15,
        "bob's read did not wait for a write that is not his"
    );
    wait_task(&base, task["taskUid"].as_u64().unwrap()).await;
    let (seen, _) = total(&base, None).await;
    assert_eq!(seen, 25);
}

#[tokio::test]
async fn a_read_that_waited_past_the_bound_is_marked_stale() {
    let c = slow_cluster(2, Duration::from_secs(8), "").await;
    let base = c.miroir.url();
    let (s, _, task) = send(
        &base,
        "POST",
        "/indexes/s/documents?primaryKey=id",
        Some(docs(0, 3)),
        Some("carol"),
    )
    .await;
    assert_eq!(s, 202, "{task}");
    // The nodes have not even created the index when the bound runs out: the read answers
    // what it can (here, that the index does not exist yet) and says it is stale.
    let (_, header, answer) = send(
        &base,
        "POST",
        "/indexes/s/search",
        Some(json!({"q": ""})),
        Some("carol"),
    )
    .await;
    assert_eq!(header.as_deref(), Some("stale"), "{answer}");
}
