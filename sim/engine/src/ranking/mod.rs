//! Ranking rules evaluated on one document at a time. Each relevancy rule yields a rank out of a
//! maximum that depends only on the query and the document (as milli's graph rules do), so a
//! document's `_rankingScore` never depends on the rest of the index. Sorting documents compares
//! these per-rule values lexicographically, which is what milli's bucket sort produces.
mod details;
mod key;
mod rules;
mod strategy;

use serde_json::Value;

use crate::model::Settings;
use crate::params::MatchingStrategy;
use crate::sort::Criterion;

pub use details::details_json;
pub use key::{compare_keys, push_sort_key, KeyPart};
pub use rules::Ranker;
pub use strategy::Removal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub rank: u32,
    pub max_rank: u32,
}

impl Rank {
    pub fn local_score(self) -> f64 {
        f64::from(self.rank) / f64::from(self.max_rank)
    }

    /// Folds ranks with milli's mixed-radix `Rank::merge`
    /// (`rank = (outer.rank - 1) * inner.max + inner.rank`). Computed in (saturating) u128 so
    /// long queries cannot overflow; identical to milli's u32 arithmetic whenever that does not
    /// overflow.
    pub fn global_score(ranks: impl Iterator<Item = Rank>) -> f64 {
        let (rank, max) = ranks.fold((1u128, 1u128), |(rank, max), inner| {
            let inner_max = u128::from(inner.max_rank);
            let merged = rank.saturating_sub(1).saturating_mul(inner_max);
            (
                merged.saturating_add(u128::from(inner.rank)),
                max.saturating_mul(inner_max),
            )
        });
        rank as f64 / max as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactAttribute {
    ExactMatch,
    MatchesStart,
    NoExactMatch,
}

impl ExactAttribute {
    fn rank(self) -> Rank {
        let rank = match self {
            ExactAttribute::ExactMatch => 3,
            ExactAttribute::MatchesStart => 2,
            ExactAttribute::NoExactMatch => 1,
        };
        Rank { rank, max_rank: 3 }
    }

    fn as_str(self) -> &'static str {
        match self {
            ExactAttribute::ExactMatch => "exactMatch",
            ExactAttribute::MatchesStart => "matchesStart",
            ExactAttribute::NoExactMatch => "noExactMatch",
        }
    }
}

/// One rule's outcome for one document.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Words {
        matching: u32,
        max: u32,
    },
    Typo {
        count: u32,
        max: u32,
    },
    Proximity(Rank),
    AttributeRank(Rank),
    WordPosition(Rank),
    Exactness {
        attribute: ExactAttribute,
        matching: u32,
        max: u32,
    },
    Sort {
        field: String,
        asc: bool,
        redacted: bool,
        value: Value,
    },
    GeoSort {
        target: (f64, f64),
        asc: bool,
        point: Option<(f64, f64)>,
    },
    /// Semantic similarity to the query vector, `None` for a document without an embedding
    /// (ranked after every document that has one).
    Vector {
        similarity: Option<f32>,
    },
}

impl Detail {
    /// The ranks this detail contributes to the global score, in order (at most two).
    pub(crate) fn ranks(&self) -> impl Iterator<Item = Rank> {
        let pair = match self {
            Detail::Words { matching, max } => [
                Some(Rank {
                    rank: *matching,
                    max_rank: *max,
                }),
                None,
            ],
            Detail::Typo { count, max } => [
                Some(Rank {
                    rank: (max + 1).saturating_sub(*count),
                    max_rank: max + 1,
                }),
                None,
            ],
            Detail::Proximity(r) | Detail::AttributeRank(r) | Detail::WordPosition(r) => {
                [Some(*r), None]
            }
            Detail::Exactness {
                attribute,
                matching,
                max,
            } => [
                Some(attribute.rank()),
                Some(Rank {
                    rank: matching + 1,
                    max_rank: max + 1,
                }),
            ],
            Detail::Sort { .. } | Detail::GeoSort { .. } | Detail::Vector { .. } => [None, None],
        };
        pair.into_iter().flatten()
    }

    pub fn geo_distance(&self) -> Option<f64> {
        match self {
            Detail::GeoSort {
                target,
                point: Some(p),
                ..
            } => Some(crate::geo::distance_m(*target, *p)),
            _ => None,
        }
    }
}

/// The global `_rankingScore`: every relevancy rank folded together, sort rules excluded; a
/// semantic similarity, when there is one, is the score (milli's `global_score`).
pub fn global_score(details: &[Detail]) -> f64 {
    let semantic = details.iter().find_map(|d| match d {
        Detail::Vector { similarity } => Some(similarity.map_or(0.0, f64::from)),
        _ => None,
    });
    semantic.unwrap_or_else(|| Rank::global_score(details.iter().flat_map(Detail::ranks)))
}

