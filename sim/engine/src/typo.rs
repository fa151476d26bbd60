//! Edit distances as Meilisearch's Levenshtein automata compute them (transpositions cost one),
//! and the typo budget rules: one typo from `oneTypo` chars, two from `twoTypos`, and a typo on
//! the first letter counts as two.

/// Optimal-string-alignment distance between `a` and `b` (by chars).
pub fn damerau(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    within(&a, &b, usize::MAX, false).unwrap_or(usize::MAX)
}

/// The distance between `a` and `b` (with `prefix`: between `a` and the closest prefix of `b`)
/// when it is at most `max`. Rows are abandoned as soon as no cell can get back under `max`,
/// which keeps matching a query against a large vocabulary cheap.
pub fn within(a: &[char], b: &[char], max: usize, prefix: bool) -> Option<usize> {
    let width = b.len() + 1;
    // Three rolling rows in one allocation.
    let mut rows = vec![0usize; 3 * width];
    let (mut before, rest) = rows.split_at_mut(width);
    let (mut previous, mut current) = rest.split_at_mut(width);
    before.fill(usize::MAX);
    for (j, cell) in previous.iter_mut().enumerate() {
        *cell = j;
    }
    let mut previous_min = 0;
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = i;
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(before[j - 2].saturating_add(1));
            }
            current[j] = v;
            row_min = row_min.min(v);
        }
        // A transposition can reach back two rows, so both must be out of budget.
        if row_min > max && previous_min > max {
            return None;
        }
        previous_min = row_min;
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = if prefix {
        previous.iter().copied().min().unwrap_or(usize::MAX)
    } else {
        previous[b.len()]
    };
    (distance <= max).then_some(distance)
}

/// Whether `b` (with `prefix`: some prefix of `b`) is within one edit of `a`: a linear check,
/// used for the many words whose first letter differs from the query's.
fn within_one(a: &[char], b: &[char], prefix: bool) -> bool {
    if prefix {
        let lengths = [a.len().saturating_sub(1), a.len(), a.len() + 1];
        return lengths
            .iter()
            .any(|&n| n <= b.len() && n > 0 && within_one(a, &b[..n], false));
    }
    match a.len() as isize - b.len() as isize {
        0 => {
            let mut diffs = (0..a.len()).filter(|&i| a[i] != b[i]);
            match (diffs.next(), diffs.next(), diffs.next()) {
                (None, ..) | (Some(_), None, _) => true,
                // One adjacent transposition.
                (Some(i), Some(j), None) => j == i + 1 && a[i] == b[j] && a[j] == b[i],
                _ => false,
            }
        }
        1 => one_deletion(a, b),
        -1 => one_deletion(b, a),
        _ => false,
    }
}

/// Whether removing one char of `longer` gives `shorter`.
fn one_deletion(longer: &[char], shorter: &[char]) -> bool {
    let skip = (0..shorter.len())
        .find(|&i| longer[i] != shorter[i])
        .unwrap_or(shorter.len());
    longer[skip + 1..] == shorter[skip..]
}

/// Number of typos `word` costs as a derivation of `query` given a budget of `max` typos, or
/// `None` when it is not a derivation. Distance 0 is the exact (or prefix) match.
pub fn typos(query: &[char], word: &[char], max: u8, prefix: bool) -> Option<u8> {
    if max == 0 || query.is_empty() || word.is_empty() {
        return None;
    }
    let budget = usize::from(max);
    let same_first = query[0] == word[0];
    if !same_first {
        // A typo on the first letter counts as two: only a two-typo budget allows it, and
        // then only as the single edit.
        return (max == 2 && within_one(query, word, prefix)).then_some(2);
    }
    // Cheap length filters before the table.
    if !prefix && query.len().abs_diff(word.len()) > budget {
        return None;
    }
    if prefix && word.len() + budget < query.len() {
        return None;
    }
    let distance = within(query, word, budget, prefix)?;
    match (max, same_first, distance) {
        (_, _, 0) => Some(0),
        (1, true, 1) => Some(1),
        (2, true, d) => u8::try_from(d).ok(),
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
    fn bounded_distance_gives_up_beyond_the_budget() {
        assert_eq!(within(&c("dragon"), &c("kingdom"), 2, false), None);
        assert_eq!(within(&c("dragon"), &c("dargon"), 2, false), Some(1));
        assert_eq!(within(&c("ab"), &c("ba"), 1, false), Some(1));
        assert_eq!(within(&c("batm"), &c("batmobile"), 0, true), Some(0));
    }

    #[test]
    fn single_edit_check_agrees_with_the_table() {
        let words = [
            "vatman", "atman", "xbatman", "abtman", "batman", "bxtmxn", "btaman", "tabman",
        ];
        for w in words {
            let expected = within(&c("batman"), &c(w), 1, false).is_some();
            assert_eq!(within_one(&c("batman"), &c(w), false), expected, "{w}");
        }
        assert!(within_one(&c("vatm"), &c("batmobile"), true));
        assert!(!within_one(&c("vxtm"), &c("batmobile"), true));
    }

    #[test]
    fn prefix_typos_compare_against_word_prefixes() {
        assert_eq!(typos(&c("batmn"), &c("batmanesque"), 1, true), Some(1));
        assert_eq!(typos(&c("batma"), &c("batmanesque"), 1, true), Some(0));
    }
}
