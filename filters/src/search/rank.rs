//! The ranking key of a hit, read from its `_rankingScoreDetails`, and Meilisearch's order.
//!
//! A node orders hits by bucket sort: rule by rule in `rankingRules` order, each rule's bucket
//! (`score` = rank / max rank), `sort` rules by value. Comparing the details rule by rule
//! reproduces exactly that. Meilisearch's federated merge folds consecutive rank rules into one
//! mixed-radix score first, which orders the same way when both hits answer the same query with
//! the same settings (same max ranks); the per-rule `score` is all the JSON exposes, so the
//! comparison stays per rule with the same `f64::EPSILON` tolerance.

use smallvec::SmallVec;
use std::borrow::Cow;
use std::cmp::Ordering;

use super::scan;

/// One rule's contribution to the order.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyPart<'a> {
    /// A relevancy rule's local score; greater ranks first.
    Score(f64),
    Sort {
        asc: bool,
        value: SortValue<'a>,
    },
    /// Geo sort by distance; `None` (no `_geo`) ranks last.
    Geo {
        asc: bool,
        distance: Option<f64>,
    },
    /// A sort rule on a field the node does not display: its value is unknown.
    Hidden,
}

/// A sort value as Meilisearch reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum SortValue<'a> {
    Null,
    Number(f64),
    String(Cow<'a, str>),
}

/// The key of one hit: its rules in `order`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RankKey<'a> {
    /// Inline for the usual one part (a search ranked by `_rankingScore`): no allocation a hit.
    pub parts: SmallVec<[KeyPart<'a>; 1]>,
}

