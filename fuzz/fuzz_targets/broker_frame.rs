#![no_main]
//! Any WebSocket text: a broker frame or an error; a frame round-trips.
use claudemesh_api::broker::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        let json = serde_json::to_string(&frame).expect("serialises");
        assert_eq!(serde_json::from_str::<ClientFrame>(&json).expect("parses back"), frame);
    }
    let _ = serde_json::from_str::<ServerFrame>(text);
});
