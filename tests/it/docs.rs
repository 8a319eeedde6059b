//! The README and `docs/` point at what exists: every relative link reaches a file (and a
//! heading, for an anchor), and every command the README shows is one the binary has (its
//! `--help` answers, and names each flag shown).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The README and every page under `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The targets of a page's `[text](target)` links.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &str) -> BTreeSet<String> {
    let mut in_code = false;
    page.lines()
        .filter(|l| {
            if l.starts_with("```") {
                in_code = !in_code;
            }
            !in_code
        })
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect()
}

/// What is wrong with the relative links of `page` (text `text`).
fn broken_links(page: &Path, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for target in links(text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, fragment) = match target.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (target.as_str(), None),
        };
        let path = if file.is_empty() {
            page.to_path_buf()
        } else {
            page.parent().expect("a page's folder").join(file)
        };
        if !path.exists() {
            out.push(format!("{}: {target}: no such file", page.display()));
            continue;
        }
        if let Some(fragment) = fragment {
            let there = std::fs::read_to_string(&path).unwrap_or_default();
            if !anchors(&there).contains(fragment) {
                out.push(format!("{}: {target}: no such heading", page.display()));
            }
        }
    }
    out
}

#[test]
fn every_link_of_the_readme_and_the_docs_reaches_what_it_names() {
    let mut broken = Vec::new();
    let mut seen = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read page");
        seen += links(&text).len();
        broken.extend(broken_links(&page, &text));
    }
    assert!(seen > 20, "only {seen} links found: the check looks at nothing");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The check can fail: a link to a missing page and one to a missing heading are found.
#[test]
fn a_broken_link_is_found() {
    let page = root().join("README.md");
    let text = "[a](docs/no-such-page.md) [b](docs/design.md#no-such-heading) [c](docs/design.md#invariants)";
    let broken = broken_links(&page, text);
    assert_eq!(broken.len(), 2, "{broken:?}");
}

/// Each `ftps-sync ...` (or `cargo run --release -- ...`) the README shows: its subcommand
/// words and its flags.
fn commands(readme: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for line in readme.lines() {
        let line = line.split(" #").next().unwrap_or(line);
        for start in ["ftps-sync ", "cargo run --release -- "] {
            let mut rest = line;
            while let Some(at) = rest.find(start) {
                let before = rest[..at].chars().last();
                rest = &rest[at + start.len()..];
                if before.is_some_and(|c| !(c == ' ' || c == '`')) {
                    continue;
                }
                let shown = rest.split('`').next().unwrap_or(rest);
                let words: Vec<&str> = shown.split_whitespace().collect();
                let sub: Vec<String> = words
                    .iter()
                    .take_while(|w| {
                        w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
                    })
                    .map(|w| w.to_string())
                    .collect();
                if sub.is_empty() {
                    continue;
                }
                let flags = words
                    .iter()
                    .filter(|w| w.starts_with('-'))
                    .map(|w| w.split('=').next().unwrap_or(w).to_string())
                    .collect();
                out.push((sub, flags));
            }
        }
    }
    out
}

/// The flags a `--help` offers: the names at the start of its option lines (`-n, --dry-run`,
/// `--config <FILE>`), not words of a description.
fn offered(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split("  ").next())
        .flat_map(|names| names.split([',', ' ']))
        .filter(|w| w.starts_with('-'))
        .map(|w| w.trim_end_matches("...").to_owned())
        .collect()
}

/// The commands and flags of `text` that the binary does not have.
fn not_there(text: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for (sub, flags) in commands(text) {
        let out = Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
            .args(&sub)
            .arg("--help")
            .output()
            .expect("run ftps-sync");
        if !out.status.success() {
            missing.push(format!("ftps-sync {}: no such command", sub.join(" ")));
            continue;
        }
        let offered = offered(&String::from_utf8_lossy(&out.stdout));
        for flag in flags {
            if !offered.contains(&flag) {
                missing.push(format!("ftps-sync {} {flag}: no such flag", sub.join(" ")));
            }
        }
    }
    missing
}

#[test]
fn every_command_the_readme_shows_exists() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let shown = commands(&readme);
    assert!(shown.len() >= 5, "only {shown:?}: the check looks at nothing");
    let missing = not_there(&readme);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The check can fail: a command the binary does not have, and a flag its subcommand does not
/// have, are found (and a flag it has is not).
#[test]
fn a_command_that_does_not_exist_is_found() {
    let text = "run `ftps-sync frobnicate` then\n```\nftps-sync sync --dry-run --daily\n```\n";
    assert_eq!(
        commands(text),
        vec![
            (vec!["frobnicate".to_owned()], vec![]),
            (
                vec!["sync".to_owned()],
                vec!["--dry-run".to_owned(), "--daily".to_owned()]
            )
        ]
    );
    assert_eq!(
        not_there(text),
        vec![
            "ftps-sync frobnicate: no such command".to_owned(),
            "ftps-sync sync --daily: no such flag".to_owned()
        ]
    );
}
