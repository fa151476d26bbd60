//! The relevancy rules themselves, computed from one document's query-term occurrences:
//! the matching strategy picks the terms kept, then each rule turns occurrences into a rank.

use super::strategy::Removal;
use super::{Detail, ExactAttribute, Rank, Rule};
use crate::matching::{DocMatches, Occurrence};
use crate::model::{Document, Settings};
use crate::query::Term;
use crate::sort::{sort_value, Criterion};

/// Proximity between two words at or beyond this distance is "not close" (milli's
/// `proximity::MAX_DISTANCE`; the indexer's position gap of 8 is a different constant).
const MAX_PROXIMITY: u32 = 4;
/// Highest per-term cost of the `wordPosition` rule.
const MAX_POSITION_COST: u32 = 10;

/// Everything the rules need besides the document.
pub struct Ranker<'a> {
    pub rules: Vec<Rule>,
    pub terms: &'a [Term],
    pub settings: &'a Settings,
    pub max_weight: Option<u32>,
    /// How the matching strategy drops terms.
    pub removal: Removal,
    /// Semantic search: the embedder and the query vector the `Vector` rule compares to.
    pub vector: Option<(&'a str, &'a [f32])>,
}

/// What the matching strategy kept of a document's match: the terms (query order), their
/// occurrences (narrowed by the `typo` rule as milli's buckets are), and the `words` rank.
struct Kept<'m> {
    matches: &'m DocMatches,
    terms: Vec<usize>,
    per_term: Vec<Vec<&'m Occurrence>>,
    words: Rank,
}

