//! End-to-end encryption and the signatures of the broker protocol.
//!
//! Every key is an ed25519 key pair. Signatures are ed25519 (verified
//! strictly). Encryption uses the same keys converted to X25519, the way
//! libsodium's `crypto_sign_ed25519_{pk,sk}_to_curve25519` does, and
//! libsodium's `crypto_box` (X25519, HSalsa20, XSalsa20-Poly1305), composed
//! here from the RustCrypto primitives so that one curve25519-dalek serves
//! both signing and encryption.
//!
//! A message is sealed once and keyed per recipient:
//! - body: `secretbox(K, n_b, text)` with a fresh 32-byte content key K;
//! - for each recipient key R: `crypto_box(sender session secret, R, n_r,
//!   K || SHA-256(n_b || body ciphertext))`.
//!
//! Opening a key box proves the sender's session key sealed it (crypto_box
//! authenticates both ends), and the digest ties the body to it, so another
//! recipient who knows K cannot swap in a different body. The broker stores
//! and relays only ciphertext. `docs/protocol.md` has a worked example.

use crate::broker::{KeyBox, SealedBody, SessionRight};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::consts::U10;
use data_encoding::{BASE64, HEXLOWER};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// What goes wrong opening a message. None of these say why in more detail
/// on purpose: a forged box and a corrupted one look the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Base64, a nonce, or a key of the wrong shape.
    Malformed,
    /// The box was not sealed by that sender for this key, or was changed.
    Forged,
    /// The body does not match the one the key box was sealed with.
    BodyMismatch,
    /// The text is not UTF-8.
    NotText,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "the message is malformed",
            Self::Forged => "the message was not sealed by its sender for this key",
            Self::BodyMismatch => "the message body was changed",
            Self::NotText => "the message is not text",
        })
    }
}

impl std::error::Error for OpenError {}

/// An ed25519 key pair: a member's machine key or a session key. No `Debug`
/// or `Display`: the secret half must not reach a log.
pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; KEY_BYTES];
        getrandom::fill(&mut seed)?;
        let pair = Self::from_seed(&seed);
        seed.fill(0);
        Ok(pair)
    }

    pub fn from_seed(seed: &[u8; KEY_BYTES]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// From the secret key in hex (64 characters).
    pub fn from_secret_hex(text: &str) -> Option<Self> {
        decode_key(text).map(|seed| Self::from_seed(&seed))
    }

    pub fn secret_hex(&self) -> String {
        HEXLOWER.encode(self.signing.as_bytes())
    }

    pub fn public_hex(&self) -> String {
        HEXLOWER.encode(self.signing.verifying_key().as_bytes())
    }

    /// An ed25519 signature over `message`, hex.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        HEXLOWER.encode(&self.signing.sign(message).to_bytes())
    }

    fn x25519_secret(&self) -> [u8; KEY_BYTES] {
        self.signing.to_scalar_bytes()
    }
}

/// Whether `signature_hex` is `public_hex`'s signature over `message`.
pub fn verify(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let Some(key) = decode_key(public_hex).and_then(|k| VerifyingKey::from_bytes(&k).ok()) else {
        return false;
    };
    let Some(signature) = HEXLOWER
        .decode(signature_hex.as_bytes())
        .ok()
        .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
    else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(&signature))
        .is_ok()
}

/// The bytes a member key signs to vouch for a session key in one mesh.
pub fn attestation_bytes(mesh_id: &str, session_key: &str, expires_at: i64) -> Vec<u8> {
    format!("claudemesh-attestation-v1\n{mesh_id}\n{session_key}\n{expires_at}").into_bytes()
}

/// The bytes a member key signs to vouch for a session key that may use
/// only `rights` (least privilege); without rights, the v1 bytes above
/// (the session has all of its member's rights).
pub fn attestation_bytes_for(
    mesh_id: &str,
    session_key: &str,
    expires_at: i64,
    rights: Option<&[SessionRight]>,
) -> Vec<u8> {
    match rights {
        None => attestation_bytes(mesh_id, session_key, expires_at),
        Some(rights) => format!(
            "claudemesh-attestation-v2\n{mesh_id}\n{session_key}\n{expires_at}\n{}",
            SessionRight::join(rights)
        )
        .into_bytes(),
    }
}

