//! Document browsing (`GET /indexes/{uid}/documents`, `POST .../documents/fetch`) across shards
//! as pure functions. Meilisearch lists documents in internal-id order, which no merge of
//! several nodes can reproduce, so Miroir uses its own deterministic global order:
//! - without `sort`: by shard number, then each shard's own order (the internal-id order of the
//!   node answering for it); a page fetches from each shard only the slice that falls in it;
//! - with `sort`: by the sort values as Meilisearch compares them, ties by shard number, then
//!   that same order.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::context::covers;
use super::rank::{compare_sort_values, SortValue};
use crate::hidden;
use crate::routing::{canonical_key, shard_for_key, NodeScope, ShardId};

/// Meilisearch's default page size on the documents routes.
pub const DEFAULT_LIMIT: u64 = 20;

/// `GET /documents` query parameters as the equivalent `POST /documents/fetch` body (the
/// query is validated by a node beforehand, so values here are well-formed).
pub fn query_to_fetch_body(query: &str) -> Map<String, Value> {
    let mut body = Map::new();
    for (k, v) in crate::query::pairs(query) {
        let v = v.into_owned();
        let list = |v: &str| -> Value {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect()
        };
        let value = match k.as_ref() {
            "offset" | "limit" => v.parse::<u64>().map_or(Value::String(v), Value::from),
            // A `*` anywhere in the query's list means every field; in a fetch body it would
            // name a field called `*` (Meilisearch 1.50 then returns empty documents).
            "fields" if v.split(',').any(|f| f.trim() == "*") => continue,
            "fields" | "ids" | "sort" => list(&v),
            "retrieveVectors" | "useNetwork" => Value::Bool(v == "true"),
            _ => Value::String(v),
        };
        body.insert(k.into_owned(), value);
    }
    body
}

/// `offset` and `limit` of a (node-validated) request.
pub fn page(body: &Map<String, Value>) -> (u64, u64) {
    (
        body.get("offset").and_then(Value::as_u64).unwrap_or(0),
        body.get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_LIMIT),
    )
}

/// The `ids` of a request by the shard they hash to; `None` when there are no ids, or when
/// one is not a valid document id (every shard then sees them all and rejects as one node).
pub fn ids_by_shard(
    body: &Map<String, Value>,
    shards: u32,
) -> Option<BTreeMap<ShardId, Vec<Value>>> {
    let ids = body.get("ids")?.as_array()?;
    let mut out: BTreeMap<ShardId, Vec<Value>> = BTreeMap::new();
    for id in ids {
        let key = canonical_key(id)?;
        out.entry(shard_for_key(&key, shards))
            .or_default()
            .push(id.clone());
    }
    Some(out)
}

/// The sort rules of a request as (field, ascending).
pub fn sort_rules(body: &Map<String, Value>) -> Vec<(String, bool)> {
    body.get("sort")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|r| match r.rsplit_once(':') {
            Some((f, "asc")) => Some((f.to_owned(), true)),
            Some((f, "desc")) => Some((f.to_owned(), false)),
            _ => None,
        })
        .collect()
}

/// The body for the node answering for `shard`: the client's request restricted to that
/// shard (and its ids), with its own window, and `fields` widened by `extra_fields` (needed
/// by the merge, removed again by [`clean`]).
pub fn shard_body(
    client: &Map<String, Value>,
    scope: NodeScope<'_>,
    window: (u64, u64),
    ids: Option<&[Value]>,
    extra_fields: &[String],
) -> Vec<u8> {
    let mut body = client.clone();
    if let Some(filter) = hidden::scoped_filter(client.get("filter"), scope) {
        body.insert("filter".into(), filter);
    }
    body.insert("offset".into(), json!(window.0));
    body.insert("limit".into(), json!(window.1));
    if let Some(ids) = ids {
        body.insert("ids".into(), Value::Array(ids.to_vec()));
    }
    if let Some(Value::Array(fields)) = body.get_mut("fields") {
        for f in extra_fields {
            if !fields
                .iter()
                .any(|x| x.as_str().is_some_and(|x| covers(x, f)))
            {
                fields.push(Value::String(f.clone()));
            }
        }
    }
    Value::Object(body).to_string().into_bytes()
}

/// The client's `fields`, when it restricts them. In a fetch body `*` names no field
/// (Meilisearch 1.50 answers `["*"]` with empty documents); the GET form's `*` never gets
/// here (see [`query_to_fetch_body`]).
fn client_fields(body: &Map<String, Value>) -> Option<Vec<&str>> {
    let list = body.get("fields")?.as_array()?;
    Some(list.iter().filter_map(Value::as_str).collect())
}

