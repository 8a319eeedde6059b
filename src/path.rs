//! `RelPath`: a path inside a sync root, the only form a path from a listing or a scan takes
//! before it reaches the disk or the control channel.

use std::fmt;
use std::path::{Path, PathBuf};

/// A name that cannot be a `RelPath`: the name, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe name {name:?}: {reason}")]
pub struct UnsafeName {
    pub name: String,
    pub reason: &'static str,
}

type Error = UnsafeName;

/// A normalised, relative, `/`-separated path with at least one component.
///
/// Every component is a plain name: never empty, `.` or `..`, and never holding `/`, `\`,
/// NUL, CR or LF. So a `RelPath` joined to a root cannot leave it, and it cannot smuggle a second
/// command onto the FTP control channel.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub fn new(path: &str) -> Result<RelPath, Error> {
        if path.is_empty() {
            return Err(unsafe_name(path, "empty path"));
        }
        if path.starts_with('/') {
            return Err(unsafe_name(path, "absolute path"));
        }
        for component in path.split('/') {
            check_name(component).map_err(|reason| unsafe_name(path, reason))?;
        }
        Ok(RelPath(path.to_owned()))
    }

    /// A one-component path: `name` must be a plain file name.
    pub fn from_name(name: &str) -> Result<RelPath, Error> {
        check_name(name).map_err(|reason| unsafe_name(name, reason))?;
        Ok(RelPath(name.to_owned()))
    }

    /// `self/name`, with `name` checked as a plain file name.
    pub fn join(&self, name: &str) -> Result<RelPath, Error> {
        check_name(name).map_err(|reason| unsafe_name(name, reason))?;
        Ok(RelPath(format!("{}/{}", self.0, name)))
    }

    /// Joins an optional parent with a name: the root's children have no parent.
    pub fn child(parent: Option<&RelPath>, name: &str) -> Result<RelPath, Error> {
        match parent {
            Some(p) => p.join(name),
            None => RelPath::from_name(name),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_owned()))
    }

    /// Number of components: `a` is 1, `a/b` is 2.
    pub fn depth(&self) -> usize {
        self.0.matches('/').count() + 1
    }

    /// Whether `self` lies strictly inside the directory `dir`.
    pub fn is_inside(&self, dir: &RelPath) -> bool {
        self.0.len() > dir.0.len() && self.0.starts_with(&dir.0) && self.0.as_bytes()[dir.0.len()] == b'/'
    }

    /// `self` with its prefix `from` (itself, or a folder it lies in) replaced by `to`; `None`
    /// when `self` is not `from` nor inside it. Both are checked paths, so the result is one.
    pub fn rebased(&self, from: &RelPath, to: &RelPath) -> Option<RelPath> {
        if self == from {
            return Some(to.clone());
        }
        self.is_inside(from)
            .then(|| RelPath(format!("{}{}", to.0, &self.0[from.0.len()..])))
    }

    /// Where what lies under `self` sorts among paths: from `self/` (included) to `self0`
    /// (excluded; '0' follows '/'). A plain range from `self` would take in siblings such as
    /// `d.txt` and `d-old`, which sort between `d` and `d/`.
    pub fn under_bounds(&self) -> (String, String) {
        (format!("{}/", self.0), format!("{}0", self.0))
    }

    /// The entries of `map` under `self` (not `self`), in order.
    pub fn under_in<'a, V>(
        &self,
        map: &'a std::collections::BTreeMap<RelPath, V>,
    ) -> impl Iterator<Item = (&'a RelPath, &'a V)> + 'a {
        let (below, after) = self.under_bounds();
        let range = (
            std::ops::Bound::Included(below.as_str()),
            std::ops::Bound::Excluded(after.as_str()),
        );
        map.range::<str, _>(range)
    }

    /// The entries of `map` at `self` and under it, in order.
    pub fn subtree_of<'a, V>(
        &self,
        map: &'a std::collections::BTreeMap<RelPath, V>,
    ) -> impl Iterator<Item = (&'a RelPath, &'a V)> + 'a {
        map.get_key_value(self.0.as_str())
            .into_iter()
            .chain(self.under_in(map))
    }

    /// The same path with another last component.
    pub fn with_name(&self, name: &str) -> Result<RelPath, Error> {
        RelPath::child(self.parent().as_ref(), name)
    }

    /// The local path under `root`.
    pub fn to_local(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in self.0.split('/') {
            p.push(c);
        }
        p
    }

    /// The remote path under `root` (an FTP path, `/`-separated).
    pub fn to_remote(&self, root: &str) -> String {
        join_remote(root, &self.0)
    }
}

