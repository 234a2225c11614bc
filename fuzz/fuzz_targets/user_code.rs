#![no_main]
//! Any typed user code: a code or a reason; a code parses back from its display.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(code) = claudemesh_api::UserCode::parse(text) {
        let shown = code.to_string();
        assert_eq!(claudemesh_api::UserCode::parse(&shown).expect("shown code parses").compact(), code.compact());
    }
    let _ = claudemesh_api::DeviceCode::parse(text);
});
