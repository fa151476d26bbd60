//! Index settings as JSON, in Meilisearch's GET shape: request validation with the per-setting
//! error codes, PATCH merging (with `null` resetting to the default) and the conversion into the
//! engine's typed `Settings`. Settings the engine ignores (embedders, chat, localizedAttributes,
//! foreignKeys, ...) are kept verbatim so GET returns what was set.

use std::collections::{BTreeMap, BTreeSet};

use meili_sim_engine::filterable::{FilterFeatures, FilterableRule};
use meili_sim_engine::model::DEFAULT_RANKING_RULES;
use meili_sim_engine::{FacetOrder, MeiliError, Settings, TypoTolerance};
use serde_json::{json, Map, Value};

use crate::error::{invalid_type, unknown_field};

/// How a sub-route updates its setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Put,
    Patch,
}

/// `/indexes/{uid}/settings/<route>`: route, camelCase setting, update verb.
pub const SUB_ROUTES: &[(&str, &str, Verb)] = &[
    ("filterable-attributes", "filterableAttributes", Verb::Put),
    ("sortable-attributes", "sortableAttributes", Verb::Put),
    ("displayed-attributes", "displayedAttributes", Verb::Put),
    ("typo-tolerance", "typoTolerance", Verb::Patch),
    ("searchable-attributes", "searchableAttributes", Verb::Put),
    ("stop-words", "stopWords", Verb::Put),
    ("non-separator-tokens", "nonSeparatorTokens", Verb::Put),
    ("separator-tokens", "separatorTokens", Verb::Put),
    ("dictionary", "dictionary", Verb::Put),
    ("synonyms", "synonyms", Verb::Put),
    ("distinct-attribute", "distinctAttribute", Verb::Put),
    ("proximity-precision", "proximityPrecision", Verb::Put),
    ("localized-attributes", "localizedAttributes", Verb::Put),
    ("ranking-rules", "rankingRules", Verb::Put),
    ("faceting", "faceting", Verb::Patch),
    ("pagination", "pagination", Verb::Patch),
    ("embedders", "embedders", Verb::Patch),
    ("search-cutoff-ms", "searchCutoffMs", Verb::Put),
    ("facet-search", "facetSearch", Verb::Put),
    ("prefix-search", "prefixSearch", Verb::Put),
    ("chat", "chat", Verb::Patch),
    ("foreign-keys", "foreignKeys", Verb::Put),
];

/// Settings in GET order.
const KEYS: &[&str] = &[
    "displayedAttributes",
    "searchableAttributes",
    "filterableAttributes",
    "sortableAttributes",
    "foreignKeys",
    "rankingRules",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
    "synonyms",
    "distinctAttribute",
    "proximityPrecision",
    "typoTolerance",
    "faceting",
    "pagination",
    "embedders",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
    "chat",
];

pub fn default_value(key: &str) -> Value {
    match key {
        "displayedAttributes" | "searchableAttributes" => json!(["*"]),
        "filterableAttributes"
        | "sortableAttributes"
        | "foreignKeys"
        | "stopWords"
        | "nonSeparatorTokens"
        | "separatorTokens"
        | "dictionary" => json!([]),
        "rankingRules" => json!(DEFAULT_RANKING_RULES),
        "synonyms" | "embedders" => json!({}),
        "proximityPrecision" => json!("byWord"),
        "typoTolerance" => json!({
            "enabled": true,
            "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
            "disableOnWords": [],
            "disableOnAttributes": [],
            "disableOnNumbers": false,
        }),
        "faceting" => json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}),
        "pagination" => json!({"maxTotalHits": 1000}),
        "facetSearch" => json!(true),
        "prefixSearch" => json!("indexingTime"),
        "chat" => json!({
            "description": "",
            "documentTemplate": DEFAULT_DOCUMENT_TEMPLATE,
            "documentTemplateMaxBytes": 400,
            "searchParameters": {},
        }),
        // distinctAttribute, searchCutoffMs, localizedAttributes
        _ => Value::Null,
    }
}

