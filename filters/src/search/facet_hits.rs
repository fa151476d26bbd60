//! `POST /indexes/{uid}/facet-search` across shards: each node's body restricted to its shards,
//! and the merge of the nodes' `facetHits` into the answer one node would give.
//!
//! Exactness: with `alpha` order every node returns its first `maxValuesPerFacet` values (the
//! nodes' widened limit, see [`super::facet_limit`]), so the first values of the union are
//! exact with exact counts. With `count` order a node cuts its list by its own counts, so a
//! value it left out may still belong in the merged top: such values ([`uncertain`]) are
//! counted again on those nodes with a filter on the value alone.
//! A value that no node reported at all is missed only if the counts the truncating nodes
//! left out could add up to the merged top's smallest count.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::context::FacetOrder;
use crate::hidden;
use crate::routing::NodeScope;

/// The client's body for a node answering for `scope`; a body that is not an object is
/// passed as it is, for the node to reject as one node would.
pub fn facet_search_body(request: &Value, scope: NodeScope<'_>) -> Vec<u8> {
    let mut body = match request {
        Value::Object(o) => o.clone(),
        other => return other.to_string().into_bytes(),
    };
    if let Some(filter) = hidden::scoped_filter(body.get("filter"), scope) {
        body.insert("filter".into(), filter);
    }
    Value::Object(body).to_string().into_bytes()
}

/// Meilisearch groups facet strings by their normalized form (trimmed, lowercased).
fn normalized(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Merges node answers (`{facetHits, facetQuery, processingTimeMs}`): counts summed by
/// normalized value, ordered by `order`, cut to `max` values.
pub fn merge_facet_hits(answers: &[Value], order: FacetOrder, max: usize) -> Value {
    // normalized -> (the first original seen, in shard order, summed count)
    let mut values: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut took = 0u64;
    for answer in answers {
        took = took.max(answer["processingTimeMs"].as_u64().unwrap_or(0));
        for hit in answer["facetHits"].as_array().into_iter().flatten() {
            let (Some(value), Some(count)) = (hit["value"].as_str(), hit["count"].as_u64()) else {
                continue;
            };
            values
                .entry(normalized(value))
                .or_insert_with(|| (value.to_owned(), 0))
                .1 += count;
        }
    }
    // Alpha: the normalized order (the BTreeMap's). Count: Meilisearch's `FacetValueHit`
    // order reversed, i.e. count descending, then original value descending.
    let mut hits: Vec<(String, u64)> = values.into_values().collect();
    if order == FacetOrder::Count {
        hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    }
    hits.truncate(max);
    let facet_query = answers
        .first()
        .map_or(Value::Null, |a| a["facetQuery"].clone());
    let mut out = Map::new();
    out.insert(
        "facetHits".into(),
        hits.into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect(),
    );
    out.insert("facetQuery".into(), facet_query);
    out.insert("processingTimeMs".into(), json!(took));
    Value::Object(out)
}

/// `(answer, value)` pairs to count again: values some truncated answer (one that returned
/// `node_max` values, the nodes' limit) left out, whose count there could lift them into the
/// merged top `max`. An answer that left a value out saw it at most as often as its own
/// smallest count.
pub fn uncertain(answers: &[Value], max: usize, node_max: usize) -> Vec<(usize, String)> {
    let lists: Vec<BTreeMap<String, (String, u64)>> = answers
        .iter()
        .map(|a| {
            a["facetHits"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| Some((h["value"].as_str()?, h["count"].as_u64()?)))
                .map(|(v, c)| (normalized(v), (v.to_owned(), c)))
                .collect()
        })
        .collect();
    let floors: Vec<Option<u64>> = lists
        .iter()
        .map(|l| {
            (l.len() >= node_max && node_max > 0)
                .then(|| l.values().map(|v| v.1).min().unwrap_or(0))
        })
        .collect();
    let mut known: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    for list in &lists {
        for (norm, (orig, count)) in list {
            known.entry(norm).or_insert((orig, 0)).1 += count;
        }
    }
    let mut sums: Vec<u64> = known.values().map(|v| v.1).collect();
    sums.sort_unstable_by(|a, b| b.cmp(a));
    let threshold = sums.get(max.saturating_sub(1)).copied().unwrap_or(0);
    let mut out = Vec::new();
    for (norm, (orig, sum)) in &known {
        let missing: Vec<usize> = (0..lists.len())
            .filter(|&i| floors[i].is_some() && !lists[i].contains_key(*norm))
            .collect();
        let upper = sum + missing.iter().filter_map(|&i| floors[i]).sum::<u64>();
        if !missing.is_empty() && upper >= threshold {
            out.extend(missing.into_iter().map(|i| (i, (*orig).to_owned())));
        }
    }
    out
}

/// A filter matching the documents whose `facet` has `value`.
pub fn value_filter(facet: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{facet} = \"{escaped}\"")
}

