//! Validation of a search request body with Meilisearch's (deserr) messages and per-parameter
//! error codes. Produces a typed [`SearchParams`]; nothing downstream sees raw JSON types.

use serde_json::{Map, Value};

use crate::error::MeiliError;

/// Body fields of `POST /indexes/{uid}/search`, in Meilisearch's declaration order (the order
/// of its "expected one of" list).
pub const SEARCH_FIELDS: [&str; 30] = [
    "q",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "attributesToRetrieve",
    "attributesToCrop",
    "cropLength",
    "cropMarker",
    "attributesToHighlight",
    "highlightPreTag",
    "highlightPostTag",
    "showMatchesPosition",
    "filter",
    "sort",
    "distinct",
    "facets",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "hybrid",
    "vector",
    "retrieveVectors",
    "media",
    "personalize",
    "useNetwork",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchingStrategy {
    #[default]
    Last,
    All,
    Frequency,
}

/// A validated search request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    pub q: Option<String>,
    pub offset: usize,
    pub limit: usize,
    pub page: Option<usize>,
    pub hits_per_page: Option<usize>,
    pub attributes_to_retrieve: Option<Vec<String>>,
    pub attributes_to_crop: Option<Vec<String>>,
    pub crop_length: usize,
    pub crop_marker: String,
    pub attributes_to_highlight: Option<Vec<String>>,
    pub highlight_pre_tag: String,
    pub highlight_post_tag: String,
    pub show_matches_position: bool,
    pub filter: Option<Value>,
    pub sort: Option<Vec<String>>,
    pub distinct: Option<String>,
    pub facets: Option<Vec<String>>,
    pub matching_strategy: MatchingStrategy,
    pub attributes_to_search_on: Option<Vec<String>>,
    pub ranking_score_threshold: Option<f64>,
    pub show_ranking_score: bool,
    pub show_ranking_score_details: bool,
    pub hybrid: Option<Value>,
    pub vector: Option<Value>,
    pub retrieve_vectors: bool,
    /// `showPerformanceDetails`: the simulator reports one step, `search`, with its time.
    pub show_performance_details: bool,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            q: None,
            offset: 0,
            limit: 20,
            page: None,
            hits_per_page: None,
            attributes_to_retrieve: None,
            attributes_to_crop: None,
            crop_length: 10,
            crop_marker: "…".into(),
            attributes_to_highlight: None,
            highlight_pre_tag: "<em>".into(),
            highlight_post_tag: "</em>".into(),
            show_matches_position: false,
            filter: None,
            sort: None,
            distinct: None,
            facets: None,
            matching_strategy: MatchingStrategy::Last,
            attributes_to_search_on: None,
            ranking_score_threshold: None,
            show_ranking_score: false,
            show_ranking_score_details: false,
            hybrid: None,
            vector: None,
            retrieve_vectors: false,
            show_performance_details: false,
        }
    }
}

impl SearchParams {
    /// Whether `page`/`hitsPerPage` pagination was requested.
    pub fn is_finite_pagination(&self) -> bool {
        self.page.is_some() || self.hits_per_page.is_some()
    }

    /// `attributesToSearchOn` as a restriction (`None` when absent or `*`).
    pub fn search_on(&self) -> Option<&[String]> {
        self.attributes_to_search_on
            .as_deref()
            .filter(|a| !a.iter().any(|x| x == "*"))
    }
}

/// Reads typed fields out of a JSON object, producing deserr-shaped messages. `location` is
/// the JSON path prefix of the object (empty at the root, `.queries[0]` in multi-search).
pub struct Reader<'a> {
    pub obj: &'a Map<String, Value>,
    pub location: String,
}

