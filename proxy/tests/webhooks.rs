//! Webhooks through Miroir: `/webhooks` answers as one Meilisearch 1.50 node (bodies, limits,
//! redaction, errors, key rights), and a registered webhook is called once per Miroir task
//! with the task as `GET /tasks/{uid}` shows it, not once per node; internal addresses are
//! refused unless allowed, as Meilisearch refuses them.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use miroir_testkit::proxy::{free_port, MiroirProcess};
use miroir_testkit::NodeKind;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request a receiver got: lower-cased headers and the gunzipped body.
#[derive(Debug, Clone)]
struct Call {
    headers: BTreeMap<String, String>,
    body: String,
}

impl Call {
    fn tasks(&self) -> Vec<Value> {
        self.body
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON task per line"))
            .collect()
    }
}

/// A webhook receiver on 127.0.0.1: answers 200 to every POST and keeps what it got.
struct Receiver {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let kept = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut conn = BufReader::new(stream);
                    while let Some(call) = read_request(&mut conn).await {
                        kept.lock().unwrap().push(call);
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if conn.get_mut().write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { url, calls }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Every task delivered so far, in delivery order.
    fn tasks(&self) -> Vec<Value> {
        self.calls().iter().flat_map(Call::tasks).collect()
    }
}

/// One HTTP/1.1 request (`Content-Length` or chunked body), or `None` at the end.
async fn read_request(conn: &mut BufReader<tokio::net::TcpStream>) -> Option<Call> {
    let mut line = String::new();
    if conn.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        conn.read_line(&mut line).await.ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let mut raw = Vec::new();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        loop {
            line.clear();
            conn.read_line(&mut line).await.ok()?;
            let size = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).await.ok()?;
            if size == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..size]);
        }
    } else {
        let len: usize = headers.get("content-length")?.parse().ok()?;
        raw.resize(len, 0);
        conn.read_exact(&mut raw).await.ok()?;
    }
    let mut body = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut body)
        .expect("a gzip body");
    Some(Call { headers, body })
}

