//! Miroir's task registry over HTTP: listings equal to a naive reading of every task, polls
//! of unfinished tasks that a hanging node does not serialize, and the cleanup Meilisearch
//! does at its task limit.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn add_documents(base: &str, index: &str, n: usize) -> u64 {
    let docs: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "title": format!("Movie {i}")}))
        .collect();
    let (status, task) = call(
        base,
        "POST",
        &format!("/indexes/{index}/documents"),
        Some(Value::Array(docs)),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    task["taskUid"].as_u64().expect("taskUid")
}

/// The naive reading: every task judged by the query's filters (as Meilisearch documents
/// them) on its full view.
fn naive(
    all: &[Value],
    filter: &dyn Fn(&Value) -> bool,
    limit: usize,
    from: Option<u64>,
    reverse: bool,
) -> (u64, Vec<u64>) {
    let mut matching: Vec<&Value> = all.iter().filter(|t| filter(t)).collect();
    let total = matching.len() as u64;
    if reverse {
        matching.reverse();
    }
    let page = matching
        .into_iter()
        .map(|t| t["uid"].as_u64().expect("uid"))
        .filter(|&u| match (from, reverse) {
            (None, _) => true,
            (Some(f), false) => u <= f,
            (Some(f), true) => u >= f,
        })
        .take(limit)
        .collect();
    (total, page)
}

fn uids(page: &Value) -> Vec<u64> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|t| t["uid"].as_u64().expect("uid"))
        .collect()
}

#[tokio::test]
async fn listing_pages_and_totals_equal_a_naive_reading_of_every_task() {
    let c = cluster(2, "").await;
    let base = c.miroir.url();
    let mut created = Vec::new();
    for i in 0..36 {
        let index = ["a", "b", "c"][i % 3];
        if i % 7 == 3 {
            for node in &c.nodes {
                node.faults().fail_next_task("internal", "disk on fire");
            }
        }
        let uid = if i % 5 == 4 {
            let (status, task) = call(
                &base,
                "PATCH",
                &format!("/indexes/{index}/settings"),
                Some(json!({"searchableAttributes": ["title"]})),
            )
            .await;
            assert_eq!(status, 202, "{task}");
            task["taskUid"].as_u64().expect("taskUid")
        } else {
            add_documents(&base, index, 3).await
        };
        wait_task(&base, uid).await;
        created.push(uid);
    }
    wait_idle(&base).await;
    listings_equal_a_naive_reading(&base, &created).await;
}

