//! How one Meilisearch 1.50 node orders and cuts the values of one facet (milli's
//! `FacetDistribution`), the rules the merge reproduces and reads node lists by.
//!
//! A node lists number values first, then string values, and takes one of two paths:
//! - [`Scan::Documents`], for `alpha` order with at most [`LINEAR_SCAN_MAX_CANDIDATES`]
//!   matching documents: it reads each document's values, so numbers come in the order of
//!   their decimal text (`1`, `10`, `2`) and strings in the order of their normalized form;
//!   it keeps `maxValuesPerFacet` numbers, then strings up to `maxValuesPerFacet` values in
//!   all;
//! - [`Scan::Levels`], otherwise: it walks the facet tree, numbers in numeric order and
//!   strings in normalized order (`alpha`), or both by count, largest first, equal counts
//!   largest value first (`count`). It stops once the list holds `maxValuesPerFacet` values,
//!   checked after each one: when the numbers alone reach the limit (or the limit is 0), the
//!   check never matches again and every string follows.

use std::cmp::Ordering;

use super::context::FacetOrder;

/// milli's `LINEAR_SCAN_CANDIDATES_THRESHOLD`.
pub const LINEAR_SCAN_MAX_CANDIDATES: u64 = 3000;

/// Which of milli's two paths lists a facet's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    Documents,
    Levels,
}

impl Scan {
    /// The path for `order` over `candidates` matching documents (`None`: unknown, taken as
    /// many).
    pub fn of(order: FacetOrder, candidates: Option<u64>) -> Self {
        match (order, candidates) {
            (FacetOrder::Alpha, Some(n)) if n <= LINEAR_SCAN_MAX_CANDIDATES => Scan::Documents,
            _ => Scan::Levels,
        }
    }

    /// How many of `numbers` and `strings` values a list cut at `limit` shows.
    pub fn shown(self, limit: usize, numbers: usize, strings: usize) -> (usize, usize) {
        match self {
            Scan::Documents => {
                let n = numbers.min(limit);
                (n, strings.min(limit - n))
            }
            Scan::Levels => {
                let n = if limit == 0 {
                    numbers
                } else {
                    numbers.min(limit)
                };
                let s = if n >= limit {
                    strings
                } else {
                    strings.min(limit - n)
                };
                (n, s)
            }
        }
    }

    /// Whether a node list of `numbers` then `strings` values cut at `limit` may have left
    /// numbers out, and strings out.
    pub fn cut(self, limit: usize, numbers: usize, strings: usize) -> (bool, bool) {
        let every_string = self == Scan::Levels && numbers >= limit;
        let numbers_cut = if limit == 0 {
            self == Scan::Documents
        } else {
            numbers >= limit
        };
        let strings_cut = !every_string && numbers + strings >= limit;
        (numbers_cut, strings_cut)
    }

    /// The display order of two number values (`key` as a node writes it).
    pub fn cmp_numbers(self, a: (f64, &str), b: (f64, &str)) -> Ordering {
        match self {
            Scan::Documents => a.1.cmp(b.1),
            Scan::Levels => a.0.total_cmp(&b.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_the_order_and_the_candidates() {
        assert_eq!(Scan::of(FacetOrder::Alpha, Some(3000)), Scan::Documents);
        assert_eq!(Scan::of(FacetOrder::Alpha, Some(3001)), Scan::Levels);
        assert_eq!(Scan::of(FacetOrder::Alpha, None), Scan::Levels);
        assert_eq!(Scan::of(FacetOrder::Count, Some(1)), Scan::Levels);
    }

    #[test]
    fn numbers_reaching_the_limit_bring_every_string_on_the_tree_path() {
        // 40 numbers and 2 strings, limit 10 (measured on Meilisearch 1.50: 12 values).
        assert_eq!(Scan::Levels.shown(10, 40, 2), (10, 2));
        assert_eq!(Scan::Documents.shown(10, 40, 2), (10, 0));
        assert_eq!(Scan::Levels.shown(10, 4, 30), (4, 6));
        assert_eq!(Scan::Documents.shown(10, 4, 30), (4, 6));
        assert_eq!(Scan::Levels.shown(0, 4, 3), (4, 3));
        assert_eq!(Scan::Documents.shown(0, 4, 3), (0, 0));
    }

    #[test]
    fn a_list_at_its_limit_may_have_left_values_out() {
        assert_eq!(Scan::Levels.cut(10, 3, 4), (false, false));
        assert_eq!(Scan::Levels.cut(10, 3, 7), (false, true));
        assert_eq!(Scan::Levels.cut(10, 10, 7), (true, false));
        assert_eq!(Scan::Documents.cut(10, 10, 0), (true, true));
    }

    #[test]
    fn numbers_in_text_order_on_the_document_path() {
        let (a, b) = ((2.0, "2"), (10.0, "10"));
        assert_eq!(Scan::Documents.cmp_numbers(a, b), Ordering::Greater);
        assert_eq!(Scan::Levels.cmp_numbers(a, b), Ordering::Less);
    }
}
