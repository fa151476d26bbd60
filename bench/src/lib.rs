//! A tiny timing harness for the benchmarks: run a closure in batches until a time budget is
//! spent, report the median ns per operation over the batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Median nanoseconds per call of `f` over batches of `batch` calls within `budget`.
pub fn ns_per_op<T>(batch: usize, budget: Duration, mut f: impl FnMut(usize) -> T) -> f64 {
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut i = 0usize;
    while started.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(f(i));
            i = i.wrapping_add(1);
        }
        samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

pub fn report(name: &str, ns: f64) {
    println!("{name:<48} {ns:>10.1} ns/op  {:>12.0} op/s", 1e9 / ns);
}

/// Node answers for the search-merge benchmarks (`merge`, `merge_profile`).
pub mod merge_input {
    use std::fmt::Write as _;

    const WORDS: [&str; 12] = [
        "amber", "river", "stone", "garden", "silver", "rocket", "harbor", "forest", "lantern",
        "meadow", "crystal", "thunder",
    ];

    /// One realistic hit of about 1 KB; `with_shard` adds the `_miroir_shard` field nodes return
    /// when the client retrieves every attribute (the merge must then re-write the hit).
    pub fn hit(node: usize, i: usize, limit: usize, with_shard: bool) -> String {
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

    pub fn answer(node: usize, limit: usize, with_shard: bool) -> Vec<u8> {
        let hits: Vec<String> = (0..limit)
            .map(|i| hit(node, i, limit, with_shard))
            .collect();
        format!(
            r#"{{"hits":[{}],"query":"garden rocket","processingTimeMs":3,"limit":{limit},"offset":0,"estimatedTotalHits":5000,"requestUid":"0199a3f0-0000-7000-8000-000000000000"}}"#,
            hits.join(",")
        )
        .into_bytes()
    }
}
