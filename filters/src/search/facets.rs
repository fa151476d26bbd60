//! `facetDistribution` and `facetStats` summed over nodes, re-ordered and cut as one node
//! with the client's `faceting` settings would show them (see [`super::facet_cut`] for
//! milli's orders and cuts).
//!
//! The nodes hold a widened `maxValuesPerFacet` ([`super::facet_limit`]), so a node lists
//! every value it has unless it holds more than that; the merge then cuts at the client's
//! limit. When some node did cut its list, [`super::facet_section`] tells whether the values
//! shown are still certain; when they are not, the merge shows what it has and logs it.
//!
//! The number of matching documents decides milli's path (and with it the `alpha` order of
//! numbers): a node's hit count is that number for a keyword search; for a semantic one the
//! plan asks every node for the `_miroir_shard` facet, whose counts add up to it. Number and
//! string values are told apart by their key (`"12"` from a string value is read as a
//! number). Known differences from one Meilisearch 1.50 node:
//! - a string spelled differently by different documents (`Blue`, `blue`) shows the spelling
//!   of the first matching document a node indexed; the merge keeps the first node's;
//! - `count` order lists equal counts largest value first; with few matching documents a
//!   node's facet tree can put a value whose tree group matched only through it after other
//!   values of the same count, which no merge can see.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::context::FacetOrder;
use super::facet_cut::Scan;
use super::facet_section::Section;
use super::hit::FacetKey;
use super::plan::{push_json_str, MergePlan};
use crate::hidden::{RESERVED_PREFIX, SHARD_FIELD};

/// A number value: itself and its key as the nodes wrote it.
#[derive(Clone, Debug)]
struct Number {
    value: f64,
    key: String,
}

/// A string value: its normalized form and the first spelling seen.
#[derive(Clone, Debug)]
struct Text {
    normalized: String,
    original: String,
}

/// One facet's merged counts.
#[derive(Default, Debug)]
struct Counts {
    numbers: Section<u64, Number>,
    strings: Section<String, Text>,
    /// Duplicates dropped by cross-shard distinct were taken out.
    corrected: bool,
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct Stats {
    min: f64,
    max: f64,
}

/// Merged facets of all nodes.
#[derive(Debug)]
pub struct FacetMerge {
    distribution: BTreeMap<String, Counts>,
    stats: BTreeMap<String, Stats>,
    /// Matching documents over every node (the `_miroir_shard` counts); `None` when some
    /// node's are unknown.
    candidates: Option<u64>,
}

impl Default for FacetMerge {
    fn default() -> Self {
        Self {
            distribution: BTreeMap::new(),
            stats: BTreeMap::new(),
            candidates: Some(0),
        }
    }
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
    /// Adds one node's list for this facet, in the node's order, which the node took by
    /// `scan` and cut at `limit`.
    fn add_node(&mut self, values: Vec<(String, u64)>, scan: Scan, limit: usize) {
        let mut numbers = Vec::new();
        let mut strings = Vec::new();
        for (key, count) in values {
            if let Some(n) = as_number(&key) {
                if let FacetKey::Number(bits) = FacetKey::number(n) {
                    numbers.push((bits, Number { value: n, key }, count));
                }
            } else if let FacetKey::String(normalized) = FacetKey::string(&key) {
                let text = Text {
                    normalized: normalized.clone(),
                    original: key,
                };
                strings.push((normalized, text, count));
            }
        }
        let (numbers_cut, strings_cut) = scan.cut(limit, numbers.len(), strings.len());
        self.numbers.add_node(numbers, numbers_cut.then_some(scan));
        self.strings.add_node(strings, strings_cut.then_some(scan));
    }

    fn remove(&mut self, key: &FacetKey) {
        self.corrected = true;
        match key {
            FacetKey::Number(bits) => self.numbers.remove_one(bits),
            FacetKey::String(norm) => self.strings.remove_one(norm),
        }
    }

    fn was_cut(&self) -> bool {
        self.numbers.was_cut() || self.strings.was_cut()
    }

    /// `(min, max)` of the numbers still counted.
    fn range(&self) -> Option<Stats> {
        self.numbers
            .entries
            .iter()
            .filter(|n| n.count > 0)
            .map(|n| n.value.value)
            .fold(None, |acc: Option<Stats>, n| {
                Some(acc.map_or(Stats { min: n, max: n }, |s| Stats {
                    min: s.min.min(n),
                    max: s.max.max(n),
                }))
            })
    }

