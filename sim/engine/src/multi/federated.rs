//! The federated flow: every query ranked in full, merged per index then across indexes by
//! weighted score, paginated by `federation.offset/limit` (or `page/hitsPerPage`).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::merge::{kmerge, FedHit};
use super::{index_not_found, inside, QueryItem};
use crate::distinct::Distinct;
use crate::error::MeiliError;
use crate::model::{Document, IndexData};
use crate::params::{self, Reader};
use crate::search;

/// The federation object of the request.
pub(super) struct Federation {
    offset: usize,
    limit: usize,
    page: Option<usize>,
    hits_per_page: Option<usize>,
    /// `(index uid, facet patterns)`; `None` patterns ask for no facets.
    pub facets_by_index: Vec<(String, Option<Vec<String>>)>,
    /// `Some(maxValuesPerFacet)` when `mergeFacets` is present.
    pub merge_facets: Option<Option<usize>>,
    distinct: Option<String>,
    show_performance_details: bool,
}

fn parse_federation(value: &Value) -> Result<Federation, MeiliError> {
    let r = Reader::new(
        value,
        ".federation",
        &[
            "limit",
            "offset",
            "page",
            "hitsPerPage",
            "facetsByIndex",
            "mergeFacets",
            "distinct",
            "showPerformanceDetails",
            "personalize",
        ],
    )?;
    let mut facets_by_index = Vec::new();
    match r.get("facetsByIndex") {
        None => {}
        Some(Value::Object(map)) => {
            for (uid, patterns) in map {
                let list = match patterns {
                    Value::Null => None,
                    Value::Array(items) => Some(
                        items
                            .iter()
                            .map(|v| v.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| MeiliError::invalid(
                                "invalid_multi_search_facets_by_index",
                                format!("Invalid value type at `.federation.facetsByIndex.{uid}`: expected an array of strings"),
                            ))?,
                    ),
                    other => {
                        return Err(MeiliError::invalid(
                            "invalid_multi_search_facets_by_index",
                            format!("Invalid value type at `.federation.facetsByIndex.{uid}`: expected an array, but found {}", params::describe(other)),
                        ))
                    }
                };
                facets_by_index.push((uid.clone(), list));
            }
        }
        Some(other) => {
            return Err(r.type_error(
                "facetsByIndex",
                "invalid_multi_search_facets_by_index",
                "an object",
                other,
            ))
        }
    }
    let merge_facets = match r.get("mergeFacets") {
        None => None,
        Some(v @ Value::Object(_)) => {
            let m = Reader::new(v, ".federation.mergeFacets", &["maxValuesPerFacet"])?;
            Some(m.usize(
                "maxValuesPerFacet",
                "invalid_multi_search_max_values_per_facet",
            )?)
        }
        Some(other) => {
            return Err(r.type_error(
                "mergeFacets",
                "invalid_multi_search_merge_facets",
                "an object",
                other,
            ))
        }
    };
    Ok(Federation {
        offset: r.usize("offset", "invalid_search_offset")?.unwrap_or(0),
        limit: r.usize("limit", "invalid_search_limit")?.unwrap_or(20),
        page: r.usize("page", "invalid_search_page")?,
        hits_per_page: r.usize("hitsPerPage", "invalid_search_hits_per_page")?,
        facets_by_index,
        merge_facets,
        distinct: r.string("distinct", "invalid_search_distinct")?,
        show_performance_details: r.bool(
            "showPerformanceDetails",
            "invalid_search_show_performance_details",
        )?,
    })
}

/// Rejects options a federated query may not carry.
fn check_federated_query(
    i: usize,
    item: &QueryItem,
    federation_distinct: bool,
) -> Result<(), MeiliError> {
    let obj = item.raw.as_object();
    let has = |k: &str| obj.is_some_and(|o| o.get(k).is_some_and(|v| !v.is_null()));
    if has("showPerformanceDetails") {
        return Err(inside(i, MeiliError::invalid(
            "invalid_multi_search_query_show_performance_details",
            "Using `.showPerformanceDetails` is not allowed in federated queries.\n - Hint: remove `showPerformanceDetails` from the query or remove `federation` from the request",
        )));
    }
    if federation_distinct && has("distinct") {
        return Err(inside(i, MeiliError::invalid(
            "invalid_multi_search_distinct",
            "Using `distinct` options is not allowed in federated queries when it also appears in `.federation.distinct`.\n - Hint: remove `distinct` from the query or remove `federation` from the request\n  - Note: `distinct` at the query level is discouraged in federated search.",
        )));
    }
    for field in ["offset", "limit", "page", "hitsPerPage"] {
        if has(field) {
            return Err(inside(i, MeiliError::invalid(
                "invalid_multi_search_query_pagination",
                format!("Using pagination options is not allowed in federated queries.\n - Hint: remove `{field}` from the query or remove `federation` from the request\n - Hint: pass `federation.limit` and `federation.offset` for pagination in federated search"),
            )));
        }
    }
    if let Some(facets) = &item.params.facets {
        return Err(inside(i, MeiliError::invalid(
            "invalid_multi_search_query_facets",
            format!("Using facet options is not allowed in federated queries.\n - Hint: remove `facets` from the query or remove `federation` from the request\n - Hint: pass `federation.facetsByIndex.{}: {:?}` for facets in federated search", item.index_uid, facets),
        )));
    }
    Ok(())
}

