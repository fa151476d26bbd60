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
