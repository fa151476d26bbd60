//! N node answers to the one answer a single node holding every document would give.
//!
//! Node answers are already in rank order, so the merge is a k-way merge over their hits by
//! the ranking key in `_rankingScoreDetails`; only the hits that reach the client's page are
//! written. [`merge_parts`] answers with pieces: a hit no field of which must change is a
//! slice of its node's answer, Miroir writes only the envelope, separators and re-written hits.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::ops::Range;

use bytes::Bytes;

use serde_json::value::RawValue;

use super::facets::FacetMerge;
use super::hit::{self, values_at, values_of_field, FacetKey, HitSink, HitView};
use super::plan::{DistinctFacets, MergePlan, Pagination, RankBy, SearchPlan};
use super::rank;
use super::scan::{self, Hits, ScannedHit};
use crate::error::{Code, MiroirError};

/// The outcome of a merge: the body as one vector ([`merge`]) or as [`Parts`] ([`merge_parts`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Merged<B = Vec<u8>> {
    /// The client's response body.
    Body(B),
    /// Node answer `answer` is a Meilisearch error; the proxy relays it as it sees fit.
    NodeError { answer: usize },
    /// The nodes of these answers were asked for fewer hits than the window and may hold more
    /// that belong in it: each must be asked for the rest (see [`Depths`]).
    Deeper { answers: Vec<usize> },
}

/// How deep the answers go when nodes were asked for fewer hits than the window
/// (`super::depth`). The default: every answer holds the whole window.
#[derive(Clone, Debug, Default)]
pub struct Depths {
    /// Per first answer (the answers before any continuation): the hits it was asked for,
    /// when fewer than the window.
    pub asked: Vec<Option<usize>>,
    /// `(of, answer)`: `answers[answer]` holds the hits that come after those of
    /// `answers[of]`, to the end of the window. Continuations come after the first answers.
    pub continued: Vec<(usize, usize)>,
}

/// A response body as pieces, in order: slices of the node answers and of `owned`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parts {
    /// The bytes Miroir wrote itself.
    pub owned: Vec<u8>,
    pub segments: Vec<Segment>,
}

/// One piece of a [`Parts`] body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `answers[answer][range]`: bytes of a node answer, sent as the node wrote them.
    Answer { answer: usize, range: Range<usize> },
    /// `owned[range]`.
    Owned(Range<usize>),
}

impl Parts {
    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Answer { range, .. } | Segment::Owned(range) => range.len(),
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body as one vector; `answers` as given to the merge.
    pub fn concat(&self, answers: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for s in &self.segments {
            out.extend_from_slice(match s {
                Segment::Answer { answer, range } => &answers[*answer][range.clone()],
                Segment::Owned(range) => &self.owned[range.clone()],
            });
        }
        out
    }

    /// The body as shared slices of `answers` (the buffers given to the merge) and of one
    /// buffer holding `owned`: nothing is copied.
    pub fn into_bytes(self, answers: &[Bytes]) -> Vec<Bytes> {
        let owned = Bytes::from(self.owned);
        self.segments
            .into_iter()
            .map(|s| match s {
                Segment::Answer { answer, range } => answers[answer].slice(range),
                Segment::Owned(range) => owned.slice(range),
            })
            .collect()
    }
}

/// Builds [`Parts`]: bytes written to [`PartsWriter::owned`] become owned segments, node
/// bytes passed to [`PartsWriter::answer`] become slices of the answer.
struct PartsWriter<'a> {
    answers: &'a [&'a [u8]],
    parts: Parts,
    /// Where the owned bytes not yet in a segment start.
    pending: usize,
}

impl<'a> PartsWriter<'a> {
    /// Room for `bytes` written by Miroir and `segments` pieces.
    fn new(answers: &'a [&'a [u8]], bytes: usize, segments: usize) -> Self {
        Self {
            answers,
            parts: Parts {
                owned: Vec::with_capacity(bytes),
                segments: Vec::with_capacity(segments),
            },
            pending: 0,
        }
    }

    fn owned(&mut self) -> &mut Vec<u8> {
        &mut self.parts.owned
    }

    fn close_owned(&mut self) {
        let end = self.parts.owned.len();
        if end > self.pending {
            self.parts.segments.push(Segment::Owned(self.pending..end));
            self.pending = end;
        }
    }

    /// `bytes`, a slice of `answers[answer]`, comes next; copied if it is not one.
    fn answer(&mut self, answer: usize, bytes: &[u8]) {
        let Some(base) = self.answers.get(answer) else {
            self.parts.owned.extend_from_slice(bytes);
            return;
        };
        let start = (bytes.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        if start > base.len() || bytes.len() > base.len() - start {
            self.parts.owned.extend_from_slice(bytes);
            return;
        }
        let range = start..start + bytes.len();
        // What Miroir wrote since the previous slice of the same answer is what the answer has
        // between the two (consecutive hits and the comma between them): one slice.
        let written = &self.parts.owned[self.pending..];
        if let Some(Segment::Answer {
            answer: last,
            range: prev,
        }) = self.parts.segments.last_mut()
        {
            if *last == answer
                && prev.end <= range.start
                && base.get(prev.end..range.start) == Some(written)
            {
                prev.end = range.end;
                self.parts.owned.truncate(self.pending);
                return;
            }
        }
        self.close_owned();
        self.parts.segments.push(Segment::Answer { answer, range });
    }

    fn finish(mut self) -> Parts {
        self.close_owned();
        self.parts
    }
}

