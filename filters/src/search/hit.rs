//! One node hit: what the merge reads from it (ranking key, distinct value) and how it is
//! written back for the client, stripped of what the client did not ask for.

use serde_json::{Map, Value};

use super::context::is_displayed;
use super::json::write_object;
use super::plan::{MergePlan, RankBy};
use super::rank::{parse_details, KeyPart, RankKey};
use super::scan::{object_entries, ScannedHit};
use crate::hidden::RESERVED_PREFIX;

/// A hit as the merge sees it: scanned once, its entries serve the ranking key, the distinct
/// value and the re-writing.
#[derive(Debug)]
pub struct HitView<'a> {
    pub hit: ScannedHit<'a>,
    pub key: RankKey<'a>,
    /// The top-level field holding the distinct attribute, when present.
    pub distinct: Option<&'a str>,
}

const SCORE: &str = "_rankingScore";
pub(crate) const DETAILS: &str = "_rankingScoreDetails";
const FORMATTED: &str = "_formatted";
const MATCHES: &str = "_matchesPosition";
const GEO_DISTANCE: &str = "_geoDistance";
const VECTORS: &str = "_vectors";

/// Reads the ranking key (from what `rank_by` asked the nodes for) and the distinct field of a
/// scanned hit.
pub fn view<'a>(
    hit: ScannedHit<'a>,
    rank_by: RankBy,
    distinct_top: Option<&str>,
) -> Result<HitView<'a>, String> {
    let key = match rank_by {
        RankBy::Details => {
            let details = hit
                .get(DETAILS)
                .ok_or_else(|| format!("a hit has no {DETAILS}"))?;
            parse_details(details).map_err(|e| format!("bad {DETAILS}: {e}"))?
        }
        RankBy::Score => {
            let score = hit
                .get(SCORE)
                .ok_or_else(|| format!("a hit has no {SCORE}"))?;
            let score = score.parse().map_err(|_| format!("bad {SCORE}: {score}"))?;
            RankKey {
                parts: smallvec::smallvec![KeyPart::Score(score)],
            }
        }
    };
    let distinct = distinct_top.and_then(|d| hit.get(d));
    Ok(HitView { hit, key, distinct })
}

/// What to do with one entry of an object being re-written.
enum Action {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// Where a hit is written: bytes Miroir writes, and slices of the hit it sends as the node
/// wrote them.
pub trait HitSink<'a> {
    fn owned(&mut self) -> &mut Vec<u8>;
    /// `bytes`, a slice of the hit being written, comes next.
    fn node(&mut self, bytes: &'a str);
}

impl<'a> HitSink<'a> for Vec<u8> {
    fn owned(&mut self) -> &mut Vec<u8> {
        self
    }
    fn node(&mut self, bytes: &'a str) {
        self.extend_from_slice(bytes.as_bytes());
    }
}

/// Appends `hit` to `out` as the client must see it.
#[cfg(test)]
pub fn write_hit(out: &mut Vec<u8>, hit: &str, plan: &MergePlan) -> Result<(), String> {
    let hit = ScannedHit::new(hit).map_err(|e| e.to_string())?;
    write_hit_to(out, &hit, plan)
}

/// Writes `hit` as the client must see it: the node's bytes unchanged unless some field must
/// go; then only the top-level entries are re-written, each run of entries kept as they are
/// sent as the node wrote it, the few values that need editing re-written.
pub fn write_hit_to<'a>(
    sink: &mut impl HitSink<'a>,
    hit: &ScannedHit<'a>,
    plan: &MergePlan,
) -> Result<(), String> {
    let text: &'a str = hit.text;
    // Nothing is written before the first change: an unchanged hit is one slice.
    let mut out = Rewrite {
        text,
        opened: false,
        any_piece: false,
        run: None,
        run_end: 0,
    };
    for entry in &hit.entries {
        match hit_action(&entry.key, entry.value, plan)? {
            Action::Keep => {
                if out.run.is_none() {
                    out.run = Some(entry.key_start);
                }
                out.run_end = entry.value_end;
            }
            Action::Drop => out.change(sink)?,
            Action::Replace(bytes) => {
                out.change(sink)?;
                out.next_piece(sink);
                let o = sink.owned();
                super::plan::push_json_str(o, &entry.key);
                o.push(b':');
                o.extend_from_slice(&bytes);
            }
        }
    }
    if !out.opened {
        sink.node(text);
        return Ok(());
    }
    out.flush_run(sink)?;
    sink.owned().push(b'}');
    Ok(())
}

