//! The property Miroir relies on: a document's `_rankingScore` and `_rankingScoreDetails` depend
//! only on the document and the query, never on the other documents of the index. Also a
//! timing check on 10 000 documents.

mod common;

use std::time::Instant;

use common::index_with;
use meili_sim_engine::{search, IndexData, Settings};
use serde_json::{json, Value};

const WORDS: [&str; 24] = [
    "dragon", "train", "hidden", "world", "escape", "room", "captain", "marvel", "batman",
    "returns", "dark", "knight", "glass", "shazam", "red", "blue", "green", "yellow", "night",
    "kingdom", "secret", "garden", "silver", "river",
];

/// Deterministic pseudo-random generator (xorshift), so corpora are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn phrase(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| WORDS[self.pick(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn generated_docs(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let title_len = 2 + rng.pick(4);
            let overview_len = 5 + rng.pick(20);
            json!({
                "id": format!("g{i}"),
                "title": rng.phrase(title_len),
                "overview": rng.phrase(overview_len),
                "genre": WORDS[rng.pick(6)],
                "price": rng.pick(1000),
            })
        })
        .collect()
}

fn settings() -> Settings {
    Settings {
        searchable_attributes: Some(vec!["title".into(), "overview".into()]),
        filterable_attributes: vec!["genre".into(), "price".into()],
        sortable_attributes: ["price".to_string()].into_iter().collect(),
        ..Settings::default()
    }
}

fn probe_docs() -> Vec<Value> {
    vec![
        json!({"id": "p1", "title": "How to Train Your Dragon", "overview": "a hidden world of dragons", "genre": "dragon", "price": 10}),
        json!({"id": "p2", "title": "Dark Knight", "overview": "batman returns in the dark night", "genre": "dark", "price": 20}),
        json!({"id": "p3", "title": "Secret Garden", "overview": "silver river and a secret kingdom", "genre": "red", "price": 5}),
    ]
}

/// The probe documents alone, or surrounded by generated ones.
fn index(extra: usize) -> IndexData {
    let mut docs = generated_docs(extra / 2, 7);
    docs.extend(probe_docs());
    docs.extend(
        generated_docs(extra - extra / 2, 11)
            .into_iter()
            .map(|mut d| {
                if let Some(id) = d["id"].as_str().map(|s| format!("{s}b")) {
                    d["id"] = json!(id);
                }
                d
            }),
    );
    index_with("scores", settings(), Value::Array(docs))
}

fn scores_of(index: &IndexData, body: &Value) -> Vec<(String, Value, Value)> {
    let mut body = body.clone();
    body["showRankingScore"] = json!(true);
    body["showRankingScoreDetails"] = json!(true);
    body["limit"] = json!(1000);
    let r = search(index, &body, None).unwrap();
    r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["id"].as_str().is_some_and(|id| id.starts_with('p')))
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_owned(),
                h["_rankingScore"].clone(),
                h["_rankingScoreDetails"].clone(),
            )
        })
        .collect()
}

#[test]
fn ranking_score_and_details_do_not_depend_on_other_documents() {
    let small = index(0);
    let large = index(300);
    assert_eq!(small.docs.len(), 3);
    assert_eq!(large.docs.len(), 303);
    let queries = [
        json!({"q": "train dragon"}),
        json!({"q": "dragn"}),
        json!({"q": "dark knight returns"}),
        json!({"q": "secret kingdom", "matchingStrategy": "all"}),
        json!({"q": "silver rivr", "sort": ["price:asc"]}),
        json!({"q": "batman dragon garden"}),
        json!({"q": "hid"}),
        json!({"q": "world", "attributesToSearchOn": ["overview"]}),
        json!({"q": "river", "filter": "price < 100"}),
        json!({"sort": ["price:desc"]}),
    ];
    for q in &queries {
        let a = scores_of(&small, q);
        let mut b = scores_of(&large, q);
        // Order among probes may interleave with generated documents but not change.
        b.sort_by_key(|(id, _, _)| a.iter().position(|(x, _, _)| x == id));
        assert!(!a.is_empty(), "query {q} should match a probe document");
        assert_eq!(a, b, "scores differ for {q}");
    }
}