/// The bytes a session key signs to answer one connection's challenge.
pub fn hello_bytes(challenge: &str, mesh_id: &str, session_key: &str) -> Vec<u8> {
    format!("claudemesh-hello-v1\n{challenge}\n{mesh_id}\n{session_key}").into_bytes()
}

/// The key two parties share: libsodium's `crypto_box_beforenm`. Worth
/// keeping per peer: deriving it is the costly part of sealing and opening.
pub struct SharedKey(XSalsa20Poly1305);

impl SharedKey {
    /// `None` for a malformed or low-order public key.
    pub fn new(own: &KeyPair, their_public: &str) -> Option<Self> {
        box_cipher(own, their_public).map(Self)
    }
}

/// Seals `text` from `sender` (a session key) to each key in `recipients`.
pub fn seal(
    sender: &KeyPair,
    recipients: &[String],
    text: &str,
) -> Result<(SealedBody, Vec<KeyBox>), SealError> {
    let shared = recipients
        .iter()
        .map(|r| SharedKey::new(sender, r).ok_or(SealError::BadRecipient))
        .collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<(&str, &SharedKey)> = recipients
        .iter()
        .map(String::as_str)
        .zip(shared.iter())
        .collect();
    seal_with(&pairs, text)
}

/// Seals `text` to each `(recipient key, key shared with it)`.
pub fn seal_with(
    recipients: &[(&str, &SharedKey)],
    text: &str,
) -> Result<(SealedBody, Vec<KeyBox>), SealError> {
    let mut content_key = [0u8; KEY_BYTES];
    getrandom::fill(&mut content_key).map_err(|_| SealError::Random)?;
    let body_nonce = random_nonce()?;
    let body_ciphertext = XSalsa20Poly1305::new(&content_key.into())
        .encrypt(&body_nonce.into(), text.as_bytes())
        .map_err(|_| SealError::Random)?;
    let digest = body_digest(&body_nonce, &body_ciphertext);
    let mut key_plain = [0u8; 2 * KEY_BYTES];
    key_plain[..KEY_BYTES].copy_from_slice(&content_key);
    key_plain[KEY_BYTES..].copy_from_slice(&digest);
    content_key.fill(0);

    let mut boxes = Vec::with_capacity(recipients.len());
    for (recipient, shared) in recipients {
        let nonce = random_nonce()?;
        let sealed = shared
            .0
            .encrypt(&nonce.into(), key_plain.as_slice())
            .map_err(|_| SealError::Random)?;
        boxes.push(KeyBox {
            to: (*recipient).to_owned(),
            nonce: BASE64.encode(&nonce),
            sealed: BASE64.encode(&sealed),
        });
    }
    key_plain.fill(0);
    Ok((
        SealedBody {
            nonce: BASE64.encode(&body_nonce),
            ciphertext: BASE64.encode(&body_ciphertext),
        },
        boxes,
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// A recipient is not an ed25519 public key.
    BadRecipient,
    /// The operating system's random source failed.
    Random,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BadRecipient => "a recipient key is not an ed25519 public key",
            Self::Random => "the system's random source failed",
        })
    }
}

impl std::error::Error for SealError {}

/// Opens a message sealed by `sender_key` with `recipient`'s key box.
pub fn open(
    recipient: &KeyPair,
    sender_key: &str,
    body: &SealedBody,
    key: &KeyBox,
) -> Result<String, OpenError> {
    let shared = SharedKey::new(recipient, sender_key).ok_or(OpenError::Malformed)?;
    open_with(&shared, body, key)
}

