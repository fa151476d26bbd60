//! How many hits each node is asked for.
//!
//! A document's shard is a hash of its primary key, so which shards the best `window` hits of
//! a search come from is a draw independent of their rank: a node answering for `held` of the
//! `asked` shards holds `X ~ Binomial(window, held / asked)` of them. Asking it for `k < window`
//! hits is enough whenever `X < k`; when its k-th hit still lands in the window the merge
//! says so and the node is asked for the rest (`merge::Merged::Deeper`), so the answer stays
//! exact either way. Meilisearch ranks and formats every hit it returns, about 30 µs a hit on
//! the benchmark's nodes: asking a node of two for 17 hits instead of 20 saves it a tenth of
//! its search.

/// How often a search may ask again: 0.5 % of searches at most, well under the 99th
/// percentile. Each node gets the share of it that its shards are of the search's.
const SHORT_PER_SEARCH: f64 = 0.005;

/// Windows up to this size have their tail summed exactly; larger ones use the Chernoff bound
/// (a few more hits, far fewer steps).
const EXACT_UP_TO: usize = 2_000;

/// The hits to ask of a node answering for `held` of the `asked` shards of a search, for a
/// merged window of `window` hits: the least `k` with `P(X >= k) <= p * SHORT_PER_SEARCH`
/// where `p = held / asked`, never more than `window`.
pub fn node_depth(window: usize, held: usize, asked: usize) -> usize {
    if window == 0 || held == 0 || held >= asked {
        return window;
    }
    let p = held as f64 / asked as f64;
    let budget = SHORT_PER_SEARCH * p;
    let k = if window <= EXACT_UP_TO {
        exact_quantile(window, p, budget)
    } else {
        chernoff_quantile(window, p, budget)
    };
    k.clamp(1, window)
}

/// The least `k` with `P(Binomial(n, p) >= k) <= budget`, summing the upper tail from `n`
/// down: `P(X = j - 1) = P(X = j) * j / (n - j + 1) * q / p`, from `P(X = n) = p^n`, which
/// stays a normal float for `n <= EXACT_UP_TO` unless `p` is tiny (then in log space).
fn exact_quantile(n: usize, p: f64, budget: f64) -> usize {
    let ln_top = n as f64 * p.ln();
    let odds = (1.0 - p) / p;
    if ln_top > -700.0 {
        let mut pmf = ln_top.exp();
        let mut tail = 0.0;
        for j in (1..=n).rev() {
            tail += pmf;
            if tail > budget {
                return j + 1;
            }
            pmf *= j as f64 / (n - j + 1) as f64 * odds;
        }
        return if tail + pmf > budget { 1 } else { 0 };
    }
    let ln_odds = odds.ln();
    let mut ln_pmf = ln_top;
    let mut tail = 0.0;
    for j in (1..=n).rev() {
        tail += ln_pmf.exp();
        if tail > budget {
            return j + 1;
        }
        ln_pmf += (j as f64).ln() - ((n - j + 1) as f64).ln() + ln_odds;
    }
    if tail + ln_pmf.exp() > budget {
        1
    } else {
        0
    }
}

/// The least `k` above the mean with `exp(-n * D(k/n || p)) <= budget` (Chernoff: an upper
/// bound of the tail, so the depth it gives is safe).
fn chernoff_quantile(n: usize, p: f64, budget: f64) -> usize {
    let target = -budget.ln() / n as f64;
    let divergence = |a: f64| {
        let b = 1.0 - a;
        let left = if a > 0.0 { a * (a / p).ln() } else { 0.0 };
        let right = if b > 0.0 {
            b * (b / (1.0 - p)).ln()
        } else {
            0.0
        };
        left + right
    };
    // The divergence grows from 0 at the mean to -ln p at n: bisect over whole hits.
    let (mut lo, mut hi) = ((n as f64 * p).ceil() as usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if divergence(mid as f64 / n as f64) >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `P(Binomial(n, p) >= k)` by direct summation with exact binomial coefficients.
    fn tail(n: u64, p: f64, k: u64) -> f64 {
        let choose =
            |n: u64, k: u64| (0..k).fold(1.0f64, |c, i| c * (n - i) as f64 / (i + 1) as f64);
        (k..=n)
            .map(|j| choose(n, j) * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32))
            .sum()
    }

    #[test]
    fn the_depth_is_the_least_that_keeps_asking_again_rare() {
        for (window, held, asked) in [
            (20, 8, 16),
            (20, 1, 3),
            (20, 5, 16),
            (50, 1, 2),
            (100, 1, 16),
            // Too small a window to save a hit.
            (7, 1, 2),
        ] {
            let k = node_depth(window, held, asked);
            let p = held as f64 / asked as f64;
            let budget = SHORT_PER_SEARCH * p;
            assert!(k <= window, "{window} {held}/{asked}: {k}");
            if k < window {
                assert!(
                    tail(window as u64, p, k as u64) <= budget,
                    "{window} {p}: {k}"
                );
            }
            assert!(
                tail(window as u64, p, k as u64 - 1) > budget,
                "{window} {p}: {k}"
            );
        }
    }

    #[test]
    fn the_benchmark_shapes() {
        // Two nodes of 8 shards each, 20 hits: 17 each (P(X >= 17) = 0.13 %).
        assert_eq!(node_depth(20, 8, 16), 17);
        // Three nodes, a third each: 14 of 20.
        assert_eq!(node_depth(20, 1, 3), 14);
        // A node answering for every shard asked is asked for the whole window.
        assert_eq!(node_depth(20, 16, 16), 20);
        assert_eq!(node_depth(0, 8, 16), 0);
        assert_eq!(node_depth(1, 8, 16), 1);
    }

    #[test]
    fn tiny_shares_of_large_windows_are_summed_in_log_space_alike() {
        // 0.01^200 underflows a float: the log-space branch answers, as the tail says.
        let k = exact_quantile(200, 0.01, 0.0001);
        assert!(tail(200, 0.01, k as u64) <= 0.0001 && tail(200, 0.01, k as u64 - 1) > 0.0001);
        let k = exact_quantile(2000, 0.3, 0.001);
        assert!((640..700).contains(&k), "{k}");
    }

    #[test]
    fn large_windows_use_a_safe_bound_close_to_the_exact_one() {
        let exact = exact_quantile(3000, 0.5, 0.0025);
        let bound = chernoff_quantile(3000, 0.5, 0.0025);
        assert!(bound >= exact && bound <= exact + 40, "{exact} {bound}");
        assert!(node_depth(100_000, 1, 16) < 7_000);
        assert!(node_depth(100_000, 1, 2) < 51_000);
    }
}
