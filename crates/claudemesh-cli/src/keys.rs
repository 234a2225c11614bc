//! This machine's ed25519 key pair for one mesh membership.
//!
//! The secret key is 32 bytes from the operating system's random source
//! (`getrandom`); the public key is derived from it. Only the public key is
//! ever sent to the server; the secret stays in `config.json`. Neither type
//! here implements `Debug` or `Display`, so a secret cannot end up in a
//! message or a log by accident.

use crate::exit::{CliError, CliResult};
use data_encoding::HEXLOWER;
use ed25519_dalek::SigningKey;

/// Bytes in an ed25519 secret or public key.
const KEY_BYTES: usize = 32;

pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    pub fn generate() -> CliResult<Self> {
        let mut seed = [0u8; KEY_BYTES];
        getrandom::fill(&mut seed).map_err(|err| {
            CliError::failure(format!(
                "Could not generate a key pair: the system's random source failed ({err})"
            ))
        })?;
        let signing = SigningKey::from_bytes(&seed);
        // The copy in `signing` is wiped when it is dropped; wipe this one too.
        seed.fill(0);
        Ok(Self { signing })
    }

    /// A key pair from its secret key in hex, as stored in `config.json`.
    pub fn from_secret_hex(text: &str) -> Option<Self> {
        let bytes = decode_key(text)?;
        Some(Self {
            signing: SigningKey::from_bytes(&bytes),
        })
    }

    /// The public key, 64 lowercase hex characters, as the server takes it.
    pub fn public_hex(&self) -> String {
        HEXLOWER.encode(self.signing.verifying_key().as_bytes())
    }

    /// The secret key in hex, only for `config.json`.
    pub fn secret_hex(&self) -> String {
        HEXLOWER.encode(self.signing.as_bytes())
    }
}

/// A 32-byte key in lowercase hex.
fn decode_key(text: &str) -> Option<[u8; KEY_BYTES]> {
    let bytes = HEXLOWER.decode(text.as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// Whether `text` is a public key as the server stores it.
pub fn is_public_key(text: &str) -> bool {
    decode_key(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_round_trips_through_its_secret() {
        let pair = KeyPair::generate().unwrap();
        let public = pair.public_hex();
        assert_eq!(public.len(), 64);
        assert!(is_public_key(&public));
        assert!(
            public
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let again = KeyPair::from_secret_hex(&pair.secret_hex()).unwrap();
        assert_eq!(again.public_hex(), public);
        assert_ne!(pair.secret_hex(), public);
        assert_ne!(KeyPair::generate().unwrap().public_hex(), public);
    }

    #[test]
    fn the_public_key_is_the_ed25519_one() {
        // RFC 8032 §7.1, test 1.
        let pair = KeyPair::from_secret_hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        )
        .unwrap();
        assert_eq!(
            pair.public_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"a".repeat(66)] {
            assert!(KeyPair::from_secret_hex(bad).is_none(), "{bad}");
            assert!(!is_public_key(bad), "{bad}");
        }
    }
}