pub fn default_view() -> Map<String, Value> {
    KEYS.iter()
        .map(|k| ((*k).to_owned(), default_value(k)))
        .collect()
}

/// The GET body: experimental settings show only when their feature is on, as in Meilisearch.
pub fn public_view(view: &Map<String, Value>, chat: bool, foreign_keys: bool) -> Value {
    let hidden = |k: &str| (k == "chat" && !chat) || (k == "foreignKeys" && !foreign_keys);
    Value::Object(
        view.iter()
            .filter(|(k, _)| !hidden(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn code_for(key: &str) -> String {
    match key {
        "chat" => "invalid_settings_index_chat".to_owned(),
        _ => {
            let mut snake = String::from("invalid_settings_");
            for c in key.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                    snake.push(c.to_ascii_lowercase());
                } else {
                    snake.push(c);
                }
            }
            snake
        }
    }
}

/// Validates a settings body (the whole object for `/settings`) and returns it normalized.
pub fn validate(body: &Value) -> Result<Map<String, Value>, MeiliError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid_type("bad_request", ".", "an object", body))?;
    let mut out = Map::new();
    for (key, value) in obj {
        if !KEYS.contains(&key.as_str()) {
            return Err(unknown_field("bad_request", key, KEYS));
        }
        out.insert(key.clone(), validate_one(key, value)?);
    }
    Ok(out)
}

/// Validates the body of a sub-route (`PUT .../ranking-rules` with a bare array, ...).
pub fn validate_one(key: &str, value: &Value) -> Result<Value, MeiliError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let code = code_for(key);
    let at = format!(".{key}");
    let at = if at == ".chat" { "." } else { at.as_str() };
    let loc = |suffix: &str| format!("{}{suffix}", if at == "." { "" } else { at });
    match key {
        "displayedAttributes" | "searchableAttributes" => Ok(json!(strings(value, &code, at)?)),
        "sortableAttributes" | "stopWords" | "nonSeparatorTokens" | "separatorTokens"
        | "dictionary" => Ok(json!(strings(value, &code, at)?
            .into_iter()
            .collect::<BTreeSet<_>>())),
        "rankingRules" => {
            let rules = strings(value, &code, at)?;
            for (i, rule) in rules.iter().enumerate() {
                if !is_valid_ranking_rule(rule) {
                    return Err(MeiliError::invalid(
                        &code,
                        format!(
                            "Invalid value at `{}`: `{rule}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, exactness and custom ranking rules.",
                            loc(&format!("[{i}]"))
                        ),
                    ));
                }
            }
            Ok(json!(rules))
        }
        "filterableAttributes" => {
            let items = value
                .as_array()
                .ok_or_else(|| invalid_type(&code, at, "an array", value))?;
            let rules = items
                .iter()
                .enumerate()
                .map(|(i, item)| filterable_item(item, &code, &loc(&format!("[{i}]"))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(rules))
        }
        "synonyms" => {
            let map = value
                .as_object()
                .ok_or_else(|| invalid_type(&code, at, "an object", value))?;
            let mut out = Map::new();
            for (word, list) in map {
                out.insert(
                    word.clone(),
                    json!(strings(list, &code, &loc(&format!(".{word}")))?),
                );
            }
            Ok(Value::Object(out))
        }
        "distinctAttribute" => expect_string(value, &code, at),
        "proximityPrecision" => one_of(value, &code, at, &["byWord", "byAttribute"]),
        "prefixSearch" => one_of(value, &code, at, &["indexingTime", "disabled"]),
        "facetSearch" => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err(invalid_type(&code, at, "a boolean", value)),
        },
        "searchCutoffMs" => match value.as_u64() {
            Some(_) => Ok(value.clone()),
            None => Err(invalid_type(&code, at, "a positive integer", value)),
        },
        "typoTolerance" => validate_typo(value, &code, at),
        "faceting" => validate_faceting(value, &code, at),
        "pagination" => {
            let obj = object_with(value, &code, at, &["maxTotalHits"])?;
            if let Some(v) = obj.get("maxTotalHits").filter(|v| !v.is_null()) {
                if v.as_u64().is_none_or(|n| n == 0) {
                    return Err(invalid_type(
                        &code,
                        &loc(".maxTotalHits"),
                        "a positive integer",
                        v,
                    ));
                }
            }
            Ok(value.clone())
        }
        "embedders" | "chat" => {
            object_with(value, &code, at, &[])?;
            Ok(value.clone())
        }
        "localizedAttributes" | "foreignKeys" => match value {
            Value::Array(_) => Ok(value.clone()),
            _ => Err(invalid_type(&code, at, "an array", value)),
        },
        _ => Err(unknown_field("bad_request", key, KEYS)),
    }
}

