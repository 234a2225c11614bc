#![no_main]
//! Any text as a mesh log cursor, kind or entry: parsed or refused, never a
//! panic; a parsed cursor is the one `cursor` would write, and an entry
//! from the wire goes through the chain verifier without a panic.
use claudemesh_api::mesh_log::{ChainVerifier, LogKind, cursor, parse_cursor};
use claudemesh_api::wire::LogEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(seq) = parse_cursor("msh_fuzz", text) {
        assert_eq!(parse_cursor("msh_fuzz", &cursor("msh_fuzz", seq)), Ok(seq));
    }
    if let Some(kind) = LogKind::parse(text) {
        assert_eq!(kind.as_str(), text);
    }
    if let Ok(entry) = serde_json::from_str::<LogEntry>(text) {
        let mut verifier = ChainVerifier::new("msh_fuzz", entry.seq);
        let _ = verifier.push(&entry);
        let _ = verifier.finish(entry.seq, &entry.hash);
    }
});
