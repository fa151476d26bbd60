//! What a new user tries first, through Miroir and on one node holding the same data, with
//! default settings: documents added to an index that does not exist yet, searched as soon as
//! their task has succeeded; numbers in queries. Each runs over simulated nodes and, when a
//! Meilisearch binary is available, over real ones.

mod common;

use common::{kinds, miroir_bin, sorted_ids, KEY};
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{start_node, Client, NodeKind, TestNode};
use serde_json::{json, Value};

/// Three nodes behind Miroir (replication factor `rf`) and one reference node.
struct Setup {
    _nodes: Vec<TestNode>,
    reference: TestNode,
    miroir: MiroirProcess,
}

async fn setup(kind: NodeKind, rf: u32) -> Setup {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(start_node(kind, KEY).await);
    }
    let reference = nodes.pop().expect("4 nodes");
    let port = free_port();
    let mut toml = format!(
        "shards = 8\nreplication_factor = {rf}\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n\
         [server]\nport = {port}\n\n[metrics]\nenabled = false\n\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    Setup {
        _nodes: nodes,
        reference,
        miroir,
    }
}

/// The hit ids, sorted. Scores are not compared: with a prefix query (`1` matching `10`),
/// Meilisearch's exactness rule depends on whether the whole word exists in the index, which
/// differs between a shard and the whole corpus (a bound of any sharding).
fn ids(answer: &Value) -> Vec<String> {
    sorted_ids(answer)
}

/// The tutorial: documents into a new index, wait for the task, search at once. With RF 2 a
/// node is asked for some of its shards only, so its search filters on `_miroir_shard`.
#[tokio::test]
async fn documents_added_to_a_new_index_are_searchable_once_their_task_succeeded() {
    for kind in kinds() {
        let s = setup(kind, 2).await;
        let miroir = Client::new(&s.miroir.url(), Some(KEY));
        let docs: Vec<Value> = (0..40)
            .map(|i| {
                let genre = if i % 2 == 0 { "drama" } else { "comedy" };
                json!({"id": i, "title": format!("movie {i}"), "genre": genre})
            })
            .collect();
        let (status, task) = miroir
            .post("/indexes/movies/documents", Value::Array(docs))
            .await;
        assert_eq!(status, 202, "{kind:?}: {task}");
        let done = miroir
            .wait_task(task["taskUid"].as_u64().expect("taskUid"))
            .await;
        assert_eq!(done["status"], "succeeded", "{kind:?}: {done}");
        assert_eq!(done["type"], "documentAdditionOrUpdate", "{kind:?}: {done}");
        assert_eq!(done["details"]["indexedDocuments"], 40, "{kind:?}: {done}");
        // Several searches at once, as a page does right after the write.
        let searches = (0..6).map(|i| {
            let miroir = &miroir;
            async move {
                miroir
                    .post(
                        "/indexes/movies/search",
                        json!({"q": "movie", "limit": 50, "offset": i}),
                    )
                    .await
            }
        });
        for (status, answer) in futures::future::join_all(searches).await {
            assert_eq!(status, 200, "{kind:?}: {answer}");
            assert_eq!(answer["estimatedTotalHits"], 40, "{kind:?}: {answer}");
        }
        // The index as one node shows it: its primary key, no hidden field anywhere.
        let (_, index) = miroir.get("/indexes/movies").await;
        assert_eq!(index["primaryKey"], "id", "{kind:?}: {index}");
        let (_, settings) = miroir.get("/indexes/movies/settings").await;
        assert_eq!(settings["filterableAttributes"], json!([]), "{kind:?}");
        let (_, fields) = miroir.get("/indexes/movies/stats").await;
        assert!(
            !fields.to_string().contains("_miroir"),
            "{kind:?}: {fields}"
        );
    }
}

