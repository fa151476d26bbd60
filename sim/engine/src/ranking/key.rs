//! Sort keys: a hit's rule outcomes flattened once into cheaply comparable parts, so sorting
//! thousands of hits does not re-walk the details.

use std::cmp::Ordering;

use serde_json::Value;

use super::Detail;

/// A cheaply comparable form of a document's rule outcomes, built once per hit before sorting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyPart<'a> {
    Score(f64),
    /// A sort value classified once: numbers rank before strings, null last.
    SortNumber(bool, f64),
    SortString(bool, &'a str),
    SortNull,
    Geo(bool, Option<f64>),
}

/// Appends the key parts of `details` to `key`.
pub fn push_sort_key<'a>(details: &'a [Detail], key: &mut Vec<KeyPart<'a>>) {
    for d in details {
        match d {
            Detail::Sort { asc, value, .. } => key.push(match value {
                Value::Number(n) => KeyPart::SortNumber(*asc, n.as_f64().unwrap_or(0.0)),
                Value::String(s) => KeyPart::SortString(*asc, s),
                _ => KeyPart::SortNull,
            }),
            Detail::GeoSort { asc, .. } => key.push(KeyPart::Geo(*asc, d.geo_distance())),
            // Documents without an embedding come after every similarity (0.0 included).
            Detail::Vector { similarity } => {
                key.push(KeyPart::Score(similarity.map_or(-1.0, f64::from)))
            }
            // Distinct fractions with small denominators never round to the same f64, so
            // comparing local scores is exact.
            other => key.extend(other.ranks().map(|r| KeyPart::Score(r.local_score()))),
        }
    }
}

/// `Greater` when `a` ranks before `b`: rule by rule, as milli's bucket sort orders them.
pub fn compare_keys(a: &[KeyPart<'_>], b: &[KeyPart<'_>]) -> Ordering {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i < n {
        let o = match (a[i], b[i]) {
            (KeyPart::Score(x), KeyPart::Score(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            (KeyPart::SortNumber(asc, x), KeyPart::SortNumber(_, y)) => {
                directed(asc, x.partial_cmp(&y).unwrap_or(Ordering::Equal))
            }
            (KeyPart::SortString(asc, x), KeyPart::SortString(_, y)) => directed(asc, x.cmp(y)),
            (KeyPart::SortNumber(..), KeyPart::SortString(..) | KeyPart::SortNull)
            | (KeyPart::SortString(..), KeyPart::SortNull) => Ordering::Greater,
            (KeyPart::SortString(..) | KeyPart::SortNull, KeyPart::SortNumber(..))
            | (KeyPart::SortNull, KeyPart::SortString(..)) => Ordering::Less,
            (KeyPart::Geo(asc, x), KeyPart::Geo(_, y)) => compare_distances(asc, x, y),
            _ => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return o;
        }
        i += 1;
    }
    Ordering::Equal
}

/// Ascending order wants the smaller value first, so "greater" means smaller.
fn directed(asc: bool, natural: Ordering) -> Ordering {
    if asc {
        natural.reverse()
    } else {
        natural
    }
}

fn compare_distances(asc: bool, a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => directed(asc, a.partial_cmp(&b).unwrap_or(Ordering::Equal)),
    }
}
