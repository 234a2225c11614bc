//! Tidy checks of the workspace itself, in the ordinary test run (as
//! rust-analyzer's `xtask/src/tidy.rs` does): what ARCHITECTURE.md promises
//! stays true of the files.

#![allow(clippy::panic, reason = "a tidy test: a failure stops the test")]

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file of the repository below `dir`, as paths relative to the
/// workspace, build output and installed packages left out.
fn files_below(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "target" | "node_modules" | ".git") {
            continue;
        }
        if path.is_dir() {
            if let Ok(relative) = path.strip_prefix(root) {
                out.push(format!("{}/", relative.display()));
            }
            files_below(&path, root, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.display().to_string());
        }
    }
}

/// The paths a document names: in backticks or as link targets, when they
/// look like a path of this repository (a folder, or a source, SQL,
/// Markdown or script file), not a URL, a route or a file of the user's.
fn named_paths(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (open, close) in [("`", "`"), ("](", ")")] {
        let mut rest = text;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len()..];
            let Some(end) = after.find(close) else { break };
            names.push(after[..end].to_owned());
            rest = &after[end + close.len()..];
        }
    }
    names
        .into_iter()
        .filter(|n| {
            !n.contains(char::is_whitespace)
                && !n.starts_with('/')
                && !n.starts_with('~')
                && !n.contains("://")
                && !n.contains('{')
                && !n.contains('*')
                && (n.ends_with('/')
                    || [".rs", ".md", ".sql", ".mjs", ".toml"]
                        .iter()
                        .any(|ext| n.ends_with(ext)))
        })
        .collect()
}

#[test]
fn every_path_architecture_md_names_exists() {
    let root = workspace();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md"))
        .unwrap_or_else(|e| panic!("ARCHITECTURE.md: {e}"));
    let mut files = Vec::new();
    files_below(&root, &root, &mut files);
    let names = named_paths(&text);
    assert!(names.len() > 40, "too few paths read: {names:?}");
    // A name stands for a path of the repository ending with it, on a
    // component boundary (`caller.rs` in the auth folder's paragraph is
    // `crates/claudemesh-server/src/auth/caller.rs`).
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            let name = name.trim_start_matches("./");
            !files
                .iter()
                .any(|f| f == name || f.ends_with(&format!("/{name}")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn the_path_reader_sees_code_spans_and_links_only() {
    let names = named_paths(
        "see `src/auth/caller.rs` and [the protocol](docs/protocol.md); not `/api/mesh/ws`, \
         `~/.claudemesh/`, `https://x/y.md`, `auth.json` or `locales/{en,es}/`; `src/base/`",
    );
    assert_eq!(
        names,
        ["src/auth/caller.rs", "src/base/", "docs/protocol.md"]
    );
}

/// `claudemesh-api` is the contract, tested and fuzzed in isolation: no
/// socket, file, process or async runtime, in its code or its dependencies.
#[test]
fn claudemesh_api_does_no_io() {
    let crate_dir = workspace().join("crates/claudemesh-api");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("Cargo.toml: {e}"));
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_default();
    for io_crate in [
        "tokio",
        "reqwest",
        "ureq",
        "sqlx",
        "rusqlite",
        "hyper",
        "axum",
        "tungstenite",
        "lettre",
    ] {
        assert!(
            !dependencies
                .lines()
                .any(|l| l.trim_start().starts_with(io_crate)),
            "claudemesh-api depends on {io_crate}"
        );
    }
    let mut files = Vec::new();
    files_below(&crate_dir.join("src"), &crate_dir, &mut files);
    for file in files.iter().filter(|f| f.ends_with(".rs")) {
        let text = std::fs::read_to_string(crate_dir.join(file)).unwrap_or_default();
        for io in [
            "std::fs",
            "std::net",
            "std::process",
            "std::env::var",
            "File::open",
        ] {
            assert!(!text.contains(io), "crates/claudemesh-api/{file} uses {io}");
        }
    }
}
