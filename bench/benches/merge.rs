//! The search merge: N node answers of `limit` hits (~1 KB each, full ranking details) into
//! one page, for the node counts and page sizes a deployment sees. `copy`: nothing to strip,
//! hits are copied as bytes; `strip`: `_miroir_shard` and the unrequested ranking details are
//! removed from every hit (the usual case when the client retrieves every attribute).

use std::fmt::Write as _;
use std::time::Duration;

use miroir_bench::ns_per_op;
use miroir_filters::search::{merge, plan, IndexContext, Merged};

const WORDS: [&str; 12] = [
    "amber", "river", "stone", "garden", "silver", "rocket", "harbor", "forest", "lantern",
    "meadow", "crystal", "thunder",
];

/// One realistic hit of about 1 KB; `with_shard` adds the `_miroir_shard` field nodes return
/// when the client retrieves every attribute (the merge must then re-write the hit).
fn hit(node: usize, i: usize, limit: usize, with_shard: bool) -> String {
    let mut description = String::new();
    for k in 0..95 {
        let _ = write!(
            description,
            "{} ",
            WORDS[(i * 7 + k * 3 + node) % WORDS.len()]
        );
    }
    // Interleaved ranks across nodes: node answers are each sorted, the merge mixes them.
    let rank = (i * 4 + node) as f64 / (limit * 4 + 8) as f64;
    let score = 1.0 - rank;
    let shard = if with_shard {
        format!(r#""_miroir_shard":{node},"#)
    } else {
        String::new()
    };
    format!(
        r#"{{"id":"product-{node}-{i}","title":"{} {} {}","description":"{}","price":{}.99,"tags":["sale","eco"],"category":"Garden",{shard}"_rankingScoreDetails":{{"words":{{"order":0,"matchingWords":2,"maxMatchingWords":2,"score":1.0}},"typo":{{"order":1,"typoCount":0,"maxTypoCount":2,"score":1.0}},"proximity":{{"order":2,"score":{score}}},"attributeRank":{{"order":3,"score":1.0}},"wordPosition":{{"order":4,"score":0.9}},"exactness":{{"order":5,"matchType":"noExactMatch","matchingWords":1,"maxMatchingWords":2,"score":0.4444444444444444}}}}}}"#,
        WORDS[i % 12],
        WORDS[(i + 3) % 12],
        WORDS[(i + 5) % 12],
        description.trim_end(),
        10 + i % 90,
    )
}

fn answer(node: usize, limit: usize, with_shard: bool) -> Vec<u8> {
    let hits: Vec<String> = (0..limit)
        .map(|i| hit(node, i, limit, with_shard))
        .collect();
    format!(
        r#"{{"hits":[{}],"query":"garden rocket","processingTimeMs":3,"limit":{limit},"offset":0,"estimatedTotalHits":5000,"requestUid":"0199a3f0-0000-7000-8000-000000000000"}}"#,
        hits.join(",")
    )
    .into_bytes()
}

fn main() {
    let budget = Duration::from_millis(400);
    let hit_bytes = hit(0, 0, 20, true).len();
    println!(
        "merge of N node answers into one page; hits of {hit_bytes} bytes, all ranking details"
    );
    println!(
        "{:>6} {:>6} {:>12} {:>14} {:>14} {:>12}",
        "nodes", "limit", "input KB", "copy µs/op", "strip µs/op", "strip MB/s"
    );
    for nodes in [3usize, 8, 16] {
        for limit in [20usize, 100, 1000] {
            let mut ns = [0.0f64; 2];
            let mut input = 0;
            // copy: the client asked for the details and no field must go, hits are copied;
            // strip: `_miroir_shard` and the details must go, every hit is re-written.
            for (slot, with_shard) in [false, true].into_iter().enumerate() {
                let request = format!(
                    r#"{{"q":"garden rocket","limit":{limit},"showRankingScoreDetails":{}}}"#,
                    !with_shard
                );
                let p = plan(request.as_bytes(), &IndexContext::default()).expect("plan");
                let answers: Vec<Vec<u8>> =
                    (0..nodes).map(|n| answer(n, limit, with_shard)).collect();
                input = answers.iter().map(Vec::len).sum::<usize>();
                let refs: Vec<&[u8]> = answers.iter().map(Vec::as_slice).collect();
                match merge(&p, &refs) {
                    Ok(Merged::Body(b)) => assert!(b.len() > limit * 500),
                    other => panic!("merge failed: {other:?}"),
                }
                let batch = (200_000 / (nodes * limit)).max(1);
                ns[slot] = ns_per_op(batch, budget, |_| merge(&p, &refs));
            }
            println!(
                "{nodes:>6} {limit:>6} {:>12.0} {:>14.1} {:>14.1} {:>12.0}",
                input as f64 / 1024.0,
                ns[0] / 1e3,
                ns[1] / 1e3,
                input as f64 / ns[1] * 1e3,
            );
        }
    }
}
