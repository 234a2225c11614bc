//! Every cookie the server sets, and the one way they are read and written:
//! HttpOnly, SameSite=Lax, Path=/, and Secure when the public URL is https.

use axum::http::{HeaderMap, header};

/// The browser's session: signed in by [`crate::auth::caller`].
pub const SESSION_COOKIE: &str = "cm_sid";
/// The language picked with `?lang=` ([`crate::text::i18n::negotiate`]).
pub const LANG_COOKIE: &str = "lang";
/// The double-submit CSRF token of the sign-in and register forms, which
/// have no session yet (the pages' `cookies`).
pub const PRE_SESSION_COOKIE: &str = "cm_csrf";

/// The value of one cookie from the `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value of a cookie of ours; `secure` over https.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn finds_a_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cm_sid=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, "cm_sid"), Some("xyz"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
