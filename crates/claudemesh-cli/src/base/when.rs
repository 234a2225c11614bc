//! Times as people read them: "in 3 days", "2 hours ago", and the date.
//! The wire carries RFC 3339 UTC strings; anything unparsable is shown as is.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Milliseconds since the Unix epoch (the broker's attestation clock).
pub fn now_ms() -> i64 {
    i64::try_from(now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn now_rfc3339() -> String {
    now()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// `2026-11-23 19:05 UTC`.
pub fn date(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute()
    )
}

/// `7 days`, `1 hour`, `30 seconds`: a length of time, to the nearest unit.
pub fn span(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    // To the nearest unit: a 7-day invite read a few seconds later is still
    // "in 7 days", not "in 6 days".
    let nearest = |unit: i64| (seconds + unit / 2) / unit;
    match seconds {
        s if s < 60 => plural(s.max(1), "second"),
        s if s < 3600 => plural(nearest(60), "minute"),
        s if s < 86_400 => plural(nearest(3600), "hour"),
        _ => plural(nearest(86_400), "day"),
    }
}

/// "in 3 days" / "2 hours ago" / "just now", relative to `now`.
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (at - now).whole_seconds();
    match seconds {
        s if s.abs() < 5 => "just now".to_owned(),
        s if s > 0 => format!("in {}", span(s)),
        s => format!("{} ago", span(-s)),
    }
}

/// "in 3 days (2026-11-23 19:05 UTC)", or the text itself if unparsable.
pub fn describe(text: &str, now: OffsetDateTime) -> String {
    match parse(text) {
        Some(at) => format!("{} ({})", relative(at, now), date(at)),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn at(text: &str) -> OffsetDateTime {
        parse(text).unwrap()
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = at("2026-01-10T12:00:00Z");
        let cases = [
            (Duration::seconds(2), "just now"),
            (Duration::seconds(-3), "just now"),
            (Duration::seconds(30), "in 30 seconds"),
            (Duration::minutes(1), "in 1 minute"),
            (Duration::minutes(-5), "5 minutes ago"),
            (Duration::hours(-1), "1 hour ago"),
            (Duration::hours(23), "in 23 hours"),
            (Duration::days(3), "in 3 days"),
            (Duration::days(-400), "400 days ago"),
            (Duration::days(7) - Duration::seconds(40), "in 7 days"),
            (Duration::days(90) - Duration::minutes(3), "in 90 days"),
            (Duration::hours(-2) + Duration::minutes(1), "2 hours ago"),
            (Duration::days(2) + Duration::hours(13), "in 3 days"),
        ];
        for (offset, expected) in cases {
            assert_eq!(relative(now + offset, now), expected, "{offset:?}");
        }
    }

    #[test]
    fn dates_are_utc_minutes() {
        assert_eq!(date(at("2026-11-23T19:05:33Z")), "2026-11-23 19:05 UTC");
        assert_eq!(
            date(at("2026-11-23T21:05:33+02:00")),
            "2026-11-23 19:05 UTC"
        );
        let now = at("2026-11-20T19:05:33Z");
        assert_eq!(
            describe("2026-11-23T19:05:33Z", now),
            "in 3 days (2026-11-23 19:05 UTC)"
        );
        assert_eq!(describe("soon", now), "soon");
    }

    #[test]
    fn now_is_rfc3339_without_fractions() {
        let text = now_rfc3339();
        assert!(parse(&text).is_some());
        assert!(text.ends_with('Z') && !text.contains('.'), "{text}");
    }
}
