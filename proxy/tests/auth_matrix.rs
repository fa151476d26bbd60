//! Keys and tenant tokens through Miroir behave like one Meilisearch node: the same requests,
//! made with the same credentials, get the same status and error code from Miroir over three
//! nodes as from one node holding the same data, and successful answers show the same
//! documents, indexes and tasks (uids aside). Runs on simulated nodes, and on real Meilisearch
//! when `MEILI_BIN` is set.

mod common;

use std::collections::BTreeMap;

use common::{call, client, miroir_bin, wait_idle, KEY};
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{require_meili_bin, start_node, NodeKind, TestNode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Miroir over three nodes, and one reference node; both with master key `KEY`.
struct Pair {
    _nodes: Vec<TestNode>,
    reference: TestNode,
    miroir: MiroirProcess,
}

async fn pair(kind: NodeKind) -> Pair {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(kind, KEY).await);
    }
    let reference = start_node(kind, KEY).await;
    let (port, metrics_port) = (free_port(), free_port());
    let mut toml = format!(
        "shards = 8\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n[server]\nport = {port}\n\n\
         [metrics]\nport = {metrics_port}\n\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    Pair {
        _nodes: nodes,
        reference,
        miroir,
    }
}

/// One request: `(status, JSON body or Null)`.
async fn send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match body {
        // A string stands for raw bytes: a malformed body.
        Some(Value::String(raw)) => {
            req = req
                .header("content-type", "application/json")
                .body(raw.clone());
        }
        Some(b) => req = req.json(b),
        None => {}
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format date")
}

/// The credentials of one target (each target has its own keys: same rights, other strings).
struct Creds {
    by_name: BTreeMap<&'static str, Option<String>>,
    /// Uids of tasks each target created for the fixture: on index A, on index B.
    task_a: u64,
    task_b: u64,
    /// When the `expired` key expires.
    expiring_at: OffsetDateTime,
}

const CREDENTIALS: [&str; 9] = [
    "master",
    "none",
    "wrong",
    "expired",
    "key_a",
    "key_a_pattern",
    "search_only",
    "tenant",
    "tenant_expired",
];

