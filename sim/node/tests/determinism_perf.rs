//! Determinism (same script -> same uids and bodies modulo timestamps) and the speed budget
//! tests rely on (startup < 50 ms, 10 000 documents indexed < 1 s).

mod common;

use std::time::Instant;

use common::{start, succeeded};
use meili_sim::{SimConfig, SimNode};
use serde_json::{json, Value};

/// Replaces timestamps and durations so two runs compare equal.
fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if k.ends_with("At")
                    || k == "duration"
                    || k == "processingTimeMs"
                    || k == "requestUid"
                {
                    *x = json!("<scrubbed>");
                } else {
                    scrub(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

async fn script() -> Vec<Value> {
    let (_node, c) = start().await;
    let mut out = Vec::new();
    for step in [
        c.post("/indexes", json!({"uid": "a", "primaryKey": "id"}))
            .await,
        c.post(
            "/indexes/a/documents",
            json!([{"id": 1, "t": "x"}, {"id": 2, "t": "y"}]),
        )
        .await,
        c.patch(
            "/indexes/a/settings",
            json!({"filterableAttributes": ["t"]}),
        )
        .await,
        c.post("/indexes/a/documents", json!([{"t": "no id"}]))
            .await,
    ] {
        let mut body = step.1;
        let task = c.wait_task(body["taskUid"].as_u64().unwrap()).await;
        scrub(&mut body);
        out.push(body);
        let mut task = task;
        scrub(&mut task);
        out.push(task);
    }
    for path in [
        "/indexes/a/documents",
        "/tasks",
        "/indexes/a/settings",
        "/indexes/a/stats",
    ] {
        let mut body = c.get(path).await.1;
        scrub(&mut body);
        out.push(body);
    }
    let mut search = c
        .post("/indexes/a/search", json!({"filter": "t = x"}))
        .await
        .1;
    scrub(&mut search);
    out.push(search);
    out
}

#[tokio::test]
async fn same_script_gives_same_uids_and_bodies() {
    let first = script().await;
    let second = script().await;
    assert_eq!(first, second);
    assert_eq!(first[7]["uid"], 3, "task uids are sequential from 0");
}

#[tokio::test]
async fn startup_under_50ms_and_10k_documents_under_1s() {
    let started = Instant::now();
    let node = SimNode::start(SimConfig {
        master_key: Some("k".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let startup = started.elapsed();
    let c = miroir_testkit::Client::new(&node.url(), Some("k"));
    let docs: Vec<Value> = (0..10_000)
        .map(|i| {
            let genre = ["a", "b", "c"][i % 3];
            json!({"id": i, "title": format!("document number {i}"), "genre": genre, "price": i as f64 / 3.0})
        })
        .collect();
    let started = Instant::now();
    let task = succeeded(&c, c.post("/indexes/big/documents", json!(docs)).await).await;
    let indexing = started.elapsed();
    println!(
        "meili-sim startup: {:.2} ms; 10k-document indexing (request to succeeded task): {:.1} ms",
        startup.as_secs_f64() * 1e3,
        indexing.as_secs_f64() * 1e3
    );
    assert_eq!(task["details"]["indexedDocuments"], 10_000);
    assert!(startup.as_millis() < 50, "startup took {startup:?}");
    assert!(indexing.as_millis() < 1000, "indexing took {indexing:?}");
}

#[test]
fn node_runs_on_a_dedicated_runtime_and_is_used_from_another() {
    let rt_node = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let node = rt_node
        .block_on(SimNode::start(SimConfig::default()))
        .unwrap();
    let rt_test = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt_test.block_on(async {
        let c = miroir_testkit::Client::new(&node.url(), None);
        succeeded(&c, c.post("/indexes/x/documents", json!([{"id": 1}])).await).await;
        node.stop().await;
        node.restart().await.unwrap();
        // Pooled connections died with the stop, as they would with a real node.
        let fresh = miroir_testkit::Client::new(&node.url(), None);
        assert_eq!(fresh.get("/indexes/x/documents/1").await.0, 200);
    });
}