/// What the merge reads of one node answer; the hits are scanned as the merge takes them.
struct NodeAnswer<'a> {
    hits: Option<Hits<'a>>,
    processing_time_ms: u64,
    estimated_total_hits: Option<usize>,
    total_hits: Option<usize>,
    facet_distribution: Option<&'a RawValue>,
    facet_stats: Option<&'a RawValue>,
    request_uid: Option<&'a RawValue>,
    query_vector: Option<&'a RawValue>,
    /// Present on semantic and hybrid searches.
    semantic_hit_count: Option<u64>,
    /// Present when the client asked for `showPerformanceDetails`.
    performance_details: Option<&'a RawValue>,
    code: bool,
}

impl<'a> NodeAnswer<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, String> {
        let f = scan::answer_fields(bytes)?;
        let present = |v: Option<&'a str>| v.filter(|v| *v != "null");
        let num = |v: Option<&'a str>| -> Result<Option<u64>, String> {
            present(v)
                .map(|v| serde_json::from_str::<u64>(v).map_err(|e| format!("{v}: {e}")))
                .transpose()
        };
        let count = |v| -> Result<Option<usize>, String> {
            num(v)?
                .map(|n| usize::try_from(n).map_err(|e| e.to_string()))
                .transpose()
        };
        let raw = |v: Option<&'a str>| present(v).map(scan::raw).transpose();
        Ok(Self {
            hits: f.hit_cursor(bytes),
            processing_time_ms: num(f.processing_time_ms)?.unwrap_or(0),
            estimated_total_hits: count(f.estimated_total_hits)?,
            total_hits: count(f.total_hits)?,
            facet_distribution: raw(f.facet_distribution)?,
            facet_stats: raw(f.facet_stats)?,
            request_uid: raw(f.request_uid)?,
            query_vector: raw(f.query_vector)?,
            semantic_hit_count: num(f.semantic_hit_count)?,
            performance_details: raw(f.performance_details)?,
            code: present(f.code).is_some(),
        })
    }

    /// Every match the node counted, in either pagination mode (also the number it counted
    /// facets over, for a keyword search).
    fn matches(&self) -> Option<usize> {
        self.total_hits.or(self.estimated_total_hits)
    }
}

/// Whether a hit came from the semantic side of a search: its ranking details hold the
/// `vectorSort` rule (keyword hits never do).
fn is_semantic(hit: &ScannedHit<'_>) -> bool {
    hit.get(hit::DETAILS)
        .and_then(|d| scan::object_entries(d).ok())
        .is_some_and(|rules| rules.iter().any(|r| r.key == "vectorSort"))
}

fn invalid(node: usize, what: impl std::fmt::Display) -> MiroirError {
    MiroirError::new(
        Code::InvalidNodeAnswer,
        format!("node answer {node} is not a search response: {what}"),
    )
}

/// One node's hits in its rank order: its first answer, then the continuation it was asked
/// for when that answer fell short of the window.
struct Stream<'a> {
    hits: Hits<'a>,
    /// The answer `hits` reads.
    answer: usize,
    /// The hits the first answer was asked for, when fewer than the window.
    asked: Option<usize>,
    /// Hits taken so far.
    taken: usize,
    then: Option<(usize, Hits<'a>)>,
}

impl<'a> Stream<'a> {
    /// The next hit and the answer it is in.
    fn next_hit(&mut self) -> Result<Option<(usize, ScannedHit<'a>)>, MiroirError> {
        loop {
            if let Some(hit) = self.hits.next_hit().map_err(|e| invalid(self.answer, e))? {
                self.taken += 1;
                return Ok(Some((self.answer, hit)));
            }
            match self.then.take() {
                Some((answer, hits)) => {
                    (self.answer, self.hits) = (answer, hits);
                    // The continuation runs to the end of the window.
                    self.asked = None;
                }
                None => return Ok(None),
            }
        }
    }

    /// Ended where the node was asked to stop, not where its matches did.
    fn cut_short(&self) -> bool {
        self.asked.is_some_and(|k| self.taken >= k)
    }
}

