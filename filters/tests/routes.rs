//! The route table against Meilisearch's route list (§2 of the API reference), plus the
//! matching rules: ids, percent-encoding, trailing slashes, query strings, unknown routes.

use std::collections::BTreeSet;

use miroir_filters::routes::{classify, percent_decode, RouteClass, ROUTES};

const SETTINGS_PUT: [&str; 17] = [
    "filterable-attributes",
    "sortable-attributes",
    "displayed-attributes",
    "searchable-attributes",
    "stop-words",
    "non-separator-tokens",
    "separator-tokens",
    "dictionary",
    "synonyms",
    "distinct-attribute",
    "proximity-precision",
    "localized-attributes",
    "ranking-rules",
    "search-cutoff-ms",
    "facet-search",
    "prefix-search",
    "foreign-keys",
];
const SETTINGS_PATCH: [&str; 5] = [
    "typo-tolerance",
    "faceting",
    "pagination",
    "embedders",
    "chat",
];

/// Every method and path of the reference list, with concrete values, and the class each
/// must get.
fn reference_routes() -> Vec<(&'static str, String, RouteClass)> {
    use RouteClass::*;
    let fixed: &[(&str, &str, RouteClass)] = &[
        ("GET", "/", Miroir),
        ("GET", "/health", Miroir),
        ("GET", "/version", PassOne),
        ("GET", "/stats", FanOutMerge),
        ("GET", "/indexes", PassOne),
        ("POST", "/indexes", Broadcast),
        ("GET", "/indexes/movies", PassOne),
        ("PATCH", "/indexes/movies", Broadcast),
        ("DELETE", "/indexes/movies", Broadcast),
        ("GET", "/indexes/movies/stats", FanOutMerge),
        ("POST", "/indexes/movies/fields", FanOutMerge),
        ("POST", "/indexes/movies/compact", Broadcast),
        ("GET", "/indexes/movies/documents", FanOutMerge),
        ("POST", "/indexes/movies/documents/fetch", FanOutMerge),
        ("POST", "/indexes/movies/documents", ShardRouted),
        ("PUT", "/indexes/movies/documents", ShardRouted),
        ("DELETE", "/indexes/movies/documents", Broadcast),
        ("GET", "/indexes/movies/documents/42", ShardRouted),
        ("DELETE", "/indexes/movies/documents/42", ShardRouted),
        (
            "POST",
            "/indexes/movies/documents/delete-batch",
            ShardRouted,
        ),
        ("POST", "/indexes/movies/documents/delete", Broadcast),
        ("POST", "/indexes/movies/documents/edit", Broadcast),
        ("GET", "/indexes/movies/search", FanOutMerge),
        ("POST", "/indexes/movies/search", FanOutMerge),
        ("POST", "/indexes/movies/facet-search", FanOutMerge),
        ("GET", "/indexes/movies/similar", FanOutMerge),
        ("POST", "/indexes/movies/similar", FanOutMerge),
        ("POST", "/multi-search", FanOutMerge),
        ("GET", "/indexes/movies/settings", PassOne),
        ("PATCH", "/indexes/movies/settings", Broadcast),
        ("DELETE", "/indexes/movies/settings", Broadcast),
        ("GET", "/tasks", Miroir),
        ("DELETE", "/tasks", Miroir),
        ("POST", "/tasks/cancel", Miroir),
        ("GET", "/tasks/17", Miroir),
        ("GET", "/tasks/17/documents", Miroir),
        ("POST", "/tasks/compact", Broadcast),
        ("GET", "/batches", Miroir),
        ("GET", "/batches/3", Miroir),
        ("POST", "/keys", Broadcast),
        ("GET", "/keys", PassOne),
        ("GET", "/keys/6062abda-a5aa-4414-ac91-ecd7944c0f8d", PassOne),
        (
            "PATCH",
            "/keys/6062abda-a5aa-4414-ac91-ecd7944c0f8d",
            Broadcast,
        ),
        (
            "DELETE",
            "/keys/6062abda-a5aa-4414-ac91-ecd7944c0f8d",
            Broadcast,
        ),
        ("POST", "/dumps", Broadcast),
        ("POST", "/snapshots", Broadcast),
        ("POST", "/swap-indexes", Broadcast),
        ("GET", "/experimental-features", PassOne),
        ("PATCH", "/experimental-features", Broadcast),
        ("POST", "/export", Unsupported),
        ("GET", "/network", Unsupported),
        ("PATCH", "/network", Unsupported),
        ("POST", "/network/control", Unsupported),
        ("GET", "/webhooks", Miroir),
        ("POST", "/webhooks", Miroir),
        (
            "GET",
            "/webhooks/627ea538-733d-4545-8d2d-03526eb381ce",
            Miroir,
        ),
        (
            "PATCH",
            "/webhooks/627ea538-733d-4545-8d2d-03526eb381ce",
            Miroir,
        ),
        (
            "DELETE",
            "/webhooks/627ea538-733d-4545-8d2d-03526eb381ce",
            Miroir,
        ),
        ("GET", "/metrics", Miroir),
        ("POST", "/logs/stream", Unsupported),
        ("DELETE", "/logs/stream", Unsupported),
        ("POST", "/logs/stderr", Unsupported),
        ("GET", "/chats", Unsupported),
        ("GET", "/chats/support", Unsupported),
        ("DELETE", "/chats/support", Unsupported),
        ("GET", "/chats/support/settings", Unsupported),
        ("PATCH", "/chats/support/settings", Unsupported),
        ("DELETE", "/chats/support/settings", Unsupported),
        ("POST", "/chats/support/chat/completions", Unsupported),
        ("POST", "/dynamic-search-rules", PassOne),
        ("DELETE", "/dynamic-search-rules", Broadcast),
        ("GET", "/dynamic-search-rules/promote-sale", PassOne),
        ("PATCH", "/dynamic-search-rules/promote-sale", Broadcast),
        ("DELETE", "/dynamic-search-rules/promote-sale", Broadcast),
        ("POST", "/render-template", PassOne),
    ];
    let mut all: Vec<_> = fixed
        .iter()
        .map(|&(m, p, c)| (m, p.to_owned(), c))
        .collect();
    for (verb, names) in [("PUT", &SETTINGS_PUT[..]), ("PATCH", &SETTINGS_PATCH[..])] {
        for name in names {
            let path = format!("/indexes/movies/settings/{name}");
            all.push(("GET", path.clone(), PassOne));
            all.push((verb, path.clone(), Broadcast));
            all.push(("DELETE", path, Broadcast));
        }
    }
    all
}

