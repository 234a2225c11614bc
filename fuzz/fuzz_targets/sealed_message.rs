#![no_main]
//! Any key box, body and sender key: opening fails cleanly, never panics.
use claudemesh_api::broker::{KeyBox, SealedBody};
use claudemesh_api::e2e::{self, KeyPair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|parts: (&str, &str, &str, &str, &str)| {
    let (sender, nonce, sealed, body_nonce, ciphertext) = parts;
    let me = KeyPair::from_seed(&[7; 32]);
    let body = SealedBody { nonce: body_nonce.to_owned(), ciphertext: ciphertext.to_owned() };
    let key = KeyBox { to: me.public_hex(), nonce: nonce.to_owned(), sealed: sealed.to_owned() };
    let _ = e2e::open(&me, sender, &body, &key);
    let _ = e2e::verify(sender, body_nonce.as_bytes(), sealed);
});