/// A key that may add documents but not create indexes: as on one node, the write is
/// accepted and its task fails with `index_not_found`; no index appears.
#[tokio::test]
async fn a_key_without_indexes_create_cannot_create_an_index_by_writing_to_it() {
    for kind in kinds() {
        let s = setup(kind, 1).await;
        let mut answers = Vec::new();
        for base in [s.miroir.url(), s.reference.url()] {
            let master = Client::new(&base, Some(KEY));
            let (status, key) = master
                .post(
                    "/keys",
                    json!({"actions": ["documents.add", "tasks.get", "indexes.get"], "indexes": ["*"], "expiresAt": null}),
                )
                .await;
            assert_eq!(status, 201, "{kind:?}: {key}");
            let writer = Client::new(&base, key["key"].as_str());
            let (status, task) = writer
                .post("/indexes/books/documents", json!([{"id": 1}]))
                .await;
            assert_eq!(status, 202, "{kind:?}: {task}");
            let done = master
                .wait_task(task["taskUid"].as_u64().expect("taskUid"))
                .await;
            let (index_status, _) = master.get("/indexes/books").await;
            answers.push((
                done["status"].clone(),
                done["error"]["code"].clone(),
                index_status,
            ));
        }
        assert_eq!(
            answers[0], answers[1],
            "{kind:?}: through Miroir, then one node"
        );
        assert_eq!(answers[1].1, "index_not_found", "{kind:?}");
    }
}

/// Numbers in queries match what they match on one node: the field holding a document's
/// shard is never a word (`q=1` matched 8 of 12 documents through Miroir, 3 on one node).
#[tokio::test]
async fn numbers_in_queries_match_what_one_node_matches() {
    for kind in kinds() {
        let s = setup(kind, 1).await;
        let docs: Vec<Value> = (0..12)
            .map(|i| json!({"id": i, "title": format!("volume {i}")}))
            .collect();
        let mut waits = Vec::new();
        for base in [s.miroir.url(), s.reference.url()] {
            let client = Client::new(&base, Some(KEY));
            let (status, task) = client
                .post("/indexes/books/documents", Value::Array(docs.clone()))
                .await;
            assert_eq!(status, 202, "{kind:?}: {task}");
            waits.push((client, task["taskUid"].as_u64().expect("taskUid")));
        }
        for (client, uid) in &waits {
            assert_eq!(client.wait_task(*uid).await["status"], "succeeded");
        }
        let (miroir, reference) = (&waits[0].0, &waits[1].0);
        for q in ["1", "13", "0", "7", "volume 1", "3", "-", "."] {
            let body = json!({"q": q, "limit": 50, "showRankingScore": true});
            let (s1, through) = miroir.post("/indexes/books/search", body.clone()).await;
            let (s2, direct) = reference.post("/indexes/books/search", body).await;
            assert_eq!((s1, s2), (200, 200), "{kind:?} q={q}");
            assert_eq!(
                ids(&through),
                ids(&direct),
                "{kind:?} q={q}: {through} / {direct}"
            );
            assert_eq!(
                through["estimatedTotalHits"], direct["estimatedTotalHits"],
                "{kind:?} q={q}"
            );
        }
    }
}

/// A batch a node accepts and then fails (no usable id, no primary key to infer): the same
/// 202, a task failing with the same error and counts, and the index created as one node
/// creates it, with no primary key and no document.
#[tokio::test]
async fn batches_a_node_fails_get_a_task_failing_like_one_nodes() {
    let cases = [
        (json!([{"title": "x"}]), ""),
        (json!({"title": "x"}), ""),
        (json!([{"_id": 1, "id": 2}]), ""),
        (json!([{}]), ""),
        (json!([{"id": 1}, {"title": "no id"}]), ""),
        (json!([{"id": "a b"}]), ""),
        (json!([{"id": true}]), ""),
        (json!([{"id": 2, "other": 3}]), "?primaryKey=other"),
    ];
    for kind in kinds() {
        let s = setup(kind, 1).await;
        for (i, (body, query)) in cases.iter().enumerate() {
            let mut seen = Vec::new();
            for base in [s.miroir.url(), s.reference.url()] {
                let client = Client::new(&base, Some(KEY));
                let index = format!("case{i}");
                if !query.is_empty() {
                    // An index whose primary key the batch contradicts.
                    let (_, t) = client
                        .post(&format!("/indexes/{index}/documents"), json!([{"id": 1}]))
                        .await;
                    client
                        .wait_task(t["taskUid"].as_u64().expect("taskUid"))
                        .await;
                }
                let (status, task) = client
                    .post(&format!("/indexes/{index}/documents{query}"), body.clone())
                    .await;
                let done = client
                    .wait_task(task["taskUid"].as_u64().expect("taskUid"))
                    .await;
                let (index_status, info) = client.get(&format!("/indexes/{index}")).await;
                seen.push(json!({
                    "status": status,
                    "task": [done["status"], done["type"], done["error"], done["details"]],
                    "index": [index_status, info["primaryKey"]],
                }));
            }
            assert_eq!(
                seen[0], seen[1],
                "{kind:?} {body}{query}: through Miroir, then one node"
            );
        }
    }
}
