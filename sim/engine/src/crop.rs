//! Choosing the crop window: Meilisearch's best match interval (most distinct query terms, then
//! closest matches, then matches in query order, within `cropLength` words), grown evenly on
//! both sides with the extra word on the left.

/// A matched word of the text: its index among the words and the query terms it matches.
#[derive(Debug, Clone, PartialEq)]
pub struct WordHit {
    pub word: usize,
    pub terms: Vec<usize>,
}

/// The `[start, end)` word window of `len` words (`len < word_count`) to keep.
pub fn window(word_count: usize, hits: &[WordHit], len: usize) -> (usize, usize) {
    let Some((first, last)) = best_interval(hits, len) else {
        return (0, len.min(word_count));
    };
    let span = last - first + 1;
    if span >= len {
        return (first, (first + len).min(word_count));
    }
    let remaining = len - span;
    let available_after = word_count - last - 1;
    let mut before = remaining.div_ceil(2).min(first);
    let after = (remaining - before).min(available_after);
    before = (remaining - after).min(first);
    (first - before, last + after + 1)
}

/// First and last matched word of the best interval of hits spanning fewer than `len` words.
fn best_interval(hits: &[WordHit], len: usize) -> Option<(usize, usize)> {
    let mut best: Option<([i64; 3], usize, usize)> = None;
    let mut consider = |from: usize, to: usize| {
        let score = interval_score(&hits[from..=to]);
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, from, to));
        }
    };
    let mut from = 0;
    for (i, hit) in hits.iter().enumerate() {
        if hit.word - hits[from].word >= len {
            if i > 0 {
                consider(from, i - 1);
            }
            while from < i && hit.word - hits[from].word >= len {
                from += 1;
            }
        }
    }
    if !hits.is_empty() {
        consider(from, hits.len() - 1);
    }
    best.map(|(_, from, to)| (hits[from].word, hits[to].word))
}

/// `[distinct terms, -(sum of gaps capped at 7), matches in query order]`.
fn interval_score(hits: &[WordHit]) -> [i64; 3] {
    let mut terms: Vec<usize> = hits.iter().flat_map(|h| h.terms.iter().copied()).collect();
    terms.sort_unstable();
    terms.dedup();
    let mut distance = 0;
    let mut ordered = 0;
    for pair in hits.windows(2) {
        let min = |h: &WordHit| h.terms.iter().min().copied();
        if min(&pair[1]) > min(&pair[0]) {
            ordered += 1;
        }
        distance -= (pair[1].word - pair[0].word).min(7) as i64;
    }
    [terms.len() as i64, distance, ordered]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(word: usize, term: usize) -> WordHit {
        WordHit {
            word,
            terms: vec![term],
        }
    }

    #[test]
    fn one_match_is_centred_with_the_extra_word_before() {
        assert_eq!(window(12, &[hit(7, 0)], 4), (5, 9));
        assert_eq!(window(12, &[hit(0, 0)], 4), (0, 4));
        assert_eq!(window(12, &[hit(11, 0)], 4), (8, 12));
    }

    #[test]
    fn the_window_prefers_more_distinct_terms_then_closer_matches() {
        // "a" alone at 1; "a b" together at 10-11.
        let hits = [hit(1, 0), hit(10, 0), hit(11, 1)];
        assert_eq!(window(20, &hits, 4), (9, 13));
    }

    #[test]
    fn no_match_keeps_the_first_words() {
        assert_eq!(window(20, &[], 5), (0, 5));
    }
}
