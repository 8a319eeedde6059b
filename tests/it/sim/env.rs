//! What a seed runs in: a temp folder, the simulated server, the config, the clock; and the
//! user's actions on both sides.

use super::*;

/// What does not change during a seed's run.
pub(super) struct Env {
    pub(super) _dir: tempfile::TempDir,
    pub(super) local: PathBuf,
    pub(super) sim: Arc<SimServer>,
    pub(super) connector: Arc<dyn Connector>,
    pub(super) config: Config,
    pub(super) clock: Clock,
    pub(super) disk: DiskRef,
    /// The same disk, for its power cuts.
    pub(super) sim_disk: Arc<SimDisk>,
}

/// One seed in four runs without move detection (a user's choice, and the plain transfers
/// a move falls back to).
pub(super) fn config(local: &Path, dir: &Path, seed: u64) -> Config {
    let detect_moves = !seed.is_multiple_of(4);
    ConfigYaml::new(1, local, ROOT)
        .password_file("password")
        .name("sim")
        .folder(&format!(
            "    max_delete_percent: 100\n    detect_moves: {detect_moves}\n"
        ))
        .retry("{ attempts: 4, initial_backoff: 1ms, max_backoff: 4ms }")
        .load(&dir.join("sim.yaml"))
}

pub(super) fn env(seed: u64, mut behaviour: Behaviour) -> Result<Env, String> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("password"), "pw").map_err(|e| e.to_string())?;
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
    // Half the seeds move every file but the smallest in ranges over the pool's connections
    // (a threshold of 1 MiB and more in real configs): downloads always, uploads where the
    // server keeps the bytes around a write at an offset and takes two at once (two servers in
    // five; the others cut the file there, refuse, or let one upload in at a time) and the
    // whole can be checked (the server's hash, or a
    // read-back: a quarter of the seeds read every upload back). Drawn apart from the history,
    // whose steps stay those of the seed.
    let mut draw = Rng((seed ^ 0x5E6_0E47) | 1);
    let segmented = draw.below(2) == 0;
    behaviour.writes_at = [
        WritesAt::Keeps,
        WritesAt::Keeps,
        WritesAt::Cuts,
        WritesAt::Refuses,
        WritesAt::Serializes,
    ][draw.below(5) as usize];
    let read_back = draw.below(4) == 0;
    let sim = SimServer::new(behaviour, seed, ROOT);
    let connector: Arc<dyn Connector> = Arc::new(SimConnector(sim.clone()));
    let mut config = config(&local, dir.path(), seed);
    if segmented {
        config.server.segment_from = Some(16);
    }
    if read_back {
        config.verify = ftps_sync::config::Verify::Download;
    }
    let store = ftps_sync::state::State::path(&config.state_dir, &config.folders[0].name);
    let sim_disk = Arc::new(SimDisk::new(store, sim.clone()));
    let clock = {
        let sim = sim.clone();
        Clock::from_fn(move || chrono::DateTime::from_timestamp(sim.now(), 0).unwrap_or_default())
    };
    Ok(Env {
        _dir: dir,
        local,
        sim,
        connector,
        disk: DiskRef::new(sim_disk.clone()),
        sim_disk,
        config,
        clock,
    })
}

impl Env {
    pub(super) fn read(&self, side: Side, path: &str) -> Option<Vec<u8>> {
        match side {
            Side::Local => std::fs::read(self.local.join(path)).ok(),
            Side::Server => self.sim.tree(ROOT).remove(path),
        }
    }