/// The same data, keys and tokens on a target, through its own API.
async fn fixture(base: &str) -> Creds {
    let mut tasks = Vec::new();
    for uid in ["A", "B"] {
        let (s, t) = call(
            base,
            "POST",
            "/indexes",
            Some(json!({"uid": uid, "primaryKey": "id"})),
        )
        .await;
        assert_eq!(s, 202, "{t}");
        tasks.push(t["taskUid"].as_u64().expect("task uid"));
    }
    let (s, t) = call(
        base,
        "PATCH",
        "/indexes/A/settings",
        Some(json!({"filterableAttributes": ["genre"]})),
    )
    .await;
    assert_eq!(s, 202, "{t}");
    let genres = ["action", "drama", "comedy"];
    let docs_a: Vec<Value> = (0..30)
        .map(|i| json!({"id": i, "title": format!("film {i}"), "genre": genres[i % 3]}))
        .collect();
    let docs_b: Vec<Value> = (0..7)
        .map(|i| json!({"id": i, "title": format!("book {i}")}))
        .collect();
    for (index, docs) in [("A", docs_a), ("B", docs_b)] {
        let (s, t) = call(
            base,
            "POST",
            &format!("/indexes/{index}/documents"),
            Some(Value::Array(docs)),
        )
        .await;
        assert_eq!(s, 202, "{t}");
    }
    wait_idle(base).await;

    let mut by_name = BTreeMap::new();
    by_name.insert("master", Some(KEY.to_owned()));
    by_name.insert("none", None);
    by_name.insert("wrong", Some("not-a-key-of-this-cluster".to_owned()));
    let all_a = json!([
        "search",
        "documents.get",
        "documents.add",
        "settings.get",
        "settings.update",
        "indexes.create",
        "indexes.get",
        "tasks.get",
        "tasks.cancel",
        "tasks.delete",
        "stats.get"
    ]);
    let create_key = |name: &'static str, body: Value| {
        let base = base.to_owned();
        async move {
            let (s, k) = call(&base, "POST", "/keys", Some(body)).await;
            assert_eq!(s, 201, "{name}: {k}");
            (
                k["key"].as_str().expect("key").to_owned(),
                k["uid"].as_str().expect("uid").to_owned(),
            )
        }
    };
    // Real Meilisearch wants `expiresAt` in the future: this key expires during the setup.
    let expiring_at = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let (expired, _) = create_key(
        "expired",
        json!({"actions": ["*"], "indexes": ["*"], "expiresAt": rfc3339(expiring_at)}),
    )
    .await;
    by_name.insert("expired", Some(expired));
    let (key_a, key_a_uid) = create_key(
        "key_a",
        json!({"actions": all_a, "indexes": ["A"], "expiresAt": null}),
    )
    .await;
    let (pattern, _) = create_key(
        "key_a_pattern",
        json!({"actions": ["tasks.*", "stats.get", "search"], "indexes": ["A*"], "expiresAt": null}),
    )
    .await;
    by_name.insert("key_a_pattern", Some(pattern));
    let (search_only, _) = create_key(
        "search_only",
        json!({"actions": ["search"], "indexes": ["*"], "expiresAt": null}),
    )
    .await;
    by_name.insert("search_only", Some(search_only));
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let rules = json!({"A": {"filter": "genre = action"}});
    by_name.insert(
        "tenant",
        Some(meili_sim::sign_tenant_token(
            &key_a,
            &key_a_uid,
            rules.clone(),
            Some(now + 3600),
        )),
    );
    by_name.insert(
        "tenant_expired",
        Some(meili_sim::sign_tenant_token(
            &key_a,
            &key_a_uid,
            rules,
            Some(now - 60),
        )),
    );
    by_name.insert("key_a", Some(key_a));
    Creds {
        by_name,
        task_a: tasks[0],
        task_b: tasks[1],
        expiring_at,
    }
}

/// One row of the matrix; `{tA}`/`{tB}` in the path stand for each target's own task uids,
/// `{cred}` for the credential's name.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
}

fn routes_before_writes() -> Vec<Route> {
    let r = |method, path, body| Route { method, path, body };
    vec![
        r(
            "POST",
            "/indexes/A/search",
            Some(json!({"q": "", "limit": 100})),
        ),
        r("GET", "/indexes/A/search?q=film&limit=100", None),
        r(
            "POST",
            "/indexes/B/search",
            Some(json!({"q": "", "limit": 100})),
        ),
        r(
            "POST",
            "/indexes/A/search",
            Some(json!({"q": "", "limit": 100, "filter": "genre = drama"})),
        ),
        r(
            "POST",
            "/indexes/A/facet-search",
            Some(json!({"facetName": "genre", "facetQuery": ""})),
        ),
        r(
            "POST",
            "/multi-search",
            Some(json!({"queries": [{"indexUid": "A", "q": "", "limit": 100}]})),
        ),
        r(
            "POST",
            "/multi-search",
            Some(json!({"queries": [
                {"indexUid": "A", "q": "", "limit": 100},
                {"indexUid": "B", "q": "", "limit": 100}
            ]})),
        ),
        r("GET", "/indexes/A/documents/3", None),
        r("GET", "/indexes/B/documents/3", None),
        r("GET", "/indexes/A/documents?limit=100", None),
        r("GET", "/indexes/A/settings", None),
        r("GET", "/indexes/B/settings", None),
        r("GET", "/stats", None),
        r("GET", "/indexes/A/stats", None),
        r("GET", "/indexes/B/stats", None),
        r("GET", "/keys", None),
        r("GET", "/version", None),
    ]
}