/// Every task Miroir lists, then pages of many filters compared with a naive reading of that
/// list; `created` must all be listed, some failed and some succeeded.
async fn listings_equal_a_naive_reading(base: &str, created: &[u64]) {
    let (status, everything) = call(base, "GET", "/tasks?limit=1000", None).await;
    assert_eq!(status, 200);
    let all: Vec<Value> = everything["results"].as_array().expect("results").clone();
    assert_eq!(everything["total"], all.len());
    for uid in created {
        assert!(all.iter().any(|t| t["uid"] == *uid), "task {uid} listed");
    }
    let statuses: Vec<&str> = all.iter().filter_map(|t| t["status"].as_str()).collect();
    assert!(statuses.contains(&"failed") && statuses.contains(&"succeeded"));
    // Dates to filter on: those of a task in the middle.
    let middle = &all[all.len() / 2];
    let enqueued = middle["enqueuedAt"]
        .as_str()
        .expect("enqueuedAt")
        .to_owned();
    let finished = middle["finishedAt"]
        .as_str()
        .expect("finishedAt")
        .to_owned();
    let some_uids: Vec<u64> = created.iter().step_by(4).copied().collect();
    let uid_list = some_uids
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let at = |t: &Value, field: &str| {
        time::OffsetDateTime::parse(
            t[field].as_str().unwrap_or(""),
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    };
    let bound = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    };
    type Filter = Box<dyn Fn(&Value) -> bool>;
    let (e, f) = (bound(&enqueued), bound(&finished));
    let in_uids = some_uids.clone();
    let cases: Vec<(String, Filter)> = vec![
        (String::new(), Box::new(|_| true)),
        ("statuses=failed".into(), Box::new(|t| t["status"] == "failed")),
        (
            "statuses=succeeded,failed&indexUids=a,c".into(),
            Box::new(|t| {
                (t["status"] == "succeeded" || t["status"] == "failed")
                    && (t["indexUid"] == "a" || t["indexUid"] == "c")
            }),
        ),
        (
            "types=settingsUpdate".into(),
            Box::new(|t| t["type"] == "settingsUpdate"),
        ),
        (
            "types=documentAdditionOrUpdate&indexUids=b".into(),
            Box::new(|t| t["type"] == "documentAdditionOrUpdate" && t["indexUid"] == "b"),
        ),
        (
            format!("uids={uid_list}"),
            Box::new(move |t| in_uids.contains(&t["uid"].as_u64().unwrap_or(u64::MAX))),
        ),
        (
            format!("afterEnqueuedAt={enqueued}"),
            Box::new(move |t| at(t, "enqueuedAt") > e),
        ),
        (
            format!("beforeFinishedAt={finished}&statuses=succeeded"),
            Box::new(move |t| {
                at(t, "finishedAt").is_some_and(|x| Some(x) < f) && t["status"] == "succeeded"
            }),
        ),
        (
            format!("beforeEnqueuedAt={enqueued}&afterFinishedAt=2000-01-01&types=documentAdditionOrUpdate"),
            Box::new(move |t| {
                at(t, "enqueuedAt").is_some_and(|x| Some(x) < e)
                    && at(t, "finishedAt").is_some()
                    && t["type"] == "documentAdditionOrUpdate"
            }),
        ),
    ];
    let middle_uid = middle["uid"].as_u64().expect("uid");
    for (filter, judge) in &cases {
        for (limit, from, reverse) in [
            (20, None, false),
            (3, None, false),
            (4, Some(middle_uid), false),
            (5, None, true),
            (2, Some(middle_uid), true),
        ] {
            let mut path = format!("/tasks?limit={limit}&reverse={reverse}");
            if let Some(from) = from {
                path.push_str(&format!("&from={from}"));
            }
            if !filter.is_empty() {
                path.push('&');
                path.push_str(filter);
            }
            let (status, page) = call(base, "GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {page}");
            let (total, want) = naive(&all, judge.as_ref(), limit, from, reverse);
            assert_eq!(
                (page["total"].as_u64(), uids(&page)),
                (Some(total), want.clone()),
                "{path}"
            );
            // `next` continues exactly where the page stopped.
            let after = naive(&all, judge.as_ref(), limit + 1, from, reverse).1;
            assert_eq!(page["next"].as_u64(), after.get(limit).copied(), "{path}");
        }
    }
    // Walking `next` from the first page visits every matching task once.
    let mut seen = Vec::new();
    let mut path = "/tasks?limit=7&indexUids=a,b".to_owned();
    loop {
        let (_, page) = call(base, "GET", &path, None).await;
        seen.extend(uids(&page));
        match page["next"].as_u64() {
            Some(next) => path = format!("/tasks?limit=7&indexUids=a,b&from={next}"),
            None => break,
        }
    }
    let want = naive(
        &all,
        &|t| t["indexUid"] == "a" || t["indexUid"] == "b",
        1000,
        None,
        false,
    )
    .1;
    assert_eq!(seen, want);
}

/// The same over real Meilisearch nodes, whose task views (statuses, dates, failures) are
/// the ones Miroir aggregates in production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_over_real_nodes_equal_a_naive_reading_of_every_task() {
    miroir_testkit::require_meili_bin!();
    use miroir_testkit::{start_node, NodeKind};
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(start_node(NodeKind::Real, KEY).await);
    }
    let (port, metrics) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let toml = config_for(port, metrics, &urls, "");
    let miroir = miroir_testkit::proxy::MiroirProcess::start(miroir_bin(), &toml, port).await;
    let base = miroir.url();
    let mut created = Vec::new();
    for i in 0..15 {
        let index = ["a", "b", "c"][i % 3];
        let (path, body) = match i % 5 {
            // A filter on an attribute that is not filterable: each node fails its task.
            3 => (
                format!("/indexes/{index}/documents/delete"),
                json!({"filter": "title = nothing"}),
            ),
            4 => (
                format!("/indexes/{index}/settings"),
                json!({"searchableAttributes": ["title"]}),
            ),
            _ => (
                format!("/indexes/{index}/documents"),
                json!([{"id": i, "title": format!("Movie {i}")}]),
            ),
        };
        let method = if i % 5 == 4 { "PATCH" } else { "POST" };
        let (status, task) = call(&base, method, &path, Some(body)).await;
        assert_eq!(status, 202, "{path}: {task}");
        created.push(task["taskUid"].as_u64().expect("taskUid"));
    }
    for uid in &created {
        wait_task(&base, *uid).await;
    }
    listings_equal_a_naive_reading(&base, &created).await;
}

