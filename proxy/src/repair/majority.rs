//! The one rule every repair decides by when Miroir has no record of its own: the value a
//! strict majority of the nodes that answered hold.

/// The value more than half of `values` share; otherwise the sizes of the groups they split
/// into (largest first), for the report.
pub fn strict_majority<T: PartialEq>(values: &[T]) -> Result<&T, Vec<usize>> {
    let mut groups: Vec<(&T, usize)> = Vec::new();
    for v in values {
        match groups.iter_mut().find(|(seen, _)| *seen == v) {
            Some((_, n)) => *n += 1,
            None => groups.push((v, 1)),
        }
    }
    if let Some((v, _)) = groups.iter().find(|(_, n)| n * 2 > values.len()) {
        return Ok(v);
    }
    let mut sizes: Vec<usize> = groups.into_iter().map(|(_, n)| n).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    Err(sizes)
}

/// How a split with no majority is reported.
pub fn no_majority(sizes: &[usize]) -> String {
    let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
    format!(
        "the nodes disagree in groups of {} with no majority",
        sizes.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_half_or_the_groups() {
        assert_eq!(strict_majority(&[1, 2, 1]), Ok(&1));
        assert_eq!(strict_majority(&[1, 2]), Err(vec![1, 1]));
        assert_eq!(strict_majority(&[1, 1, 2, 2]), Err(vec![2, 2]));
        assert_eq!(strict_majority(&[None, Some(3), None]), Ok(&None));
        assert_eq!(strict_majority::<u8>(&[]), Err(vec![]));
    }
}
