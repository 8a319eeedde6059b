//! Pure parsers for directory listings: MLSD facts (RFC 3659), Unix `ls -l` and DOS/IIS `LIST`.
//!
//! suppaftp's own parsers fail on ProFTPD symlink facts, `UNIX.mode=`, ACL `+` / SELinux `.`
//! suffixes and 4-digit DOS years, so we own these. Names are returned raw: the caller validates
//! each as a `RelPath` component before it touches the disk.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

use crate::reconcile::{Entry, FileId, Mtime, Precision};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedKind {
    File,
    Dir,
    /// Symlinks and devices: never followed, never synced.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub kind: ListedKind,
    pub size: u64,
    pub mtime: Option<Mtime>,
    /// The MLSD `unique` fact, as an id (RFC 3659 §7.5.2): the same file keeps it when renamed.
    pub unique: Option<FileId>,
}

/// One MLSD / MLST line: `fact=value;fact=value; name`. `None` for `.`/`..` entries
/// (`type=cdir`/`pdir`) and lines that are not facts.
pub fn parse_mlsd(line: &str) -> Option<Listed> {
    let line = line.trim_start_matches(' ').trim_end_matches(['\r', '\n']);
    let (facts, name) = line.split_once(' ')?;
    let mut kind = None;
    let mut size = None;
    let mut mtime = None;
    let mut unique = None;
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                kind = Some(match value.to_ascii_lowercase().as_str() {
                    "file" => ListedKind::File,
                    "dir" => ListedKind::Dir,
                    "cdir" | "pdir" => return None,
                    _ => ListedKind::Other, // OS.unix=slink:..., OS.unix=symlink, ...
                })
            }
            "size" | "sizd" => size = value.parse::<u64>().ok(),
            "modify" => mtime = parse_mlsd_time(value),
            "unique" => unique = FileId::of_fact(value),
            _ => {}
        }
    }
    Some(Listed {
        name: name.to_owned(),
        kind: kind?,
        size: size.unwrap_or(0),
        mtime,
        unique,
    })
}

/// `YYYYMMDDHHMMSS[.sss]`, UTC (RFC 3659 §2.3). Also the format of an MDTM reply.
pub fn parse_mlsd_time(value: &str) -> Option<Mtime> {
    let (whole, frac) = match value.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (value, None),
    };
    let t = NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    let mut nanos = t.and_utc().timestamp().checked_mul(1_000_000_000)?;
    if let Some(f) = frac {
        let digits: String = f.chars().take(9).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) || digits.is_empty() {
            return None;
        }
        let scale = 10i64.pow(9 - digits.len() as u32);
        nanos = nanos.checked_add(digits.parse::<i64>().ok()? * scale)?;
    }
    Some(Mtime::new(nanos, Precision::Seconds))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Splits into tokens with their byte offsets, so the name (the rest of the line, spaces and
/// all) can be cut out exactly.
fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c == ' ' || c == '\t', start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// One line of a Unix `ls -l` style LIST. `now` decides the year of recent entries, which
/// servers print without one (`Nov 24 19:32`).
pub fn parse_unix(line: &str, now: DateTime<Utc>) -> Option<Listed> {
    let line = line.trim_end_matches(['\r', '\n']);
    let toks = tokens(line);
    let perms = toks.first()?.1;
    let type_char = perms.chars().next()?;
    if perms.len() < 10 || !"-dlbcps".contains(type_char) {
        return None;
    }
    // Find "Mon DD HH:MM|YYYY": the size is the token before it, the name everything after.
    let m = (1..toks.len().saturating_sub(3)).find(|&i| {
        MONTHS.contains(&toks[i].1.to_ascii_lowercase().as_str())
            && toks[i + 1].1.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
            && (toks[i + 2].1.contains(':') || toks[i + 2].1.len() == 4)
            && toks[i - 1].1.parse::<u64>().is_ok()
    })?;
    let size: u64 = toks[m - 1].1.parse().ok()?;
    let month = MONTHS.iter().position(|x| *x == toks[m].1.to_ascii_lowercase())? as u32 + 1;
    let day: u32 = toks[m + 1].1.parse().ok()?;
    let year_or_time = toks[m + 2].1;
    let name_start = toks.get(m + 3)?.0;
    // Exactly one separator is conventional, but servers pad; a name starting with spaces is
    // indistinguishable from padding in this format, so take the rest from the next token.
    let mut name = &line[name_start..];
    let mtime = if let Some((h, mi)) = year_or_time.split_once(':') {
        let (h, mi): (u32, u32) = (h.parse().ok()?, mi.parse().ok()?);
        let mut year = now.year();
        let mut date = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, mi, 0)?;
        // A recent entry is at most ~6 months old; a date ahead of now is from last year.
        if date.and_utc() > now + chrono::Duration::days(2) {
            year -= 1;
            date = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, mi, 0)?;
        }
        Mtime::new(date.and_utc().timestamp() * 1_000_000_000, Precision::Minutes)
    } else {
        let year: i32 = year_or_time.parse().ok()?;
        let date = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(0, 0, 0)?;
        Mtime::new(date.and_utc().timestamp() * 1_000_000_000, Precision::Days)
    };
    let kind = match type_char {
        '-' => ListedKind::File,
        'd' => ListedKind::Dir,
        _ => ListedKind::Other,
    };
    if type_char == 'l'
        && let Some((link, _target)) = name.split_once(" -> ")
    {
        name = link;
    }
    if name == "." || name == ".." {
        return None;
    }
    Some(Listed {
        name: name.to_owned(),
        kind,
        size,
        mtime: Some(mtime),
        unique: None,
    })
}

