//! `facetDistribution` and `facetStats` summed over nodes, re-ordered and truncated as one
//! node with the client's `faceting` settings would show them.
//!
//! Exactness: a value's count is exact when every node listed it or had it at zero, which
//! holds whenever no node had more distinct values for the facet than its
//! `maxValuesPerFacet` (the node limit, set above the client's). Number and string values are
//! told apart by their key (`"12"` from a string value is read as a number), and a string's
//! spelling is the first node's when nodes differ only in case.
//!
//! Known differences from one Meilisearch 1.50 node, not yet reproduced:
//! - `count` order past the node limit: a value below the cut on some node is missing from
//!   its list, so it is undercounted or not shown; the node limit is the client's
//!   `maxValuesPerFacet` (nothing widens it yet);
//! - `alpha` order with at most 3000 matching documents: milli lists number values in the
//!   order of their decimal text (`1`, `10`, `2`); this merge orders them numerically (milli's
//!   order past 3000 matches);
//! - `count` order ties: milli pops equal counts from a heap keyed by the value's bytes, so a
//!   node lists them largest value first (measured: `12, 11, 10`, `v39, v38`); this merge
//!   keeps them smallest first.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::context::FacetOrder;
use super::hit::FacetKey;
use super::plan::{push_json_str, MergePlan};
use crate::hidden::RESERVED_PREFIX;

/// One facet's merged counts.
#[derive(Default, Debug)]
struct Counts {
    /// `(value, key as the nodes wrote it, count)`.
    numbers: Vec<(f64, String, u64)>,
    /// normalized -> (first spelling, count).
    strings: BTreeMap<String, (String, u64)>,
    number_index: HashMap<u64, usize>,
    /// Some node listed as many values as its limit, so values may be missing.
    truncated: bool,
    /// Duplicates dropped by cross-shard distinct were taken out.
    corrected: bool,
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct Stats {
    min: f64,
    max: f64,
}

/// Merged facets of all nodes.
#[derive(Default, Debug)]
pub struct FacetMerge {
    distribution: BTreeMap<String, Counts>,
    stats: BTreeMap<String, Stats>,
}

/// A key is a number when it reads as one (nodes render numbers with Rust's `f64` display).
fn as_number(key: &str) -> Option<f64> {
    let first = *key.as_bytes().first()?;
    if !(first.is_ascii_digit() || first == b'-') {
        return None;
    }
    key.parse::<f64>().ok().filter(|n| n.is_finite())
}

impl Counts {
    fn add(&mut self, value: &str, count: u64) {
        if let Some(n) = as_number(value) {
            let FacetKey::Number(bits) = FacetKey::number(n) else {
                return;
            };
            match self.number_index.get(&bits) {
                Some(&i) => self.numbers[i].2 += count,
                None => {
                    self.number_index.insert(bits, self.numbers.len());
                    self.numbers.push((n, value.to_owned(), count));
                }
            }
            return;
        }
        let FacetKey::String(norm) = FacetKey::string(value) else {
            return;
        };
        self.strings
            .entry(norm)
            .or_insert_with(|| (value.to_owned(), 0))
            .1 += count;
    }

    fn remove(&mut self, key: &FacetKey) {
        self.corrected = true;
        match key {
            FacetKey::Number(bits) => {
                if let Some(&i) = self.number_index.get(bits) {
                    let c = &mut self.numbers[i].2;
                    *c = c.saturating_sub(1);
                }
            }
            FacetKey::String(norm) => {
                if let Some((_, c)) = self.strings.get_mut(norm) {
                    *c = c.saturating_sub(1);
                }
            }
        }
    }

    /// `(min, max)` of the numbers still counted.
    fn range(&self) -> Option<Stats> {
        self.numbers
            .iter()
            .filter(|n| n.2 > 0)
            .map(|n| n.0)
            .fold(None, |acc: Option<Stats>, n| {
                Some(acc.map_or(Stats { min: n, max: n }, |s| Stats {
                    min: s.min.min(n),
                    max: s.max.max(n),
                }))
            })
    }

    /// Values in display order, truncated: numbers first, then strings.
    fn ordered(mut self, order: FacetOrder, limit: usize) -> Vec<(String, u64)> {
        self.numbers.retain(|n| n.2 > 0);
        self.numbers
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
        let mut strings: Vec<(String, u64)> =
            self.strings.into_values().filter(|s| s.1 > 0).collect();
        let mut numbers: Vec<(String, u64)> =
            self.numbers.into_iter().map(|(_, k, c)| (k, c)).collect();
        if order == FacetOrder::Count {
            // Stable: equal counts stay in value order, as on a node.
            numbers.sort_by_key(|n| Reverse(n.1));
            strings.sort_by_key(|s| Reverse(s.1));
        }
        numbers.truncate(limit);
        strings.truncate(limit - numbers.len());
        numbers.extend(strings);
        numbers
    }
}

impl FacetMerge {
    /// Adds one node's `facetDistribution` and `facetStats`.
    pub fn add(
        &mut self,
        distribution: Option<&RawValue>,
        stats: Option<&RawValue>,
        node_limit: usize,
    ) -> Result<(), serde_json::Error> {
        if let Some(raw) = distribution {
            let d: BTreeMap<String, Vec<(String, u64)>> = parse_nested(raw)?;
            for (facet, values) in d {
                if facet.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                let counts = self.distribution.entry(facet).or_default();
                counts.truncated |= values.len() >= node_limit;
                for (v, c) in values {
                    counts.add(&v, c);
                }
            }
        }
        if let Some(raw) = stats {
            let s: BTreeMap<String, Stats> = serde_json::from_str(raw.get())?;
            for (facet, st) in s {
                if facet.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                self.stats
                    .entry(facet)
                    .and_modify(|m| {
                        m.min = m.min.min(st.min);
                        m.max = m.max.max(st.max);
                    })
                    .or_insert(st);
            }
        }
        Ok(())
    }

