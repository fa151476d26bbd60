//! The auth matrix, over real HTTP.

mod common;

use common::{start, succeeded, MASTER_KEY};
use meili_sim::{sign_tenant_token, SimConfig};
use miroir_testkit::Client;
use serde_json::{json, Value};

async fn seed_movies(admin: &Client) {
    succeeded(
        admin,
        admin
            .post(
                "/indexes/movies/documents",
                json!([
                    {"id": 1, "title": "Alien", "genre": "scifi"},
                    {"id": 2, "title": "Amelie", "genre": "romance"},
                ]),
            )
            .await,
    )
    .await;
    succeeded(
        admin,
        admin
            .put(
                "/indexes/movies/settings/filterable-attributes",
                json!(["genre"]),
            )
            .await,
    )
    .await;
    succeeded(
        admin,
        admin
            .post(
                "/indexes/books/documents",
                json!([{"id": 1, "title": "Dune"}]),
            )
            .await,
    )
    .await;
}

async fn create_key(admin: &Client, actions: Value, indexes: Value, expires_at: Value) -> Value {
    let (status, key) = admin
        .post(
            "/keys",
            json!({"actions": actions, "indexes": indexes, "expiresAt": expires_at}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    key
}

#[tokio::test]
async fn missing_header_is_401_and_wrong_key_is_403() {
    let (_node, admin) = start().await;
    let (status, body) = admin.with_key(None).get("/indexes").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "missing_authorization_header");
    assert_eq!(body["type"], "auth");
    let (status, body) = admin.with_key(Some("wrong")).get("/indexes").await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "invalid_api_key");
    assert_eq!(body["message"], "The provided API key is invalid.");
    let (status, _) = admin.with_key(None).get("/health").await;
    assert_eq!(status, 200, "health needs no key");
}

#[tokio::test]
async fn without_master_key_everything_is_open_except_keys_routes() {
    let (_node, open) = common::start_with(SimConfig::default()).await;
    assert_eq!(open.with_key(None).get("/indexes").await.0, 200);
    let (status, body) = open.with_key(None).get("/keys").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "missing_master_key");
}

#[tokio::test]
async fn key_limits_actions_indexes_and_expiry() {
    let (_node, admin) = start().await;
    seed_movies(&admin).await;

    let search_movies = create_key(&admin, json!(["search"]), json!(["movies"]), Value::Null).await;
    let c = admin.with_key(search_movies["key"].as_str());
    assert_eq!(
        c.post("/indexes/movies/search", json!({"q": "alien"}))
            .await
            .0,
        200
    );
    let (status, body) = c.post("/indexes/books/search", json!({"q": "dune"})).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "invalid_api_key");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot acces the index `books`"),
        "{body}"
    );
    let (status, body) = c.get("/indexes/movies/documents").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key")),
        "no documents.get action"
    );

    let docs_wildcard =
        create_key(&admin, json!(["documents.*"]), json!(["mov*"]), Value::Null).await;
    let c = admin.with_key(docs_wildcard["key"].as_str());
    assert_eq!(c.get("/indexes/movies/documents").await.0, 200);
    assert_eq!(c.get("/indexes/movies/settings").await.0, 403);

    // A key that expires in one second, then is used after expiry.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let expiring = create_key(
        &admin,
        json!(["*"]),
        json!(["*"]),
        json!(soon
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()),
    )
    .await;
    let c = admin.with_key(expiring["key"].as_str());
    assert_eq!(c.get("/indexes").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body) = c.get("/indexes").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
}

