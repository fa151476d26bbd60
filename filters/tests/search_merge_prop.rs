//! The k-way merge against a naive reference: collect every node's hits, sort them all by
//! Meilisearch's rules (written here independently of the crate), slice the window.

use std::cmp::Ordering;

use miroir_filters::search::{merge, merge_parts_at, plan, Depths, IndexContext, Merged};
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
        asked in prop::collection::vec(1usize..30, 6),
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
        // A node's hits `range` of its ranking, as it answers them.
        let answer = |n: usize, range: std::ops::Range<usize>| -> Vec<u8> {
            let hits: Vec<Value> = sorted[n]
                .iter()
                .zip(&ids[n])
                .skip(range.start)
                .take(range.len())
                .map(|(h, id)| render(h, id))
                .collect();
            serde_json::to_vec(&json!({
                "hits": hits, "query": "", "processingTimeMs": 1,
                "limit": 1000, "offset": 0, "estimatedTotalHits": ids[n].len(),
            }))
            .unwrap()
        };
        let answers: Vec<Vec<u8>> = (0..sorted.len()).map(|n| answer(n, 0..usize::MAX)).collect();

        // Reference: everything sorted; ties by position in their node, then node.
        let mut all: Vec<(&Hit, &String, usize, usize)> = sorted
            .iter()
            .zip(&ids)
            .enumerate()
            .flat_map(|(n, (hits, ids))| {
                hits.iter().zip(ids).enumerate().map(move |(pos, (h, id))| (h, id, pos, n))
            })
            .collect();
        all.sort_by(|a, b| reference(a.0, b.0).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        let want: Vec<&String> = all.iter().skip(offset).take(limit).map(|e| e.1).collect();

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
        prop_assert_eq!(&got_ids, &want);
        prop_assert_eq!(got["estimatedTotalHits"].as_u64(), Some(all.len() as u64));
        prop_assert!(got["hits"].as_array().unwrap().iter().all(|h| h.as_object().unwrap().len() == 1));

        // Each node asked for fewer hits than the window: the nodes that run short are asked
        // for the rest, and the page is the same.
        let window = offset + limit;
        let asked: Vec<usize> = (0..sorted.len()).map(|n| asked[n].min(window.max(1))).collect();
        let mut bodies: Vec<Vec<u8>> = asked.iter().enumerate().map(|(n, k)| answer(n, 0..*k)).collect();
        let mut depths = Depths {
            asked: asked.iter().map(|k| Some(*k).filter(|k| *k < window)).collect(),
            continued: Vec::new(),
        };
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let first = merge_parts_at(&p, &refs, &depths).unwrap();
        if let Merged::Deeper { answers: short } = first {
            for n in short {
                prop_assert!(sorted[n].len() >= asked[n], "short without the hits it was asked");
                depths.continued.push((n, bodies.len()));
                bodies.push(answer(n, asked[n]..window));
            }
        }
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let Merged::Body(parts) = merge_parts_at(&p, &refs, &depths).unwrap() else {
            panic!("short after the continuations");
        };
        let got: Value = serde_json::from_slice(&parts.concat(&refs)).unwrap();
        let shallow_ids: Vec<&str> = got["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        prop_assert_eq!(shallow_ids, want);
        prop_assert_eq!(got["estimatedTotalHits"].as_u64(), Some(all.len() as u64));
    }
}
