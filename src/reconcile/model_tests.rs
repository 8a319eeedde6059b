//! Plans carried out on a model of the three trees, the way a perfect engine would: properties
//! over random worlds (nothing lost, the next plan empty; a pass over a subtree plans what a
//! full pass plans).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::{actions, base_of, dir, file, now, policy, rp, snapshot, two_way};
use super::*;

// ---- simulation: apply a plan to the three trees the way a perfect engine would ----

#[derive(Debug, Clone)]
struct World {
    base: Base,
    local: Snapshot,
    remote: Snapshot,
}

fn record(w: &mut World, p: &RelPath) {
    if let (Some(l), Some(r)) = (w.local.get(p), w.remote.get(p)) {
        w.base.insert(p.clone(), BaseEntry::of(l, r));
    }
}

fn apply(w: &mut World, plan: &Plan) {
    for a in &plan.actions {
        match a {
            Action::MkdirLocal { path } => {
                w.local.insert(path.clone(), dir());
                record(w, path);
            }
            Action::MkdirRemote { path } => {
                w.remote.insert(path.clone(), dir());
                record(w, path);
            }
            Action::Upload { path } => {
                let e = w.local[path].clone();
                w.remote.insert(path.clone(), e);
                record(w, path);
            }
            Action::Download { path } => {
                let e = w.remote[path].clone();
                w.local.insert(path.clone(), e);
                record(w, path);
            }
            Action::KeepBoth { path, loser, copy } => {
                let (l, r) = (w.local[path].clone(), w.remote[path].clone());
                let (winner, lost) = match loser {
                    Side::Local => (r, l),
                    Side::Remote => (l, r),
                };
                w.local.insert(path.clone(), winner.clone());
                w.remote.insert(path.clone(), winner);
                w.local.insert(copy.clone(), lost.clone());
                w.remote.insert(copy.clone(), lost);
                record(w, path);
                record(w, copy);
            }
            Action::MoveRemote { from, path } | Action::MoveLocal { from, path } => {
                let renamed_on = a.moved_from().map(|(_, side)| side);
                let side = if renamed_on == Some(Side::Remote) {
                    &mut w.remote
                } else {
                    &mut w.local
                };
                let moved: Vec<RelPath> = side
                    .keys()
                    .filter(|p| *p == from || p.is_inside(from))
                    .cloned()
                    .collect();
                for old in moved {
                    let e = side.remove(&old).expect("listed");
                    side.insert(old.rebased(from, path).expect("under"), e);
                }
                let rows: Vec<RelPath> = w
                    .base
                    .keys()
                    .filter(|p| *p == from || p.is_inside(from))
                    .cloned()
                    .collect();
                for old in rows {
                    let e = w.base.remove(&old).expect("row");
                    let new = old.rebased(from, path).expect("under");
                    w.base.insert(new.clone(), e);
                    record(w, &new);
                }
            }
            Action::Adopt { path } => record(w, path),
            Action::Forget { path } => {
                w.base.remove(path);
            }
            Action::DeleteLocal { path } | Action::RmdirLocal { path } => {
                w.local.remove(path);
                w.base.remove(path);
            }
            Action::DeleteRemote { path } | Action::RmdirRemote { path } => {
                w.remote.remove(path);
                w.base.remove(path);
            }
            Action::Skip { .. } => {}
        }
    }
}

const PATHS: [&str; 5] = ["a", "b.txt", "d/c", "d/e.txt", "f/g/h"];

/// (base, local, remote) content ids per path; None = absent.
fn world() -> impl Strategy<Value = World> {
    let side = || prop::option::of(0u8..3);
    prop::collection::vec((side(), side(), side()), PATHS.len()).prop_map(|cells| {
        let mut b = Vec::new();
        let mut l = Vec::new();
        let mut r = Vec::new();
        for (path, (cb, cl, cr)) in PATHS.iter().zip(cells) {
            if let Some(c) = cb {
                b.push((*path, c));
            }
            if let Some(c) = cl {
                l.push((*path, c));
            }
            if let Some(c) = cr {
                r.push((*path, c));
            }
        }
        World {
            base: base_of(&b),
            local: snapshot(&l),
            remote: snapshot(&r),
        }
    })
}