fn is_valid_ranking_rule(rule: &str) -> bool {
    const BUILT_IN: &[&str] = &[
        "words",
        "typo",
        "proximity",
        "attribute",
        "attributeRank",
        "wordPosition",
        "sort",
        "exactness",
    ];
    if BUILT_IN.contains(&rule) {
        return true;
    }
    let field = rule
        .strip_suffix(":asc")
        .or_else(|| rule.strip_suffix(":desc"));
    field.is_some_and(|f| !f.is_empty() && !f.starts_with("_geo"))
}

fn strings(value: &Value, code: &str, at: &str) -> Result<Vec<String>, MeiliError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid_type(code, at, "an array", value))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid_type(code, &format!("{at}[{i}]"), "a string", v))
        })
        .collect()
}

fn expect_string(value: &Value, code: &str, at: &str) -> Result<Value, MeiliError> {
    match value {
        Value::String(_) => Ok(value.clone()),
        _ => Err(invalid_type(code, at, "a string", value)),
    }
}

fn one_of(value: &Value, code: &str, at: &str, allowed: &[&str]) -> Result<Value, MeiliError> {
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(value.clone()),
        Some(s) => Err(MeiliError::invalid(
            code,
            format!(
                "Unknown value `{s}` at `{at}`: expected one of {}",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        None => Err(invalid_type(code, at, "a string", value)),
    }
}

fn object_with<'a>(
    value: &'a Value,
    code: &str,
    at: &str,
    fields: &[&str],
) -> Result<&'a Map<String, Value>, MeiliError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid_type(code, at, "an object", value))?;
    if !fields.is_empty() {
        if let Some(unknown) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(unknown_field(code, unknown, fields));
        }
    }
    Ok(obj)
}

fn validate_typo(value: &Value, code: &str, at: &str) -> Result<Value, MeiliError> {
    let fields = [
        "enabled",
        "minWordSizeForTypos",
        "disableOnWords",
        "disableOnAttributes",
        "disableOnNumbers",
    ];
    let obj = object_with(value, code, at, &fields)?;
    for (k, v) in obj {
        let loc = format!("{at}.{k}");
        let ok = match k.as_str() {
            "enabled" | "disableOnNumbers" => v.is_boolean() || v.is_null(),
            "disableOnWords" | "disableOnAttributes" => {
                v.is_null() || strings(v, code, &loc).is_ok()
            }
            _ => {
                v.is_null()
                    || v.as_object().is_some_and(|m| {
                        m.values()
                            .all(|n| n.is_null() || n.as_u64().is_some_and(|n| n <= 255))
                    })
            }
        };
        if !ok {
            return Err(invalid_type(code, &loc, "a valid value", v));
        }
    }
    if let Some(sizes) = obj.get("minWordSizeForTypos").and_then(Value::as_object) {
        let one = sizes.get("oneTypo").and_then(Value::as_u64).unwrap_or(5);
        let two = sizes.get("twoTypos").and_then(Value::as_u64).unwrap_or(9);
        if one > two {
            return Err(MeiliError::invalid(
                code,
                format!("`minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but found `oneTypo: {one}` and twoTypos: {two}`."),
            ));
        }
    }
    Ok(value.clone())
}