#[tokio::test]
async fn key_routes_validate_and_manage_keys() {
    let (_node, admin) = start().await;
    let (status, body) = admin
        .post("/keys", json!({"indexes": ["*"], "expiresAt": null}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_api_key_actions"))
    );
    let (status, body) = admin
        .post(
            "/keys",
            json!({"actions": ["nope"], "indexes": ["*"], "expiresAt": null}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_api_key_actions"))
    );
    let (status, body) = admin
        .post(
            "/keys",
            json!({"actions": ["*"], "indexes": ["*"], "expiresAt": "2000-01-01"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_api_key_expires_at"))
    );

    let uid = "01b4bc42-eb33-4041-b481-254d00cce834";
    let key = create_key(&admin, json!(["search"]), json!(["*"]), Value::Null).await;
    let (status, _) = admin
        .post(
            "/keys",
            json!({"uid": uid, "actions": ["search"], "indexes": ["*"], "expiresAt": null}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = admin
        .post(
            "/keys",
            json!({"uid": uid, "actions": ["search"], "indexes": ["*"], "expiresAt": null}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("api_key_already_exists"))
    );

    let (status, body) = admin
        .patch(&format!("/keys/{uid}"), json!({"name": "renamed"}))
        .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("renamed")));
    let (status, body) = admin
        .patch(&format!("/keys/{uid}"), json!({"actions": ["*"]}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("immutable_api_key_actions"))
    );

    let (status, body) = admin
        .get(&format!("/keys/{}", key["key"].as_str().unwrap()))
        .await;
    assert_eq!(
        (status, body["uid"].clone()),
        (200, key["uid"].clone()),
        "GET by key string"
    );
    let (status, list) = admin.get("/keys?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(list["results"].as_array().unwrap().len(), 2);
    assert_eq!(list["total"], 6, "4 default keys + 2 created");
    assert_eq!(admin.delete(&format!("/keys/{uid}")).await.0, 204);
    let (status, body) = admin.get(&format!("/keys/{uid}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("api_key_not_found"))
    );
}

#[tokio::test]
async fn default_keys_exist_and_key_derivation_matches_across_nodes() {
    let (node_a, a) = start().await;
    let (_node_b, b) = common::start_with(SimConfig {
        master_key: Some(MASTER_KEY.into()),
        seed: 42,
        ..SimConfig::default()
    })
    .await;
    let (_, list) = a.get("/keys").await;
    let names: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    for expected in [
        "Default Search API Key",
        "Default Admin API Key",
        "Default Read-Only Admin API Key",
        "Default Chat API Key",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let uid = "7a1f3f0e-4b7c-4d0e-9c55-0a4f1f6f4b11";
    let body = json!({"uid": uid, "actions": ["*"], "indexes": ["*"], "expiresAt": null});
    let (_, ka) = a.post("/keys", body.clone()).await;
    let (_, kb) = b.post("/keys", body).await;
    assert_eq!(ka["key"], kb["key"]);
    assert_eq!(
        ka["key"].as_str().unwrap(),
        meili_sim::derive_key(MASTER_KEY, &uid.parse().unwrap())
    );
    let (_, list_b) = b.get("/keys").await;
    let default_uid = |l: &Value| {
        l["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "Default Search API Key")
            .unwrap()["uid"]
            .clone()
    };
    assert_ne!(
        default_uid(&list),
        default_uid(&list_b),
        "different seeds give different default keys"
    );
    drop(node_a);
}

#[tokio::test]
async fn tenant_tokens_apply_search_rules_and_expire() {
    let (node, admin) = start().await;
    seed_movies(&admin).await;
    let key = create_key(&admin, json!(["search"]), json!(["*"]), Value::Null).await;
    let (api_key, uid) = (key["key"].as_str().unwrap(), key["uid"].as_str().unwrap());

    let token = sign_tenant_token(
        api_key,
        uid,
        json!({"movies": {"filter": "genre = scifi"}}),
        None,
    );
    let c = Client::new(&node.url(), Some(&token));
    let (status, body) = c.post("/indexes/movies/search", json!({"q": ""})).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&Value> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(ids, vec![&json!(1)], "the rule's filter is ANDed in");
    let (status, body) = c.post("/indexes/books/search", json!({"q": ""})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
    let (status, _) = c.get("/indexes/movies/documents").await;
    assert_eq!(status, 403, "tenant tokens only grant search");

    let expired = sign_tenant_token(
        api_key,
        uid,
        json!(["*"]),
        Some(time::OffsetDateTime::now_utc().unix_timestamp() - 10),
    );
    let (status, body) = Client::new(&node.url(), Some(&expired))
        .post("/indexes/movies/search", json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Tenant token expired."),
        "{body}"
    );

    let forged = sign_tenant_token("not-the-key", uid, json!(["*"]), None);
    let (status, body) = Client::new(&node.url(), Some(&forged))
        .post("/indexes/movies/search", json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
}

#[tokio::test]
async fn keys_without_index_creation_cannot_create_indexes() {
    let (_node, admin) = start().await;
    let writer = create_key(
        &admin,
        json!(["documents.add", "tasks.get"]),
        json!(["*"]),
        Value::Null,
    )
    .await;
    let c = admin.with_key(writer["key"].as_str());
    let task = common::run(
        &c,
        c.post("/indexes/fresh/documents", json!([{"id": 1}])).await,
    )
    .await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["error"]["code"], "index_not_found");

    let creator = create_key(
        &admin,
        json!(["indexes.create"]),
        json!(["a*"]),
        Value::Null,
    )
    .await;
    let c = admin.with_key(creator["key"].as_str());
    assert_eq!(c.post("/indexes", json!({"uid": "alpha"})).await.0, 202);
    let (status, body) = c.post("/indexes", json!({"uid": "beta"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
}

#[tokio::test]
async fn multi_search_checks_every_queried_index() {
    let (node, admin) = start().await;
    seed_movies(&admin).await;
    let key = create_key(&admin, json!(["search"]), json!(["*"]), Value::Null).await;
    let (api_key, uid) = (key["key"].as_str().unwrap(), key["uid"].as_str().unwrap());
    let token = sign_tenant_token(
        api_key,
        uid,
        json!({"movies": {"filter": "genre = romance"}}),
        None,
    );
    let c = Client::new(&node.url(), Some(&token));
    let body = json!({"queries": [{"indexUid": "movies"}, {"indexUid": "books"}]});
    let (status, err) = c.post("/multi-search", body).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("Inside `.queries[1]`"),
        "{err}"
    );
    let (status, body) = c
        .post(
            "/multi-search",
            json!({"queries": [{"indexUid": "movies"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let hits = body["results"][0]["hits"].as_array().unwrap();
    assert_eq!(
        hits.len(),
        1,
        "the token's filter applies inside multi-search: {body}"
    );
    assert_eq!(hits[0]["id"], 2);
}
