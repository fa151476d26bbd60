//! Two Miroir processes in front of the same simulated nodes, sharing one task registry in a
//! real `redis-server` (started by the test, AOF with `appendfsync always`, a password):
//! writes and task reads alternate between them, one `Idempotency-Key` sent to both reaches
//! the nodes once, and with Redis down writes are refused on both while searches go on.
//! Each process has its own data directory; the hint logs, write order and job leases they
//! share through Redis are tested in `multi_miroir_failover.rs`.

mod common;

use std::time::Duration;

use common::{call, client, miroir_bin, KEY};
use meili_sim::{SimConfig, SimNode};
use miroir_filters::routing::{shard_for_key, GroupId, NodeId, Placement};
use miroir_testkit::proxy::{free_port, MiroirProcess};
use miroir_testkit::redis::Persistence;
use serde_json::{json, Value};

const PASSWORD: &str = "redis-sekrit-9f3";
const INDEX: &str = "movies";

struct Pair {
    nodes: Vec<SimNode>,
    a: MiroirProcess,
    b: MiroirProcess,
}

impl Pair {
    fn bases(&self) -> [String; 2] {
        [self.a.url(), self.b.url()]
    }
}

/// Three simulated nodes taking `task_delay` per task, and two Miroirs sharing `redis_url`.
async fn pair(redis_url: &str, task_delay: Duration) -> Pair {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let cfg = SimConfig {
            master_key: Some(KEY.into()),
            port: 0,
            task_delay,
            seed: i as u64 + 1,
            name: format!("multi-{i}"),
        };
        nodes.push(SimNode::start(cfg).await.expect("node"));
    }
    let refs: Vec<&SimNode> = nodes.iter().collect();
    let extra = format!("[task_store]\nbackend = \"redis\"\nurl = \"{redis_url}\"\n");
    let start = || async {
        let (port, metrics) = (free_port(), free_port());
        let toml = common::config(port, metrics, &refs, &extra);
        MiroirProcess::start(miroir_bin(), &toml, port).await
    };
    let a = start().await;
    let b = start().await;
    Pair { nodes, a, b }
}

async fn wait_alternating(bases: &[String; 2], uid: u64) -> Value {
    common::wait_task_rotating(bases, uid).await
}

async fn add(base: &str, ids: std::ops::Range<u64>) -> (u16, Value) {
    let docs: Vec<Value> = ids
        .map(|i| json!({"id": i, "title": format!("film {i}")}))
        .collect();
    call(
        base,
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(Value::Array(docs)),
    )
    .await
}

/// How many document-write tasks each node holds for the index.
async fn node_writes(nodes: &[SimNode]) -> Vec<usize> {
    let mut out = Vec::new();
    for node in nodes {
        out.push(common::node_write_tasks(node, INDEX).await);
    }
    out
}

