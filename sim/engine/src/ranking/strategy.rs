//! The `words` rule and `matchingStrategy`: which query terms a document may miss, in which
//! order they are dropped, and the resulting rank (milli's `removal_order_for_terms_*`).

use std::collections::BTreeMap;

use super::Rank;
use crate::params::MatchingStrategy;
use crate::query::Term;

/// Groups of terms dropped together, first group first. Phrases are never dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    groups: Vec<Vec<usize>>,
    all: bool,
    max_rank: u32,
    term_count: usize,
}

impl Removal {
    /// `frequencies[t]` is the number of documents of the whole index matching term `t`
    /// (needed by `frequency` only).
    pub fn new(terms: &[Term], strategy: MatchingStrategy, frequencies: Option<&[u64]>) -> Self {
        let last = terms.len().saturating_sub(1);
        let cost = |t: usize| -> u64 {
            match (strategy, frequencies) {
                // Most frequent first; absent terms count as infinitely frequent.
                (MatchingStrategy::Frequency, Some(freq)) => frequency_weight(freq, t),
                // From the end of the query.
                _ => (1 + last - t) as u64,
            }
        };
        let mut by_cost: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut has_phrase = false;
        for (t, term) in terms.iter().enumerate() {
            if term.phrase.is_some() {
                has_phrase = true;
                continue;
            }
            by_cost.entry(cost(t)).or_default().push(t);
        }
        let mut groups: Vec<Vec<usize>> = by_cost.into_values().collect();
        if !has_phrase {
            // Something must remain.
            groups.pop();
        }
        let phrase_words: usize = terms
            .iter()
            .filter_map(|t| t.phrase.as_ref())
            .map(Vec::len)
            .sum();
        let steps = u32::try_from(groups.len()).unwrap_or(u32::MAX);
        let extra = u32::try_from(phrase_words.saturating_sub(1)).unwrap_or(u32::MAX);
        Self {
            groups,
            all: strategy == MatchingStrategy::All,
            max_rank: 1 + steps + extra,
            term_count: terms.len(),
        }
    }

    /// The terms a document keeps and its `words` rank, or `None` when it does not match.
    pub fn keep(&self, matched: &[bool]) -> Option<(Vec<usize>, Rank)> {
        let mut remaining: Vec<usize> = (0..self.term_count).collect();
        if self.all {
            let full = Rank {
                rank: self.max_rank,
                max_rank: self.max_rank,
            };
            return remaining
                .iter()
                .all(|t| matched[*t])
                .then_some((remaining, full));
        }
        for step in 0..=self.groups.len() {
            if step > 0 {
                let dropped = &self.groups[step - 1];
                remaining.retain(|t| !dropped.contains(t));
            }
            if remaining.iter().all(|t| matched[*t]) {
                let steps = u32::try_from(step).unwrap_or(u32::MAX);
                let rank = Rank {
                    rank: self.max_rank - steps,
                    max_rank: self.max_rank,
                };
                return Some((remaining, rank));
            }
        }
        None
    }
}

/// Frequency rank of term `t`: 1 for the most frequent, equal frequencies share a weight.
fn frequency_weight(freq: &[u64], t: usize) -> u64 {
    let effective = |f: u64| if f == 0 { u64::MAX } else { f };
    let mine = effective(freq[t]);
    let mut distinct_higher: Vec<u64> = freq
        .iter()
        .map(|f| effective(*f))
        .filter(|f| *f > mine)
        .collect();
    distinct_higher.sort_unstable();
    distinct_higher.dedup();
    1 + distinct_higher.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Settings;
    use crate::query;

    #[test]
    fn last_drops_from_the_end_and_never_drops_everything() {
        let q = query::parse("a b c", &Settings::default());
        let r = Removal::new(&q.terms, MatchingStrategy::Last, None);
        let (kept, rank) = r.keep(&[true, true, false]).unwrap();
        assert_eq!(kept, vec![0, 1]);
        assert_eq!((rank.rank, rank.max_rank), (2, 3));
        assert_eq!(r.keep(&[false, true, true]), None);
    }

    #[test]
    fn frequency_drops_equally_frequent_terms_together() {
        let q = query::parse("a b c", &Settings::default());
        let r = Removal::new(&q.terms, MatchingStrategy::Frequency, Some(&[5, 5, 1]));
        let (kept, rank) = r.keep(&[false, false, true]).unwrap();
        assert_eq!(kept, vec![2]);
        assert_eq!((rank.rank, rank.max_rank), (1, 2));
    }

    #[test]
    fn phrases_are_mandatory_and_count_their_words() {
        let q = query::parse("\"red cat\" dog", &Settings::default());
        let r = Removal::new(&q.terms, MatchingStrategy::Last, None);
        let (kept, rank) = r.keep(&[true, false]).unwrap();
        assert_eq!(kept, vec![0]);
        assert_eq!((rank.rank, rank.max_rank), (2, 3));
        assert_eq!(r.keep(&[false, true]), None);
    }
}
