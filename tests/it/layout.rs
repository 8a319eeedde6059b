//! The code keeps the map in `src/lib.rs` ("The map"): every `crate::` and `super::` path in
//! the code (not in comments; `use` groups over several lines and paths inline too) is an arrow
//! from the module of its file to the module it names, and each arrow must be one the map allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The map's modules: the top-level ones, `remote::ftps` apart from the seam in `remote`, and
/// the engine's rooms (`engine::plan`, ...: a lower-case name under `engine`).
fn module_of(path: &[String]) -> String {
    match path {
        [] => "lib".to_owned(),
        [first, second, ..] if first == "remote" && second == "ftps" => "remote::ftps".to_owned(),
        [first, second, ..] if first == "engine" && second.starts_with(|c: char| c.is_lowercase()) => {
            format!("engine::{second}")
        }
        [first, ..] => first.clone(),
    }
}

/// Whom an arrow from `from` reaches: outside the engine, a room of the engine is the engine.
fn reached(from: &str, to: String) -> String {
    match to.split_once("::") {
        Some(("engine", _)) if !from.starts_with("engine") => "engine".to_owned(),
        _ => to,
    }
}

/// What `from` may use: its line of the map; an engine room also what the engine may use
/// outside itself.
fn allows(map: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let line = |m: &str| map.get(m).is_some_and(|a| a.contains(to));
    line(from) || (from.starts_with("engine::") && !to.starts_with("engine") && line("engine"))
}

/// A file's module path: `src/engine/plan/list.rs` is `engine::plan::list`, `src/remote/mod.rs` is
/// `remote`, `src/lib.rs` is the crate root.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        parts.clear();
    }
    parts
}

/// The code of a file without its comments (`//` to the end of the line, doc comments too; not
/// a `//` inside a string, as in `"ftp://"`).
fn code(text: &str) -> String {
    text.lines().map(uncommented).collect::<Vec<_>>().join("\n")
}

fn uncommented(line: &str) -> &str {
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '/' if !in_string && line[i + 1..].starts_with('/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Where a file's `mod tests { ... }` is: inside it, `super` is the file's module.
fn tests_module(code: &str) -> std::ops::Range<usize> {
    let Some(start) = code.find("mod tests {") else {
        return 0..0;
    };
    let mut depth = 0;
    for (i, c) in code[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return start..start + i;
                }
            }
            _ => {}
        }
    }
    start..code.len()
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first names of a `{ ... }` group at the start of `s`: `{a::X, b, c::{d, e}}` gives a, b, c.
fn group(s: &str) -> Vec<String> {
    let (mut depth, mut names, mut start) = (0, Vec::new(), true);
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                start = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => start = true,
            c if start && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                names.push(ident(&s[i..]).to_owned());
                start = false;
            }
            _ => {}
        }
    }
    names
}

/// The module paths a file names with `crate::` and `super::`.
fn named(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (i, _) in code.match_indices("crate::") {
        let before = if i > 0 { bytes[i - 1] as char } else { ' ' };
        if before.is_alphanumeric() || before == '_' {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        let heads = if rest.starts_with('{') {
            group(rest)
        } else {
            vec![ident(rest).to_owned()]
        };
        for head in heads {
            let after = rest.strip_prefix(head.as_str()).unwrap_or("");
            let mut path = vec![head.clone()];
            if let Some(next) = after.strip_prefix("::") {
                path.push(ident(next).to_owned());
            }
            out.push(path);
        }
    }
    let mut i = 0;
    while let Some(at) = code[i..].find("super::") {
        let at = i + at;
        let before = if at > 0 { bytes[at - 1] as char } else { ' ' };
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        i = code.len() - rest.len();
        if before.is_alphanumeric() || before == '_' || (before == ':' && at >= 2) {
            continue;
        }
        let ups = if tests_module(code).contains(&at) {
            ups - 1
        } else {
            ups
        };
        let mut path: Vec<String> = me[..me.len().saturating_sub(ups)].to_vec();
        let head = ident(rest);
        if head.chars().next().is_some_and(|c| c.is_lowercase()) {
            path.push(head.to_owned());
            if let Some(next) = rest[head.len()..].strip_prefix("::") {
                path.push(ident(next).to_owned());
            }
        }
        out.push(path);
    }
    out
}

/// The map in `src/lib.rs`: each module and the modules it may use.
fn the_map(lib: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut map = BTreeMap::new();
    let mut inside = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc == "```text" {
            inside = true;
            continue;
        }
        if inside && doc == "```" {
            break;
        }
        if inside && let Some((from, to)) = doc.split_once("->") {
            let to: BTreeSet<String> = to
                .split_whitespace()
                .filter(|t| *t != "nothing")
                .map(str::to_owned)
                .collect();
            for from in from.split(',').map(str::trim) {
                map.insert(from.to_owned(), to.clone());
            }
        }
    }
    map
}

