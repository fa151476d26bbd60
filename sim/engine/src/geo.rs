//! `_geo` points and great-circle distances, as Meilisearch's geo filters and geo sort use them.

use serde_json::Value;

use crate::model::Document;

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The document's `_geo` point, accepting numbers or numeric strings as Meilisearch does.
pub fn point(doc: &Document) -> Option<(f64, f64)> {
    let geo = doc.get("_geo")?.as_object()?;
    let coord = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Some((coord(geo.get("lat")?)?, coord(geo.get("lng")?)?))
}

/// Haversine distance in meters.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlng = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlng / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}
