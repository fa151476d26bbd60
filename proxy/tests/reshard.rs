//! Online resharding through Miroir: an index's S changed while clients write and search it.
//! Searches over the documents that do not change answer exactly as before, during and after
//! the flip; every acknowledged write is there at the end with its last content; the shadow
//! index is never listed; a rollback returns to the old S with the writes made after the flip;
//! `finish` drops the old layout from every node. Simulated nodes (16 -> 32 shards on 100 000
//! documents) and real Meilisearch 1.50.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{call, client, wait_task, ADMIN_KEY, KEY};
use miroir_testkit::proxy::{free_port, MiroirProcess};
use miroir_testkit::{require_meili_bin, start_node, NodeKind, TestNode};
use serde_json::{json, Value};

const WORDS: [&str; 8] = [
    "red", "blue", "river", "city", "storm", "garden", "stone", "light",
];
const INDEX: &str = "books";
const SHADOW: &str = "_miroir_reshard_books";

async fn admin(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .header("X-Admin-Key", ADMIN_KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn doc(id: u64, batch: &str, rev: u64) -> Value {
    let w = |k: u64| WORDS[(k % WORDS.len() as u64) as usize];
    json!({
        "id": id,
        "title": format!("{} {} {}", w(id), w(id / 7 + 3), w(id / 61 + 5)),
        "batch": batch,
        "n": id % 1000,
        "rev": rev,
    })
}

struct Fleet {
    nodes: Vec<TestNode>,
    miroir: MiroirProcess,
    metrics: u16,
}

async fn fleet(kind: NodeKind, shards: u32, docs: u64, extra: &str) -> Fleet {
    let mut list = Vec::new();
    for _ in 0..3 {
        list.push(start_node(kind, KEY).await);
    }
    let (port, metrics) = (free_port(), free_port());
    let urls: Vec<String> = list.iter().map(|n| n.url()).collect();
    // Simulated nodes scan every document of a search (debug build): give them time.
    let toml = common::config_for(
        port,
        metrics,
        &urls,
        &format!("[scatter]\nnode_timeout_ms = 30000\n\n{extra}"),
    )
    .replacen(
        "shards = 8\n",
        &format!("shards = {shards}\nreplication_factor = 2\n"),
        1,
    )
    // Nodes busy indexing a large batch answer health checks late, not never.
    .replacen(
        "interval_ms = 100\ntimeout_ms = 100\n",
        "interval_ms = 1000\ntimeout_ms = 1000\n",
        1,
    );
    let miroir = MiroirProcess::start(common::miroir_bin(), &toml, port).await;
    let base = miroir.url();
    let settings = json!({
        "filterableAttributes": ["batch", "n", "rev"],
        "sortableAttributes": ["n", "id"],
    });
    let (s, r) = call(
        &base,
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        Some(settings),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    wait_task(&base, r["taskUid"].as_u64().expect("uid")).await;
    let mut last = 0;
    for start in (0..docs).step_by(10_000) {
        let page: Vec<Value> = (start..(start + 10_000).min(docs))
            .map(|i| doc(i, "static", 0))
            .collect();
        let (s, r) = call(
            &base,
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            Some(json!(page)),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        last = r["taskUid"].as_u64().expect("uid");
    }
    let t = wait_task(&base, last).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    Fleet {
        nodes: list,
        miroir,
        metrics,
    }
}

/// Searches over the documents no writer touches: their answers must not change.
fn static_queries() -> Vec<Value> {
    let f = |extra: Value| {
        let mut q = json!({ "filter": "batch = static", "limit": 20, "showRankingScore": true });
        if let (Value::Object(q), Value::Object(e)) = (&mut q, extra) {
            q.extend(e);
        }
        q
    };
    vec![
        f(json!({ "q": "river" })),
        f(json!({ "q": "storm garden" })),
        f(json!({ "q": "stone light red", "matchingStrategy": "all" })),
        f(json!({ "q": "city", "sort": ["n:desc", "id:asc"] })),
        f(json!({ "q": "", "sort": ["n:asc", "id:asc"], "offset": 40 })),
        f(json!({ "q": "blue", "facets": ["n"], "limit": 5 })),
        json!({ "q": "red", "filter": "batch = static AND n < 100", "limit": 10, "showRankingScore": true }),
    ]
}

/// What must not change in an answer: the ranking scores in order, the ids within each score
/// (documents of equal score may come in any order, as they do between two single nodes
/// holding them in a different insertion order; the last score group may be cut differently
/// by `limit`), totals and facet counts.
fn essence(answer: &Value) -> Value {
    let hits = answer["hits"].as_array().cloned().unwrap_or_default();
    let scores: Vec<Value> = hits.iter().map(|h| h["_rankingScore"].clone()).collect();
    let last = scores.last().cloned();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for h in hits
        .iter()
        .filter(|h| Some(&h["_rankingScore"]) != last.as_ref())
    {
        let score = h["_rankingScore"].to_string();
        match groups.last_mut() {
            Some((s, ids)) if *s == score => ids.push(h["id"].to_string()),
            _ => groups.push((score, vec![h["id"].to_string()])),
        }
    }
    for (_, ids) in &mut groups {
        ids.sort();
    }
    json!({
        "scores": scores,
        "groups": groups,
        "estimatedTotalHits": answer["estimatedTotalHits"],
        "facetDistribution": answer["facetDistribution"],
    })
}

async fn answers(base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for q in static_queries() {
        let (s, r) = call(
            base,
            "POST",
            &format!("/indexes/{INDEX}/search"),
            Some(q.clone()),
        )
        .await;
        assert_eq!(s, 200, "{q}: {r}");
        out.push(essence(&r));
    }
    out
}

/// The live documents as the writers left them: id -> rev (`None`: deleted).
type Model = Arc<tokio::sync::Mutex<BTreeMap<u64, Option<u64>>>>;

struct Load {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    mismatches: Arc<AtomicU64>,
    searches: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    model: Model,
    last_task: Arc<AtomicU64>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// One writer (adds, updates and deletes live documents; only acknowledged writes enter the
/// model) and two searchers comparing the static answers with `expected`.
fn load(base: &str, expected: Vec<Value>, first_live: u64, pace: Duration) -> Load {
    let l = Load {
        stop: Arc::default(),
        errors: Arc::default(),
        mismatches: Arc::default(),
        searches: Arc::default(),
        writes: Arc::default(),
        model: Arc::default(),
        last_task: Arc::default(),
        handles: Vec::new(),
    };
    let mut handles = Vec::new();
    {
        let (base, stop, errors, writes, model, last) = (
            base.to_owned(),
            l.stop.clone(),
            l.errors.clone(),
            l.writes.clone(),
            l.model.clone(),
            l.last_task.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                // 50 new documents, 20 updated, 5 deleted, each round.
                let new: Vec<Value> = (0..50)
                    .map(|i| doc(first_live + round * 50 + i, "live", round))
                    .collect();
                let upd: Vec<u64> = (0..20)
                    .map(|i| first_live + 50 + ((round * 37 + i * 11) % (round * 50).max(1)))
                    .collect();
                let del: Vec<u64> = (0..5)
                    .map(|i| first_live + 50 + ((round * 13 + i * 7) % (round * 50).max(1)))
                    .collect();
                let upd_docs: Vec<Value> = upd.iter().map(|id| doc(*id, "live", round)).collect();
                let steps: [(&str, String, Value); 3] = [
                    ("POST", format!("/indexes/{INDEX}/documents"), json!(new)),
                    (
                        "PUT",
                        format!("/indexes/{INDEX}/documents"),
                        json!(upd_docs),
                    ),
                    (
                        "POST",
                        format!("/indexes/{INDEX}/documents/delete-batch"),
                        json!(del),
                    ),
                ];
                for (k, (method, path, body)) in steps.into_iter().enumerate() {
                    let (s, r) = call(&base, method, &path, Some(body)).await;
                    if s != 202 {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("write answered {s}: {r}");
                        continue;
                    }
                    writes.fetch_add(1, Ordering::Relaxed);
                    last.fetch_max(r["taskUid"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    let mut m = model.lock().await;
                    match k {
                        0 => new.iter().for_each(|d| {
                            m.insert(d["id"].as_u64().unwrap_or(0), Some(round));
                        }),
                        1 => upd.iter().for_each(|id| {
                            // An update (PUT) of a deleted id creates it again.
                            m.insert(*id, Some(round));
                        }),
                        _ => del.iter().for_each(|id| {
                            m.insert(*id, None);
                        }),
                    }
                }
                tokio::time::sleep(pace).await;
            }
        }));
    }
    for _ in 0..2 {
        let (base, stop, errors, mismatches, searches, expected) = (
            base.to_owned(),
            l.stop.clone(),
            l.errors.clone(),
            l.mismatches.clone(),
            l.searches.clone(),
            expected.clone(),
        );
        handles.push(tokio::spawn(async move {
            let queries = static_queries();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = i % queries.len();
                i += 1;
                let (s, r) = call(
                    &base,
                    "POST",
                    &format!("/indexes/{INDEX}/search"),
                    Some(queries[k].clone()),
                )
                .await;
                searches.fetch_add(1, Ordering::Relaxed);
                if s != 200 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("search answered {s}: {r}");
                } else if essence(&r) != expected[k] {
                    mismatches.fetch_add(1, Ordering::Relaxed);
                    eprintln!("search {k} differs: {} vs {}", essence(&r), expected[k]);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    Load { handles, ..l }
}

impl Load {
    async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            h.await.expect("load task");
        }
    }
}

async fn start_reshard(base: &str, shards: u32) -> (u16, Value) {
    let body = json!({ "index": INDEX, "shards": shards });
    admin(base, "POST", "/_miroir/reshards", Some(body)).await
}

async fn reshard_of(base: &str) -> Option<Value> {
    let (s, all) = admin(base, "GET", "/_miroir/reshards", None).await;
    assert_eq!(s, 200, "{all}");
    all["results"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["index"] == INDEX).cloned())
}

async fn wait_phase(base: &str, phase: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let r = reshard_of(base).await;
        match &r {
            Some(r) if r["phase"] == phase => return r.clone(),
            None if phase == "ended" => return Value::Null,
            _ => {}
        }
        assert!(
            started.elapsed() < limit,
            "no `{phase}` within {limit:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn index_shards(base: &str) -> u64 {
    let (s, t) = admin(base, "GET", "/_miroir/topology", None).await;
    assert_eq!(s, 200, "{t}");
    t["indexShards"][INDEX]
        .as_u64()
        .unwrap_or(t["unlistedIndexShards"].as_u64().unwrap_or(0))
}

/// Every live document the model holds is there with its last revision, every deleted one
/// gone, and the index holds `static_docs` plus the live ones.
async fn check_model(base: &str, model: &Model, static_docs: u64) {
    let m = model.lock().await;
    let ids: Vec<u64> = m.keys().copied().collect();
    let mut found = BTreeMap::new();
    for chunk in ids.chunks(1000) {
        let body = json!({ "ids": chunk, "limit": 1000, "fields": ["id", "rev"] });
        let (s, r) = call(
            base,
            "POST",
            &format!("/indexes/{INDEX}/documents/fetch"),
            Some(body),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        for d in r["results"].as_array().into_iter().flatten() {
            found.insert(d["id"].as_u64().unwrap_or(0), d["rev"].as_u64());
        }
    }
    let mut lost = 0;
    for (id, rev) in m.iter() {
        if found.get(id).copied() != rev.map(Some) {
            lost += 1;
            if lost < 5 {
                eprintln!("document {id}: expected {rev:?}, found {:?}", found.get(id));
            }
        }
    }
    assert_eq!(
        lost, 0,
        "{lost} live documents differ from what was acknowledged"
    );
    let live = m.values().filter(|r| r.is_some()).count() as u64;
    let (s, r) = call(
        base,
        "GET",
        &format!("/indexes/{INDEX}/documents?limit=0"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["total"].as_u64(), Some(static_docs + live), "{r}");
}

/// The shadow is deleted on every node once its deletion task ran.
async fn shadow_gone(nodes: &[TestNode]) {
    for node in nodes {
        let mut gone = false;
        for _ in 0..100 {
            let (s, _) = call(&node.url(), "GET", &format!("/indexes/{SHADOW}"), None).await;
            if s == 404 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "the shadow is still on {}", node.url());
    }
}

/// Writes one live document, waits for it and records it in `model`.
async fn write_live(base: &str, model: &Model, (id, rev): (u64, u64)) {
    let path = format!("/indexes/{INDEX}/documents");
    let (s, r) = call(base, "POST", &path, Some(json!([doc(id, "live", rev)]))).await;
    assert_eq!(s, 202, "{r}");
    wait_task(base, r["taskUid"].as_u64().expect("uid")).await;
    model.lock().await.insert(id, Some(rev));
}

/// Miroir's own index is never shown: not in the index list, the stats or the tasks.
async fn shadow_hidden(base: &str) {
    let (_, list) = call(base, "GET", "/indexes?limit=100", None).await;
    let uids: Vec<&str> = list["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["uid"].as_str())
        .collect();
    assert_eq!(uids, vec![INDEX], "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let (_, stats) = call(base, "GET", "/stats", None).await;
    assert!(stats["indexes"].get(SHADOW).is_none(), "{stats}");
    let (_, tasks) = call(base, "GET", "/tasks?limit=1000", None).await;
    let text = tasks.to_string();
    assert!(
        !text.contains("_miroir_reshard"),
        "a task names the shadow: {text}"
    );
    // Nor reachable by name: it does not exist for a client, and its prefix is reserved.
    for (method, path) in [
        ("GET", format!("/indexes/{SHADOW}")),
        ("POST", format!("/indexes/{SHADOW}/search")),
        ("GET", format!("/indexes/{SHADOW}/documents")),
    ] {
        let body = (method == "POST").then(|| json!({ "q": "" }));
        let (s, r) = call(base, method, &path, body).await;
        assert_eq!(
            (s, r["code"].as_str()),
            (404, Some("index_not_found")),
            "{path}: {r}"
        );
    }
    let (s, r) = call(
        base,
        "POST",
        "/indexes",
        Some(json!({ "uid": "_miroir_mine" })),
    )
    .await;
    assert_eq!(
        (s, r["code"].as_str()),
        (400, Some("invalid_index_uid")),
        "{r}"
    );
}

/// Disk the real nodes use, in KiB (`du`: blocks allocated), sampled until stopped: (first,
/// peak, last). `None` for simulated nodes.
fn disk_sampler(
    homes: Vec<std::path::PathBuf>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Option<(u64, u64, u64)>> {
    tokio::spawn(async move {
        if homes.is_empty() {
            return None;
        }
        let used = move |homes: Vec<std::path::PathBuf>| {
            homes
                .iter()
                .filter_map(|h| {
                    let out = std::process::Command::new("du")
                        .arg("-sk")
                        .arg(h)
                        .output()
                        .ok()?;
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum::<u64>()
        };
        let h = homes.clone();
        let first = tokio::task::spawn_blocking(move || used(h))
            .await
            .unwrap_or(0);
        let (mut peak, mut last) = (first, first);
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let h = homes.clone();
            last = tokio::task::spawn_blocking(move || used(h))
                .await
                .unwrap_or(0);
            peak = peak.max(last);
        }
        Some((first, peak, last))
    })
}

async fn scenario(kind: NodeKind, docs: u64, (from, to): (u32, u32)) {
    let f = fleet(kind, from, docs, "").await;
    let base = f.miroir.url();
    let mut homes = Vec::new();
    for n in &f.nodes {
        homes.extend(n.home().await);
    }
    assert_eq!(index_shards(&base).await, u64::from(from));
    let before = answers(&base).await;

    // Bad requests change nothing.
    for (body, code) in [
        (
            json!({ "index": INDEX, "shards": 0 }),
            "miroir_invalid_reshard",
        ),
        (
            json!({ "index": INDEX, "shards": from }),
            "miroir_invalid_reshard",
        ),
        (
            json!({ "index": "nope", "shards": to }),
            "miroir_invalid_reshard",
        ),
        (json!({ "shards": to }), "miroir_invalid_reshard"),
    ] {
        let (s, r) = admin(&base, "POST", "/_miroir/reshards", Some(body)).await;
        assert_eq!((s, r["code"].as_str()), (400, Some(code)), "{r}");
        assert!(r["message"].is_string() && r["link"].is_string(), "{r}");
    }
    let (s, r) = admin(&base, "POST", "/_miroir/reshards/books/finish", None).await;
    assert_eq!(
        (s, r["code"].as_str()),
        (404, Some("miroir_reshard_not_found")),
        "{r}"
    );

    // Real nodes on this 2-core machine share it with Miroir and each other: the writer keeps
    // them busy without saturating them (a saturated node's queue is what the flip waits for).
    let pace = match kind {
        NodeKind::Sim => Duration::from_millis(20),
        NodeKind::Real => Duration::from_millis(200),
    };
    let mut l = load(&base, before.clone(), 10_000_000, pace);
    let disk_stop = Arc::new(AtomicBool::new(false));
    let disk = disk_sampler(homes.clone(), disk_stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (s, r) = start_reshard(&base, to).await;
    assert_eq!(s, 202, "{r}");
    let (s, r) = start_reshard(&base, to).await;
    assert_eq!(
        (s, r["code"].as_str()),
        (409, Some("miroir_reshard_in_progress")),
        "{r}"
    );
    let flipped = wait_phase(&base, "flipped", Duration::from_secs(600)).await;
    let took = started.elapsed();
    let log = f.miroir.log();
    for line in log.lines().filter(|l| l.contains("reshard")) {
        println!("{line}");
    }
    // Writes and searches go on a little past the flip.
    tokio::time::sleep(Duration::from_secs(1)).await;
    l.stop().await;
    disk_stop.store(true, Ordering::Relaxed);
    if let Some((first, peak, last)) = disk.await.expect("disk sampler") {
        println!(
            "nodes' disk: {:.1} MiB before, {:.1} MiB at the peak ({:.2}x), {:.1} MiB after the flip",
            first as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak as f64 / first.max(1) as f64,
            last as f64 / 1024.0
        );
    }
    println!(
        "resharded {docs} documents {from} -> {to} in {:.1} s ({:.0} docs/s) under {} writes and {} searches; progress {}",
        took.as_secs_f64(),
        docs as f64 / took.as_secs_f64(),
        l.writes.load(Ordering::Relaxed),
        l.searches.load(Ordering::Relaxed),
        flipped["progress"]
    );
    assert_eq!(
        l.errors.load(Ordering::Relaxed),
        0,
        "client errors during the reshard"
    );
    assert_eq!(
        l.mismatches.load(Ordering::Relaxed),
        0,
        "answers changed during the reshard"
    );
    assert!(l.searches.load(Ordering::Relaxed) > 10 && l.writes.load(Ordering::Relaxed) > 3);
    wait_task(&base, l.last_task.load(Ordering::Relaxed)).await;
    assert_eq!(index_shards(&base).await, u64::from(to));
    assert_eq!(answers(&base).await, before, "answers after the flip");
    let scraped = common::metrics_text(f.metrics).await;
    for (name, at_least) in [
        ("miroir_reshards_active", 1),
        ("miroir_reshard_copy_documents_total", docs),
        ("miroir_reshard_replayed_writes_total", 1),
    ] {
        let value = scraped
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(value >= at_least as f64, "{name} = {value}");
    }
    check_model(&base, &l.model, docs).await;
    shadow_hidden(&base).await;

    // A write after the flip, then a rollback: the old S again, with that write.
    write_live(&base, &l.model, (99_000_000, 7)).await;
    let (s, r) = admin(&base, "POST", "/_miroir/reshards/books/rollback", None).await;
    assert_eq!(s, 202, "{r}");
    wait_phase(&base, "ended", Duration::from_secs(120)).await;
    assert_eq!(index_shards(&base).await, u64::from(from));
    assert_eq!(answers(&base).await, before, "answers after the rollback");
    check_model(&base, &l.model, docs).await;
    let (_, all) = admin(&base, "GET", "/_miroir/reshards", None).await;
    assert_eq!(all["history"][0]["outcome"], "rolledBack", "{all}");

    // Again, then `finish`: the old layout leaves every node.
    let (s, r) = start_reshard(&base, to).await;
    assert_eq!(s, 202, "{r}");
    wait_phase(&base, "flipped", Duration::from_secs(600)).await;
    let (s, r) = admin(&base, "POST", "/_miroir/reshards/books/finish", None).await;
    assert_eq!(s, 202, "{r}");
    wait_phase(&base, "ended", Duration::from_secs(120)).await;
    assert_eq!(index_shards(&base).await, u64::from(to));
    assert_eq!(answers(&base).await, before, "answers after finishing");
    check_model(&base, &l.model, docs).await;
    shadow_gone(&f.nodes).await;
    shadow_hidden(&base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resharding_simulated_nodes_changes_no_answer() {
    scenario(NodeKind::Sim, 10_000, (4, 8)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resharding_16_to_32_on_real_nodes_under_writes_and_searches_changes_no_answer() {
    let _bin = require_meili_bin!();
    scenario(NodeKind::Real, 100_000, (16, 32)).await;
}

/// Miroir SIGKILLed in the middle of the copy: restarted on the same data directory, it
/// resumes the reshard from its record, replays the writes it mirrored before the crash, and
/// flips with every acknowledged write in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reshard_resumes_after_miroir_is_killed_mid_copy() {
    // About 1 MB to copy at 150 kB/s: the copy lasts seconds.
    let topology = "[topology]\nmax_copy_bytes_per_sec = 150000\n";
    let mut f = fleet(NodeKind::Sim, 4, 10_000, topology).await;
    let base = f.miroir.url();
    let before = answers(&base).await;

    // Through `miroir ctl`, as an operator starts and follows it.
    let (ok, text) = reshard_ctl(&base, "books --shards 0").await;
    assert!(!ok && text.contains("`shards` must be"), "{text}");
    let (ok, text) = reshard_ctl(&base, "books --shards 8").await;
    assert!(
        ok && text.starts_with("books  4 -> 8 shards  copying"),
        "{text}"
    );
    // Some pages copied, the copy not done.
    let started = Instant::now();
    loop {
        let r = reshard_of(&base).await.expect("running");
        if r["progress"]["copiedDocuments"].as_u64().unwrap_or(0) >= 2_000 {
            assert_eq!(r["phase"], "copying", "{r}");
            let (ok, text) = reshard_ctl(&base, "status").await;
            assert!(
                ok && text.contains("books  4 -> 8 shards  copying  copied "),
                "{text}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Writes mirrored before the crash: new documents, updated ones, a deletion.
    let model: Model = Arc::default();
    let mut last = 0;
    for (method, body) in [
        (
            "POST",
            json!((0..30)
                .map(|i| doc(5_000_000 + i, "live", 1))
                .collect::<Vec<_>>()),
        ),
        (
            "PUT",
            json!((0..10)
                .map(|i| doc(5_000_000 + i, "live", 2))
                .collect::<Vec<_>>()),
        ),
    ] {
        let (s, r) = call(
            &base,
            method,
            &format!("/indexes/{INDEX}/documents"),
            Some(body),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        last = r["taskUid"].as_u64().expect("uid");
    }
    let (s, r) = call(
        &base,
        "POST",
        &format!("/indexes/{INDEX}/documents/delete-batch"),
        Some(json!([5_000_029])),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    wait_task(&base, last.max(r["taskUid"].as_u64().expect("uid"))).await;
    {
        let mut m = model.lock().await;
        for i in 0..30 {
            m.insert(5_000_000 + i, Some(if i < 10 { 2 } else { 1 }));
        }
        m.insert(5_000_029, None);
    }

    f.miroir.crash_and_restart(common::miroir_bin()).await;
    let base = f.miroir.url();
    write_live(&base, &model, (6_000_000, 3)).await;

    wait_phase(&base, "flipped", Duration::from_secs(300)).await;
    assert_eq!(index_shards(&base).await, 8);
    assert_eq!(answers(&base).await, before, "answers after the flip");
    check_model(&base, &model, 10_000).await;
    shadow_hidden(&base).await;
}

/// `miroir ctl reshard ARGS` (space-separated).
async fn reshard_ctl(base: &str, args: &str) -> (bool, String) {
    let args: Vec<&str> = std::iter::once("reshard").chain(args.split(' ')).collect();
    common::ctl_outcome(base, &args).await
}

/// The index deleted by a client in the middle of its reshard: the reshard is abandoned and
/// its shadow leaves every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_the_index_abandons_its_reshard() {
    let topology = "[topology]\nmax_copy_bytes_per_sec = 150000\n";
    let f = fleet(NodeKind::Sim, 4, 10_000, topology).await;
    let base = f.miroir.url();
    let (s, r) = start_reshard(&base, 8).await;
    assert_eq!(s, 202, "{r}");
    let started = Instant::now();
    while reshard_of(&base).await.expect("running")["progress"]["copiedDocuments"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, r) = call(&base, "DELETE", &format!("/indexes/{INDEX}"), None).await;
    assert_eq!(s, 202, "{r}");
    let t = wait_task(&base, r["taskUid"].as_u64().expect("uid")).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    wait_phase(&base, "ended", Duration::from_secs(60)).await;
    let (_, all) = admin(&base, "GET", "/_miroir/reshards", None).await;
    assert_eq!(all["history"][0]["outcome"], "canceled", "{all}");
    shadow_gone(&f.nodes).await;
    let (_, list) = call(&base, "GET", "/indexes", None).await;
    assert_eq!(list["total"], 0, "{list}");
}

/// An edit by function in the middle of the copy, on real Meilisearch (the simulator has no
/// function engine): replayed over a copy that may already hold it, it would apply twice, so
/// the copy starts over and every document is edited exactly once after the flip.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edit_by_function_during_the_copy_applies_once() {
    let _bin = require_meili_bin!();
    let topology = "[topology]\nmax_copy_bytes_per_sec = 300000\n";
    let f = fleet(NodeKind::Real, 4, 10_000, topology).await;
    let base = f.miroir.url();
    let (s, r) = call(
        &base,
        "PATCH",
        "/experimental-features",
        Some(json!({ "editDocumentsByFunction": true })),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = start_reshard(&base, 8).await;
    assert_eq!(s, 202, "{r}");
    let started = Instant::now();
    while reshard_of(&base).await.expect("running")["progress"]["copiedDocuments"]
        .as_u64()
        .unwrap_or(0)
        < 1_000
    {
        assert!(started.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let edit = json!({ "function": "doc.rev = doc.rev + 1", "filter": "n < 500" });
    let path = format!("/indexes/{INDEX}/documents/edit");
    let (s, r) = call(&base, "POST", &path, Some(edit)).await;
    assert_eq!(s, 202, "{r}");
    let t = wait_task(&base, r["taskUid"].as_u64().expect("uid")).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let flipped = wait_phase(&base, "flipped", Duration::from_secs(300)).await;
    assert_eq!(index_shards(&base).await, 8);
    // Copied again from the start after the edit, once.
    assert_eq!(flipped["progress"]["copyRestarts"], 1, "{flipped}");
    for (filter, rev, count) in [("n < 500", 1, 5_000), ("n >= 500", 0, 5_000)] {
        let body = json!({ "filter": format!("{filter} AND rev = {rev}"), "limit": 0 });
        let (s, r) = call(
            &base,
            "POST",
            &format!("/indexes/{INDEX}/documents/fetch"),
            Some(body),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["total"], count, "{filter}: {r}");
    }
}
