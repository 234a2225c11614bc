//! Tidy check: no module of any crate imports, directly or through others,
//! a module that imports it back (ARCHITECTURE.md, "Invariants").
//!
//! It reads every `src/` file of every crate of the workspace as text, the
//! way a reader would: `mod x;` builds the module tree, and each `use`
//! path and each `crate::…`, `super::…`, `self::…` or child-module path in
//! the code is an arrow to the deepest module it names. Code under
//! `#[cfg(test)]` is left out (a unit test may look anywhere). One file is
//! one module; arrows inside a file are ignored. A cycle fails the test and
//! is named with the arrows that close it and the names they carry.
//!
//! No dependency: a small tokenizer (comments, strings, chars and lifetimes
//! told apart) is all it takes to read paths.

#![allow(clippy::panic, reason = "a tidy test: a failure stops the test")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from its crate root: `[]` is the root, `["auth", "tokens"]`
/// is `crate::auth::tokens`.
type ModPath = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// The tokens of Rust source that matter for paths, without comments,
/// string and character literals, or lifetimes.
fn tokenize(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_quoted(&chars, i + 1);
        } else if (c == 'r' || c == 'b') && is_raw_or_byte_string(&chars, i) {
            i = skip_prefixed_string(&chars, i);
        } else if c == '\'' {
            i = skip_char_or_lifetime(&chars, i);
        } else if c == ':' && next == Some(':') {
            toks.push(Tok::PathSep);
            i += 2;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    toks
}

