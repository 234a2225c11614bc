//! API tokens: `cm_session_…` and `cm_pat_…`.
//!
//! A token is `cm_<kind>_` + 32 random bytes in lowercase base32 (52 chars) +
//! the CRC32 of everything before it, also in base32 (7 chars). The checksum
//! lets the CLI reject a mistyped token before any request and lets secret
//! scanners tell a real token from noise offline. The whole token matches
//! [`SCAN_REGEX`]; the prefix is part of the format forever.

use crate::secret::{base32_lower, is_base32_lower, random_bytes, sha256_hex};
use std::fmt;

/// The regular expression secret scanners use to find leaked tokens.
pub const SCAN_REGEX: &str = "cm_(session|pat)_[a-z0-9]{32,}";

const BODY_LEN: usize = 52;
const CHECKSUM_LEN: usize = 7;

/// Which kind of credential a token is. Only for humans reading token lists:
/// the server trusts the database row, not the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Minted by `claudemesh login` through the device-code flow.
    Session,
    /// A personal access token made in the dashboard or the API.
    Pat,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Session => "cm_session_",
            Self::Pat => "cm_pat_",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Pat => "pat",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "session" => Some(Self::Session),
            "pat" => Some(Self::Pat),
            _ => None,
        }
    }
}

/// Why a string is not a well-formed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormatError {
    UnknownPrefix,
    WrongLength,
    BadCharacter,
    BadChecksum,
}

impl fmt::Display for TokenFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownPrefix => "token does not start with cm_pat_ or cm_session_",
            Self::WrongLength => "token has the wrong length",
            Self::BadCharacter => "token has a character outside a-z and 2-7",
            Self::BadChecksum => "token checksum does not match (mistyped or truncated?)",
        })
    }
}

impl std::error::Error for TokenFormatError {}

/// A raw token. Its `Debug` is redacted; [`Token::expose`] is the only way to
/// the text, so every place that reveals a token is easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    kind: TokenKind,
    text: String,
}

fn checksum(prefix_and_body: &str) -> String {
    base32_lower(&crc32fast::hash(prefix_and_body.as_bytes()).to_be_bytes())
}

impl Token {
    pub fn generate(kind: TokenKind) -> Self {
        Self::from_random(kind, random_bytes::<32>())
    }

    /// Builds the token for given random bytes (deterministic, for tests).
    pub fn from_random(kind: TokenKind, random: [u8; 32]) -> Self {
        let mut text = format!("{}{}", kind.prefix(), base32_lower(&random));
        let sum = checksum(&text);
        text.push_str(&sum);
        Self { kind, text }
    }

    /// Checks the prefix, length, alphabet and checksum. Surrounding
    /// whitespace (a pasted newline) is ignored.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        let text = text.trim();
        let kind = [TokenKind::Session, TokenKind::Pat]
            .into_iter()
            .find(|kind| text.starts_with(kind.prefix()))
            .ok_or(TokenFormatError::UnknownPrefix)?;
        let rest = &text[kind.prefix().len()..];
        if !is_base32_lower(rest) {
            return Err(TokenFormatError::BadCharacter);
        }
        if rest.len() != BODY_LEN + CHECKSUM_LEN {
            return Err(TokenFormatError::WrongLength);
        }
        let (without_sum, sum) = text.split_at(text.len() - CHECKSUM_LEN);
        if checksum(without_sum) != sum {
            return Err(TokenFormatError::BadChecksum);
        }
        Ok(Self {
            kind,
            text: text.to_owned(),
        })
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The raw token, for the one place that must hand it over.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the token: the only form the server stores.
    pub fn digest(&self) -> String {
        sha256_hex(&self.text)
    }

    /// A short, non-secret prefix shown in token lists (`cm_pat_k3xq9a2b`).
    pub fn display_prefix(&self) -> String {
        self.text[..self.kind.prefix().len() + 8].to_owned()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", self.display_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back() {
        for kind in [TokenKind::Session, TokenKind::Pat] {
            let token = Token::generate(kind);
            assert_eq!(Token::parse(token.expose()), Ok(token.clone()));
            assert_eq!(token.kind(), kind);
            assert!(token.expose().starts_with(kind.prefix()));
        }
    }

    #[test]
    fn every_generated_token_matches_the_scan_regex() {
        let re = regex_lite::Regex::new(&format!("^{SCAN_REGEX}$")).unwrap();
        for _ in 0..500 {
            for kind in [TokenKind::Session, TokenKind::Pat] {
                let token = Token::generate(kind);
                assert!(re.is_match(token.expose()), "{}", token.expose());
            }
        }
    }

    #[test]
    fn the_format_is_pinned() {
        let token = Token::from_random(TokenKind::Pat, [0u8; 32]);
        let body = "a".repeat(52);
        assert!(token.expose().starts_with(&format!("cm_pat_{body}")));
        assert_eq!(token.expose().len(), "cm_pat_".len() + 52 + 7);
        assert_eq!(token.display_prefix(), "cm_pat_aaaaaaaa");
    }

    #[test]
    fn a_single_typo_fails_the_checksum() {
        let token = Token::generate(TokenKind::Pat);
        let text = token.expose();
        for i in "cm_pat_".len()..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            assert_eq!(
                Token::parse(&typo),
                Err(TokenFormatError::BadChecksum),
                "{i}"
            );
        }
    }

    #[test]
    fn malformed_tokens_say_why() {
        assert_eq!(
            Token::parse("ghp_abc"),
            Err(TokenFormatError::UnknownPrefix)
        );
        assert_eq!(
            Token::parse("cm_pat_abc"),
            Err(TokenFormatError::WrongLength)
        );
        assert_eq!(
            Token::parse("cm_pat_ABC"),
            Err(TokenFormatError::BadCharacter)
        );
        let token = Token::generate(TokenKind::Pat);
        let truncated = &token.expose()[..token.expose().len() - 1];
        assert_eq!(Token::parse(truncated), Err(TokenFormatError::WrongLength));
    }

    #[test]
    fn pasted_whitespace_is_ignored() {
        let token = Token::generate(TokenKind::Session);
        assert_eq!(Token::parse(&format!("  {}\n", token.expose())), Ok(token));
    }

    #[test]
    fn debug_is_redacted() {
        let token = Token::generate(TokenKind::Pat);
        let debug = format!("{token:?}");
        assert!(!debug.contains(token.expose()));
        assert!(debug.contains(&token.display_prefix()));
    }
}
