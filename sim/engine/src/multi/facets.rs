//! Federated facets: per index (`facetsByIndex`) or merged into one distribution
//! (`mergeFacets`), as Meilisearch's `FederatedFacets` does.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::federated::Federation;
use super::index_not_found;
use crate::error::MeiliError;
use crate::facets;
use crate::model::{Document, FacetOrder, IndexData};

pub(super) fn federated_facets<'a>(
    fed: &Federation,
    index: &dyn Fn(&str) -> Option<&'a IndexData>,
    candidates: &BTreeMap<String, Vec<&'a Document>>,
    first_query: &BTreeMap<&str, usize>,
    out: &mut Map<String, Value>,
) -> Result<(), MeiliError> {
    let mut per_index: BTreeMap<String, (Value, Value, &'a IndexData, Vec<String>)> =
        BTreeMap::new();
    for (uid, patterns) in &fed.facets_by_index {
        let used = candidates.contains_key(uid);
        let note = if used {
            String::new()
        } else {
            format!("\n - Note: index `{uid}` is not used in queries")
        };
        let wrap = |e: MeiliError| MeiliError {
            message: format!(
                "Inside `.federation.facetsByIndex.{uid}`: {}{note}",
                e.message
            ),
            ..e
        };
        let idx = index(uid).ok_or_else(|| MeiliError {
            status: 400,
            ..wrap(index_not_found(uid))
        })?;
        let Some(patterns) = patterns else { continue };
        // An index used in queries is checked with its first query, whose position
        // Meilisearch adds in front.
        facets::validate(patterns, &idx.settings).map_err(|e| {
            match first_query.get(uid.as_str()) {
                Some(&i) => super::inside(i, wrap(e)),
                None => wrap(e),
            }
        })?;
        let docs = candidates.get(uid).cloned().unwrap_or_default();
        let (distribution, stats) = facets::compute(idx, &docs, patterns);
        per_index.insert(uid.clone(), (distribution, stats, idx, patterns.clone()));
    }
    match fed.merge_facets {
        None => {
            if !per_index.is_empty() {
                let map: Map<String, Value> = per_index
                    .into_iter()
                    .map(|(uid, (d, s, _, _))| (uid, json!({"distribution": d, "stats": s})))
                    .collect();
                out.insert("facetsByIndex".into(), Value::Object(map));
            }
        }
        Some(max_values) if !per_index.is_empty() => {
            let (distribution, stats) = merge_facets(&per_index, max_values)?;
            out.insert("facetDistribution".into(), distribution);
            out.insert("facetStats".into(), stats);
        }
        Some(_) => {}
    }
    Ok(())
}

type PerIndexFacets<'a> = BTreeMap<String, (Value, Value, &'a IndexData, Vec<String>)>;

fn merge_facets(
    per_index: &PerIndexFacets<'_>,
    max_values: Option<usize>,
) -> Result<(Value, Value), MeiliError> {
    let mut counts: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut orders: BTreeMap<String, (FacetOrder, String)> = BTreeMap::new();
    let mut stats: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (uid, (distribution, s, idx, _)) in per_index {
        for (facet, values) in distribution.as_object().into_iter().flatten() {
            let order = idx.settings.facet_order(facet);
            if let Some((previous, previous_uid)) = orders.get(facet) {
                if *previous != order {
                    let name = |o: FacetOrder| {
                        if o == FacetOrder::Alpha {
                            "alphabetically"
                        } else {
                            "by count"
                        }
                    };
                    return Err(MeiliError::invalid(
                        "invalid_multi_search_facet_order",
                        format!("Inconsistent order for values in facet `{facet}`: index `{previous_uid}` orders {}, but index `{uid}` orders {}.\n - Hint: Remove `federation.mergeFacets` or change `faceting.sortFacetValuesBy` to be consistent in settings.", name(*previous), name(order)),
                    ));
                }
            } else {
                orders.insert(facet.clone(), (order, uid.clone()));
            }
            let entry = counts.entry(facet.clone()).or_default();
            for (value, count) in values.as_object().into_iter().flatten() {
                let c = count.as_u64().unwrap_or(0);
                match entry.iter_mut().find(|(v, _)| v == value) {
                    Some((_, total)) => *total += c,
                    None => entry.push((value.clone(), c)),
                }
            }
        }
        for (facet, minmax) in s.as_object().into_iter().flatten() {
            let (Some(lo), Some(hi)) = (minmax["min"].as_f64(), minmax["max"].as_f64()) else {
                continue;
            };
            let e = stats.entry(facet.clone()).or_insert((lo, hi));
            e.0 = e.0.min(lo);
            e.1 = e.1.max(hi);
        }
    }
    let mut distribution = Map::new();
    for (facet, mut values) in counts {
        match orders
            .get(&facet)
            .map(|(o, _)| *o)
            .unwrap_or(FacetOrder::Alpha)
        {
            FacetOrder::Alpha => values.sort_by(|a, b| a.0.cmp(&b.0)),
            FacetOrder::Count => values.sort_by_key(|v| std::cmp::Reverse(v.1)),
        }
        // Meilisearch truncates merged facets only when asked to.
        if let Some(max) = max_values {
            values.truncate(max);
        }
        let map: Map<String, Value> = values.into_iter().map(|(v, c)| (v, json!(c))).collect();
        distribution.insert(facet, Value::Object(map));
    }
    let stats: Map<String, Value> = stats
        .into_iter()
        .map(|(f, (lo, hi))| (f, json!({"min": lo, "max": hi})))
        .collect();
    Ok((Value::Object(distribution), Value::Object(stats)))
}
