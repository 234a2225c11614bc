//! Random secrets and their at-rest digests.
//!
//! Secrets are 32 random bytes written in lowercase RFC 4648 base32 without
//! padding. A 256-bit random secret needs no slow hash: its SHA-256 is stored
//! and looked up directly, so a lookup is one indexed read.

use sha2::{Digest, Sha256};
use std::fmt;

/// Lowercase RFC 4648 base32 without padding, as used in every secret.
pub(crate) fn base32_lower(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

/// Whether `s` is made only of lowercase base32 symbols (`a-z`, `2-7`).
pub(crate) fn is_base32_lower(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

#[expect(
    clippy::expect_used,
    reason = "no randomness from the OS: nothing secure can be made, so stop"
)]
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// Hex SHA-256 of a secret: what is stored in place of the secret.
pub fn sha256_hex(secret: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(secret.as_bytes()))
}

/// Why a device code was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormatError {
    WrongLength,
    BadCharacter,
}

impl fmt::Display for SecretFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WrongLength => "device code has the wrong length",
            Self::BadCharacter => "device code has a character outside a-z and 2-7",
        })
    }
}

/// The opaque code a CLI polls with (RFC 8628 `device_code`).
///
/// Only its SHA-256 is stored, so a database leak does not let anyone claim a
/// pending login. Never printed in clear by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCode(String);

impl DeviceCode {
    /// Length of the base32 text of 32 bytes.
    pub const LEN: usize = 52;

    pub fn generate() -> Self {
        Self(base32_lower(&random_bytes::<32>()))
    }

    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        if text.len() != Self::LEN {
            return Err(SecretFormatError::WrongLength);
        }
        if !is_base32_lower(text) {
            return Err(SecretFormatError::BadCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    /// The raw code, for the one response that hands it to the CLI.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceCode(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_codes_round_trip_and_are_unique() {
        let a = DeviceCode::generate();
        let b = DeviceCode::generate();
        assert_ne!(a, b);
        assert_eq!(DeviceCode::parse(a.expose()).unwrap(), a);
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn device_code_rejects_bad_text() {
        assert_eq!(
            DeviceCode::parse("abc"),
            Err(SecretFormatError::WrongLength)
        );
        let upper = "A".repeat(DeviceCode::LEN);
        assert_eq!(
            DeviceCode::parse(&upper),
            Err(SecretFormatError::BadCharacter)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let code = DeviceCode::generate();
        assert!(!format!("{code:?}").contains(code.expose()));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