#[test]
fn every_meilisearch_route_is_classified_as_designed() {
    let reference = reference_routes();
    assert_eq!(reference.len(), 75 + 22 * 3);
    for (method, path, class) in &reference {
        let found = classify(method, path).unwrap_or_else(|| panic!("{method} {path} not found"));
        assert_eq!(
            found.spec.class, *class,
            "{method} {path} ({})",
            found.spec.name
        );
        assert_eq!(found.spec.method.as_str(), *method);
        if path.starts_with("/indexes/movies") {
            assert_eq!(found.index_uid, Some("movies"), "{method} {path}");
        } else {
            assert_eq!(found.index_uid, None, "{method} {path}");
        }
    }
}

#[test]
fn the_table_has_no_route_beyond_the_reference_but_miroirs_own() {
    let reference: BTreeSet<(String, String)> = reference_routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p))
        .collect();
    let matched: BTreeSet<&str> = reference
        .iter()
        .filter_map(|(m, p)| classify(m, p))
        .map(|r| r.spec.name)
        .collect();
    let unmatched: Vec<&str> = ROUTES
        .iter()
        .map(|r| r.name)
        .filter(|n| !matched.contains(n) && !n.starts_with("miroir."))
        .collect();
    assert!(
        unmatched.is_empty(),
        "rows no reference route reaches: {unmatched:?}"
    );
}

#[test]
fn route_names_are_unique_and_templates_never_hold_values() {
    let names: BTreeSet<&str> = ROUTES.iter().map(|r| r.name).collect();
    assert_eq!(names.len(), ROUTES.len());
    let rows: BTreeSet<(&str, &str)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str(), r.template))
        .collect();
    assert_eq!(
        rows.len(),
        ROUTES.len(),
        "a method and template appear twice"
    );
    for route in ROUTES {
        let params = route.template.matches('{').count();
        assert!(params <= 2, "{}", route.template);
        assert!(route.template.matches("{uid}").count() <= 1);
        assert!(!route.template.contains("movies"));
    }
}

#[test]
fn document_id_is_extracted() {
    let found = classify("GET", "/indexes/movies/documents/42").unwrap();
    assert_eq!(found.spec.name, "document.get");
    assert_eq!(found.spec.template, "/indexes/{uid}/documents/{id}");
    assert_eq!(found.index_uid, Some("movies"));
    assert_eq!(found.param, Some("42"));
}