    /// The facets reported by some node.
    pub fn names(&self) -> Vec<String> {
        self.distribution.keys().cloned().collect()
    }

    /// Takes one dropped duplicate's values out of `facet`'s counts.
    pub fn remove(&mut self, facet: &str, values: &[FacetKey]) {
        if let Some(counts) = self.distribution.get_mut(facet) {
            values.iter().for_each(|v| counts.remove(v));
        }
    }

    /// Writes `"facetDistribution":{..},"facetStats":{..}`.
    pub fn write(mut self, out: &mut Vec<u8>, plan: &MergePlan) {
        // Dropped duplicates may have held a facet's extreme values: when the counts are
        // complete, the stats are the range of what is still counted.
        for (facet, counts) in &self.distribution {
            if counts.corrected && !counts.truncated {
                match counts.range() {
                    Some(range) => self.stats.insert(facet.clone(), range),
                    None => self.stats.remove(facet),
                };
            }
        }
        out.extend_from_slice(b"\"facetDistribution\":{");
        for (i, (facet, counts)) in self.distribution.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(out, &facet);
            out.extend_from_slice(b":{");
            let order = plan.facet_order(&facet);
            for (j, (value, count)) in counts
                .ordered(order, plan.client_facet_limit)
                .into_iter()
                .enumerate()
            {
                if j > 0 {
                    out.push(b',');
                }
                push_json_str(out, &value);
                out.push(b':');
                out.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"},\"facetStats\":{");
        for (i, (facet, st)) in self.stats.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(out, &facet);
            out.extend_from_slice(b":{\"min\":");
            push_f64(out, st.min);
            out.extend_from_slice(b",\"max\":");
            push_f64(out, st.max);
            out.push(b'}');
        }
        out.push(b'}');
    }
}

fn push_f64(out: &mut Vec<u8>, n: f64) {
    // Serializing a number into a Vec cannot fail; non-finite values become null like serde_json.
    let _ = serde_json::to_writer(&mut *out, &n);
}

/// `{facet: {value: count}}` keeping each facet's value order.
fn parse_nested(raw: &RawValue) -> Result<BTreeMap<String, Vec<(String, u64)>>, serde_json::Error> {
    let outer: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get())?;
    outer
        .into_iter()
        .map(|(facet, inner)| {
            let values: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(inner.get())?;
            let values = values
                .into_iter()
                .filter_map(|(k, v)| v.as_u64().map(|c| (k, c)))
                .collect();
            Ok((facet, values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::plan::plan;
    use crate::search::IndexContext;

    fn raw(s: &str) -> Box<RawValue> {
        serde_json::from_str(s).unwrap()
    }

    fn render(m: FacetMerge, ctx: &IndexContext) -> String {
        let plan = plan(b"{}", ctx).unwrap().merge;
        let mut out = vec![b'{'];
        m.write(&mut out, &plan);
        out.push(b'}');
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counts_are_summed_ordered_and_truncated_like_one_node() {
        let mut m = FacetMerge::default();
        m.add(
            Some(&raw(
                r#"{"g":{"2":1,"10":4,"Drama":2,"action":1},"_miroir_shard":{"1":3}}"#,
            )),
            Some(&raw(r#"{"g":{"min":2.0,"max":10.0}}"#)),
            100,
        )
        .unwrap();
        m.add(
            Some(&raw(r#"{"g":{"10":1,"Action":5,"comedy":1}}"#)),
            Some(&raw(r#"{"g":{"min":10.0,"max":10.0}}"#)),
            100,
        )
        .unwrap();
        let alpha = IndexContext {
            max_values_per_facet: 4,
            ..IndexContext::default()
        };
        assert_eq!(
            render(m, &alpha),
            r#"{"facetDistribution":{"g":{"2":1,"10":5,"action":6,"comedy":1}},"facetStats":{"g":{"min":2.0,"max":10.0}}}"#
        );

        let mut m = FacetMerge::default();
        m.add(
            Some(&raw(r#"{"g":{"1":1,"2":3,"a":2,"b":7,"c":2}}"#)),
            None,
            100,
        )
        .unwrap();
        let count = IndexContext {
            max_values_per_facet: 4,
            sort_facet_values_by: [("*".to_owned(), FacetOrder::Count)].into(),
            ..IndexContext::default()
        };
        assert_eq!(
            render(m, &count),
            r#"{"facetDistribution":{"g":{"2":3,"1":1,"b":7,"a":2}},"facetStats":{}}"#
        );
    }

    #[test]
    fn dropped_duplicates_leave_the_counts_and_the_stats() {
        let mut m = FacetMerge::default();
        m.add(
            Some(&raw(r#"{"p":{"1":1,"5":1,"9":1}}"#)),
            Some(&raw(r#"{"p":{"min":1.0,"max":9.0}}"#)),
            100,
        )
        .unwrap();
        m.remove("p", &[FacetKey::number(9.0)]);
        assert_eq!(
            render(m, &IndexContext::default()),
            r#"{"facetDistribution":{"p":{"1":1,"5":1}},"facetStats":{"p":{"min":1.0,"max":5.0}}}"#
        );
    }
}
