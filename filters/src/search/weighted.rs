//! The order of a federated search's hits across queries, as Meilisearch 1.50 orders them: each
//! hit's ranking details become a list of weighted values (a run of consecutive ranking rules
//! is one score, times the query's weight; a sort rule its value; a geo sort its distance; a
//! vector similarity times the weight), compared position by position. Where two values do not
//! compare (a score against a sort value), the hit with more values left wins, then the higher
//! weighted `_rankingScore`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::rank::{compare_sort_values, SortValue};

/// One weighted value of a hit.
#[derive(Debug, Clone, PartialEq)]
pub enum Weighted {
    /// A run of ranking rules (or a vector similarity), times the weight.
    Score(f64),
    Sort {
        asc: bool,
        value: SortValue<'static>,
    },
    Geo {
        asc: bool,
        distance: Option<f64>,
    },
}

/// A ranking rule's rank among `max` (Meilisearch's `Rank`), where its details give both.
fn rank_of(name: &str, d: &Map<String, Value>) -> Option<(u64, u64)> {
    let n = |k: &str| d.get(k).and_then(Value::as_u64);
    match name {
        "words" => Some((n("matchingWords")?, n("maxMatchingWords")?)),
        "typo" => {
            let max = n("maxTypoCount")? + 1;
            Some((max.saturating_sub(n("typoCount")?), max))
        }
        "skipped" => Some((0, 1)),
        _ => None,
    }
}

/// The score of a run of ranking rules merged as Meilisearch merges ranks (`Rank::merge`:
/// each rule refines the rank of the ones before it): every rule but the last needs its rank
/// and its maximum, the last only its score. `None` when a rule does not give them.
fn run_score(run: &[(&str, &Map<String, Value>)]) -> Option<f64> {
    let (last, init) = run.split_last()?;
    let last_score = if last.0 == "skipped" {
        0.0
    } else {
        last.1.get("score")?.as_f64()?
    };
    // local = (r1 - 1)/m1 + ((r2 - 1)/m2 + (... + s_last)/m_(n-1) ...)/m1, from the end.
    init.iter().rev().try_fold(last_score, |inner, (name, d)| {
        let (rank, max) = rank_of(name, d)?;
        (max > 0).then(|| (rank.saturating_sub(1) as f64 + inner) / max as f64)
    })
}

fn sort_value(v: Option<&Value>) -> SortValue<'static> {
    match v {
        Some(Value::Number(n)) => n.as_f64().map_or(SortValue::Null, SortValue::Number),
        Some(Value::String(s)) => SortValue::String(s.clone().into()),
        _ => SortValue::Null,
    }
}

/// A hit's weighted values, from its `_rankingScoreDetails` and `_rankingScore`; `None` when
/// it has no details, or a run of rules whose score they do not give (a run after a sort rule
/// holding `proximity`, `attribute` or `exactness` before its last rule), or a hidden rule.
pub fn values(hit: &Value, weight: f64) -> Option<Vec<Weighted>> {
    let details = hit.get("_rankingScoreDetails")?.as_object()?;
    let mut rules: Vec<(u64, &str, &Map<String, Value>)> = details
        .iter()
        .map(|(name, d)| Some((d.get("order")?.as_u64()?, name.as_str(), d.as_object()?)))
        .collect::<Option<_>>()?;
    rules.sort_by_key(|r| r.0);
    let mut v = Values {
        out: Vec::with_capacity(rules.len()),
        run: Vec::new(),
        global: Some(hit.get("_rankingScore")?.as_f64()?),
        weight,
    };
    for (_, name, d) in rules {
        let direction = name
            .strip_suffix(":asc")
            .map(|f| (f, true))
            .or_else(|| name.strip_suffix(":desc").map(|f| (f, false)));
        match (name, direction) {
            ("vectorSort", _) => {
                v.close_run()?;
                let similarity = d.get("similarity").and_then(Value::as_f64).unwrap_or(0.0);
                v.score(similarity);
            }
            (_, Some((field, asc))) if field.starts_with("_geoPoint(") => {
                v.close_run()?;
                let distance = d.get("distance").and_then(Value::as_f64);
                v.out.push(Weighted::Geo { asc, distance });
            }
            (_, Some((_, asc))) => {
                v.close_run()?;
                let value = sort_value(d.get("value"));
                v.out.push(Weighted::Sort { asc, value });
            }
            _ if name.starts_with("<hidden-rule-") => return None,
            _ => v.run.push((name, d)),
        }
    }
    v.close_run()?;
    Some(v.out)
}

