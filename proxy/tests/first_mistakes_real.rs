//! The mistakes a new user makes first, through Miroir over 3 real Meilisearch nodes against
//! one real node holding the same documents and settings: the same status, code and message
//! (and the same data where the request succeeds). Found by a black-box audit of Miroir
//! against one node; each case once differed. Runs only with `MEILI_BIN`.

mod common;

use common::{call, client, compared, wait_idle, Compared, KEY};
use miroir_testkit::{require_meili_bin, NodeKind};
use serde_json::{json, Value};

/// 24 shoes of one to three colours each.
fn shoes() -> Vec<Value> {
    const COLORS: [&str; 8] = [
        "blue", "white", "black", "yellow", "green", "pink", "gray", "red",
    ];
    (1..=24)
        .map(|i: usize| {
            let colors: Vec<&str> = (0..1 + i % 3)
                .map(|k| COLORS[(i * 3 + k * 5) % 8])
                .collect();
            json!({"id": i, "title": format!("shoe {i}"), "colors": colors, "size": 36 + i % 10})
        })
        .collect()
}

/// Miroir over 3 real nodes and the reference node, both holding the shoes with `colors`
/// filterable and `size` and `id` sortable.
async fn fleet() -> Compared {
    let settings =
        json!({"filterableAttributes": ["colors"], "sortableAttributes": ["size", "id"]});
    compared(NodeKind::Real, &["dis"], &settings, &shoes()).await
}