/// Sort fields the client's `fields` would not return: the merge needs their values.
pub fn extra_sort_fields(body: &Map<String, Value>, rules: &[(String, bool)]) -> Vec<String> {
    let Some(fields) = client_fields(body) else {
        return Vec::new();
    };
    rules
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| !fields.iter().any(|x| covers(x, f)))
        .collect()
}

/// For each shard holding part of `[offset, offset + limit)` in the global order, its local
/// `(offset, limit)`. `totals` are the per-shard totals, in shard order.
pub fn page_slices(totals: &[(ShardId, u64)], offset: u64, limit: u64) -> Vec<(ShardId, u64, u64)> {
    let end = offset.saturating_add(limit);
    let mut start = 0u64;
    let mut out = Vec::new();
    for &(shard, total) in totals {
        let (lo, hi) = (offset.max(start), end.min(start + total));
        if lo < hi {
            out.push((shard, lo - start, hi - lo));
        }
        start += total;
    }
    out
}

/// Removes Miroir's own fields, and the top-level fields that only carried `extra_fields`
/// (the client asked for none of their parts).
pub fn clean(doc: &mut Value, extra_fields: &[String], client: &Map<String, Value>) {
    let fields = client_fields(client).unwrap_or_default();
    if let Value::Object(o) = doc {
        o.retain(|k, _| {
            let only_extra = extra_fields.iter().any(|e| covers(k, e))
                && !fields.iter().any(|f| covers(k, f) || covers(f, k));
            !k.starts_with("_miroir_") && !only_extra
        });
    }
}

/// A document's sort value for one rule, as Meilisearch derives it: the smallest (ascending)
/// or largest (descending) number among the field's values, else such a normalized string.
fn sort_value(doc: &Value, path: &str, asc: bool) -> SortValue<'static> {
    let mut values = Vec::new();
    collect(doc, path, &mut values);
    let better = |o: Ordering| if asc { o.is_lt() } else { o.is_gt() };
    let mut number: Option<f64> = None;
    let mut string: Option<String> = None;
    for v in values {
        match v {
            Value::Number(n) => {
                if let Some(n) = n.as_f64() {
                    if number.is_none_or(|b| better(n.partial_cmp(&b).unwrap_or(Ordering::Equal))) {
                        number = Some(n);
                    }
                }
            }
            Value::String(s) => {
                let s = s.trim().to_lowercase();
                if string.as_ref().is_none_or(|b| better(s.cmp(b))) {
                    string = Some(s);
                }
            }
            _ => {}
        }
    }
    match (number, string) {
        (Some(n), _) => SortValue::Number(n),
        (None, Some(s)) => SortValue::String(Cow::Owned(s)),
        (None, None) => SortValue::Null,
    }
}

/// Scalar values at `path` (dotted; a key may itself contain dots), arrays flattened.
fn collect<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if let Some(child) = m.get(path) {
                flatten(child, out);
            }
            for (i, _) in path.match_indices('.') {
                if let Some(child) = m.get(&path[..i]) {
                    collect(child, &path[i + 1..], out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, path, out)),
        _ => {}
    }
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Object(_) => {}
        scalar => out.push(scalar),
    }
}

/// How many documents a shard is asked for at once by a sorted browse: a page of the merge
/// never holds more than this per shard, however deep the client pages.
pub const SORTED_PAGE: u64 = 1000;