impl Ranker<'_> {
    /// Rule outcomes for a document, or `None` when it does not match the query.
    pub fn evaluate(&self, doc: &Document, matches: Option<&DocMatches>) -> Option<Vec<Detail>> {
        let mut kept = match matches {
            Some(m) if m.has_negative => return None,
            Some(m) => {
                let (terms, words) = self.removal.keep(&m.matched_terms(self.terms.len()))?;
                let per_term = terms
                    .iter()
                    .map(|t| m.occurrences.iter().filter(|o| o.term == *t).collect())
                    .collect();
                Some(Kept {
                    matches: m,
                    terms,
                    per_term,
                    words,
                })
            }
            None => None,
        };
        let mut details = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let detail = match (rule, kept.as_mut()) {
                (Rule::Sort(c), _) => self.sort_detail(doc, c),
                (Rule::Vector, _) => Detail::Vector {
                    similarity: self.vector.and_then(|(embedder, target)| {
                        crate::vector::best_similarity(doc, embedder, target)
                    }),
                },
                (_, None) => continue,
                (Rule::Words, Some(k)) => Detail::Words {
                    matching: k.words.rank,
                    max: k.words.max_rank,
                },
                (Rule::Typo, Some(k)) => self.typo(k),
                (Rule::Proximity, Some(k)) => Detail::Proximity(self.proximity(k)),
                (Rule::AttributeRank, Some(k)) => Detail::AttributeRank(self.attribute_rank(k)),
                (Rule::WordPosition, Some(k)) => Detail::WordPosition(self.word_position(k)),
                (Rule::Exactness, Some(k)) => self.exactness(k),
            };
            details.push(detail);
        }
        Some(details)
    }

    /// Sums each term's fewest typos, then keeps only those occurrences for later rules.
    fn typo(&self, k: &mut Kept<'_>) -> Detail {
        let mut count = 0;
        let mut max = 0;
        for (i, occs) in k.per_term.iter_mut().enumerate() {
            let min = occs.iter().map(|o| o.typos).min().unwrap_or(0);
            occs.retain(|o| o.typos == min);
            count += u32::from(min);
            max += self.terms[k.terms[i]].max_typo_cost();
        }
        Detail::Typo { count, max }
    }

    fn sort_detail(&self, doc: &Document, c: &Criterion) -> Detail {
        match c {
            Criterion::Field { name, asc } => Detail::Sort {
                field: name.clone(),
                asc: *asc,
                redacted: self
                    .settings
                    .displayed_attributes
                    .as_ref()
                    .is_some_and(|d| !d.iter().any(|a| a == "*" || a == name)),
                value: sort_value(doc, name, *asc),
            },
            Criterion::Geo { lat, lng, asc } => Detail::GeoSort {
                target: (*lat, *lng),
                asc: *asc,
                point: crate::geo::point(doc),
            },
        }
    }

    fn proximity(&self, k: &Kept<'_>) -> Rank {
        let by_attribute = self.settings.proximity_precision == "byAttribute";
        let mut pairs = 0;
        let mut cost = 0;
        for i in 1..k.terms.len() {
            let (left, right) = (&self.terms[k.terms[i - 1]], &self.terms[k.terms[i]]);
            // Only terms adjacent in the query form a pair.
            if left.end_position + 1 != right.position {
                continue;
            }
            pairs += 1;
            // A phrase on the left is measured from its last word.
            let left_span = left.end_position - left.position;
            let mut best = MAX_PROXIMITY - 1;
            for a in &k.per_term[i - 1] {
                for b in &k.per_term[i] {
                    if a.field != b.field {
                        continue;
                    }
                    let c = if by_attribute {
                        0
                    } else {
                        let a_end = a.position + left_span;
                        let distance = if a_end <= b.position {
                            b.position - a_end
                        } else {
                            a_end - b.position + 1
                        };
                        if distance == 0 {
                            continue;
                        }
                        distance.min(MAX_PROXIMITY) - 1
                    };
                    best = best.min(c);
                }
            }
            cost += best;
        }
        let max = 1 + (MAX_PROXIMITY - 1) * pairs;
        Rank {
            rank: max - cost,
            max_rank: max,
        }
    }

    /// Sum over terms of the best (lowest) weight of a field holding them.
    fn attribute_rank(&self, k: &Kept<'_>) -> Rank {
        let Some(max_weight) = self.max_weight else {
            return Rank {
                rank: 1,
                max_rank: 1,
            };
        };
        let cost: u32 = k
            .per_term
            .iter()
            .map(|occs| {
                occs.iter()
                    .map(|o| u32::from(k.matches.fields[o.field].weight))
                    .min()
                    .unwrap_or(max_weight)
            })
            .sum();
        let max = 1 + max_weight * count(k.per_term.len());
        Rank {
            rank: max - cost.min(max - 1),
            max_rank: max,
        }
    }

    /// Sum over terms of how far the term sits from its place in the query.
    fn word_position(&self, k: &Kept<'_>) -> Rank {
        let cost: u32 = k
            .per_term
            .iter()
            .enumerate()
            .map(|(i, occs)| {
                let query_position = self.terms[k.terms[i]].position;
                occs.iter()
                    .map(|o| position_cost(bucketed(o.position).abs_diff(query_position)))
                    .min()
                    .unwrap_or(MAX_POSITION_COST)
            })
            .sum();
        let max = 1 + MAX_POSITION_COST * count(k.per_term.len());
        Rank {
            rank: max - cost,
            max_rank: max,
        }
    }

    /// Whether a field equals or starts with the query (exact words at their query
    /// positions), then how many terms appear as typed.
    fn exactness(&self, k: &Kept<'_>) -> Detail {
        let (remaining, per_term) = (&k.terms, &k.per_term);
        let matching = count(
            per_term
                .iter()
                .filter(|occs| occs.iter().any(|o| o.exact))
                .count(),
        );
        let max = count(remaining.len());
        let contiguous = remaining.iter().enumerate().all(|(i, t)| *t == i);
        let mut attribute = ExactAttribute::NoExactMatch;
        let at_query_position = per_term.iter().enumerate().all(|(i, occs)| {
            let target = bucketed(self.terms[remaining[i]].position);
            occs.iter()
                .any(|o| o.exact && bucketed(o.position) == target)
        });
        if contiguous && !remaining.is_empty() && at_query_position {
            for (field, info) in k.matches.fields.iter().enumerate() {
                let all_in_field = per_term
                    .iter()
                    .all(|occs| occs.iter().any(|o| o.exact && o.field == field));
                if !all_in_field {
                    continue;
                }
                // milli compares the field's word count with the query positions covered.
                let positions: u32 = remaining
                    .iter()
                    .map(|t| self.terms[*t].position_count())
                    .sum();
                if info.word_count == positions {
                    attribute = ExactAttribute::ExactMatch;
                    break;
                }
                attribute = ExactAttribute::MatchesStart;
            }
        }
        Detail::Exactness {
            attribute,
            matching,
            max,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// milli's bucketing of word positions: exact below 16, then coarser.
pub fn bucketed(position: u32) -> u32 {
    if position < 16 {
        position
    } else if position < 24 {
        24
    } else {
        f64::from(position).log2().ceil().exp2() as u32
    }
}

fn position_cost(distance: u32) -> u32 {
    match distance {
        0 => 0,
        1 => 1,
        2..=4 => 2,
        5..=7 => 3,
        8..=11 => 4,
        12..=16 => 5,
        17..=24 => 6,
        25..=64 => 7,
        65..=256 => 8,
        257..=1024 => 9,
        _ => 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucketed_positions_match_milli() {
        assert_eq!(
            (bucketed(3), bucketed(17), bucketed(30), bucketed(64)),
            (3, 24, 32, 64)
        );
    }
}