// Case counts: with `realistic`, at least 100,000 planner cases per run (issue 12).
proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn a_second_plan_after_the_first_is_empty(w in world()) {
        let pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
        let Ok(first) = plan(&w.base, &w.local, &w.remote, &pol, now()) else {
            return Ok(()); // refused by a guard: nothing executed
        };
        let mut after = w.clone();
        apply(&mut after, &first);
        let second = plan(&after.base, &after.local, &after.remote, &pol, now()).expect("second pass not refused");
        prop_assert!(second.is_empty(), "first:\n{}second:\n{}", first, second);
        // Both sides now hold the same tree.
        prop_assert_eq!(after.local.keys().collect::<Vec<_>>(), after.remote.keys().collect::<Vec<_>>());
    }

    #[test]
    fn one_sided_change_always_wins(base in prop::collection::vec(0u8..3, PATHS.len()), edits in prop::collection::vec(prop::option::of(prop::option::of(3u8..5)), PATHS.len()), on_local in any::<bool>()) {
        // Everything in sync, then one side edits (Some(Some)), deletes (Some(None)) or leaves alone.
        let files: Vec<(&str, u8)> = PATHS.iter().copied().zip(base).collect();
        let b = base_of(&files);
        let unchanged = snapshot(&files);
        let changed_files: Vec<(&str, u8)> = files.iter().zip(&edits).filter_map(|((p, c), e)| match e {
            None => Some((*p, *c)),
            Some(Some(n)) => Some((*p, *n)),
            Some(None) => None,
        }).collect();
        let changed = snapshot(&changed_files);
        let (local, remote) = if on_local { (&changed, &unchanged) } else { (&unchanged, &changed) };
        let p = two_way(&b, local, remote);
        let Ok(p) = p else { return Ok(()) };
        for ((path, _), e) in files.iter().zip(&edits) {
            let path = rp(path);
            let got: Vec<&Action> = p.actions.iter().filter(|a| a.path() == &path).collect();
            let want = match (e, on_local) {
                (None, _) => None,
                (Some(Some(_)), true) => Some(Action::Upload { path: path.clone() }),
                (Some(Some(_)), false) => Some(Action::Download { path: path.clone() }),
                (Some(None), true) => Some(Action::DeleteRemote { path: path.clone() }),
                (Some(None), false) => Some(Action::DeleteLocal { path: path.clone() }),
            };
            prop_assert_eq!(got, want.iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_edit_beats_a_delete(c in 0u8..3, n in 3u8..5, edit_local in any::<bool>()) {
        let b = base_of(&[("x", c), ("keep", 0)]);
        let edited = snapshot(&[("x", n), ("keep", 0)]);
        let deleted = snapshot(&[("keep", 0)]);
        let (local, remote) = if edit_local { (&edited, &deleted) } else { (&deleted, &edited) };
        let p = two_way(&b, local, remote).expect("not refused");
        let want = if edit_local { Action::Upload { path: rp("x") } } else { Action::Download { path: rp("x") } };
        prop_assert_eq!(p.actions, vec![want]);
    }

    #[test]
    fn conflicts_keep_both(c in 0u8..3, l in 3u8..6, r in 6u8..9, with_base in any::<bool>()) {
        let b = if with_base { base_of(&[("x.txt", c)]) } else { Base::new() };
        let mut w = World { base: b, local: snapshot(&[("x.txt", l)]), remote: snapshot(&[("x.txt", r)]) };
        let p = two_way(&w.base, &w.local, &w.remote).expect("not refused");
        prop_assert!(matches!(p.actions.as_slice(), [Action::KeepBoth { .. }]), "{}", p);
        apply(&mut w, &p);
        let contents: BTreeMap<_, _> = w.local.values().filter_map(|e| e.sha256.clone()).map(|s| (s, ())).collect();
        let (lk, rk) = (format!("{l:02x}"), format!("{r:02x}"));
        prop_assert!(contents.contains_key(&lk) && contents.contains_key(&rk));
    }
}

#[test]
fn an_unconfirmed_remote_time_compares_by_size_and_is_then_confirmed() {
    let l = file(1);
    let mut r_base = file(1);
    r_base.mtime = Mtime::new(r_base.mtime.nanos, Precision::Unconfirmed);
    let base: Base = [(rp("a"), BaseEntry::of(&l, &r_base))].into();
    let local: Snapshot = [(rp("a"), l.clone())].into();
    // The server lists it at minute precision, in whatever shape: same size, so unchanged.
    let mut listed = l.clone();
    listed.sha256 = None;
    listed.mtime = Mtime::new(listed.mtime.nanos + 42_000_000_000, Precision::Minutes);
    let remote: Snapshot = [(rp("a"), listed.clone())].into();
    let p = two_way(&base, &local, &remote).unwrap();
    assert_eq!(
        actions(&p),
        vec!["in sync a"],
        "the listing's time replaces the unconfirmed one"
    );
    // A different size is a change.
    listed.size += 1;
    let remote: Snapshot = [(rp("a"), listed)].into();
    let p = two_way(&base, &local, &remote).unwrap();
    assert_eq!(actions(&p), vec!["download a"]);
}

/// The entries of `d` and everything under it.
fn within<V: Clone>(map: &BTreeMap<RelPath, V>, d: &RelPath) -> BTreeMap<RelPath, V> {
    map.iter()
        .filter(|(k, _)| *k == d || k.is_inside(d))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// A pass over the subtree `d` plans what a whole-folder pass plans, when everything
    /// outside `d` is in sync: watcher-driven passes are never less careful than full ones.
    #[test]
    fn a_pass_over_a_subtree_plans_what_a_full_pass_plans(w in world()) {
        let d = rp("d");
        let mut w = w;
        for outside in ["a", "b.txt", "f/g/h"] {
            let synced = [(outside, 0u8)];
            w.base.extend(base_of(&synced));
            w.local.extend(snapshot(&synced));
            w.remote.extend(snapshot(&synced));
        }
        let pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
        let full = plan(&w.base, &w.local, &w.remote, &pol, now()).expect("not refused");
        let part = Part { synced_files: w.base.values().filter(|b| b.kind == Kind::File).count() };
        let sub = plan_part(&within(&w.base, &d), &within(&w.local, &d), &within(&w.remote, &d), &pol, now(), Some(part))
            .expect("not refused");
        prop_assert_eq!(actions(&full), actions(&sub));
    }
}