impl<'a> Reader<'a> {
    /// Rejects a non-object body and unknown keys (`bad_request`).
    pub fn new(body: &'a Value, location: &str, accepted: &[&str]) -> Result<Self, MeiliError> {
        let Some(obj) = body.as_object() else {
            let at = if location.is_empty() {
                String::new()
            } else {
                format!(" at `{location}`")
            };
            return Err(MeiliError::invalid(
                "bad_request",
                format!(
                    "Invalid value type{at}: expected an object, but found {}",
                    describe(body)
                ),
            ));
        };
        for key in obj.keys() {
            if !accepted.contains(&key.as_str()) {
                let inside = if location.is_empty() {
                    String::new()
                } else {
                    format!(" inside `{location}`")
                };
                let list: Vec<String> = accepted.iter().map(|a| format!("`{a}`")).collect();
                return Err(MeiliError::invalid(
                    "bad_request",
                    format!(
                        "Unknown field `{key}`{inside}: {}expected one of {}",
                        did_you_mean(key, accepted),
                        list.join(", ")
                    ),
                ));
            }
        }
        Ok(Self {
            obj,
            location: location.to_owned(),
        })
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.location)
    }

    pub fn type_error(&self, key: &str, code: &str, expected: &str, found: &Value) -> MeiliError {
        MeiliError::invalid(
            code,
            format!(
                "Invalid value type at `{}`: expected {expected}, but found {}",
                self.at(key),
                describe(found)
            ),
        )
    }

    /// Present and not null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub fn string(&self, key: &str, code: &str) -> Result<Option<String>, MeiliError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.type_error(key, code, "a string", other)),
        }
    }

    pub fn usize(&self, key: &str, code: &str) -> Result<Option<usize>, MeiliError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                Ok(n.as_u64().map(|v| usize::try_from(v).unwrap_or(usize::MAX)))
            }
            Some(other) => Err(self.type_error(key, code, "a positive integer", other)),
        }
    }

    pub fn bool(&self, key: &str, code: &str) -> Result<bool, MeiliError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.type_error(key, code, "a boolean", other)),
        }
    }

    pub fn strings(&self, key: &str, code: &str) -> Result<Option<Vec<String>>, MeiliError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(MeiliError::invalid(
                        code,
                        format!(
                            "Invalid value type at `{}[{i}]`: expected a string, but found {}",
                            self.at(key),
                            describe(other)
                        ),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.type_error(key, code, "an array", other)),
        }
    }
}

/// deserr's description of a received value: `a string: \`"x"\``.
pub fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a positive integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{kind}: `{v}`")
}

fn did_you_mean(received: &str, accepted: &[&str]) -> String {
    let allowed = match received.len() {
        0..=3 => return String::new(),
        4..=7 => 1,
        8..=12 => 2,
        13..=17 => 3,
        18..=24 => 4,
        _ => 5,
    };
    accepted
        .iter()
        .map(|a| (a, crate::typo::damerau(received, a)))
        .filter(|(_, d)| *d <= allowed)
        .min_by_key(|(_, d)| *d)
        .map(|(a, _)| format!("did you mean `{a}`? "))
        .unwrap_or_default()
}

