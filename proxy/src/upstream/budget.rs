//! What one client request may still read from nodes: every node answer it gathers is counted
//! against one budget, so Miroir's memory for a request is bounded whatever it asks for (a
//! deep page over many shards, huge documents).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of node answers left to one client request; clones share the count.
#[derive(Clone, Debug)]
pub struct AnswerBudget(Arc<AtomicU64>);

impl AnswerBudget {
    pub fn new(bytes: u64) -> Self {
        Self(Arc::new(AtomicU64::new(bytes)))
    }

    /// Takes `bytes` from the budget; `false` (and nothing taken) when fewer are left.
    pub fn take(&self, bytes: u64) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }
}

/// On whose behalf Miroir sends requests to nodes: the credential, the client request's id
/// (sent on as `X-Request-Id`), and the request's answer budget.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub auth: Option<&'a str>,
    pub request_id: &'a str,
    pub budget: &'a AnswerBudget,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_shared_and_never_overdrawn() {
        let budget = AnswerBudget::new(10);
        let other = budget.clone();
        assert!(budget.take(6));
        assert!(!other.take(5));
        assert!(other.take(4));
        assert!(!budget.take(1));
    }
}