/// A hit re-written as it is read, with no list of pieces: `{` at the first change, then
/// the runs of entries kept as the node wrote them and the re-written entries, in order.
struct Rewrite<'a> {
    text: &'a str,
    /// `{` written: some entry changed.
    opened: bool,
    /// A piece written since `{`: the next one needs a `,`.
    any_piece: bool,
    /// Entries kept as they are, not yet written: from this offset to `run_end`.
    run: Option<usize>,
    run_end: usize,
}

impl<'a> Rewrite<'a> {
    /// An entry changes: opens the object the first time, then writes the entries kept
    /// before it.
    fn change(&mut self, sink: &mut impl HitSink<'a>) -> Result<(), String> {
        if !self.opened {
            sink.owned().push(b'{');
            self.opened = true;
        }
        self.flush_run(sink)
    }

    fn next_piece(&mut self, sink: &mut impl HitSink<'a>) {
        if self.any_piece {
            sink.owned().push(b',');
        }
        self.any_piece = true;
    }

    /// Writes the entries kept since the last change.
    fn flush_run(&mut self, sink: &mut impl HitSink<'a>) -> Result<(), String> {
        if let Some(start) = self.run.take() {
            let bytes = self
                .text
                .get(start..self.run_end)
                .ok_or("a hit entry outside the hit")?;
            self.next_piece(sink);
            sink.node(bytes);
        }
        Ok(())
    }
}

fn hit_action(name: &str, value: &str, plan: &MergePlan) -> Result<Action, String> {
    if name.starts_with(RESERVED_PREFIX) {
        return Ok(Action::Drop);
    }
    match name {
        SCORE if plan.show_score => Ok(Action::Keep),
        SCORE => Ok(Action::Drop),
        DETAILS if !plan.show_details => Ok(Action::Drop),
        DETAILS => match &plan.enforce_displayed {
            Some(displayed) => redact_details(value, displayed),
            None => Ok(Action::Keep),
        },
        FORMATTED => filter_object(value, |k| {
            k.starts_with(RESERVED_PREFIX)
                || plan.strip_formatted.iter().any(|s| s == k)
                || plan
                    .project_formatted
                    .as_ref()
                    .is_some_and(|keep| !keep.iter().any(|a| a == k))
        }),
        MATCHES => filter_object(value, |k| {
            k.starts_with(RESERVED_PREFIX) || !is_displayed(plan.enforce_displayed.as_deref(), k)
        }),
        GEO_DISTANCE | VECTORS => Ok(Action::Keep),
        _ if plan
            .project
            .as_ref()
            .is_some_and(|keep| !keep.iter().any(|a| a == name)) =>
        {
            Ok(Action::Drop)
        }
        _ => strip_paths(name, value, &plan.strip),
    }
}

/// Drops the entries of the object `raw` whose key matches `drop`.
fn filter_object(raw: &str, drop: impl Fn(&str) -> bool) -> Result<Action, String> {
    let fields = object_entries(raw).map_err(|e| e.to_string())?;
    if !fields.iter().any(|e| drop(&e.key)) {
        return Ok(Action::Keep);
    }
    let mut out = Vec::with_capacity(raw.len());
    write_object(
        &mut out,
        fields
            .iter()
            .filter(|e| !drop(&e.key))
            .map(|e| (&*e.key, e.value.as_bytes())),
    );
    Ok(Action::Replace(out))
}

/// Removes the merge-only `paths` from the top-level field `name`.
fn strip_paths(name: &str, value: &str, paths: &[String]) -> Result<Action, String> {
    let mut nested: Vec<&str> = Vec::new();
    for path in paths {
        if path == name {
            return Ok(Action::Drop);
        }
        if let Some(rest) = path.strip_prefix(name).and_then(|r| r.strip_prefix('.')) {
            nested.push(rest);
        }
    }
    if nested.is_empty() {
        return Ok(Action::Keep);
    }
    // Rare: a nested distinct or facet field under an object the client retrieves in part.
    let mut v: Value = serde_json::from_str(value).map_err(|e| e.to_string())?;
    for rest in nested {
        remove_path(&mut v, rest);
    }
    match &v {
        Value::Object(m) if m.is_empty() => Ok(Action::Drop),
        _ => serde_json::to_vec(&v)
            .map(Action::Replace)
            .map_err(|e| e.to_string()),
    }
}

