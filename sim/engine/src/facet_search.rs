//! `POST /indexes/{uid}/facet-search`: string values of one facet, restricted to the documents
//! matching `q`/`filter`, whose normalized form starts with `facetQuery` (with typos allowed by
//! its length), ordered as the facet's `sortFacetValuesBy` and truncated to
//! `maxValuesPerFacet`.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use crate::error::MeiliError;
use crate::fields::{self, FacetValue};
use crate::filterable;
use crate::model::{FacetOrder, IndexData};
use crate::params::{self, Reader, SearchParams};
use crate::search;
use crate::typo;

/// Body fields in Meilisearch's declaration order (its "expected one of" list).
const FIELDS: [&str; 13] = [
    "facetQuery",
    "facetName",
    "q",
    "vector",
    "media",
    "hybrid",
    "filter",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "exhaustiveFacetCount",
    "useNetwork",
];

/// Runs `POST /indexes/{uid}/facet-search` with `body` as the JSON body; `extra_filter` is a
/// tenant-token filter ANDed with the request's.
pub fn facet_search(
    index: &IndexData,
    body: &Value,
    extra_filter: Option<&Value>,
) -> Result<Value, MeiliError> {
    let started = Instant::now();
    let reader = Reader::new(body, "", &FIELDS)?;
    let facet_query = reader.string("facetQuery", "invalid_facet_search_query")?;
    let facet_name = match reader.obj.get("facetName") {
        None => {
            return Err(MeiliError::invalid(
                "missing_facet_search_facet_name",
                "Missing field `facetName`",
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(reader.type_error(
                "facetName",
                "invalid_facet_search_facet_name",
                "a string",
                other,
            ))
        }
    };
    reader.bool(
        "exhaustiveFacetCount",
        "invalid_facet_search_exhaustive_facet_count",
    )?;

    // The search part shares the search parameters' validation.
    let mut search_body = body.as_object().cloned().unwrap_or_default();
    for key in ["facetQuery", "facetName", "exhaustiveFacetCount"] {
        search_body.remove(key);
    }
    let params: SearchParams =
        params::parse_search(&Value::Object(search_body), "", &params::SEARCH_FIELDS)?;

    let settings = &index.settings;
    if !settings.facet_search {
        return Err(MeiliError::invalid(
            "facet_search_disabled",
            "The facet search is disabled for this index",
        ));
    }
    check_facet_searchable(settings, &facet_name)?;

    let ranked = search::rank(index, &params, extra_filter)?;
    // normalized -> (first original, count)
    let mut values: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut hits: Vec<_> = ranked.hits.iter().collect();
    hits.sort_by_key(|h| h.id);
    for hit in hits {
        let mut seen: Vec<String> = Vec::new();
        for v in fields::facet_values(hit.doc, &facet_name) {
            if let FacetValue::String(norm, original) = v {
                if seen.contains(&norm) {
                    continue;
                }
                seen.push(norm.clone());
                values.entry(norm).or_insert((original, 0)).1 += 1;
            }
        }
    }

    let query = facet_query.as_deref().map(fields::normalize_facet);
    let typos_on = settings.typo_tolerance.enabled
        && !settings
            .typo_tolerance
            .disable_on_attributes
            .iter()
            .any(|a| a == &facet_name);
    let matching = values.into_iter().filter(|(norm, _)| match &query {
        None => true,
        Some(q) => value_matches(q, norm, typos_on, settings),
    });

    let max = settings.max_values_per_facet;
    let mut facet_hits: Vec<(String, u64)> = matching.map(|(_, v)| v).collect();
    match settings.facet_order(&facet_name) {
        FacetOrder::Alpha => facet_hits.truncate(max),
        FacetOrder::Count => {
            facet_hits.sort_by_key(|(value, count)| Reverse((*count, value.clone())));
            facet_hits.truncate(max);
        }
    }
    Ok(json!({
        "facetHits": facet_hits.into_iter().map(|(value, count)| json!({"value": value, "count": count})).collect::<Vec<_>>(),
        "facetQuery": facet_query,
        "processingTimeMs": started.elapsed().as_millis(),
    }))
}

/// The facet must be matched first by a rule enabling facet search (string rules do; object
/// rules only with `"facetSearch": true`). The error lists the facet-searchable patterns that
/// are displayed, as Meilisearch 1.50 does (its message has no `Index \`uid\`: ` prefix).
fn check_facet_searchable(
    settings: &crate::model::Settings,
    facet_name: &str,
) -> Result<(), MeiliError> {
    let rules = settings.filterable_rules();
    let matched = filterable::matching_rule(&rules, facet_name);
    if matched.is_some_and(|(_, rule)| rule.features().facet_search) {
        return Ok(());
    }
    let (shown, hidden) = filterable::displayed_only(
        filterable::patterns_where(&rules, |f| f.facet_search),
        settings.displayed_attributes.as_deref(),
    );
    let hidden = if hidden {
        ", <..hidden-attributes>"
    } else {
        ""
    };
    let detail = match (shown.is_empty(), matched) {
        (_, Some((i, _))) => format!("Note: this attribute matches rule #{i} in filterableAttributes, but this rule does not enable facetSearch.\nHint: enable facetSearch in rule #{i} by adding `\"facetSearch\": true` to the rule.\nHint: prepend another rule matching {facet_name} with facetSearch: true before rule #{i}"),
        (true, None) => "This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings.".to_owned(),
        (false, None) => format!("Available facet-searchable attributes patterns are: `{}{hidden}`. To make it facet-searchable add it to the `filterableAttributes` index settings.", shown.join(", ")),
    };
    Err(MeiliError::invalid(
        "invalid_facet_search_facet_name",
        format!("Attribute `{facet_name}` is not facet-searchable. {detail}"),
    ))
}

/// A facet value matches when a prefix of it is within the query's typo budget (by byte
/// length, as milli's facet search computes it).
fn value_matches(
    query: &str,
    value: &str,
    typos_on: bool,
    settings: &crate::model::Settings,
) -> bool {
    if value.starts_with(query) {
        return true;
    }
    let tt = &settings.typo_tolerance;
    if !typos_on
        || tt
            .disable_on_words
            .iter()
            .any(|w| fields::normalize_facet(w) == query)
    {
        return false;
    }
    let budget = if query.len() < usize::from(tt.one_typo) {
        0
    } else if query.len() < usize::from(tt.two_typos) {
        1
    } else {
        2
    };
    let q: Vec<char> = query.chars().collect();
    let v: Vec<char> = value.chars().collect();
    budget > 0 && typo::within(&q, &v, budget, true).is_some()
}