fn validate_faceting(value: &Value, code: &str, at: &str) -> Result<Value, MeiliError> {
    let obj = object_with(value, code, at, &["maxValuesPerFacet", "sortFacetValuesBy"])?;
    if let Some(v) = obj.get("maxValuesPerFacet").filter(|v| !v.is_null()) {
        if v.as_u64().is_none() {
            return Err(invalid_type(
                code,
                &format!("{at}.maxValuesPerFacet"),
                "a positive integer",
                v,
            ));
        }
    }
    if let Some(v) = obj.get("sortFacetValuesBy").filter(|v| !v.is_null()) {
        let map = v.as_object().ok_or_else(|| {
            invalid_type(code, &format!("{at}.sortFacetValuesBy"), "an object", v)
        })?;
        for (facet, order) in map {
            one_of(
                order,
                code,
                &format!("{at}.sortFacetValuesBy.{facet}"),
                &["alpha", "count"],
            )?;
        }
    }
    Ok(value.clone())
}

/// Applies a validated patch to a stored view.
pub fn apply(view: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        let merged = match (key.as_str(), value) {
            (_, Value::Null) => default_value(key),
            ("typoTolerance" | "pagination" | "chat", Value::Object(p)) => merge_object(
                view.get(key).cloned().unwrap_or_else(|| default_value(key)),
                p,
                key,
            ),
            ("faceting", Value::Object(p)) => {
                let mut current = view.get(key).cloned().unwrap_or_else(|| default_value(key));
                for (k, v) in p {
                    let new = match (k.as_str(), v) {
                        (_, Value::Null) => default_value(key)[k].clone(),
                        ("sortFacetValuesBy", Value::Object(orders)) => {
                            let mut m = Map::from_iter([("*".to_owned(), json!("alpha"))]);
                            m.extend(orders.clone());
                            Value::Object(m)
                        }
                        _ => v.clone(),
                    };
                    current[k] = new;
                }
                current
            }
            ("embedders", Value::Object(p)) => {
                let mut current = view
                    .get(key)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (name, conf) in p {
                    match conf {
                        Value::Null => current.retain(|key, _| key != name),
                        Value::Object(c) => {
                            let base = current.get(name).cloned().unwrap_or_else(|| json!({}));
                            let mut merged = merge_object(base, c, "");
                            with_template_defaults(&mut merged);
                            current.insert(name.clone(), merged);
                        }
                        other => {
                            current.insert(name.clone(), other.clone());
                        }
                    }
                }
                Value::Object(current)
            }
            _ => value.clone(),
        };
        view.insert(key.clone(), merged);
    }
}

/// The template Meilisearch renders a document with for an embedder that embeds text.
const DEFAULT_DOCUMENT_TEMPLATE: &str = "{% for field in fields %}{% if field.is_searchable and field.value != nil %}{{ field.name }}: {{ field.value }}\n{% endif %}{% endfor %}";

/// An embedder as Meilisearch shows it: a source that renders documents (openAi, huggingFace,
/// ollama, rest) gets the default `documentTemplate` and `documentTemplateMaxBytes` when they
/// are not set; a composite embedder renders with its `indexingEmbedder` only, so only that
/// one gets them.
fn with_template_defaults(conf: &mut Value) {
    fn fill(conf: &mut Value) {
        let renders = matches!(
            conf["source"].as_str(),
            Some("openAi" | "huggingFace" | "ollama" | "rest")
        );
        let Some(obj) = conf.as_object_mut().filter(|_| renders) else {
            return;
        };
        if obj.get("documentTemplate").is_none_or(Value::is_null) {
            obj.insert("documentTemplate".into(), json!(DEFAULT_DOCUMENT_TEMPLATE));
        }
        if obj
            .get("documentTemplateMaxBytes")
            .is_none_or(Value::is_null)
        {
            obj.insert("documentTemplateMaxBytes".into(), json!(400));
        }
    }
    if conf["source"] == "composite" {
        if let Some(indexing) = conf.get_mut("indexingEmbedder") {
            fill(indexing);
        }
    } else {
        fill(conf);
    }
}