/// A random query over the probe vocabulary: 1-3 words, sometimes with a transposition typo,
/// a truncated last word, a sort or the `all` strategy.
fn random_query(rng: &mut Rng) -> Value {
    let probe_words = [
        "train", "dragon", "hidden", "world", "dark", "knight", "batman", "returns", "night",
        "secret", "garden", "silver", "river", "kingdom", "dragons",
    ];
    let n = 1 + rng.pick(3);
    let mut words: Vec<String> = (0..n)
        .map(|_| probe_words[rng.pick(probe_words.len())].to_owned())
        .collect();
    let last = words.len() - 1;
    match rng.pick(4) {
        0 => {
            let w = &mut words[last];
            let keep = 3.max(w.len() - rng.pick(3));
            w.truncate(keep);
        }
        1 => {
            let i = rng.pick(words.len());
            let mut chars: Vec<char> = words[i].chars().collect();
            let at = 1 + rng.pick(chars.len() - 2);
            chars.swap(at, at + 1);
            words[i] = chars.into_iter().collect();
        }
        _ => {}
    }
    let mut body = json!({"q": words.join(" ")});
    // Not `frequency`: it ranks by corpus statistics by design, in Meilisearch too.
    match rng.pick(4) {
        0 => body["matchingStrategy"] = json!("all"),
        1 => body["sort"] = json!(["price:desc"]),
        _ => {}
    }
    body
}

#[test]
fn random_queries_score_probes_identically_in_small_and_large_indexes() {
    let small = index(0);
    let large = index(300);
    let mut rng = Rng(2024);
    let mut compared = 0;
    for _ in 0..60 {
        let q = random_query(&mut rng);
        let a = scores_of(&small, &q);
        let mut b = scores_of(&large, &q);
        b.sort_by_key(|(id, _, _)| a.iter().position(|(x, _, _)| x == id));
        assert_eq!(a, b, "scores differ for {q}");
        compared += a.len();
    }
    assert!(
        compared > 30,
        "the random queries should hit probe documents ({compared})"
    );
}

/// Documents of random letters: a vocabulary of tens of thousands of words, as real corpora
/// have, so per-word typo matching is exercised.
fn random_word_docs(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng(seed);
    let word = |rng: &mut Rng| -> String {
        let len = 3 + rng.pick(8);
        (0..len)
            .map(|_| char::from(b'a' + rng.pick(26) as u8))
            .collect()
    };
    (0..n)
        .map(|i| {
            let title: Vec<String> = (0..4).map(|_| word(&mut rng)).collect();
            let body: Vec<String> = (0..12).map(|_| word(&mut rng)).collect();
            json!({"id": i, "title": title.join(" "), "overview": body.join(" "), "genre": "x", "price": i})
        })
        .collect()
}

/// Times are printed, not asserted: speed is a benchmark's business, and a shared machine
/// would make a bound flaky.
#[test]
fn large_vocabulary_search_answers() {
    let index = index_with(
        "vocab",
        settings(),
        Value::Array(random_word_docs(10_000, 9)),
    );
    let body = json!({"q": "dragon knights returning"});
    let _ = search(&index, &body, None).unwrap();
    let started = Instant::now();
    let r = search(&index, &body, None).unwrap();
    let elapsed = started.elapsed();
    println!("10 000 documents, ~160 000 distinct words: keyword search {elapsed:?}");
    assert!(r["hits"].is_array());
}

#[test]
fn search_over_ten_thousand_documents_counts_every_match() {
    let index = index_with("big", settings(), Value::Array(generated_docs(10_000, 42)));
    let body = json!({"q": "dragon knight", "facets": ["genre"], "filter": "price > 100"});
    let _ = search(&index, &body, None).unwrap();
    let started = Instant::now();
    let r = search(&index, &body, None).unwrap();
    let keyword = started.elapsed();
    let started = Instant::now();
    let p = search(&index, &json!({"sort": ["price:asc"], "limit": 5}), None).unwrap();
    let placeholder = started.elapsed();
    println!("10 000 documents: keyword search {keyword:?}, sorted placeholder {placeholder:?}");
    assert!(r["estimatedTotalHits"].as_u64().unwrap() > 0);
    // Every document matches; `maxTotalHits` (1000) limits the hits, not the total.
    assert_eq!(p["estimatedTotalHits"], json!(10_000));
}
