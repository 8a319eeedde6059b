//! The names of conflict copies: `<stem>.conflict-<YYYYMMDD-HHMMSS>-<side>.<ext>`, made when
//! both sides changed, and read back (`status --conflicts`, and never taken for a user's file).

use chrono::{DateTime, Utc};

use super::plan::Side;
use super::snapshot::Snapshot;
use crate::path::RelPath;

/// Whether `name` is one of our conflict copies (`….conflict-YYYYMMDD-HHMMSS-local…`).
pub fn is_conflict_copy(name: &str) -> bool {
    name.match_indices(".conflict-").any(|(i, m)| {
        let rest = &name[i + m.len()..];
        let stamp = rest.get(..15).unwrap_or("");
        stamp.len() == 15
            && stamp
                .char_indices()
                .all(|(j, c)| if j == 8 { c == '-' } else { c.is_ascii_digit() })
            && (rest[15..].starts_with("-local") || rest[15..].starts_with("-remote"))
    })
}

/// What a conflict copy's name tells: the name of the file it is a version of, when the
/// conflict was found (UTC) and whose version it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCopy {
    pub original: String,
    pub found: chrono::NaiveDateTime,
    pub side: Side,
}

/// Reads a name `conflict_copy_name` made; `None` for any other name.
pub fn parse_conflict_copy(name: &str) -> Option<ConflictCopy> {
    name.match_indices(".conflict-").find_map(|(i, m)| {
        let rest = &name[i + m.len()..];
        let found = chrono::NaiveDateTime::parse_from_str(rest.get(..15)?, "%Y%m%d-%H%M%S").ok()?;
        let (side, tail) = if let Some(t) = rest[15..].strip_prefix("-local") {
            (Side::Local, t)
        } else {
            (Side::Remote, rest[15..].strip_prefix("-remote")?)
        };
        // `-2`, `-3`… when the first name was taken.
        let tail = match tail.strip_prefix('-') {
            Some(t) => t.trim_start_matches(|c: char| c.is_ascii_digit()),
            None => tail,
        };
        let original = match tail.strip_prefix('.') {
            Some(ext) if !ext.is_empty() => format!("{}.{ext}", &name[..i]),
            _ if tail.is_empty() => name[..i].to_owned(),
            _ => return None,
        };
        Some(ConflictCopy {
            original,
            found,
            side,
        })
    })
}

/// `<stem>.conflict-<YYYYMMDD-HHMMSS>-<side>.<ext>`, with `-2`, `-3`… added if taken.
pub fn conflict_copy_name(
    path: &RelPath,
    now: DateTime<Utc>,
    side: Side,
    local: &Snapshot,
    remote: &Snapshot,
) -> Option<RelPath> {
    let name = path.name();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    let stamp = now.format("%Y%m%d-%H%M%S");
    for n in 1..100 {
        let suffix = if n == 1 { String::new() } else { format!("-{n}") };
        let copy = match ext {
            Some(ext) => format!("{stem}.conflict-{stamp}-{side}{suffix}.{ext}"),
            None => format!("{stem}.conflict-{stamp}-{side}{suffix}"),
        };
        let candidate = path.with_name(&copy).ok()?;
        if !local.contains_key(&candidate) && !remote.contains_key(&candidate) {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn rp(s: &str) -> RelPath {
        RelPath::new(s).expect("path")
    }

    #[test]
    fn conflict_copies_are_recognised() {
        assert!(is_conflict_copy("a.conflict-20261124-120000-local.txt"));
        assert!(is_conflict_copy("Makefile.conflict-20261124-120000-remote-2"));
        assert!(!is_conflict_copy("a.conflict-2026-local.txt"));
        assert!(!is_conflict_copy("notes.txt"));
    }

    #[test]
    fn a_conflict_copy_name_tells_its_original_when_and_whose() {
        let at = |s| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(
            parse_conflict_copy("a.b.conflict-20261124-120000-local.txt"),
            Some(ConflictCopy {
                original: "a.b.txt".into(),
                found: at("2026-11-24 12:00:00"),
                side: Side::Local
            })
        );
        let copy = parse_conflict_copy("Makefile.conflict-20261124-120001-remote-2").unwrap();
        assert_eq!((copy.original.as_str(), copy.side), ("Makefile", Side::Remote));
        // Every name the planner makes reads back as its original.
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 9, 8, 7).single().unwrap();
        for name in ["notes.txt", "Makefile", "archive.tar.gz", ".hidden"] {
            let path = rp(name);
            let copy =
                conflict_copy_name(&path, now, Side::Remote, &Snapshot::new(), &Snapshot::new()).unwrap();
            let parsed = parse_conflict_copy(copy.name()).unwrap();
            assert_eq!(parsed.original, name, "{copy}");
            assert_eq!(parsed.found, now.naive_utc());
        }
        assert_eq!(parse_conflict_copy("a.conflict-20261324-120000-local.txt"), None);
        assert_eq!(parse_conflict_copy("notes.txt"), None);
    }
}