    /// A local write, with a time from the simulated clock (the real one would not replay).
    pub(super) fn write_local(&self, path: &str, bytes: &[u8], count: u64) -> Result<(), String> {
        let full = self.local.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {path}: {e}"))?;
        }
        std::fs::write(&full, bytes).map_err(|e| format!("write {path}: {e}"))?;
        self.sim_disk.user_changed(std::slice::from_ref(&full));
        let t = UNIX_EPOCH + Duration::new(self.sim.now() as u64, (count * 7_919_337 % 1_000_000_000) as u32);
        std::fs::File::options()
            .write(true)
            .open(&full)
            .and_then(|f| f.set_modified(t))
            .map_err(|e| format!("touch {path}: {e}"))
    }

    /// Applies a user action to its side, and to the model.
    pub(super) fn apply(&self, model: &mut Model, user: &User) -> Result<(), String> {
        self.sim.clock.fetch_add(user.wait, Ordering::SeqCst);
        let remote = |p: &str| format!("{ROOT}/{p}");
        let at = self.sim.counts.commands.load(Ordering::SeqCst);
        match &user.op {
            UserOp::Write {
                side,
                path,
                same_size,
                skewed,
            } => {
                if *side == Side::Server && self.sim.in_rename_round_trip(&remote(path)) {
                    model
                        .log
                        .push(format!("{user}: left out, in the round trip of a rename onto it"));
                    return Ok(());
                }
                let current = self.read(*side, path);
                let size = current.as_ref().filter(|_| *same_size).map(Vec::len);
                let v = model.new_version(path, size);
                if let Some(old) = current {
                    model.edit_follows_moves(*side, path, &old, &v, |p, v| self.holds(p, v));
                    self.gone(model, *side, path, old);
                }
                model.put(*side, path, v.clone(), at);
                model.log.push(format!(
                    "{user}: v{} ({} bytes) at {}",
                    model.count,
                    v.len(),
                    self.sim.now()
                ));
                match side {
                    Side::Local => {
                        model.dirty.insert((*path).to_owned());
                        self.write_local(path, &v, model.count)?;
                    }
                    Side::Server => {
                        // A same-size edit within the minute a LIST server shows cannot be
                        // seen by anyone (docs/design.md, invariant 7): out of the histories.
                        if size.is_some() && self.sim.behaviour.list_only {
                            self.sim.clock.fetch_add(61, Ordering::SeqCst);
                        }
                        let skew = if *skewed { 86_400 } else { 0 };
                        self.sim.user_write(&remote(path), v, self.sim.now() + skew);
                    }
                }
            }
            UserOp::Delete { side, path } => {
                let Some(old) = self.read(*side, path) else {
                    return Ok(());
                };
                self.gone(model, *side, path, old);
                model.log.push(format!("{user}"));
                match side {
                    Side::Local => {
                        model.dirty.insert((*path).to_owned());
                        std::fs::remove_file(self.local.join(path))
                            .map_err(|e| format!("delete {path}: {e}"))?;
                        self.sim_disk.user_changed(&[self.local.join(path)]);
                    }
                    Side::Server => {
                        self.sim.user_delete(&remote(path));
                    }
                }
            }
            UserOp::Rename { side, from, to } => {
                if from == to {
                    return Ok(());
                }
                let is_file = history::PATHS.contains(from);
                // What moves: (old path, new path, version); and what the move replaces.
                let (moved, replaced) = if is_file {
                    let Some(v) = self.read(*side, from) else {
                        return Ok(());
                    };
                    (
                        vec![((*from).to_owned(), (*to).to_owned(), v)],
                        self.read(*side, to),
                    )
                } else {
                    let files = match side {
                        Side::Local => tree(&self.local),
                        Side::Server => self.sim.tree(ROOT),
                    };
                    let under = format!("{from}/");
                    let moved = files
                        .into_iter()
                        .filter_map(|(p, v)| {
                            let rest = p.strip_prefix(&under)?;
                            let ours = p.ends_with('/') || p.ends_with(ftps_sync::local::PART_SUFFIX);
                            (!ours).then(|| (p.clone(), format!("{to}/{rest}"), v))
                        })
                        .collect();
                    (moved, None)
                };
                // A rename that puts a version back where the last pass left it is no change
                // at all to a sync (the times come back too): out of the histories, whose model
                // would call it a new put.
                if moved
                    .iter()
                    .any(|(_, new, v)| model.after_pass[*side as usize].get(new) == Some(v))
                {
                    return Ok(());
                }
                let done = match side {
                    Side::Local => {
                        let (f, t) = (self.local.join(from), self.local.join(to));
                        let free = if is_file {
                            f.is_file()
                        } else {
                            f.is_dir() && !t.exists()
                        };
                        free && {
                            if let Some(parent) = t.parent() {
                                std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {to}: {e}"))?;
                            }
                            std::fs::rename(&f, &t).map_err(|e| format!("rename {from}: {e}"))?;
                            self.sim_disk.user_changed(&[f.clone(), t.clone()]);
                            model.dirty.extend([(*from).to_owned(), (*to).to_owned()]);
                            true
                        }
                    }
                    Side::Server => self.sim.user_rename(&remote(from), &remote(to)),
                };
                if done {
                    model.log.push(format!("{user}"));
                    if let Some(old) = replaced {
                        // A file renamed onto another is an edit of that one.
                        if let Some((_, _, v)) = moved.first().filter(|_| is_file) {
                            model.edit_follows_moves(*side, to, &old, v, |p, v| self.holds(p, v));
                        }
                        self.gone(model, *side, to, old);
                    }
                    let other = match side {
                        Side::Local => Side::Server,
                        Side::Server => Side::Local,
                    };
                    for (old, new, v) in moved {
                        self.gone(model, *side, &old, v.clone());
                        model.moves.push((*side, old.clone(), new.clone(), v.clone()));
                        // The other side edited the synced version there already: the edit
                        // follows the move too.
                        let edit = self.read(other, &old).filter(|o| *o != v);
                        let synced = self.base_holds(&old, &v);
                        model.put(*side, &new, v.clone(), at);
                        model.moved_on(&old, &new, &v);
                        if let Some(edit) = edit.filter(|_| synced) {
                            model.edit_meets_move(&old, &new, &v, &edit);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A user removed `version` from `path` on `side` (deleted, replaced or moved it away).
    /// With a transfer to `path` still open in the journal (a killed pass), the next pass cannot
    /// tell the user's change from what a part file moved with its folder would look like, and
    /// keeps the transfer's version rather than risk it (`engine::settle`): it may come back.
    /// The same under a folder whose move is open: a file missing at the new name may have left
    /// the folder before the rename or after it, and settlement keeps it.
    pub(super) fn gone(&self, model: &mut Model, side: Side, path: &str, version: Vec<u8>) {
        let under = |open: &String| {
            path == open
                || path
                    .strip_prefix(open.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        };
        if self.open_intents().iter().any(under) {
            model.may_return.insert((path.to_owned(), version.clone()));
        }
        let remote = format!("{ROOT}/{path}");
        // Brought over by a transfer, or by a rename the sync made (the base then records it).
        let synced = self.base_holds(path, &version);
        model.gone(side, path, version, synced, |since| {
            self.sim.delivered_since(&remote, since)
        });
    }

    /// After a power cut: a record the store lost reopens its intent, and what a user removed
    /// at its path since the pass that closed it may come back, as for any open intent.
    pub(super) fn reopened(&self, model: &mut Model) {
        let open = self.open_intents();
        let under = |path: &str| {
            open.iter()
                .any(|o| path == o || path.strip_prefix(o.as_str()).is_some_and(|r| r.starts_with('/')))
        };
        let gone: Vec<_> = model
            .places
            .iter()
            .filter(|((path, _), place)| !place.wanted && under(path))
            .map(|(k, _)| k.clone())
            .collect();
        model.may_return.extend(gone);
    }

    /// Whether either side holds `version` at `path`.
    pub(super) fn holds(&self, path: &str, version: &[u8]) -> bool {
        [Side::Local, Side::Server]
            .into_iter()
            .any(|side| self.read(side, path).as_deref() == Some(version))
    }

    /// Whether the sync's base records `version` at `path` (what pairs a move, by content).
    pub(super) fn base_holds(&self, path: &str, version: &[u8]) -> bool {
        let Ok(path) = RelPath::new(path) else {
            return false;
        };
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(version));
        ftps_sync::state::State::open(&self.config.state_dir, "sim")
            .and_then(|st| st.get(&path))
            .is_ok_and(|b| b.and_then(|b| b.sha256) == Some(sha256))
    }

    /// The paths of the transfers the journal holds open.
    pub(super) fn open_intents(&self) -> Vec<String> {
        ftps_sync::state::State::open(&self.config.state_dir, "sim")
            .and_then(|st| st.intents())
            .map(|i| i.into_iter().map(|i| i.path.as_str().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Every file on either side holds bytes some user wrote: nothing partial under a real name.
    pub(super) fn check_step(&self, model: &Model, step: usize) -> Result<(), String> {
        for (side, files) in [("local", tree(&self.local)), ("server", self.sim.tree(ROOT))] {
            for (path, bytes) in files {
                if path.ends_with('/') || path.ends_with(ftps_sync::local::PART_SUFFIX) {
                    continue;
                }
                if !model.versions.contains(&bytes) {
                    return Err(format!(
                        "step {step}: {side} {path} holds {} bytes no user wrote: {:?}",
                        bytes.len(),
                        String::from_utf8_lossy(&bytes)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Pass options on the simulated clock.
    pub(super) fn options(&self, scope: Scope) -> Options {
        Options {
            scope,
            clock: self.clock.clone(),
            disk: self.disk.clone(),
            ..Options::default()
        }
    }

    pub(super) async fn pass(&self, scope: Scope) -> ftps_sync::Result<Report> {
        let never = CancellationToken::new();
        let folder = &self.config.folders[0];
        engine::sync_folder(&self.config, folder, &self.connector, self.options(scope), &never).await
    }
}
