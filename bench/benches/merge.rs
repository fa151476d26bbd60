//! The search merge: N node answers of `limit` hits (~1 KB each, full ranking details) into
//! one page, for the node counts and page sizes a deployment sees. `copy`: nothing to strip,
//! hits are copied as bytes; `strip`: `_miroir_shard` and the unrequested ranking details are
//! removed from every hit (the usual case when the client retrieves every attribute).
//! `vec`: the body as one vector (`merge`); `parts`: the body as shared slices of the node
//! answers and of what Miroir wrote (`merge_parts` then `Parts::into_bytes`, what the proxy
//! streams); `reused`: the share of the body's bytes that are slices of the node answers.

use std::time::Duration;

use bytes::Bytes;
use miroir_bench::merge_input::{answer, hit};
use miroir_bench::ns_per_op;
use miroir_filters::search::{merge, merge_parts, plan, IndexContext, Merged, Segment};

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