/// One level of PATCH semantics (two for `minWordSizeForTypos`): absent keeps, `null` resets.
fn merge_object(mut base: Value, patch: &Map<String, Value>, key: &str) -> Value {
    let defaults = default_value(key);
    for (k, v) in patch {
        let new = match v {
            Value::Null => defaults.get(k).cloned().unwrap_or(Value::Null),
            Value::Object(inner) if base.get(k).is_some_and(Value::is_object) => {
                merge_object(base[k].clone(), inner, "")
            }
            other => other.clone(),
        };
        if new.is_null() && defaults.get(k).is_none() {
            if let Some(obj) = base.as_object_mut() {
                obj.retain(|key, _| key != k);
            }
        } else {
            base[k] = new;
        }
    }
    base
}

/// The typed settings the engine reads.
pub fn to_engine(view: &Map<String, Value>) -> Settings {
    let strings = |key: &str| -> Vec<String> {
        view.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let wildcard = |key: &str| -> Option<Vec<String>> {
        let list = strings(key);
        if list.iter().any(|a| a == "*") {
            None
        } else {
            Some(list)
        }
    };
    let set = |key: &str| strings(key).into_iter().collect::<BTreeSet<_>>();
    let filterable_rules: Vec<FilterableRule> = view
        .get("filterableAttributes")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(filterable_rule).collect())
        .unwrap_or_default();
    // String rules alone stay in `filterable_attributes`; object rules need the full list.
    let filterable = filterable_rules
        .iter()
        .flat_map(|rule| rule.patterns().iter().cloned())
        .collect();
    let filterable_rules = filterable_rules
        .iter()
        .any(|rule| !matches!(rule, FilterableRule::Field(_)))
        .then_some(filterable_rules);
    let ranking_rules = strings("rankingRules")
        .into_iter()
        .flat_map(|r| match r.as_str() {
            "attribute" => vec!["attributeRank".to_owned(), "wordPosition".to_owned()],
            _ => vec![r],
        })
        .collect();
    let synonyms = view
        .get("synonyms")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let list = v.as_array().map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    });
                    (k.clone(), list.unwrap_or_default())
                })
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();
    let typo = &view["typoTolerance"];
    let sizes = &typo["minWordSizeForTypos"];
    let faceting = &view["faceting"];
    let defaults = Settings::default();
    Settings {
        displayed_attributes: wildcard("displayedAttributes"),
        searchable_attributes: wildcard("searchableAttributes"),
        filterable_attributes: filterable,
        filterable_rules,
        sortable_attributes: set("sortableAttributes"),
        ranking_rules,
        stop_words: set("stopWords"),
        non_separator_tokens: set("nonSeparatorTokens"),
        separator_tokens: set("separatorTokens"),
        dictionary: set("dictionary"),
        synonyms,
        distinct_attribute: view
            .get("distinctAttribute")
            .and_then(Value::as_str)
            .map(str::to_owned),
        proximity_precision: view["proximityPrecision"]
            .as_str()
            .unwrap_or("byWord")
            .to_owned(),
        typo_tolerance: TypoTolerance {
            enabled: typo["enabled"].as_bool().unwrap_or(true),
            one_typo: sizes["oneTypo"].as_u64().map_or(5, |n| n.min(255) as u8),
            two_typos: sizes["twoTypos"].as_u64().map_or(9, |n| n.min(255) as u8),
            disable_on_words: json_set(&typo["disableOnWords"]),
            disable_on_attributes: json_set(&typo["disableOnAttributes"]),
            disable_on_numbers: typo["disableOnNumbers"].as_bool().unwrap_or(false),
        },
        max_values_per_facet: faceting["maxValuesPerFacet"]
            .as_u64()
            .map_or(defaults.max_values_per_facet, |n| n as usize),
        sort_facet_values_by: faceting["sortFacetValuesBy"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            if v == "count" {
                                FacetOrder::Count
                            } else {
                                FacetOrder::Alpha
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or(defaults.sort_facet_values_by),
        max_total_hits: view["pagination"]["maxTotalHits"]
            .as_u64()
            .map_or(defaults.max_total_hits, |n| n as usize),
        search_cutoff_ms: view.get("searchCutoffMs").and_then(Value::as_u64),
        facet_search: view
            .get("facetSearch")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        prefix_search: view
            .get("prefixSearch")
            .and_then(Value::as_str)
            .unwrap_or("indexingTime")
            .to_owned(),
        embedders: view
            .get("embedders")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(_, conf)| conf["source"] == "userProvided")
                    .filter_map(|(name, conf)| {
                        Some((name.clone(), conf["dimensions"].as_u64()? as usize))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Checks one `filterableAttributes` entry and returns it as Meilisearch stores it: a string,
/// or an object rule with every feature spelled out (`facetSearch: false`, `equality: true`,
/// `comparison: false` where left out).
fn filterable_item(item: &Value, code: &str, at: &str) -> Result<Value, MeiliError> {
    let obj = match item {
        Value::String(_) => return Ok(item.clone()),
        Value::Object(obj) => obj,
        other => return Err(invalid_type(code, at, "a string", other)),
    };
    let unknown = |key: &str, inside: &str, accepted: &str| {
        MeiliError::invalid(
            code,
            format!("Unknown field `{key}` inside `{inside}`: expected one of {accepted}"),
        )
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "attributePatterns" | "features"))
    {
        return Err(unknown(key, at, "`attributePatterns`, `features`"));
    }
    let patterns = obj.get("attributePatterns").ok_or_else(|| {
        MeiliError::invalid(
            code,
            format!("Missing field `attributePatterns` inside `{at}`"),
        )
    })?;
    let patterns = strings(patterns, code, &format!("{at}.attributePatterns"))?;
    let bool_at = |parent: &Map<String, Value>, key: &str, inside: &str, default: bool| match parent
        .get(key)
    {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(invalid_type(
            code,
            &format!("{inside}.{key}"),
            "a boolean",
            other,
        )),
    };
    let defaults = FilterFeatures::default();
    let mut features = defaults;
    if let Some(value) = obj.get("features") {
        let inside = format!("{at}.features");
        let f = value
            .as_object()
            .ok_or_else(|| not_an_object(code, &inside, value))?;
        if let Some(key) = f
            .keys()
            .find(|k| !matches!(k.as_str(), "facetSearch" | "filter"))
        {
            return Err(unknown(key, &inside, "`facetSearch`, `filter`"));
        }
        features.facet_search = bool_at(f, "facetSearch", &inside, defaults.facet_search)?;
        if let Some(value) = f.get("filter") {
            let inside = format!("{inside}.filter");
            let filter = value
                .as_object()
                .ok_or_else(|| not_an_object(code, &inside, value))?;
            if let Some(key) = filter
                .keys()
                .find(|k| !matches!(k.as_str(), "equality" | "comparison"))
            {
                return Err(unknown(key, &inside, "`equality`, `comparison`"));
            }
            features.equality = bool_at(filter, "equality", &inside, defaults.equality)?;
            features.comparison = bool_at(filter, "comparison", &inside, defaults.comparison)?;
        }
    }
    Ok(json!({
        "attributePatterns": patterns,
        "features": {
            "facetSearch": features.facet_search,
            "filter": {"equality": features.equality, "comparison": features.comparison},
        },
    }))
}

/// deserr's message for a value that should be an object (a `null` is not quoted).
fn not_an_object(code: &str, at: &str, value: &Value) -> MeiliError {
    if value.is_null() {
        MeiliError::invalid(
            code,
            format!("Invalid value type at `{at}`: expected an object, but found null"),
        )
    } else {
        invalid_type(code, at, "an object", value)
    }
}

/// One `filterableAttributes` entry: a string rule, or an object rule with the features
/// Meilisearch defaults (equality filtering only) where it leaves them out.
fn filterable_rule(item: &Value) -> Option<FilterableRule> {
    if let Some(name) = item.as_str() {
        return Some(FilterableRule::Field(name.to_owned()));
    }
    let patterns = item
        .get("attributePatterns")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let defaults = FilterFeatures::default();
    let features = item.get("features").unwrap_or(&Value::Null);
    let filter = features.get("filter").unwrap_or(&Value::Null);
    let flag = |v: &Value, key: &str, default: bool| {
        v.get(key).and_then(Value::as_bool).unwrap_or(default)
    };
    Some(FilterableRule::Patterns {
        patterns,
        features: FilterFeatures {
            facet_search: flag(features, "facetSearch", defaults.facet_search),
            equality: flag(filter, "equality", defaults.equality),
            comparison: flag(filter, "comparison", defaults.comparison),
        },
    })
}

fn json_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_convert_to_engine_defaults() {
        assert_eq!(to_engine(&default_view()), Settings::default());
    }

    #[test]
    fn patch_merges_nested_objects_and_null_resets() {
        let mut view = default_view();
        let patch = validate(&json!({
            "typoTolerance": {"minWordSizeForTypos": {"oneTypo": 3}},
            "filterableAttributes": ["genre"],
            "rankingRules": ["words", "price:asc"],
        }))
        .unwrap();
        apply(&mut view, &patch);
        assert_eq!(
            view["typoTolerance"]["minWordSizeForTypos"],
            json!({"oneTypo": 3, "twoTypos": 9})
        );
        let engine = to_engine(&view);
        assert!(engine.is_filterable("genre"));
        assert_eq!(engine.typo_tolerance.one_typo, 3);
        apply(
            &mut view,
            &validate(&json!({"filterableAttributes": null})).unwrap(),
        );
        assert_eq!(view["filterableAttributes"], json!([]));
    }

    #[test]
    fn filterable_rules_keep_their_kind_order_and_default_features() {
        let view = |rules: Value| {
            let mut view = default_view();
            view.insert(
                "filterableAttributes".into(),
                rules["filterableAttributes"].clone(),
            );
            view
        };
        let strings = to_engine(&view(json!({"filterableAttributes": ["genre", "a.*"]})));
        assert_eq!(strings.filterable_attributes, ["genre", "a.*"]);
        assert_eq!(strings.filterable_rules, None);
        assert!(!strings.is_filterable("a.b"));

        let mixed = to_engine(&view(json!({"filterableAttributes": [
            {"attributePatterns": ["gen*", "year"]},
            "title",
            {"attributePatterns": ["x"], "features": {"facetSearch": true, "filter": {"equality": false, "comparison": true}}}
        ]})));
        let defaults = FilterFeatures::default();
        assert_eq!(
            mixed.filterable_rules,
            Some(vec![
                FilterableRule::Patterns {
                    patterns: vec!["gen*".into(), "year".into()],
                    features: defaults,
                },
                FilterableRule::Field("title".into()),
                FilterableRule::Patterns {
                    patterns: vec!["x".into()],
                    features: FilterFeatures {
                        facet_search: true,
                        equality: false,
                        comparison: true,
                    },
                },
            ])
        );
        assert!(mixed.is_filterable("genre"));
        assert_eq!(mixed.filterable_patterns(), ["gen*", "title", "x", "year"]);
    }

    #[test]
    fn invalid_values_use_the_per_setting_code() {
        let err = validate(&json!({"rankingRules": ["nope"]})).unwrap_err();
        assert_eq!(err.code, "invalid_settings_ranking_rules");
        let err = validate(&json!({"filterableAttributes": "genre"})).unwrap_err();
        assert_eq!(err.code, "invalid_settings_filterable_attributes");
        let err = validate(&json!({"unknown": 1})).unwrap_err();
        assert_eq!(err.code, "bad_request");
        assert_eq!(
            validate_one("searchCutoffMs", &json!(-1)).unwrap_err().code,
            "invalid_settings_search_cutoff_ms"
        );
    }
}
