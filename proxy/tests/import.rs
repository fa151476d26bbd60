//! `miroir ctl import`: one Meilisearch node's indexes, settings, documents and keys copied
//! into a fleet behind Miroir, as a new user coming from one node does first. Over simulated
//! nodes and, when a Meilisearch binary is available, real ones.

mod common;

use std::process::Command;

use common::{kinds, miroir_bin, KEY};
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{start_node, Client, NodeKind, TestNode};
use serde_json::{json, Value};

const DOCS: u64 = 2_500;

/// The node a user comes from: two indexes with settings, documents, and a key of their own.
async fn source(kind: NodeKind) -> (TestNode, String) {
    let node = start_node(kind, KEY).await;
    let c = node.client();
    let movies: Vec<Value> = (0..DOCS)
        .map(|i| {
            let genre = ["drama", "comedy", "horror"][(i % 3) as usize];
            json!({"id": i, "title": format!("movie number {i}"), "genre": genre, "year": 1950 + i % 70})
        })
        .collect();
    let (s, t) = c
        .patch(
            "/indexes/movies/settings",
            json!({"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]}),
        )
        .await;
    assert_eq!(s, 202, "{t}");
    c.wait_task(t["taskUid"].as_u64().unwrap()).await;
    let (s, t) = c.post("/indexes/movies/documents", json!(movies)).await;
    assert_eq!(s, 202, "{t}");
    c.wait_task(t["taskUid"].as_u64().unwrap()).await;
    let books: Vec<Value> = (0..40)
        .map(|i| json!({"isbn": format!("b-{i}"), "title": format!("book {i}")}))
        .collect();
    let (s, t) = c
        .post("/indexes/books/documents?primaryKey=isbn", json!(books))
        .await;
    assert_eq!(s, 202, "{t}");
    assert_eq!(
        c.wait_task(t["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let (s, key) = c
        .post("/keys", json!({"uid": "0b3a1f58-7d6c-4f4e-9b1e-2f1c8a7d9e10", "name": "front-end", "actions": ["search"], "indexes": ["movies"], "expiresAt": null}))
        .await;
    assert_eq!(s, 201, "{key}");
    (node, key["key"].as_str().unwrap().to_owned())
}

async fn fleet(kind: NodeKind) -> (Vec<TestNode>, MiroirProcess) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(kind, KEY).await);
    }
    let port = free_port();
    let mut toml = format!(
        "shards = 8\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n[server]\nport = {port}\n\n[metrics]\nenabled = false\n\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            n.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    (nodes, miroir)
}

/// Runs `miroir ctl import` as an operator would, off the test's runtime (which serves the
/// simulated nodes meanwhile).
async fn import(miroir: &MiroirProcess, from: &str, state: &std::path::Path) -> (bool, String) {
    import_with(miroir, &["--from", from, "--key", KEY], state).await
}

async fn import_with(
    miroir: &MiroirProcess,
    source: &[&str],
    state: &std::path::Path,
) -> (bool, String) {
    let mut cmd = Command::new(miroir_bin());
    cmd.args(["ctl", "--url", &miroir.url(), "--master-key", KEY, "import"])
        .args(source)
        .arg("--state")
        .arg(state);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run miroir ctl import");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// An import of `movies` that stopped after its first 1 000 documents: they are in the fleet
/// and the state file says so.
async fn interrupted_after(m: &Client, first: Value, state: &std::path::Path) {
    let (status, t) = m
        .post("/indexes/movies/documents?primaryKey=id", first)
        .await;
    assert_eq!(status, 202, "{t}");
    assert_eq!(
        m.wait_task(t["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    std::fs::write(
        state,
        json!({"indexes": {"movies": {"copied": 1000, "settingsDone": false, "done": false}}, "keysDone": false}).to_string(),
    )
    .unwrap();
}

fn ids(answer: &Value) -> Vec<String> {
    answer["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["id"].to_string())
        .collect()
}

#[tokio::test]
async fn import_copies_one_nodes_indexes_documents_and_keys_and_resumes() {
    for kind in kinds() {
        let (src, front_key) = source(kind).await;
        let (_nodes, miroir) = fleet(kind).await;
        let dir = miroir.dir().to_path_buf();
        let state = dir.join("import-state.json");

        // An import interrupted after the first 1 000 documents of `movies`: they are in the
        // fleet and the state file says so; the next run sends only the rest.
        let m = Client::new(&miroir.url(), Some(KEY));
        let s = src.client();
        let (_, first) = s
            .post("/indexes/movies/documents/fetch", json!({"limit": 1000}))
            .await;
        interrupted_after(&m, first["results"].clone(), &state).await;
        let (ok, out) = import(&miroir, &src.url(), &state).await;
        assert!(ok, "{kind:?}: {out}");
        assert!(out.contains("import complete"), "{out}");

        // Same documents, same answers, same settings.
        for index in ["movies", "books"] {
            let (_, a) = s
                .post(
                    &format!("/indexes/{index}/documents/fetch"),
                    json!({"limit": 0}),
                )
                .await;
            let (_, b) = m
                .post(
                    &format!("/indexes/{index}/documents/fetch"),
                    json!({"limit": 0}),
                )
                .await;
            assert_eq!(a["total"], b["total"], "{kind:?} {index}");
        }
        // 1 batch before the interruption, 2 after it (1 500 documents): nothing sent twice.
        let (_, tasks) = m
            .get("/tasks?types=documentAdditionOrUpdate&indexUids=movies")
            .await;
        assert_eq!(tasks["total"], 3, "{kind:?}: {tasks}");
        let (_, settings) = m.get("/indexes/movies/settings").await;
        let (_, original) = s.get("/indexes/movies/settings").await;
        assert_eq!(
            settings["filterableAttributes"],
            original["filterableAttributes"]
        );
        assert_eq!(
            settings["sortableAttributes"],
            original["sortableAttributes"]
        );
        for query in [
            json!({"q": "movie 12"}),
            json!({"filter": "genre = comedy AND year > 2000", "sort": ["year:desc"], "limit": 30}),
        ] {
            let (_, a) = s.post("/indexes/movies/search", query.clone()).await;
            let (_, b) = m.post("/indexes/movies/search", query.clone()).await;
            assert_eq!(
                a["estimatedTotalHits"], b["estimatedTotalHits"],
                "{kind:?} {query}"
            );
        }
        // The front-end key works through Miroir, with the same key string.
        let front = Client::new(&miroir.url(), Some(&front_key));
        let (status, answer) = front
            .post("/indexes/movies/search", json!({"q": "movie", "limit": 3}))
            .await;
        assert_eq!(status, 200, "{kind:?}: {answer}");
        assert_eq!(ids(&answer).len(), 3);

        // A second run finds everything done and verifies again.
        let (ok, out) = import(&miroir, &src.url(), &state).await;
        assert!(ok, "{kind:?}: {out}");
        assert!(out.contains("movies: already imported"), "{out}");
    }
}

/// A dump written by a real Meilisearch 1.50 node (`POST /dumps`) imported into a fleet of
/// three: resumed after its first 1 000 documents, then every index with its primary key,
/// settings and documents, and the node's own key with its key string; each fleet node holds
/// only its share.
#[tokio::test]
async fn import_reads_a_dump_a_real_node_wrote_and_resumes() {
    if !kinds().contains(&NodeKind::Real) {
        eprintln!("SKIP import_reads_a_dump_a_real_node_wrote_and_resumes: no Meilisearch binary (set MEILI_BIN)");
        return;
    }
    let (src, front_key) = source(NodeKind::Real).await;
    let s = src.client();
    let (status, t) = s.post("/dumps", json!({})).await;
    assert_eq!(status, 202, "{t}");
    assert_eq!(
        s.wait_task(t["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let dumps = src.dumps_dir().await.expect("a real node's dump directory");
    let file = std::fs::read_dir(&dumps)
        .expect("dump directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "dump"))
        .expect("a .dump file");

    let (nodes, miroir) = fleet(NodeKind::Real).await;
    let m = Client::new(&miroir.url(), Some(KEY));
    let state = miroir.dir().join("dump-import-state.json");
    // Interrupted after the dump's first 1 000 `movies` documents, in the dump's own order.
    let unpacked = miroir.dir().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = Command::new("tar")
        .arg("xzf")
        .arg(&file)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar");
    assert!(tar.success());
    let lines = std::fs::read_to_string(unpacked.join("indexes/movies/documents.jsonl")).unwrap();
    let first: Vec<Value> = lines
        .lines()
        .take(1000)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    interrupted_after(&m, json!(first), &state).await;
    let path = file.to_string_lossy().into_owned();
    let (ok, out) = import_with(&miroir, &["--dump", &path], &state).await;
    assert!(ok, "{out}");
    assert!(out.contains("import complete"), "{out}");
    assert!(
        out.contains("keys: 1 copied"),
        "only the node's own key: {out}"
    );

    // 1 batch before the interruption, 1 after it (the other 1 500 documents; a dump is read
    // in batches of 10 000): nothing sent twice.
    let (_, tasks) = m
        .get("/tasks?types=documentAdditionOrUpdate&indexUids=movies")
        .await;
    assert_eq!(tasks["total"], 2, "{tasks}");
    for index in ["movies", "books"] {
        let path = format!("/indexes/{index}/documents/fetch");
        let (_, a) = s.post(&path, json!({"limit": 0})).await;
        let (_, b) = m.post(&path, json!({"limit": 0})).await;
        assert_eq!(a["total"], b["total"], "{index}");
        let (_, a) = s.get(&format!("/indexes/{index}")).await;
        let (_, b) = m.get(&format!("/indexes/{index}")).await;
        assert_eq!(a["primaryKey"], b["primaryKey"], "{index}");
    }
    let (_, settings) = m.get("/indexes/movies/settings").await;
    let (_, original) = s.get("/indexes/movies/settings").await;
    assert_eq!(settings, original, "every setting, as the node had it");
    for query in [
        json!({"q": "movie 12"}),
        json!({"filter": "genre = comedy AND year > 2000", "sort": ["year:desc"], "limit": 30}),
    ] {
        let (_, a) = s.post("/indexes/movies/search", query.clone()).await;
        let (_, b) = m.post("/indexes/movies/search", query.clone()).await;
        // Totals only: the order of equal scores follows each node's internal ids, and the
        // last word's exactness each node's own dictionary (see the README's search limits).
        assert_eq!(a["estimatedTotalHits"], b["estimatedTotalHits"], "{query}");
    }
    // The node's key works through Miroir with the same key string.
    let front = Client::new(&miroir.url(), Some(&front_key));
    let (status, answer) = front
        .post("/indexes/movies/search", json!({"q": "movie", "limit": 3}))
        .await;
    assert_eq!(status, 200, "{answer}");
    // Each node holds its share (RF 1: the shares add up to the whole).
    let mut held = 0;
    for node in &nodes {
        let (_, page) = node
            .client()
            .post("/indexes/movies/documents/fetch", json!({"limit": 0}))
            .await;
        let n = page["total"].as_u64().unwrap_or(0);
        assert!(n > 0 && n < DOCS, "a node holds {n} of {DOCS}");
        held += n;
    }
    assert_eq!(held, DOCS);

    // A second run finds everything done.
    let (ok, out) = import_with(&miroir, &["--dump", &path], &state).await;
    assert!(ok, "{out}");
    assert!(out.contains("movies: already imported"), "{out}");
}