/// The request `body` with `expr` ANDed to its filter.
pub fn and_filter(body: &Value, expr: String) -> Value {
    let mut body = body.clone();
    if let Value::Object(o) = &mut body {
        let filter = match o.remove("filter") {
            None | Some(Value::Null) => Value::String(expr),
            Some(Value::String(s)) if s.trim().is_empty() => Value::String(expr),
            Some(Value::String(s)) => json!([s, expr]),
            Some(Value::Array(mut a)) => {
                a.push(Value::String(expr));
                Value::Array(a)
            }
            Some(other) => other,
        };
        o.insert("filter".into(), filter);
    }
    body
}

/// The count of `value` (by normalized form) in one answer, as an answer of its own.
pub fn single_value_answer(answer: &Value, value: &str) -> Value {
    let norm = normalized(value);
    let count: u64 = answer["facetHits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["value"].as_str().is_some_and(|v| normalized(v) == norm))
        .filter_map(|h| h["count"].as_u64())
        .sum();
    json!({"facetHits": [{"value": value, "count": count}], "processingTimeMs": answer["processingTimeMs"].clone()})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::ShardId;

    fn answer(hits: &[(&str, u64)], took: u64) -> Value {
        json!({
            "facetHits": hits.iter().map(|(v, c)| json!({"value": v, "count": c})).collect::<Vec<_>>(),
            "facetQuery": "a",
            "processingTimeMs": took,
        })
    }

    #[test]
    fn counts_are_summed_by_normalized_value_and_ordered() {
        let answers = [
            answer(&[("Action", 2), ("drama", 5), ("zed", 1)], 3),
            answer(&[("action", 4), ("comedy", 1), ("zed", 2)], 7),
        ];
        let alpha = merge_facet_hits(&answers, FacetOrder::Alpha, 3);
        assert_eq!(
            alpha,
            json!({"facetHits": [{"value": "Action", "count": 6}, {"value": "comedy", "count": 1}, {"value": "drama", "count": 5}], "facetQuery": "a", "processingTimeMs": 7})
        );
        let count = merge_facet_hits(&answers, FacetOrder::Count, 3);
        assert_eq!(
            count["facetHits"],
            json!([{"value": "Action", "count": 6}, {"value": "drama", "count": 5}, {"value": "zed", "count": 3}])
        );
        // Equal counts: the greater value first, as Meilisearch's heap gives them.
        let tied = merge_facet_hits(&[answer(&[("a", 1), ("b", 1)], 0)], FacetOrder::Count, 5);
        assert_eq!(
            tied["facetHits"],
            json!([{"value": "b", "count": 1}, {"value": "a", "count": 1}])
        );
    }

    #[test]
    fn values_a_truncating_node_left_out_are_counted_again_when_they_could_rank() {
        // Node 0 cut at 2 values (smallest 5): `c` could have up to 5 there.
        let answers = [answer(&[("a", 9), ("b", 5)], 0), answer(&[("c", 4)], 0)];
        assert_eq!(uncertain(&answers, 2, 2), vec![(0, "c".to_owned())]);
        // Untruncated answers are exact: nothing to refine.
        assert!(uncertain(&answers, 3, 3).is_empty());
        // Both cut: even the leaders' counts are incomplete.
        let cut = [
            answer(&[("a", 9), ("b", 5)], 0),
            answer(&[("c", 4), ("d", 1)], 0),
        ];
        assert_eq!(uncertain(&cut, 2, 2).len(), 4);
        assert_eq!(value_filter("g", r#"a "b""#), r#"g = "a \"b\"""#);
        assert_eq!(
            and_filter(&json!({"filter": "x = 1"}), "g = \"c\"".into())["filter"],
            json!(["x = 1", "g = \"c\""])
        );
        let one = single_value_answer(&answer(&[("C", 3), ("e", 3)], 2), "c");
        assert_eq!(one["facetHits"], json!([{"value": "c", "count": 3}]));
    }

    #[test]
    fn node_bodies_carry_the_shard_clause() {
        let body = facet_search_body(
            &json!({"facetName": "genre", "filter": "year > 3"}),
            NodeScope::shards(&[ShardId(1), ShardId(2)]),
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["filter"],
            json!(["year > 3", r#"_miroir_shard IN [".", ".-"]"#])
        );
        assert_eq!(
            facet_search_body(&json!(3), NodeScope::shards(&[ShardId(0)])),
            b"3"
        );
    }
}
