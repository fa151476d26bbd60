//! Keys through Miroir work on every node: the default keys listed and the keys created.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn search_with(base: &str, key: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}/indexes/movies/search"))
        .bearer_auth(key)
        .json(&json!({"q": "", "limit": 100}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn listed_default_keys_and_created_keys_work_across_all_nodes() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    let docs: Vec<Value> = (0..60)
        .map(|i| json!({"id": i, "title": format!("t{i}")}))
        .collect();
    let (_, task) = call(
        &base,
        "POST",
        "/indexes/movies/documents",
        Some(Value::Array(docs)),
    )
    .await;
    let uid = task["taskUid"].as_u64().unwrap();
    for _ in 0..200 {
        if call(&base, "GET", &format!("/tasks/{uid}"), None).await.1["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (status, keys) = call(&base, "GET", "/keys", None).await;
    assert_eq!(status, 200, "{keys}");
    let search_key = keys["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Default Search API Key")
        .and_then(|k| k["key"].as_str())
        .expect("a default search key")
        .to_owned();
    // The search touches every node: the key must be valid on all of them.
    let (status, found) = search_with(&base, &search_key).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["estimatedTotalHits"], 60);
    // Listing again gives the same default keys.
    let (_, again) = call(&base, "GET", "/keys", None).await;
    assert_eq!(again["results"], keys["results"]);

    // A key created through Miroir exists on every node with one key string.
    let (status, created) = call(
        &base,
        "POST",
        "/keys",
        Some(json!({"actions": ["search"], "indexes": ["movies"], "expiresAt": null})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    for node in &c.nodes {
        let (status, _) = search_with(&node.url(), &key).await;
        assert_eq!(status, 200, "key unknown to {}", node.url());
    }
    let (status, found) = search_with(&base, &key).await;
    assert_eq!(
        (status, found["estimatedTotalHits"].as_u64()),
        (200, Some(60))
    );
    // And a wrong key is refused like Meilisearch refuses it.
    let (status, err) = search_with(&base, "not-a-key").await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
}

#[tokio::test]
async fn task_routes_answered_by_miroir_check_the_key_like_a_node() {
    let c = cluster(2, "").await;
    let base = c.miroir.url();
    let (_, t) = call(
        &base,
        "POST",
        "/indexes/movies/documents",
        Some(json!([{"id": 1}])),
    )
    .await;
    let uid = t["taskUid"].as_u64().unwrap();
    for _ in 0..200 {
        if call(&base, "GET", &format!("/tasks/{uid}"), None).await.1["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let raw = |method: &'static str, path: String, key: Option<&'static str>| {
        let url = format!("{base}{path}");
        async move {
            let mut req =
                client().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (method, path) in [
        ("GET", "/tasks".to_owned()),
        ("GET", format!("/tasks/{uid}")),
        ("GET", "/batches".to_owned()),
        ("DELETE", "/tasks?statuses=succeeded".to_owned()),
    ] {
        let (status, err) = raw(method, path.clone(), None).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (401, Some("missing_authorization_header")),
            "{method} {path}"
        );
        let (status, err) = raw(method, path.clone(), Some("wrong-key")).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (403, Some("invalid_api_key")),
            "{method} {path}"
        );
    }
    // A search-only key cannot read tasks.
    let (_, keys) = call(&base, "GET", "/keys", None).await;
    let search_key = keys["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Default Search API Key")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = client()
        .get(format!("{base}/tasks/{uid}"))
        .bearer_auth(&search_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // Nothing was deleted by the refused requests.
    let (status, _) = call(&base, "GET", &format!("/tasks/{uid}"), None).await;
    assert_eq!(status, 200);
}
