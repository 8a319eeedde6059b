//! `check --trust`: the server's certificate pinned in the user's config file, everything else
//! in it (comments, order, spacing) kept.

use std::path::Path;

use super::{Config, parse_fingerprint};
use crate::error::{Error, Result};

/// `text` with `server.fingerprint_sha256` set to `fingerprint`: the line replaced where there
/// is one, else added first in the `server:` block. The block must be in block style (as
/// every example is).
pub fn with_fingerprint(text: &str, fingerprint: &str) -> std::result::Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let is_server = |l: &str| {
        l.strip_prefix("server:")
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
    };
    let server = lines
        .iter()
        .position(|l| is_server(l))
        .ok_or("it has no `server:` block in block style to add the line to")?;
    let mut key_indent = None;
    let mut existing = None;
    for (i, line) in lines.iter().enumerate().skip(server + 1) {
        let body = line.trim_start();
        if body.trim().is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if indent == 0 {
            break; // the next top-level key
        }
        let keys = *key_indent.get_or_insert(indent);
        if indent == keys && body.starts_with("fingerprint_sha256:") {
            existing = Some(i);
        }
    }
    let pad = " ".repeat(key_indent.unwrap_or(2));
    let line = format!("{pad}fingerprint_sha256: \"{fingerprint}\"\n");
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    match existing {
        Some(i) => out[i] = line,
        None => out.insert(server + 1, line),
    }
    Ok(out.concat())
}

/// Pins `fingerprint` in the config file at `path`. The new text must load, with that pin,
/// before it replaces the file (atomically, with the old file's owner and rights).
pub fn pin_in_file(path: &Path, fingerprint: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(Error::local("read", path))?;
    let new = with_fingerprint(&text, fingerprint).map_err(|why| {
        Error::config(
            path,
            "server",
            format!("cannot add the pin: {why}; add it by hand"),
        )
    })?;
    let want = parse_fingerprint(fingerprint)
        .ok_or_else(|| Error::Internal(format!("fingerprint {fingerprint} does not parse")))?;
    let loaded = Config::parse(&new, path)?;
    if loaded.server.fingerprint_sha256 != Some(want) {
        return Err(Error::config(
            path,
            "server.fingerprint_sha256",
            "the pin did not take (is the key set twice?); add it by hand",
        ));
    }
    replace_keeping_owner(path, new.as_bytes())
}

/// Replaces the file at `path` with `bytes`, atomically, with its owner and rights: a new file
/// beside it (never one that was already there, nor through a link), written and flushed,
/// then renamed over it.
fn replace_keeping_owner(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let meta = std::fs::metadata(path).map_err(Error::local("stat", path))?;
    let tmp = path.with_extension("yaml.ftps-sync-new");
    // One left by an interrupted run, or anything else there: removed, not written through.
    let _ = std::fs::remove_file(&tmp);
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(
        &mut open,
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()),
    );
    let mut file = open.open(&tmp).map_err(Error::local("create", &tmp))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.set_permissions(meta.permissions()))
        .and_then(|()| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            }
            file.sync_all()
        })
        .map_err(Error::local("write", &tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(Error::local("replace", path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "AB:CD";

    #[test]
    fn the_pin_goes_first_in_the_server_block_and_comments_stay() {
        let text = "# my config\nserver:   # the box in the basement\n    host: ftp.example.com  # LAN\n\n    # who\n    user: alice\nfolders: []\n";
        assert_eq!(
            with_fingerprint(text, FP).unwrap(),
            "# my config\nserver:   # the box in the basement\n    fingerprint_sha256: \"AB:CD\"\n    host: ftp.example.com  # LAN\n\n    # who\n    user: alice\nfolders: []\n"
        );
    }

    #[test]
    fn a_pin_already_there_is_replaced_in_place() {
        let text = "server:\n  host: h\n  fingerprint_sha256: \"00:11\"\n  user: u\nfolders:\n  - name: x\n";
        assert_eq!(
            with_fingerprint(text, FP).unwrap(),
            "server:\n  host: h\n  fingerprint_sha256: \"AB:CD\"\n  user: u\nfolders:\n  - name: x\n"
        );
    }

    #[test]
    fn a_server_block_in_flow_style_is_left_to_the_user() {
        assert!(with_fingerprint("server: {host: h}\n", FP).is_err());
        assert!(with_fingerprint("folders: []\n", FP).is_err());
    }
}
