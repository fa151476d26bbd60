//! Timestamps in Meilisearch's formats: RFC 3339 instants and ISO 8601 durations.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a UTC instant with RFC 3339 cannot fail for years 0..=9999.
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// `PT0.012345S`, the shape Meilisearch gives task and batch durations.
pub fn iso_duration(d: time::Duration) -> String {
    let nanos = d.whole_nanoseconds().max(0);
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    if frac == 0 {
        return format!("PT{secs}S");
    }
    let frac = format!("{frac:09}");
    format!("PT{secs}.{}S", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_as_iso_8601_seconds() {
        assert_eq!(iso_duration(time::Duration::milliseconds(12)), "PT0.012S");
        assert_eq!(iso_duration(time::Duration::seconds(2)), "PT2S");
        assert_eq!(
            iso_duration(time::Duration::nanoseconds(1_500_000_001)),
            "PT1.500000001S"
        );
    }
}
