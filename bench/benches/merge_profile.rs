//! One search-merge configuration run a fixed number of times, for instruction counts under
//! `valgrind --tool=callgrind` (deterministic where wall-clock timings on a busy machine are
//! not). The `merge` bench times every configuration; this one only repeats one.
//!
//! `MERGE_PROFILE="NODES LIMIT MODE ITERS"`, MODE `copy` (hits sent as the nodes wrote them)
//! or `strip` (`_miroir_shard` and the ranking details removed from every hit), e.g.
//!
//! ```text
//! cargo bench -p miroir-bench --bench merge_profile --no-run
//! MERGE_PROFILE="16 1000 copy 5" valgrind --tool=callgrind target/release/deps/merge_profile-*
//! ```
//!
//! The answers are built before the merges: the instructions of one merge are the difference
//! between a run of ITERS merges and one of 0, divided by ITERS, or the total of a run with
//! `--toggle-collect='miroir_filters::search::merge::merge_parts'` divided by ITERS (then
//! `callgrind_annotate` shows where the merge alone spends them).

use std::hint::black_box;

use bytes::Bytes;
use miroir_bench::merge_input::answer;
use miroir_filters::search::{merge_parts, plan, IndexContext, Merged};

fn main() {
    let spec = std::env::var("MERGE_PROFILE").unwrap_or_else(|_| "16 1000 copy 5".into());
    let args: Vec<&str> = spec.split_whitespace().collect();
    let [nodes, limit, mode, iters] = args[..] else {
        panic!("MERGE_PROFILE must be \"NODES LIMIT copy|strip ITERS\", not {spec:?}");
    };
    let nodes: usize = nodes.parse().expect("NODES");
    let limit: usize = limit.parse().expect("LIMIT");
    let iters: usize = iters.parse().expect("ITERS");
    let with_shard = match mode {
        "copy" => false,
        "strip" => true,
        other => panic!("MODE is copy or strip, not {other:?}"),
    };
    let request = format!(
        r#"{{"q":"garden rocket","limit":{limit},"showRankingScoreDetails":{}}}"#,
        !with_shard
    );
    let p = plan(request.as_bytes(), &IndexContext::default()).expect("plan");
    let answers: Vec<Bytes> = (0..nodes)
        .map(|n| Bytes::from(answer(n, limit, with_shard)))
        .collect();
    let refs: Vec<&[u8]> = answers.iter().map(|a| a.as_ref()).collect();
    let mut out = 0usize;
    for _ in 0..iters {
        match merge_parts(&p, black_box(&refs)) {
            Ok(Merged::Body(parts)) => out += black_box(parts.into_bytes(&answers)).len(),
            other => panic!("merge failed: {other:?}"),
        }
    }
    println!("{nodes} nodes x {limit} hits, {mode}: {iters} merges, {out} pieces");
}
