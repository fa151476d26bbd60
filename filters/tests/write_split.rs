//! The write-path splitter as a client and the nodes see it: formats, primary keys, every
//! rejection with Meilisearch's code and message, the `_miroir_shard` splice, and a property
//! test against a naive reference (parse everything, route by `canonical_key`).

use std::collections::BTreeMap;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden::shard_value;
use miroir_filters::routing::{canonical_key, shard_for_key, ShardId};
use miroir_filters::write::{split, split_ids, PayloadFormat, Split, SplitInput};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const CSV: PayloadFormat = PayloadFormat::Csv { delimiter: b',' };

fn input<'a>(body: &'a [u8], format: PayloadFormat, pk: Option<&'a str>) -> SplitInput<'a> {
    SplitInput {
        body,
        format,
        index_primary_key: pk,
        param_primary_key: None,
        shards: 8,
    }
}

fn ok(body: &str, format: PayloadFormat, pk: Option<&'static str>) -> Split {
    split(input(body.as_bytes(), format, pk)).unwrap()
}

fn err(body: &str, format: PayloadFormat, pk: Option<&'static str>) -> MiroirError {
    split(input(body.as_bytes(), format, pk)).unwrap_err()
}

fn all_shards(split: &Split) -> Vec<ShardId> {
    (0..split.shards()).map(ShardId).collect()
}

fn node_bytes(split: &Split, shards: &[ShardId]) -> Vec<u8> {
    let (chunks, len) = split.node_body(shards);
    let bytes = chunks.concat();
    assert_eq!(bytes.len(), len, "Content-Length must match the chunks");
    bytes
}

/// Every document a node body holds, parsed.
fn node_docs(split: &Split, shards: &[ShardId]) -> Vec<Value> {
    let bytes = node_bytes(split, shards);
    match split.format() {
        PayloadFormat::Json => serde_json::from_slice::<Vec<Value>>(&bytes).unwrap(),
        PayloadFormat::Ndjson => serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect(),
        PayloadFormat::Csv { .. } => panic!("parse CSV node bodies with csv_rows"),
    }
}

fn shard_of(id: &Value) -> u32 {
    shard_for_key(&canonical_key(id).unwrap(), 8).0
}

/// The `_miroir_shard` value of `shard`.
fn tag(shard: u32) -> String {
    shard_value(ShardId(shard))
}

fn with_shard(mut doc: Value, shard: u32) -> Value {
    doc.as_object_mut()
        .unwrap()
        .insert("_miroir_shard".into(), json!(tag(shard)));
    doc
}

// ---- formats ----------------------------------------------------------------------------

#[test]
fn json_array_documents_reach_their_shards_tagged() {
    let docs = json!([
        {"id": 1, "title": "a"},
        {"id": "sku-2", "tags": ["x", "y"]},
        {"id": 3, "nested": {"id": 99}},
        {"id": -4},
    ]);
    let split = ok(&docs.to_string(), PayloadFormat::Json, Some("id"));
    assert_eq!(split.documents, 4);
    assert_eq!(split.primary_key, "id");
    assert!(!split.primary_key_inferred);
    let total: usize = all_shards(&split)
        .iter()
        .map(|s| split.shard_docs(*s))
        .sum();
    assert_eq!(total, 4);
    for doc in docs.as_array().unwrap() {
        let shard = shard_of(&doc["id"]);
        let got = node_docs(&split, &[ShardId(shard)]);
        assert!(
            got.contains(&with_shard(doc.clone(), shard)),
            "{doc} not in shard {shard}"
        );
    }
}

#[test]
fn a_single_json_object_is_one_document() {
    let split = ok(
        r#" {"id": "one", "a": 1} "#,
        PayloadFormat::Json,
        Some("id"),
    );
    assert_eq!(split.documents, 1);
    let docs = node_docs(&split, &all_shards(&split));
    assert_eq!(
        docs,
        [with_shard(
            json!({"id": "one", "a": 1}),
            shard_of(&json!("one"))
        )]
    );
}

#[test]
fn ndjson_documents_are_split_line_by_line() {
    let body = "{\"id\":1}\n\n{\"id\":2,\"a\":\"}\"}\r\n  {\"id\":3}";
    let split = ok(body, PayloadFormat::Ndjson, Some("id"));
    assert_eq!(split.documents, 3);
    let bytes = node_bytes(&split, &all_shards(&split));
    assert!(bytes.ends_with(b"}\n"));
    let mut ids: Vec<i64> = node_docs(&split, &all_shards(&split))
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
}