/// The task without what differs between two reads of a finished task (nothing should).
fn same_task(a: &Value, b: &Value) {
    assert_eq!(a, b, "the two Miroirs show the task differently");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_miroirs_share_tasks_idempotency_keys_and_refuse_writes_without_redis() {
    let Some(mut redis) =
        miroir_testkit::redis::RedisServer::start_with(Persistence::AofAlways, Some(PASSWORD))
    else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let p = pair(&redis.url(), Duration::from_millis(150)).await;
    let bases = p.bases();
    let mut acknowledged = Vec::new();

    // An index created through A, documents through B: one uid sequence.
    let (status, created) = call(
        &bases[0],
        "POST",
        "/indexes",
        Some(json!({"uid": INDEX, "primaryKey": "id"})),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let t0 = created["taskUid"].as_u64().expect("uid");
    acknowledged.push(t0);
    wait_alternating(&bases, t0).await;
    let (status, added) = add(&bases[1], 0..100).await;
    assert_eq!(status, 202, "{added}");
    let t1 = added["taskUid"].as_u64().expect("uid");
    assert!(t1 > t0, "{t0} then {t1}");
    acknowledged.push(t1);
    let done = wait_alternating(&bases, t1).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, via_a) = call(&bases[0], "GET", &format!("/tasks/{t1}"), None).await;
    let (_, via_b) = call(&bases[1], "GET", &format!("/tasks/{t1}"), None).await;
    same_task(&via_a, &via_b);
    assert_eq!(via_a["details"]["indexedDocuments"], 100, "{via_a}");

    // Listed with filters the same through both.
    let listing =
        format!("/tasks?indexUids={INDEX}&types=documentAdditionOrUpdate,indexCreation&limit=10");
    let (sa, la) = call(&bases[0], "GET", &listing, None).await;
    let (sb, lb) = call(&bases[1], "GET", &listing, None).await;
    assert_eq!((sa, sb), (200, 200), "{la} {lb}");
    same_task(&la, &lb);
    let uids: Vec<u64> = la["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|t| t["uid"].as_u64())
        .collect();
    assert_eq!(uids, [t1, t0], "{la}");
    assert_eq!(la["total"], 2, "{la}");

    // A write through A canceled through B, then deleted through B and gone through A.
    let (_, busy) = add(&bases[0], 100..200).await;
    let (status, queued) = add(&bases[0], 200..300).await;
    assert_eq!(status, 202, "{queued}");
    let (busy, queued) = (
        busy["taskUid"].as_u64().expect("uid"),
        queued["taskUid"].as_u64().expect("uid"),
    );
    acknowledged.extend([busy, queued]);
    let (status, cancel) = call(
        &bases[1],
        "POST",
        &format!("/tasks/cancel?uids={queued}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cancel}");
    let cancel_uid = cancel["taskUid"].as_u64().expect("uid");
    assert!(cancel_uid > queued);
    let canceled = wait_alternating(&bases, cancel_uid).await;
    assert_eq!(canceled["status"], "succeeded", "{canceled}");
    let target = wait_alternating(&bases, queued).await;
    let (_, again) = call(&bases[0], "GET", &format!("/tasks/{queued}"), None).await;
    same_task(&target, &again);
    assert_eq!(target["status"], "canceled", "{target}");
    let by = format!("/tasks?canceledBy={cancel_uid}");
    let (_, ca) = call(&bases[0], "GET", &by, None).await;
    let (_, cb) = call(&bases[1], "GET", &by, None).await;
    same_task(&ca, &cb);
    let (status, deletion) =
        call(&bases[1], "DELETE", &format!("/tasks?uids={queued}"), None).await;
    assert_eq!(status, 200, "{deletion}");
    let deletion_uid = deletion["taskUid"].as_u64().expect("uid");
    let deleted = wait_alternating(&bases, deletion_uid).await;
    assert_eq!(deleted["details"]["deletedTasks"], 1, "{deleted}");
    for base in &bases {
        let (status, gone) = call(base, "GET", &format!("/tasks/{queued}"), None).await;
        assert_eq!(status, 404, "{base}: {gone}");
        assert_eq!(gone["code"], "task_not_found");
    }
    acknowledged.retain(|&u| u != queued);
    acknowledged.extend([cancel_uid, deletion_uid]);
    wait_alternating(&bases, busy).await;

    // One Idempotency-Key sent to A and B at once: the nodes receive the write once.
    let before = node_writes(&p.nodes).await;
    let send = |base: String| {
        client()
            .post(format!("{base}/indexes/{INDEX}/documents"))
            .bearer_auth(KEY)
            .header("Idempotency-Key", "import-7")
            .json(&json!([{"id": 1000, "title": "once"}, {"id": 1001, "title": "once"}]))
            .send()
    };
    let (ra, rb) = tokio::join!(send(bases[0].clone()), send(bases[1].clone()));
    let (ra, rb) = (ra.expect("A"), rb.expect("B"));
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (202, 202));
    let (ra, rb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
    assert_eq!(ra["taskUid"], rb["taskUid"], "{ra} {rb}");
    let once = ra["taskUid"].as_u64().expect("uid");
    acknowledged.push(once);
    wait_alternating(&bases, once).await;
    let after = node_writes(&p.nodes).await;
    let grew: usize = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    // Two documents land on at most two of the three nodes: one node task each, once.
    assert!(
        (1..=2).contains(&grew),
        "before {before:?}, after {after:?}"
    );

    // Redis down: writes refused on both with nothing sent, searches still answered.
    redis.kill();
    let before = node_writes(&p.nodes).await;
    for base in &bases {
        let (status, refused) = add(base, 5000..5010).await;
        assert_eq!(status, 503, "{base}: {refused}");
        assert_eq!(
            refused["code"], "miroir_task_store_unavailable",
            "{refused}"
        );
        assert_eq!(refused["type"], "system", "{refused}");
        assert!(refused["link"].is_string(), "{refused}");
        let (status, refused) = call(
            base,
            "PATCH",
            &format!("/indexes/{INDEX}/settings"),
            Some(json!({"filterableAttributes": ["title"]})),
        )
        .await;
        assert_eq!(status, 503, "{base}: {refused}");
        let (status, found) = call(
            base,
            "POST",
            &format!("/indexes/{INDEX}/search"),
            Some(json!({"q": "film", "limit": 5})),
        )
        .await;
        assert_eq!(status, 200, "{base}: {found}");
        let hits = found["estimatedTotalHits"].as_u64().unwrap_or(0);
        assert!(hits >= 200, "{found}");
        let (status, settings) =
            call(base, "GET", &format!("/indexes/{INDEX}/settings"), None).await;
        assert_eq!(status, 200, "{base}: {settings}");
        let (status, task) = call(base, "GET", &format!("/tasks/{t1}"), None).await;
        assert_eq!(status, 503, "{base}: {task}");
        assert_eq!(task["code"], "miroir_task_store_unavailable", "{task}");
    }
    assert_eq!(
        node_writes(&p.nodes).await,
        before,
        "a refused write reached a node"
    );

    // Redis back with its append-only file: every acknowledged task is there, writes work
    // again without restarting either Miroir.
    redis.restart();
    for &uid in &acknowledged {
        let (_, via_a) = call(&bases[0], "GET", &format!("/tasks/{uid}"), None).await;
        let (status, via_b) = call(&bases[1], "GET", &format!("/tasks/{uid}"), None).await;
        assert_eq!(status, 200, "task {uid} lost: {via_b}");
        same_task(&via_a, &via_b);
    }
    let newest = acknowledged.iter().copied().max().unwrap_or(0);
    for base in &bases {
        let (status, added) = add(base, 6000..6010).await;
        assert_eq!(status, 202, "{base}: {added}");
        let uid = added["taskUid"].as_u64().expect("uid");
        assert!(
            uid > newest,
            "uid {uid} after {newest}: the sequence survived"
        );
        let done = wait_alternating(&bases, uid).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    for miroir in [&p.a, &p.b] {
        assert!(
            !miroir.log().contains(PASSWORD),
            "the Redis password reached the log"
        );
    }
}

/// An admin request with the admin key: (status, JSON answer).
async fn admin(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(common::ADMIN_KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The index an alias points to, as one Miroir answers it.
async fn alias_target(base: &str, name: &str) -> Value {
    let (status, alias) = admin(base, "GET", &format!("/_miroir/aliases/{name}"), None).await;
    assert_eq!(status, 200, "{alias}");
    alias["target"].clone()
}

/// What is set through one Miroir (an alias, a webhook) is what the other answers with, as
/// soon as the first one answered: no Miroir keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aliases_and_webhooks_set_through_one_miroir_are_what_the_other_answers() {
    let Some(redis) =
        miroir_testkit::redis::RedisServer::start_with(Persistence::AofAlways, Some(PASSWORD))
    else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let mut p = pair(&redis.url(), Duration::ZERO).await;
    let [a, b] = p.bases();
    for (uid, title) in [("films_v1", "old"), ("films_v2", "new")] {
        let (status, t) = call(
            &a,
            "POST",
            &format!("/indexes/{uid}/documents?primaryKey=id"),
            Some(json!([{"id": 1, "title": title}])),
        )
        .await;
        assert_eq!(status, 202, "{t}");
        let done = wait_alternating(&[a.clone(), b.clone()], t["taskUid"].as_u64().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let title_via = |base: String| async move {
        let (status, found) = call(&base, "POST", "/indexes/films/search", Some(json!({}))).await;
        assert_eq!(status, 200, "{found}");
        found["hits"][0]["title"].clone()
    };

    // Created through A: B resolves it at once.
    let (status, created) = admin(
        &a,
        "POST",
        "/_miroir/aliases",
        Some(json!({"name": "films", "target": "films_v1"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(alias_target(&b, "films").await, "films_v1");
    assert_eq!(title_via(b.clone()).await, "old");
    // Repointed through B: A follows before B answers.
    let (status, moved) = admin(
        &b,
        "PUT",
        "/_miroir/aliases/films",
        Some(json!({"target": "films_v2"})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(alias_target(&a, "films").await, "films_v2");
    assert_eq!(title_via(a.clone()).await, "new");
    // Both ask for the same name at once: one creates it, the other is told it exists.
    let body = json!({"name": "twice", "target": "films_v1"});
    let (ra, rb) = tokio::join!(
        admin(&a, "POST", "/_miroir/aliases", Some(body.clone())),
        admin(&b, "POST", "/_miroir/aliases", Some(body.clone()))
    );
    let mut statuses = [ra.0, rb.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{ra:?} {rb:?}");

    // A webhook registered through B is listed, and removed, through A.
    let (status, hook) = call(
        &b,
        "POST",
        "/webhooks",
        Some(json!({"url": "https://example.com/hook"})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let uuid = hook["uuid"].as_str().expect("uuid").to_owned();
    let (_, listed) = call(&a, "GET", "/webhooks", None).await;
    assert_eq!(listed["results"][0]["uuid"], uuid.as_str(), "{listed}");
    let (status, gone) = call(&a, "DELETE", &format!("/webhooks/{uuid}"), None).await;
    assert_eq!(status, 204, "{gone}");
    let (_, listed) = call(&b, "GET", "/webhooks", None).await;
    assert_eq!(listed["results"], json!([]), "{listed}");

    // A Miroir restarted reads them from Redis, whatever its own directory held.
    p.b.crash_and_restart_after(miroir_bin(), |data| {
        let _ = std::fs::remove_file(data.join("aliases.json"));
    })
    .await;
    assert_eq!(alias_target(&b, "films").await, "films_v2");
}

/// After `shards` is raised on every Miroir, an index created through one is split by its
/// new S through the other too: every document lands on the owner of its shard under S = 16
/// whichever Miroir accepted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_created_through_one_miroir_is_split_by_its_own_shard_count_through_the_other() {
    let Some(redis) = miroir_testkit::redis::RedisServer::start(Persistence::AofAlways) else {
        eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it)");
        return;
    };
    let p = pair(&redis.url(), Duration::ZERO).await;
    let refs: Vec<&SimNode> = p.nodes.iter().collect();
    let extra = format!(
        "[task_store]\nbackend = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    );
    for m in [&p.a, &p.b] {
        let port: u16 = m.url().rsplit(':').next().unwrap().parse().unwrap();
        let toml = common::config(port, free_port(), &refs, &extra).replacen(
            "shards = 8\n",
            "shards = 16\n",
            1,
        );
        m.write_config(&toml);
    }
    // Both run the new `shards` (a Miroir still on the old file would create the index with
    // S = 8, which every Miroir would then follow).
    for m in [&p.a, &p.b] {
        m.wait_for_log("miroir::reload applied", Duration::from_secs(10))
            .await;
    }
    // The placement widens to 16 slots (in whichever Miroir carries changes out), and both
    // Miroirs run it.
    let widened = common::eventually(Duration::from_secs(20), || async {
        [&p.a, &p.b]
            .iter()
            .any(|m| m.log().contains("placement widened to 16 shards"))
    })
    .await;
    assert!(widened, "{}\n{}", p.a.log(), p.b.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let [a, b] = p.bases();
    let mut tasks = Vec::new();
    for (base, ids) in [
        (&a, 0..200u64),
        (&b, 200..400),
        (&a, 400..600),
        (&b, 600..800),
    ] {
        let docs: Vec<Value> = ids.map(|i| json!({"id": i})).collect();
        let (status, t) = call(
            base,
            "POST",
            "/indexes/wide/documents?primaryKey=id",
            Some(Value::Array(docs)),
        )
        .await;
        assert_eq!(status, 202, "{t}");
        tasks.push(t["taskUid"].as_u64().unwrap());
    }
    for uid in tasks {
        let done = wait_alternating(&[a.clone(), b.clone()], uid).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let ids: Vec<NodeId> = (0..3)
        .map(|i| NodeId::new(&format!("n{i}")).unwrap())
        .collect();
    let placement = Placement::new(16, 1, vec![ids]).unwrap();
    let mut misplaced = Vec::new();
    let mut held = 0;
    for (i, node) in p.nodes.iter().enumerate() {
        let (status, page) = call(
            &node.url(),
            "GET",
            "/indexes/wide/documents?limit=10000&fields=id",
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        for d in page["results"].as_array().unwrap() {
            let id = d["id"].as_u64().unwrap();
            held += 1;
            let shard = shard_for_key(&id.to_string(), 16);
            let owner = placement.replicas(GroupId(0), shard)[0];
            if placement.node(owner).as_str() != format!("n{i}") {
                misplaced.push(id);
            }
        }
    }
    assert_eq!(held, 800, "every document held once");
    assert!(
        misplaced.is_empty(),
        "{} documents split by another S, first {:?}",
        misplaced.len(),
        &misplaced[..misplaced.len().min(10)]
    );
}