/// A document waiting in a [`ShardQueue`]: its sort key, its position in the shard's order,
/// and the document.
type Queued = (Vec<SortValue<'static>>, u64, Value);

/// One shard's documents in its sort order, fetched a page at a time.
struct ShardQueue {
    /// First to come first.
    docs: std::collections::VecDeque<Queued>,
    /// Where the next page starts.
    next: u64,
    /// Documents of the shard that match (its `total`).
    total: u64,
}

/// A k-way merge of shards' sorted documents into the page `[offset, offset + limit)`,
/// ordered by the sort values as Meilisearch compares them, ties by shard, then the shard's
/// own order. Fed page by page (see [`SortedMerge::wanted`]), it holds at most a page per
/// shard, so a deep page costs round trips rather than memory.
pub struct SortedMerge {
    rules: Vec<(String, bool)>,
    shards: BTreeMap<ShardId, ShardQueue>,
    /// Documents still to skip before the page starts.
    skip: u64,
    limit: u64,
    page: Vec<Value>,
    page_size: u64,
}

impl SortedMerge {
    pub fn new(rules: Vec<(String, bool)>, offset: u64, limit: u64) -> Self {
        Self {
            rules,
            shards: BTreeMap::new(),
            skip: offset,
            limit,
            page: Vec::new(),
            page_size: offset.saturating_add(limit).clamp(1, SORTED_PAGE),
        }
    }

    /// How many documents to ask each shard for at once.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Hands in the page of `shard` that starts where its previous one ended.
    pub fn feed(&mut self, shard: ShardId, total: u64, docs: Vec<Value>) {
        let queue = self.shards.entry(shard).or_insert_with(|| ShardQueue {
            docs: Default::default(),
            next: 0,
            total,
        });
        queue.total = total;
        let start = queue.next;
        queue.next += docs.len() as u64;
        if docs.is_empty() {
            // A shard that answers nothing more is done, whatever its total said.
            queue.total = queue.next;
        }
        for (i, doc) in docs.into_iter().enumerate() {
            let key = self
                .rules
                .iter()
                .map(|(f, asc)| sort_value(&doc, f, *asc))
                .collect();
            queue.docs.push_back((key, start + i as u64, doc));
        }
    }

    /// Merges as far as the pages fed so far allow. `None` when the page is complete;
    /// otherwise the shards (and the offset in each) whose next page is needed first: those
    /// whose documents ran out while more remain.
    pub fn wanted(&mut self) -> Option<Vec<(ShardId, u64)>> {
        while (self.page.len() as u64) < self.limit {
            let starved: Vec<(ShardId, u64)> = self
                .shards
                .iter()
                .filter(|(_, q)| q.docs.is_empty() && q.next < q.total)
                .map(|(s, q)| (*s, q.next))
                .collect();
            if !starved.is_empty() {
                return Some(starved);
            }
            // Every shard drained: the page is as full as it gets.
            let first = self.first()?;
            let (_, _, doc) = self.shards.get_mut(&first)?.docs.pop_front()?;
            if self.skip > 0 {
                self.skip -= 1;
            } else {
                self.page.push(doc);
            }
        }
        None
    }

    /// The shard whose next document ranks first.
    fn first(&self) -> Option<ShardId> {
        let mut best: Option<(ShardId, &Queued)> = None;
        for (shard, queue) in &self.shards {
            let Some(head) = queue.docs.front() else {
                continue;
            };
            let better = match best {
                None => true,
                Some((_, b)) => self.ranks_before(head, b),
            };
            if better {
                best = Some((*shard, head));
            }
        }
        best.map(|(s, _)| s)
    }

    /// Whether `a` ranks strictly before `b` by the sort rules (shard order breaks ties,
    /// and `first` visits shards in order, so equal keys keep the earlier shard).
    fn ranks_before(&self, a: &Queued, b: &Queued) -> bool {
        for (i, (_, asc)) in self.rules.iter().enumerate() {
            // `Greater` means "ranks first".
            match compare_sort_values(*asc, &a.0[i], &b.0[i]) {
                Ordering::Greater => return true,
                Ordering::Less => return false,
                Ordering::Equal => {}
            }
        }
        false
    }

    /// The page, once [`SortedMerge::wanted`] returned `None`.
    pub fn into_page(self) -> Vec<Value> {
        self.page
    }

    /// Documents of every shard fed so far.
    pub fn total(&self) -> u64 {
        self.shards.values().map(|q| q.total).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_takes_only_the_slices_of_the_shards_it_spans() {
        let totals = [
            (ShardId(0), 5),
            (ShardId(1), 0),
            (ShardId(2), 4),
            (ShardId(3), 10),
        ];
        assert_eq!(
            page_slices(&totals, 3, 8),
            vec![(ShardId(0), 3, 2), (ShardId(2), 0, 4), (ShardId(3), 0, 2)]
        );
        assert_eq!(page_slices(&totals, 18, 5), vec![(ShardId(3), 9, 1)]);
        assert!(page_slices(&totals, 19, 0).is_empty());
        assert!(page_slices(&totals, 40, 5).is_empty());
        // Every position is covered once across consecutive pages.
        let covered: u64 = (0..7)
            .flat_map(|p| page_slices(&totals, p * 3, 3))
            .map(|(_, _, n)| n)
            .sum();
        assert_eq!(covered, 19);
    }

    #[test]
    fn a_star_among_the_query_fields_asks_for_every_field() {
        for query in ["fields=*", "fields=title,*", "fields=%2A&limit=2"] {
            assert!(
                !query_to_fetch_body(query).contains_key("fields"),
                "{query}"
            );
        }
        assert_eq!(
            query_to_fetch_body("fields=title,id")["fields"],
            json!(["title", "id"])
        );
    }

    #[test]
    fn shard_bodies_restrict_filter_ids_and_window() {
        let client = query_to_fetch_body(
            "filter=genre%20%3D%20drama&fields=title,id&limit=5&offset=10&retrieveVectors=false",
        );
        assert_eq!(page(&client), (10, 5));
        let body: Value = serde_json::from_slice(&shard_body(
            &client,
            NodeScope::shards(&[ShardId(3)]),
            (2, 4),
            Some(&[json!("a")]),
            &["year".to_owned()],
        ))
        .unwrap();
        assert_eq!(
            body["filter"],
            json!(["genre = drama", r#"_miroir_shard IN [".."]"#])
        );
        assert_eq!(
            (body["offset"].clone(), body["limit"].clone()),
            (json!(2), json!(4))
        );
        assert_eq!(body["fields"], json!(["title", "id", "year"]));
        assert_eq!(body["ids"], json!(["a"]));
        assert_eq!(body["retrieveVectors"], json!(false));
    }

    #[test]
    fn ids_go_to_their_shards() {
        let body = json!({"ids": ["a", 7, "7"]});
        let by = ids_by_shard(body.as_object().unwrap(), 8).unwrap();
        assert_eq!(by[&shard_for_key("7", 8)].len(), 2);
        assert_eq!(by.values().map(Vec::len).sum::<usize>(), 3);
        assert!(ids_by_shard(json!({"ids": [1.5]}).as_object().unwrap(), 8).is_none());
        assert!(ids_by_shard(&Map::new(), 8).is_none());
    }

    /// Feeds `per_shard` to a [`SortedMerge`] `page` documents at a time, as the proxy does.
    fn merge_paged(
        per_shard: &[(ShardId, Vec<Value>)],
        rules: &[(String, bool)],
        offset: u64,
        limit: u64,
        page: usize,
    ) -> Vec<Value> {
        let slice = |shard: ShardId, from: u64| -> (u64, Vec<Value>) {
            let docs = &per_shard.iter().find(|(s, _)| *s == shard).unwrap().1;
            let from = (from as usize).min(docs.len());
            let to = (from + page).min(docs.len());
            (docs.len() as u64, docs[from..to].to_vec())
        };
        let mut merge = SortedMerge::new(rules.to_vec(), offset, limit);
        for (shard, _) in per_shard {
            let (total, docs) = slice(*shard, 0);
            merge.feed(*shard, total, docs);
        }
        while let Some(wanted) = merge.wanted() {
            for (shard, from) in wanted {
                let (total, docs) = slice(shard, from);
                merge.feed(shard, total, docs);
            }
        }
        merge.into_page()
    }

    #[test]
    fn sorted_merge_orders_by_values_then_shard_and_strips() {
        let per_shard = vec![
            (
                ShardId(0),
                vec![json!({"id": 1, "y": 3}), json!({"id": 2, "y": "b"})],
            ),
            (
                ShardId(1),
                vec![
                    json!({"id": 3, "y": [9, 1]}),
                    json!({"id": 4, "y": 3}),
                    json!({"id": 5}),
                ],
            ),
        ];
        let rules = vec![("y".to_owned(), true)];
        let ids = |docs: Vec<Value>| {
            docs.iter()
                .map(|d| d["id"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(merge_paged(&per_shard, &rules, 0, 10, 10)),
            vec![3, 1, 4, 2, 5]
        );
        let desc = [("y".to_owned(), false)];
        assert_eq!(ids(merge_paged(&per_shard, &desc, 1, 2, 10)), vec![1, 4]);
        // Page by page, one document per shard at a time: the same pages, every window.
        for offset in 0..6 {
            for limit in 0..6 {
                for rules in [&rules[..], &desc[..]] {
                    assert_eq!(
                        merge_paged(&per_shard, rules, offset, limit, 1),
                        merge_paged(&per_shard, rules, offset, limit, 100),
                        "offset {offset} limit {limit}"
                    );
                }
            }
        }
        let client = json!({"fields": ["id", "a.c"], "sort": ["y:asc", "a.b:asc", "n.m:asc"]});
        let client = client.as_object().unwrap();
        let extra = extra_sort_fields(client, &sort_rules(client));
        assert_eq!(extra, vec!["y", "a.b", "n.m"]);
        let mut doc =
            json!({"id": 1, "_miroir_shard": 2, "y": 1, "a": {"b": 1, "c": 2}, "n": {"m": 3}});
        clean(&mut doc, &extra, client);
        // `a` stays: the client asked for `a.c`.
        assert_eq!(doc, json!({"id": 1, "a": {"b": 1, "c": 2}}));
        // `*` in a fetch body names no field: the sort field is still asked for.
        let star = json!({"fields": ["title", "*"], "sort": ["y:asc"]});
        assert_eq!(
            extra_sort_fields(star.as_object().unwrap(), &[("y".into(), true)]),
            vec!["y".to_owned()]
        );
        let all = json!({"sort": ["y:asc"]});
        assert!(extra_sort_fields(all.as_object().unwrap(), &[("y".into(), true)]).is_empty());
    }
}