fn write_routes() -> Vec<Route> {
    let r = |method, path, body| Route { method, path, body };
    vec![
        r(
            "POST",
            "/indexes/A/documents",
            Some(json!([{"id": 100, "title": "film 100", "genre": "action"}])),
        ),
        r(
            "POST",
            "/indexes/B/documents",
            Some(json!([{"id": 100, "title": "book 100"}])),
        ),
        r(
            "PATCH",
            "/indexes/A/settings",
            Some(json!({"filterableAttributes": ["genre"]})),
        ),
        r(
            "PATCH",
            "/indexes/B/settings",
            Some(json!({"filterableAttributes": []})),
        ),
        r("POST", "/indexes", Some(json!({"uid": "c_{cred}"}))),
    ]
}

/// Malformed or invalid bodies and queries: a node judges the key before reading them, so a
/// client without the right gets 401/403 and learns nothing about the index or the body.
/// A string body is sent as raw bytes.
fn malformed_routes() -> Vec<Route> {
    let r = |method, path, body: Value| Route {
        method,
        path,
        body: Some(body),
    };
    let raw = |text: &str| Value::String(text.to_owned());
    vec![
        r(
            "POST",
            "/indexes/A/documents",
            raw(r#"[{"id": 1, "title": "#),
        ),
        r("POST", "/indexes/Z/documents", raw(r#"{"not json"#)),
        r(
            "POST",
            "/indexes/A/documents/delete-batch",
            json!({"not": "a list"}),
        ),
        r(
            "PATCH",
            "/indexes/A/settings",
            json!({"filterableAttributes": 5}),
        ),
        r("POST", "/indexes/A/search", json!({"limit": "ten"})),
        r("POST", "/indexes/Z/search", raw(r#"{"q": "#)),
        r("POST", "/indexes/A/facet-search", json!({"facetName": 5})),
        r("POST", "/indexes/A/documents/fetch", json!({"limit": "x"})),
        r("POST", "/multi-search", json!({"queries": 3})),
        r("POST", "/indexes", raw(r#"{"uid": "#)),
        r("POST", "/keys", json!({"actions": 5})),
        r("POST", "/swap-indexes", json!([{"indexes": "A"}])),
        Route {
            method: "GET",
            path: "/tasks?limit=ten",
            body: None,
        },
    ]
}

fn task_routes() -> Vec<Route> {
    let r = |method, path| Route {
        method,
        path,
        body: None,
    };
    vec![
        r("GET", "/tasks"),
        r("GET", "/tasks?indexUids=A,B"),
        r("GET", "/tasks?limit=2"),
        r("GET", "/tasks/{tA}"),
        r("GET", "/tasks/{tB}"),
        r("GET", "/batches"),
        r("GET", "/stats"),
    ]
}

/// Cancel and delete last: they change the task lists.
fn task_writes() -> Vec<Route> {
    let r = |method, path| Route {
        method,
        path,
        body: None,
    };
    vec![
        r("POST", "/tasks/cancel?statuses=enqueued"),
        r("DELETE", "/tasks?types=documentAdditionOrUpdate"),
    ]
}

fn sorted_ids(hits: &Value) -> Vec<String> {
    let mut ids: Vec<String> = hits
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["id"].to_string())
        .collect();
    ids.sort();
    ids
}

fn task_shape(t: &Value) -> String {
    format!("{}/{}/{}", t["indexUid"], t["type"], t["status"])
}

/// What must be equal in two successful answers to `route`.
fn essence(route: &Route, v: &Value) -> Value {
    let path = route.path.split('?').next().unwrap_or_default();
    match (route.method, path) {
        (_, p) if p.ends_with("/search") => json!({
            "ids": sorted_ids(&v["hits"]),
            "total": v["estimatedTotalHits"],
        }),
        (_, "/multi-search") => Value::Array(
            v["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| json!([r["indexUid"], sorted_ids(&r["hits"])]))
                .collect(),
        ),
        (_, p) if p.ends_with("/facet-search") => v["facetHits"].clone(),
        ("GET", p) if p.ends_with("/documents") => json!({
            "ids": sorted_ids(&v["results"]),
            "total": v["total"],
        }),
        ("GET", p) if p.contains("/documents/") => v.clone(),
        ("GET", p) if p.ends_with("/settings") => v["filterableAttributes"].clone(),
        ("GET", "/stats") => Value::Object(
            v["indexes"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, i)| (k.clone(), i["numberOfDocuments"].clone()))
                .collect(),
        ),
        ("GET", p) if p.ends_with("/stats") => v["numberOfDocuments"].clone(),
        ("GET", "/keys") => {
            let mut keys: Vec<String> = v["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| format!("{} {} {}", k["name"], k["actions"], k["indexes"]))
                .collect();
            keys.sort();
            json!(keys)
        }
        ("GET", "/tasks") => {
            let mut shapes: Vec<String> = v["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(task_shape)
                .collect();
            shapes.sort();
            json!({"tasks": shapes, "total": v["total"], "next_is_some": !v["next"].is_null()})
        }
        ("GET", p) if p.starts_with("/tasks/") => json!(task_shape(v)),
        // Meilisearch may batch several tasks together, Miroir never does: the batches must
        // account for the same tasks of the same indexes.
        ("GET", "/batches") => {
            let mut per_index: BTreeMap<String, u64> = BTreeMap::new();
            for b in v["results"].as_array().into_iter().flatten() {
                for (index, n) in b["stats"]["indexUids"].as_object().into_iter().flatten() {
                    *per_index.entry(index.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
            json!(per_index)
        }
        ("GET", "/version") => v["pkgVersion"].clone(),
        // Task summaries of writes.
        _ => json!([v["indexUid"], v["type"], v["status"]]),
    }
}

/// An expired tenant token's message names the current time.
fn timed(error: &Value) -> bool {
    error["message"]
        .as_str()
        .is_some_and(|m| m.contains("we're now"))
}

/// Miroir's answers by `"{method} {path} as {credential}"`.
type Seen = BTreeMap<String, (u16, Value)>;

/// Runs `routes` with every credential on both targets; returns the differences.
async fn compare(
    pair: &Pair,
    creds: &[Creds; 2],
    routes: &[Route],
    names: &[&'static str],
    seen: &mut Seen,
    compared: &mut usize,
) -> Vec<String> {
    let bases = [pair.miroir.url(), pair.reference.url()];
    let mut diffs = Vec::new();
    for route in routes {
        for &name in names {
            let mut answers = Vec::new();
            for (base, c) in bases.iter().zip(creds) {
                let path = route
                    .path
                    .replace("{tA}", &c.task_a.to_string())
                    .replace("{tB}", &c.task_b.to_string());
                let body = route
                    .body
                    .as_ref()
                    .map(|b| serde_json::from_str(&b.to_string().replace("{cred}", name)))
                    .map(|b| b.expect("body"));
                let token = c.by_name[name].as_deref();
                answers.push(send(base, route.method, &path, token, body.as_ref()).await);
            }
            let [(s_m, b_m), (s_r, b_r)] = [answers[0].clone(), answers[1].clone()];
            let what = format!("{} {} as {name}", route.method, route.path);
            // The first request of a label (the routes differ in their bodies).
            seen.entry(what.clone()).or_insert((s_m, b_m.clone()));
            *compared += 1;
            if s_m != s_r {
                diffs.push(format!(
                    "{what}: status {s_m} via Miroir, {s_r} on one node\n  miroir: {b_m}\n  node:   {b_r}"
                ));
            } else if s_m >= 400 {
                if b_m["code"] != b_r["code"] {
                    diffs.push(format!(
                        "{what}: error differs\n  miroir: {b_m}\n  node:   {b_r}"
                    ));
                } else if b_m["message"] != b_r["message"] && !timed(&b_m) {
                    // Messages are reported, not asserted: the status and code are the API.
                    eprintln!("message differs, {what}\n  miroir: {b_m}\n  node:   {b_r}");
                }
            } else if essence(route, &b_m) != essence(route, &b_r) {
                diffs.push(format!(
                    "{what}: answers differ\n  miroir: {}\n  node:   {}",
                    essence(route, &b_m),
                    essence(route, &b_r)
                ));
            }
        }
    }
    diffs
}

async fn run_matrix(kind: NodeKind) {
    let pair = pair(kind).await;
    let bases = [pair.miroir.url(), pair.reference.url()];
    let creds = [fixture(&bases[0]).await, fixture(&bases[1]).await];
    let expired = creds[0].expiring_at.max(creds[1].expiring_at);
    let wait = expired - OffsetDateTime::now_utc() + time::Duration::milliseconds(500);
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }

    let (mut seen, mut compared) = (Seen::new(), 0);
    let mut diffs = Vec::new();
    let all = &CREDENTIALS[..];
    diffs.extend(
        compare(
            &pair,
            &creds,
            &routes_before_writes(),
            all,
            &mut seen,
            &mut compared,
        )
        .await,
    );
    // Malformed requests with every credential that may not make them: the refusal must come
    // first. (With a valid key, what Miroir says of an invalid body is the write and read
    // paths' fidelity, tested with them.)
    let refused = ["none", "wrong", "expired", "tenant_expired"];
    diffs.extend(
        compare(
            &pair,
            &creds,
            &malformed_routes(),
            &refused,
            &mut seen,
            &mut compared,
        )
        .await,
    );
    diffs.extend(
        compare(
            &pair,
            &creds,
            &write_routes(),
            all,
            &mut seen,
            &mut compared,
        )
        .await,
    );
    for base in &bases {
        wait_idle(base).await;
    }
    diffs.extend(compare(&pair, &creds, &task_routes(), all, &mut seen, &mut compared).await);
    // Cancelations and deletions by every credential but the master key, which would leave
    // nothing for the others to touch; then the tasks they left, then the master key's.
    let (others, master) = (&CREDENTIALS[1..], &CREDENTIALS[..1]);
    diffs.extend(
        compare(
            &pair,
            &creds,
            &task_writes(),
            others,
            &mut seen,
            &mut compared,
        )
        .await,
    );
    for base in &bases {
        wait_idle(base).await;
    }
    let listing = |path| {
        [Route {
            method: "GET",
            path,
            body: None,
        }]
    };
    let left = listing("/tasks?limit=999");
    diffs.extend(compare(&pair, &creds, &left, all, &mut seen, &mut compared).await);
    diffs.extend(
        compare(
            &pair,
            &creds,
            &task_writes(),
            master,
            &mut seen,
            &mut compared,
        )
        .await,
    );
    for base in &bases {
        wait_idle(base).await;
    }
    let left = listing("/tasks?limit=1000");
    diffs.extend(compare(&pair, &creds, &left, all, &mut seen, &mut compared).await);

    eprintln!(
        "auth matrix ({kind:?}): {compared} requests compared, {} differences",
        diffs.len()
    );
    expectations(&seen);
    assert!(
        diffs.is_empty(),
        "Miroir differs from one node:\n{}",
        diffs.join("\n")
    );
}

/// A few answers checked for what they must be, not only for agreeing with one node.
fn expectations(seen: &Seen) {
    let get = |what: &str| seen.get(what).unwrap_or_else(|| panic!("{what} not run"));
    let code = |what: &str| {
        let (s, b) = get(what);
        (*s, b["code"].as_str().unwrap_or("").to_owned())
    };
    let refused = |s: u16, c: &str| (s, c.to_owned());
    assert_eq!(
        code("POST /indexes/A/search as none"),
        refused(401, "missing_authorization_header")
    );
    for who in ["wrong", "expired", "tenant_expired"] {
        assert_eq!(
            code(&format!("POST /indexes/A/search as {who}")),
            refused(403, "invalid_api_key"),
            "{who}"
        );
    }
    assert_eq!(
        code("POST /indexes/B/search as key_a"),
        refused(403, "invalid_api_key")
    );
    assert_eq!(
        code("POST /indexes/B/search as tenant"),
        refused(403, "invalid_api_key")
    );
    // The tenant token's filter applies, with the shard filter Miroir adds.
    let (s, found) = get("POST /indexes/A/search as tenant");
    assert_eq!(*s, 200, "{found}");
    let hits = found["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 10, "{found}");
    assert!(hits.iter().all(|h| h["genre"] == "action"), "{found}");
    // A key restricted to A sees only A's tasks; the total counts every task, as on a node.
    for who in ["key_a", "key_a_pattern"] {
        let (s, page) = get(&format!("GET /tasks as {who}"));
        assert_eq!(*s, 200, "{page}");
        let tasks = page["results"].as_array().expect("results");
        assert!(!tasks.is_empty(), "{page}");
        assert!(tasks.iter().all(|t| t["indexUid"] == "A"), "{page}");
        assert!(page["total"].as_u64() > Some(tasks.len() as u64), "{page}");
    }
    assert_eq!(
        code("GET /tasks/{tB} as key_a"),
        refused(404, "task_not_found")
    );
    assert_eq!(get("GET /tasks/{tA} as key_a").0, 200);
    assert_eq!(
        code("GET /tasks as search_only"),
        refused(403, "invalid_api_key")
    );
    // The restricted keys' deletion removed the document tasks of A only.
    let (_, left) = get("GET /tasks?limit=999 as master");
    let documents_of = |index: &str| {
        left["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["indexUid"] == index && t["type"] == "documentAdditionOrUpdate")
            .count()
    };
    assert_eq!(
        (documents_of("A"), documents_of("B") > 0),
        (0, true),
        "{left}"
    );
    // Malformed requests with a bad credential: the credential is judged first.
    for route in malformed_routes() {
        let what = |who: &str| format!("{} {} as {who}", route.method, route.path);
        assert_eq!(
            code(&what("none")),
            refused(401, "missing_authorization_header"),
            "{}",
            what("none")
        );
        for who in ["wrong", "expired"] {
            assert_eq!(
                code(&what(who)),
                refused(403, "invalid_api_key"),
                "{}",
                what(who)
            );
        }
    }
    let (s, stats) = get("GET /stats as key_a");
    assert_eq!(*s, 200, "{stats}");
    let indexes: Vec<&String> = stats["indexes"]
        .as_object()
        .expect("indexes")
        .keys()
        .collect();
    assert_eq!(indexes, ["A"], "{stats}");
    assert_eq!(
        code("GET /indexes/B/stats as key_a"),
        refused(403, "invalid_api_key")
    );
}

#[tokio::test]
async fn credentials_get_the_same_answers_as_on_one_simulated_node() {
    run_matrix(NodeKind::Sim).await;
}

#[tokio::test]
async fn credentials_get_the_same_answers_as_on_one_real_node() {
    let _ = require_meili_bin!();
    run_matrix(NodeKind::Real).await;
}

/// Routes Miroir answers itself or refuses (compactions, fields, task documents, metrics,
/// logs, export, network, chats, dynamic search rules): without a key, with a key that is not
/// one and with a key lacking the route's action, they are refused exactly as one real
/// Meilisearch 1.50 node refuses them; with a key holding the action they get past the check.
#[tokio::test]
async fn routes_miroir_answers_or_refuses_judge_the_key_first_as_a_real_node() {
    let _ = require_meili_bin!();
    let pair = pair(NodeKind::Real).await;
    let (miroir, node) = (pair.miroir.url(), pair.reference.url());
    for base in [&miroir, &node] {
        let (s, t) = call(
            base,
            "POST",
            "/indexes",
            Some(json!({"uid": "A", "primaryKey": "id"})),
        )
        .await;
        assert_eq!(s, 202, "{t}");
    }
    let routes: [(&str, &str, Option<Value>, &str); 16] = [
        ("POST", "/indexes/A/fields", Some(json!({})), "fields.post"),
        ("POST", "/indexes/A/compact", None, "indexes.compact"),
        ("POST", "/tasks/compact", None, "tasks.compact"),
        ("GET", "/tasks/0/documents", None, "tasks.get"),
        ("GET", "/metrics", None, "metrics.get"),
        ("POST", "/logs/stream", Some(json!({})), "metrics.get"),
        (
            "POST",
            "/export",
            Some(json!({"url": "http://127.0.0.1:1"})),
            "export",
        ),
        ("GET", "/network", None, "network.get"),
        ("PATCH", "/network", Some(json!({})), "network.update"),
        ("GET", "/chats", None, "chats.get"),
        ("DELETE", "/chats/w", None, "chats.delete"),
        ("GET", "/chats/w/settings", None, "chatsSettings.get"),
        (
            "PATCH",
            "/chats/w/settings",
            Some(json!({})),
            "chatsSettings.update",
        ),
        (
            "POST",
            "/chats/w/chat/completions",
            Some(json!({})),
            "chatCompletions",
        ),
        (
            "PATCH",
            "/dynamic-search-rules/r",
            Some(json!({})),
            "dynamicSearchRules.update",
        ),
        (
            "DELETE",
            "/dynamic-search-rules",
            None,
            "dynamicSearchRules.delete",
        ),
    ];
    // A key through Miroir (on every node) and on the reference, with one uid: the same key
    // string on both.
    let key = |n: usize, action: &str| {
        let body = json!({
            "uid": format!("00000000-0000-4000-8000-{n:012x}"),
            "actions": [action],
            "indexes": ["*"],
            "expiresAt": null,
        });
        let (miroir, node) = (miroir.clone(), node.clone());
        async move {
            let (s, a) = call(&miroir, "POST", "/keys", Some(body.clone())).await;
            assert_eq!(s, 201, "{a}");
            let (s, b) = call(&node, "POST", "/keys", Some(body)).await;
            assert_eq!(s, 201, "{b}");
            assert_eq!(a["key"], b["key"]);
            a["key"].as_str().expect("key").to_owned()
        }
    };
    let search_only = key(0, "search").await;
    for (method, path, body, _) in &routes {
        for token in [None, Some("not-a-key"), Some(search_only.as_str())] {
            let (sm, am) = send(&miroir, method, path, token, body.as_ref()).await;
            let (sn, an) = send(&node, method, path, token, body.as_ref()).await;
            assert!(
                matches!(sn, 401 | 403),
                "{method} {path} {token:?}: the node {sn} {an}"
            );
            assert_eq!(
                (sm, &am["code"]),
                (sn, &an["code"]),
                "{method} {path} with {token:?}: Miroir {am}, the node {an}"
            );
        }
    }
    for (i, (method, path, body, action)) in routes.iter().enumerate() {
        let allowed = key(i + 1, action).await;
        let (sm, am) = send(&miroir, method, path, Some(&allowed), body.as_ref()).await;
        assert!(
            !matches!(sm, 401 | 403),
            "{method} {path} with a `{action}` key: {sm} {am}"
        );
    }
}

#[tokio::test]
async fn version_is_the_nodes_version() {
    let pair = pair(NodeKind::Sim).await;
    let (s_m, via_miroir) = call(&pair.miroir.url(), "GET", "/version", None).await;
    let (s_n, node) = call(&pair._nodes[0].url(), "GET", "/version", None).await;
    assert_eq!((s_m, s_n), (200, 200), "{via_miroir} / {node}");
    assert_eq!(via_miroir, node);
}