    /// Values in display order, cut at `limit` as one node taking `scan` cuts them (numbers
    /// first, then strings), and whether they are certain.
    fn shown(mut self, order: FacetOrder, scan: Scan, limit: usize) -> (Vec<(String, u64)>, bool) {
        let numbers_before =
            |a: &Number, b: &Number| scan.cmp_numbers((a.value, &a.key), (b.value, &b.key));
        let strings_before = |a: &Text, b: &Text| a.normalized.cmp(&b.normalized);
        match order {
            FacetOrder::Alpha => {
                self.numbers
                    .sort_by(|a, b| numbers_before(&a.value, &b.value));
                self.strings
                    .sort_by(|a, b| strings_before(&a.value, &b.value));
            }
            // milli's heap pops equal counts largest value first.
            FacetOrder::Count => {
                self.numbers.sort_by(|a, b| {
                    (Reverse(a.count), Reverse(a.value.value))
                        .partial_cmp(&(Reverse(b.count), Reverse(b.value.value)))
                        .unwrap_or(Ordering::Equal)
                });
                self.strings.sort_by(|a, b| {
                    (Reverse(a.count), Reverse(&a.value.normalized))
                        .cmp(&(Reverse(b.count), Reverse(&b.value.normalized)))
                });
            }
        }
        let (n, s) = scan.shown(
            limit,
            self.numbers.entries.len(),
            self.strings.entries.len(),
        );
        // Room: one more value of the section would still be shown.
        let numbers_room =
            n == self.numbers.entries.len() && ((limit == 0 && scan == Scan::Levels) || n < limit);
        let every_string = scan == Scan::Levels && n >= limit;
        let strings_room = s == self.strings.entries.len() && (every_string || n + s < limit);
        let certain =
            self.numbers
                .certain(order, n, numbers_room, |node| node == scan, numbers_before)
                && self
                    .strings
                    .certain(order, s, strings_room, |_| true, strings_before);
        let mut out: Vec<(String, u64)> = self
            .numbers
            .entries
            .into_iter()
            .take(n)
            .map(|e| (e.value.key, e.count))
            .collect();
        out.extend(
            self.strings
                .entries
                .into_iter()
                .take(s)
                .map(|e| (e.value.original, e.count)),
        );
        (out, certain)
    }
}

impl FacetMerge {
    /// Adds one node's `facetDistribution` and `facetStats`; `matches` is the node's hit
    /// count, its match count unless it lists `_miroir_shard` counts (a semantic search).
    pub fn add(
        &mut self,
        distribution: Option<&RawValue>,
        stats: Option<&RawValue>,
        matches: Option<u64>,
        plan: &MergePlan,
    ) -> Result<(), serde_json::Error> {
        if let Some(raw) = distribution {
            let mut d: BTreeMap<String, Vec<(String, u64)>> = parse_nested(raw)?;
            let node_candidates = match d.remove(SHARD_FIELD) {
                Some(shards) => (shards.len() < plan.node_facet_limit)
                    .then(|| shards.iter().map(|s| s.1).sum::<u64>()),
                None => matches,
            };
            self.candidates = self.candidates.zip(node_candidates).map(|(a, b)| a + b);
            for (facet, values) in d {
                if facet.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                let scan = Scan::of(plan.facet_order(&facet), node_candidates);
                self.distribution.entry(facet).or_default().add_node(
                    values,
                    scan,
                    plan.node_facet_limit,
                );
            }
        } else {
            self.candidates = None;
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
            if counts.corrected && !counts.was_cut() {
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
            let scan = Scan::of(order, self.candidates);
            let (values, certain) = counts.shown(order, scan, plan.client_facet_limit);
            if !certain {
                log::warn!(
                    target: "miroir::search",
                    "facet `{facet}`: a node holds more matching values than its limit ({}); the values and counts shown may differ from one node's",
                    plan.node_facet_limit
                );
            }
            for (j, (value, count)) in values.into_iter().enumerate() {
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

    fn merge_plan(ctx: &IndexContext) -> MergePlan {
        plan(b"{}", ctx).unwrap().merge
    }

    /// Merges node answers `(facetDistribution, facetStats)` as `ctx` says.
    fn merged(nodes: &[(&str, Option<&str>)], ctx: &IndexContext) -> String {
        let plan = merge_plan(ctx);
        let mut m = FacetMerge::default();
        for (dist, stats) in nodes {
            m.add(Some(&raw(dist)), stats.map(raw).as_deref(), None, &plan)
                .unwrap();
        }
        render(m, ctx)
    }

    fn render(m: FacetMerge, ctx: &IndexContext) -> String {
        let plan = merge_plan(ctx);
        let mut out = vec![b'{'];
        m.write(&mut out, &plan);
        out.push(b'}');
        String::from_utf8(out).unwrap()
    }

    fn ctx(order: FacetOrder, client: usize, node: usize) -> IndexContext {
        IndexContext {
            max_values_per_facet: client,
            node_max_values_per_facet: node,
            sort_facet_values_by: [("*".to_owned(), order)].into(),
            ..IndexContext::default()
        }
    }

    #[test]
    fn counts_are_summed_ordered_and_truncated_like_one_node() {
        let out = merged(
            &[
                (
                    r#"{"g":{"2":1,"10":4,"Drama":2,"action":1},"_miroir_shard":{"1":3}}"#,
                    Some(r#"{"g":{"min":2.0,"max":10.0}}"#),
                ),
                (
                    r#"{"g":{"10":1,"Action":5,"comedy":1},"_miroir_shard":{".-":4000}}"#,
                    Some(r#"{"g":{"min":10.0,"max":10.0}}"#),
                ),
            ],
            &ctx(FacetOrder::Alpha, 4, 100),
        );
        assert_eq!(
            out,
            r#"{"facetDistribution":{"g":{"2":1,"10":5,"action":6,"comedy":1}},"facetStats":{"g":{"min":2.0,"max":10.0}}}"#
        );

        // Equal counts: the largest value first, as milli's heap pops them.
        let out = merged(
            &[(r#"{"g":{"1":1,"2":3,"a":2,"b":7,"c":2}}"#, None)],
            &ctx(FacetOrder::Count, 4, 100),
        );
        assert_eq!(
            out,
            r#"{"facetDistribution":{"g":{"2":3,"1":1,"b":7,"c":2}},"facetStats":{}}"#
        );
    }

    #[test]
    fn few_matches_order_numbers_as_text_in_alpha_order() {
        let ctx = ctx(FacetOrder::Alpha, 4, 100);
        let plan = merge_plan(&ctx);
        // Each node's match count from its total (a keyword search) or from the
        // `_miroir_shard` counts (a semantic one).
        let run = |matches: u64, from_shard_facet: bool| {
            let mut m = FacetMerge::default();
            for (dist, shard) in [(r#""1":1,"10":1,"2":1"#, "-"), (r#""11":1,"3":1"#, ".")] {
                let (dist, total) = if from_shard_facet {
                    let d =
                        format!(r#"{{"g":{{{dist}}},"_miroir_shard":{{"{shard}":{matches}}}}}"#);
                    (d, None)
                } else {
                    (format!(r#"{{"g":{{{dist}}}}}"#), Some(matches))
                };
                m.add(Some(&raw(&dist)), None, total, &plan).unwrap();
            }
            render(m, &ctx)
        };
        for from_shard_facet in [false, true] {
            // 3000 matches: milli reads documents, numbers in the order of their text.
            assert_eq!(
                run(1500, from_shard_facet),
                r#"{"facetDistribution":{"g":{"1":1,"10":1,"11":1,"2":1}},"facetStats":{}}"#
            );
            // 3002: milli walks its tree, numbers in numeric order.
            assert_eq!(
                run(1501, from_shard_facet),
                r#"{"facetDistribution":{"g":{"1":1,"2":1,"3":1,"10":1}},"facetStats":{}}"#
            );
        }
    }

    #[test]
    fn numbers_reaching_the_limit_bring_every_string_on_the_tree_path() {
        let out = merged(
            &[(r#"{"g":{"1":5,"2":4,"x":1,"y":1,"z":1}}"#, None)],
            &ctx(FacetOrder::Count, 2, 100),
        );
        assert_eq!(
            out,
            r#"{"facetDistribution":{"g":{"1":5,"2":4,"z":1,"y":1,"x":1}},"facetStats":{}}"#
        );
    }

    #[test]
    fn a_value_below_one_nodes_cut_is_counted_from_the_widened_lists() {
        // Client limit 2, node limit 4: node 0 lists `c` below its top 2.
        let out = merged(
            &[
                (r#"{"g":{"a":9,"b":8,"c":7,"d":1}}"#, None),
                (r#"{"g":{"c":9,"e":8}}"#, None),
            ],
            &ctx(FacetOrder::Count, 2, 4),
        );
        assert_eq!(
            out,
            r#"{"facetDistribution":{"g":{"c":16,"a":9}},"facetStats":{}}"#
        );
    }

    #[test]
    fn dropped_duplicates_leave_the_counts_and_the_stats() {
        let plan = merge_plan(&IndexContext::default());
        let mut m = FacetMerge::default();
        m.add(
            Some(&raw(r#"{"p":{"1":1,"5":1,"9":1}}"#)),
            Some(&raw(r#"{"p":{"min":1.0,"max":9.0}}"#)),
            None,
            &plan,
        )
        .unwrap();
        m.remove("p", &[FacetKey::number(9.0)]);
        assert_eq!(
            render(m, &IndexContext::default()),
            r#"{"facetDistribution":{"p":{"1":1,"5":1}},"facetStats":{"p":{"min":1.0,"max":5.0}}}"#
        );
    }
}
