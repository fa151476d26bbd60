//! `POST /indexes/{uid}/fields` through Miroir over 3 real Meilisearch nodes against one real
//! node holding the same documents (the simulator does not implement the route). Runs only
//! with `MEILI_BIN`.

mod common;

use common::{call, miroir_bin, wait_idle, KEY};
use miroir_testkit::proxy::{free_port, MiroirProcess, DATA_DIR};
use miroir_testkit::{require_meili_bin, start_node, NodeKind};
use serde_json::{json, Value};

/// Documents whose rarer fields live on a few documents only, so no single shard has them all.
fn documents() -> Value {
    (0..60)
        .map(|i| {
            let mut d = json!({"id": i, "title": format!("t{i}"), "year": 2000 + i});
            if i % 17 == 0 {
                d[format!("rare{}", i / 17)] = json!(i);
            }
            if i == 5 {
                d["nested"] = json!({"a": 1, "b": "x"});
            }
            d
        })
        .collect()
}

#[tokio::test]
async fn fields_through_miroir_list_what_one_node_lists() {
    let _bin = require_meili_bin!();
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(start_node(NodeKind::Real, KEY).await);
    }
    let reference = nodes.pop().expect("4 nodes");
    let port = free_port();
    let mut toml = format!(
        "shards = 8\nmaster_key = \"{KEY}\"\ndata_dir = \"{DATA_DIR}\"\n\n[server]\nport = {port}\n\n[metrics]\nenabled = false\n\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\naddress = \"{}\"\n\n",
            node.url()
        ));
    }
    let miroir = MiroirProcess::start(miroir_bin(), &toml, port).await;
    for base in [miroir.url(), reference.url()] {
        let (s, r) = call(
            &base,
            "PATCH",
            "/indexes/docs/settings",
            Some(json!({
                "displayedAttributes": ["title", "rare1", "nested"],
                "sortableAttributes": ["year"],
                "filterableAttributes": ["year"],
            })),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        let (s, r) = call(&base, "POST", "/indexes/docs/documents", Some(documents())).await;
        assert_eq!(s, 202, "{r}");
    }
    for node in nodes.iter().chain([&reference]) {
        wait_idle(&node.url()).await;
    }
    let bodies = [
        json!({}),
        json!({"limit": 3, "offset": 2}),
        json!({"limit": 100, "filter": {"displayed": true}}),
        json!({"limit": 100, "filter": {"displayed": false}}),
        json!({"limit": 100, "filter": {"sortable": true}}),
        json!({"limit": 100, "filter": {"filterable": false, "displayed": true}}),
        json!({"limit": 100, "filter": {"attributePatterns": ["rare*", "nested.*"]}}),
        json!({"offset": 50}),
        json!({"limit": "x"}),
        json!({"filter": {"displayed": "yes"}}),
        json!({"filter": {"nope": true}}),
    ];
    for body in bodies {
        let (s1, one) = call(
            &reference.url(),
            "POST",
            "/indexes/docs/fields",
            Some(body.clone()),
        )
        .await;
        let (s2, through) = call(
            &miroir.url(),
            "POST",
            "/indexes/docs/fields",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s1, s2, "{body}: {one} vs {through}");
        if s1 == 200 {
            assert_eq!(one, through, "{body}");
        } else {
            assert_eq!(one["code"], through["code"], "{body}");
        }
    }
    let (s, missing) = call(
        &miroir.url(),
        "POST",
        "/indexes/nope/fields",
        Some(json!({})),
    )
    .await;
    let (s1, one) = call(
        &reference.url(),
        "POST",
        "/indexes/nope/fields",
        Some(json!({})),
    )
    .await;
    assert_eq!((s, &missing["code"]), (s1, &one["code"]));
}
