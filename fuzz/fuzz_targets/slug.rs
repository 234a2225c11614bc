#![no_main]
//! Any slug or mesh name: a valid slug or a reason, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(slug) = claudemesh_api::Slug::parse(text) {
        assert!(claudemesh_api::Slug::parse(slug.as_str()).is_ok());
    }
    if let Some(slug) = claudemesh_api::Slug::from_name(text) {
        assert!(claudemesh_api::Slug::parse(slug.as_str()).is_ok());
        assert!(claudemesh_api::Slug::parse(slug.with_suffix(12).as_str()).is_ok());
    }
});
