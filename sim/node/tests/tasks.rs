//! Task lifecycle, listing filters, pagination, cancelation and deletion.

mod common;

use std::time::Duration;

use common::{start_with, succeeded, task_uid, MASTER_KEY};
use meili_sim::SimConfig;
use serde_json::{json, Value};

fn slow() -> SimConfig {
    SimConfig {
        master_key: Some(MASTER_KEY.into()),
        task_delay: Duration::from_millis(150),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn tasks_go_enqueued_processing_succeeded_with_full_shape() {
    let (_node, c) = start_with(slow()).await;
    let (status, summary) = c
        .post(
            "/indexes/m/documents?customMetadata=batch-7",
            json!([{"id": 1}]),
        )
        .await;
    assert_eq!(status, 202);
    let keys: Vec<&String> = summary.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "taskUid",
            "indexUid",
            "status",
            "type",
            "enqueuedAt",
            "customMetadata"
        ]
    );
    assert_eq!(summary["taskUid"], 0, "task uids start at 0");
    assert_eq!(summary["status"], "enqueued");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, processing) = c.get("/tasks/0").await;
    assert_eq!(processing["status"], "processing");
    assert_eq!(processing["details"]["indexedDocuments"], Value::Null);
    let done = c.wait_task(0).await;
    let keys: Vec<&String> = done.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "uid",
            "batchUid",
            "indexUid",
            "status",
            "type",
            "canceledBy",
            "details",
            "error",
            "duration",
            "enqueuedAt",
            "startedAt",
            "finishedAt",
            "customMetadata"
        ]
    );
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["customMetadata"], "batch-7");
    assert!(
        done["duration"].as_str().unwrap().starts_with("PT0.1"),
        "{}",
        done["duration"]
    );
    let (status, body) = c.get("/tasks/99").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("task_not_found"))
    );
    let (_, batch) = c.get("/batches/0").await;
    assert_eq!(batch["stats"]["totalNbTasks"], 1);
}

#[tokio::test]
async fn task_list_filters_and_paginates() {
    let (_node, c) = start_with(SimConfig {
        master_key: Some(MASTER_KEY.into()),
        ..SimConfig::default()
    })
    .await;
    for i in 0..5 {
        let index = if i % 2 == 0 { "even" } else { "odd" };
        succeeded(
            &c,
            c.post(&format!("/indexes/{index}/documents"), json!([{"id": i}]))
                .await,
        )
        .await;
    }
    succeeded(&c, c.post("/indexes", json!({"uid": "x"})).await).await;

    let (_, page) = c.get("/tasks?limit=2").await;
    let uids: Vec<u64> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, [5, 4]);
    assert_eq!(
        (
            page["total"].clone(),
            page["from"].clone(),
            page["next"].clone()
        ),
        (json!(6), json!(5), json!(3))
    );
    let (_, page) = c.get("/tasks?limit=2&from=3").await;
    assert_eq!(page["results"][0]["uid"], 3);
    let (_, page) = c.get("/tasks?reverse=true&limit=1").await;
    assert_eq!(page["results"][0]["uid"], 0);

    let (_, page) = c.get("/tasks?indexUids=odd").await;
    assert_eq!(page["total"], 2);
    let (_, page) = c.get("/tasks?types=indexCreation&statuses=succeeded").await;
    assert_eq!(page["total"], 1);
    let (_, page) = c.get("/tasks?uids=1,2").await;
    assert_eq!(page["total"], 2);
    let (_, page) = c
        .get("/tasks?afterEnqueuedAt=2000-01-01&beforeEnqueuedAt=2999-01-01")
        .await;
    assert_eq!(page["total"], 6);

    for (query, code) in [
        ("limit=abc", "invalid_task_limit"),
        ("statuses=finished", "invalid_task_statuses"),
        ("types=unknown", "invalid_task_types"),
        ("uids=x", "invalid_task_uids"),
        ("beforeStartedAt=tomorrow", "invalid_task_before_started_at"),
        ("foo=1", "bad_request"),
    ] {
        let (status, body) = c.get(&format!("/tasks?{query}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
}

#[tokio::test]
async fn cancel_and_delete_tasks() {
    let (_node, c) = start_with(slow()).await;
    let first = task_uid(&c.post("/indexes/m/documents", json!([{"id": 1}])).await.1);
    let second = task_uid(&c.post("/indexes/m/documents", json!([{"id": 2}])).await.1);

    let (status, body) = c.post("/tasks/cancel", Value::Null).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_task_filters"))
    );
    let (status, cancel) = c
        .post(&format!("/tasks/cancel?uids={second}"), Value::Null)
        .await;
    assert_eq!(status, 200, "Meilisearch answers a cancelation with 200");
    assert_eq!(cancel["type"], "taskCancelation");
    assert_eq!(cancel["indexUid"], Value::Null);
    let cancel_task = c.wait_task(task_uid(&cancel)).await;
    assert_eq!(
        cancel_task["details"],
        json!({"matchedTasks": 1, "canceledTasks": 1, "originalFilter": format!("?uids={second}")})
    );
    let canceled = c.wait_task(second).await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["canceledBy"], cancel_task["uid"]);
    assert_eq!(c.wait_task(first).await["status"], "succeeded");
    assert_eq!(
        c.get("/indexes/m/documents").await.1["total"],
        1,
        "the canceled addition never ran"
    );

    let (status, body) = c.delete("/tasks").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_task_filters"))
    );
    let (_, deletion) = c.delete(&format!("/tasks?uids={first}")).await;
    let deletion = c.wait_task(task_uid(&deletion)).await;
    assert_eq!(deletion["details"]["deletedTasks"], 1);
    assert_eq!(c.get(&format!("/tasks/{first}")).await.0, 404);
}