pub(super) fn run<'a>(
    items: &[QueryItem],
    federation: &Value,
    index: &dyn Fn(&str) -> Option<&'a IndexData>,
    extra_filter: &dyn Fn(&str) -> Option<Value>,
    started: Instant,
) -> Result<Value, MeiliError> {
    let fed = parse_federation(federation)?;
    let finite = fed.page.is_some() || fed.hits_per_page.is_some();
    let (offset, limit) = if finite {
        let hpp = fed.hits_per_page.unwrap_or(20);
        fed.page
            .unwrap_or(1)
            .checked_sub(1)
            .map_or((0, 0), |p| (hpp.saturating_mul(p), hpp))
    } else {
        (fed.offset, fed.limit)
    };

    // Rank every query, grouped by index in order of first appearance.
    let mut by_index: Vec<(String, &'a IndexData, Vec<VecDeque<FedHit<'a>>>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        check_federated_query(i, item, fed.distinct.is_some())?;
        let idx =
            index(&item.index_uid).ok_or_else(|| inside(i, index_not_found(&item.index_uid)))?;
        // `federation.distinct` is each query's distinct attribute, judged per index.
        if let Some(attr) = &fed.distinct {
            crate::validate::check_distinct(idx, attr).map_err(|e| inside(i, e))?;
        }
        let extra = extra_filter(&item.index_uid);
        let ranked = search::rank(idx, &item.params, extra.as_ref()).map_err(|e| inside(i, e))?;
        let stream: VecDeque<FedHit<'a>> = ranked
            .hits
            .into_iter()
            .map(|hit| FedHit::new(i, &item.index_uid, idx, hit, item.weight))
            .collect();
        match by_index
            .iter_mut()
            .find(|(uid, _, _)| *uid == item.index_uid)
        {
            Some((_, _, streams)) => streams.push(stream),
            None => by_index.push((item.index_uid.clone(), idx, vec![stream])),
        }
    }

    let mut total = 0;
    let mut index_streams = Vec::new();
    let mut candidates_by_index: BTreeMap<String, Vec<&'a Document>> = BTreeMap::new();
    // `federation.distinct` counts one hit per value over every index, as a node does.
    let mut counted = fed.distinct.as_deref().map(Distinct::new);
    for (uid, idx, streams) in by_index {
        let mut merged = kmerge(streams);
        let mut seen = HashSet::new();
        merged.retain(|h| seen.insert(h.hit.id));
        // Each index's best hit per value, before the window is cut: the window then holds
        // as many distinct hits as it can.
        if let Some(attr) = &fed.distinct {
            let mut distinct = Distinct::new(attr);
            merged.retain(|h| distinct.keep(h.hit.doc));
        }
        total += match &mut counted {
            Some(d) => merged.iter().filter(|h| d.keep(h.hit.doc)).count(),
            None => merged.len(),
        };
        let mut docs: Vec<(u32, &'a Document)> =
            merged.iter().map(|h| (h.hit.id, h.hit.doc)).collect();
        docs.sort_by_key(|(id, _)| *id);
        candidates_by_index.insert(uid, docs.into_iter().map(|(_, d)| d).collect());
        let required = offset
            .saturating_add(limit)
            .min(idx.settings.max_total_hits);
        merged.truncate(required);
        index_streams.push(VecDeque::from(merged));
    }

    let mut merged = kmerge(index_streams);
    if let Some(attr) = &fed.distinct {
        let mut distinct = Distinct::new(attr);
        merged.retain(|h| distinct.keep(h.hit.doc));
    }

    let hits: Vec<Value> = merged
        .iter()
        .skip(offset)
        .take(limit)
        .map(|h| {
            let params = &items[h.query].params;
            let federation = json!({
                "indexUid": h.index_uid,
                "queriesPosition": h.query,
                "weightedRankingScore": h.weighted_score(),
            });
            let query = crate::query::parse(params.q.as_deref().unwrap_or(""), &h.index.settings);
            search::render_hit(h.index, params, &query, &h.hit, Some(federation))
        })
        .collect();

    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert(
        "processingTimeMs".into(),
        json!(started.elapsed().as_millis()),
    );
    if finite {
        let hpp = fed.hits_per_page.unwrap_or(20);
        out.insert("hitsPerPage".into(), json!(hpp));
        out.insert("page".into(), json!(fed.page.unwrap_or(1)));
        out.insert(
            "totalPages".into(),
            json!(if hpp == 0 { 0 } else { total.div_ceil(hpp) }),
        );
        out.insert("totalHits".into(), json!(total));
    } else {
        out.insert("limit".into(), json!(limit));
        out.insert("offset".into(), json!(offset));
        out.insert("estimatedTotalHits".into(), json!(total));
    }
    let mut first_query: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        first_query.entry(item.index_uid.as_str()).or_insert(i);
    }
    super::facets::federated_facets(&fed, index, &candidates_by_index, &first_query, &mut out)?;
    out.insert("requestUid".into(), json!(uuid::Uuid::now_v7().to_string()));
    if fed.show_performance_details {
        // Meilisearch lists its internal steps; the simulator has one.
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        out.insert(
            "performanceDetails".into(),
            json!({ "search": format!("{ms:.2}ms") }),
        );
    }
    Ok(Value::Object(out))
}
