//! `POST /indexes/{uid}/search`: validation, candidate selection, ranking, distinct,
//! pagination, facets and hit formatting, producing Meilisearch's response shape.

use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::distinct::Distinct;
use crate::error::MeiliError;
use crate::facets;
use crate::format::{self, FormatOptions};
use crate::matching::{Matcher, SearchableFields};
use crate::model::{Document, IndexData};
use crate::params::{self, MatchingStrategy, SearchParams, SEARCH_FIELDS};
use crate::project::project;
use crate::query::{self, Query};
use crate::ranking::{self, Detail, Ranker, Removal};
use crate::sort;
use crate::tokenize::Tokenizer;
use crate::validate;

/// Runs a search with `query` as the JSON body; `extra_filter` is a tenant-token filter ANDed
/// with the request's.
pub fn search(
    index: &IndexData,
    query: &Value,
    extra_filter: Option<&Value>,
) -> Result<Value, MeiliError> {
    let params = params::parse_search(query, "", &SEARCH_FIELDS)?;
    execute(index, &params, extra_filter)
}

/// Runs already validated parameters and renders the response.
pub(crate) fn execute(
    index: &IndexData,
    params: &SearchParams,
    extra_filter: Option<&Value>,
) -> Result<Value, MeiliError> {
    let started = Instant::now();
    let ranked = rank(index, params, extra_filter)?;
    Ok(render(index, params, &ranked, started))
}

/// One ranked document.
#[derive(Debug, Clone)]
pub struct RankedHit<'a> {
    pub id: u32,
    pub doc: &'a Document,
    pub details: Vec<Detail>,
    pub score: f64,
}

/// Every matching document in rank order, after threshold and distinct.
#[derive(Debug)]
pub struct Ranked<'a> {
    pub hits: Vec<RankedHit<'a>>,
    pub query: Query,
    /// A semantic search (`vector` with `hybrid`): the response counts `semanticHitCount`.
    pub semantic: bool,
    /// With a distinct attribute: every match before distinct, in rank order.
    pub undistinct: Option<Vec<&'a Document>>,
}

/// Validates `params` and ranks every matching document (scores are always computed: they are
/// cheap here and federated search needs them).
pub fn rank<'a>(
    index: &'a IndexData,
    params: &SearchParams,
    extra_filter: Option<&Value>,
) -> Result<Ranked<'a>, MeiliError> {
    let settings = &index.settings;
    let semantic = crate::vector::semantic(params, settings)?;
    if let Some(attrs) = &params.attributes_to_search_on {
        validate::check_search_on(index, attrs)?;
    }
    let sort = match &params.sort {
        Some(list) => sort::parse(list, index)?,
        None => Vec::new(),
    };
    let filter = validate::build_filter(
        index,
        params.filter.as_ref(),
        extra_filter,
        "invalid_search_filter",
    )?;
    if let Some(d) = &params.distinct {
        validate::check_distinct(index, d)?;
    }
    if let Some(f) = &params.facets {
        facets::validate(f, settings)?;
    }

    // A semantic search ranks by the vector alone; `q` is only echoed.
    let q = if semantic.is_some() {
        ""
    } else {
        params.q.as_deref().unwrap_or("")
    };
    let query = query::parse(q, settings);
    let candidates: Vec<(u32, &Document)> = index
        .docs
        .iter()
        .filter(|(_, d)| filter.as_ref().is_none_or(|f| f.matches(d)))
        .map(|(id, d)| (*id, d))
        .collect();

    let rules = match &semantic {
        Some(_) => ranking::vector_pipeline(settings, &sort),
        None => ranking::pipeline(
            settings,
            &sort,
            query.is_placeholder(),
            params.matching_strategy,
        ),
    };
    let search_on = params.search_on();
    // Negative words (`-word`) exclude documents even in a placeholder search.
    let needs_matching = !query.is_placeholder() || !query.negative.is_empty();
    let analyses: Option<Vec<_>> = needs_matching.then(|| {
        let mut matcher = Matcher::new(&query, settings, search_on);
        index.search_cache.with_docs(settings, &candidates, |snap| {
            snap.docs
                .iter()
                .map(|d| matcher.analyze(d, snap.words))
                .collect()
        })
    });
    let frequencies = (params.matching_strategy == MatchingStrategy::Frequency
        && !query.is_placeholder())
    .then(|| term_frequencies(index, &query, search_on));
    let ranker = Ranker {
        rules,
        terms: &query.terms,
        settings,
        max_weight: SearchableFields::new(settings, None).max_weight(),
        removal: Removal::new(
            &query.terms,
            params.matching_strategy,
            frequencies.as_deref(),
        ),
        vector: semantic
            .as_ref()
            .map(|(embedder, target)| (embedder.as_str(), target.as_slice())),
    };

    let mut hits = Vec::new();
    for (i, (id, doc)) in candidates.iter().enumerate() {
        let m = analyses.as_ref().map(|a| &a[i]);
        let Some(details) = ranker.evaluate(doc, m) else {
            continue;
        };
        let score = ranking::global_score(&details);
        if params.ranking_score_threshold.is_some_and(|t| score < t) {
            continue;
        }
        hits.push(RankedHit {
            id: *id,
            doc,
            details,
            score,
        });
    }
    hits = in_rank_order(hits);

    let distinct = params
        .distinct
        .clone()
        .or_else(|| settings.distinct_attribute.clone());
    let mut undistinct = None;
    if let Some(attr) = distinct {
        undistinct = Some(hits.iter().map(|h| h.doc).collect());
        let mut distinct = Distinct::new(&attr);
        hits.retain(|h| distinct.keep(h.doc));
    }
    Ok(Ranked {
        hits,
        query,
        semantic: semantic.is_some(),
        undistinct,
    })
}

