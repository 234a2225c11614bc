//! How things are written for people, in pages and mails: times, escaped
//! HTML, percent-encoded query values, and where to go after signing in.

/// Where to go after signing in: `next` if it is a path on this site,
/// otherwise the dashboard. A path must start with exactly one `/` (not `//`
/// or `/\`, which browsers read as another host), and only printable ASCII
/// without backslashes is kept (browsers drop tabs and newlines, and read
/// `\` as `/`).
pub fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/dashboard";
    let Some(next) = next else {
        return HOME.to_owned();
    };
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local {
        next.to_owned()
    } else {
        HOME.to_owned()
    }
}

/// Escapes text for HTML content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `2026-11-23 19:05 UTC`: a time in a form every language reads.
pub fn format_time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Epoch milliseconds of an RFC 3339 time from the API's wire types.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
}

/// [`format_time`] of an RFC 3339 time from the API's wire types (as given
/// if it does not parse).
pub fn format_rfc3339(text: &str) -> String {
    parse_rfc3339(text).map_or_else(|| text.to_owned(), format_time)
}

/// `19:05:33 UTC`.
pub fn format_clock(ms: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// `m:ss` of a number of seconds.
pub fn format_countdown(seconds: i64) -> String {
    let seconds = seconds.max(0);
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        for good in ["/dashboard", "/cli-auth?code=BCDF-GHJK", "/"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "javascript:alert(1)",
            "evil.com",
            "/\t/evil.com",
            "/ /evil.com",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/dashboard", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(
            percent_encode("/cli-auth?code=AB CD&x=é"),
            "%2Fcli-auth%3Fcode%3DAB%20CD%26x%3D%C3%A9"
        );
    }

    #[test]
    fn times_read_the_same_in_every_language() {
        assert_eq!(format_time(1_795_000_000_999), "2026-11-18 11:06 UTC");
        assert_eq!(format_clock(1_795_000_000_999), "11:06:40 UTC");
        assert_eq!(
            format_rfc3339("2026-11-18T11:06:40.999Z"),
            "2026-11-18 11:06 UTC"
        );
        assert_eq!(format_rfc3339("not a time"), "not a time");
        assert_eq!(format_countdown(587), "9:47");
        assert_eq!(format_countdown(-5), "0:00");
    }
}