#[cfg(test)]
#[test]
fn rebased_moves_a_path_and_what_is_under_it_only() {
    let p = |s: &str| RelPath::new(s).expect("path");
    assert_eq!(p("a/b").rebased(&p("a/b"), &p("c")), Some(p("c")));
    assert_eq!(p("a/b/x/y").rebased(&p("a/b"), &p("c")), Some(p("c/x/y")));
    assert_eq!(p("a/bc").rebased(&p("a/b"), &p("c")), None);
    assert_eq!(p("a").rebased(&p("a/b"), &p("c")), None);
}

/// Joins a remote directory and a relative path with exactly one `/` between them.
pub fn join_remote(root: &str, rel: &str) -> String {
    if root.is_empty() {
        rel.to_owned()
    } else if root.ends_with('/') {
        format!("{root}{rel}")
    } else {
        format!("{root}/{rel}")
    }
}

fn unsafe_name(name: &str, reason: &'static str) -> Error {
    UnsafeName {
        name: name.to_owned(),
        reason,
    }
}

/// Why `name` is not a plain file name, if it is not.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name component");
    }
    if name == "." || name == ".." {
        return Err("dot component");
    }
    if name.contains('/') {
        return Err("slash in name");
    }
    if name.contains('\\') {
        return Err("backslash in name");
    }
    if name.contains('\0') {
        return Err("NUL in name");
    }
    if name.contains('\r') || name.contains('\n') {
        return Err("line break in name");
    }
    // Where the filesystem cannot hold it, a remote file is skipped, never written under
    // another name.
    if cfg!(windows)
        && let Some(why) = windows_name_problem(name)
    {
        return Err(why);
    }
    Ok(())
}

/// Why `name` cannot be a file name on Windows, if it cannot: a reserved device name (`CON`,
/// `aux.txt`), a trailing dot or space, or a character Windows forbids. On Windows,
/// [`check_name`] refuses these. (Names equal but for case are the planner's to refuse: it
/// sees both sides.)
pub fn windows_name_problem(name: &str) -> Option<&'static str> {
    const RESERVED: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return Some("a reserved device name on Windows");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("a trailing dot or space, which Windows drops");
    }
    if name
        .chars()
        .any(|c| matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') || (c as u32) < 32)
    {
        return Some("a character Windows does not allow in names");
    }
    None
}

impl serde::Serialize for RelPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Sets and maps keyed by `RelPath` can be asked with a `&str` (its order and equality are its
/// string's).
impl std::borrow::Borrow<str> for RelPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_windows_cannot_hold() {
        for bad in [
            "CON",
            "nul",
            "aux.txt",
            "Com1.tar.gz",
            "LPT9",
            "con .txt",
            "dots.",
            "space ",
            "a:b",
            "q?",
            "x*y",
            "tab\there",
        ] {
            assert!(windows_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in [
            "console",
            "nul1",
            "auxiliary.txt",
            "COM10",
            ".hidden",
            "a b.txt",
            "ünï.txt",
            "x.y.z",
        ] {
            assert_eq!(windows_name_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn accepts_plain_paths() {
        let p = RelPath::new("a/b c/d.txt").unwrap();
        assert_eq!(p.name(), "d.txt");
        assert_eq!(p.parent().unwrap().as_str(), "a/b c");
        assert_eq!(p.depth(), 3);
        assert!(p.is_inside(&RelPath::new("a").unwrap()));
        assert!(
            !RelPath::new("ab/c")
                .unwrap()
                .is_inside(&RelPath::new("a").unwrap())
        );
        assert_eq!(p.to_remote("/srv/"), "/srv/a/b c/d.txt");
        assert_eq!(p.to_remote("/srv"), "/srv/a/b c/d.txt");
    }

    #[test]
    fn rejects_escapes_and_injection() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            ".",
            "..",
            "a\\b",
            "a\0b",
            "a\r\nDELE x",
            "a/",
            "x\n",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RelPath::from_name("a/b").is_err());
    }

    proptest! {
        #[test]
        fn valid_paths_never_leave_the_root(s in "[a-z./\\\\\r\n\0]{0,12}") {
            if let Ok(p) = RelPath::new(&s) {
                let root = Path::new("/root");
                let local = p.to_local(root);
                prop_assert!(local.starts_with(root));
                prop_assert!(local.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir)));
                prop_assert!(!p.as_str().contains(['\r', '\n', '\0', '\\']));
            }
        }
    }
}