fn remove_path(v: &mut Value, path: &str) {
    match v {
        Value::Object(m) => {
            if m.remove(path).is_some() {
                return;
            }
            if let Some((head, rest)) = path.split_once('.') {
                if let Some(child) = m.get_mut(head) {
                    remove_path(child, rest);
                    if child.as_object().is_some_and(Map::is_empty) {
                        m.remove(head);
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| remove_path(i, path)),
        _ => {}
    }
}

/// Rewrites sort rules on non-displayed fields as one node with the client's
/// `displayedAttributes` shows them: `"<hidden-rule-N>": {"order": N, "value": "<hidden>"}`.
fn redact_details(raw: &str, displayed: &[String]) -> Result<Action, String> {
    let fields = object_entries(raw).map_err(|e| e.to_string())?;
    // Meilisearch redacts unless the field's exact name is displayed (a parent is not enough).
    let hidden =
        |rule: &str| sort_field(rule).is_some_and(|field| !displayed.iter().any(|d| d == field));
    if !fields.iter().any(|e| hidden(&e.key)) {
        return Ok(Action::Keep);
    }
    let mut out = Vec::with_capacity(raw.len());
    out.push(b'{');
    for (i, e) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if hidden(&e.key) {
            #[derive(serde::Deserialize)]
            struct Order {
                order: usize,
            }
            let o: Order = serde_json::from_str(e.value).map_err(|e| e.to_string())?;
            let order = o.order;
            out.extend_from_slice(
                format!("\"<hidden-rule-{order}>\":{{\"order\":{order},\"value\":\"<hidden>\"}}")
                    .as_bytes(),
            );
        } else {
            super::plan::push_json_str(&mut out, &e.key);
            out.push(b':');
            out.extend_from_slice(e.value.as_bytes());
        }
    }
    out.push(b'}');
    Ok(Action::Replace(out))
}

/// The field of a `field:asc|desc` sort rule key (not geo).
fn sort_field(rule: &str) -> Option<&str> {
    if rule.starts_with("_geoPoint(") {
        return None;
    }
    rule.strip_suffix(":asc")
        .or_else(|| rule.strip_suffix(":desc"))
}

/// Facet-like values of `path` in a hit, for distinct and facet corrections: numbers by value,
/// strings trimmed and lowercased as Meilisearch normalizes facet strings, arrays flattened.
pub fn values_at(hit: &str, path: &str) -> Vec<FacetKey> {
    let Ok(doc) = serde_json::from_str::<Value>(hit) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect(&doc, path, &mut out);
    out.dedup();
    out
}

/// Values of a distinct field already isolated as the top-level `raw` for `path`'s head.
pub fn values_of_field(raw: &str, rest: Option<&str>) -> Vec<FacetKey> {
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match rest {
        Some(rest) => collect(&v, rest, &mut out),
        None => flatten(&v, &mut out),
    }
    out
}

/// A normalized facet value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FacetKey {
    /// `f64` bits, `-0.0` folded into `0.0`.
    Number(u64),
    String(String),
}

impl FacetKey {
    pub fn number(n: f64) -> Self {
        FacetKey::Number(if n == 0.0 { 0 } else { n.to_bits() })
    }
    pub fn string(s: &str) -> Self {
        FacetKey::String(s.trim().to_lowercase())
    }
}

fn collect(v: &Value, path: &str, out: &mut Vec<FacetKey>) {
    match v {
        Value::Object(m) => {
            if let Some(child) = m.get(path) {
                flatten(child, out);
            }
            let mut split = path.match_indices('.');
            for (i, _) in split.by_ref() {
                if let Some(child) = m.get(&path[..i]) {
                    collect(child, &path[i + 1..], out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, path, out)),
        _ => {}
    }
}

fn flatten(v: &Value, out: &mut Vec<FacetKey>) {
    let key = match v {
        Value::Number(n) => n.as_f64().map(FacetKey::number),
        Value::String(s) => Some(FacetKey::string(s)),
        Value::Bool(b) => Some(FacetKey::String(b.to_string())),
        Value::Array(items) => {
            items.iter().for_each(|i| flatten(i, out));
            None
        }
        _ => None,
    };
    if let Some(k) = key {
        if !out.contains(&k) {
            out.push(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::plan::{plan, MergePlan};
    use crate::search::IndexContext;

    fn merge_plan(request: &str) -> MergePlan {
        plan(request.as_bytes(), &IndexContext::default())
            .unwrap()
            .merge
    }

    fn written(hit: &str, plan: &MergePlan) -> String {
        let mut out = Vec::new();
        write_hit(&mut out, hit, plan).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_hit_with_nothing_to_strip_is_copied_byte_for_byte() {
        let plan = merge_plan(r#"{"showRankingScoreDetails":true}"#);
        let hit = r#"{"id":1, "title":"caf\u00e9","_rankingScoreDetails":{"words":{"order":0,"score":1.0}}}"#;
        assert_eq!(written(hit, &plan), hit);
    }

    #[test]
    fn shard_field_scores_and_details_are_stripped_everywhere() {
        let plan = merge_plan(r#"{"q":"a"}"#);
        let hit = r#"{"id":1,"_miroir_shard":3,"_formatted":{"id":"1","_miroir_shard":"3"},"_matchesPosition":{"_miroir_shard":[{"start":0,"length":1}]},"_rankingScore":0.5,"_rankingScoreDetails":{}}"#;
        assert_eq!(
            written(hit, &plan),
            r#"{"id":1,"_formatted":{"id":"1"},"_matchesPosition":{}}"#
        );
    }

    #[test]
    fn changes_at_either_end_or_everywhere_keep_the_object_well_formed() {
        let plan = merge_plan(r#"{"q":"a"}"#);
        for (hit, want) in [
            (r#"{"_miroir_shard":1,"id":2}"#, r#"{"id":2}"#),
            (r#"{"_miroir_shard":1,"_rankingScore":0.5}"#, "{}"),
            (
                r#"{"_formatted":{"id":"1","_miroir_shard":"3"},"id":1}"#,
                r#"{"_formatted":{"id":"1"},"id":1}"#,
            ),
            (
                r#"{"id":1,"_miroir_shard":3,"title":"t","_rankingScore":0.5}"#,
                r#"{"id":1,"title":"t"}"#,
            ),
            (
                r#"{"id":1,"_formatted":{"_miroir_shard":"3"},"_formatted":{"id":"1"}}"#,
                r#"{"id":1,"_formatted":{},"_formatted":{"id":"1"}}"#,
            ),
        ] {
            assert_eq!(written(hit, &plan), want, "{hit}");
        }
    }

    #[test]
    fn asked_for_scores_are_kept() {
        let plan = merge_plan(r#"{"showRankingScore":true}"#);
        assert_eq!(
            written(
                r#"{"id":1,"_rankingScore":0.5,"_rankingScoreDetails":{}}"#,
                &plan
            ),
            r#"{"id":1,"_rankingScore":0.5}"#
        );
    }

    #[test]
    fn merge_only_fields_are_stripped_from_hits_and_formatted() {
        let plan = merge_plan(
            r#"{"attributesToRetrieve":["title","meta.size"],"distinct":"meta.color","attributesToHighlight":["title"]}"#,
        );
        assert_eq!(plan.strip, ["meta.color"]);
        let hit = r#"{"title":"x","meta":{"size":2,"color":"red"},"_formatted":{"title":"x","meta":{"size":"2","color":"red"}},"_rankingScoreDetails":{}}"#;
        assert_eq!(
            written(hit, &plan),
            r#"{"title":"x","meta":{"size":2},"_formatted":{"title":"x","meta":{"size":"2","color":"red"}}}"#
        );
        let plan = merge_plan(r#"{"attributesToRetrieve":["title"],"distinct":"brand"}"#);
        assert_eq!(
            written(
                r#"{"title":"x","brand":"b","_rankingScoreDetails":{}}"#,
                &plan
            ),
            r#"{"title":"x"}"#
        );
    }

    #[test]
    fn hidden_sort_rules_are_redacted_when_miroir_enforces_displayed_attributes() {
        let ctx = IndexContext {
            displayed_attributes: Some(vec!["title".into()]),
            node_display: crate::search::NodeDisplay::All,
            ..IndexContext::default()
        };
        let plan = plan(
            br#"{"showRankingScoreDetails":true,"showMatchesPosition":true}"#,
            &ctx,
        )
        .unwrap()
        .merge;
        let hit = r#"{"title":"x","_matchesPosition":{"title":[],"secret":[]},"_rankingScoreDetails":{"secret:asc":{"order":0,"value":3},"title:asc":{"order":1,"value":"x"}}}"#;
        assert_eq!(
            written(hit, &plan),
            r#"{"title":"x","_matchesPosition":{"title":[]},"_rankingScoreDetails":{"<hidden-rule-0>":{"order":0,"value":"<hidden>"},"title:asc":{"order":1,"value":"x"}}}"#
        );
    }

    #[test]
    fn facet_values_are_normalized_and_flattened() {
        let raw = r#"{"c":[" Red","red",1,-0.0,0,{"x":2}],"o":{"x":[3]}}"#;
        assert_eq!(
            values_at(raw, "c"),
            vec![
                FacetKey::string("red"),
                FacetKey::number(1.0),
                FacetKey::number(0.0)
            ]
        );
        assert_eq!(values_at(raw, "o.x"), vec![FacetKey::number(3.0)]);
    }
}
