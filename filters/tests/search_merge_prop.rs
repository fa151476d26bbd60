//! The k-way merge against a naive reference: collect every node's hits, sort them all by
//! Meilisearch's rules (written here independently of the crate), slice the window.

use std::cmp::Ordering;

use miroir_filters::search::{merge, plan, IndexContext, Merged};
use proptest::prelude::*;
use serde_json::{json, Value};

/// One generated hit: `words` score, a `price:asc` sort value, an `exactness` score.
#[derive(Clone, Debug)]
struct Hit {
    words: u8,
    price: Price,
    exact: u8,
}

#[derive(Clone, Debug)]
enum Price {
    Missing,
    Number(i16),
    Text(&'static str),
}

/// Reference order, `Less` = ranks first: more words, then price ascending with numbers before
/// strings and missing last, then more exactness.
fn reference(a: &Hit, b: &Hit) -> Ordering {
    let price_rank = |p: &Price| match p {
        Price::Number(_) => 0,
        Price::Text(_) => 1,
        Price::Missing => 2,
    };
    b.words
        .cmp(&a.words)
        .then_with(|| price_rank(&a.price).cmp(&price_rank(&b.price)))
        .then_with(|| match (&a.price, &b.price) {
            (Price::Number(x), Price::Number(y)) => x.cmp(y),
            (Price::Text(x), Price::Text(y)) => x.cmp(y),
            _ => Ordering::Equal,
        })
        .then_with(|| b.exact.cmp(&a.exact))
}

fn render(h: &Hit, id: &str) -> Value {
    let price = match &h.price {
        Price::Missing => Value::Null,
        Price::Number(n) => json!(f64::from(*n)),
        Price::Text(s) => json!(s),
    };
    json!({
        "id": id,
        "_miroir_shard": 1,
        "_rankingScoreDetails": {
            "words": {"order": 0, "matchingWords": h.words, "maxMatchingWords": 3, "score": f64::from(h.words) / 3.0},
            "price:asc": {"order": 1, "value": price},
            "exactness": {"order": 2, "matchType": "noExactMatch", "score": f64::from(h.exact) / 4.0},
        }
    })
}

fn hit() -> impl Strategy<Value = Hit> {
    let price = prop_oneof![
        Just(Price::Missing),
        (-5i16..5).prop_map(Price::Number),
        prop::sample::select(vec!["apple", "Banana", "cherry"]).prop_map(Price::Text),
    ];
    (0u8..4, price, 0u8..5).prop_map(|(words, price, exact)| Hit {
        words,
        price,
        exact,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn merge_equals_sorting_everything_and_slicing(
        nodes in prop::collection::vec(prop::collection::vec(hit(), 0..25), 1..6),
        offset in 0usize..30,
        limit in 0usize..30,
    ) {
        // Each node answers in its own rank order (stable: ties keep generation order).
        let mut sorted: Vec<Vec<Hit>> = nodes.clone();
        for n in &mut sorted {
            n.sort_by(reference);
        }
        let ids: Vec<Vec<String>> = sorted
            .iter()
            .enumerate()
            .map(|(n, hits)| (0..hits.len()).map(|i| format!("{n}-{i}")).collect())
            .collect();
        let answers: Vec<Vec<u8>> = sorted
            .iter()
            .zip(&ids)
            .map(|(hits, ids)| {
                let hits: Vec<Value> = hits.iter().zip(ids).map(|(h, id)| render(h, id)).collect();
                serde_json::to_vec(&json!({
                    "hits": hits, "query": "", "processingTimeMs": 1,
                    "limit": 1000, "offset": 0, "estimatedTotalHits": ids.len(),
                }))
                .unwrap()
            })
            .collect();

        // Reference: everything, node by node, stably sorted; ties stay node then position.
        let mut all: Vec<(&Hit, &String)> = sorted
            .iter()
            .zip(&ids)
            .flat_map(|(hits, ids)| hits.iter().zip(ids))
            .collect();
        all.sort_by(|a, b| reference(a.0, b.0));
        let want: Vec<&String> = all.iter().skip(offset).take(limit).map(|(_, id)| *id).collect();

        let request = json!({"sort": ["price:asc"], "offset": offset, "limit": limit});
        let p = plan(&serde_json::to_vec(&request).unwrap(), &IndexContext::default()).unwrap();
        let refs: Vec<&[u8]> = answers.iter().map(Vec::as_slice).collect();
        let Merged::Body(body) = merge(&p, &refs).unwrap() else {
            panic!("no node answered an error");
        };
        let got: Value = serde_json::from_slice(&body).unwrap();
        let got_ids: Vec<&str> = got["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        prop_assert_eq!(got_ids, want);
        prop_assert_eq!(got["estimatedTotalHits"].as_u64(), Some(all.len() as u64));
        prop_assert!(got["hits"].as_array().unwrap().iter().all(|h| h.as_object().unwrap().len() == 1));
    }
}