/// Sorts hits best first. Candidates arrive in internal-id order and the sort is stable, so
/// ties stay in internal-id order as in Meilisearch.
fn in_rank_order(hits: Vec<RankedHit<'_>>) -> Vec<RankedHit<'_>> {
    let order: Vec<usize> = {
        // All keys in one buffer: `bounds[i]..bounds[i + 1]` is hit `i`'s key.
        let mut keys: Vec<ranking::KeyPart<'_>> = Vec::new();
        let mut bounds = Vec::with_capacity(hits.len() + 1);
        bounds.push(0);
        for h in &hits {
            ranking::push_sort_key(&h.details, &mut keys);
            bounds.push(keys.len());
        }
        let key = |i: usize| &keys[bounds[i]..bounds[i + 1]];
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by(|&a, &b| ranking::compare_keys(key(b), key(a)));
        order
    };
    let mut slots: Vec<Option<RankedHit<'_>>> = hits.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Number of documents of the whole index matching each term (the `frequency` strategy
/// looks at the index, not at the filtered candidates).
fn term_frequencies(index: &IndexData, query: &Query, search_on: Option<&[String]>) -> Vec<u64> {
    let n = query.terms.len();
    let all: Vec<(u32, &Document)> = index.docs.iter().map(|(id, d)| (*id, d)).collect();
    let mut matcher = Matcher::new(query, &index.settings, search_on);
    let mut freq = vec![0u64; n];
    index.search_cache.with_docs(&index.settings, &all, |snap| {
        for doc in snap.docs {
            let matched = matcher.analyze(doc, snap.words).matched_terms(n);
            for (t, m) in matched.into_iter().enumerate() {
                freq[t] += u64::from(m);
            }
        }
    });
    freq
}

/// The page window `(offset, limit)` after Meilisearch's `maxTotalHits` capping.
pub(crate) fn window(params: &SearchParams, max_total_hits: usize) -> (usize, usize) {
    let (offset, limit) = if params.is_finite_pagination() {
        let hpp = params.hits_per_page.unwrap_or(20);
        let page = params.page.unwrap_or(1);
        page.checked_sub(1)
            .map_or((0, 0), |p| (hpp.saturating_mul(p), hpp))
    } else {
        (params.offset, params.limit)
    };
    let offset = offset.min(max_total_hits);
    (offset, limit.min(max_total_hits.saturating_sub(offset)))
}

fn render(
    index: &IndexData,
    params: &SearchParams,
    ranked: &Ranked<'_>,
    started: Instant,
) -> Value {
    let settings = &index.settings;
    let (offset, limit) = window(params, settings.max_total_hits);
    let mut out = Map::new();
    let page_hits: Vec<Value> = ranked
        .hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|h| render_hit(index, params, &ranked.query, h, None))
        .collect();
    out.insert("hits".into(), Value::Array(page_hits));
    out.insert("query".into(), json!(params.q.clone().unwrap_or_default()));
    out.insert(
        "processingTimeMs".into(),
        json!(started.elapsed().as_millis()),
    );
    // Every match counts, whatever `maxTotalHits` (it only limits the hits returned). In
    // offset/limit mode with nothing to rank (an empty window at 0), Meilisearch applies no
    // distinct: the total and the facets count every match.
    let hits: Vec<&Document> = ranked.hits.iter().map(|h| h.doc).collect();
    let counted = match &ranked.undistinct {
        Some(all) if !params.is_finite_pagination() && offset + limit == 0 => all,
        _ => &hits,
    };
    let total = counted.len();
    if params.is_finite_pagination() {
        let hpp = params.hits_per_page.unwrap_or(20);
        let total_pages = if hpp == 0 { 0 } else { total.div_ceil(hpp) };
        out.insert("hitsPerPage".into(), json!(hpp));
        out.insert("page".into(), json!(params.page.unwrap_or(1)));
        out.insert("totalPages".into(), json!(total_pages));
        out.insert("totalHits".into(), json!(total));
    } else {
        // The client's own window, even past `maxTotalHits`.
        out.insert("limit".into(), json!(params.limit));
        out.insert("offset".into(), json!(params.offset));
        out.insert("estimatedTotalHits".into(), json!(total));
    }
    // `facets: []` asks for nothing: Meilisearch then leaves both keys out.
    if let Some(requested) = params.facets.as_ref().filter(|f| !f.is_empty()) {
        let (distribution, stats) = facets::compute(index, counted, requested);
        out.insert("facetDistribution".into(), distribution);
        out.insert("facetStats".into(), stats);
    }
    out.insert("requestUid".into(), json!(uuid::Uuid::now_v7().to_string()));
    if params.show_performance_details {
        // Meilisearch lists its internal steps; the simulator has one.
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        out.insert(
            "performanceDetails".into(),
            json!({ "search": format!("{ms:.2}ms") }),
        );
    }
    if ranked.semantic {
        let count = ranked.hits.len().saturating_sub(offset).min(limit);
        out.insert("semanticHitCount".into(), json!(count));
    }
    Value::Object(out)
}

/// One hit as Meilisearch renders it: retrieved fields, then `_geoDistance`, `_formatted`,
/// `_matchesPosition`, `_rankingScore`, `_rankingScoreDetails`.
pub(crate) fn render_hit(
    index: &IndexData,
    params: &SearchParams,
    query: &Query,
    hit: &RankedHit<'_>,
    federation: Option<Value>,
) -> Value {
    let settings = &index.settings;
    let retrieve = params.attributes_to_retrieve.as_deref();
    let mut doc = project(hit.doc, settings, retrieve);
    doc.remove("_vectors");
    if params.retrieve_vectors {
        doc.insert(
            "_vectors".into(),
            crate::vector::retrieved(hit.doc, settings),
        );
    }
    if let Some(distance) = hit.details.iter().find_map(Detail::geo_distance) {
        doc.insert("_geoDistance".into(), json!(distance.round() as u64));
    }
    if let Some(federation) = federation {
        doc.insert("_federation".into(), federation);
    }
    let opts = FormatOptions {
        highlight: params.attributes_to_highlight.clone().unwrap_or_default(),
        crop: format::crop_list(
            params.attributes_to_crop.as_deref().unwrap_or(&[]),
            params.crop_length,
        ),
        pre_tag: &params.highlight_pre_tag,
        post_tag: &params.highlight_post_tag,
        crop_marker: &params.crop_marker,
    };
    if opts.is_active() || params.show_matches_position {
        let search_on = params.search_on();
        let mut matcher = Matcher::new(query, settings, search_on);
        let tokenizer = Tokenizer::new(settings);
        if opts.is_active() {
            let base = formatted_base(hit.doc, settings, params);
            let f = format::format_hit(&base, &mut matcher, &tokenizer, &opts);
            doc.insert("_formatted".into(), Value::Object(f.formatted));
        }
        if params.show_matches_position {
            let displayed = project(hit.doc, settings, None);
            let plain = FormatOptions {
                highlight: vec![],
                crop: vec![],
                ..opts
            };
            let f = format::format_hit(&displayed, &mut matcher, &tokenizer, &plain);
            doc.insert("_matchesPosition".into(), Value::Object(f.matches_position));
        }
    }
    if params.show_ranking_score {
        doc.insert("_rankingScore".into(), json!(hit.score));
    }
    if params.show_ranking_score_details {
        doc.insert(
            "_rankingScoreDetails".into(),
            Value::Object(ranking::details_json(&hit.details)),
        );
    }
    Value::Object(doc)
}

/// `_formatted` covers the retrieved fields plus the highlighted and cropped ones.
fn formatted_base(
    doc: &Document,
    settings: &crate::model::Settings,
    params: &SearchParams,
) -> Document {
    match &params.attributes_to_retrieve {
        Some(list) if !list.iter().any(|a| a == "*") => {
            let mut fields = list.clone();
            fields.extend(params.attributes_to_highlight.iter().flatten().cloned());
            fields.extend(
                format::crop_list(params.attributes_to_crop.as_deref().unwrap_or(&[]), 0)
                    .into_iter()
                    .map(|(a, _)| a),
            );
            let mut projected = project(doc, settings, Some(&fields));
            projected.remove("_vectors");
            projected
        }
        _ => {
            let mut projected = project(doc, settings, None);
            projected.remove("_vectors");
            projected
        }
    }
}