#[tokio::test]
async fn a_node_that_hangs_on_task_polls_costs_a_listing_one_timeout_not_one_per_task() {
    let Cluster { nodes, miroir, .. } = slow_cluster(
        2,
        Duration::from_secs(60),
        "[scatter]\nnode_timeout_ms = 400\n",
    )
    .await;
    let base = miroir.url();
    for _ in 0..24 {
        add_documents(&base, "movies", 8).await;
    }
    // Task routes hang on one node; its health checks and writes still answer.
    nodes[1].faults().set_hang(Some("/tasks".into()));
    let started = Instant::now();
    let (status, page) = call(&base, "GET", "/tasks?statuses=enqueued,processing", None).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 24, "{page}");
    // One after another, 24 polls would wait 24 x 400 ms.
    assert!(took < Duration::from_millis(2_500), "listing took {took:?}");
    let started = Instant::now();
    let (status, page) = call(&base, "GET", "/tasks?limit=10", None).await;
    assert_eq!((status, uids(&page).len()), (200, 10), "{page}");
    assert!(started.elapsed() < Duration::from_millis(2_500));
    nodes[1].faults().clear();
}

#[tokio::test]
async fn unfinished_tasks_are_polled_concurrently() {
    let Cluster { nodes, miroir, .. } = slow_cluster(1, Duration::from_secs(60), "").await;
    let base = miroir.url();
    for _ in 0..20 {
        add_documents(&base, "movies", 2).await;
    }
    // Every task poll takes 150 ms: twenty in a row would take 3 s.
    nodes[0].faults().set_latency(meili_sim::Latency {
        min: Duration::from_millis(150),
        max: Duration::from_millis(150),
        path_prefix: Some("/tasks/".into()),
    });
    let started = Instant::now();
    let (status, page) = call(&base, "GET", "/tasks?statuses=enqueued", None).await;
    assert_eq!((status, page["total"].as_u64()), (200, Some(20)), "{page}");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_registry_is_pruned_like_meilisearchs_task_queue_at_its_limit() {
    let nodes = sim_nodes(2).await;
    let (port, metrics) = (
        miroir_testkit::proxy::free_port(),
        miroir_testkit::proxy::free_port(),
    );
    let refs: Vec<&meili_sim::SimNode> = nodes.iter().collect();
    let miroir = miroir_testkit::proxy::MiroirProcess::start_with_env(
        miroir_bin(),
        &config(port, metrics, &refs, ""),
        port,
        &[("MIROIR_TEST_MAX_TASKS", "6")],
    )
    .await;
    let base = miroir.url();
    let mut created = Vec::new();
    for _ in 0..5 {
        let uid = add_documents(&base, "movies", 3).await;
        wait_task(&base, uid).await;
        created.push(uid);
    }
    // The sixth reaches the limit: not waited for, it may be finished and deleted at once.
    created.push(add_documents(&base, "movies", 3).await);
    // At six tasks, the finished ones (at most 100 000, the oldest first) are deleted and a
    // task deletion says so.
    let deletion = eventually(Duration::from_secs(10), || async {
        let (_, page) = call(&base, "GET", "/tasks?types=taskDeletion", None).await;
        page["total"] == 1
    })
    .await;
    assert!(deletion, "no task deletion recorded:\n{}", miroir.log());
    let (_, page) = call(&base, "GET", "/tasks?types=taskDeletion", None).await;
    let task = &page["results"][0];
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["indexUid"], Value::Null);
    let deleted = task["details"]["deletedTasks"]
        .as_u64()
        .expect("deletedTasks");
    assert_eq!(task["details"]["matchedTasks"], deleted);
    assert!((5..=6).contains(&deleted), "{task}");
    let filter = task["details"]["originalFilter"].as_str().expect("filter");
    assert!(
        filter.starts_with("?beforeEnqueuedAt=")
            && filter.ends_with("&statuses=succeeded,failed,canceled"),
        "{filter}"
    );
    for uid in &created[..5] {
        let (status, _) = call(&base, "GET", &format!("/tasks/{uid}"), None).await;
        assert_eq!(status, 404, "task {uid} deleted");
    }
    let (_, all) = call(&base, "GET", "/tasks", None).await;
    assert_eq!(all["total"].as_u64(), Some(6 - deleted + 1), "{all}");
    assert_eq!(all["results"][0]["uid"], task["uid"], "the newest task");
    miroir
        .wait_for_log("The task queue is almost full", Duration::from_secs(5))
        .await;
}