/// A hit's weighted values as its rules are read in order.
struct Values<'a> {
    out: Vec<Weighted>,
    /// The ranking rules read since the last value of another kind.
    run: Vec<(&'a str, &'a Map<String, Value>)>,
    /// The hit's `_rankingScore`, until its first score is written: it is that score.
    global: Option<f64>,
    weight: f64,
}

impl Values<'_> {
    fn score(&mut self, score: f64) {
        let score = self.global.take().unwrap_or(score);
        self.out.push(Weighted::Score(score * self.weight));
    }

    /// The run of ranking rules read, as one score.
    fn close_run(&mut self) -> Option<()> {
        if self.run.is_empty() {
            return Some(());
        }
        let score = match self.global {
            Some(global) => global,
            None => run_score(&self.run)?,
        };
        self.score(score);
        self.run.clear();
        Some(())
    }
}

/// Meilisearch's order of two hits by their weighted values (`Greater`: `left` first), with
/// their weighted `_rankingScore`s for values that do not compare.
pub fn compare(
    left: &[Weighted],
    left_global: f64,
    right: &[Weighted],
    right_global: f64,
) -> Ordering {
    let by_global = || {
        left_global
            .partial_cmp(&right_global)
            .unwrap_or(Ordering::Equal)
    };
    let mut i = 0;
    loop {
        let (l, r) = (left.get(i), right.get(i));
        i += 1;
        match (l, r) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(Weighted::Score(a)), Some(Weighted::Score(b))) => {
                if (a - b).abs() > f64::EPSILON {
                    return a.partial_cmp(b).unwrap_or(Ordering::Equal);
                }
            }
            (
                Some(Weighted::Sort { asc: la, value: a }),
                Some(Weighted::Sort { asc: ra, value: b }),
            ) => {
                if la != ra {
                    return by_global();
                }
                match compare_sort_values(*la, a, b) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            (
                Some(Weighted::Geo {
                    asc: la,
                    distance: a,
                }),
                Some(Weighted::Geo {
                    asc: ra,
                    distance: b,
                }),
            ) => {
                if la != ra {
                    continue;
                }
                // As Meilisearch 1.50 compares them: the greater distance first, whatever the
                // direction.
                match (a, b) {
                    (None, None) => {}
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(a), Some(b)) => {
                        if (a - b).abs() > f64::EPSILON {
                            return a.partial_cmp(b).unwrap_or(Ordering::Equal);
                        }
                    }
                }
            }
            // Values of different kinds: more values left first, then the global score.
            _ => {
                let (left_rest, right_rest) = (left.len() - i, right.len() - i);
                return left_rest.cmp(&right_rest).then_with(by_global);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(score: f64, details: Value) -> Value {
        json!({"_rankingScore": score, "_rankingScoreDetails": details})
    }

    fn relevancy(words: (u64, u64), typo: (u64, u64), proximity: f64) -> Value {
        json!({
            "words": {"order": 0, "matchingWords": words.0, "maxMatchingWords": words.1, "score": words.0 as f64 / words.1 as f64},
            "typo": {"order": 1, "typoCount": typo.0, "maxTypoCount": typo.1, "score": 0.0},
            "proximity": {"order": 2, "score": proximity},
        })
    }

    #[test]
    fn a_run_of_rules_is_one_score_and_a_sort_rule_its_value() {
        let mut d = relevancy((1, 1), (0, 0), 1.0);
        d["rank:desc"] = json!({"order": 3, "value": 40});
        let v = values(&hit(1.0, d), 2.0).unwrap();
        assert_eq!(
            v,
            vec![
                Weighted::Score(2.0),
                Weighted::Sort {
                    asc: false,
                    value: SortValue::Number(40.0)
                }
            ]
        );
    }

    #[test]
    fn a_run_after_a_sort_is_merged_as_meilisearch_merges_ranks() {
        // words 2 of 3, then typo 1 of 2 (maxTypoCount 1, no typo): rank 2 of 3 refined by
        // rank 2 of 2 gives ((2 - 1) + 1) / 3.
        let d = json!({
            "year:desc": {"order": 0, "value": 2001},
            "words": {"order": 1, "matchingWords": 2, "maxMatchingWords": 3, "score": 0.6667},
            "typo": {"order": 2, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
        });
        // The global score is that run's (the first score of the hit).
        let v = values(&hit(0.6667, d.clone()), 1.0).unwrap();
        assert_eq!(v[1], Weighted::Score(0.6667));
        let run: Vec<(&str, &Map<String, Value>)> = ["words", "typo"]
            .iter()
            .map(|k| (*k, d[*k].as_object().unwrap()))
            .collect();
        assert!((run_score(&run).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // A second run holding `proximity` before its last rule gives no score.
        let d = json!({
            "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": 1.0},
            "year:desc": {"order": 1, "value": 2001},
            "proximity": {"order": 2, "score": 1.0},
            "attribute": {"order": 3, "score": 1.0},
        });
        assert_eq!(values(&hit(1.0, d), 1.0), None);
    }

    #[test]
    fn equal_scores_are_ordered_by_the_sort_value_across_queries() {
        let with_rank = |rank: u64| {
            let mut d = relevancy((1, 1), (0, 0), 1.0);
            d["rank:desc"] = json!({"order": 3, "value": rank});
            values(&hit(1.0, d), 1.0).unwrap()
        };
        assert_eq!(
            compare(&with_rank(40), 1.0, &with_rank(39), 1.0),
            Ordering::Greater
        );
        assert_eq!(
            compare(&with_rank(39), 1.0, &with_rank(40), 1.0),
            Ordering::Less
        );
        assert_eq!(
            compare(&with_rank(7), 1.0, &with_rank(7), 1.0),
            Ordering::Equal
        );
        // A better score wins before the sort value is read.
        let mut worse = relevancy((1, 2), (0, 0), 1.0);
        worse["rank:desc"] = json!({"order": 3, "value": 99});
        let worse = values(&hit(0.5, worse), 1.0).unwrap();
        assert_eq!(compare(&with_rank(1), 1.0, &worse, 0.5), Ordering::Greater);
    }

    #[test]
    fn values_of_different_kinds_fall_back_to_what_is_left_then_the_global_score() {
        let a = [
            Weighted::Score(0.9),
            Weighted::Sort {
                asc: true,
                value: SortValue::Null,
            },
        ];
        let b = [Weighted::Sort {
            asc: true,
            value: SortValue::Null,
        }];
        assert_eq!(compare(&a, 0.9, &b, 0.1), Ordering::Greater);
        let c = [
            Weighted::Sort {
                asc: true,
                value: SortValue::Null,
            },
            Weighted::Score(0.1),
        ];
        assert_eq!(compare(&a, 0.2, &c, 0.3), Ordering::Less);
        let asc = [Weighted::Sort {
            asc: true,
            value: SortValue::Number(1.0),
        }];
        let desc = [Weighted::Sort {
            asc: false,
            value: SortValue::Number(1.0),
        }];
        assert_eq!(compare(&asc, 0.2, &desc, 0.3), Ordering::Less);
    }
}