/// `method path` with a JSON body (or none), with `key`: status and body.
async fn send(base: &str, key: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `value` with every uuid-shaped substring replaced, so two servers' answers compare.
fn without_uuids(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(mask_uuids(s)),
        Value::Array(a) => Value::Array(a.iter().map(without_uuids).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (mask_uuids(k), without_uuids(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn mask_uuids(s: &str) -> String {
    let shape = |w: &[u8]| {
        w.len() == 36
            && w.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && shape(&bytes[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let c = s[i..].chars().next().expect("char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[tokio::test]
async fn the_webhook_routes_answer_as_one_real_node() {
    if miroir_testkit::meili_bin().is_none() {
        eprintln!("skipped: no Meilisearch binary (MEILI_BIN)");
        return;
    }
    let c = compared(NodeKind::Real, &[], &json!({}), &[]).await;
    let sides = [c.miroir.url(), c.reference.url()];
    // Each request is sent to both; `{id}` is the uuid of the side's first webhook.
    let mut first: [String; 2] = Default::default();
    let steps: &[(&str, &str, Option<&str>)] = &[
        ("GET", "/webhooks", None),
        (
            "POST",
            "/webhooks",
            Some(
                r#"{"url":"https://example.com/a","headers":{"authorization":"Bearer secret-token-1234567890","x-a":"1"}}"#,
            ),
        ),
        ("POST", "/webhooks", Some("{}")),
        ("POST", "/webhooks", Some(r#"{"url":null}"#)),
        ("POST", "/webhooks", Some(r#"{"url":""}"#)),
        ("POST", "/webhooks", Some(r#"{"url":"not a url"}"#)),
        ("POST", "/webhooks", Some(r#"{"url":"http://"}"#)),
        ("POST", "/webhooks", Some(r#"{"url":1}"#)),
        ("POST", "/webhooks", Some(r#"{"url":-1.5}"#)),
        ("POST", "/webhooks", Some(r#"{"foo":1,"url":2}"#)),
        ("POST", "/webhooks", Some(r#"{"url":2,"foo":1}"#)),
        (
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://a.com","uuid":"x"}"#),
        ),
        (
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://a.com","isEditable":false}"#),
        ),
        (
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://a.com","headers":[]}"#),
        ),
        (
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://a.com","headers":{"a":true}}"#),
        ),
        (
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://a.com","headers":{"bad name":"v"}}"#),
        ),
        (
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://a.com","headers":{"x":"bad\nvalue"}}"#),
        ),
        ("POST", "/webhooks", Some("[1]")),
        ("POST", "/webhooks", Some("null")),
        ("POST", "/webhooks", Some("nope")),
        ("POST", "/webhooks", Some("")),
        ("GET", "/webhooks/{id}", None),
        ("GET", "/webhooks/zzz", None),
        ("GET", "/webhooks/1234", None),
        (
            "GET",
            "/webhooks/00000000-0000-0000-0000-000000000000",
            None,
        ),
        (
            "GET",
            "/webhooks/8c6e5ab8-52b5-4c7c-9c0e-8e0b1d0c2f11",
            None,
        ),
        (
            "PATCH",
            "/webhooks/{id}",
            Some(r#"{"headers":{"x-a":null,"x-b":"2"}}"#),
        ),
        ("PATCH", "/webhooks/{id}", Some(r#"{"url":null}"#)),
        ("PATCH", "/webhooks/{id}", Some(r#"{"url":"zz"}"#)),
        ("PATCH", "/webhooks/{id}", Some(r#"{"uuid":"x"}"#)),
        (
            "PATCH",
            "/webhooks/{id}",
            Some(r#"{"url":"https://example.com/b"}"#),
        ),
        (
            "PATCH",
            "/webhooks/00000000-0000-0000-0000-000000000000",
            Some("{}"),
        ),
        (
            "DELETE",
            "/webhooks/00000000-0000-0000-0000-000000000000",
            None,
        ),
        ("GET", "/webhooks", None),
        ("PATCH", "/webhooks/{id}", Some(r#"{"headers":null}"#)),
        ("GET", "/webhooks", None),
        ("DELETE", "/webhooks/{id}", None),
        ("DELETE", "/webhooks/{id}", None),
        ("GET", "/webhooks/{id}", None),
        ("GET", "/webhooks", None),
    ];
    let mut differences = Vec::new();
    for (method, path, body) in steps {
        let mut answers = Vec::new();
        for (side, base) in sides.iter().enumerate() {
            let path = path.replace("{id}", &first[side]);
            let (status, answer) = send(base, KEY, method, &path, *body).await;
            if status == 201 && first[side].is_empty() {
                first[side] = answer["uuid"].as_str().expect("uuid").to_owned();
            }
            answers.push((status, without_uuids(&answer)));
        }
        if answers[0] != answers[1] {
            differences.push(format!(
                "{method} {path} {body:?}\n  miroir: {:?}\n  node:   {:?}",
                answers[0], answers[1]
            ));
        }
    }
    // The limit of 20 webhooks.
    for (side, base) in sides.iter().enumerate() {
        for i in 0..20 {
            let body = format!(r#"{{"url":"https://example.com/{i}"}}"#);
            let (status, _) = send(base, KEY, "POST", "/webhooks", Some(&body)).await;
            assert_eq!(status, 201, "side {side}, webhook {i}");
        }
    }
    let over: Vec<_> = {
        let mut v = Vec::new();
        for base in &sides {
            v.push(
                send(
                    base,
                    KEY,
                    "POST",
                    "/webhooks",
                    Some(r#"{"url":"https://x.com"}"#),
                )
                .await,
            );
        }
        v
    };
    assert_eq!(over[0], over[1]);
    assert_eq!(over[0].1["code"], "invalid_webhooks", "{:?}", over[0]);

    // Key rights: `webhooks.get` reads and cannot create.
    for base in &sides {
        let (s, key) = send(
            base,
            KEY,
            "POST",
            "/keys",
            Some(r#"{"actions":["webhooks.get"],"indexes":["*"],"expiresAt":null}"#),
        )
        .await;
        assert_eq!(s, 201, "{key}");
        let key = key["key"].as_str().expect("key");
        let (s, _) = send(base, key, "GET", "/webhooks", None).await;
        assert_eq!(s, 200, "{base}");
        let (s, refused) = send(
            base,
            key,
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://x.com"}"#),
        )
        .await;
        assert_eq!(
            (s, refused["code"].as_str()),
            (403, Some("invalid_api_key")),
            "{base}"
        );
        let (s, refused) = send(base, "wrong", "GET", "/webhooks", None).await;
        assert_eq!(
            (s, refused["code"].as_str()),
            (403, Some("invalid_api_key")),
            "{base}"
        );
    }
    assert!(
        differences.is_empty(),
        "{} of {} requests differ:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n")
    );
}

/// A webhook registered through `base` calling `receiver` with an extra header.
async fn register(base: &str, receiver: &Receiver) -> String {
    let body = json!({"url": receiver.url, "headers": {"x-secret": "s3"}}).to_string();
    let (status, hook) = send(base, KEY, "POST", "/webhooks", Some(&body)).await;
    assert_eq!(status, 201, "{hook}");
    hook["uuid"].as_str().expect("uuid").to_owned()
}

/// Sends three writes (documents, documents without their primary key, settings) and waits
/// for each task; returns their uids.
async fn three_writes(base: &str) -> Vec<u64> {
    let mut uids = Vec::new();
    for (method, path, body) in [
        (
            "POST",
            "/indexes/books/documents",
            json!([{"id": 1, "title": "a"}, {"id": 2, "title": "b"}, {"id": 3, "title": "c"}]),
        ),
        (
            "POST",
            "/indexes/books/documents",
            json!([{"title": "no id"}]),
        ),
        (
            "PATCH",
            "/indexes/books/settings",
            json!({"filterableAttributes": ["title"]}),
        ),
    ] {
        let (status, summary) = call(base, method, path, Some(body)).await;
        assert_eq!(status, 202, "{summary}");
        let uid = summary["taskUid"].as_u64().expect("taskUid");
        miroir_testkit::wait_task(base, KEY, uid).await;
        uids.push(uid);
    }
    uids
}

/// What two servers' task views share: everything but times and node names in errors.
fn comparable(task: &Value) -> Value {
    let mut t = task.clone();
    for field in ["enqueuedAt", "startedAt", "finishedAt", "duration"] {
        t[field] = json!(t[field].is_string());
    }
    if let Some(message) = t["error"]["message"].as_str() {
        let cut = message.find(" (node `").unwrap_or(message.len());
        t["error"]["message"] = json!(message[..cut].to_owned());
    }
    t
}

#[tokio::test]
async fn each_miroir_task_calls_the_webhook_once_with_its_view() {
    for kind in kinds() {
        // Three nodes with RF 2 behind Miroir, allowed to call this machine; one more node
        // alone to compare with.
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(miroir_testkit::start_node(kind, KEY).await);
        }
        let single = nodes.pop().expect("4 nodes");
        let port = free_port();
        let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
        let toml = config_for(
            port,
            free_port(),
            &urls,
            "[webhooks]\nallowed_ip_networks = [\"127.0.0.0/8\"]\n",
        )
        .replacen("shards = 8\n", "shards = 8\nreplication_factor = 2\n", 1);
        let mut proxy = MiroirProcess::start(miroir_bin(), &toml, port).await;
        let base = proxy.url();

        let receiver = Receiver::start().await;
        let uuid = register(&base, &receiver).await;
        let reference = Receiver::start().await;
        if kind == NodeKind::Real {
            register(&single.url(), &reference).await;
        }
        let uids = three_writes(&base).await;
        let delivered = eventually(Duration::from_secs(10), || async {
            receiver.tasks().len() >= uids.len()
        })
        .await;
        assert!(delivered, "{kind:?}: {:?}", receiver.calls());
        // Nothing more comes: one call per task, not one per node.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let tasks = receiver.tasks();
        let got: Vec<u64> = tasks
            .iter()
            .map(|t| t["uid"].as_u64().expect("uid"))
            .collect();
        assert_eq!(got, uids, "{kind:?}: {tasks:?}");
        for task in &tasks {
            let uid = task["uid"].as_u64().expect("uid");
            let (_, shown) = call(&base, "GET", &format!("/tasks/{uid}"), None).await;
            assert_eq!(task, &shown, "{kind:?}: the webhook's view is the client's");
        }
        assert_eq!(tasks[0]["status"], "succeeded");
        assert_eq!(tasks[0]["details"]["indexedDocuments"], 3, "{:?}", tasks[0]);
        assert_eq!(tasks[1]["status"], "failed");
        assert_eq!(tasks[2]["type"], "settingsUpdate");
        for call in receiver.calls() {
            assert!(!call.body.contains("_miroir"), "{}", call.body);
            assert_eq!(call.headers["content-type"], "application/x-ndjson");
            assert_eq!(call.headers["content-encoding"], "gzip");
            assert_eq!(call.headers["x-secret"], "s3");
        }

        if kind == NodeKind::Real {
            // The same writes on one node call its webhook with the same tasks.
            let node_uids = three_writes(&single.url()).await;
            assert_eq!(node_uids, uids);
            let heard = eventually(Duration::from_secs(10), || async {
                reference.tasks().len() >= 3
            })
            .await;
            assert!(heard, "{:?}", reference.calls());
            let node: Vec<Value> = reference.tasks().iter().map(comparable).collect();
            let ours: Vec<Value> = tasks.iter().map(comparable).collect();
            assert_eq!(ours, node, "Miroir's webhook calls differ from one node's");
        }

        // Kept across a restart; not called once deleted.
        proxy.crash_and_restart(miroir_bin()).await;
        let (status, hook) = call(&base, "GET", &format!("/webhooks/{uuid}"), None).await;
        assert_eq!(status, 200, "{hook}");
        let (status, summary) = call(&base, "DELETE", "/indexes/books/documents/1", None).await;
        assert_eq!(status, 202, "{summary}");
        let uid = summary["taskUid"].as_u64().expect("uid");
        wait_task(&base, uid).await;
        let after_restart = eventually(Duration::from_secs(10), || async {
            receiver.tasks().iter().any(|t| t["uid"] == uid)
        })
        .await;
        assert!(after_restart, "{kind:?}: no call after a restart");
        let (status, _) = call(&base, "DELETE", &format!("/webhooks/{uuid}"), None).await;
        assert_eq!(status, 204);
        let before = receiver.tasks().len();
        let (_, summary) = call(&base, "DELETE", "/indexes/books/documents/2", None).await;
        wait_task(&base, summary["taskUid"].as_u64().expect("uid")).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            receiver.tasks().len(),
            before,
            "a deleted webhook was called"
        );
    }
}

#[tokio::test]
async fn an_internal_address_is_not_called_unless_allowed() {
    let c = cluster(2, "").await;
    let base = c.miroir.url();
    let receiver = Receiver::start().await;
    register(&base, &receiver).await;
    let uids = three_writes(&base).await;
    let refused = eventually(Duration::from_secs(10), || async {
        let m = metrics_text(c.metrics_port).await;
        sample(&m, "miroir_webhook_calls_total{outcome=\"refused\"}").unwrap_or(0.0) >= 1.0
    })
    .await;
    assert!(refused, "{}", metrics_text(c.metrics_port).await);
    assert!(
        receiver.calls().is_empty(),
        "{uids:?}: {:?}",
        receiver.calls()
    );
    // The webhook itself is kept, as Meilisearch keeps it.
    let (_, list) = call(&base, "GET", "/webhooks", None).await;
    assert_eq!(list["results"].as_array().map(Vec::len), Some(1), "{list}");
}
