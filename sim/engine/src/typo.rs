//! Edit distances as Meilisearch's Levenshtein automata compute them (transpositions cost one),
//! and the typo budget rules: one typo from `oneTypo` chars, two from `twoTypos`, and a typo on
//! the first letter counts as two.

/// Optimal-string-alignment distance between `a` and `b` (by chars).
pub fn damerau(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let rows = distance_table(&a, &b);
    rows[a.len()][b.len()]
}

/// Smallest distance between `query` and any prefix of `word` (a prefix automaton).
pub fn prefix_distance(query: &[char], word: &[char]) -> usize {
    let rows = distance_table(query, word);
    rows[query.len()]
        .iter()
        .copied()
        .min()
        .unwrap_or(usize::MAX)
}

fn distance_table(a: &[char], b: &[char]) -> Vec<Vec<usize>> {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d
}

/// Number of typos `word` costs as a derivation of `query` given a budget of `max` typos, or
/// `None` when it is not a derivation. Distance 0 is the exact (or prefix) match.
pub fn typos(query: &[char], word: &[char], max: u8, prefix: bool) -> Option<u8> {
    if max == 0 || query.is_empty() || word.is_empty() {
        return None;
    }
    // Cheap length filter before the quadratic table.
    if !prefix && query.len().abs_diff(word.len()) > usize::from(max) {
        return None;
    }
    if prefix && word.len() + usize::from(max) < query.len() {
        return None;
    }
    let distance = if prefix {
        prefix_distance(query, word)
    } else {
        {
            let rows = distance_table(query, word);
            rows[query.len()][word.len()]
        }
    };
    let same_first = query[0] == word[0];
    match (max, same_first, distance) {
        (_, _, 0) => Some(0),
        (1, true, 1) => Some(1),
        (2, true, d) if d <= 2 => u8::try_from(d).ok(),
        // A typo on the first letter counts as two.
        (2, false, 1) => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn transposition_costs_one() {
        assert_eq!(damerau("batman", "abtman"), 1);
        assert_eq!(damerau("kitten", "sitting"), 3);
    }

    #[test]
    fn typo_budget_and_first_letter_rule() {
        assert_eq!(typos(&c("batman"), &c("batmen"), 1, false), Some(1));
        assert_eq!(typos(&c("batman"), &c("vatman"), 1, false), None);
        assert_eq!(typos(&c("batmobile"), &c("vatmobile"), 2, false), Some(2));
        assert_eq!(typos(&c("batmobile"), &c("batmoblie"), 2, false), Some(1));
        assert_eq!(typos(&c("batmobile"), &c("bitmobilo"), 2, false), Some(2));
        assert_eq!(typos(&c("batman"), &c("batmx"), 0, false), None);
    }

    #[test]
    fn prefix_typos_compare_against_word_prefixes() {
        assert_eq!(typos(&c("batmn"), &c("batmanesque"), 1, true), Some(1));
        assert_eq!(typos(&c("batma"), &c("batmanesque"), 1, true), Some(0));
    }
}