/// A stream head in the heap; the greatest is the best hit.
struct Head<'a> {
    hit: HitView<'a>,
    node: usize,
    answer: usize,
    pos: usize,
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Equal keys: earlier position, then lower node, first. Deterministic (a single node
        // breaks the tie by its internal document id, which no merge can see), and it takes
        // tied hits from the nodes in turn, as their shares of the window are drawn.
        rank::compare(&self.hit.key, &other.hit.key)
            .then_with(|| other.pos.cmp(&self.pos))
            .then_with(|| other.node.cmp(&self.node))
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

/// A hit of answer `answer` written to a [`PartsWriter`].
struct HitWriter<'w, 'a> {
    w: &'w mut PartsWriter<'a>,
    answer: usize,
}

impl<'h> HitSink<'h> for HitWriter<'_, '_> {
    fn owned(&mut self) -> &mut Vec<u8> {
        self.w.owned()
    }
    fn node(&mut self, bytes: &'h str) {
        self.w.answer(self.answer, bytes.as_bytes());
    }
}

/// Merges the node answers of `plan`'s sub-requests into one body.
pub fn merge(plan: &SearchPlan, answers: &[&[u8]]) -> Result<Merged, MiroirError> {
    Ok(match merge_parts(plan, answers)? {
        Merged::Body(parts) => Merged::Body(parts.concat(answers)),
        Merged::NodeError { answer } => Merged::NodeError { answer },
        Merged::Deeper { answers } => Merged::Deeper { answers },
    })
}

/// Merges the node answers of `plan`'s sub-requests into a body that reuses their bytes.
pub fn merge_parts(plan: &SearchPlan, answers: &[&[u8]]) -> Result<Merged<Parts>, MiroirError> {
    merge_parts_at(plan, answers, &Depths::default())
}

/// [`merge_parts`] over answers as deep as `depths` says.
pub fn merge_parts_at(
    plan: &SearchPlan,
    answers: &[&[u8]],
    depths: &Depths,
) -> Result<Merged<Parts>, MiroirError> {
    let plan = &plan.merge;
    let firsts = answers.len().saturating_sub(depths.continued.len());
    let mut parsed = Vec::with_capacity(answers.len());
    for (i, bytes) in answers.iter().enumerate() {
        let a = NodeAnswer::read(bytes).map_err(|e| invalid(i, e))?;
        if a.hits.is_none() {
            if a.code {
                return Ok(Merged::NodeError { answer: i });
            }
            return Err(invalid(i, "no `hits`"));
        }
        parsed.push(a);
    }
    if plan.forwarded {
        return Err(invalid(
            0,
            "it accepted a search body Miroir could not read",
        ));
    }

    let mut streams: Vec<Stream<'_>> = Vec::with_capacity(firsts);
    for (answer, a) in parsed.iter_mut().enumerate().take(firsts) {
        streams.extend(a.hits.take().map(|hits| Stream {
            hits,
            answer,
            asked: depths.asked.get(answer).copied().flatten(),
            taken: 0,
            then: None,
        }));
    }
    for &(of, answer) in &depths.continued {
        let hits = parsed.get_mut(answer).and_then(|a| a.hits.take());
        match (streams.get_mut(of), hits) {
            (Some(stream), Some(hits)) if answer >= firsts => stream.then = Some((answer, hits)),
            _ => return Err(invalid(answer, "a continuation of no answer")),
        }
    }
    // Counts, facets and times are the first answers': a continuation only adds hits.
    parsed.truncate(firsts);
    let mut facets = FacetMerge::default();
    if plan.facets_requested {
        for (i, a) in parsed.iter().enumerate() {
            let matches = a.matches().map(|n| n as u64);
            facets
                .add(a.facet_distribution, a.facet_stats, matches, plan)
                .map_err(|e| invalid(i, e))?;
        }
    }
    let Selection {
        page,
        duplicates,
        short,
    } = select(plan, &mut streams, &mut facets)?;
    if !short.is_empty() {
        return Ok(Merged::Deeper { answers: short });
    }

    // Not capped at `maxTotalHits`: one node reports every match it counted and the cap only
    // limits which hits it returns (Meilisearch 1.50, in both pagination modes).
    let total = parsed
        .iter()
        .map(|a| a.matches().unwrap_or(0))
        .sum::<usize>()
        .saturating_sub(duplicates);
    let processing = parsed
        .iter()
        .map(|a| a.processing_time_ms)
        .max()
        .unwrap_or(0);
    let request_uid = parsed.iter().find_map(|a| a.request_uid);

    let semantic_hits = parsed
        .iter()
        .any(|a| a.semantic_hit_count.is_some())
        .then(|| page.iter().filter(|(_, hit)| is_semantic(hit)).count());
    // Room for every hit re-written, the usual case when the client retrieves every field.
    let hit_bytes: usize = page.iter().map(|(_, hit)| hit.text.len() + 1).sum();
    // A re-written hit is usually two segments: the node's bytes, then Miroir's end of it.
    let mut w = PartsWriter::new(answers, hit_bytes + 1024, 2 * page.len() + 4);
    w.owned().extend_from_slice(b"{\"hits\":[");
    for (i, (answer, hit)) in page.iter().enumerate() {
        if i > 0 {
            w.owned().push(b',');
        }
        hit::write_hit_to(
            &mut HitWriter {
                w: &mut w,
                answer: *answer,
            },
            hit,
            plan,
        )
        .map_err(|e| invalid(*answer, e))?;
    }
    let out = w.owned();
    out.extend_from_slice(b"],\"query\":");
    super::plan::push_json_str(out, &plan.query);
    // Every node searched with the same vector; one node shows it after the query.
    if let Some(v) = parsed.iter().find_map(|a| a.query_vector) {
        out.extend_from_slice(b",\"queryVector\":");
        out.extend_from_slice(v.get().as_bytes());
    }
    out.extend_from_slice(b",\"processingTimeMs\":");
    push_num(out, processing);
    write_pagination(out, plan, total);
    if plan.facets_requested {
        out.push(b',');
        facets.write(out, plan);
    }
    if let Some(uid) = request_uid {
        out.extend_from_slice(b",\"requestUid\":");
        out.extend_from_slice(uid.get().as_bytes());
    }
    // The nodes worked side by side: the slowest one's breakdown is the search's.
    let slowest = parsed
        .iter()
        .filter_map(|a| Some((a.processing_time_ms, a.performance_details?)))
        .max_by_key(|(ms, _)| *ms);
    if let Some((_, details)) = slowest {
        out.extend_from_slice(b",\"performanceDetails\":");
        out.extend_from_slice(details.get().as_bytes());
    }
    // Meilisearch counts the page's hits that came from the semantic side.
    if parsed.iter().any(|a| a.semantic_hit_count.is_some()) {
        let semantic = semantic_hits.unwrap_or(0);
        out.extend_from_slice(b",\"semanticHitCount\":");
        push_num(out, semantic as u64);
    }
    out.push(b'}');
    Ok(Merged::Body(w.finish()))
}

/// The client's page, and how many hits cross-shard distinct dropped.
struct Selection<'a> {
    /// `(answer, hit)` in rank order.
    page: Vec<(usize, ScannedHit<'a>)>,
    duplicates: usize,
    /// Streams cut short of the window while it still took their hits (see [`Depths`]).
    short: Vec<usize>,
}

/// Walks the node hits best first, scanning each node's answer only as far as it is taken;
/// with distinct, drains them all to drop and count every cross-shard duplicate, taking them
/// out of the facet counts too.
///
/// A stream cut short while the window still takes hits is noted and the walk goes on without
/// it, to find every such stream at once; the page is then not used.
fn select<'a>(
    plan: &MergePlan,
    cursors: &mut [Stream<'a>],
    facets: &mut FacetMerge,
) -> Result<Selection<'a>, MiroirError> {
    let distinct_path = plan.distinct.as_deref();
    let distinct_top = distinct_path.map(|d| d.split('.').next().unwrap_or(d));
    let distinct_rest = distinct_path
        .and_then(|d| d.split_once('.'))
        .map(|(_, r)| r);
    let mut heap = BinaryHeap::with_capacity(cursors.len());
    let push = |heap: &mut BinaryHeap<Head<'a>>, cursor: &mut Stream<'a>, node, pos| {
        push_head(heap, cursor, node, pos, plan.rank_by, distinct_top)
    };
    for (node, cursor) in cursors.iter_mut().enumerate() {
        push(&mut heap, cursor, node, 0)?;
    }
    let mut short = Vec::new();

    let end = plan.offset + plan.limit;
    let mut page = Vec::with_capacity(plan.limit);
    let mut kept = 0usize;
    let mut duplicates = 0usize;
    let mut seen: HashSet<FacetKey> = HashSet::new();
    while let Some(head) = heap.pop() {
        let Head {
            hit,
            node,
            answer,
            pos,
        } = head;
        if distinct_path.is_some() {
            let values = hit
                .distinct
                .map(|raw| values_of_field(raw, distinct_rest))
                .unwrap_or_default();
            if values.iter().any(|v| seen.contains(v)) {
                // A better hit with this value came from another node: one node would have
                // dropped this one, from the page, the total and the facet counts.
                duplicates += 1;
                uncount(plan, facets, hit.hit.text);
                push(&mut heap, &mut cursors[node], node, pos + 1)?;
                continue;
            }
            seen.extend(values);
        } else if kept >= end {
            break;
        }
        if (plan.offset..end).contains(&kept) {
            page.push((answer, hit.hit));
        }
        kept += 1;
        // The next hit of this node is scanned only now that this one is taken.
        if distinct_path.is_some() || kept < end {
            let pushed = push(&mut heap, &mut cursors[node], node, pos + 1)?;
            if !pushed && cursors[node].cut_short() {
                short.push(cursors[node].answer);
            }
        }
    }
    Ok(Selection {
        page,
        duplicates,
        short,
    })
}