/// The names the crate root re-exports (`pub use error::{Error, Result};`), and their module.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("pub use ") else {
            continue;
        };
        let module = ident(rest);
        let names = rest[module.len()..].trim_start_matches("::");
        let names = if names.starts_with('{') {
            group(names)
        } else {
            vec![ident(names).to_owned()]
        };
        for name in names {
            out.insert(name, module.to_owned());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The arrows of the code that the map does not allow, and the modules it does not place.
fn breaches(src: &Path, map: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let reexports = reexports(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let me = module_path(src, &file);
        if me == ["main"] {
            continue;
        }
        let from = module_of(&me);
        if !map.contains_key(&from) {
            out.push(format!("{}: module {from} is not on the map", file.display()));
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        for path in named(&code(&text), &me) {
            let path = match path.first().and_then(|head| reexports.get(head)) {
                Some(module) => vec![module.clone()],
                None => path,
            };
            let to = reached(&from, module_of(&path));
            if path.is_empty() || to == from || allows(map, &from, &to) {
                continue;
            }
            out.push(format!(
                "{}: {from} -> {to} ({})",
                file.display(),
                path.join("::")
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_import_is_an_arrow_the_map_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("lib.rs");
    let map = the_map(&lib);
    assert!(map.len() > 10, "no map found in src/lib.rs: {map:?}");
    let found = breaches(&root.join("src"), &map);
    assert!(
        found.is_empty(),
        "arrows the map in src/lib.rs does not allow:\n{}",
        found.join("\n")
    );
}

/// The check can fail: back-arrows added on purpose (the pure core naming the engine, a
/// transfer naming the phase that runs it) are found, in a copy of the tree.
#[test]
fn a_back_arrow_is_found() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("lib.rs");
    let map = the_map(&lib);
    let copy = tempfile::tempdir().expect("tmp");
    let src = copy.path().join("src");
    std::fs::create_dir_all(src.join("reconcile")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod reconcile;\n").expect("lib");
    std::fs::write(
        src.join("reconcile/mod.rs"),
        "// crate::app in a comment is no arrow\nuse crate::{\n    path::RelPath,\n    engine::Report,\n};\n",
    )
    .expect("write");
    // And inside the engine: a transfer reaching back into the phase that runs it.
    std::fs::create_dir_all(src.join("engine/transfer")).expect("mkdir");
    std::fs::write(
        src.join("engine/transfer/mod.rs"),
        "use super::pass::Shared;\nfn f() { super::execute::queue::run(); }\n",
    )
    .expect("write");
    // And after a test module, behind a `//` in a string.
    std::fs::create_dir_all(src.join("engine/plan")).expect("mkdir");
    std::fs::write(
        src.join("engine/plan/mod.rs"),
        "#[cfg(test)]\nmod tests {\n    use super::*;\n}\nfn f() { let _ = \"ftp://x\"; super::execute::run(); }\n",
    )
    .expect("write");
    let found = breaches(&src, &map);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("engine::plan -> engine::execute"), "{found:?}");
    assert!(
        found[1].contains("engine::transfer -> engine::execute"),
        "{found:?}"
    );
    assert!(found[2].contains("reconcile -> engine"), "{found:?}");
}
