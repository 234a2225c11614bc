//! The server a command talks to: the default, and a URL given by the user
//! checked once (`--api-url`, `CLAUDEMESH_API_URL`, a saved login).

use crate::base::exit::CliError;

pub const DEFAULT_API_URL: &str = "https://claudemesh.com";

/// Checks a server URL given by the user: http(s), no trailing slash.
pub fn normalize_base_url(raw: &str) -> Result<String, CliError> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        _ => Err(CliError::invalid_args(format!(
            "The server URL {raw:?} must start with https:// or http://"
        ))
        .with_hint("Check CLAUDEMESH_API_URL or --api-url.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::exit::Exit;

    #[test]
    fn server_urls_must_be_http_and_lose_their_trailing_slash() {
        assert_eq!(
            normalize_base_url("https://claudemesh.com/").unwrap(),
            "https://claudemesh.com"
        );
        assert_eq!(
            normalize_base_url(" http://127.0.0.1:3000 ").unwrap(),
            "http://127.0.0.1:3000"
        );
        for bad in ["claudemesh.com", "ftp://x", "https://", "", "http://a b"] {
            assert_eq!(
                normalize_base_url(bad).unwrap_err().exit,
                Exit::InvalidArgs,
                "{bad}"
            );
        }
    }
}
