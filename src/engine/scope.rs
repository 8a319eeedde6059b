//! What a pass looks at: the whole folder, or the subtrees the watcher saw change.

use std::collections::{BTreeMap, BTreeSet};

use crate::path::RelPath;

/// A pass over the whole folder, or over some paths, each with everything under it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Full,
    Paths(BTreeSet<RelPath>),
}

impl Scope {
    /// Whether `path` is in this scope: one of its paths or inside one.
    pub fn holds(&self, path: &RelPath) -> bool {
        match self {
            Scope::Full => true,
            Scope::Paths(paths) => {
                // The path and each of its ancestors, as slices of it: no allocation, as this
                // runs for every synced path of a watcher's pass.
                let s = path.as_str();
                paths.contains(s) || s.match_indices('/').any(|(i, _)| paths.contains(&s[..i]))
            }
        }
    }
}

/// More changed siblings than this and the pass looks at their directory instead.
const MAX_SIBLINGS: usize = 32;
/// More paths than this and they are collapsed to their parents (and, at the top, to a full pass).
const MAX_PATHS: usize = 256;

/// Local changes seen since the last pass.
#[derive(Debug, Default)]
pub struct Dirty {
    full: bool,
    paths: BTreeSet<RelPath>,
}

impl Dirty {
    pub fn add(&mut self, path: RelPath) {
        if !self.full {
            self.paths.insert(path);
        }
    }

    /// The whole folder needs a look (the start, a watcher that lost events, a failed pass).
    pub fn add_full(&mut self) {
        self.full = true;
        self.paths.clear();
    }

    pub fn add_scope(&mut self, scope: Scope) {
        match scope {
            Scope::Full => self.add_full(),
            Scope::Paths(paths) => paths.into_iter().for_each(|p| self.add(p)),
        }
    }

    /// Changed paths seen, waiting for a pass (none counted once the whole folder is due).
    pub fn pending(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        !self.full && self.paths.is_empty()
    }

    /// The scope for the next pass (collapsed), leaving nothing dirty; `None` if nothing was.
    pub fn take(&mut self) -> Option<Scope> {
        if std::mem::take(&mut self.full) {
            self.paths.clear();
            return Some(Scope::Full);
        }
        let paths = std::mem::take(&mut self.paths);
        if paths.is_empty() {
            return None;
        }
        Some(collapse(paths))
    }
}

/// Drops paths inside others, gives many changed siblings to their directory, and folds a
/// scope of very many paths up a level at a time.
fn collapse(mut paths: BTreeSet<RelPath>) -> Scope {
    loop {
        let kept: BTreeSet<RelPath> = paths
            .iter()
            .filter(|p| !std::iter::successors(p.parent(), RelPath::parent).any(|a| paths.contains(&a)))
            .cloned()
            .collect();
        let mut siblings: BTreeMap<Option<RelPath>, usize> = BTreeMap::new();
        for p in &kept {
            *siblings.entry(p.parent()).or_default() += 1;
        }
        let crowded = |parent: &Option<RelPath>| siblings.get(parent).is_some_and(|n| *n > MAX_SIBLINGS);
        if crowded(&None) {
            return Scope::Full;
        }
        // Crowded directories first; only if that is not enough, everything up a level.
        let too_many = kept.len() > MAX_PATHS && !siblings.values().any(|n| *n > MAX_SIBLINGS);
        let mut next = BTreeSet::new();
        let mut changed = false;
        for p in kept {
            let parent = p.parent();
            if too_many || crowded(&parent) {
                match parent {
                    Some(parent) => {
                        next.insert(parent);
                        changed = true;
                    }
                    None => return Scope::Full,
                }
            } else {
                next.insert(p);
            }
        }
        if !changed {
            return Scope::Paths(next);
        }
        paths = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(s: &str) -> RelPath {
        RelPath::new(s).expect("test path")
    }

    fn paths(scope: Scope) -> Vec<String> {
        match scope {
            Scope::Full => vec!["<full>".to_owned()],
            Scope::Paths(p) => p.into_iter().map(|p| p.as_str().to_owned()).collect(),
        }
    }

    #[test]
    fn nested_paths_fold_into_their_ancestor() {
        let mut d = Dirty::default();
        for p in ["a/b/c.txt", "a/b-x", "a/b", "a/bb", "x.txt"] {
            d.add(rp(p));
        }
        assert_eq!(paths(d.take().unwrap()), vec!["a/b", "a/b-x", "a/bb", "x.txt"]);
        assert!(d.take().is_none());
    }

    #[test]
    fn a_burst_in_one_directory_becomes_that_directory() {
        let mut d = Dirty::default();
        for i in 0..1000 {
            d.add(rp(&format!("photos/2026/img{i}.jpg")));
        }
        d.add(rp("notes.txt"));
        assert_eq!(paths(d.take().unwrap()), vec!["notes.txt", "photos/2026"]);
    }

    #[test]
    fn a_burst_at_the_top_or_everywhere_is_a_full_pass() {
        let mut top = Dirty::default();
        (0..100).for_each(|i| top.add(rp(&format!("f{i}"))));
        assert_eq!(top.take(), Some(Scope::Full));

        let mut spread = Dirty::default();
        (0..300).for_each(|i| spread.add(rp(&format!("d{}/e{i}/f", i % 20))));
        assert_eq!(paths(spread.take().unwrap()).len(), 20);
    }

    #[test]
    fn full_wins_over_paths() {
        let mut d = Dirty::default();
        d.add(rp("a"));
        d.add_full();
        d.add(rp("b"));
        assert_eq!(d.take(), Some(Scope::Full));
        assert!(d.is_empty());
    }

    #[test]
    fn holds_is_self_or_inside() {
        let s = Scope::Paths([rp("a/b")].into());
        assert!(s.holds(&rp("a/b")));
        assert!(s.holds(&rp("a/b/c")));
        assert!(!s.holds(&rp("a")));
        assert!(!s.holds(&rp("a/bc")));
    }
}
