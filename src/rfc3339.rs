//! Times as the API and the logs write them: RFC 3339, UTC, whole seconds,
//! such as `2026-11-29T08:12:19Z`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats a time as RFC 3339 UTC.
pub fn format(time: OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    let whole = utc.replace_nanosecond(0).unwrap_or(utc);
    // Formatting fails only for years outside 0..=9999, which no
    // certificate or token time reaches; fall back to Unix seconds.
    whole
        .format(&Rfc3339)
        .unwrap_or_else(|_| whole.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_whole_seconds_with_a_z() {
        let time = time::macros::datetime!(2026-11-29 09:12:19.75 +02:00);
        assert_eq!(format(time), "2026-11-29T07:12:19Z");
    }
}