#[test]
fn csv_rows_keep_their_bytes_and_gain_a_shard_column() {
    let body = "id:number,title,price:number\n1,\"a, \"\"quoted\"\"\nline\",1.5\r\n2,b,\n";
    let split = ok(body, CSV, None);
    assert_eq!(split.primary_key, "id");
    assert!(split.primary_key_inferred);
    let text = String::from_utf8(node_bytes(&split, &all_shards(&split))).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    assert_eq!(header, "id:number,title,price:number,_miroir_shard");
    let s1 = tag(shard_of(&json!(1)));
    let s2 = tag(shard_of(&json!(2)));
    assert!(
        rows.contains(&format!("1,\"a, \"\"quoted\"\"\nline\",1.5,{s1}\n")),
        "{rows}"
    );
    assert!(rows.contains(&format!("2,b,,{s2}\n")), "{rows}");
}

#[test]
fn untyped_csv_gets_a_shard_column_and_keeps_its_delimiter() {
    let body = "sku;name\nA-1;x\nB-2;y";
    let split = split(SplitInput {
        body: body.as_bytes(),
        format: PayloadFormat::Csv { delimiter: b';' },
        index_primary_key: None,
        param_primary_key: Some("sku"),
        shards: 8,
    })
    .unwrap();
    let text = String::from_utf8(node_bytes(&split, &all_shards(&split))).unwrap();
    assert!(text.starts_with("sku;name;_miroir_shard\n"), "{text}");
    assert!(
        text.contains(&format!("B-2;y;{}\n", tag(shard_of(&json!("B-2"))))),
        "{text}"
    );
    assert_eq!(split.format(), PayloadFormat::Csv { delimiter: b';' });
}

#[test]
fn node_body_holds_exactly_the_listed_shards() {
    let docs: Vec<Value> = (0..50).map(|i| json!({"id": i})).collect();
    let split = ok(
        &Value::from(docs.clone()).to_string(),
        PayloadFormat::Json,
        Some("id"),
    );
    let mine = [ShardId(1), ShardId(6)];
    let got = node_docs(&split, &mine);
    assert_eq!(got.len(), split.node_docs(&mine));
    assert!(got
        .iter()
        .all(|d| [tag(1), tag(6)].contains(&d["_miroir_shard"].as_str().unwrap().to_owned())));
    assert_eq!(node_bytes(&split, &[]), b"[]");
    assert_eq!(node_bytes(&split, &[ShardId(99)]), b"[]");
}

// ---- the splice -------------------------------------------------------------------------

#[test]
fn splice_survives_whitespace_nesting_and_escaped_braces() {
    let body = "[ \n { \"id\" : 7 ,\t\"s\" : \"a}b\\\"}\\\\\" , \"n\" : { \"x\" : [ { } , \"}\" ] } \n } , {\"id\":8,\"e\":{}}\n]";
    let split = ok(body, PayloadFormat::Json, Some("id"));
    let bytes = node_bytes(&split, &all_shards(&split));
    let text = String::from_utf8(bytes).unwrap();
    let s7 = tag(shard_of(&json!(7)));
    // The original bytes stay, the tag replaces the closing brace.
    assert!(
        text.contains(&format!(
            "{{ \"id\" : 7 ,\t\"s\" : \"a}}b\\\"}}\\\\\" , \"n\" : {{ \"x\" : [ {{ }} , \"}}\" ] }} \n ,\"_miroir_shard\":\"{s7}\"}}"
        )),
        "{text}"
    );
    let docs = node_docs(&split, &all_shards(&split));
    let seven = docs.iter().find(|d| d["id"] == 7).unwrap();
    assert_eq!(seven["s"], "a}b\"}\\");
    assert_eq!(
        seven.as_object().unwrap().keys().next_back().unwrap(),
        "_miroir_shard"
    );
}

#[test]
fn integer_and_string_ids_hash_like_canonical_key() {
    let split = ok(
        r#"[{"id":42},{"id":"42"},{"id":-7},{"id":"\u0041b"}]"#,
        PayloadFormat::Json,
        Some("id"),
    );
    let s42 = shard_for_key("42", 8);
    assert_eq!(
        split.shard_docs(s42),
        2 + usize::from(shard_for_key("-7", 8) == s42) + usize::from(shard_for_key("Ab", 8) == s42)
    );
    let docs = node_docs(&split, &all_shards(&split));
    for doc in docs {
        let key = canonical_key(&doc["id"]).unwrap();
        assert_eq!(doc["_miroir_shard"], tag(shard_for_key(&key, 8).0), "{doc}");
    }
}