/// Opens a message with the key shared between its sender and recipient.
pub fn open_with(shared: &SharedKey, body: &SealedBody, key: &KeyBox) -> Result<String, OpenError> {
    let cipher = &shared.0;
    let key_nonce = decode_nonce(&key.nonce)?;
    let sealed = BASE64
        .decode(key.sealed.as_bytes())
        .map_err(|_| OpenError::Malformed)?;
    let mut key_plain = cipher
        .decrypt(&key_nonce.into(), sealed.as_slice())
        .map_err(|_| OpenError::Forged)?;
    if key_plain.len() != 2 * KEY_BYTES {
        key_plain.fill(0);
        return Err(OpenError::Malformed);
    }
    let body_nonce = decode_nonce(&body.nonce)?;
    let body_ciphertext = BASE64
        .decode(body.ciphertext.as_bytes())
        .map_err(|_| OpenError::Malformed)?;
    if body_digest(&body_nonce, &body_ciphertext)[..] != key_plain[KEY_BYTES..] {
        key_plain.fill(0);
        return Err(OpenError::BodyMismatch);
    }
    let mut content_key = [0u8; KEY_BYTES];
    content_key.copy_from_slice(&key_plain[..KEY_BYTES]);
    let text = XSalsa20Poly1305::new(&content_key.into())
        .decrypt(&body_nonce.into(), body_ciphertext.as_slice())
        .map_err(|_| OpenError::BodyMismatch);
    key_plain.fill(0);
    content_key.fill(0);
    String::from_utf8(text?).map_err(|_| OpenError::NotText)
}

/// libsodium's `crypto_box_beforenm`: HSalsa20 of the X25519 shared secret.
/// `None` for a malformed or low-order public key.
fn box_cipher(own: &KeyPair, their_public: &str) -> Option<XSalsa20Poly1305> {
    let theirs = VerifyingKey::from_bytes(&decode_key(their_public)?).ok()?;
    let shared = theirs.to_montgomery().mul_clamped(own.x25519_secret());
    if shared.0 == [0u8; KEY_BYTES] {
        return None;
    }
    let key = salsa20::hsalsa::<U10>(&shared.0.into(), &[0u8; 16].into());
    Some(XSalsa20Poly1305::new(&key))
}

fn body_digest(nonce: &[u8], ciphertext: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(nonce);
    hasher.update(ciphertext);
    hasher.finalize().into()
}

fn random_nonce() -> Result<[u8; NONCE_BYTES], SealError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
    Ok(nonce)
}

fn decode_nonce(text: &str) -> Result<[u8; NONCE_BYTES], OpenError> {
    BASE64
        .decode(text.as_bytes())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(OpenError::Malformed)
}

