use chrono::TimeZone;

use super::*;

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub(super) fn policy(direction: Direction, conflict: ConflictPolicy) -> Policy {
    Policy {
        direction,
        delete: true,
        conflict,
        max_delete: DeleteLimit::Percent(100),
        first_sync: FirstSync::SizeAndTime,
        case_insensitive: false,
        detect_moves: true,
        remote_moves_recognised: true,
        server_clock: None,
    }
}

/// Plans a two-way pass that keeps both versions of a conflict, the most common policy here.
pub(super) fn two_way(base: &Base, local: &Snapshot, remote: &Snapshot) -> Result<Plan, Refusal> {
    plan(
        base,
        local,
        remote,
        &policy(Direction::Both, ConflictPolicy::KeepBoth),
        now(),
    )
}

pub(super) fn rp(s: &str) -> RelPath {
    RelPath::new(s).expect("test path")
}

/// A file whose content is identified by `c`: size, digest and mtime all follow from it.
pub(super) fn file(c: u8) -> Entry {
    Entry::file(10 + c as u64, Mtime::from_secs(1_000 + c as i64)).with_sha256(format!("{c:02x}"))
}

pub(super) fn dir() -> Entry {
    Entry::dir(Mtime::from_secs(0))
}

pub(super) fn parents_of(path: &RelPath) -> Vec<RelPath> {
    let mut out = Vec::new();
    let mut p = path.parent();
    while let Some(d) = p {
        p = d.parent();
        out.push(d);
    }
    out
}

pub(super) fn snapshot(files: &[(&str, u8)]) -> Snapshot {
    let mut s = Snapshot::new();
    for (p, c) in files {
        let p = rp(p);
        for d in parents_of(&p) {
            s.insert(d, dir());
        }
        s.insert(p, file(*c));
    }
    s
}

pub(super) fn base_of(files: &[(&str, u8)]) -> Base {
    snapshot(files)
        .into_iter()
        .map(|(p, e)| (p, BaseEntry::of(&e, &e)))
        .collect()
}

