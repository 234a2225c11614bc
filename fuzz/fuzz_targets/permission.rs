#![no_main]
//! Any message text: a relayed permission payload or an ordinary message;
//! a payload round-trips, and a verdict's signature check never panics.
use claudemesh_api::permission::{Payload, is_request_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(payload) = Payload::parse(text) {
        assert_eq!(Payload::parse(&payload.to_text()), Some(payload.clone()));
        match payload {
            Payload::PermissionRequest(r) => assert!(is_request_id(&r.request_id)),
            Payload::PermissionVerdict(v) => {
                assert!(is_request_id(&v.request_id));
                let _ = v.signed_by(&v.session_key, "msh_fuzz");
            }
            Payload::PermissionOutcome(o) => assert!(is_request_id(&o.request_id)),
        }
    }
});