#[test]
fn document_id_stays_encoded_until_decoded() {
    let found = classify("DELETE", "/indexes/movies/documents/a%2Fb%20c").unwrap();
    assert_eq!(found.param, Some("a%2Fb%20c"));
    assert_eq!(found.param_decoded().as_deref(), Some("a/b c"));
}

#[test]
fn percent_decode_handles_utf8_and_keeps_malformed_escapes_as_written() {
    assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
    assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
    assert!(matches!(
        percent_decode("plain"),
        Some(std::borrow::Cow::Borrowed("plain"))
    ));
    assert_eq!(percent_decode("bad%2").as_deref(), Some("bad%2"));
    assert_eq!(percent_decode("bad%zz").as_deref(), Some("bad%zz"));
    assert_eq!(percent_decode("%FF"), None);
}

#[test]
fn task_uid_and_key_are_extracted() {
    assert_eq!(classify("GET", "/tasks/17").unwrap().param, Some("17"));
    let key = classify("PATCH", "/keys/abc-def").unwrap();
    assert_eq!((key.spec.name, key.param), ("key.update", Some("abc-def")));
}

#[test]
fn trailing_slashes_and_query_strings_are_ignored() {
    let found = classify("GET", "/indexes/movies/search/?q=matrix&limit=5").unwrap();
    assert_eq!(found.spec.name, "search.get");
    assert_eq!(found.index_uid, Some("movies"));
    assert_eq!(
        classify("GET", "/indexes//").unwrap().spec.name,
        "indexes.list"
    );
    assert_eq!(classify("GET", "/?x=1").unwrap().spec.name, "root");
    assert_eq!(classify("GET", "/health?").unwrap().spec.name, "health");
}

#[test]
fn literal_document_routes_win_over_document_ids() {
    let batch = classify("POST", "/indexes/movies/documents/delete-batch").unwrap();
    assert_eq!(batch.spec.name, "documents.delete_batch");
    assert_eq!(batch.param, None);
    // A document may be called "fetch": GET is only defined for ids.
    let doc = classify("GET", "/indexes/movies/documents/fetch").unwrap();
    assert_eq!((doc.spec.name, doc.param), ("document.get", Some("fetch")));
}

#[test]
fn miroir_admin_tree_matches_any_method_and_depth() {
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let found = classify(method, "/_miroir/nodes/meili-0/drain").unwrap();
        assert_eq!(found.spec.class, RouteClass::Miroir);
        assert_eq!(found.param, Some("nodes/meili-0/drain"));
    }
    assert_eq!(
        classify("GET", "/_miroir/ready").unwrap().param,
        Some("ready")
    );
    assert_eq!(classify("GET", "/_miroir").unwrap().param, Some(""));
    assert_eq!(classify("GET", "/_miroirx"), None);
}

#[test]
fn class_spot_checks() {
    let class = |m, p| classify(m, p).map(|r| r.spec.class);
    assert_eq!(
        class("POST", "/indexes/movies/documents"),
        Some(RouteClass::ShardRouted)
    );
    assert_eq!(
        class("PUT", "/indexes/movies/settings/synonyms"),
        Some(RouteClass::Broadcast)
    );
    assert_eq!(
        class("PATCH", "/indexes/movies/settings/faceting"),
        Some(RouteClass::Broadcast)
    );
    assert_eq!(
        class("POST", "/multi-search"),
        Some(RouteClass::FanOutMerge)
    );
    assert_eq!(class("GET", "/tasks"), Some(RouteClass::Miroir));
    assert_eq!(class("POST", "/export"), Some(RouteClass::Unsupported));
}

#[test]
fn unknown_routes_and_wrong_verbs_are_not_classified() {
    assert_eq!(classify("GET", "/nope"), None);
    assert_eq!(classify("GET", "/indexes/movies/unknown"), None);
    assert_eq!(classify("GET", "/indexes/movies/documents/42/extra"), None);
    assert_eq!(classify("GET", "/indexes//search"), None);
    // Meilisearch's verb for these settings is PATCH, not PUT, and vice versa.
    assert_eq!(classify("PUT", "/indexes/movies/settings/faceting"), None);
    assert_eq!(classify("PATCH", "/indexes/movies/settings/synonyms"), None);
    assert_eq!(classify("HEAD", "/health"), None);
    assert_eq!(classify("get", "/health"), None);
    assert_eq!(classify("GET", "health"), None);
    assert_eq!(classify("GET", ""), None);
}