#[tokio::test]
async fn batches_list_one_batch_per_task() {
    let (_node, c) = start_with(SimConfig {
        master_key: Some(MASTER_KEY.into()),
        ..SimConfig::default()
    })
    .await;
    succeeded(&c, c.post("/indexes", json!({"uid": "a"})).await).await;
    let task = succeeded(&c, c.post("/indexes/a/documents", json!([{"id": 1}])).await).await;
    let (_, list) = c.get("/batches").await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["results"][0]["uid"], task["batchUid"]);
    let (_, batch) = c.get(&format!("/batches/{}", task["batchUid"])).await;
    assert_eq!(
        batch["stats"]["types"],
        json!({"documentAdditionOrUpdate": 1})
    );
    assert_eq!(batch["stats"]["indexUids"], json!({"a": 1}));
    let (_, filtered) = c.get("/batches?types=indexCreation").await;
    assert_eq!(filtered["total"], 1);
    let (status, body) = c.get("/batches/77").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("batch_not_found"))
    );
}

#[tokio::test]
async fn keys_only_see_tasks_of_their_indexes() {
    let (_node, c) = start_with(SimConfig {
        master_key: Some(MASTER_KEY.into()),
        ..SimConfig::default()
    })
    .await;
    succeeded(&c, c.post("/indexes", json!({"uid": "mine"})).await).await;
    succeeded(&c, c.post("/indexes", json!({"uid": "theirs"})).await).await;
    succeeded(
        &c,
        c.post("/indexes/theirs/documents", json!([{"id": 1}]))
            .await,
    )
    .await;
    let (_, key) = c
        .post(
            "/keys",
            json!({"actions": ["tasks.get"], "indexes": ["mine"], "expiresAt": null}),
        )
        .await;
    let scoped = c.with_key(key["key"].as_str());
    let (_, list) = scoped.get("/tasks").await;
    // Meilisearch 1.50 counts every task the query matches in `total`, seen or not.
    assert_eq!(list["total"], 3);
    assert_eq!(list["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["results"][0]["indexUid"], "mine");
    // The page (limit + 1 tasks, for `next`) is cut before the unseen tasks are removed, so
    // it can come out empty.
    let (_, page) = scoped.get("/tasks?limit=1").await;
    assert_eq!(
        (page["results"].as_array().map(Vec::len), &page["next"]),
        (Some(0), &Value::Null)
    );
    assert_eq!(
        scoped.get("/tasks/1").await.0,
        404,
        "another index's task is invisible"
    );
}