pub(super) fn actions(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| a.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn first_sync_copies_both_ways_and_adopts_equal_files() {
    let local = snapshot(&[("a", 1), ("same", 5)]);
    let remote = snapshot(&[("d/b", 2), ("same", 5)]);
    let plan = plan(
        &Base::new(),
        &local,
        &remote,
        &policy(Direction::Both, ConflictPolicy::KeepBoth),
        now(),
    )
    .unwrap();
    assert_eq!(
        actions(&plan),
        vec!["mkdir local d/", "upload a", "download d/b", "in sync same"]
    );
}

#[test]
fn first_sync_different_files_are_conflicts() {
    let local = snapshot(&[("a.txt", 1)]);
    let remote = snapshot(&[("a.txt", 2)]);
    let plan = plan(
        &Base::new(),
        &local,
        &remote,
        &policy(Direction::Both, ConflictPolicy::KeepBoth),
        now(),
    )
    .unwrap();
    assert_eq!(
        plan.actions,
        vec![Action::KeepBoth {
            path: rp("a.txt"),
            loser: Side::Local,
            copy: rp("a.conflict-20261124-120000-local.txt"),
        }]
    );
}

#[test]
fn remote_listing_precision_change_is_not_a_change() {
    // The base saw the remote file at second precision; today's LIST shows only the day.
    let e = file(1);
    let base: Base = [(rp("a"), BaseEntry::of(&e, &e))].into();
    let mut coarse = e.clone();
    coarse.sha256 = None;
    coarse.mtime = Mtime::new(coarse.mtime.nanos - 1_000_000_000 * 30, Precision::Days);
    let remote: Snapshot = [(rp("a"), coarse)].into();
    let local: Snapshot = [(rp("a"), e)].into();
    assert_eq!(
        remote_change(base.get(&rp("a")), remote.get(&rp("a"))),
        Change::Unchanged
    );
    let p = two_way(&base, &local, &remote).unwrap();
    assert!(p.changes().next().is_none(), "{p}");
}

#[test]
fn mass_delete_and_empty_root_are_refused() {
    let files: Vec<(String, u8)> = (0..10).map(|i| (format!("f{i}"), 1)).collect();
    let files: Vec<(&str, u8)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let base = base_of(&files);
    let remote = snapshot(&files);
    let mut pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
    pol.max_delete = DeleteLimit::Percent(50);
    // 6 of 10 deleted locally -> refused.
    let local = snapshot(&files[6..]);
    match plan(&base, &local, &remote, &pol, now()) {
        Err(Refusal::MaxDelete {
            deletes,
            synced_files: 10,
            limit: DeleteLimit::Percent(50),
            moves_unrecognised: false,
        }) => assert_eq!(deletes, (0..6).map(|i| rp(&format!("f{i}"))).collect::<Vec<_>>()),
        other => panic!("{other:?}"),
    }
    // 3 of 10 -> fine.
    let local = snapshot(&files[3..]);
    assert_eq!(
        plan(&base, &local, &remote, &pol, now()).unwrap().actions.len(),
        3
    );
    // Empty remote: refused even at 100%.
    pol.max_delete = DeleteLimit::Percent(100);
    assert_eq!(
        plan(&base, &remote, &Snapshot::new(), &pol, now()),
        Err(Refusal::EmptyRoot {
            side: Side::Remote,
            synced_files: 10
        })
    );
}

#[test]
fn digests_are_needed_only_where_size_and_time_cannot_decide() {
    let pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
    let compare = Policy {
        first_sync: FirstSync::CompareContent,
        ..pol
    };
    let f = |size, secs: i64, precision| Entry::file(size, Mtime::new(secs * 1_000_000_000, precision));
    let base = base_of(&[("a", 1)]);
    let b = base.get(&rp("a"));
    let (l, r) = (f(9, 5000, Precision::Nanos), f(9, 5000, Precision::Seconds));
    // Changed on both sides (a base), same size: always, whatever the times.
    assert!(needs_digests(b, &l, &r, &pol));
    // Different sizes: different files; the digests still tell an edit from a touch (a moved
    // time over the bytes of the base) where the base has one...
    let other = f(8, 5000, Precision::Seconds);
    assert!(b.is_some_and(|b| b.sha256.is_some()));
    assert!(needs_digests(b, &l, &other, &pol));
    // ... and are not needed where it has none.
    let undigested = b.cloned().map(|mut b| {
        b.sha256 = None;
        b
    });
    assert!(!needs_digests(undigested.as_ref(), &l, &other, &pol));
    // Known digests: nothing to find.
    let (ld, rd) = (l.clone().with_sha256("x"), r.clone().with_sha256("y"));
    assert!(!needs_digests(b, &ld, &rd, &pol));
    // First sync: times that agree to the second decide under size-and-time only.
    assert!(!needs_digests(None, &l, &r, &pol));
    assert!(needs_digests(None, &l, &r, &compare));
    // ... and times known only to the minute never decide.
    assert!(needs_digests(None, &l, &f(9, 5000, Precision::Minutes), &pol));
}

#[test]
fn conflict_policies() {
    let base = base_of(&[("a", 1)]);
    let local = snapshot(&[("a", 2)]); // mtime 1002
    let remote = snapshot(&[("a", 3)]); // mtime 1003: newer
    let run = |d, c| actions(&plan(&base, &local, &remote, &policy(d, c), now()).unwrap());
    assert_eq!(run(Direction::Both, ConflictPolicy::Newer), vec!["download a"]);
    assert_eq!(run(Direction::Both, ConflictPolicy::Local), vec!["upload a"]);
    assert_eq!(run(Direction::Both, ConflictPolicy::Remote), vec!["download a"]);
    assert_eq!(
        run(Direction::Upload, ConflictPolicy::Remote)[0]
            .split(':')
            .next(),
        Some("skip a")
    );
    assert_eq!(
        run(Direction::Upload, ConflictPolicy::KeepBoth),
        vec!["conflict a (the remote version is kept as a.conflict-20261124-120000-remote)"]
    );
}

#[test]
fn one_way_directions_never_touch_the_other_side() {
    let base = base_of(&[("a", 1), ("b", 1)]);
    let local = snapshot(&[("a", 2), ("b", 1), ("new-local", 1)]);
    let remote = snapshot(&[("a", 1), ("b", 3), ("new-remote", 1)]);
    let up = actions(
        &plan(
            &base,
            &local,
            &remote,
            &policy(Direction::Upload, ConflictPolicy::KeepBoth),
            now(),
        )
        .unwrap(),
    );
    assert_eq!(up, vec!["upload a", "upload new-local"]);
    let down = actions(
        &plan(
            &base,
            &local,
            &remote,
            &policy(Direction::Download, ConflictPolicy::KeepBoth),
            now(),
        )
        .unwrap(),
    );
    assert_eq!(down, vec!["download b", "download new-remote"]);
}

#[test]
fn deleted_directory_is_removed_after_its_files() {
    let base = base_of(&[("d/e/x", 1), ("d/y", 1), ("keep", 1)]);
    let local = snapshot(&[("keep", 1)]);
    let remote = snapshot(&[("d/e/x", 1), ("d/y", 1), ("keep", 1)]);
    let p = two_way(&base, &local, &remote).unwrap();
    assert_eq!(
        actions(&p),
        vec![
            "delete remote d/e/x",
            "delete remote d/y",
            "rmdir remote d/e/",
            "rmdir remote d/"
        ]
    );
}

#[test]
fn a_pass_over_a_subtree_measures_deletions_against_the_whole_folder() {
    let files: Vec<(String, u8)> = (0..10).map(|i| (format!("d/f{i}"), 1)).collect();
    let files: Vec<(&str, u8)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let mut pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
    pol.max_delete = DeleteLimit::Percent(50);
    let base = base_of(&files);
    let remote = snapshot(&files);
    // The local subtree `d` is gone: as a pass over `d` alone, that is 10 of 10 files.
    let part = |n| Some(Part { synced_files: n });
    let refused = plan_part(&base, &Snapshot::new(), &remote, &pol, now(), part(10));
    assert!(refused.unwrap_err().to_string().contains("delete 10 of 10"));
    // In a folder of 1,000 synced files it is 1%: planned, and an empty side is no refusal.
    let allowed = plan_part(&base, &Snapshot::new(), &remote, &pol, now(), part(1000)).expect("planned");
    assert_eq!(allowed.actions.iter().filter(|a| a.is_delete()).count(), 10);
    assert!(actions(&allowed).contains(&"rmdir remote d/".to_owned()));
}

#[test]
fn names_that_differ_only_by_case_are_left_alone_where_the_filesystem_folds_case() {
    let local = snapshot(&[("Report.txt", 1), ("Docs/a.txt", 1), ("same.txt", 3)]);
    let remote = snapshot(&[("report.txt", 2), ("docs/a.txt", 2), ("same.txt", 3)]);
    let mut pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
    pol.case_insensitive = true;
    let folded = plan(&Base::new(), &local, &remote, &pol, now()).expect("planned");
    let mut got = actions(&folded);
    got.sort();
    assert_eq!(got.iter().filter(|a| a.starts_with("skip")).count(), 4, "{got:?}");
    assert!(
        folded
            .actions
            .iter()
            .all(|a| matches!(a, Action::Skip { .. } | Action::Adopt { .. })),
        "{got:?}"
    );
    // Where case matters, they are different files.
    pol.case_insensitive = false;
    let exact = plan(&Base::new(), &local, &remote, &pol, now()).expect("planned");
    assert!(
        actions(&exact)
            .iter()
            .any(|a| a.starts_with("upload") && a.contains("Report.txt"))
    );
}

#[test]
fn names_equal_but_for_case_on_one_side_are_all_left_alone_where_case_folds() {
    let remote = snapshot(&[("Report.txt", 1), ("report.TXT", 2), ("other", 3)]);
    let mut pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
    pol.case_insensitive = true;
    let folded = plan(&Base::new(), &Snapshot::new(), &remote, &pol, now()).expect("planned");
    let mut got = actions(&folded);
    got.sort();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("download") && got[0].ends_with("other"),
        "{got:?}"
    );
    assert!(got[1..].iter().all(|a| a.starts_with("skip")), "{got:?}");
    pol.case_insensitive = false;
    let exact = plan(&Base::new(), &Snapshot::new(), &remote, &pol, now()).expect("planned");
    assert!(actions(&exact).iter().all(|a| a.starts_with("download")));
}

