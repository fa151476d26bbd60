//! Conformance: one request script replayed against the simulator and, when `MEILI_BIN` is
//! set, against a real Meilisearch started by the testkit. Expected statuses and error codes
//! are written in the script (taken from Meilisearch 1.50's source and docs) and asserted on
//! the simulator; with a real node, statuses, error codes and response shapes (key sets and
//! value types, not values) of both must also agree. A step may also pin exact values at JSON
//! pointers (observed on a real 1.50.0), asserted on both nodes.

use std::collections::HashMap;

use miroir_testkit::{meili_bin, start_node, Client, NodeKind, TestNode};
use reqwest::Method;
use serde_json::{json, Map, Value};

const MASTER_KEY: &str = "conformance-master-key-0123";

#[derive(Clone, Copy)]
enum Auth {
    Master,
    None,
    Wrong,
}

struct Step {
    method: Method,
    path: &'static str,
    body: Option<(Vec<u8>, &'static str)>,
    auth: Auth,
    status: u16,
    /// Error code of the response (for 4xx/5xx).
    code: Option<&'static str>,
    /// For a 202: the task's final status and error code.
    task: Option<(&'static str, Option<&'static str>)>,
    /// Compare the response shape with the real node (off for bodies made of free-form values).
    shape: bool,
    /// Remember `field` of the response as `{name}` for later paths.
    capture: Option<(&'static str, &'static str)>,
    /// Exact values at JSON pointers of the response (`None`: the key is absent).
    values: Vec<(&'static str, Option<Value>)>,
}

fn step(method: Method, path: &'static str, status: u16) -> Step {
    Step {
        method,
        path,
        body: None,
        auth: Auth::Master,
        status,
        code: None,
        task: None,
        shape: true,
        capture: None,
        values: Vec::new(),
    }
}

impl Step {
    fn json(mut self, body: Value) -> Self {
        self.body = Some((body.to_string().into_bytes(), "application/json"));
        self
    }
    fn raw(mut self, body: &str, content_type: &'static str) -> Self {
        self.body = Some((body.as_bytes().to_vec(), content_type));
        self
    }
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    fn task(mut self, status: &'static str, code: Option<&'static str>) -> Self {
        self.task = Some((status, code));
        self
    }
    fn no_shape(mut self) -> Self {
        self.shape = false;
        self
    }
    fn capture(mut self, field: &'static str, name: &'static str) -> Self {
        self.capture = Some((field, name));
        self
    }
    fn value(mut self, pointer: &'static str, value: Value) -> Self {
        self.values.push((pointer, Some(value)));
        self
    }
    fn absent(mut self, pointer: &'static str) -> Self {
        self.values.push((pointer, None));
        self
    }
}

fn script() -> Vec<Step> {
    use Method as M;
    let ok = |s: Step| s.task("succeeded", None);
    vec![
        step(M::GET, "/health", 200).auth(Auth::None),
        step(M::GET, "/version", 401)
            .auth(Auth::None)
            .code("missing_authorization_header"),
        step(M::GET, "/indexes", 403)
            .auth(Auth::Wrong)
            .code("invalid_api_key"),
        step(M::GET, "/version", 200).no_shape(),
        ok(step(M::POST, "/indexes", 202).json(json!({"uid": "movies", "primaryKey": "id"}))),
        step(M::POST, "/indexes", 202)
            .json(json!({"uid": "movies"}))
            .task("failed", Some("index_already_exists")),
        step(M::POST, "/indexes", 400)
            .json(json!({"uid": "bad uid"}))
            .code("invalid_index_uid"),
        step(M::GET, "/indexes/movies", 200),
        step(M::GET, "/indexes/unknown", 404).code("index_not_found"),
        step(M::GET, "/indexes?limit=1", 200),
        ok(step(M::POST, "/indexes/movies/documents", 202).json(json!([
            {"id": 1, "title": "Alien", "genre": "scifi", "year": 1979},
            {"id": 2, "title": "Amelie", "genre": "romance", "year": 2001},
        ]))),
        ok(step(M::PUT, "/indexes/movies/documents", 202).raw(
            "{\"id\": 3, \"title\": \"Heat\", \"genre\": \"crime\", \"year\": 1995}\n",
            "application/x-ndjson",
        )),
        ok(step(M::POST, "/indexes/movies/documents", 202)
            .raw("id,title,genre,year:number\n4,Up,family,2009\n", "text/csv")),
        step(M::POST, "/indexes/movies/documents", 415)
            .raw("[]", "text/plain")
            .code("invalid_content_type"),
        step(M::POST, "/indexes/movies/documents", 400)
            .raw("[{", "application/json")
            .code("malformed_payload"),
        step(M::POST, "/indexes/nopk/documents", 202)
            .json(json!([{"title": "x"}]))
            .task("failed", Some("index_primary_key_no_candidate_found")),
        step(M::POST, "/indexes/movies/documents", 202)
            .json(json!([{"id": "bad id!"}]))
            .task("failed", Some("invalid_document_id")),
        step(M::POST, "/indexes/movies/documents", 202)
            .json(json!([{"title": "no id"}]))
            .task("failed", Some("missing_document_id")),
        step(M::GET, "/indexes/movies/documents/1", 200),
        step(M::GET, "/indexes/movies/documents/999", 404).code("document_not_found"),
        step(
            M::GET,
            "/indexes/movies/documents?limit=2&fields=title",
            200,
        ),
        step(M::POST, "/indexes/movies/documents/fetch", 200).json(json!({"ids": ["1", "2"]})),
        step(
            M::GET,
            "/indexes/movies/documents?filter=genre%20%3D%20scifi",
            400,
        )
        .code("invalid_document_filter"),
        step(M::POST, "/indexes/movies/search", 400)
            .json(json!({"filter": "genre = scifi"}))
            .code("invalid_search_filter"),
        ok(step(M::PATCH, "/indexes/movies/settings", 202)
            .json(json!({"filterableAttributes": ["genre"], "sortableAttributes": ["year"]}))),
        step(M::GET, "/indexes/movies/settings", 200),
        step(
            M::GET,
            "/indexes/movies/settings/filterable-attributes",
            200,
        ),
        step(M::PUT, "/indexes/movies/settings/ranking-rules", 400)
            .json(json!(["nope"]))
            .code("invalid_settings_ranking_rules"),
        step(M::PATCH, "/indexes/movies/settings", 400)
            .json(json!({"unknownSetting": 1}))
            .code("bad_request"),
        ok(step(M::PUT, "/indexes/movies/settings/stop-words", 202).json(json!(["the"]))),
        ok(step(M::DELETE, "/indexes/movies/settings/stop-words", 202)),
        step(M::POST, "/indexes/movies/search", 200)
            .json(json!({"q": "alien", "filter": "genre = scifi"}))
            .no_shape(),
        step(M::GET, "/indexes/movies/search?q=amelie&limit=1", 200).no_shape(),
        step(M::GET, "/indexes/movies/search?limit=abc", 400).code("invalid_search_limit"),
        step(M::POST, "/indexes/movies/facet-search", 200)
            .json(json!({"facetName": "genre"}))
            .no_shape(),
        // Facets (observed on a real 1.50.0): a string rule is taken literally (`*` is no
        // wildcard) and covers nested fields; object rules match by wildcard and the first
        // rule matching a name decides its features.
        step(M::POST, "/indexes/movies/search", 200)
            .json(json!({"facets": ["genre"]}))
            .no_shape()
            .value(
                "/facetDistribution",
                json!({"genre": {"crime": 1, "family": 1, "romance": 1, "scifi": 1}}),
            )
            .value("/facetStats", json!({})),
        step(M::POST, "/indexes/movies/search", 400)
            .json(json!({"facets": ["*"]}))
            .code("invalid_search_facets")
            .value("/message", json!("Invalid facet distribution: Pattern `*` is not filterable. Available filterable attributes patterns are: `genre`.")),
        step(M::GET, "/indexes/movies/search?facets=gen*", 400)
            .code("invalid_search_facets")
            .value("/message", json!("Invalid facet distribution: Pattern `gen*` is not filterable. Available filterable attributes patterns are: `genre`.")),
        step(M::POST, "/indexes/movies/search", 200)
            .json(json!({"facets": []}))
            .no_shape()
            .absent("/facetDistribution")
            .absent("/facetStats"),
        ok(step(M::POST, "/indexes", 202).json(json!({"uid": "facets", "primaryKey": "id"}))),
        ok(step(M::POST, "/indexes/facets/documents", 202).json(json!([
            {"id": 1, "a": {"b": 1}, "c": {"d": 2}, "genre": "x"}
        ]))),
        ok(step(M::PATCH, "/indexes/facets/settings", 202)
            .json(json!({"filterableAttributes": ["a", "c.*", "*"]}))),
        step(M::POST, "/indexes/facets/search", 200)
            .json(json!({"facets": ["a"]}))
            .no_shape()
            .value("/facetDistribution", json!({"a": {}, "a.b": {"1": 1}}))
            .value("/facetStats", json!({"a.b": {"min": 1.0, "max": 1.0}})),
        step(M::POST, "/indexes/facets/search", 200)
            .json(json!({"facets": ["*"]}))
            .no_shape()
            .value("/facetDistribution", json!({"a": {}, "a.b": {"1": 1}})),
        step(M::POST, "/indexes/facets/search", 200)
            .json(json!({"facets": ["c.*", "c"]}))
            .no_shape()
            .value("/facetDistribution", json!({}))
            .value("/facetStats", json!({})),
        step(M::POST, "/indexes/facets/search", 400)
            .json(json!({"facets": ["c.d"]}))
            .code("invalid_search_facets")
            .value("/message", json!("Invalid facet distribution: Pattern `c.d` is not filterable. Available filterable attributes patterns are: `*, a, c.*`.")),
        step(M::POST, "/indexes/facets/search", 400)
            .json(json!({"filter": "genre = x"}))
            .code("invalid_search_filter"),
        step(M::POST, "/indexes/facets/facet-search", 400)
            .json(json!({"facetName": "genre"}))
            .code("invalid_facet_search_facet_name")
            .value("/message", json!("Attribute `genre` is not facet-searchable. Available facet-searchable attributes patterns are: `*, a, c.*`. To make it facet-searchable add it to the `filterableAttributes` index settings.")),
        ok(step(M::PATCH, "/indexes/facets/settings", 202).json(json!({"filterableAttributes": [
            {"attributePatterns": ["gen*"], "features": {"facetSearch": true}},
            {"attributePatterns": ["a*"], "features": {"filter": {"equality": false}}}
        ]}))),
        step(M::POST, "/indexes/facets/search", 200)
            .json(json!({"facets": ["*"]}))
            .no_shape()
            .value("/facetDistribution", json!({"genre": {"x": 1}})),
        step(M::POST, "/indexes/facets/search", 400)
            .json(json!({"facets": ["a.b"]}))
            .code("invalid_search_facets")
            .value("/message", json!("Invalid facet distribution: Attribute `a.b` matched rule #1 in filterableAttributes, but this rule does not enable filtering.\nHint: enable filtering in rule #1 by modifying the features.filter object\nHint: prepend another rule matching `a.b` with appropriate filter features before rule #1")),
        step(M::POST, "/indexes/facets/facet-search", 200)
            .json(json!({"facetName": "genre"}))
            .no_shape()
            .value("/facetHits", json!([{"value": "x", "count": 1}])),
        step(M::POST, "/indexes/facets/facet-search", 400)
            .json(json!({"facetName": "a.b"}))
            .code("invalid_facet_search_facet_name")
            .value("/message", json!("Attribute `a.b` is not facet-searchable. Note: this attribute matches rule #1 in filterableAttributes, but this rule does not enable facetSearch.\nHint: enable facetSearch in rule #1 by adding `\"facetSearch\": true` to the rule.\nHint: prepend another rule matching a.b with facetSearch: true before rule #1")),
        step(M::POST, "/multi-search", 400)
            .json(json!({"federation": {"facetsByIndex": {"movies": ["*"]}}, "queries": [
                {"indexUid": "facets"}, {"indexUid": "movies"}
            ]}))
            .code("invalid_search_facets")
            .value("/message", json!("Inside `.queries[1]`: Inside `.federation.facetsByIndex.movies`: Invalid facet distribution: Pattern `*` is not filterable. Available filterable attributes patterns are: `genre`.")),
        step(M::POST, "/multi-search", 200)
            .json(json!({"queries": [{"indexUid": "movies", "facets": []}, {"indexUid": "facets", "facets": ["gen*"]}]}))
            .no_shape()
            .absent("/results/0/facetDistribution")
            .value("/results/1/facetDistribution", json!({"genre": {"x": 1}})),
        ok(step(M::DELETE, "/indexes/facets", 202)),
        step(M::POST, "/multi-search", 200)
            .json(json!({"queries": [{"indexUid": "movies", "q": "up"}]}))
            .no_shape(),
        step(M::POST, "/multi-search", 400)
            .json(json!({"queries": [{"indexUid": "movies"}, {"indexUid": "unknown"}]}))
            .code("index_not_found"),
        step(M::GET, "/indexes/movies/stats", 200),
        step(M::GET, "/stats", 200).no_shape(),
        ok(step(M::POST, "/indexes/movies/documents/delete-batch", 202).json(json!([3]))),
        ok(step(M::POST, "/indexes/movies/documents/delete", 202)
            .json(json!({"filter": "genre = family"}))),
        step(M::POST, "/indexes/movies/documents/delete", 400)
            .json(json!({}))
            .code("missing_document_filter"),
        ok(step(M::DELETE, "/indexes/movies/documents/2", 202)),
        ok(step(M::POST, "/indexes", 202).json(json!({"uid": "movies2"}))),
        ok(step(M::POST, "/swap-indexes", 202).json(json!([{"indexes": ["movies", "movies2"]}]))),
        step(M::POST, "/swap-indexes", 400)
            .json(json!([{"indexes": ["movies"]}]))
            .code("invalid_swap_indexes"),
        step(M::GET, "/tasks?limit=2", 200),
        step(
            M::GET,
            "/tasks?statuses=failed&types=documentAdditionOrUpdate",
            200,
        ),
        step(M::GET, "/tasks?statuses=nope", 400).code("invalid_task_statuses"),
        step(M::GET, "/tasks?limit=x", 400).code("invalid_task_limit"),
        step(M::GET, "/tasks/0", 200),
        step(M::GET, "/tasks/999999", 404).code("task_not_found"),
        step(M::POST, "/tasks/cancel", 400).code("missing_task_filters"),
        ok(step(M::POST, "/tasks/cancel?statuses=enqueued", 200)),
        step(M::DELETE, "/tasks", 400).code("missing_task_filters"),
        ok(step(M::DELETE, "/tasks?uids=0", 200)),
        step(M::GET, "/batches?limit=1", 200).no_shape(),
        step(M::POST, "/keys", 201)
            .json(json!({"actions": ["search"], "indexes": ["movies"], "expiresAt": null}))
            .capture("uid", "key_uid"),
        step(M::POST, "/keys", 400)
            .json(json!({"indexes": ["*"], "expiresAt": null}))
            .code("missing_api_key_actions"),
        step(M::GET, "/keys?limit=2", 200),
        step(M::GET, "/keys/{key_uid}", 200),
        step(M::PATCH, "/keys/{key_uid}", 200).json(json!({"name": "renamed"})),
        step(M::PATCH, "/keys/{key_uid}", 400)
            .json(json!({"actions": ["*"]}))
            .code("immutable_api_key_actions"),
        step(M::DELETE, "/keys/{key_uid}", 204),
        step(M::GET, "/keys/{key_uid}", 404).code("api_key_not_found"),
        step(M::GET, "/experimental-features", 200),
        step(M::PATCH, "/experimental-features", 200).json(json!({"containsFilter": true})),
        step(M::GET, "/tasks?types=taskCancelation,taskDeletion", 200),
        step(M::GET, "/tasks/abc", 400).code("invalid_task_uids"),
        ok(step(M::DELETE, "/indexes/movies2", 202)),
        step(M::DELETE, "/indexes/movies2", 202).task("failed", Some("index_not_found")),
        step(M::GET, "/this-route-does-not-exist", 404),
    ]
}

/// What one node answered to one step.
#[derive(Debug)]
struct Outcome {
    status: u16,
    body: Value,
    task: Option<Value>,
}

async fn replay(node: &TestNode) -> Vec<Outcome> {
    let master = Client::new(&node.url(), Some(MASTER_KEY));
    let mut vars: HashMap<&str, String> = HashMap::new();
    let mut outcomes = Vec::new();
    for s in script() {
        let client = match s.auth {
            Auth::Master => master.clone(),
            Auth::None => master.with_key(None),
            Auth::Wrong => master.with_key(Some("wrong-key")),
        };
        let mut path = s.path.to_owned();
        for (name, value) in &vars {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let body = s.body.as_ref().map(|(b, ct)| (b.as_slice(), *ct));
        let (status, body) = client.send_raw(s.method.clone(), &path, body).await;
        if let Some((field, name)) = s.capture {
            vars.insert(name, body[field].as_str().unwrap_or_default().to_owned());
        }
        let task = match body["taskUid"].as_u64() {
            Some(uid) if status == 202 || status == 200 => Some(master.wait_task(uid).await),
            _ => None,
        };
        outcomes.push(Outcome { status, body, task });
    }
    outcomes
}

fn describe(s: &Step) -> String {
    format!("{} {}", s.method, s.path)
}

/// The script's own expectations.
fn check_expectations(who: &str, outcomes: &[Outcome]) -> Vec<String> {
    let mut failures = Vec::new();
    for (s, o) in script().iter().zip(outcomes) {
        if o.status != s.status {
            failures.push(format!(
                "{who}: {}: status {} (expected {}): {}",
                describe(s),
                o.status,
                s.status,
                o.body
            ));
        }
        if let Some(code) = s.code {
            if o.body["code"] != code {
                failures.push(format!(
                    "{who}: {}: code {} (expected {code})",
                    describe(s),
                    o.body["code"]
                ));
            }
        }
        for (pointer, want) in &s.values {
            let got = o.body.pointer(pointer);
            if got != want.as_ref() {
                failures.push(format!(
                    "{who}: {}: {pointer} is {} (expected {})",
                    describe(s),
                    got.map_or("absent".to_owned(), Value::to_string),
                    want.as_ref().map_or("absent".to_owned(), Value::to_string)
                ));
            }
        }
        if let Some((status, code)) = s.task {
            let task = o.task.as_ref().unwrap_or(&Value::Null);
            if task["status"] != status || code.is_some_and(|c| task["error"]["code"] != c) {
                failures.push(format!(
                    "{who}: {}: task {} (expected {status} {code:?})",
                    describe(s),
                    task
                ));
            }
        }
    }
    failures
}

/// Key sets and value types, recursively; arrays by their first element.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => json!([items.first().map(shape).unwrap_or(Value::Null)]),
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
    }
}

fn compare(sim: &[Outcome], real: &[Outcome]) -> Vec<String> {
    let mut failures = Vec::new();
    for ((s, a), b) in script().iter().zip(sim).zip(real) {
        if a.status != b.status {
            failures.push(format!(
                "{}: status sim {} vs real {}",
                describe(s),
                a.status,
                b.status
            ));
        }
        if a.body["code"] != b.body["code"] {
            failures.push(format!(
                "{}: code sim {} vs real {}",
                describe(s),
                a.body["code"],
                b.body["code"]
            ));
        }
        if s.shape && shape(&a.body) != shape(&b.body) {
            failures.push(format!(
                "{}: shape sim {} vs real {}",
                describe(s),
                shape(&a.body),
                shape(&b.body)
            ));
        }
        if let (Some(ta), Some(tb)) = (&a.task, &b.task) {
            if ta["status"] != tb["status"] || ta["error"]["code"] != tb["error"]["code"] {
                failures.push(format!("{}: task sim {} vs real {}", describe(s), ta, tb));
            }
            if s.shape && shape(&ta["details"]) != shape(&tb["details"]) {
                failures.push(format!(
                    "{}: task details sim {} vs real {}",
                    describe(s),
                    ta["details"],
                    tb["details"]
                ));
            }
        }
    }
    failures
}

#[tokio::test]
async fn simulator_conforms_to_the_script_and_to_real_meilisearch() {
    let sim = start_node(NodeKind::Sim, MASTER_KEY).await;
    let sim_outcomes = replay(&sim).await;
    let mut failures = check_expectations("sim", &sim_outcomes);
    println!(
        "conformance: {} steps replayed against the simulator",
        sim_outcomes.len()
    );

    if meili_bin().is_none() {
        println!("conformance: real-node comparison skipped: no Meilisearch binary (set MEILI_BIN, or put one at ../shared/meilisearch/meilisearch)");
    } else {
        let real = start_node(NodeKind::Real, MASTER_KEY).await;
        let real_outcomes = replay(&real).await;
        failures.extend(check_expectations("real", &real_outcomes));
        failures.extend(compare(&sim_outcomes, &real_outcomes));
        println!(
            "conformance: {} steps compared with the real node at {}",
            real_outcomes.len(),
            real.url()
        );
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
