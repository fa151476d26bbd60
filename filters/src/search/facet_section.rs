//! One section of a facet's merged values (its numbers, or its strings): counts summed over
//! the nodes, and whether the values shown are certain when some node cut its own list.
//!
//! A node cuts a section at its node limit. In `alpha` order its list is then a prefix of its
//! values in its own order, so the merged values up to the earliest last value of those
//! prefixes are complete, provided the node ordered them as the merge does. In `count` order
//! a value a node left out had there at most the smallest count it listed (its bound): the
//! shown values are certain when every cutting node listed each of them and no other value
//! could reach the smallest shown count.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;

use super::context::FacetOrder;
use super::facet_cut::Scan;

/// One merged value.
#[derive(Debug)]
pub(super) struct Entry<V> {
    pub value: V,
    pub count: u64,
    /// The bounds of the cutting nodes that listed it.
    cover: u64,
}

/// A node that cut this section: its path, its last value and its bound.
#[derive(Debug)]
struct Cut<V> {
    scan: Scan,
    last: V,
    bound: u64,
}

#[derive(Debug)]
pub(super) struct Section<K, V> {
    pub entries: Vec<Entry<V>>,
    index: HashMap<K, usize>,
    cuts: Vec<Cut<V>>,
}

impl<K, V> Default for Section<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
            cuts: Vec::new(),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Section<K, V> {
    /// Adds one node's values for this section, `(key, value, count)` in the node's order;
    /// `cut`: the node may have left values out, listing them by `scan`.
    pub fn add_node(&mut self, values: Vec<(K, V, u64)>, cut: Option<Scan>) {
        let bound = values.iter().map(|v| v.2).min().unwrap_or(0);
        if let (Some(scan), Some(last)) = (cut, values.last()) {
            self.cuts.push(Cut {
                scan,
                last: last.1.clone(),
                bound,
            });
        }
        let cover = if cut.is_some() { bound } else { 0 };
        for (key, value, count) in values {
            match self.index.get(&key) {
                Some(&i) => {
                    self.entries[i].count += count;
                    self.entries[i].cover += cover;
                }
                None => {
                    self.index.insert(key, self.entries.len());
                    self.entries.push(Entry {
                        value,
                        count,
                        cover,
                    });
                }
            }
        }
    }

    /// Takes one document out of `key`'s count.
    pub fn remove_one(&mut self, key: &K) {
        if let Some(&i) = self.index.get(key) {
            let c = &mut self.entries[i].count;
            *c = c.saturating_sub(1);
        }
    }

    pub fn was_cut(&self) -> bool {
        !self.cuts.is_empty()
    }

    /// Drops values no longer counted and sorts the rest by `cmp`.
    pub fn sort_by(&mut self, cmp: impl Fn(&Entry<V>, &Entry<V>) -> Ordering) {
        self.entries.retain(|e| e.count > 0);
        self.entries.sort_by(cmp);
        self.index.clear();
    }

    /// Whether the first `shown` sorted entries are exactly what one node would show. `room`:
    /// one more value would be shown if there were one. `agree`: whether a node listing by a
    /// path orders this section as the merge; `before`: the merge's value order.
    pub fn certain(
        &self,
        order: FacetOrder,
        shown: usize,
        room: bool,
        agree: impl Fn(Scan) -> bool,
        before: impl Fn(&V, &V) -> Ordering,
    ) -> bool {
        if self.cuts.is_empty() {
            return true;
        }
        if room {
            // A value no node listed would be shown.
            return false;
        }
        let Some(last_shown) = shown.checked_sub(1).map(|i| &self.entries[i]) else {
            return true;
        };
        match order {
            FacetOrder::Alpha => self
                .cuts
                .iter()
                .all(|c| agree(c.scan) && before(&last_shown.value, &c.last) != Ordering::Greater),
            FacetOrder::Count => {
                let bound: u64 = self.cuts.iter().map(|c| c.bound).sum();
                let (top, rest) = self.entries.split_at(shown);
                let unshown = rest
                    .iter()
                    .map(|e| e.count + (bound - e.cover))
                    .max()
                    .unwrap_or(0)
                    .max(bound);
                top.iter().all(|e| e.cover == bound) && last_shown.count > unshown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(nodes: &[(&[(&str, u64)], bool)]) -> Section<String, String> {
        let mut s = Section::default();
        for (values, cut) in nodes {
            let values = values
                .iter()
                .map(|(v, c)| ((*v).to_owned(), (*v).to_owned(), *c))
                .collect();
            s.add_node(values, cut.then_some(Scan::Levels));
        }
        s
    }

    fn by_count(s: &mut Section<String, String>) {
        s.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| b.value.cmp(&a.value)));
    }

    #[test]
    fn count_order_is_certain_when_every_cutting_node_listed_the_top() {
        // Node 0 cut after c (bound 5); node 1 listed everything.
        let mut s = section(&[
            (&[("a", 9), ("b", 7), ("c", 5)], true),
            (&[("a", 1), ("b", 8), ("d", 2)], false),
        ]);
        by_count(&mut s);
        let counts: Vec<u64> = s.entries.iter().map(|e| e.count).collect();
        assert_eq!(counts, [15, 10, 5, 2]);
        let certain = |s: &Section<String, String>, shown| {
            s.certain(FacetOrder::Count, shown, false, |_| true, |a, b| a.cmp(b))
        };
        // b (15) and a (10): anything node 0 left out had at most 5 there, 5 + 2 < 10.
        assert!(certain(&s, 2));
        // c (5): d may have had 5 more on node 0.
        assert!(!certain(&s, 3));
        // A cut node and room for more: unknown values would be shown.
        assert!(!s.certain(FacetOrder::Count, 2, true, |_| true, |a, b| a.cmp(b)));
    }

    #[test]
    fn alpha_order_is_certain_up_to_the_earliest_last_value_of_a_cut_list() {
        let mut s = section(&[
            (&[("a", 1), ("c", 1)], true),
            (&[("b", 1), ("d", 1)], false),
        ]);
        s.sort_by(|a, b| a.value.cmp(&b.value));
        let certain = |shown, agree: bool| {
            s.certain(FacetOrder::Alpha, shown, false, |_| agree, |a, b| a.cmp(b))
        };
        assert!(certain(3, true));
        assert!(!certain(4, true));
        assert!(!certain(3, false));
    }
}
