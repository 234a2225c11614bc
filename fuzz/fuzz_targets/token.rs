#![no_main]
//! Any pasted text: a token or a reason, never a panic; a token parses back.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(token) = claudemesh_api::Token::parse(text) {
        let again = claudemesh_api::Token::parse(token.expose()).expect("a parsed token parses again");
        assert_eq!(again.expose(), token.expose());
    }
});
