//! The search merge: N node answers of `limit` hits (~1 KB each, full ranking details) into
//! one page, for the node counts and page sizes a deployment sees. `copy`: nothing to strip,
//! hits are copied as bytes; `strip`: `_miroir_shard` and the unrequested ranking details are
//! removed from every hit (the usual case when the client retrieves every attribute).
//! `vec`: the body as one vector (`merge`); `parts`: the body as shared slices of the node
//! answers and of what Miroir wrote (`merge_parts` then `Parts::into_bytes`, what the proxy
//! streams); `reused`: the share of the body's bytes that are slices of the node answers.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use miroir_bench::ns_per_op;
use miroir_filters::search::{merge, merge_parts, plan, IndexContext, Merged, Segment};

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
        "{:>5} {:>5} {:>8} | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7} {:>9}",
        "nodes",
        "limit",
        "input KB",
        "copy vec",
        "copy parts",
        "reused",
        "strip vec",
        "strip parts",
        "reused",
        "parts MB/s"
    );
    println!(
        "{:>22} | {:>9} {:>9} {:>7} | {:>9} {:>9}",
        "", "µs/op", "µs/op", "", "µs/op", "µs/op"
    );
    for nodes in [3usize, 8, 16] {
        for limit in [20usize, 100, 1000] {
            // [copy vec, copy parts, strip vec, strip parts]
            let mut ns = [0.0f64; 4];
            let mut reused = [0.0f64; 2];
            let mut input = 0;
            // copy: the client asked for the details and no field must go, hits are copied;
            // strip: `_miroir_shard` and the details must go, every hit is re-written.
            for (slot, with_shard) in [false, true].into_iter().enumerate() {
                let request = format!(
                    r#"{{"q":"garden rocket","limit":{limit},"showRankingScoreDetails":{}}}"#,
                    !with_shard
                );
                let p = plan(request.as_bytes(), &IndexContext::default()).expect("plan");
                let answers: Vec<Bytes> = (0..nodes)
                    .map(|n| Bytes::from(answer(n, limit, with_shard)))
                    .collect();
                input = answers.iter().map(Bytes::len).sum::<usize>();
                let refs: Vec<&[u8]> = answers.iter().map(|a| a.as_ref()).collect();
                let whole = match merge(&p, &refs) {
                    Ok(Merged::Body(b)) => b,
                    other => panic!("merge failed: {other:?}"),
                };
                assert!(whole.len() > limit * 500);
                match merge_parts(&p, &refs) {
                    Ok(Merged::Body(parts)) => {
                        let from_nodes: usize = parts
                            .segments
                            .iter()
                            .map(|s| match s {
                                Segment::Answer { range, .. } => range.len(),
                                Segment::Owned(_) => 0,
                            })
                            .sum();
                        reused[slot] = from_nodes as f64 / parts.len() as f64;
                        assert_eq!(parts.into_bytes(&answers).concat(), whole);
                    }
                    other => panic!("merge failed: {other:?}"),
                }
                let batch = (200_000 / (nodes * limit)).max(1);
                ns[slot * 2] = ns_per_op(batch, budget, |_| merge(&p, &refs));
                ns[slot * 2 + 1] = ns_per_op(batch, budget, |_| match merge_parts(&p, &refs) {
                    Ok(Merged::Body(parts)) => parts.into_bytes(&answers),
                    _ => Vec::new(),
                });
            }
            println!(
                "{nodes:>5} {limit:>5} {:>8.0} | {:>9.1} {:>9.1} {:>6.0}% | {:>9.1} {:>9.1} {:>6.0}% {:>9.0}",
                input as f64 / 1024.0,
                ns[0] / 1e3,
                ns[1] / 1e3,
                reused[0] * 100.0,
                ns[2] / 1e3,
                ns[3] / 1e3,
                reused[1] * 100.0,
                input as f64 / ns[3] * 1e3,
            );
        }
    }
}
