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

/// A key's indexes and actions on the routes Miroir answers from its own task registry, as
/// one Meilisearch node applies them (checked against Meilisearch 1.50).
#[tokio::test]
async fn task_routes_apply_the_keys_indexes_and_actions() {
    let c = cluster(2, "").await;
    let base = c.miroir.url();
    let mut uids = Vec::new();
    for index in ["A", "B"] {
        let (_, t) = call(
            &base,
            "POST",
            &format!("/indexes/{index}/documents"),
            Some(json!([{"id": 1}])),
        )
        .await;
        let uid = t["taskUid"].as_u64().unwrap();
        assert!(
            eventually(Duration::from_secs(5), || async {
                call(&base, "GET", &format!("/tasks/{uid}"), None).await.1["status"] == "succeeded"
            })
            .await
        );
        uids.push(uid);
    }
    let (task_a, task_b) = (uids[0], uids[1]);
    let create = |actions: Value| {
        let base = base.clone();
        async move {
            let (status, key) = call(
                &base,
                "POST",
                "/keys",
                Some(json!({"actions": actions, "indexes": ["A"], "expiresAt": null})),
            )
            .await;
            assert_eq!(status, 201, "{key}");
            (
                key["key"].as_str().unwrap().to_owned(),
                key["uid"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (reader, reader_uid) = create(json!(["tasks.get"])).await;
    let (canceler, _) = create(json!(["tasks.cancel"])).await;
    let as_key = |method: &'static str, path: String, key: String| {
        let url = format!("{base}{path}");
        async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let resp = client()
                .request(method, url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let code = |(status, body): (u16, Value)| (status, body["code"].as_str().map(str::to_owned));
    let refused = |status: u16, code: &str| (status, Some(code.to_owned()));

    // Tasks and batches of B do not exist for a key restricted to A.
    assert_eq!(
        code(as_key("GET", format!("/tasks/{task_b}"), reader.clone()).await),
        refused(404, "task_not_found")
    );
    assert_eq!(
        code(as_key("GET", format!("/batches/{task_b}"), reader.clone()).await),
        refused(404, "batch_not_found")
    );
    let (status, task) = as_key("GET", format!("/tasks/{task_a}"), reader.clone()).await;
    assert_eq!(
        (status, task["indexUid"].as_str()),
        (200, Some("A")),
        "{task}"
    );
    let (status, page) = as_key("GET", "/tasks?indexUids=B".into(), reader.clone()).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["results"], json!([]), "{page}");
    // Each route needs its own action, whatever the others.
    assert_eq!(
        code(
            as_key(
                "POST",
                format!("/tasks/cancel?uids={task_a}"),
                reader.clone()
            )
            .await
        ),
        refused(403, "invalid_api_key")
    );
    assert_eq!(
        code(as_key("GET", "/tasks".into(), canceler.clone()).await),
        refused(403, "invalid_api_key")
    );
    let (status, summary) = as_key(
        "POST",
        format!("/tasks/cancel?uids={task_a}"),
        canceler.clone(),
    )
    .await;
    assert_eq!(
        (status, summary["type"].as_str()),
        (200, Some("taskCancelation")),
        "{summary}"
    );
    // The key's uid names the key, but is no credential.
    assert_eq!(
        code(as_key("GET", "/tasks".into(), reader_uid).await),
        refused(403, "invalid_api_key")
    );
    // Meilisearch checks the key before the query.
    assert_eq!(
        code(as_key("GET", "/tasks/abc".into(), "wrong".into()).await),
        refused(403, "invalid_api_key")
    );
    let (status, err) = call(&base, "GET", "/tasks/abc", None).await;
    assert_eq!(
        (status, err["message"].as_str()),
        (
            400,
            Some("Task uid `abc` is invalid. It should only contain numeric characters.")
        )
    );
}