/// Past the closing quote of a `"…"` string whose body starts at `i`.
fn skip_quoted(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// `r"`, `r#"`, `b"`, `br"`, `br#"` (and `b'`, a byte char) at `i`.
fn is_raw_or_byte_string(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
        if chars.get(j) == Some(&'"') || chars.get(j) == Some(&'\'') {
            return true;
        }
    }
    if chars.get(j) != Some(&'r') {
        return false;
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

fn skip_prefixed_string(chars: &[char], mut i: usize) -> usize {
    if chars[i] == 'b' {
        i += 1;
        match chars.get(i) {
            Some('"') => return skip_quoted(chars, i + 1),
            Some('\'') => return skip_char_or_lifetime(chars, i),
            _ => {}
        }
    }
    // A raw string: r, then n hashes, a quote, the body, a quote and n hashes.
    i += 1;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// At a `'`: past a character literal (`'a'`, `'\n'`, `'\u{1F600}'`) or a
/// lifetime (`'a`, `'static`).
fn skip_char_or_lifetime(chars: &[char], i: usize) -> usize {
    match chars.get(i + 1) {
        Some('\\') => {
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            j + 1
        }
        Some(_) if chars.get(i + 2) == Some(&'\'') => i + 3,
        _ => {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            j
        }
    }
}

/// What one file says about modules: the child modules it declares (`mod x;`)
/// and every path it uses, with the inline-module depth it was written at.
#[derive(Debug, Default)]
struct FileRefs {
    children: Vec<String>,
    /// (inline `mod x { … }` depth, path segments)
    paths: Vec<(usize, Vec<String>)>,
}

fn is_ident(t: Option<&Tok>, s: &str) -> bool {
    matches!(t, Some(Tok::Ident(x)) if x == s)
}

/// From `start` (at an attribute's `#`), past its closing `]`; whether it is a
/// `cfg` that holds only under test.
fn read_attribute(toks: &[Tok], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    if toks.get(i) == Some(&Tok::Punct('!')) {
        i += 1;
    }
    let body_start = i;
    let mut depth = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let body = &toks[body_start..i.min(toks.len())];
    let is_cfg = is_ident(body.get(1), "cfg");
    let mentions_test = body.iter().any(|t| is_ident(Some(t), "test"));
    let negated = body.iter().any(|t| is_ident(Some(t), "not"));
    (i + 1, is_cfg && mentions_test && !negated)
}

/// From `i`, past the end of one item: its `;` or the `}` closing its first
/// brace, whichever comes first at the item's own level.
fn skip_item(toks: &[Tok], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') | Tok::Punct('(') | Tok::Punct('[') => depth += 1,
            Tok::Punct('}') | Tok::Punct(')') | Tok::Punct(']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 && toks[i] == Tok::Punct('}') {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Expands a `use` tree (`a::{b, c::{d as e, *}}`) into whole paths; returns
/// the paths and the index past the closing `;`.
fn read_use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix.to_vec();
    if toks.get(i) == Some(&Tok::PathSep) {
        i += 1; // `use ::std::…`: an external crate
    }
    loop {
        match toks.get(i) {
            Some(Tok::Ident(name)) if name == "as" => {
                i += 2; // the alias
            }
            Some(Tok::Ident(name)) => {
                path.push(name.clone());
                i += 1;
            }
            Some(Tok::PathSep) => i += 1,
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    i = read_use_tree(toks, i, &path, out);
                    match toks.get(i) {
                        Some(Tok::Punct(',')) => i += 1,
                        Some(Tok::Punct('}')) => return i + 1,
                        _ => return i,
                    }
                    if toks.get(i) == Some(&Tok::Punct('}')) {
                        return i + 1;
                    }
                }
            }
            Some(Tok::Punct('*')) => i += 1,
            _ => {
                // `use crate::broker::{self, Hub}` names `crate::broker`.
                if path.last().map(String::as_str) == Some("self") {
                    path.pop();
                }
                if !path.is_empty() {
                    out.push(path);
                }
                return i;
            }
        }
    }
}

fn read_file_refs(src: &str) -> FileRefs {
    let toks = tokenize(src);
    let mut refs = FileRefs::default();
    // Inline modules open at brace depth d: `inline` holds their depths.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut pending_inline_mod = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('#')
                if matches!(
                    toks.get(i + 1),
                    Some(Tok::Punct('[')) | Some(Tok::Punct('!'))
                ) =>
            {
                let (after, test_only) = read_attribute(&toks, i);
                i = after;
                if test_only {
                    // Further attributes of the same item, then the item.
                    while toks.get(i) == Some(&Tok::Punct('#')) {
                        i = read_attribute(&toks, i).0;
                    }
                    i = skip_item(&toks, i);
                }
                continue;
            }
            Tok::Punct('{') => {
                depth += 1;
                if pending_inline_mod {
                    inline.push(depth);
                    pending_inline_mod = false;
                }
            }
            Tok::Punct('}') => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    match toks.get(i + 2) {
                        Some(Tok::Punct(';')) if inline.is_empty() => {
                            refs.children.push(name.clone())
                        }
                        Some(Tok::Punct('{')) => pending_inline_mod = true,
                        _ => {}
                    }
                    i += 2;
                    continue;
                }
            }
            Tok::Ident(kw) if kw == "use" => {
                let mut paths = Vec::new();
                i = read_use_tree(&toks, i + 1, &[], &mut paths);
                refs.paths
                    .extend(paths.into_iter().map(|p| (inline.len(), p)));
                continue;
            }
            // `pub(in crate::x)` names a visibility, not a use.
            Tok::Ident(kw)
                if kw == "in" && toks.get(i.wrapping_sub(1)) == Some(&Tok::Punct('(')) =>
            {
                i = skip_item_until(&toks, i, ')');
                continue;
            }
            Tok::Ident(first)
                if toks.get(i + 1) == Some(&Tok::PathSep)
                    && toks.get(i.wrapping_sub(1)) != Some(&Tok::PathSep) =>
            {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::PathSep) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(seg)) => {
                            path.push(seg.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                refs.paths.push((inline.len(), path));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

fn skip_item_until(toks: &[Tok], mut i: usize, end: char) -> usize {
    while i < toks.len() && toks[i] != Tok::Punct(end) {
        i += 1;
    }
    i
}

/// One crate root's module tree: each module's file and what it refers to.
struct ModuleTree {
    files: BTreeMap<ModPath, (PathBuf, FileRefs)>,
}

impl ModuleTree {
    fn read(root_file: &Path) -> ModuleTree {
        let mut files = BTreeMap::new();
        let mut todo = vec![(Vec::<String>::new(), root_file.to_path_buf())];
        while let Some((module, file)) = todo.pop() {
            let src = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let refs = read_file_refs(&src);
            // Where this module's children live: beside a root or a mod.rs,
            // in a folder named after the module otherwise.
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let parent = file.parent().unwrap_or(Path::new("."));
            let dir = if module.is_empty() || stem == "mod" {
                parent.to_path_buf()
            } else {
                parent.join(stem)
            };
            for child in &refs.children {
                let flat = dir.join(format!("{child}.rs"));
                let nested = dir.join(child).join("mod.rs");
                let child_file = if flat.exists() { flat } else { nested };
                let mut child_path = module.clone();
                child_path.push(child.clone());
                todo.push((child_path, child_file));
            }
            files.insert(module, (file, refs));
        }
        ModuleTree { files }
    }

    /// The arrows between modules: (from, to) with the names that make each.
    fn arrows(&self) -> BTreeMap<(ModPath, ModPath), BTreeSet<String>> {
        let mut arrows: BTreeMap<(ModPath, ModPath), BTreeSet<String>> = BTreeMap::new();
        for (module, (_, refs)) in &self.files {
            // Names that stand for a module here: its children, and modules
            // brought in by `use` (`use crate::broker;` then `broker::Hub`).
            let mut aliases: BTreeMap<String, ModPath> = refs
                .children
                .iter()
                .map(|c| {
                    let mut p = module.clone();
                    p.push(c.clone());
                    (c.clone(), p)
                })
                .collect();
            for (inline_depth, path) in &refs.paths {
                if let Some((target, _)) =
                    self.resolve(module, *inline_depth, path, &BTreeMap::new())
                    && path.last() == target.last()
                {
                    aliases
                        .entry(path.last().cloned().unwrap_or_default())
                        .or_insert(target);
                }
            }
            for (inline_depth, path) in &refs.paths {
                if let Some((target, name)) = self.resolve(module, *inline_depth, path, &aliases)
                    && &target != module
                {
                    arrows
                        .entry((module.clone(), target))
                        .or_default()
                        .insert(name);
                }
            }
        }
        arrows
    }

    /// The deepest module a path names, and the first name after it.
    fn resolve(
        &self,
        module: &ModPath,
        inline_depth: usize,
        path: &[String],
        aliases: &BTreeMap<String, ModPath>,
    ) -> Option<(ModPath, String)> {
        let (mut base, rest): (ModPath, &[String]) = match path.first()?.as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (module.clone(), &path[1..]),
            "super" => {
                let mut base = module.clone();
                let mut rest = path;
                let mut inline_left = inline_depth;
                while rest.first().map(String::as_str) == Some("super") {
                    // `super` inside an inline module first leaves it.
                    if inline_left > 0 {
                        inline_left -= 1;
                    } else {
                        base.pop()?;
                    }
                    rest = &rest[1..];
                }
                (base, rest)
            }
            first => (aliases.get(first)?.clone(), &path[1..]),
        };
        let mut name = String::from("*");
        for (k, seg) in rest.iter().enumerate() {
            let mut deeper = base.clone();
            deeper.push(seg.clone());
            if self.files.contains_key(&deeper) {
                base = deeper;
            } else {
                name = rest[k].clone();
                break;
            }
        }
        Some((base, name))
    }
}

/// The strongly connected groups of more than one module (Tarjan).
fn cycles(arrows: &BTreeMap<(ModPath, ModPath), BTreeSet<String>>) -> Vec<Vec<ModPath>> {
    let mut nodes: BTreeSet<ModPath> = BTreeSet::new();
    for (a, b) in arrows.keys() {
        nodes.insert(a.clone());
        nodes.insert(b.clone());
    }
    let nodes: Vec<ModPath> = nodes.into_iter().collect();
    let index_of: BTreeMap<&ModPath, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n, i)).collect();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (a, b) in arrows.keys() {
        out[index_of[a]].push(index_of[b]);
    }
    struct State {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        groups: Vec<Vec<usize>>,
    }
    fn visit(v: usize, out: &[Vec<usize>], s: &mut State) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &out[v] {
            match s.index[w] {
                None => {
                    visit(w, out, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                group.push(w);
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                s.groups.push(group);
            }
        }
    }
    let n = nodes.len();
    let mut s = State {
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        groups: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(v, &out, &mut s);
        }
    }
    s.groups
        .into_iter()
        .map(|g| {
            let mut g: Vec<ModPath> = g.into_iter().map(|i| nodes[i].clone()).collect();
            g.sort();
            g
        })
        .collect()
}

