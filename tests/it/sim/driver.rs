//! Running a history: each step, each pass (crashed at a point, or to its end), quiescence.

use super::*;

/// Runs the pass `fut` to its end, or until it crashes at point `kill_at` of the simulated
/// server (what reached the disk, the server or the state stays; memory goes). The user
/// actions `during` happen while the pass waits at their points (or after it, for points it
/// never reached). The points it passed, and its output if it ended. After a crash the server
/// stays crashed until the caller has taken the dead pass away (`Stops::revive`).
pub(super) async fn drive<F: std::future::Future>(
    sim: &SimServer,
    fut: F,
    kill_at: Option<u64>,
    during: &[(u64, User)],
    mut act: impl FnMut(&User) -> Result<(), String>,
) -> Result<(u64, Option<F::Output>), String> {
    let mut stops: BTreeMap<u64, Stop> = during.iter().map(|(at, _)| (*at, Stop::Pause)).collect();
    if let Some(k) = kill_at {
        stops.insert(k, Stop::Crash);
    }
    sim.stops.plan(stops);
    let mut fut = Box::pin(fut);
    let mut done = vec![false; during.len()];
    let mut failed = None;
    let out = std::future::poll_fn(|cx| {
        sim.stops.watch(cx.waker());
        if sim.stops.crashed.load(Ordering::SeqCst) {
            return std::task::Poll::Ready(None);
        }
        let paused = sim.stops.paused.lock().expect("paused").clone();
        if !paused.is_empty() {
            for (i, (_, u)) in during
                .iter()
                .enumerate()
                .filter(|(_, (at, _))| paused.contains(at))
            {
                done[i] = true;
                if let Err(e) = act(u) {
                    failed = Some(e);
                    return std::task::Poll::Ready(None);
                }
            }
            sim.stops.release();
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await;
    if let Some(e) = failed {
        return Err(e);
    }
    let passed = sim.stops.passed();
    sim.stops.unplan();
    if out.is_none() {
        // The tasks of the dead pass are aborted; let the runtime drop them (and their hold
        // on the state) before anyone looks. Until the caller revives the server, nothing of
        // the dead pass moves (`Stops::revive`).
        drop(fut);
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
    // Actions the pass did not wait for happen after it.
    for (i, (_, u)) in during.iter().enumerate() {
        if !done[i] {
            act(u)?;
        }
    }
    Ok((passed, out))
}

/// After a crash, while the dead process is gone: one crash in three is a power cut, and what
/// the disk had not made durable may go (`sim::disk`).
pub(super) fn power_cut(
    env: &Env,
    model: &mut Model,
    outcome: &mut Outcome,
    pass_id: u64,
    step: &Step,
) -> Result<(), String> {
    let mut cut = Rng((pass_id ^ 0x90E7_C075) | 1);
    if cut.below(3) != 0 {
        return Ok(());
    }
    // One power cut in eight also tears the store (a disk that lied about a sync).
    let tear = cut.below(8) == 0;
    let lost = env
        .sim_disk
        .power_cut(&mut cut, &env.local, tear)
        .map_err(|e| format!("the power cut: {e}"))?;
    outcome.power_cuts += 1;
    if lost.store_torn {
        outcome.lost_stores += 1;
        model.base_lost();
    } else {
        env.reopened(model);
    }
    model.log.push(format!("{step}: the power is cut: {lost:?}"));
    Ok(())
}

/// Runs `history` for `seed` on its own paused current-thread runtime.
pub(super) fn run(seed: u64, history: &History) -> Result<Outcome, (String, Vec<String>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| (e.to_string(), Vec::new()))?;
    let mut model = Model::default();
    // On the paused clock an hour passes at once when nothing can move: a hang shows as such.
    let r = runtime.block_on(async {
        let running = async {
            if history.service {
                service::run_history(seed, history, &mut model).await
            } else {
                run_history(seed, history, &mut model).await
            }
        };
        tokio::time::timeout(Duration::from_secs(3600), running)
            .await
            .unwrap_or_else(|_| Err("the history hung: an hour passed with nothing moving".into()))
    });
    r.map_err(|e| (e, model.log))
}

pub(super) async fn run_history(seed: u64, history: &History, model: &mut Model) -> Result<Outcome, String> {
    let env = env(seed, history.behaviour)?;
    keep_one(&env, model)?;
    let mut outcome = Outcome {
        steps: history.steps.len(),
        ..Outcome::default()
    };
    for (i, step) in history.steps.iter().enumerate() {
        let pass = match step {
            Step::User(u) => {
                env.apply(model, u)?;
                continue;
            }
            Step::Pass(p) => p,
        };
        env.sim.reseed(pass.id);
        env.sim_disk.reseed(pass.id);
        model.pass_began = env.sim.counts.commands.load(Ordering::SeqCst) + 1;
        let taken = std::mem::take(&mut model.dirty);
        let scope = if pass.scoped && !taken.is_empty() {
            Scope::Paths(taken.iter().filter_map(|p| RelPath::new(p).ok()).collect())
        } else {
            Scope::Full
        };
        outcome.passes += 1;
        let (points, out) = drive(&env.sim, env.pass(scope), pass.kill_at, &pass.during, |u| {
            env.apply(model, u)
        })
        .await?;
        if out.is_none() {
            power_cut(&env, model, &mut outcome, pass.id, step)?;
        }
        env.sim.stops.revive();
        if let Some(Ok(r)) = &out {
            model.ended(!pass.scoped || taken.is_empty(), r);
        }
        model.passed([tree(&env.local), env.sim.tree(ROOT)])?;
        if out.is_some() {
            model.whole_pass_began = model.pass_began;
        }
        let ok = match out {
            None => {
                outcome.crashes += 1;
                model.log.push(format!("{step}: killed at point {points}"));
                false
            }
            Some(r) => {
                let line = outcome.ended(points, &r);
                model.log.push(format!("{step}: {line} ({points} points)"));
                r.is_ok_and(|r| r.failed.is_empty())
            }
        };
        if !ok {
            model.dirty.extend(taken);
        }
        env.check_step(model, i)?;
    }
    finish(&env, model, outcome).await
}

/// The end of a history: quiescence, the checks, and what the run did.
pub(super) async fn finish(env: &Env, model: &mut Model, mut outcome: Outcome) -> Result<Outcome, String> {
    quiesce(env, model, &mut outcome).await?;
    env.check_step(model, outcome.steps)?;
    check_end(env, model).await?;
    outcome.came_back = tree(&env.local)
        .into_iter()
        .filter(|key| model.returns_of_a_lost_base.contains(key))
        .count();
    outcome.trace = env.sim.counts.trace.load(Ordering::Relaxed);
    outcome.disk_faults = env.sim_disk.faults.load(Ordering::Relaxed);
    outcome.window_losses = env.sim.window_losses.lock().expect("losses").len();
    outcome.log = model.log.clone();
    Ok(outcome)
}

/// A file no one touches keeps either side from looking emptied (a refused pass).
pub(super) fn keep_one(env: &Env, model: &mut Model) -> Result<(), String> {
    let keep = model.new_version("keep", None);
    env.write_local("keep", &keep, 0)?;
    model.put(Side::Local, "keep", keep, 0);
    Ok(())
}

/// Passes without faults or crashes until one moves nothing.
pub(super) async fn quiesce(env: &Env, model: &mut Model, outcome: &mut Outcome) -> Result<(), String> {
    env.sim.faults_on.store(false, Ordering::SeqCst);
    outcome.faults = env.sim.counts.faults.load(Ordering::Relaxed);
    outcome.commands = env.sim.counts.commands.load(Ordering::Relaxed);
    outcome.writes_at = env.sim.counts.writes_at.load(Ordering::Relaxed);
    outcome.waited = env.sim.counts.waited.load(Ordering::Relaxed);
    for _ in 0..4 {
        outcome.passes += 1;
        let r = env
            .pass(Scope::Full)
            .await
            .map_err(|e| format!("a pass without faults failed: {e}"))?;
        model.log.push(format!("a pass without faults: {}", summary(&r)));
        outcome.moves[0] += r.moved_local;
        outcome.moves[1] += r.moved_remote;
        model.ended(true, &r);
        model.passed([tree(&env.local), env.sim.tree(ROOT)])?;
        if !r.failed.is_empty() {
            return Err(format!("a pass without faults failed files: {:?}", r.failed));
        }
        if r.uploaded + r.downloaded + r.deleted_local + r.deleted_remote + r.conflicts == 0 {
            return Ok(());
        }
    }
    Err("four passes without faults did not settle".into())
}