/// Parses a search body. `location` prefixes JSON paths in messages; `accepted` is the list of
/// allowed keys (multi-search adds `indexUid` and `federationOptions`, which the caller reads).
pub fn parse_search(
    body: &Value,
    location: &str,
    accepted: &[&str],
) -> Result<SearchParams, MeiliError> {
    let r = Reader::new(body, location, accepted)?;
    let mut p = SearchParams {
        q: r.string("q", "invalid_search_q")?,
        ..SearchParams::default()
    };
    p.offset = r.usize("offset", "invalid_search_offset")?.unwrap_or(0);
    p.limit = r.usize("limit", "invalid_search_limit")?.unwrap_or(20);
    p.page = r.usize("page", "invalid_search_page")?;
    p.hits_per_page = r.usize("hitsPerPage", "invalid_search_hits_per_page")?;
    p.attributes_to_retrieve = r.strings(
        "attributesToRetrieve",
        "invalid_search_attributes_to_retrieve",
    )?;
    p.attributes_to_crop = r.strings("attributesToCrop", "invalid_search_attributes_to_crop")?;
    p.crop_length = r
        .usize("cropLength", "invalid_search_crop_length")?
        .unwrap_or(10);
    if let Some(m) = r.string("cropMarker", "invalid_search_crop_marker")? {
        p.crop_marker = m;
    }
    p.attributes_to_highlight = r.strings(
        "attributesToHighlight",
        "invalid_search_attributes_to_highlight",
    )?;
    if let Some(t) = r.string("highlightPreTag", "invalid_search_highlight_pre_tag")? {
        p.highlight_pre_tag = t;
    }
    if let Some(t) = r.string("highlightPostTag", "invalid_search_highlight_post_tag")? {
        p.highlight_post_tag = t;
    }
    p.show_matches_position = r.bool(
        "showMatchesPosition",
        "invalid_search_show_matches_position",
    )?;
    p.filter = r.get("filter").cloned();
    p.sort = r.strings("sort", "invalid_search_sort")?;
    p.distinct = r.string("distinct", "invalid_search_distinct")?;
    p.facets = r.strings("facets", "invalid_search_facets")?;
    p.matching_strategy = match r.get("matchingStrategy") {
        None => MatchingStrategy::Last,
        Some(Value::String(s)) => match s.as_str() {
            "last" => MatchingStrategy::Last,
            "all" => MatchingStrategy::All,
            "frequency" => MatchingStrategy::Frequency,
            other => {
                return Err(MeiliError::invalid(
                    "invalid_search_matching_strategy",
                    format!(
                        "Unknown value `{other}` at `{}.matchingStrategy`: {}expected one of `last`, `all`, `frequency`",
                        r.location,
                        did_you_mean(other, &["last", "all", "frequency"])
                    ),
                ))
            }
        },
        Some(other) => {
            return Err(r.type_error(
                "matchingStrategy",
                "invalid_search_matching_strategy",
                "a string",
                other,
            ))
        }
    };
    p.attributes_to_search_on = r.strings(
        "attributesToSearchOn",
        "invalid_search_attributes_to_search_on",
    )?;
    p.ranking_score_threshold = match r.get("rankingScoreThreshold") {
        None => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Some(t),
            _ => {
                return Err(MeiliError::invalid(
                    "invalid_search_ranking_score_threshold",
                    format!(
                        "Invalid value at `{}.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
                        r.location
                    ),
                ))
            }
        },
        Some(other) => {
            return Err(r.type_error(
                "rankingScoreThreshold",
                "invalid_search_ranking_score_threshold",
                "a number",
                other,
            ))
        }
    };
    if let Some(v) = r.get("locales") {
        if !v.is_array() {
            return Err(r.type_error("locales", "invalid_search_locales", "an array", v));
        }
    }
    p.hybrid = r.get("hybrid").cloned();
    if let Some(h) = &p.hybrid {
        if !h.is_object() {
            return Err(r.type_error("hybrid", "invalid_search_hybrid_query", "an object", h));
        }
    }
    p.vector = r.get("vector").cloned();
    if let Some(v) = &p.vector {
        if !v.is_array() {
            return Err(r.type_error("vector", "invalid_search_vector", "an array", v));
        }
    }
    p.retrieve_vectors = r.bool("retrieveVectors", "invalid_search_retrieve_vectors")?;
    r.bool("useNetwork", "invalid_search_use_network")?;
    p.show_ranking_score = r.bool("showRankingScore", "invalid_search_show_ranking_score")?;
    p.show_ranking_score_details = r.bool(
        "showRankingScoreDetails",
        "invalid_search_show_ranking_score_details",
    )?;
    p.show_performance_details = r.bool(
        "showPerformanceDetails",
        "invalid_search_show_performance_details",
    )?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(body: Value) -> MeiliError {
        parse_search(&body, "", &SEARCH_FIELDS).unwrap_err()
    }

    #[test]
    fn defaults_match_meilisearch() {
        let p = parse_search(&json!({}), "", &SEARCH_FIELDS).unwrap();
        assert_eq!((p.offset, p.limit, p.crop_length), (0, 20, 10));
        assert_eq!(
            (p.crop_marker.as_str(), p.highlight_pre_tag.as_str()),
            ("…", "<em>")
        );
    }

    #[test]
    fn wrong_types_use_per_parameter_codes_and_deserr_messages() {
        let e = err(json!({"limit": "doggo"}));
        assert_eq!(e.code, "invalid_search_limit");
        assert_eq!(
            e.message,
            "Invalid value type at `.limit`: expected a positive integer, but found a string: `\"doggo\"`"
        );
        let e = err(json!({"q": ["doggo"]}));
        assert_eq!(e.code, "invalid_search_q");
        assert_eq!(
            e.message,
            "Invalid value type at `.q`: expected a string, but found an array: `[\"doggo\"]`"
        );
        assert_eq!(err(json!({"offset": -1})).code, "invalid_search_offset");
        assert_eq!(err(json!({"sort": "title"})).code, "invalid_search_sort");
        assert_eq!(err(json!({"facets": "x"})).code, "invalid_search_facets");
        assert_eq!(
            err(json!({"distinct": true})).code,
            "invalid_search_distinct"
        );
        assert_eq!(err(json!({"page": 1.5})).code, "invalid_search_page");
        assert_eq!(
            err(json!({"hitsPerPage": "2"})).code,
            "invalid_search_hits_per_page"
        );
        assert_eq!(
            err(json!({"attributesToRetrieve": "x"})).code,
            "invalid_search_attributes_to_retrieve"
        );
    }

    #[test]
    fn matching_strategy_and_threshold_are_validated() {
        let e = err(json!({"matchingStrategy": "doggo"}));
        assert_eq!(e.code, "invalid_search_matching_strategy");
        assert_eq!(
            e.message,
            "Unknown value `doggo` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`"
        );
        let e = err(json!({"rankingScoreThreshold": 1.5}));
        assert_eq!(e.code, "invalid_search_ranking_score_threshold");
        assert_eq!(
            err(json!({"rankingScoreThreshold": "x"})).code,
            "invalid_search_ranking_score_threshold"
        );
    }

    #[test]
    fn unknown_fields_are_bad_requests_with_suggestion() {
        let e = err(json!({"filtre": "a = 1"}));
        assert_eq!(e.code, "bad_request");
        assert!(e.message.starts_with(
            "Unknown field `filtre`: did you mean `filter`? expected one of `q`, `offset`, `limit`"
        ));
    }
}
