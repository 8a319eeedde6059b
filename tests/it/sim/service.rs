//! A history run by the service loop (`daemon::run`) rather than by passes the driver makes: the
//! user's local changes reach the loop as a watcher's events would, a whole pass is its poll
//! coming due, a crash kills the service and starts it again (its pass at start), and the
//! history ends with a shutdown. The loop's passes go in turn with the history's steps
//! (`daemon::Turns`), so the model knows when each began; the checks are the same. The
//! simulated clock moves only with the users' actions, and past the quiet period before every
//! other pass, so some passes find files still being written and defer them.

use tokio::sync::{Semaphore, mpsc};

use ftps_sync::daemon::{Drive, Events, Turns, run as serve};
use ftps_sync::local::watch::Change;

use super::*;

/// How long the service waits between polls, on the paused clock.
const POLL: Duration = Duration::from_secs(30);

/// A running service, and what the driver holds of it.
struct Service {
    task: tokio::task::JoinHandle<ftps_sync::Result<()>>,
    changes: mpsc::UnboundedSender<Change>,
    grant: Arc<Semaphore>,
    ended: mpsc::UnboundedReceiver<Result<Report, String>>,
    shutdown: CancellationToken,
}

impl Service {
    fn start(env: &Env, config: &Config) -> Service {
        let (changes, sent) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let grant = Arc::new(Semaphore::new(0));
        let drive = Drive {
            connector: env.connector.clone(),
            events: Events::Sent([("sim".to_owned(), sent)].into()),
            clock: env.clock.clone(),
            disk: env.disk.clone(),
            turns: Some(Turns {
                grant: grant.clone(),
                ended: ended_tx,
            }),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (config, shutdown) = (config.clone(), shutdown.clone());
            async move { serve(&config, drive, shutdown).await }
        });
        Service {
            task,
            changes,
            grant,
            ended,
            shutdown,
        }
    }

    /// What a watcher would have reported of the user's local changes since the last call.
    fn tell(&self, model: &mut Model) {
        for path in std::mem::take(&mut model.dirty) {
            if let Ok(path) = RelPath::new(&path) {
                let _ = self.changes.send(Change::Path(path));
            }
        }
    }

    /// A kill: the process and its memory go (what reached the disk, the server or the state
    /// stays).
    async fn kill(self) {
        self.task.abort();
        self.shutdown.cancel();
        let _ = self.task.await;
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
}

pub(super) async fn run_history(seed: u64, history: &History, model: &mut Model) -> Result<Outcome, String> {
    let env = env(seed, history.behaviour)?;
    keep_one(&env, model)?;
    let mut config = env.config.clone();
    config.poll_interval = POLL;
    config.debounce = Duration::from_millis(100);
    let mut outcome = Outcome {
        steps: history.steps.len(),
        ..Outcome::default()
    };
    let mut service = Service::start(&env, &config);
    for (i, step) in history.steps.iter().enumerate() {
        let pass = match step {
            Step::User(u) => {
                env.apply(model, u)?;
                service.tell(model);
                continue;
            }
            Step::Pass(p) => p,
        };
        env.sim.reseed(pass.id);
        env.sim_disk.reseed(pass.id);
        model.pass_began = env.sim.counts.commands.load(Ordering::SeqCst) + 1;
        if !pass.scoped {
            // The poll comes due; the loop waits for its turn.
            tokio::time::sleep(POLL).await;
        }
        // Every other pass, the simulated clock moves past the quiet period (`debounce`): the
        // files written since are old enough to go. The others find them still being written,
        // and defer them.
        if outcome.passes.is_multiple_of(2) {
            env.sim.clock.fetch_add(2, Ordering::SeqCst);
        }
        service.grant.add_permits(1);
        outcome.passes += 1;
        let ended = &mut service.ended;
        let (points, out) = drive(&env.sim, ended.recv(), pass.kill_at, &pass.during, |u| {
            env.apply(model, u)
        })
        .await?;
        let out = match out {
            None => None,
            Some(None) => return Err("the service stopped on its own".into()),
            Some(Some(r)) => Some(r),
        };
        if out.is_none() {
            service.kill().await;
            power_cut(&env, model, &mut outcome, pass.id, step)?;
            env.sim.stops.revive();
            service = Service::start(&env, &config);
        }
        service.tell(model);
        if let Some(Ok(r)) = &out {
            model.ended(!pass.scoped, r);
        }
        model.passed([tree(&env.local), env.sim.tree(ROOT)])?;
        match out {
            None => {
                outcome.crashes += 1;
                model
                    .log
                    .push(format!("{step}: the service killed at point {points}"));
            }
            Some(r) => {
                model.whole_pass_began = model.pass_began;
                let line = outcome.ended(points, &r);
                model
                    .log
                    .push(format!("{step}: the service's pass: {line} ({points} points)"));
            }
        }
        env.check_step(model, i)?;
    }
    service.shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(60), service.task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(format!("the service failed: {e}")),
        Ok(Err(e)) => return Err(format!("the service panicked: {e}")),
        Err(_) => return Err("the service did not stop on shutdown".into()),
    }
    finish(&env, model, outcome).await
}