#[test]
fn nested_primary_keys_route_by_the_nested_value() {
    let body = r#"[{"product":{"sku":"abc","n":1}},{"product.sku":"def"}]"#;
    let split = ok(body, PayloadFormat::Json, Some("product.sku"));
    let docs = node_docs(&split, &all_shards(&split));
    assert_eq!(docs.len(), 2);
    for doc in docs {
        let id = doc
            .pointer("/product/sku")
            .or_else(|| doc.get("product.sku"))
            .unwrap();
        assert_eq!(doc["_miroir_shard"], tag(shard_of(id)));
    }
    let e = err(
        r#"[{"product":{"sku":"a"},"product.sku":"b"}]"#,
        PayloadFormat::Json,
        Some("product.sku"),
    );
    assert_eq!(e.code, Code::InvalidDocumentId);
    assert!(e
        .message
        .starts_with("Document have too many matching `product.sku` attribute"));
}

// ---- primary key ------------------------------------------------------------------------

#[test]
fn primary_key_is_inferred_from_the_first_document() {
    let split = ok(
        r#"[{"title":"a","productId":1},{"productId":2}]"#,
        PayloadFormat::Json,
        None,
    );
    assert_eq!(split.primary_key, "productId");
    assert!(split.primary_key_inferred);
    assert_eq!(split.documents, 2);
}