/// A request with any body and `Content-Type` (or none): status and JSON answer.
async fn raw(
    base: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(KEY)
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A request with a body in any encoding: status and JSON answer.
async fn encoded(base: &str, path: &str, encoding: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}{path}"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// A request with `credential` (a key or a tenant token): status and JSON answer.
async fn with_key(base: &str, credential: &str, method: &str, path: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let resp = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(credential)
        .json(&json!([]))
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The same key (`body`) created on each of `bases`: their key strings.
async fn create_keys(bases: [&str; 2], body: Value) -> Vec<String> {
    let mut keys = Vec::new();
    for base in bases {
        let (s, key) = call(base, "POST", "/keys", Some(body.clone())).await;
        assert_eq!(s, 201, "{key}");
        keys.push(key["key"].as_str().expect("a key").to_owned());
    }
    keys
}

/// The same refusal from both: status, code, type and message.
fn same_error(what: &str, one: &(u16, Value), through: &(u16, Value)) {
    assert!(one.0 >= 400, "{what}: one node accepted it: {}", one.1);
    assert_eq!(one.0, through.0, "{what}: {} vs {}", one.1, through.1);
    for field in ["code", "type", "message"] {
        assert_eq!(one.1[field], through.1[field], "{what}: {field}");
    }
    assert!(
        !through.1.to_string().contains("_miroir_shard")
            || one.1.to_string().contains("_miroir_shard"),
        "{what}: the hidden field leaked: {}",
        through.1
    );
}

/// A page's documents in one order (Miroir lists them in shard order).
fn sorted(page: &Value) -> Vec<String> {
    let mut docs: Vec<String> = page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect();
    docs.sort();
    docs
}

#[tokio::test]
async fn a_new_users_first_mistakes_get_one_nodes_answers() {
    let _bin = require_meili_bin!();
    let fleet = fleet().await;
    let (one, through) = (fleet.reference.url(), fleet.miroir.url());

    // A settings typo is refused, and the filterable attributes stay.
    for bad in [json!("colors"), json!(5), json!({"a": 1})] {
        let body = Some(json!({ "filterableAttributes": bad }));
        let r1 = call(&one, "PATCH", "/indexes/dis/settings", body.clone()).await;
        let r2 = call(&through, "PATCH", "/indexes/dis/settings", body).await;
        same_error(&format!("filterableAttributes {bad}"), &r1, &r2);
    }
    for node in [&one, &through] {
        wait_idle(node).await;
    }
    let path = "/indexes/dis/settings/filterable-attributes";
    let kept = call(&through, "GET", path, None).await;
    assert_eq!(kept, call(&one, "GET", path, None).await);
    assert_eq!(kept.1, json!(["colors"]));

    // `fields=*` (alone or in a list) is every field.
    for fields in ["*", "title,*", "title"] {
        let path = format!("/indexes/dis/documents?fields={fields}&limit=100");
        let (s1, a) = call(&one, "GET", &path, None).await;
        let (s2, b) = call(&through, "GET", &path, None).await;
        assert_eq!((s1, s2), (200, 200), "{fields}: {a} vs {b}");
        assert_eq!(sorted(&a), sorted(&b), "fields={fields}");
        assert_eq!(a["total"], b["total"]);
    }
    // In a fetch body `*` names no field, and the sort still applies.
    for fields in [json!(["title", "*"]), json!(["*"]), json!(["title"])] {
        let body = Some(json!({"fields": fields, "sort": ["id:desc"], "limit": 4}));
        let a = call(&one, "POST", "/indexes/dis/documents/fetch", body.clone()).await;
        let b = call(&through, "POST", "/indexes/dis/documents/fetch", body).await;
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(a, b, "fetch fields {fields}");
    }
    let (_, all) = call(&through, "GET", "/indexes/dis/documents?fields=*", None).await;
    assert!(all["results"][0]["colors"].is_array(), "{all}");

    // GET parameters as a node reads them: an empty list is none, sort rules are trimmed.
    for query in [
        "q=shoe&facets=",
        "q=shoe&locales=",
        "q=shoe&sort=size:desc,%20id:asc",
        "q=shoe&sort=%20size:asc,id:desc&facets=colors,,",
        "q=shoe&facets=colors,%20size",
    ] {
        let path = format!("/indexes/dis/search?{query}");
        let (s1, a) = call(&one, "GET", &path, None).await;
        let (s2, b) = call(&through, "GET", &path, None).await;
        assert_eq!(s1, s2, "{query}: {a} vs {b}");
        if s1 == 200 {
            let ids = |v: &Value| {
                v["hits"]
                    .as_array()
                    .map(|h| h.iter().map(|h| h["id"].clone()).collect::<Vec<_>>())
            };
            assert_eq!(a["facetDistribution"], b["facetDistribution"], "{query}");
            if query.contains("sort") {
                assert_eq!(ids(&a), ids(&b), "{query}");
            }
        } else {
            same_error(query, &(s1, a), &(s2, b));
        }
    }

    // A search body that is missing, undeclared, or not JSON.
    let search = "/indexes/dis/search";
    let json_ct = Some("application/json");
    for (ct, body) in [
        (json_ct, ""),
        (json_ct, "  "),
        (Some("text/plain"), r#"{"q":"shoe"}"#),
        (None, r#"{"q":"shoe"}"#),
        (json_ct, r#"{"q":"#),
        (json_ct, "[1]"),
        (json_ct, r#""shoe""#),
    ] {
        let what = format!("search {ct:?} {body:?}");
        let r1 = raw(&one, "POST", search, ct, body).await;
        let r2 = raw(&through, "POST", search, ct, body).await;
        same_error(&what, &r1, &r2);
    }
    // Payload errors come before the index is looked for.
    let r1 = raw(
        &one,
        "POST",
        "/indexes/nope/search",
        Some("text/plain"),
        "{}",
    )
    .await;
    let r2 = raw(
        &through,
        "POST",
        "/indexes/nope/search",
        Some("text/plain"),
        "{}",
    )
    .await;
    same_error("search of no index, text/plain", &r1, &r2);
    let body = r#"{"queries":[{"indexUid":"dis","q":"shoe"}]}"#;
    for ct in [Some("text/plain"), None] {
        let r1 = raw(&one, "POST", "/multi-search", ct, body).await;
        let r2 = raw(&through, "POST", "/multi-search", ct, body).await;
        same_error(&format!("multi-search {ct:?}"), &r1, &r2);
    }
    // Well-formed bodies still search.
    let ok = raw(
        &through,
        "POST",
        search,
        Some("application/json; charset=utf-8"),
        r#"{"q":"shoe","limit":2}"#,
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(ok.1["hits"].as_array().map(Vec::len), Some(2));

    // The shard field is no attribute a client can name.
    let facet_search = "/indexes/dis/facet-search";
    for body in [
        json!({"facetName": "nope"}),
        json!({"facetName": "_miroir_shard"}),
    ] {
        let r1 = call(&one, "POST", facet_search, Some(body.clone())).await;
        let r2 = call(&through, "POST", facet_search, Some(body.clone())).await;
        same_error(&format!("facet search {body}"), &r1, &r2);
    }
    for body in [
        json!({"filter": "_miroir_shard = 1"}),
        json!({"filter": "_miroir_shard EXISTS"}),
        json!({"filter": ["colors = blue", ["_miroir_shard = 2"]]}),
        json!({"facets": ["_miroir_shard"]}),
        json!({"distinct": "_miroir_shard"}),
    ] {
        let r1 = call(&one, "POST", search, Some(body.clone())).await;
        let r2 = call(&through, "POST", search, Some(body.clone())).await;
        same_error(&format!("search {body}"), &r1, &r2);
    }
    let path = "/indexes/dis/documents?filter=_miroir_shard%20%3D%203";
    let r1 = call(&one, "GET", path, None).await;
    let r2 = call(&through, "GET", path, None).await;
    same_error("documents filtered on the shard field", &r1, &r2);
    let body = Some(json!({"filter": "_miroir_shard = 3"}));
    let r1 = call(&one, "POST", "/indexes/dis/documents/fetch", body.clone()).await;
    let r2 = call(&through, "POST", "/indexes/dis/documents/fetch", body).await;
    same_error("documents fetched by the shard field", &r1, &r2);
    // A filter on the client's own attributes is untouched.
    let body = Some(json!({"filter": "colors = blue", "facets": ["colors"], "limit": 0}));
    let (s1, a) = call(&one, "POST", search, body.clone()).await;
    let (s2, b) = call(&through, "POST", search, body).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a["facetDistribution"], b["facetDistribution"]);
    assert_eq!(a["estimatedTotalHits"], b["estimatedTotalHits"]);

    // Compressed bodies are read as a node reads them: a search, an upload, a bad label.
    let query = br#"{"q":"shoe","sort":["id:asc"],"limit":5}"#;
    let a = encoded(&one, search, "gzip", gzip(query)).await;
    let b = encoded(&through, search, "gzip", gzip(query)).await;
    assert_eq!(a.0, 200, "{}", a.1);
    assert_eq!((a.0, &a.1["hits"]), (b.0, &b.1["hits"]));
    let r1 = encoded(&one, search, "br", query.to_vec()).await;
    let r2 = encoded(&through, search, "br", query.to_vec()).await;
    same_error("a plain body labelled br", &r1, &r2);
    let r1 = encoded(&one, search, "gzip", query.to_vec()).await;
    let r2 = encoded(&through, search, "gzip", query.to_vec()).await;
    same_error("a plain body labelled gzip", &r1, &r2);
    let upload = gzip(Value::Array(shoes()).to_string().as_bytes());
    for base in [&one, &through] {
        let (s, task) = encoded(base, "/indexes/gz/documents", "gzip", upload.clone()).await;
        assert_eq!(s, 202, "{task}");
        let uid = task["taskUid"].as_u64().expect("a task uid");
        let done = common::wait_task(base, uid).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let (_, stats) = call(&through, "GET", "/indexes/gz/stats", None).await;
    assert_eq!(stats["numberOfDocuments"], 24, "{stats}");

    // A delete by a filter naming the shard field fails as on one node, and deletes nothing.
    let mut failed = Vec::new();
    for base in [&one, &through] {
        let body = Some(json!({"filter": "_miroir_shard EXISTS"}));
        let (s, task) = call(base, "POST", "/indexes/dis/documents/delete", body).await;
        assert_eq!(s, 202, "{task}");
        let uid = task["taskUid"].as_u64().expect("a task uid");
        failed.push(common::wait_task(base, uid).await);
    }
    assert_eq!(failed[0]["status"], "failed", "{}", failed[0]);
    assert_eq!(failed[0]["status"], failed[1]["status"], "{}", failed[1]);
    assert_eq!(failed[0]["error"], failed[1]["error"]);
    let (_, stats) = call(&through, "GET", "/indexes/dis/stats", None).await;
    assert_eq!(stats["numberOfDocuments"], 24, "{stats}");
}

/// A task that reads `succeeded` has taken effect: a sorted search right after a change of
/// the displayed attributes ranks as one node does (the merge's settings were cached from
/// before the change for a few seconds).
#[tokio::test]
async fn a_search_right_after_a_settings_task_sees_the_new_settings() {
    let _bin = require_meili_bin!();
    let fleet = fleet().await;
    let (one, through) = (fleet.reference.url(), fleet.miroir.url());
    let docs: Value = (1..=120)
        .map(|i: u64| {
            json!({"id": i, "title": format!("boot {i}"), "year": 2000 + i % 4,
                   "price": (i * 37) % 101, "rating": i % 10})
        })
        .collect();
    let settings = json!({
        "sortableAttributes": ["price"],
        "filterableAttributes": ["rating"],
        "rankingRules": ["words", "typo", "year:desc", "proximity", "attribute", "sort", "exactness", "id:asc"],
    });
    for base in [&through, &one] {
        let (s, r) = call(base, "POST", "/indexes/boots/documents", Some(docs.clone())).await;
        assert_eq!(s, 202, "{r}");
        let (s, r) = call(
            base,
            "PATCH",
            "/indexes/boots/settings",
            Some(settings.clone()),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        wait_idle(base).await;
    }
    let search = json!({"filter": "rating > 5", "sort": ["price:asc"], "limit": 40});
    let ids = |page: &Value| -> Vec<Value> {
        page["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| h["id"].clone())
            .collect()
    };
    // Searched before each change, so the merge's settings are in Miroir's cache.
    for displayed in [
        json!(["id", "title", "year"]),
        json!(["*"]),
        json!(["id", "title"]),
    ] {
        let (s, _) = call(
            &through,
            "POST",
            "/indexes/boots/search",
            Some(search.clone()),
        )
        .await;
        assert_eq!(s, 200);
        let body = Some(json!({ "displayedAttributes": displayed }));
        for base in [&through, &one] {
            let (s, task) = call(base, "PATCH", "/indexes/boots/settings", body.clone()).await;
            assert_eq!(s, 202, "{task}");
            let uid = task["taskUid"].as_u64().expect("a task uid");
            let done = common::wait_task(base, uid).await;
            assert_eq!(done["status"], "succeeded", "{done}");
        }
        let (_, a) = call(&one, "POST", "/indexes/boots/search", Some(search.clone())).await;
        let (_, b) = call(
            &through,
            "POST",
            "/indexes/boots/search",
            Some(search.clone()),
        )
        .await;
        assert_eq!(ids(&a).len(), 40, "{a}");
        assert_eq!(ids(&a), ids(&b), "displayed {displayed}");
        assert_eq!(a["hits"][0], b["hits"][0], "displayed {displayed}");
    }
}

/// A key used on an index it does not cover gets one node's words, naming the index and the
/// key's indexes; an action it lacks on an index it covers gets the generic refusal.
#[tokio::test]
async fn a_key_used_outside_its_indexes_is_refused_in_one_nodes_words() {
    let _bin = require_meili_bin!();
    let fleet = fleet().await;
    let (one, through) = (fleet.reference.url(), fleet.miroir.url());
    let body = json!({"actions": ["search", "documents.get"], "indexes": ["dis", "mov*"], "expiresAt": null});
    let keys = create_keys([&one, &through], body).await;
    for (method, path) in [
        ("GET", "/indexes/other/search"),
        ("GET", "/indexes/other/documents"),
        ("GET", "/indexes/other/settings"),
        ("POST", "/indexes/other/documents"),
        ("GET", "/indexes/dis/settings"),
    ] {
        let a = with_key(&one, &keys[0], method, path).await;
        let b = with_key(&through, &keys[1], method, path).await;
        same_error(&format!("{method} {path}"), &a, &b);
    }

    // Tenant tokens of a key covering `dis` only: the token's indexes, then the key's.
    let uid = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let body = json!({"uid": uid, "actions": ["search"], "indexes": ["dis"], "expiresAt": null});
    let keys = create_keys([&one, &through], body).await;
    let exp = Some(time::OffsetDateTime::now_utc().unix_timestamp() + 3600);
    for (rules, index) in [
        (json!(["other"]), "dis"),
        (json!(["*"]), "other"),
        (json!({"d*": null}), "other"),
    ] {
        let path = format!("/indexes/{index}/search");
        let token = |key: &str| meili_sim::sign_tenant_token(key, uid, rules.clone(), exp);
        let a = with_key(&one, &token(&keys[0]), "GET", &path).await;
        let b = with_key(&through, &token(&keys[1]), "GET", &path).await;
        same_error(&format!("token {rules} on {index}"), &a, &b);
    }
}