/// A directory is removed only if everything under it goes. Its contents are found in key order,
/// where a sibling that sorts between the directory and its children ("a/b c" between "a/b" and
/// "a/b/x") once hid them: the directory looked empty and was planned for removal while a
/// server edit under it was being kept.
#[test]
fn a_directory_with_a_kept_file_is_not_removed_whatever_sorts_beside_it() {
    let base = base_of(&[("a/b/x", 1), ("a/b c", 2), ("keep", 3)]);
    let local = snapshot(&[("a/b c", 2), ("keep", 3)]);
    let remote = snapshot(&[("a/b/x", 4), ("a/b c", 2), ("keep", 3)]);
    let plan = two_way(&base, &local, &remote).expect("plan");
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::RmdirRemote { .. })),
        "{:?}",
        actions(&plan)
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::MkdirLocal { path } if *path == rp("a/b"))),
        "{:?}",
        actions(&plan)
    );
}

/// Size and time agree to the second on a first sync: the same file, unless the server's time
/// is racy (in or after the second of the server's clock), which proves nothing.
#[test]
fn a_racy_server_time_never_makes_two_files_the_same() {
    let pol = policy(Direction::Both, ConflictPolicy::KeepBoth);
    let f = |secs: i64, precision| Entry::file(9, Mtime::new(secs * 1_000_000_000, precision));
    let (l, r) = (f(5000, Precision::Nanos), f(5000, Precision::Seconds));
    assert!(!needs_digests(None, &l, &r, &pol));
    assert!(same_content(None, &l, &r, &pol));
    for clock in [5000, 4000] {
        let racy = Policy {
            server_clock: Some(clock),
            ..pol
        };
        assert!(needs_digests(None, &l, &r, &racy), "clock {clock}");
        assert!(!same_content(None, &l, &r, &racy), "clock {clock}");
    }
    let older = Policy {
        server_clock: Some(5001),
        ..pol
    };
    assert!(same_content(None, &l, &r, &older));
}