/// One line of a DOS/IIS LIST: `11-24-26  07:32PM  <DIR>  name` or
/// `11-24-2026  19:32  1234 name`.
pub fn parse_dos(line: &str) -> Option<Listed> {
    let line = line.trim_end_matches(['\r', '\n']);
    let toks = tokens(line);
    if toks.len() < 4 {
        return None;
    }
    let date = toks[0].1;
    let mut parts = date.split(['-', '/']);
    let (mo, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    let (mo, d): (u32, u32) = (mo.parse().ok()?, d.parse().ok()?);
    let mut y: i32 = y.parse().ok()?;
    if y < 100 {
        y += if y < 70 { 2000 } else { 1900 };
    }
    let time = toks[1].1.to_ascii_uppercase();
    let (clock, pm) = match (time.strip_suffix("PM"), time.strip_suffix("AM")) {
        (Some(c), _) => (c.to_owned(), Some(true)),
        (_, Some(c)) => (c.to_owned(), Some(false)),
        _ => (time.clone(), None),
    };
    let (h, mi) = clock.split_once(':')?;
    let (mut h, mi): (u32, u32) = (h.parse().ok()?, mi.parse().ok()?);
    match pm {
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    let when = NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_opt(h, mi, 0)?;
    let (kind, size) = if toks[2].1.eq_ignore_ascii_case("<DIR>") {
        (ListedKind::Dir, 0)
    } else {
        (ListedKind::File, toks[2].1.replace(',', "").parse().ok()?)
    };
    let name = &line[toks[3].0..];
    if name == "." || name == ".." {
        return None;
    }
    Some(Listed {
        name: name.to_owned(),
        kind,
        size,
        mtime: Some(Mtime::new(
            when.and_utc().timestamp() * 1_000_000_000,
            Precision::Minutes,
        )),
        unique: None,
    })
}

/// A LIST line in whichever format it is in. `None` for `total N`, `.`/`..` and noise.
pub fn parse_list_line(line: &str, now: DateTime<Utc>) -> Option<Listed> {
    let first = line.trim_start().chars().next()?;
    if first.is_ascii_digit() {
        parse_dos(line)
    } else {
        parse_unix(line, now)
    }
}

/// A listed entry as a snapshot entry. A listing without a time compares by size alone.
pub fn listed_entry(l: &Listed) -> Entry {
    let mtime = l.mtime.unwrap_or(Mtime::new(0, Precision::Days));
    match l.kind {
        ListedKind::Dir => Entry::dir(mtime),
        _ => Entry::file(l.size, mtime),
    }
    .with_id(l.unique)
}

/// Whether a remote file still looks the way the snapshot saw it.
pub fn same_remote(now: &Entry, then: &Entry) -> bool {
    now.kind == then.kind && now.size == then.size && now.mtime.same_as(&then.mtime)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 20, 0, 0)
            .single()
            .expect("valid")
    }

    fn secs(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid")
            .timestamp()
    }

    #[test]
    fn mlsd_proftpd_lines() {
        let l = parse_mlsd("modify=20261124193205;perm=adfrw;size=1234;type=file;unique=803U1234;UNIX.group=1000;UNIX.groupname=ftp;UNIX.mode=0644;UNIX.owner=1000;UNIX.ownername=ftp; my file.txt").unwrap();
        assert_eq!(l.name, "my file.txt");
        assert_eq!(l.kind, ListedKind::File);
        assert_eq!(l.size, 1234);
        assert_eq!(l.unique, FileId::of_fact("803U1234"));
        assert!(l.unique.is_some());
        assert_eq!(l.mtime.unwrap().secs(), secs(2026, 11, 24, 19, 32, 5));
        let link = parse_mlsd(
            "modify=20261124193205;perm=adfrw;size=11;type=OS.unix=slink:/etc/passwd;UNIX.mode=0777; evil",
        )
        .unwrap();
        assert_eq!(link.kind, ListedKind::Other);
        assert!(parse_mlsd("type=cdir;modify=20261124193205;perm=el; .").is_none());
        assert!(parse_mlsd("type=pdir;modify=20261124193205;perm=el; ..").is_none());
        let d = parse_mlsd("Type=dir;Modify=20260101000000.250;Perm=el; sub dir").unwrap();
        assert_eq!(d.kind, ListedKind::Dir);
        assert_eq!(d.mtime.unwrap().nanos % 1_000_000_000, 250_000_000);
        // A name with a leading space keeps it: only the one separator is removed.
        assert_eq!(parse_mlsd("type=file;size=1;  lead").unwrap().name, " lead");
    }

    #[test]
    fn unix_vsftpd_recent_and_old() {
        let l = parse_unix(
            "-rw-r--r--    1 1000     1000         1234 Nov 24 19:32 report 2026.csv",
            now(),
        )
        .unwrap();
        assert_eq!(
            (l.name.as_str(), l.size, l.kind),
            ("report 2026.csv", 1234, ListedKind::File)
        );
        let m = l.mtime.unwrap();
        assert_eq!(
            (m.secs(), m.precision),
            (secs(2026, 11, 24, 19, 32, 0), Precision::Minutes)
        );
        let old = parse_unix(
            "drwxr-xr-x    2 0        0            4096 Mar 03  2025 archive",
            now(),
        )
        .unwrap();
        assert_eq!(old.kind, ListedKind::Dir);
        assert_eq!(old.mtime.unwrap().precision, Precision::Days);
        assert_eq!(old.mtime.unwrap().secs(), secs(2025, 3, 3, 0, 0, 0));
        // December, listed in November without a year: last year.
        let dec = parse_unix("-rw-r--r-- 1 u g 5 Dec 30 10:00 x", now()).unwrap();
        assert_eq!(dec.mtime.unwrap().secs(), secs(2025, 12, 30, 10, 0, 0));
    }

    #[test]
    fn unix_acl_selinux_symlink_and_no_group() {
        let acl = parse_unix("-rw-rw-r--+ 1 alice staff 42 Jan  5 09:01 acl.txt", now()).unwrap();
        assert_eq!((acl.name.as_str(), acl.size), ("acl.txt", 42));
        let se = parse_unix("-rw-r--r--. 1 alice alice 7 Jan  5  2024 se.txt", now()).unwrap();
        assert_eq!(se.name, "se.txt");
        let link = parse_unix(
            "lrwxrwxrwx 1 alice alice 11 Nov 24 19:32 out -> /etc/passwd",
            now(),
        )
        .unwrap();
        assert_eq!((link.name.as_str(), link.kind), ("out", ListedKind::Other));
        let nogroup = parse_unix("-rw-r--r-- 1 ftp 99 Nov 24 19:32 a", now()).unwrap();
        assert_eq!(nogroup.size, 99);
        // A name that looks like a date is still the name.
        let tricky = parse_unix("-rw-r--r-- 1 u g 3 Nov 24 19:32 Nov 24 2020", now()).unwrap();
        assert_eq!(tricky.name, "Nov 24 2020");
        assert!(parse_unix("total 12", now()).is_none());
        assert!(parse_unix("drwxr-xr-x 2 u g 4096 Nov 24 19:32 .", now()).is_none());
    }

    #[test]
    fn dos_iis_formats() {
        let d = parse_dos("11-24-26  07:32PM       <DIR>          New folder").unwrap();
        assert_eq!((d.name.as_str(), d.kind), ("New folder", ListedKind::Dir));
        assert_eq!(d.mtime.unwrap().secs(), secs(2026, 11, 24, 19, 32, 0));
        let f = parse_dos("11-24-2026  19:32                 1234 data file.bin").unwrap();
        assert_eq!((f.name.as_str(), f.size), ("data file.bin", 1234));
        let am = parse_dos("01-02-99  12:05AM                    5 y2k.txt").unwrap();
        assert_eq!(am.mtime.unwrap().secs(), secs(1999, 1, 2, 0, 5, 0));
        assert_eq!(
            parse_list_line("11-24-26  07:32PM   1,234 c.txt", now())
                .unwrap()
                .size,
            1234
        );
    }
}
