//! Versions for writes and deletions: microseconds since the Unix epoch, strictly increasing
//! within the process, so a write accepted after another always carries a higher version.
//! Across Miroir processes and restarts the order is the wall clock's (as for Cassandra's
//! write timestamps): keep the clocks synchronized.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default)]
pub struct Clock {
    last: AtomicU64,
}

impl Clock {
    /// A version higher than every one given before.
    pub fn next(&self) -> u64 {
        let now = now_micros();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase_even_within_one_microsecond() {
        let clock = Clock::default();
        let mut last = 0;
        for _ in 0..10_000 {
            let v = clock.next();
            assert!(v > last);
            last = v;
        }
        assert!(last >= now_micros() - 60_000_000);
    }
}
