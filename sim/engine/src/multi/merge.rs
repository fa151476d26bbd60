//! Meilisearch's federated ordering (`weighted_scores.rs`): each hit's rule outcomes become
//! weighted score groups and sort values, compared position by position, merged k-way.

use std::cmp::Ordering;
use std::collections::VecDeque;

use serde_json::Value;

use crate::model::IndexData;
use crate::ranking::{Detail, Rank};
use crate::search::RankedHit;
use crate::sort::compare_sort_values;

/// A hit of the federated stream, with its comparison key computed once.
pub(super) struct FedHit<'a> {
    pub query: usize,
    pub index_uid: String,
    pub index: &'a IndexData,
    pub hit: RankedHit<'a>,
    weight: f64,
    weighted: Vec<Weighted>,
}

impl<'a> FedHit<'a> {
    pub fn new(
        query: usize,
        index_uid: &str,
        index: &'a IndexData,
        hit: RankedHit<'a>,
        weight: f64,
    ) -> Self {
        let weighted = weighted_values(&hit.details, weight);
        Self {
            query,
            index_uid: index_uid.to_owned(),
            index,
            hit,
            weight,
            weighted,
        }
    }

    /// `_federation.weightedRankingScore`.
    pub fn weighted_score(&self) -> f64 {
        self.hit.score * self.weight
    }
}

/// Meilisearch's `WeightedScoreValue`: consecutive ranks merged into one weighted score,
/// sorts and geo sorts kept as values.
enum Weighted {
    Score(f64),
    Sort { asc: bool, value: Value },
    Geo { asc: bool, distance: Option<f64> },
}

fn weighted_values(details: &[Detail], weight: f64) -> Vec<Weighted> {
    let mut out = Vec::new();
    let mut pending: Vec<Rank> = Vec::new();
    let flush = |pending: &mut Vec<Rank>, out: &mut Vec<Weighted>| {
        if !pending.is_empty() {
            out.push(Weighted::Score(
                Rank::global_score(pending.drain(..)) * weight,
            ));
        }
    };
    for d in details {
        match d {
            Detail::Sort { asc, value, .. } => {
                flush(&mut pending, &mut out);
                out.push(Weighted::Sort {
                    asc: *asc,
                    value: value.clone(),
                });
            }
            Detail::GeoSort { asc, .. } => {
                flush(&mut pending, &mut out);
                out.push(Weighted::Geo {
                    asc: *asc,
                    distance: d.geo_distance(),
                });
            }
            other => pending.extend(other.ranks()),
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn partial(a: &Weighted, b: &Weighted) -> Option<Ordering> {
    match (a, b) {
        (Weighted::Score(x), Weighted::Score(y)) => Some(if (x - y).abs() <= f64::EPSILON {
            Ordering::Equal
        } else {
            x.partial_cmp(y).unwrap_or(Ordering::Equal)
        }),
        (
            Weighted::Sort { asc, value: x },
            Weighted::Sort {
                asc: asc2,
                value: y,
            },
        ) => (asc == asc2).then(|| compare_sort_values(*asc, x, y)),
        (
            Weighted::Geo { asc, distance: x },
            Weighted::Geo {
                asc: asc2,
                distance: y,
            },
        ) => {
            if asc != asc2 {
                return None;
            }
            Some(match (x, y) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => {
                    if (x - y).abs() <= f64::EPSILON {
                        Ordering::Equal
                    } else {
                        // Meilisearch compares raw distances here.
                        x.partial_cmp(y).unwrap_or(Ordering::Equal)
                    }
                }
            })
        }
        _ => None,
    }
}

/// `weighted_scores::compare`: `Greater` means `a` ranks first.
fn compare_fed(a: &FedHit<'_>, b: &FedHit<'_>) -> Ordering {
    let (left, right) = (&a.weighted, &b.weighted);
    let mut i = 0;
    loop {
        match (left.get(i), right.get(i)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match partial(x, y) {
                Some(Ordering::Equal) => i += 1,
                Some(o) => return o,
                None => {
                    let counts = (left.len() - i).cmp(&(right.len() - i));
                    if counts != Ordering::Equal {
                        return counts;
                    }
                    return a
                        .weighted_score()
                        .partial_cmp(&b.weighted_score())
                        .unwrap_or(Ordering::Equal);
                }
            },
        }
    }
}

/// k-way merge keeping each stream's order; the head ranking first wins, ties go to the lower
/// query position (itertools' `kmerge_by` as Meilisearch uses it).
pub(super) fn kmerge<'a>(streams: Vec<VecDeque<FedHit<'a>>>) -> Vec<FedHit<'a>> {
    let mut streams = streams;
    let mut out = Vec::new();
    loop {
        let mut best: Option<usize> = None;
        for (s, stream) in streams.iter().enumerate() {
            let Some(head) = stream.front() else { continue };
            best = match best {
                None => Some(s),
                Some(b) => {
                    let current = streams[b].front();
                    match current.map(|c| compare_fed(head, c)) {
                        Some(Ordering::Greater) => Some(s),
                        Some(Ordering::Equal) if current.is_some_and(|c| head.query < c.query) => {
                            Some(s)
                        }
                        _ => Some(b),
                    }
                }
            };
        }
        let Some(b) = best else { break };
        if let Some(hit) = streams[b].pop_front() {
            out.push(hit);
        }
    }
    out
}