/// A rule of the effective ranking pipeline for one query.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Words,
    Typo,
    Proximity,
    AttributeRank,
    WordPosition,
    Exactness,
    Sort(Criterion),
    /// Similarity to the query vector (semantic search).
    Vector,
}

/// Builds the pipeline as milli does: `words` is inserted before the first rule that needs it
/// (unless the strategy is `all`), `sort` expands to the query's criteria, custom `field:asc`
/// rules become sorts, and placeholder searches keep only the sorts.
pub fn pipeline(
    settings: &Settings,
    sort: &[Criterion],
    placeholder: bool,
    strategy: MatchingStrategy,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut words = strategy == MatchingStrategy::All;
    let mut sorted_fields: Vec<String> = Vec::new();
    for name in &settings.ranking_rules {
        let relevancy = match name.as_str() {
            "words" => Some(Rule::Words),
            "typo" => Some(Rule::Typo),
            "proximity" => Some(Rule::Proximity),
            "attributeRank" | "attribute" => Some(Rule::AttributeRank),
            "wordPosition" => Some(Rule::WordPosition),
            "exactness" => Some(Rule::Exactness),
            _ => None,
        };
        if let Some(rule) = relevancy {
            if placeholder {
                continue;
            }
            if rule != Rule::Words && !words {
                rules.push(Rule::Words);
                words = true;
            }
            if rule == Rule::Words && words {
                continue;
            }
            if rule == Rule::Words {
                words = true;
            }
            if !rules.contains(&rule) {
                rules.push(rule.clone());
            }
            if name == "attribute" && !rules.contains(&Rule::WordPosition) {
                rules.push(Rule::WordPosition);
            }
            continue;
        }
        if name == "sort" {
            for c in sort {
                let field = c.field_name().to_owned();
                if !sorted_fields.contains(&field) {
                    sorted_fields.push(field);
                    rules.push(Rule::Sort(c.clone()));
                }
            }
            continue;
        }
        let custom = name
            .strip_suffix(":asc")
            .map(|f| (f, true))
            .or_else(|| name.strip_suffix(":desc").map(|f| (f, false)));
        if let Some((field, asc)) = custom {
            if !sorted_fields.iter().any(|f| f == field) {
                sorted_fields.push(field.to_owned());
                rules.push(Rule::Sort(Criterion::Field {
                    name: field.to_owned(),
                    asc,
                }));
            }
        }
    }
    rules
}

/// The pipeline of a semantic search, as milli's `get_ranking_rules_for_vector` builds it:
/// the relevancy rules collapse into one vector rule at the first one's place; `sort` and
/// custom `field:asc` rules stay where they are.
pub fn vector_pipeline(settings: &Settings, sort: &[Criterion]) -> Vec<Rule> {
    let relevancy = |r: &str| {
        matches!(
            r,
            "words"
                | "typo"
                | "proximity"
                | "attributeRank"
                | "attribute"
                | "wordPosition"
                | "exactness"
        )
    };
    let first = settings.ranking_rules.iter().position(|r| relevancy(r));
    let mut rules = Vec::new();
    for (i, name) in settings.ranking_rules.iter().enumerate() {
        if Some(i) == first {
            rules.push(Rule::Vector);
        }
        if relevancy(name) {
            continue;
        }
        // One rule at a time through the placeholder pipeline keeps its sort semantics.
        let single = Settings {
            ranking_rules: vec![name.clone()],
            ..Settings::default()
        };
        for rule in pipeline(&single, sort, true, MatchingStrategy::Last) {
            let field = match &rule {
                Rule::Sort(c) => Some(c.field_name().to_owned()),
                _ => None,
            };
            let seen = rules.iter().any(|r| match r {
                Rule::Sort(c) => Some(c.field_name().to_owned()) == field,
                _ => false,
            });
            if !seen {
                rules.push(rule);
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_meilisearch_mixed_radix() {
        let ranks = [
            Rank {
                rank: 2,
                max_rank: 3,
            },
            Rank {
                rank: 4,
                max_rank: 5,
            },
        ];
        // ((2-1)*5 + 4) / 15
        assert!((Rank::global_score(ranks.into_iter()) - 9.0 / 15.0).abs() < 1e-12);
    }

    #[test]
    fn pipeline_inserts_words_and_expands_sort() {
        let settings = Settings::default();
        let sort = vec![Criterion::Field {
            name: "price".into(),
            asc: true,
        }];
        let rules = pipeline(&settings, &sort, false, MatchingStrategy::Last);
        assert_eq!(rules[0], Rule::Words);
        assert_eq!(rules[4], Rule::Sort(sort[0].clone()));
        assert_eq!(rules.len(), 7);
        let all = pipeline(&settings, &sort, false, MatchingStrategy::All);
        assert!(!all.contains(&Rule::Words));
        let placeholder = pipeline(&settings, &sort, true, MatchingStrategy::Last);
        assert_eq!(placeholder, vec![Rule::Sort(sort[0].clone())]);
    }
}