fn show(module: &ModPath) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        format!("crate::{}", module.join("::"))
    }
}

/// Every import cycle under one crate root, described for a reader.
fn import_cycles(root_file: &Path) -> Vec<String> {
    let tree = ModuleTree::read(root_file);
    let arrows = tree.arrows();
    cycles(&arrows)
        .into_iter()
        .map(|group| {
            let members: BTreeSet<&ModPath> = group.iter().collect();
            let mut text = format!(
                "{}: {} modules in a cycle: {}\n",
                root_file.display(),
                group.len(),
                group.iter().map(show).collect::<Vec<_>>().join(", ")
            );
            for ((a, b), names) in &arrows {
                if members.contains(a) && members.contains(b) {
                    // "*": the module itself (`use crate::x;`), said only when alone.
                    let named: Vec<&str> = names
                        .iter()
                        .map(String::as_str)
                        .filter(|n| *n != "*")
                        .collect();
                    let names = if named.is_empty() {
                        vec!["(the module)"]
                    } else {
                        named
                    };
                    text.push_str(&format!(
                        "  {} -> {}: {}\n",
                        show(a),
                        show(b),
                        names.join(", ")
                    ));
                }
            }
            text
        })
        .collect()
}

/// Every crate root of the workspace: `src/lib.rs` and `src/main.rs` of each
/// member (a binary beside a library is a crate of its own).
fn workspace_roots() -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut roots = Vec::new();
    for dir in ["crates", "bench"] {
        let Ok(entries) = std::fs::read_dir(workspace.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            for root in ["src/lib.rs", "src/main.rs"] {
                let file = entry.path().join(root);
                if file.exists() {
                    roots.push(file);
                }
            }
        }
    }
    roots.sort();
    roots
}