#[test]
fn inference_without_candidate_fails() {
    let e = err(r#"[{"title":"a"}]"#, PayloadFormat::Json, None);
    assert_eq!(e.code, Code::IndexPrimaryKeyNoCandidateFound);
    assert_eq!(e.status(), 400);
    assert_eq!(e.message, "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.");
    assert_eq!(
        err("[]", PayloadFormat::Json, None).code,
        Code::IndexPrimaryKeyNoCandidateFound
    );
    assert_eq!(ok("[]", PayloadFormat::Json, Some("id")).documents, 0);
}

#[test]
fn inference_with_several_candidates_fails() {
    let e = err(r#"{"id":1,"userId":2}"#, PayloadFormat::Ndjson, None);
    assert_eq!(e.code, Code::IndexPrimaryKeyMultipleCandidatesFound);
    assert_eq!(e.message, "The primary key inference failed as the engine found 2 fields ending with `id` in their names: 'id' and 'userId'. Please specify the primary key manually using the `primaryKey` query parameter.");
    let e = err("kid,uid\n1,2\n", CSV, None);
    assert_eq!(e.code, Code::IndexPrimaryKeyMultipleCandidatesFound);
}

#[test]
fn a_primary_key_parameter_must_match_the_index() {
    let e = split(SplitInput {
        body: br#"[{"id":1,"sku":"a"}]"#,
        format: PayloadFormat::Json,
        index_primary_key: Some("id"),
        param_primary_key: Some("sku"),
        shards: 8,
    })
    .unwrap_err();
    assert_eq!(e.code, Code::IndexPrimaryKeyAlreadyExists);
    assert_eq!(e.message, "Index already has a primary key: `id`.");
}

// ---- rejections -------------------------------------------------------------------------

#[test]
fn an_empty_body_is_a_missing_payload() {
    for (format, name) in [
        (PayloadFormat::Json, "json"),
        (PayloadFormat::Ndjson, "ndjson"),
        (CSV, "csv"),
    ] {
        let e = err("", format, Some("id"));
        assert_eq!(e.code, Code::MissingPayload);
        assert_eq!(e.message, format!("A {name} payload is missing."));
    }
}

#[test]
fn malformed_json_reports_serde_positions() {
    let e = err("[{\"id\":1},\n{\"id\":}]", PayloadFormat::Json, Some("id"));
    assert_eq!(e.code, Code::MalformedPayload);
    assert_eq!(e.message, "The `json` payload provided is malformed. `Couldn't serialize document value: expected value at line 2 column 7`.");
    let e = err(r#"{"id":1} x"#, PayloadFormat::Json, Some("id"));
    assert_eq!(e.message, "The `json` payload provided is malformed. `Couldn't serialize document value: trailing characters at line 1 column 10`.");
    // Meilisearch never reads past the array's closing bracket.
    assert_eq!(
        ok(r#"[{"id":1}] x"#, PayloadFormat::Json, Some("id")).documents,
        1
    );
}

#[test]
fn documents_that_are_not_objects_are_malformed() {
    let expected =
        "Couldn't serialize document value: data are neither an object nor a list of objects";
    for body in ["1", "\"x\"", "[{\"id\":1}, 2]", "[[]]", "null"] {
        let e = err(body, PayloadFormat::Json, Some("id"));
        assert_eq!(e.code, Code::MalformedPayload, "{body}");
        assert!(e.message.contains(expected), "{body}: {}", e.message);
    }
    let e = err("{\"id\":1}\n[1]", PayloadFormat::Ndjson, Some("id"));
    assert_eq!(e.code, Code::MalformedPayload);
    assert!(e
        .message
        .starts_with("The `ndjson` payload provided is malformed."));
}

#[test]
fn malformed_ndjson_counts_lines_from_the_start_of_the_body() {
    let e = err(
        "{\"id\":1}\n{\"id\":2}\n{\"id\" 3}\n",
        PayloadFormat::Ndjson,
        Some("id"),
    );
    assert_eq!(e.code, Code::MalformedPayload);
    assert_eq!(e.message, "The `ndjson` payload provided is malformed. `Couldn't serialize document value: expected `:` at line 3 column 7`.");
}

#[test]
fn malformed_csv_uses_meilisearch_messages() {
    let e = err("id,n:number\n1,abc\n", CSV, None);
    assert_eq!(e.code, Code::MalformedPayload);
    assert_eq!(e.message, "The `csv` payload provided is malformed: `Error parsing number \"abc\" at line 1: invalid float literal`.");
    let e = err("id,b:boolean\n1,true\n2,yes\n", CSV, None);
    assert_eq!(e.message, "The `csv` payload provided is malformed: `Error parsing boolean \"yes\" at line 2: provided string was not `true` or `false``.");
    let e = err("id,a\n1,2,3\n", CSV, None);
    assert_eq!(e.code, Code::MalformedPayload);
    assert!(
        e.message
            .contains("found record with 3 fields, but the previous record has 2 fields"),
        "{}",
        e.message
    );
}

#[test]
fn a_document_without_its_id_is_rejected_with_the_document() {
    let e = err(
        r#"[{"id":1},{"title":"x","n":[1]}]"#,
        PayloadFormat::Json,
        Some("id"),
    );
    assert_eq!(e.code, Code::MissingDocumentId);
    assert_eq!(
        e.message,
        r#"Document doesn't have a `id` attribute: `{"title":"x","n":[1]}`."#
    );
    let e = err("title,n:number\nx,1\n", CSV, Some("id"));
    assert_eq!(e.code, Code::MissingDocumentId);
    assert_eq!(
        e.message,
        r#"Document doesn't have a `id` attribute: `{"title":"x","n":1}`."#
    );
}

#[test]
fn invalid_ids_are_rejected() {
    let long = format!("\"{}\"", "a".repeat(512));
    for (id, shown) in [
        ("1.5", "1.5"),
        ("true", "true"),
        ("null", "null"),
        ("\"a b\"", "\"a b\""),
        ("\"\"", "\"\""),
        ("[1]", "[1]"),
        (long.as_str(), long.as_str()),
    ] {
        let e = err(
            &format!("[{{\"id\":{id}}}]"),
            PayloadFormat::Json,
            Some("id"),
        );
        assert_eq!(e.code, Code::InvalidDocumentId, "{id}");
        assert_eq!(e.message, format!("Document identifier `{shown}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."));
    }
    let e = err("id:number,a\n1.5,x\n", CSV, None);
    assert_eq!(e.code, Code::InvalidDocumentId);
    assert!(e
        .message
        .starts_with("Document identifier `1.5` is invalid."));
    assert_eq!(err("id,a\n,x\n", CSV, None).code, Code::InvalidDocumentId);
}

#[test]
fn reserved_fields_are_refused() {
    let e = err(
        r#"[{"id":1,"_miroir_shard":3}]"#,
        PayloadFormat::Json,
        Some("id"),
    );
    assert_eq!(e.code, Code::ReservedField);
    assert_eq!(e.status(), 400);
    assert!(e.message.contains("`_miroir_shard`"));
    assert_eq!(
        err("id,_miroir_x\n1,2\n", CSV, None).code,
        Code::ReservedField
    );
    // Only top-level fields are Miroir's.
    assert_eq!(
        ok(
            r#"[{"id":1,"a":{"_miroir_x":1}}]"#,
            PayloadFormat::Json,
            Some("id")
        )
        .documents,
        1
    );
}

#[test]
fn the_first_document_error_wins_but_malformed_payload_wins_over_all() {
    let e = err(
        r#"[{"id":1},{"a":1},{"id":1.5}]"#,
        PayloadFormat::Json,
        Some("id"),
    );
    assert_eq!(e.code, Code::MissingDocumentId);
    let e = err(
        r#"[{"id":1.5},{"a":1},{"id":1}]"#,
        PayloadFormat::Json,
        Some("id"),
    );
    assert_eq!(e.code, Code::InvalidDocumentId);
    // Meilisearch checks the payload's syntax before any document.
    let e = err("[{\"a\":1},{\"id\":1,]", PayloadFormat::Json, Some("id"));
    assert_eq!(e.code, Code::MalformedPayload);
    let e = err("{\"a\":1}\n{\"id\":", PayloadFormat::Ndjson, Some("id"));
    assert_eq!(e.code, Code::MalformedPayload);
    let e = err("id,n:number\n,1\n2,x\n", CSV, None);
    assert_eq!(e.code, Code::MalformedPayload);
    let e = split(SplitInput {
        body: b"[{\"id\":1},",
        format: PayloadFormat::Json,
        index_primary_key: Some("id"),
        param_primary_key: Some("sku"),
        shards: 8,
    })
    .unwrap_err();
    assert_eq!(e.code, Code::MalformedPayload);
}

// ---- delete-batch -----------------------------------------------------------------------

#[test]
fn delete_batch_ids_are_grouped_by_shard() {
    let by_shard = split_ids(br#"[1, "1", "abc", 2.5, true]"#, 8).unwrap();
    assert_eq!(by_shard.values().map(Vec::len).sum::<usize>(), 5);
    assert!(by_shard[&shard_for_key("1", 8)].starts_with(&[json!(1), json!("1")]));
    assert!(by_shard[&shard_for_key("abc", 8)].contains(&json!("abc")));
    assert!(by_shard[&shard_for_key("2.5", 8)].contains(&json!(2.5)));
}

#[test]
fn delete_batch_rejects_bodies_like_meilisearch() {
    let e = split_ids(b"", 8).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (Code::MissingPayload, "A json payload is missing.")
    );
    let e = split_ids(b"[1,", 8).unwrap_err();
    assert_eq!(e.code, Code::MalformedPayload);
    assert_eq!(
        e.message,
        "The json payload provided is malformed. `EOF while parsing a value at line 1 column 3`."
    );
    let e = split_ids(br#"{"ids":[1]}"#, 8).unwrap_err();
    assert_eq!(e.code, Code::BadRequest);
    assert!(
        e.message
            .starts_with("Json deserialize error: invalid type: map"),
        "{}",
        e.message
    );
}

// ---- property: the split equals a naive reference ----------------------------------------

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        ".{0,10}".prop_map(Value::from),
        "[{}\\[\\]\"\\\\,: \n]{0,6}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z}\"\\\\ ]{1,4}", inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9_-]{1,24}".prop_map(Value::from),
    ]
}

/// A document: its id somewhere among fields whose names cannot end with `id` (no `i`), so the
/// primary key can also be inferred.
fn document() -> impl Strategy<Value = Value> {
    (
        id(),
        prop::collection::vec(("[a-hj-z]{1,6}", value()), 0..5),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(id, fields, at)| {
            let mut fields: Vec<(String, Value)> = fields;
            fields.retain(|(name, _)| name != "id");
            fields.dedup_by(|a, b| a.0 == b.0);
            let at = at.index(fields.len() + 1);
            fields.insert(at, ("id".to_owned(), id));
            let mut map = Map::new();
            for (name, v) in fields {
                map.entry(name).or_insert(v);
            }
            Value::Object(map)
        })
}

/// Serializes one document in one of several layouts.
fn render(doc: &Value, style: u8) -> String {
    match style % 3 {
        0 => doc.to_string(),
        1 => serde_json::to_string_pretty(doc).unwrap(),
        // A raw line break only ever appears between tokens.
        _ => serde_json::to_string_pretty(doc)
            .unwrap()
            .replace('\n', " \r\n\t"),
    }
}

/// Splits the shards among `nodes` nodes, round-robin.
fn nodes(shards: u32, nodes: u32) -> Vec<Vec<ShardId>> {
    (0..nodes)
        .map(|n| {
            (0..shards)
                .filter(|s| s % nodes == n)
                .map(ShardId)
                .collect()
        })
        .collect()
}

fn expected_shard(doc: &Value, shards: u32) -> u32 {
    shard_for_key(&canonical_key(&doc["id"]).unwrap(), shards).0
}

fn check_json_split(
    split: &Split,
    docs: &[Value],
    shards: u32,
    node_count: u32,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(split.documents, docs.len());
    let mut seen = 0;
    for node in nodes(shards, node_count) {
        let got = node_docs(split, &node);
        // The reference: the input documents of this node's shards, shard by shard, in order.
        let want: Vec<Value> = node
            .iter()
            .flat_map(|s| {
                docs.iter()
                    .filter(move |d| expected_shard(d, shards) == s.0)
                    .map(move |d| with_shard(d.clone(), s.0))
            })
            .collect();
        for doc in &got {
            let last = doc.as_object().and_then(|o| o.keys().next_back().cloned());
            prop_assert_eq!(last.as_deref(), Some("_miroir_shard"));
        }
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(got.len(), split.node_docs(&node));
        seen += got.len();
    }
    prop_assert_eq!(seen, docs.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn json_split_matches_the_reference(
        docs in prop::collection::vec(document(), 0..30),
        styles in prop::collection::vec(any::<u8>(), 30),
        shards in 1u32..12,
        node_count in 1u32..4,
        infer in any::<bool>(),
    ) {
        let mut body = String::from(" [\n");
        for (i, doc) in docs.iter().enumerate() {
            if i > 0 {
                body.push_str(if styles[i] % 2 == 0 { "," } else { " ,\n  " });
            }
            body.push_str(&render(doc, styles[i]));
        }
        body.push_str("\n] ");
        let pk = if infer { None } else { Some("id") };
        let result = split(SplitInput { body: body.as_bytes(), format: PayloadFormat::Json, index_primary_key: pk, param_primary_key: None, shards });
        if docs.is_empty() && infer {
            prop_assert_eq!(result.unwrap_err().code, Code::IndexPrimaryKeyNoCandidateFound);
            return Ok(());
        }
        let split = result.unwrap();
        prop_assert_eq!(split.primary_key_inferred, infer);
        check_json_split(&split, &docs, shards, node_count)?;
    }

    #[test]
    fn ndjson_split_matches_the_reference(
        docs in prop::collection::vec(document(), 1..30),
        styles in prop::collection::vec(any::<u8>(), 30),
        shards in 1u32..12,
        node_count in 1u32..4,
    ) {
        let mut body = String::new();
        for (i, doc) in docs.iter().enumerate() {
            body.push_str(&render(doc, styles[i]));
            body.push_str(if styles[i] % 2 == 0 { "\n" } else { "\r\n\n" });
        }
        let split = split(SplitInput { body: body.as_bytes(), format: PayloadFormat::Ndjson, index_primary_key: None, param_primary_key: Some("id"), shards }).unwrap();
        check_json_split(&split, &docs, shards, node_count)?;
    }

    #[test]
    fn csv_split_matches_the_reference(
        rows in prop::collection::vec((id(), prop::collection::vec("[a-z,;|\"\n\r é]{0,8}", 2)), 1..30),
        numeric_ids in any::<bool>(),
        delimiter in prop::sample::select(vec![b',', b';', b'|', b'\t']),
        shards in 1u32..12,
        node_count in 1u32..4,
    ) {
        // Typed numeric ids, or string ids in an untyped header.
        let ids: Vec<String> = rows.iter().map(|(id, _)| match (numeric_ids, id) {
            // Meilisearch reads a `:number` cell as an i64, else as a float (an invalid id).
            (true, Value::Number(n)) if n.is_i64() => n.to_string(),
            (true, _) => "17".to_owned(),
            (false, Value::String(s)) => s.clone(),
            (false, other) => format!("n{}", other.to_string().replace('-', "m")),
        }).collect();
        let header = [if numeric_ids { "id:number" } else { "id" }, "a", "b"];
        let mut writer = csv::WriterBuilder::new().delimiter(delimiter).from_writer(Vec::new());
        writer.write_record(header).unwrap();
        for (id, (_, cells)) in ids.iter().zip(&rows) {
            writer.write_record([id.as_str(), cells[0].as_str(), cells[1].as_str()]).unwrap();
        }
        let body = writer.into_inner().unwrap();
        let split = split(SplitInput { body: &body, format: PayloadFormat::Csv { delimiter }, index_primary_key: None, param_primary_key: None, shards }).unwrap();
        prop_assert_eq!(split.primary_key.as_str(), "id");
        prop_assert_eq!(split.documents, rows.len());

        let mut seen = 0;
        for node in nodes(shards, node_count) {
            let bytes = node_bytes(&split, &node);
            let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(bytes.as_slice());
            let got_header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
            prop_assert_eq!(got_header, [header[0], "a", "b", "_miroir_shard"]);
            let got: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
            let want: Vec<Vec<String>> = node.iter().flat_map(|s| {
                ids.iter().zip(&rows)
                    .filter(move |(id, _)| shard_for_key(id, shards) == *s)
                    .map(move |(id, (_, cells))| vec![id.clone(), cells[0].clone(), cells[1].clone(), tag(s.0)])
            }).collect();
            prop_assert_eq!(&got, &want);
            seen += got.len();
        }
        prop_assert_eq!(seen, rows.len());
    }

    #[test]
    fn delete_batch_ids_land_where_their_documents_do(
        ids in prop::collection::vec(id(), 0..40),
        shards in 1u32..12,
    ) {
        let body = serde_json::to_vec(&ids).unwrap();
        let by_shard: BTreeMap<ShardId, Vec<Value>> = split_ids(&body, shards).unwrap();
        let mut total = 0;
        for (shard, ids) in &by_shard {
            for id in ids {
                prop_assert_eq!(shard_for_key(&canonical_key(id).unwrap(), shards), *shard);
            }
            total += ids.len();
        }
        prop_assert_eq!(total, ids.len());
    }
}

// ---- Meilisearch's own test cases (crates/meilisearch/tests/documents) -------------------

#[test]
fn meilisearch_malformed_payload_cases() {
    let e = err(r#"[{"id": 1}, {id: 2}]"#, PayloadFormat::Json, None);
    assert_eq!(e.message, "The `json` payload provided is malformed. `Couldn't serialize document value: key must be a string at line 1 column 14`.");
    let e = err("{\"id\": 1}\n{id: 2}", PayloadFormat::Ndjson, None);
    assert_eq!(e.message, "The `ndjson` payload provided is malformed. `Couldn't serialize document value: key must be a string at line 2 column 2`.");
    let e = err(
        "id, content\n1234, hello, world\n12, hello world",
        CSV,
        None,
    );
    assert_eq!(e.message, "The `csv` payload provided is malformed: `CSV error: record 1 (line: 2, byte: 12): found record with 3 fields, but the previous record has 2 fields`.");
    let e = err("#id:number,a:boolean,b:number\n0,doggo,1", CSV, None);
    assert_eq!(e.message, "The `csv` payload provided is malformed: `Error parsing boolean \"doggo\" at line 1: provided string was not `true` or `false``.");
    let long = format!("\"{}m\"", "0123456789".repeat(10));
    let e = err(&long, PayloadFormat::Json, None);
    assert_eq!(e.message, "The `json` payload provided is malformed. `Couldn't serialize document value: data are neither an object nor a list of objects`.");
}

#[test]
fn meilisearch_document_id_cases() {
    let e = err(
        r#"[{"id":"11","content":"foobar"}]"#,
        PayloadFormat::Json,
        Some("docid"),
    );
    assert_eq!(
        e.message,
        r#"Document doesn't have a `docid` attribute: `{"id":"11","content":"foobar"}`."#
    );
    let e = err(
        r#"[{"id":"foo & bar","content":"foobar"}]"#,
        PayloadFormat::Json,
        Some("id"),
    );
    assert_eq!(e.message, "Document identifier `\"foo & bar\"` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.");
    let e = err(
        r#"[{"id":1,"object_id":2,"uid":3}]"#,
        PayloadFormat::Json,
        None,
    );
    assert_eq!(e.message, "The primary key inference failed as the engine found 3 fields ending with `id` in their names: 'id' and 'object_id'. Please specify the primary key manually using the `primaryKey` query parameter.");
}
