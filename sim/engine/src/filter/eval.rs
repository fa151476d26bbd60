//! Evaluation of a filter AST against one document, with Meilisearch's value semantics:
//! numbers compare numerically, strings on their normalized form, arrays match when any
//! element does.

use serde_json::Value;

use super::{Expr, Op, Operand};
use crate::fields::{self, FacetValue};
use crate::model::Document;

pub(super) fn eval(expr: &Expr, doc: &Document) -> bool {
    match expr {
        Expr::And(items) => items.iter().all(|e| eval(e, doc)),
        Expr::Or(items) => items.iter().any(|e| eval(e, doc)),
        Expr::Not(inner) => !eval(inner, doc),
        Expr::Condition { field, op } => eval_condition(&field.name, op, doc),
        Expr::GeoRadius { lat, lng, radius } => {
            geo_point(doc).is_some_and(|p| crate::geo::distance_m((*lat, *lng), p) <= *radius)
        }
        Expr::GeoBox {
            top_right,
            bottom_left,
        } => geo_point(doc).is_some_and(|(lat, lng)| {
            let lat_ok = lat <= top_right.0 && lat >= bottom_left.0;
            let lng_ok = if bottom_left.1 <= top_right.1 {
                lng >= bottom_left.1 && lng <= top_right.1
            } else {
                // The box crosses the antimeridian.
                lng >= bottom_left.1 || lng <= top_right.1
            };
            lat_ok && lng_ok
        }),
    }
}

fn geo_point(doc: &Document) -> Option<(f64, f64)> {
    crate::geo::point(doc)
}

fn eval_condition(field: &str, op: &Op, doc: &Document) -> bool {
    match op {
        Op::Exists => fields::exists(doc, field),
        Op::Null => fields::raw_values_at(doc, field).iter().any(|v| match v {
            Value::Null => true,
            Value::Array(items) => items.iter().any(Value::is_null),
            _ => false,
        }),
        Op::Empty => fields::raw_values_at(doc, field).iter().any(|v| match v {
            Value::String(s) => s.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::Object(obj) => obj.is_empty(),
            _ => false,
        }),
        Op::Equal(v) => equals_any(doc, field, v),
        Op::NotEqual(v) => !equals_any(doc, field, v),
        Op::In(values) => values.iter().any(|v| equals_any(doc, field, v)),
        Op::StartsWith(prefix) => fields::any_value(doc, field, &mut |v| match v {
            Value::String(s) => fields::normalize_facet(s).starts_with(&prefix.normalized),
            _ => false,
        }),
        Op::Greater(v) => in_range(doc, field, Bound::Excl(v), Bound::None),
        Op::GreaterEq(v) => in_range(doc, field, Bound::Incl(v), Bound::None),
        Op::Lower(v) => in_range(doc, field, Bound::None, Bound::Excl(v)),
        Op::LowerEq(v) => in_range(doc, field, Bound::None, Bound::Incl(v)),
        Op::Between(a, b) => in_range(doc, field, Bound::Incl(a), Bound::Incl(b)),
    }
}

pub(super) fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn equals_any(doc: &Document, field: &str, value: &Operand) -> bool {
    fields::any_value(doc, field, &mut |v| match v {
        Value::Number(n) => value.number.is_some() && n.as_f64() == value.number,
        Value::String(s) => facet_str_eq(s, &value.normalized),
        Value::Bool(b) => value.normalized == if *b { "true" } else { "false" },
        _ => false,
    })
}

/// `normalize_facet(s) == normalized` without allocating in the ASCII case.
fn facet_str_eq(s: &str, normalized: &str) -> bool {
    let trimmed = s.trim();
    if trimmed.is_ascii() {
        trimmed.eq_ignore_ascii_case(normalized)
    } else {
        fields::normalize_facet(trimmed) == normalized
    }
}

enum Bound<'a> {
    None,
    Incl(&'a Operand),
    Excl(&'a Operand),
}

impl Bound<'_> {
    /// Whether `ordering` (value compared with the bound) satisfies this lower bound.
    fn admits_low(&self, ordering: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Bound::None => true,
            Bound::Incl(_) => matches!(ordering, Some(Greater | Equal)),
            Bound::Excl(_) => matches!(ordering, Some(Greater)),
        }
    }

    fn admits_high(&self, ordering: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Bound::None => true,
            Bound::Incl(_) => matches!(ordering, Some(Less | Equal)),
            Bound::Excl(_) => matches!(ordering, Some(Less)),
        }
    }

    fn operand(&self) -> Option<&Operand> {
        match self {
            Bound::None => None,
            Bound::Incl(o) | Bound::Excl(o) => Some(o),
        }
    }
}

/// Ranges apply to numbers (when every bound parses as one) and, lexicographically on the
/// normalized form, to strings, as Meilisearch does.
fn in_range(doc: &Document, field: &str, low: Bound<'_>, high: Bound<'_>) -> bool {
    use std::cmp::Ordering::{Greater, Less};
    let numeric = [&low, &high]
        .iter()
        .all(|b| b.operand().is_none_or(|o| o.number.is_some()));
    fields::any_value(doc, field, &mut |v| match fields::facet_value(v) {
        Some(FacetValue::Number(n)) => {
            let cmp = |b: &Bound<'_>, default| {
                b.operand()
                    .and_then(|o| o.number)
                    .map_or(Some(default), |x| n.partial_cmp(&x))
            };
            numeric && low.admits_low(cmp(&low, Greater)) && high.admits_high(cmp(&high, Less))
        }
        Some(FacetValue::String(norm, _)) => {
            let cmp = |b: &Bound<'_>, default| {
                b.operand()
                    .map_or(Some(default), |o| Some(norm.as_str().cmp(&o.normalized)))
            };
            low.admits_low(cmp(&low, Greater)) && high.admits_high(cmp(&high, Less))
        }
        None => false,
    })
}
