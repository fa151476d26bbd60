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
    out.push(json!({"q": "storm", "showRankingScore": true, "facets": ["*"]}));
    out.push(json!({"q": "", "showRankingScore": true, "filter": ["genre = drama", ["year < 1990", "year > 2010"]]}));
    out
}
