//! This machine's ed25519 key pair for one mesh membership: the protocol's
//! own [`KeyPair`] (`claudemesh_api::e2e`), made here with the CLI's errors.
//!
//! The secret key is 32 bytes from the operating system's random source;
//! only the public key is ever sent to the server, the secret stays in
//! `config.json`. `KeyPair` implements neither `Debug` nor `Display`, so a
//! secret cannot end up in a message or a log by accident.

use crate::base::exit::{CliError, CliResult};
pub use claudemesh_api::e2e::KeyPair;

/// A fresh key pair.
pub fn generate() -> CliResult<KeyPair> {
    KeyPair::generate().map_err(|err| {
        CliError::failure(format!(
            "Could not generate a key pair: the system's random source failed ({err})"
        ))
    })
}

/// Whether `text` is a public key as the server stores it.
pub fn is_public_key(text: &str) -> bool {
    claudemesh_api::broker::is_key_hex(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_round_trips_through_its_secret() {
        let pair = generate().unwrap();
        let public = pair.public_hex();
        assert!(is_public_key(&public));
        let again = KeyPair::from_secret_hex(&pair.secret_hex()).unwrap();
        assert_eq!(again.public_hex(), public);
        assert_ne!(pair.secret_hex(), public);
        assert_ne!(generate().unwrap().public_hex(), public);
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
