//! Each index keeps the shard count S it was created with. The configuration's `shards` is
//! only the default for new indexes: raising it (a reload) never moves a document of an
//! existing index, the count survives a restart, follows a swap, and a node added afterwards
//! receives every index's shards by that index's own S. Checked on each node directly
//! (`_miroir_shard` of every document, and which nodes hold it), over simulated and real
//! Meilisearch nodes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use miroir_filters::hidden;
use miroir_filters::routing::{shard_for_key, GroupId, NodeId, Placement, ShardId};
use miroir_testkit::proxy::{free_port, MiroirProcess};
use miroir_testkit::{start_node, NodeKind, TestNode};
use serde_json::{json, Value};

fn fleet(port: u16, metrics: u16, nodes: &[&TestNode], shards: u32) -> String {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    config_for(port, metrics, &urls, "[scatter]\nnode_timeout_ms = 2000\n")
        .replacen("shards = 8\n", &format!("shards = {shards}\n"), 1)
        .replace(
            "interval_ms = 100\ntimeout_ms = 100\n",
            "interval_ms = 500\ntimeout_ms = 500\n",
        )
}

fn docs(ids: std::ops::Range<u64>, tag: &str) -> Value {
    json!(ids
        .map(|id| json!({ "id": id, "title": format!("{tag} {id}") }))
        .collect::<Vec<_>>())
}