fn decode_key(text: &str) -> Option<[u8; KEY_BYTES]> {
    HEXLOWER.decode(text.as_bytes()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attestation_without_rights_signs_the_v1_bytes_and_rights_change_them() {
        assert_eq!(
            attestation_bytes_for("msh_1", "k", 5, None),
            attestation_bytes("msh_1", "k", 5)
        );
        let dm = attestation_bytes_for("msh_1", "k", 5, Some(&[SessionRight::SendDm]));
        let both = attestation_bytes_for(
            "msh_1",
            "k",
            5,
            Some(&[SessionRight::Broadcast, SessionRight::SendDm]),
        );
        assert_ne!(dm, attestation_bytes("msh_1", "k", 5));
        assert_ne!(dm, both);
        assert_eq!(
            String::from_utf8(both).unwrap(),
            "claudemesh-attestation-v2\nmsh_1\nk\n5\nsend_dm,broadcast"
        );
    }

    fn pair(byte: u8) -> KeyPair {
        KeyPair::from_seed(&[byte; 32])
    }

    #[test]
    fn every_recipient_opens_the_same_text_and_no_one_else_can() {
        let (alice, bob, carol, eve) = (pair(1), pair(2), pair(3), pair(4));
        let recipients = vec![bob.public_hex(), carol.public_hex()];
        let (body, boxes) = seal(&alice, &recipients, "hola, mesh ✓").unwrap();
        assert_eq!(
            open(&bob, &alice.public_hex(), &body, &boxes[0]).unwrap(),
            "hola, mesh ✓"
        );
        assert_eq!(
            open(&carol, &alice.public_hex(), &body, &boxes[1]).unwrap(),
            "hola, mesh ✓"
        );
        // Eve holds neither box's key; Bob cannot open Carol's box.
        assert_eq!(
            open(&eve, &alice.public_hex(), &body, &boxes[0]),
            Err(OpenError::Forged)
        );
        assert_eq!(
            open(&bob, &alice.public_hex(), &body, &boxes[1]),
            Err(OpenError::Forged)
        );
        assert!(!body.ciphertext.contains("hola"));
    }

    #[test]
    fn a_box_claimed_by_another_sender_is_refused() {
        let (alice, bob, mallory) = (pair(1), pair(2), pair(5));
        let (body, boxes) = seal(&alice, &[bob.public_hex()], "from alice").unwrap();
        assert_eq!(
            open(&bob, &mallory.public_hex(), &body, &boxes[0]),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn a_recipient_who_knows_the_content_key_cannot_swap_the_body() {
        let (alice, bob, carol) = (pair(1), pair(2), pair(3));
        let recipients = vec![bob.public_hex(), carol.public_hex()];
        let (_, boxes) = seal(&alice, &recipients, "original").unwrap();
        let (other_body, _) = seal(&alice, &recipients, "forged!!").unwrap();
        assert_eq!(
            open(&carol, &alice.public_hex(), &other_body, &boxes[1]),
            Err(OpenError::BodyMismatch)
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let (alice, bob) = (pair(1), pair(2));
        let (body, boxes) = seal(&alice, &[bob.public_hex()], "x").unwrap();
        let mut bad = boxes[0].clone();
        bad.nonce = "AAAA".into();
        assert_eq!(
            open(&bob, &alice.public_hex(), &body, &bad),
            Err(OpenError::Malformed)
        );
        bad = boxes[0].clone();
        bad.sealed = "!!".into();
        assert_eq!(
            open(&bob, &alice.public_hex(), &body, &bad),
            Err(OpenError::Malformed)
        );
        assert_eq!(
            open(&bob, "zz", &body, &boxes[0]),
            Err(OpenError::Malformed)
        );
        assert_eq!(
            seal(&alice, &["nope".into()], "x").unwrap_err(),
            SealError::BadRecipient
        );
    }

    #[test]
    fn signatures_bind_their_message() {
        let member = pair(7);
        let message = attestation_bytes("msh_1", &pair(8).public_hex(), 1_000);
        let signature = member.sign_hex(&message);
        assert!(verify(&member.public_hex(), &message, &signature));
        let other = attestation_bytes("msh_2", &pair(8).public_hex(), 1_000);
        assert!(!verify(&member.public_hex(), &other, &signature));
        assert!(!verify(&pair(9).public_hex(), &message, &signature));
        assert!(!verify(&member.public_hex(), &message, "00"));
        assert!(!verify("zz", &message, &signature));
    }

    /// libsodium interop: the X25519 conversion and `crypto_box_beforenm`
    /// agree with NaCl's published vector (Bernstein, "Cryptography in
    /// NaCl", §5: Alice's and Bob's keys give this shared key).
    #[test]
    fn the_box_key_is_libsodiums() {
        // The NaCl paper's X25519 keys are raw scalars, not ed25519 seeds, so
        // check the two halves separately: HSalsa20 of the paper's shared
        // secret gives the paper's `k`...
        let shared: [u8; 32] = HEXLOWER
            .decode(b"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
            .unwrap()
            .try_into()
            .unwrap();
        let key = salsa20::hsalsa::<U10>(&shared.into(), &[0u8; 16].into());
        assert_eq!(
            HEXLOWER.encode(&key),
            "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389"
        );
        // ...and both ends of a box derive the same key from ed25519 pairs.
        let (a, b) = (pair(11), pair(12));
        let ab = a
            .signing
            .verifying_key()
            .to_montgomery()
            .mul_clamped(b.x25519_secret());
        let ba = b
            .signing
            .verifying_key()
            .to_montgomery()
            .mul_clamped(a.x25519_secret());
        assert_eq!(ab, ba);
    }

    #[test]
    fn key_pairs_round_trip_through_hex() {
        let a = KeyPair::generate().unwrap();
        let again = KeyPair::from_secret_hex(&a.secret_hex()).unwrap();
        assert_eq!(again.public_hex(), a.public_hex());
        assert!(KeyPair::from_secret_hex("abc").is_none());
    }
}
