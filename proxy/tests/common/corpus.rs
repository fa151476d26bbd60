//! The generated corpus and query set that search tests run both through Miroir and against
//! one node holding everything.

use serde_json::{json, Value};

pub const WORDS: [&str; 12] = [
    "red", "blue", "green", "river", "mountain", "city", "night", "storm", "silver", "garden",
    "ocean", "winter",
];
pub const GENRES: [&str; 5] = ["drama", "comedy", "action", "horror", "documentary"];

/// `n` documents with text, numbers, a category and some missing fields.
pub fn corpus(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let w = |k: usize| WORDS[(i * 7 + k * 5 + i / 3) % WORDS.len()];
            let mut doc = json!({
                "id": i,
                "title": format!("{} {} {}", w(0), w(1), w(2)),
                "overview": format!("a story of {} and {} in the {}", w(3), w(4), w(5)),
                "genre": GENRES[i % GENRES.len()],
                "year": 1980 + (i * 13) % 40,
                "rating": ((i * 37) % 100) as f64 / 10.0,
            });
            if i % 11 == 0 {
                if let Some(o) = doc.as_object_mut() {
                    o.remove("year");
                }
            }
            doc
        })
        .collect()
}

/// Text, typos and prefixes, filters (string and array forms), sorts, facets and both
/// pagination modes.
pub fn queries() -> Vec<Value> {
    let mut out = Vec::new();
    for (i, w) in WORDS.iter().enumerate() {
        out.push(json!({"q": w, "showRankingScore": true, "limit": 15}));
        out.push(json!({"q": format!("{w} {}", WORDS[(i + 3) % WORDS.len()]), "showRankingScore": true, "facets": ["genre", "year"], "limit": 10, "offset": i % 4}));
        out.push(json!({"q": &w[..3], "showRankingScore": true, "filter": format!("genre = {}", GENRES[i % 5]), "limit": 20}));
        out.push(json!({"q": w, "showRankingScore": true, "sort": ["year:desc"], "limit": 10}));
        out.push(json!({"q": "", "showRankingScore": true, "sort": ["rating:asc", "title:asc"], "filter": "year > 1990", "hitsPerPage": 7, "page": 1 + i % 3, "facets": ["genre"]}));
    }
    // Facet counts over every filterable attribute of the search tests' settings, named:
    // Meilisearch 1.50 takes a string filterable rule literally, so `facets: ["*"]` matches
    // none of `["genre", "year", "rating"]` and is rejected.
    out.push(
        json!({"q": "storm", "showRankingScore": true, "facets": ["genre", "year", "rating"]}),
    );
    out.push(json!({"q": "", "showRankingScore": true, "filter": ["genre = drama", ["year < 1990", "year > 2010"]]}));
    out
}

/// `displayedAttributes` hiding the sort fields `year` and `rating` (and `overview`).
pub const DISPLAYED: [&str; 3] = ["id", "title", "genre"];

/// Ranking rules ending with a custom rule on a hidden field.
pub fn ranking_rules_with_hidden_custom_rule() -> Value {
    json!([
        "words",
        "typo",
        "proximity",
        "attributeRank",
        "sort",
        "wordPosition",
        "exactness",
        "rating:desc"
    ])
}

/// Searches sorting on hidden fields (alone, before and after a displayed one), highlighting
/// and retrieving hidden fields, faceting on one.
pub fn displayed_queries() -> Vec<Value> {
    let mut out = vec![
        json!({"q": "", "sort": ["year:desc", "title:asc"], "limit": 40}),
        json!({"q": "river", "sort": ["rating:asc"], "limit": 20, "offset": 5}),
        json!({"q": "storm night", "limit": 30}),
        json!({"q": "", "sort": ["title:asc", "year:asc"], "hitsPerPage": 15, "page": 2, "facets": ["genre", "year"]}),
        json!({"q": "red", "attributesToRetrieve": ["title", "year", "overview"], "attributesToHighlight": ["*"], "showMatchesPosition": true, "sort": ["year:asc"]}),
        json!({"q": "gar", "filter": "year > 1995", "sort": ["rating:desc", "title:asc"], "limit": 25}),
        json!({"q": "", "attributesToRetrieve": ["*"], "sort": ["rating:asc", "year:desc"], "limit": 50, "offset": 30}),
    ];
    for w in ["green", "ocean winter", "silver"] {
        out.push(json!({"q": w, "sort": ["year:asc"], "limit": 25}));
    }
    for q in &mut out {
        q["showRankingScore"] = json!(true);
        q["showRankingScoreDetails"] = json!(true);
    }
    out
}

/// Hits grouped by what orders them (score, the query's sort values and the custom rule's
/// `rating`, read from the corpus since the answers hide them): [(key, {hit as returned})].
/// Hits in one group are ties, which one node orders by internal id and a merge by shard.
pub fn rank_groups(
    resp: &Value,
    docs: &[Value],
    query: &Value,
) -> Vec<(String, std::collections::BTreeSet<String>)> {
    let mut fields: Vec<String> = query["sort"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str()?.split(':').next().map(str::to_owned))
        .collect();
    fields.push("rating".into());
    let mut groups: Vec<(String, std::collections::BTreeSet<String>)> = Vec::new();
    for hit in resp["hits"].as_array().into_iter().flatten() {
        let doc = hit["id"]
            .as_u64()
            .and_then(|i| docs.get(i as usize))
            .cloned()
            .unwrap_or(Value::Null);
        let mut key = format!("{:.9}", hit["_rankingScore"].as_f64().unwrap_or(-1.0));
        for f in &fields {
            key.push_str(&format!("|{}", doc[f.as_str()]));
        }
        let shown = canonical(hit).to_string();
        match groups.last_mut() {
            Some((k, hits)) if *k == key => {
                hits.insert(shown);
            }
            _ => groups.push((key, std::collections::BTreeSet::from([shown]))),
        }
    }
    groups
}

/// `v` with object keys sorted: each node lists a document's fields in the order they first
/// appeared on that node (Meilisearch's fields-ids map), which no merge can change.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let sorted: std::collections::BTreeMap<&String, Value> =
                o.iter().map(|(k, v)| (k, canonical(v))).collect();
            json!(sorted)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}
