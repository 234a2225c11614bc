//! The one rule that lets a cookie-authenticated change through, for the
//! JSON API ([`crate::auth::caller::check_csrf`], token in the `x-csrf-token`
//! header) and the pages (`crate::pages::csrf`, token in the form body)
//! alike: the request comes from our own origin, or carries the expected
//! token.
//!
//! A pure function of what the request claims and what we expect, so both
//! sides apply exactly the same rule and it is tested without a server.

use crate::app::state::origin_of;
use claudemesh_api::sha256_hex;

/// What a request says about where it comes from, and the token it carries.
#[derive(Debug, Default, Clone, Copy)]
pub struct Claims<'a> {
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Referer` header, read only when there is no `Origin`.
    pub referer: Option<&'a str>,
    /// The CSRF token sent with the request (header or form field).
    pub token: Option<&'a str>,
}

/// Whether the request may change state: its origin (or, without one, its
/// referer's) is `our_origin`, or its token is `expected_token`. `None`
/// expected (no token issued yet) lets only the origin pass.
pub fn allows(claims: Claims<'_>, our_origin: &str, expected_token: Option<&str>) -> bool {
    let claimed_origin = match claims.origin {
        Some(origin) => Some(origin.to_ascii_lowercase()),
        None => claims.referer.and_then(origin_of),
    };
    let same_origin = claimed_origin.as_deref() == Some(our_origin);
    let token_ok = match (claims.token, expected_token) {
        (Some(sent), Some(expected)) if !sent.is_empty() => tokens_match(sent, expected),
        _ => false,
    };
    same_origin || token_ok
}

/// Compares tokens by digest, so the comparison time says nothing about the
/// expected one.
fn tokens_match(sent: &str, expected: &str) -> bool {
    sha256_hex(sent) == sha256_hex(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "https://claudemesh.com";

    fn claims<'a>(
        origin: Option<&'a str>,
        referer: Option<&'a str>,
        token: Option<&'a str>,
    ) -> Claims<'a> {
        Claims {
            origin,
            referer,
            token,
        }
    }

    #[test]
    fn our_origin_passes_without_a_token() {
        assert!(allows(claims(Some(OURS), None, None), OURS, Some("t")));
        assert!(allows(
            claims(Some("HTTPS://ClaudeMesh.com"), None, None),
            OURS,
            None
        ));
        let referer = "https://claudemesh.com/dashboard?x=1";
        assert!(allows(claims(None, Some(referer), None), OURS, None));
    }

    #[test]
    fn another_origin_needs_the_token() {
        let evil = Some("https://evil.example");
        assert!(!allows(claims(evil, None, None), OURS, Some("t0k")));
        assert!(!allows(
            claims(evil, None, Some("wrong")),
            OURS,
            Some("t0k")
        ));
        assert!(allows(claims(evil, None, Some("t0k")), OURS, Some("t0k")));
        // The Origin header wins over a Referer that looks like ours.
        assert!(!allows(claims(evil, Some(OURS), None), OURS, Some("t0k")));
    }

    #[test]
    fn nothing_expected_means_no_token_passes() {
        assert!(!allows(claims(None, None, Some("")), OURS, None));
        assert!(!allows(claims(None, None, Some("x")), OURS, None));
        assert!(!allows(claims(None, None, Some("")), OURS, Some("")));
        assert!(!allows(claims(None, None, None), OURS, Some("t")));
    }
}