/// `Greater` when `left` ranks before `right`.
pub fn compare(left: &RankKey<'_>, right: &RankKey<'_>) -> Ordering {
    for (l, r) in left.parts.iter().zip(&right.parts) {
        let o = match (l, r) {
            (KeyPart::Score(a), KeyPart::Score(b)) => compare_scores(*a, *b),
            (
                KeyPart::Sort { asc, value: a },
                KeyPart::Sort {
                    asc: asc_r,
                    value: b,
                },
            ) if asc == asc_r => compare_sort_values(*asc, a, b),
            (
                KeyPart::Geo { asc, distance: a },
                KeyPart::Geo {
                    asc: asc_r,
                    distance: b,
                },
            ) if asc == asc_r => compare_distances(*asc, *a, *b),
            // A hidden value (or two keys from different queries) orders nothing further:
            // the caller's tie-break keeps each node's own order.
            _ => return Ordering::Equal,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    left.parts.len().cmp(&right.parts.len())
}

fn compare_scores(a: f64, b: f64) -> Ordering {
    if (a - b).abs() <= f64::EPSILON {
        Ordering::Equal
    } else {
        a.partial_cmp(&b).unwrap_or(Ordering::Equal)
    }
}

fn compare_distances(asc: bool, a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => {
            let o = compare_scores(a, b);
            if asc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// Meilisearch's `compare_sort_values`: null last, numbers before strings, `asc` puts the
/// smaller first.
pub fn compare_sort_values(asc: bool, a: &SortValue<'_>, b: &SortValue<'_>) -> Ordering {
    let o = match (a, b) {
        (SortValue::Null, SortValue::Null) => return Ordering::Equal,
        (SortValue::Null, _) => return Ordering::Less,
        (_, SortValue::Null) => return Ordering::Greater,
        (SortValue::Number(_), SortValue::String(_)) => return Ordering::Greater,
        (SortValue::String(_), SortValue::Number(_)) => return Ordering::Less,
        (SortValue::Number(a), SortValue::Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
        (SortValue::String(a), SortValue::String(b)) => a.cmp(b),
    };
    if asc {
        o.reverse()
    } else {
        o
    }
}

/// Fields of one rule's details that the order depends on.
#[derive(Default)]
struct RuleDetail<'a> {
    order: Option<usize>,
    score: Option<f64>,
    similarity: Option<f64>,
    distance: Option<f64>,
    /// The sort value's JSON text.
    value: Option<&'a str>,
}

/// A JSON number, `None` for `null`.
fn number(text: &str) -> Result<Option<f64>, String> {
    match text.as_bytes().first() {
        Some(b'n') if text == "null" => Ok(None),
        Some(b'-' | b'0'..=b'9') => text
            .parse()
            .map(Some)
            .map_err(|e| format!("number {text}: {e}")),
        _ => Err(format!("{text} is not a number")),
    }
}

/// Parses `_rankingScoreDetails` (the text of its value) into a key.
pub fn parse_details(text: &str) -> Result<RankKey<'_>, String> {
    let mut parts: Vec<(usize, KeyPart<'_>)> = Vec::with_capacity(8);
    let mut d = RuleDetail::default();
    scan::each_nested_entry(text, |rule, field| {
        let Some((field, value)) = field else {
            // The rule's last field was read.
            let done = std::mem::take(&mut d);
            let order = done
                .order
                .ok_or_else(|| format!("rule `{rule}` has no order"))?;
            parts.push((order, rule_part(rule, &done)?));
            return Ok(());
        };
        match &*field {
            "order" => {
                d.order = Some(value.parse().map_err(|_| format!("order {value}"))?);
            }
            "score" => d.score = number(value)?,
            "similarity" => d.similarity = number(value)?,
            "distance" => d.distance = number(value)?,
            "value" => d.value = Some(value).filter(|v| *v != "null"),
            _ => {}
        }
        Ok(())
    })?;
    // Nodes write the rules in order; sorting keeps the key right if one ever does not.
    parts.sort_by_key(|(order, _)| *order);
    Ok(RankKey {
        parts: parts.into_iter().map(|(_, p)| p).collect(),
    })
}

fn rule_part<'a>(rule: &str, d: &RuleDetail<'a>) -> Result<KeyPart<'a>, String> {
    match rule {
        // A rule cut short by `searchCutoffMs` ranks as 0.
        "skipped" => return Ok(KeyPart::Score(0.0)),
        "vectorSort" => return Ok(KeyPart::Score(d.similarity.unwrap_or(0.0))),
        _ if rule.starts_with("<hidden-rule-") => return Ok(KeyPart::Hidden),
        _ => {}
    }
    let direction = if rule.ends_with(":asc") {
        Some(true)
    } else if rule.ends_with(":desc") {
        Some(false)
    } else {
        None
    };
    match direction {
        Some(asc) if rule.starts_with("_geoPoint(") => Ok(KeyPart::Geo {
            asc,
            distance: d.distance,
        }),
        Some(asc) => {
            let value = match d.value {
                None => SortValue::Null,
                Some(raw) => parse_sort_value(raw)?,
            };
            Ok(KeyPart::Sort { asc, value })
        }
        None => d
            .score
            .map(KeyPart::Score)
            .ok_or_else(|| format!("rule `{rule}` has no score")),
    }
}

fn parse_sort_value(text: &str) -> Result<SortValue<'_>, String> {
    match text.as_bytes().first() {
        Some(b'n') => Ok(SortValue::Null),
        Some(b'"') => scan::unquote(text)
            .map(SortValue::String)
            .map_err(|e| e.to_string()),
        _ => number(text).map(|n| n.map_or(SortValue::Null, SortValue::Number)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(details: &str) -> RankKey<'_> {
        parse_details(details).unwrap()
    }

    fn num(n: f64) -> SortValue<'static> {
        SortValue::Number(n)
    }

    fn string(s: &str) -> SortValue<'_> {
        SortValue::String(Cow::Borrowed(s))
    }

    #[test]
    fn sort_values_rank_numbers_before_strings_and_null_last_both_ways() {
        for asc in [true, false] {
            assert_eq!(
                compare_sort_values(asc, &num(5.0), &string("a")),
                Ordering::Greater
            );
            assert_eq!(
                compare_sort_values(asc, &string("a"), &SortValue::Null),
                Ordering::Greater
            );
            assert_eq!(
                compare_sort_values(asc, &SortValue::Null, &num(1.0)),
                Ordering::Less
            );
        }
        assert_eq!(
            compare_sort_values(true, &num(1.0), &num(2.0)),
            Ordering::Greater
        );
        assert_eq!(
            compare_sort_values(false, &num(1.0), &num(2.0)),
            Ordering::Less
        );
        assert_eq!(
            compare_sort_values(true, &string("a"), &string("b")),
            Ordering::Greater
        );
        assert_eq!(
            compare_sort_values(false, &string("a"), &string("b")),
            Ordering::Less
        );
    }

    #[test]
    fn sort_is_a_rule_between_relevancy_rules_not_a_primary_key() {
        let d = |words: f64, price: f64, exact: f64| {
            format!(
                r#"{{"words":{{"order":0,"matchingWords":1,"maxMatchingWords":2,"score":{words}}},
                "price:asc":{{"order":1,"value":{price}}},
                "exactness":{{"order":2,"matchType":"exactMatch","score":{exact}}}}}"#
            )
        };
        let (a, b, c, e) = (
            d(1.0, 90.0, 0.3),
            d(0.5, 1.0, 1.0),
            d(1.0, 10.0, 0.3),
            d(1.0, 10.0, 1.0),
        );
        // More matching words wins over a better price.
        assert_eq!(compare(&key(&a), &key(&b)), Ordering::Greater);
        // Same words: the cheaper ranks first.
        assert_eq!(compare(&key(&c), &key(&a)), Ordering::Greater);
        // Same words and price: the rule after sort decides.
        assert_eq!(compare(&key(&e), &key(&c)), Ordering::Greater);
        assert_eq!(compare(&key(&c), &key(&c)), Ordering::Equal);
    }

    #[test]
    fn scores_within_epsilon_are_equal() {
        let a = key(r#"{"proximity":{"order":0,"score":0.3333333333333333}}"#);
        let b = key(r#"{"proximity":{"order":0,"score":0.33333333333333337}}"#);
        assert_eq!(compare(&a, &b), Ordering::Equal);
    }

    #[test]
    fn parses_every_rule_shape_meilisearch_writes() {
        let k = key(
            r#"{"words":{"order":0,"matchingWords":2,"maxMatchingWords":2,"score":1.0},
            "attribute":{"order":1,"attributeRankingOrderScore":1.0,"queryWordDistanceScore":0.8,"score":0.9},
            "<hidden-rule-2>":{"order":2,"value":"<hidden>"},
            "_geoPoint(48.8, 2.3):asc":{"order":3,"value":{"lat":48.0,"lng":2.0},"distance":1200.5},
            "title:desc":{"order":4,"value":"caf\u00e9"},
            "skipped":{"order":5}}"#,
        );
        assert_eq!(
            k.parts.to_vec(),
            vec![
                KeyPart::Score(1.0),
                KeyPart::Score(0.9),
                KeyPart::Hidden,
                KeyPart::Geo {
                    asc: true,
                    distance: Some(1200.5)
                },
                KeyPart::Sort {
                    asc: false,
                    value: SortValue::String(Cow::Owned("café".into()))
                },
                KeyPart::Score(0.0),
            ]
        );
    }

    #[test]
    fn a_hidden_value_stops_the_comparison() {
        let a = key(
            r#"{"<hidden-rule-0>":{"order":0,"value":"<hidden>"},"exactness":{"order":1,"score":1.0}}"#,
        );
        let b = key(
            r#"{"<hidden-rule-0>":{"order":0,"value":"<hidden>"},"exactness":{"order":1,"score":0.1}}"#,
        );
        assert_eq!(compare(&a, &b), Ordering::Equal);
    }

    #[test]
    fn geo_distance_orders_nearest_first_when_ascending() {
        let g = |d: &str| {
            format!(r#"{{"_geoPoint(0, 0):asc":{{"order":0,"value":null,"distance":{d}}}}}"#)
        };
        let (near, far, none) = (g("10.0"), g("99.0"), g("null"));
        assert_eq!(compare(&key(&near), &key(&far)), Ordering::Greater);
        assert_eq!(compare(&key(&far), &key(&none)), Ordering::Greater);
    }

    #[test]
    fn a_rule_without_its_score_is_an_error() {
        assert!(parse_details(r#"{"words":{"order":0}}"#).is_err());
    }
}