/// Takes a dropped duplicate's facet values out of the counts.
fn uncount(plan: &MergePlan, facets: &mut FacetMerge, hit: &str) {
    let names = match &plan.distinct_facets {
        DistinctFacets::None => return,
        DistinctFacets::Named(names) => names.clone(),
        DistinctFacets::Reported => facets.names(),
    };
    for facet in names {
        let values = values_at(hit, &facet);
        facets.remove(&facet, &values);
    }
}

/// Scans the next hit of `cursor` into the heap; whether there was one.
fn push_head<'a>(
    heap: &mut BinaryHeap<Head<'a>>,
    cursor: &mut Stream<'a>,
    node: usize,
    pos: usize,
    rank_by: RankBy,
    distinct_top: Option<&str>,
) -> Result<bool, MiroirError> {
    let Some((answer, scanned)) = cursor.next_hit()? else {
        return Ok(false);
    };
    let hit = hit::view(scanned, rank_by, distinct_top).map_err(|e| invalid(answer, e))?;
    heap.push(Head {
        hit,
        node,
        answer,
        pos,
    });
    Ok(true)
}

fn push_num(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The client's own `offset` and `limit` are echoed, as one node echoes them even past
/// `maxTotalHits`.
pub(super) fn write_pagination(out: &mut Vec<u8>, plan: &MergePlan, total: usize) {
    match plan.pagination {
        Pagination::OffsetLimit { offset, limit } => {
            out.extend_from_slice(b",\"limit\":");
            push_num(out, limit);
            out.extend_from_slice(b",\"offset\":");
            push_num(out, offset);
            out.extend_from_slice(b",\"estimatedTotalHits\":");
            push_num(out, total);
        }
        Pagination::Page {
            page,
            hits_per_page,
        } => {
            let pages = if hits_per_page == 0 {
                0
            } else {
                total.div_ceil(hits_per_page)
            };
            out.extend_from_slice(b",\"hitsPerPage\":");
            push_num(out, hits_per_page);
            out.extend_from_slice(b",\"page\":");
            push_num(out, page);
            out.extend_from_slice(b",\"totalPages\":");
            push_num(out, pages);
            out.extend_from_slice(b",\"totalHits\":");
            push_num(out, total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::plan::plan;
    use crate::search::IndexContext;

    fn hit(id: u32, words: f64) -> String {
        format!(
            r#"{{"id":{id},"_miroir_shard":0,"_rankingScoreDetails":{{"words":{{"order":0,"score":{words}}}}}}}"#
        )
    }

    fn answer(hits: &[String], total: usize) -> String {
        format!(
            r#"{{"hits":[{}],"query":"x","processingTimeMs":{total},"limit":9,"offset":0,"estimatedTotalHits":{total},"requestUid":"u-{total}"}}"#,
            hits.join(",")
        )
    }

    #[test]
    fn hits_are_merged_in_rank_order_with_meilisearch_field_order() {
        let p = plan(
            br#"{"q":"x","offset":1,"limit":2}"#,
            &IndexContext::default(),
        )
        .unwrap();
        let a = answer(&[hit(1, 1.0), hit(2, 0.5)], 7);
        let b = answer(&[hit(3, 0.75), hit(4, 0.25)], 3);
        let Merged::Body(body) = merge(&p, &[a.as_bytes(), b.as_bytes()]).unwrap() else {
            panic!("not a body");
        };
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"hits":[{"id":3},{"id":2}],"query":"x","processingTimeMs":7,"limit":2,"offset":1,"estimatedTotalHits":10,"requestUid":"u-7"}"#
        );
    }

    /// Node 0 holds ids 1-6 scored 0.9..0.4, node 1 ids 11-16 scored 0.85..0.35: the best
    /// five alternate from node 0.
    fn alternating(first: usize, node: u32, from: usize, count: usize) -> String {
        let hits: Vec<String> = (from..from + count)
            .map(|i| {
                hit(
                    node * 10 + i as u32 + 1,
                    first as f64 - 0.1 * i as f64 - 0.05 * node as f64,
                )
            })
            .collect();
        answer(&hits, 6)
    }

    fn body(merged: Merged<Parts>, answers: &[&[u8]]) -> String {
        match merged {
            Merged::Body(parts) => String::from_utf8(parts.concat(answers)).unwrap(),
            other => panic!("not a body: {other:?}"),
        }
    }

    #[test]
    fn a_node_asked_for_fewer_hits_is_asked_again_only_when_the_window_takes_them_all() {
        let p = plan(
            br#"{"q":"x","offset":1,"limit":4}"#,
            &IndexContext::default(),
        )
        .unwrap();
        let full = [alternating(1, 0, 0, 6), alternating(1, 1, 0, 6)];
        let full: Vec<&[u8]> = full.iter().map(|a| a.as_bytes()).collect();
        let expected = body(merge_parts(&p, &full).unwrap(), &full);
        assert!(
            expected.starts_with(r#"{"hits":[{"id":11},{"id":2},{"id":12},{"id":3}]"#),
            "{expected}"
        );

        // The window of five takes 1, 11, 2, 12, 3: asked for two each, both run short.
        let two = [alternating(1, 0, 0, 2), alternating(1, 1, 0, 2)];
        let two: Vec<&[u8]> = two.iter().map(|a| a.as_bytes()).collect();
        let depths = Depths {
            asked: vec![Some(2), Some(2)],
            continued: Vec::new(),
        };
        assert_eq!(
            merge_parts_at(&p, &two, &depths).unwrap(),
            Merged::Deeper {
                answers: vec![0, 1]
            }
        );
        // Asked for three, neither does: node 0's third is the window's last hit, node 1's
        // third is outside it.
        let three = [alternating(1, 0, 0, 3), alternating(1, 1, 0, 3)];
        let three: Vec<&[u8]> = three.iter().map(|a| a.as_bytes()).collect();
        let depths = Depths {
            asked: vec![Some(3), Some(3)],
            continued: Vec::new(),
        };
        assert_eq!(
            body(merge_parts_at(&p, &three, &depths).unwrap(), &three),
            expected
        );
        // A node with fewer matches than it was asked for is not short.
        let few = [alternating(1, 0, 0, 1), alternating(1, 1, 0, 6)];
        let few: Vec<&[u8]> = few.iter().map(|a| a.as_bytes()).collect();
        let depths = Depths {
            asked: vec![Some(2), None],
            continued: Vec::new(),
        };
        assert!(matches!(
            merge_parts_at(&p, &few, &depths).unwrap(),
            Merged::Body(_)
        ));

        // The continuations of both, after their first two, give the full merge exactly;
        // counts and times are the first answers' alone.
        let more = [alternating(1, 0, 2, 3), alternating(1, 1, 2, 3)];
        let all: Vec<&[u8]> = two
            .iter()
            .copied()
            .chain(more.iter().map(|a| a.as_bytes()))
            .collect();
        let depths = Depths {
            asked: vec![Some(2), Some(2)],
            continued: vec![(0, 2), (1, 3)],
        };
        assert_eq!(
            body(merge_parts_at(&p, &all, &depths).unwrap(), &all),
            expected
        );
    }

    #[test]
    fn tied_hits_are_taken_from_the_nodes_in_turn() {
        let p = plan(br#"{"q":"x","limit":4}"#, &IndexContext::default()).unwrap();
        let tied = |ids: [u32; 3]| answer(&ids.map(|id| hit(id, 1.0)), 3);
        let (a, b) = (tied([1, 2, 3]), tied([4, 5, 6]));
        let merged = body(
            merge_parts(&p, &[a.as_bytes(), b.as_bytes()]).unwrap(),
            &[a.as_bytes(), b.as_bytes()],
        );
        assert!(
            merged.starts_with(r#"{"hits":[{"id":1},{"id":4},{"id":2},{"id":5}]"#),
            "{merged}"
        );
    }

    #[test]
    fn hits_ranked_by_relevancy_rules_alone_merge_by_their_score() {
        let ctx = IndexContext {
            relevancy_rules_only: true,
            ..IndexContext::default()
        };
        let scored = |id: u32, score: f64| format!(r#"{{"id":{id},"_rankingScore":{score}}}"#);
        let merged = |request: &[u8]| {
            let p = plan(request, &ctx).unwrap();
            let a = answer(&[scored(1, 0.9), scored(2, 0.5)], 7);
            let b = answer(&[scored(3, 0.75), scored(4, 0.25)], 3);
            let Merged::Body(body) = merge(&p, &[a.as_bytes(), b.as_bytes()]).unwrap() else {
                panic!("not a body");
            };
            String::from_utf8(body).unwrap()
        };
        assert_eq!(
            merged(br#"{"q":"x","limit":3}"#),
            r#"{"hits":[{"id":1},{"id":3},{"id":2}],"query":"x","processingTimeMs":7,"limit":3,"offset":0,"estimatedTotalHits":10,"requestUid":"u-7"}"#
        );
        assert!(merged(br#"{"q":"x","limit":1,"showRankingScore":true}"#)
            .starts_with(r#"{"hits":[{"id":1,"_rankingScore":0.9}]"#));
    }

    #[test]
    fn performance_details_are_the_slowest_nodes() {
        let p = plan(
            br#"{"q":"x","showPerformanceDetails":true}"#,
            &IndexContext::default(),
        )
        .unwrap();
        let with = |total: usize, step: &str| {
            answer(&[hit(total as u32, 0.5)], total).replacen(
                r#""requestUid""#,
                &format!(r#""performanceDetails":{{"search":"{step}"}},"requestUid""#),
                1,
            )
        };
        let (a, b) = (with(3, "3.0ms"), with(8, "8.0ms"));
        let Merged::Body(body) = merge(&p, &[a.as_bytes(), b.as_bytes()]).unwrap() else {
            panic!("not a body");
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["performanceDetails"],
            serde_json::json!({"search": "8.0ms"})
        );
    }

    #[test]
    fn semantic_hit_count_counts_the_pages_semantic_hits() {
        let p = plan(br#"{"q":"x","limit":3}"#, &IndexContext::default()).unwrap();
        let semantic = |id: u32, sim: f64| {
            format!(
                r#"{{"id":{id},"_rankingScoreDetails":{{"vectorSort":{{"order":0,"similarity":{sim}}}}}}}"#
            )
        };
        let with_count = |hits: &[String], count: usize| {
            answer(hits, 5).replacen(
                r#""requestUid""#,
                &format!(r#""semanticHitCount":{count},"requestUid""#),
                1,
            )
        };
        // Hybrid: one node's page mixes a keyword hit and a semantic one.
        let a = with_count(&[semantic(1, 0.9), hit(2, 0.2)], 1);
        let b = with_count(&[semantic(3, 0.8), semantic(4, 0.1)], 2);
        let Merged::Body(body) = merge(&p, &[a.as_bytes(), b.as_bytes()]).unwrap() else {
            panic!("not a body");
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let ids: Vec<u64> = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [1, 3, 2]);
        assert_eq!(v["semanticHitCount"], 2, "{v}");
        // A keyword search has no such field.
        let a = answer(&[hit(1, 1.0)], 1);
        let Merged::Body(body) = merge(&p, &[a.as_bytes()]).unwrap() else {
            panic!("not a body");
        };
        assert!(!String::from_utf8(body)
            .unwrap()
            .contains("semanticHitCount"));
    }

    #[test]
    fn page_mode_reports_pages_and_exhaustive_totals() {
        let p = plan(br#"{"page":2,"hitsPerPage":1}"#, &IndexContext::default()).unwrap();
        let a = answer(&[hit(1, 1.0), hit(2, 0.5)], 2);
        let b = answer(&[hit(3, 0.75)], 1);
        let Merged::Body(body) = merge(&p, &[a.as_bytes(), b.as_bytes()]).unwrap() else {
            panic!("not a body");
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["hits"], serde_json::json!([{"id": 3}]));
        assert_eq!(
            (
                v["page"].clone(),
                v["totalPages"].clone(),
                v["totalHits"].clone()
            ),
            (2.into(), 3.into(), 3.into())
        );
    }

    #[test]
    fn totals_are_not_capped_by_max_total_hits_and_the_client_window_is_echoed() {
        // Meilisearch 1.50, maxTotalHits 5 and 30 matches: `estimatedTotalHits` 30 with
        // `limit` 20 echoed and 5 hits; `totalHits` 30 and `totalPages` 15 in page mode.
        let ctx = IndexContext {
            max_total_hits: 5,
            node_max_total_hits: 5,
            ..IndexContext::default()
        };
        let nodes = |p: &SearchPlan| {
            let a = answer(
                &(0..5)
                    .map(|i| hit(i, 1.0 - f64::from(i) / 10.0))
                    .collect::<Vec<_>>(),
                18,
            );
            let b = answer(
                &(5..10)
                    .map(|i| hit(i, 0.95 - f64::from(i) / 10.0))
                    .collect::<Vec<_>>(),
                12,
            );
            let Merged::Body(body) = merge(p, &[a.as_bytes(), b.as_bytes()]).unwrap() else {
                panic!("not a body");
            };
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        };
        let v = nodes(&plan(br#"{"limit":20}"#, &ctx).unwrap());
        assert_eq!(v["hits"].as_array().unwrap().len(), 5);
        assert_eq!(
            (v["limit"].clone(), v["estimatedTotalHits"].clone()),
            (20.into(), 30.into())
        );
        let v = nodes(&plan(br#"{"offset":4,"limit":2}"#, &ctx).unwrap());
        assert_eq!(v["hits"].as_array().unwrap().len(), 1);
        assert_eq!(
            (v["offset"].clone(), v["estimatedTotalHits"].clone()),
            (4.into(), 30.into())
        );
        let v = nodes(&plan(br#"{"offset":10,"limit":2}"#, &ctx).unwrap());
        assert_eq!(
            (v["offset"].clone(), v["limit"].clone()),
            (10.into(), 2.into())
        );
        let v = nodes(&plan(br#"{"page":4,"hitsPerPage":2}"#, &ctx).unwrap());
        assert_eq!(v["hits"], serde_json::json!([]));
        assert_eq!(
            (v["totalHits"].clone(), v["totalPages"].clone()),
            (30.into(), 15.into())
        );
    }

    #[test]
    fn hits_are_written_as_slices_of_their_node_answer_except_what_changes() {
        let p = plan(
            br#"{"q":"x","limit":3,"showRankingScoreDetails":true}"#,
            &IndexContext::default(),
        )
        .unwrap();
        let plain = |id: u32, words: f64| {
            format!(
                r#"{{"id":{id},"_rankingScoreDetails":{{"words":{{"order":0,"score":{words}}}}}}}"#
            )
        };
        // Node 0 holds the two best hits, consecutive: one slice with its own comma.
        let a = answer(&[plain(1, 1.0), plain(2, 0.9)], 2);
        // Node 1's hit carries the shard field, which must go.
        let b = answer(&[hit(3, 0.5)], 1);
        let answers = [a.as_bytes(), b.as_bytes()];
        let answers_text = [a.as_str(), b.as_str()];
        let Merged::Body(parts) = merge_parts(&p, &answers).unwrap() else {
            panic!("not a body");
        };
        let from_answers: Vec<(usize, &str)> = parts
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Answer { answer, range } => {
                    Some((*answer, &answers_text[*answer][range.clone()]))
                }
                Segment::Owned(_) => None,
            })
            .collect();
        let both = format!("{},{}", plain(1, 1.0), plain(2, 0.9));
        // Node 1's hit loses its shard field: the entries around it are still its bytes.
        assert_eq!(
            from_answers,
            [
                (0, both.as_str()),
                (1, r#""id":3"#),
                (
                    1,
                    r#""_rankingScoreDetails":{"words":{"order":0,"score":0.5}}"#
                )
            ]
        );
        let Merged::Body(whole) = merge(&p, &answers).unwrap() else {
            panic!("not a body");
        };
        assert_eq!(parts.concat(&answers), whole);
        assert_eq!(parts.len(), whole.len());
        let owned: Vec<Bytes> = answers.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        assert_eq!(parts.into_bytes(&owned).concat(), whole);
        let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(
            v["hits"][2],
            serde_json::json!({"id": 3, "_rankingScoreDetails": {"words": {"order": 0, "score": 0.5}}})
        );
    }

    #[test]
    fn hits_past_the_page_are_not_read_and_a_bad_hit_the_page_reaches_is_an_error() {
        // The second hit of node 0 is cut short; the members after the hits are intact.
        let a = format!(
            r#"{{"hits":[{},{{"id":2,"x":[{{"y":1}}],"query":"x","processingTimeMs":1,"estimatedTotalHits":2}}"#,
            hit(1, 1.0)
        );
        let b = answer(&[hit(3, 0.5)], 1);
        let answers = [a.as_bytes(), b.as_bytes()];
        let p = plan(br#"{"limit":1}"#, &IndexContext::default()).unwrap();
        let Merged::Body(body) = merge(&p, &answers).unwrap() else {
            panic!("not a body");
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["hits"], serde_json::json!([{"id": 1}]));
        assert_eq!(v["estimatedTotalHits"], 3);
        let p = plan(br#"{"limit":3}"#, &IndexContext::default()).unwrap();
        let e = merge(&p, &answers).unwrap_err();
        assert_eq!(e.code, Code::InvalidNodeAnswer);
    }

    #[test]
    fn a_node_error_is_passed_through_and_garbage_is_an_error() {
        let p = plan(b"{}", &IndexContext::default()).unwrap();
        let ok = answer(&[], 0);
        let err = r#"{"message":"bad","code":"invalid_search_filter","type":"invalid_request","link":"x"}"#;
        assert_eq!(
            merge(&p, &[ok.as_bytes(), err.as_bytes()]).unwrap(),
            Merged::NodeError { answer: 1 }
        );
        let e = merge(&p, &[b"{\"hits\":[{\"id\":1}]}"]).unwrap_err();
        assert_eq!(e.code, Code::InvalidNodeAnswer);
        assert!(merge(&p, &[b"not json"]).is_err());
    }
}
