//! Sharded document writes through Miroir, checked on the simulated nodes themselves.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use miroir_filters::hidden::shard_value;
use miroir_filters::routing::{shard_for_key, NodeId, Placement, ShardId};
use serde_json::{json, Value};

const SHARDS: u32 = 8;

async fn send(
    base: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: String,
) -> (u16, Value, Option<String>) {
    let resp = client()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{base}{path}"),
        )
        .bearer_auth(KEY)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let degraded = resp
        .headers()
        .get("x-miroir-degraded")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null), degraded)
}

/// Every document of `index` on one node, by id.
async fn node_docs(url: &str, index: &str) -> BTreeMap<String, Value> {
    let (status, page) = call(
        url,
        "GET",
        &format!("/indexes/{index}/documents?limit=10000"),
        None,
    )
    .await;
    if status == 404 {
        return BTreeMap::new();
    }
    assert_eq!(status, 200, "{page}");
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (key_of(&d["id"]), d.clone()))
        .collect()
}

fn key_of(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn placement(ids: &[&str], rf: u32, groups: u32) -> Placement {
    let per_group = ids.len() / groups as usize;
    let groups = ids
        .chunks(per_group)
        .map(|g| g.iter().map(|id| NodeId::new(id).unwrap()).collect())
        .collect();
    Placement::new(SHARDS, rf, groups).unwrap()
}

fn movies(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": if i % 3 == 0 { json!(i) } else { json!(format!("m-{i}")) }, "title": format!("Movie {i}"), "year": 1990 + (i % 30)}))
        .collect()
}

/// Config text for `n` nodes split evenly into `groups` groups.
fn grouped(extra: &str, groups: u32, rf: u32) -> String {
    format!("replication_factor = {rf}\nreplica_groups = {groups}\n{extra}")
}

async fn grouped_cluster(n: usize, rf: u32, groups: u32) -> Cluster {
    let nodes = sim_nodes(n).await;
    let (port, metrics) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&meili_sim::SimNode> = nodes.iter().collect();
    let mut toml = config(port, metrics, &refs, "");
    toml = toml.replacen(
        "shards = 8\n",
        &format!("shards = 8\n{}", grouped("", groups, rf)),
        1,
    );
    // Nodes n0..n(k-1) form group 0, the next k group 1, ...
    let per_group = n / groups as usize;
    for i in 0..n {
        let g = i / per_group;
        toml = toml.replace(
            &format!("id = \"n{i}\"\n"),
            &format!("id = \"n{i}\"\nreplica_group = {g}\n"),
        );
    }
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    Cluster {
        nodes,
        miroir,
        metrics_port: metrics,
    }
}

async fn assert_placed(c: &Cluster, index: &str, docs: &[Value], rf: u32, groups: u32) {
    let ids: Vec<String> = (0..c.nodes.len()).map(|i| format!("n{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let p = placement(&id_refs, rf, groups);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let owned = p.shards_of(p.index_of(&ids[i]).unwrap()).to_vec();
        for (id, doc) in node_docs(&node.url(), index).await {
            let shard = shard_for_key(&id, SHARDS);
            assert_eq!(
                doc["_miroir_shard"],
                json!(shard_value(shard)),
                "doc {id} on n{i} carries its shard"
            );
            assert!(
                owned.contains(&shard),
                "doc {id} (shard {}) landed on n{i}, which does not own it",
                shard.0
            );
            *copies.entry(id).or_default() += 1;
        }
    }
    assert_eq!(copies.len(), docs.len(), "every document landed somewhere");
    for (id, n) in copies {
        assert_eq!(n as u32, rf * groups, "doc {id} has {n} copies");
    }
}

async fn write_and_check(n: usize, rf: u32, groups: u32) {
    let c = grouped_cluster(n, rf, groups).await;
    let docs = movies(120);
    let (status, task, degraded) = send(
        &c.miroir.url(),
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(docs.clone()).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    assert!(degraded.is_none());
    assert_eq!(task["type"], "documentAdditionOrUpdate");
    assert_eq!(task["status"], "enqueued");
    let done = wait_task(&c.miroir.url(), task["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["details"]["receivedDocuments"], 120);
    assert_eq!(done["details"]["indexedDocuments"], 120);
    assert_placed(&c, "movies", &docs, rf, groups).await;
    // The primary key was inferred once and fixed on every node.
    for node in &c.nodes {
        let (_, index) = call(&node.url(), "GET", "/indexes/movies", None).await;
        assert_eq!(index["primaryKey"], "id");
    }
}

#[tokio::test]
async fn documents_land_on_exactly_their_shards_replicas_rf1() {
    write_and_check(3, 1, 1).await;
}

#[tokio::test]
async fn documents_land_on_exactly_their_shards_replicas_rf2() {
    write_and_check(3, 2, 1).await;
}

#[tokio::test]
async fn documents_land_on_exactly_their_shards_replicas_two_groups() {
    write_and_check(4, 1, 2).await;
}

#[tokio::test]
async fn documents_land_on_exactly_their_shards_replicas_rf2_two_groups() {
    write_and_check(4, 2, 2).await;
}

#[tokio::test]
async fn json_ndjson_and_csv_give_the_same_documents() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    let docs: Vec<Value> = (0..30)
        .map(|i| json!({"id": format!("d{i}"), "name": format!("n{i}")}))
        .collect();
    let json_body = Value::Array(docs.clone()).to_string();
    let ndjson: String = docs.iter().map(|d| format!("{d}\n")).collect();
    let csv: String = std::iter::once("id,name\n".to_owned())
        .chain((0..30).map(|i| format!("d{i},n{i}\n")))
        .collect();
    for (index, ct, body) in [
        ("a", "application/json", json_body),
        ("b", "application/x-ndjson", ndjson),
        ("c", "text/csv", csv),
    ] {
        let (status, task, _) = send(
            &base,
            "POST",
            &format!("/indexes/{index}/documents"),
            ct,
            body,
        )
        .await;
        assert_eq!(status, 202, "{ct}: {task}");
        assert_eq!(
            wait_task(&base, task["taskUid"].as_u64().unwrap()).await["status"],
            "succeeded"
        );
    }
    let mut per_index = Vec::new();
    for index in ["a", "b", "c"] {
        let mut all = BTreeMap::new();
        for node in &c.nodes {
            for (id, doc) in node_docs(&node.url(), index).await {
                all.insert(
                    id,
                    (
                        doc["name"].clone(),
                        doc["_miroir_shard"]
                            .as_u64()
                            .or_else(|| doc["_miroir_shard"].as_str().and_then(|s| s.parse().ok())),
                    ),
                );
            }
        }
        per_index.push(all);
    }
    assert_eq!(per_index[0].len(), 30);
    assert_eq!(per_index[0], per_index[1]);
    assert_eq!(per_index[0], per_index[2]);
}

#[tokio::test]
async fn bad_input_gets_meilisearchs_error_and_touches_no_node() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    // Refused at once, as a node refuses them before reading any document.
    let refused: Vec<(&str, String, &str)> = vec![
        (
            "application/json",
            "[{\"id\": 1,".into(),
            "malformed_payload",
        ),
        (
            "application/x-ndjson",
            "{\"id\": 1}\n{oops}\n".into(),
            "malformed_payload",
        ),
        (
            "application/json",
            json!([{"id": 1, "_miroir_shard": 3}]).to_string(),
            "miroir_reserved_field",
        ),
        ("application/xml", "<a/>".into(), "invalid_content_type"),
    ];
    for (ct, body, code) in refused {
        let (status, err, _) =
            send(&base, "POST", "/indexes/bad/documents", ct, body.clone()).await;
        assert!((400..500).contains(&status), "{code}: status {status}");
        assert_eq!(err["code"], code, "{body}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    for node in &c.nodes {
        let (_, tasks) = call(&node.url(), "GET", "/tasks", None).await;
        assert_eq!(tasks["total"], 0, "node {} received something", node.url());
    }
    // Accepted, and their task fails with the error, as on a node that indexes them; no
    // document reaches any node.
    let failing: Vec<(String, &str, u64)> = vec![
        (
            json!([{"id": 1}, {"title": "no id"}]).to_string(),
            "missing_document_id",
            2,
        ),
        (
            json!([{"id": "bad id!"}]).to_string(),
            "invalid_document_id",
            1,
        ),
        (
            json!([{"title": "x"}]).to_string(),
            "index_primary_key_no_candidate_found",
            1,
        ),
        (
            json!([{"id": 1, "uid": 2}]).to_string(),
            "index_primary_key_multiple_candidates_found",
            1,
        ),
    ];
    for (i, (body, code, received)) in failing.into_iter().enumerate() {
        let path = format!("/indexes/failing{i}/documents");
        let (status, task, _) = send(&base, "POST", &path, "application/json", body).await;
        assert_eq!(status, 202, "{code}: {task}");
        let done = wait_task(&base, task["taskUid"].as_u64().unwrap()).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert_eq!(done["error"]["code"], code, "{done}");
        assert_eq!(
            done["details"],
            json!({"receivedDocuments": received, "indexedDocuments": 0})
        );
    }
    for node in &c.nodes {
        for i in 0..4 {
            let (_, docs) = call(
                &node.url(),
                "GET",
                &format!("/indexes/failing{i}/documents"),
                None,
            )
            .await;
            assert_eq!(docs["total"], 0, "{}: {docs}", node.url());
        }
    }
}

#[tokio::test]
async fn a_failed_node_task_fails_the_miroir_task_with_the_nodes_error() {
    let c = cluster(2, "").await;
    // A first write sets the index up (primary key, filterable shard field) on every node.
    let (_, first, _) = send(
        &c.miroir.url(),
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(2)).to_string(),
    )
    .await;
    wait_task(&c.miroir.url(), first["taskUid"].as_u64().unwrap()).await;
    for node in &c.nodes {
        node.faults().fail_next_task("internal", "disk on fire");
    }
    let (status, task, _) = send(
        &c.miroir.url(),
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(10)).to_string(),
    )
    .await;
    assert_eq!(status, 202);
    let done = wait_task(&c.miroir.url(), task["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["message"], "disk on fire", "{done}");
}

#[tokio::test]
async fn tasks_survive_a_miroir_restart() {
    let nodes = sim_nodes(2).await;
    let (port, metrics) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    // A data directory that outlives both processes.
    let keep = miroir_testkit::proxy::TempDir::new("restart").unwrap();
    let toml = config(port, metrics, &[&nodes[0], &nodes[1]], "").replace(
        miroir_testkit::proxy::DATA_DIR,
        &keep.path().to_string_lossy(),
    );
    let first = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let (_, task, _) = send(
        &first.url(),
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(10)).to_string(),
    )
    .await;
    let uid = task["taskUid"].as_u64().unwrap();
    let done = wait_task(&first.url(), uid).await;
    assert_eq!(done["status"], "succeeded");
    drop(first);
    let second = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    assert_eq!(wait_task(&second.url(), uid).await, done);
    // The sequence continues after the old uids.
    let (_, next, _) = send(
        &second.url(),
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(2)).to_string(),
    )
    .await;
    assert!(next["taskUid"].as_u64().unwrap() > uid);
}

#[tokio::test]
async fn idempotency_key_returns_the_original_task_or_refuses_another_body() {
    let c = cluster(2, "").await;
    let post = |body: String| {
        let url = format!("{}/indexes/movies/documents", c.miroir.url());
        async move {
            let r = client()
                .post(url)
                .bearer_auth(KEY)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", "batch-1")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let body = Value::Array(movies(5)).to_string();
    let (s1, t1) = post(body.clone()).await;
    let (s2, t2) = post(body).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(t1["taskUid"], t2["taskUid"]);
    // Sent once: each node holds one task.
    let total: u64 = {
        let mut sum = 0;
        for n in &c.nodes {
            sum += call(
                &n.url(),
                "GET",
                "/tasks?types=documentAdditionOrUpdate",
                None,
            )
            .await
            .1["total"]
                .as_u64()
                .unwrap();
        }
        sum
    };
    assert!(total <= 2, "the replay was sent again ({total} node tasks)");
    let (s3, err) = post(Value::Array(movies(6)).to_string()).await;
    assert_eq!(s3, 409);
    assert_eq!(err["code"], "miroir_idempotency_key_reused");
}

#[tokio::test]
async fn deletes_route_by_id_and_split_batches_by_shard() {
    let c = cluster(3, "").await;
    let base = c.miroir.url();
    let docs = movies(40);
    let (_, task, _) = send(
        &base,
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(docs).to_string(),
    )
    .await;
    wait_task(&base, task["taskUid"].as_u64().unwrap()).await;

    let (status, one) = call(&base, "GET", "/indexes/movies/documents/m-1", None).await;
    assert_eq!(status, 200);
    assert_eq!(one["title"], "Movie 1");
    assert!(
        one.get("_miroir_shard").is_none(),
        "reserved field leaked: {one}"
    );
    let (status, missing) = call(&base, "GET", "/indexes/movies/documents/nope", None).await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("document_not_found"))
    );

    let (status, t) = call(&base, "DELETE", "/indexes/movies/documents/m-1", None).await;
    assert_eq!(status, 202);
    assert_eq!(
        wait_task(&base, t["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let (status, t) = call(
        &base,
        "POST",
        "/indexes/movies/documents/delete-batch",
        Some(json!(["m-2", 3, "m-4", 6])),
    )
    .await;
    assert_eq!(status, 202);
    let done = wait_task(&base, t["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["details"]["providedIds"], 4);
    let mut left = 0;
    for node in &c.nodes {
        let docs = node_docs(&node.url(), "movies").await;
        for gone in ["m-1", "m-2", "3", "m-4", "6"] {
            assert!(!docs.contains_key(gone), "{gone} still on {}", node.url());
        }
        left += docs.len();
    }
    assert_eq!(left, 35);
    // Delete-all is a broadcast.
    let (status, t) = call(&base, "DELETE", "/indexes/movies/documents", None).await;
    assert_eq!(status, 202);
    let done = wait_task(&base, t["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["details"]["deletedDocuments"], 35);
}

#[tokio::test]
async fn a_replica_down_degrades_the_write_and_a_lost_quorum_refuses_it() {
    let c = grouped_cluster(3, 2, 1).await;
    let base = c.miroir.url();
    // RF 2, majority = 2: a replica down is stood in for by a durable hint (a sloppy quorum).
    c.nodes[0].stop().await;
    let (status, task, degraded) = send(
        &base,
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(30)).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    let degraded = degraded.expect("X-Miroir-Degraded");
    assert!(
        degraded.starts_with("shards=") && degraded.contains("groups=0"),
        "{degraded}"
    );
    let done = wait_task(&base, task["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["miroir"]["pendingReplays"], json!(["n0"]), "{done}");

    // Two of three nodes down: some shard has no replica left to hold the write itself, and a
    // hint never counts alone. The node still up applied its part, so the write is rolled
    // forward rather than left there alone: the error says so and the down nodes keep it.
    c.nodes[1].stop().await;
    let (status, err, _) = send(
        &base,
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(30)).to_string(),
    )
    .await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["code"], "miroir_no_quorum");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("shards") && message.contains("rolled forward"),
        "{message}"
    );
    let topology: Value = client()
        .get(format!("{base}/_miroir/topology"))
        .header("X-Admin-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n1 = topology["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "n1")
        .unwrap();
    assert!(
        n1["pendingHints"].as_u64().unwrap_or(0) > 0,
        "the refused write is kept for n1: {n1}"
    );
    drop(c);

    // With quorum "one", the same outage degrades instead.
    let nodes = sim_nodes(3).await;
    let (port, metrics) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&meili_sim::SimNode> = nodes.iter().collect();
    let toml = config(port, metrics, &refs, "").replacen(
        "shards = 8\n",
        "shards = 8\nreplication_factor = 2\nwrite_quorum = \"one\"\n",
        1,
    );
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    nodes[0].stop().await;
    let (status, task, degraded) = send(
        &miroir.url(),
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(30)).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    let degraded = degraded.expect("X-Miroir-Degraded");
    assert!(
        degraded.starts_with("shards=") && degraded.contains("groups=0"),
        "{degraded}"
    );
    let done = wait_task(&miroir.url(), task["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let _ = ShardId(0);
}

#[tokio::test]
async fn task_list_filters_pages_and_cancel_delete_act_on_miroirs_registry() {
    let c = cluster(2, "").await;
    let base = c.miroir.url();
    let mut uids = Vec::new();
    for index in ["a", "b", "a"] {
        let (_, t, _) = send(
            &base,
            "POST",
            &format!("/indexes/{index}/documents"),
            "application/json",
            Value::Array(movies(3)).to_string(),
        )
        .await;
        uids.push(t["taskUid"].as_u64().unwrap());
    }
    for uid in &uids {
        assert_eq!(wait_task(&base, *uid).await["status"], "succeeded");
    }
    let (status, page) = call(&base, "GET", "/tasks?indexUids=a&limit=1", None).await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 2);
    assert_eq!(page["results"][0]["uid"], uids[2], "newest first");
    assert_eq!(page["next"], uids[0]);
    let (_, page) = call(
        &base,
        "GET",
        &format!("/tasks?indexUids=a&from={}", uids[0]),
        None,
    )
    .await;
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    let (_, page) = call(&base, "GET", "/tasks?statuses=failed", None).await;
    assert_eq!(page["total"], 0);
    let (status, err) = call(&base, "GET", "/tasks?statuses=done", None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_task_statuses"))
    );

    // Deleting needs a filter, and removes finished tasks from Miroir's registry.
    let (status, err) = call(&base, "DELETE", "/tasks", None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("missing_task_filters"))
    );
    let (status, del) = call(&base, "DELETE", "/tasks?indexUids=b", None).await;
    assert_eq!(status, 200, "{del}");
    assert_eq!(del["type"], "taskDeletion");
    let done = wait_task(&base, del["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["details"]["deletedTasks"], 1, "{done}");
    let (status, _) = call(&base, "GET", &format!("/tasks/{}", uids[1]), None).await;
    assert_eq!(status, 404);

    // Canceling finished tasks matches nothing but is still a task.
    let (status, cancel) = call(
        &base,
        "POST",
        "/tasks/cancel?statuses=enqueued,processing",
        None,
    )
    .await;
    assert_eq!(status, 200, "{cancel}");
    assert_eq!(cancel["type"], "taskCancelation");
    let done = wait_task(&base, cancel["taskUid"].as_u64().unwrap()).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["details"]["matchedTasks"].as_u64()
        ),
        (Some("succeeded"), Some(0))
    );
    let (status, batches) = call(&base, "GET", "/batches?limit=2", None).await;
    assert_eq!(status, 200);
    assert_eq!(batches["results"].as_array().unwrap().len(), 2);
    assert!(batches["results"][0]["stats"]["totalNbTasks"].is_number());
}

#[tokio::test]
async fn index_creation_makes_the_shard_field_filterable_before_any_document() {
    let c = cluster(2, "").await;
    let (status, task) = call(
        &c.miroir.url(),
        "POST",
        "/indexes",
        Some(json!({"uid": "books", "primaryKey": "isbn"})),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    assert_eq!(
        wait_task(&c.miroir.url(), task["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    for node in &c.nodes {
        for _ in 0..200 {
            let (_, list) = call(
                &node.url(),
                "GET",
                "/indexes/books/settings/filterable-attributes",
                None,
            )
            .await;
            if list == json!(["_miroir_shard"]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, list) = call(
            &node.url(),
            "GET",
            "/indexes/books/settings/filterable-attributes",
            None,
        )
        .await;
        assert_eq!(list, json!(["_miroir_shard"]), "on {}", node.url());
    }
    // Clients still see Meilisearch's default.
    let (_, list) = call(
        &c.miroir.url(),
        "GET",
        "/indexes/books/settings/filterable-attributes",
        None,
    )
    .await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn a_write_right_after_a_settings_change_keeps_the_clients_filterable_attributes() {
    // Slow nodes: the settings task is still queued when the documents arrive.
    let mut nodes = Vec::new();
    for i in 0..2u64 {
        let cfg = meili_sim::SimConfig {
            master_key: Some(KEY.into()),
            task_delay: Duration::from_millis(50),
            seed: i + 1,
            ..meili_sim::SimConfig::default()
        };
        nodes.push(meili_sim::SimNode::start(cfg).await.unwrap());
    }
    let (port, metrics) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let toml = config(port, metrics, &[&nodes[0], &nodes[1]], "");
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let base = miroir.url();
    let (s, _) = call(
        &base,
        "PATCH",
        "/indexes/slow/settings",
        Some(json!({"filterableAttributes": ["genre"]})),
    )
    .await;
    assert_eq!(s, 202);
    let (s, t) = call(
        &base,
        "POST",
        "/indexes/slow/documents",
        Some(json!([{"id": 1, "genre": "a"}])),
    )
    .await;
    assert_eq!(s, 202);
    wait_task(&base, t["taskUid"].as_u64().unwrap()).await;
    for node in &nodes {
        // Let any trailing settings task finish too.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, list) = call(
            &node.url(),
            "GET",
            "/indexes/slow/settings/filterable-attributes",
            None,
        )
        .await;
        let list: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            list.contains(&"genre") && list.contains(&"_miroir_shard"),
            "{list:?} on {}",
            node.url()
        );
    }
}

#[tokio::test]
async fn nodes_that_get_no_document_still_learn_the_index_and_its_primary_key() {
    for existing in [false, true] {
        let c = cluster(3, "").await;
        let base = c.miroir.url();
        if existing {
            let (_, t) = call(&base, "POST", "/indexes", Some(json!({"uid": "few"}))).await;
            wait_task(&base, t["taskUid"].as_u64().unwrap()).await;
        }
        // One document: at most one node gets it.
        let (s, t) = call(
            &base,
            "POST",
            "/indexes/few/documents",
            Some(json!([{"id": 7, "t": "x"}])),
        )
        .await;
        assert_eq!(s, 202, "{t}");
        assert_eq!(
            wait_task(&base, t["taskUid"].as_u64().unwrap()).await["status"],
            "succeeded"
        );
        for node in &c.nodes {
            let (status, index) = call(&node.url(), "GET", "/indexes/few", None).await;
            assert_eq!(
                (status, index["primaryKey"].as_str()),
                (200, Some("id")),
                "existing={existing} on {}",
                node.url()
            );
        }
    }
}

/// A task deletion matches unfinished tasks too and deletes them once they finish, as
/// Meilisearch deletes what its deletion matched when it processes it.
#[tokio::test]
async fn deleting_an_unfinished_task_removes_it_once_it_finished() {
    let c = slow_cluster(2, Duration::from_millis(300), "").await;
    let base = c.miroir.url();
    let (_, added, _) = send(
        &base,
        "POST",
        "/indexes/movies/documents",
        "application/json",
        Value::Array(movies(5)).to_string(),
    )
    .await;
    let added = added["taskUid"].as_u64().unwrap();
    let (status, task) = call(&base, "DELETE", &format!("/tasks?uids={added}"), None).await;
    assert_eq!(status, 200, "{task}");
    let (_, still) = call(&base, "GET", &format!("/tasks/{added}"), None).await;
    assert_ne!(
        still["status"], "succeeded",
        "the addition is still queued: {still}"
    );
    let deletion = wait_task(&base, task["taskUid"].as_u64().unwrap()).await;
    assert_eq!(deletion["status"], "succeeded", "{deletion}");
    let gone = eventually(Duration::from_secs(10), || async {
        call(&base, "GET", &format!("/tasks/{added}"), None).await.0 == 404
    })
    .await;
    assert!(gone, "the finished addition was deleted");
}

#[tokio::test]
async fn a_canceled_task_names_the_miroir_cancelation_that_canceled_it() {
    // Nodes slow enough that the second write is still queued when it is canceled.
    let c = slow_cluster(2, Duration::from_millis(400), "").await;
    let base = c.miroir.url();
    let mut uids = Vec::new();
    for i in 0..2 {
        let (status, task) = call(
            &base,
            "POST",
            "/indexes/books/documents",
            Some(json!([{"id": i, "title": "t"}])),
        )
        .await;
        assert_eq!(status, 202, "{task}");
        uids.push(task["taskUid"].as_u64().unwrap());
    }
    let (status, cancel) = call(
        &base,
        "POST",
        &format!("/tasks/cancel?uids={}", uids[1]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cancel}");
    let by = cancel["taskUid"].as_u64().unwrap();
    assert_eq!(wait_task(&base, by).await["details"]["canceledTasks"], 1);
    let canceled = wait_task(&base, uids[1]).await;
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    assert_eq!(canceled["canceledBy"], by, "{canceled}");
    let (_, listed) = call(&base, "GET", &format!("/tasks?canceledBy={by}"), None).await;
    let listed: Vec<u64> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![uids[1]]);
}