async fn write(base: &str, index: &str, body: Value) {
    let (status, task) = call(
        base,
        "POST",
        &format!("/indexes/{index}/documents?primaryKey=id"),
        Some(body),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    let done = wait_task(base, task["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

async fn enqueue(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, task) = call(base, method, path, body).await;
    assert_eq!(status, 202, "{method} {path}: {task}");
    let done = wait_task(base, task["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{method} {path}: {done}");
    done
}

/// Per node, the documents of `index` it holds: id -> the shard its `_miroir_shard` names.
async fn on_node(node: &TestNode, index: &str) -> BTreeMap<u64, u64> {
    let by_value: BTreeMap<String, u64> = (0..64u32)
        .map(|s| (hidden::shard_value(ShardId(s)), u64::from(s)))
        .collect();
    let mut held = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (status, page) = call(
            &node.url(),
            "POST",
            &format!("/indexes/{index}/documents/fetch"),
            Some(json!({"limit": 1000, "offset": offset, "fields": ["id", "_miroir_shard"]})),
        )
        .await;
        if status == 404 {
            return held;
        }
        assert_eq!(status, 200, "{page}");
        let results = page["results"].as_array().unwrap();
        for d in results {
            let shard = d["_miroir_shard"]
                .as_str()
                .and_then(|v| by_value.get(v))
                .unwrap_or_else(|| panic!("{index} on {}: {d}", node.url()));
            held.insert(d["id"].as_u64().unwrap(), *shard);
        }
        offset += results.len();
        if results.len() < 1000 {
            return held;
        }
    }
}

/// Every document of `index` (ids `expected`) carries its shard by S = `shards` and sits on
/// exactly the owners of that shard in a placement of `width` slots over `nodes` (RF 1).
async fn check_index(nodes: &[&TestNode], index: &str, shards: u32, width: u32, expected: &[u64]) {
    let ids: Vec<NodeId> = (0..nodes.len())
        .map(|i| NodeId::new(&format!("n{i}")).unwrap())
        .collect();
    let placement = Placement::new(width, 1, vec![ids]).unwrap();
    let mut held = Vec::new();
    for node in nodes {
        held.push(on_node(node, index).await);
    }
    let mut problems = Vec::new();
    for id in expected {
        let shard = shard_for_key(&id.to_string(), shards);
        let owner = placement.replicas(GroupId(0), shard)[0];
        for (i, docs) in held.iter().enumerate() {
            let is_owner = placement.node(owner).as_str() == format!("n{i}");
            match (is_owner, docs.get(id)) {
                (true, None) => problems.push(format!("{index}/{id} missing on its owner n{i}")),
                (true, Some(&s)) if s != u64::from(shard.0) => {
                    problems.push(format!("{index}/{id} has shard {s}, not {}", shard.0))
                }
                (false, Some(_)) => problems.push(format!("{index}/{id} on n{i}, not its owner")),
                _ => {}
            }
        }
    }
    let total: usize = held.iter().map(BTreeMap::len).sum();
    if total != expected.len() {
        problems.push(format!(
            "{index}: {total} documents on the nodes, {} expected",
            expected.len()
        ));
    }
    assert!(problems.is_empty(), "{problems:?}");
}

/// What a client sees: the total, and each of a few documents read by id.
async fn check_client_view(base: &str, index: &str, expected: &[u64]) {
    let (status, found) = call(
        base,
        "POST",
        &format!("/indexes/{index}/search"),
        Some(json!({"q": "", "limit": 1})),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["estimatedTotalHits"],
        expected.len(),
        "{index}: {found}"
    );
    let (status, stats) = call(base, "GET", &format!("/indexes/{index}/stats"), None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["numberOfDocuments"],
        expected.len(),
        "{index}: {stats}"
    );
    for id in expected.iter().step_by(37) {
        let (status, doc) = call(
            base,
            "GET",
            &format!("/indexes/{index}/documents/{id}"),
            None,
        )
        .await;
        assert_eq!(
            (status, &doc["id"]),
            (200, &json!(id)),
            "{index}/{id}: {doc}"
        );
        assert!(doc.get("_miroir_shard").is_none(), "{doc}");
    }
}

async fn counts(base: &str) -> Value {
    admin_get(base, "/_miroir/topology").await
}

#[tokio::test]
async fn each_index_keeps_the_shard_count_it_was_created_with() {
    for kind in kinds() {
        scenario(kind).await;
    }
}

async fn scenario(kind: NodeKind) {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(start_node(kind, KEY).await);
    }
    let three: Vec<&TestNode> = nodes[..3].iter().collect();
    let all: Vec<&TestNode> = nodes.iter().collect();
    let (port, metrics) = (free_port(), free_port());
    let mut miroir =
        MiroirProcess::start(miroir_bin(), &fleet(port, metrics, &three, 4), port).await;
    let base = miroir.url();

    // An index created under `shards = 4`.
    write(&base, "old", docs(0..300, "old")).await;
    let old_ids: Vec<u64> = (0..300).collect();
    check_index(&three, "old", 4, 4, &old_ids).await;

    // `shards = 8` from now on: new indexes only.
    miroir.write_config(&fleet(port, metrics, &three, 8));
    miroir
        .wait_for_log("(generation 2)", Duration::from_secs(10))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            counts(&base).await["newIndexShards"] == 8
        })
        .await,
        "the placement was not widened: {}",
        counts(&base).await
    );
    enqueue(
        &base,
        "POST",
        "/indexes",
        Some(json!({"uid": "new", "primaryKey": "id"})),
    )
    .await;
    write(&base, "new", docs(1000..1400, "new")).await;
    write(&base, "old", docs(300..400, "old")).await;
    let old_ids: Vec<u64> = (0..400).collect();
    let new_ids: Vec<u64> = (1000..1400).collect();
    check_index(&three, "old", 4, 8, &old_ids).await;
    check_index(&three, "new", 8, 8, &new_ids).await;
    let mut wide = Vec::new();
    for node in &three {
        wide.extend(on_node(node, "new").await.into_values());
    }
    assert!(wide.iter().any(|&s| s >= 4), "index `new` uses shards 4..8");
    check_client_view(&base, "old", &old_ids).await;
    check_client_view(&base, "new", &new_ids).await;

    // The counts are durable.
    miroir.crash_and_restart(miroir_bin()).await;
    let t = counts(&base).await;
    assert_eq!(
        (
            &t["indexShards"]["old"],
            &t["indexShards"]["new"],
            &t["shards"]
        ),
        (&json!(4), &json!(8), &json!(8)),
        "{t}"
    );
    check_client_view(&base, "old", &old_ids).await;

    // A node added afterwards receives each index's shards by its own S.
    miroir.write_config(&fleet(port, metrics, &all, 8));
    assert!(
        eventually(Duration::from_secs(10), || async {
            !counts(&base).await["staged"].is_null()
        })
        .await,
        "the fourth node is not staged"
    );
    let (status, applied) = admin_post(&base, "/_miroir/topology/apply").await;
    assert_eq!(status, 202, "{applied}");
    assert!(
        eventually(Duration::from_secs(120), || async {
            counts(&base).await["change"].is_null()
        })
        .await,
        "the change did not finish: {}",
        counts(&base).await
    );
    check_index(&all, "old", 4, 8, &old_ids).await;
    check_index(&all, "new", 8, 8, &new_ids).await;
    check_client_view(&base, "old", &old_ids).await;
    check_client_view(&base, "new", &new_ids).await;

    // A swap exchanges the documents, so the counts: writes after it split by the new S.
    enqueue(
        &base,
        "POST",
        "/swap-indexes",
        Some(json!([{"indexes": ["old", "new"]}])),
    )
    .await;
    let t = counts(&base).await;
    assert_eq!(
        (&t["indexShards"]["old"], &t["indexShards"]["new"]),
        (&json!(8), &json!(4)),
        "{t}"
    );
    write(&base, "old", docs(5000..5050, "after swap")).await;
    let swapped_old: Vec<u64> = (1000..1400).chain(5000..5050).collect();
    check_index(&all, "old", 8, 8, &swapped_old).await;
    check_index(&all, "new", 4, 8, &old_ids).await;
    check_client_view(&base, "old", &swapped_old).await;
    check_client_view(&base, "new", &old_ids).await;

    // A deleted index's uid gets the current default when it is created again.
    enqueue(&base, "DELETE", "/indexes/new", None).await;
    write(&base, "new", docs(7000..7100, "again")).await;
    let again: Vec<u64> = (7000..7100).collect();
    check_index(&all, "new", 8, 8, &again).await;
    check_client_view(&base, "new", &again).await;
    println!(
        "{kind:?}: `old` kept S=4 through a reload to 8, a restart and a 3 -> 4 change; swap and re-creation followed"
    );
}
