//! `_rankingScoreDetails` rendered with Meilisearch's keys (`words`, `typo`, `proximity`,
//! `attributeRank`, `wordPosition`, `exactness`, `field:asc` or `<hidden-rule-N>`).

use serde_json::{json, Map, Value};

use super::{Detail, ExactAttribute, Rank};

/// `_rankingScoreDetails` as Meilisearch renders it.
pub fn details_json(details: &[Detail]) -> Map<String, Value> {
    let mut map = Map::new();
    for (order, d) in details.iter().enumerate() {
        match d {
            Detail::Words { matching, max } => {
                map.insert(
                    "words".into(),
                    json!({"order": order, "matchingWords": matching, "maxMatchingWords": max, "score": score_of(d)}),
                );
            }
            Detail::Typo { count, max } => {
                map.insert(
                    "typo".into(),
                    json!({"order": order, "typoCount": count, "maxTypoCount": max, "score": score_of(d)}),
                );
            }
            Detail::Proximity(r) => {
                map.insert(
                    "proximity".into(),
                    json!({"order": order, "score": r.local_score()}),
                );
            }
            Detail::AttributeRank(r) => {
                map.insert(
                    "attributeRank".into(),
                    json!({"order": order, "score": r.local_score()}),
                );
            }
            Detail::WordPosition(r) => {
                map.insert(
                    "wordPosition".into(),
                    json!({"order": order, "score": r.local_score()}),
                );
            }
            Detail::Exactness {
                attribute,
                matching,
                max,
            } => {
                let value = if *attribute == ExactAttribute::NoExactMatch {
                    json!({"order": order, "matchType": attribute.as_str(), "matchingWords": matching, "maxMatchingWords": max, "score": score_of(d)})
                } else {
                    json!({"order": order, "matchType": attribute.as_str(), "score": attribute.rank().local_score()})
                };
                map.insert("exactness".into(), value);
            }
            Detail::Sort {
                field,
                asc,
                redacted,
                value,
            } => {
                let (key, value) = if *redacted {
                    (format!("<hidden-rule-{order}>"), json!("<hidden>"))
                } else {
                    (
                        format!("{field}:{}", if *asc { "asc" } else { "desc" }),
                        value.clone(),
                    )
                };
                map.insert(key, json!({"order": order, "value": value}));
            }
            Detail::GeoSort { target, asc, point } => {
                let key = format!(
                    "_geoPoint({}, {}):{}",
                    target.0,
                    target.1,
                    if *asc { "asc" } else { "desc" }
                );
                let value = point.map_or(Value::Null, |(lat, lng)| json!({"lat": lat, "lng": lng}));
                map.insert(
                    key,
                    json!({"order": order, "value": value, "distance": d.geo_distance()}),
                );
            }
            Detail::Vector { similarity } => {
                map.insert(
                    "vectorSort".into(),
                    json!({"order": order, "similarity": similarity.map(f64::from)}),
                );
            }
        }
    }
    map
}

fn score_of(d: &Detail) -> f64 {
    Rank::global_score(d.ranks())
}