#[test]
fn no_crate_of_the_workspace_has_an_import_cycle() {
    let roots = workspace_roots();
    assert!(
        roots.len() >= 6,
        "expected every crate root, found {roots:?}"
    );
    let found: Vec<String> = roots.iter().flat_map(|r| import_cycles(r)).collect();
    assert!(
        found.is_empty(),
        "import cycles (a module must not import one that imports it back):\n{}",
        found.join("\n")
    );
}

/// Writes a small crate and returns its `lib.rs`.
fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for (name, text) in files {
        let path = dir.path().join("src").join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

#[test]
fn a_cycle_put_back_is_named_with_the_names_that_close_it() {
    let dir = fixture(&[
        ("lib.rs", "mod api;\nmod auth_store;\nmod telemetry;\n"),
        (
            "api.rs",
            "use crate::telemetry::{Telemetry, api_error};\npub fn normalize_base_url() {}\n",
        ),
        (
            "auth_store.rs",
            "fn f() { let _ = crate::api::normalize_base_url(); }\n",
        ),
        (
            "telemetry.rs",
            "use crate::auth_store;\nfn g() { auth_store::load(); }\n",
        ),
    ]);
    let found = import_cycles(&dir.path().join("src/lib.rs"));
    assert_eq!(found.len(), 1, "{found:?}");
    let text = &found[0];
    assert!(text.contains("3 modules in a cycle"), "{text}");
    assert!(
        text.contains("crate::api -> crate::telemetry: Telemetry, api_error"),
        "{text}"
    );
    assert!(
        text.contains("crate::auth_store -> crate::api: normalize_base_url"),
        "{text}"
    );
    assert!(
        text.contains("crate::telemetry -> crate::auth_store: load"),
        "{text}"
    );
}

#[test]
fn a_parent_and_a_child_that_use_each_other_are_a_cycle() {
    let dir = fixture(&[
        ("lib.rs", "mod broker;\n"),
        (
            "broker/mod.rs",
            "mod hub;\npub struct Limits;\npub use hub::Hub;\n",
        ),
        ("broker/hub.rs", "use super::Limits;\npub struct Hub;\n"),
    ]);
    let found = import_cycles(&dir.path().join("src/lib.rs"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("crate::broker -> crate::broker::hub: Hub"),
        "{}",
        found[0]
    );
    assert!(
        found[0].contains("crate::broker::hub -> crate::broker: Limits"),
        "{}",
        found[0]
    );
}

#[test]
fn tests_comments_strings_and_lifetimes_are_not_imports() {
    let dir = fixture(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A<'x>(&'x str);\n"),
        (
            "b.rs",
            r##"pub struct B;
// crate::a::A in a comment
/* crate::a::A /* nested */ crate::a::A */
const S: &str = "crate::a::A";
const R: &str = r#"crate::a::A "quoted""#;
const C: char = '"';
fn f<'a>(x: &'a str) -> &'a str { x }
#[cfg(test)]
mod tests {
    use crate::a::A;
}
#[cfg(test)]
fn helper() { crate::a::A; }
"##,
        ),
    ]);
    let found = import_cycles(&dir.path().join("src/lib.rs"));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn super_inside_an_inline_module_names_its_own_file() {
    let dir = fixture(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "mod imp {\n    use super::Thing;\n}\npub struct Thing;\nuse crate::b::B;\n",
        ),
        ("b.rs", "pub struct B;\n"),
    ]);
    let found = import_cycles(&dir.path().join("src/lib.rs"));
    assert!(found.is_empty(), "{found:?}");
}
