//! A history: what the users do on both sides and when the sync runs, drawn from a seed as
//! data before anything runs, so that a failing one can be shrunk by leaving steps out.

use std::fmt;

use super::Rng;

/// The files the users touch. `d` is a folder that gets renamed to `x`.
pub const PATHS: [&str; 8] = [
    "a.txt",
    "b.txt",
    "d/c.txt",
    "d/e.txt",
    "d/f/g.txt",
    "h.bin",
    "x/c.txt",
    "x/f/g.txt",
];
const DIRS: [&str; 2] = ["d", "x"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Server,
}

#[derive(Debug, Clone)]
pub enum UserOp {
    /// New bytes at `path`; of the size it holds when `same_size`; on the server, at a time a
    /// day ahead when `skewed`.
    Write {
        side: Side,
        path: &'static str,
        same_size: bool,
        skewed: bool,
    },
    Delete {
        side: Side,
        path: &'static str,
    },
    /// A file (over one there) or a folder (to a name not taken).
    Rename {
        side: Side,
        from: &'static str,
        to: &'static str,
    },
}

/// A user action `wait` seconds after the one before.
#[derive(Debug, Clone)]
pub struct User {
    pub wait: u64,
    pub op: UserOp,
}

#[derive(Debug, Clone)]
pub struct Pass {
    /// Stable under shrinking: the seed of this pass's faults.
    pub id: u64,
    /// Crashes at this point of the simulated server (`server::Stops`), if it gets there.
    pub kill_at: Option<u64>,
    /// Over the local paths changed since the last whole pass, as the watcher reports them.
    pub scoped: bool,
    /// User actions made while the pass runs, each at a point of the pass.
    pub during: Vec<(u64, User)>,
}

#[derive(Debug, Clone)]
pub enum Step {
    User(User),
    Pass(Pass),
}

/// How the server behaves, drawn once per seed.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// LIST only: times to the minute, no MLST.
    pub list_only: bool,
    /// Offers HASH SHA-256.
    pub hash: bool,
    /// Chance per command, in thousandths, of a fault while faults are on.
    pub fault_per_mille: u64,
    /// What REST then STOR does to the bytes around those written.
    pub writes_at: WritesAt,
}

/// What a server does with a write at an offset (`write_at::probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WritesAt {
    /// Keeps the bytes before and after (vsftpd).
    #[default]
    Keeps,
    /// Cuts the file at the offset first (Pure-FTPd).
    Cuts,
    /// Answers 451 (ProFTPD without `AllowStoreRestart`).
    Refuses,
    /// Keeps them, but lets one upload into a file at a time: a second waits for the first
    /// to end (vsftpd's default, `lock_upload_files=YES`).
    Serializes,
}

pub struct History {
    pub behaviour: Behaviour,
    pub steps: Vec<Step>,
    /// The service loop runs the passes (`sim::service`), not the history's driver.
    pub service: bool,
}

fn side(rng: &mut Rng) -> Side {
    if rng.below(2) == 0 {
        Side::Local
    } else {
        Side::Server
    }
}

fn user(rng: &mut Rng, racy: &mut Rng) -> User {
    let side = side(rng);
    let wait = 1 + rng.below(90);
    let pick = |rng: &mut Rng| PATHS[rng.below(PATHS.len() as u64) as usize];
    let op = match rng.below(10) {
        0..=5 => UserOp::Write {
            side,
            path: pick(rng),
            same_size: rng.below(3) == 0,
            skewed: side == Side::Server && rng.below(8) == 0,
        },
        6 | 7 => UserOp::Delete {
            side,
            path: pick(rng),
        },
        8 => UserOp::Rename {
            side,
            from: pick(rng),
            to: pick(rng),
        },
        // One way only: a folder renamed back puts its files where a sync may have seen them
        // last, which is no change to it, while the model would take it for new puts.
        _ => UserOp::Rename {
            side,
            from: DIRS[0],
            to: DIRS[1],
        },
    };
    // One server write in four follows what came before (a pass's transfers too) within the
    // same second: a time recorded then proves nothing about a same-size write after it
    // (docs/design.md, "Racy times"). Drawn apart, so that a seed's steps stay what they were.
    let server_write = matches!(
        op,
        UserOp::Write {
            side: Side::Server,
            ..
        }
    );
    let at_once = server_write && racy.below(4) == 0;
    User {
        wait: if at_once { 0 } else { wait },
        op,
    }
}

/// The history of `seed`.
pub fn draw(seed: u64) -> History {
    let mut rng = Rng(seed | 1);
    let mut racy = Rng(seed.rotate_left(29) | 1);
    let behaviour = Behaviour {
        list_only: rng.below(2) == 0,
        hash: rng.below(2) == 0,
        fault_per_mille: [0, 20, 60][rng.below(3) as usize],
        // Drawn apart from the history (`sim::env`), whose steps stay those of the seed.
        writes_at: WritesAt::Keeps,
    };
    let mut steps = Vec::new();
    for round in 0..4 + rng.below(6) {
        for _ in 0..1 + rng.below(4) {
            steps.push(Step::User(user(&mut rng, &mut racy)));
        }
        let kill_at = (rng.below(3) == 0).then(|| 1 + rng.below(40));
        let scoped = rng.below(3) == 0;
        let during = if rng.below(4) == 0 {
            (0..1 + rng.below(2))
                .map(|_| (1 + rng.below(30), user(&mut rng, &mut racy)))
                .collect()
        } else {
            Vec::new()
        };
        steps.push(Step::Pass(Pass {
            id: seed ^ round.wrapping_mul(0x2545_F491_4F6C_DD1D),
            kill_at,
            scoped,
            during,
        }));
    }
    History {
        behaviour,
        steps,
        service: false,
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Local => "local",
            Side::Server => "server",
        })
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}s ", self.wait)?;
        match &self.op {
            UserOp::Write {
                side,
                path,
                same_size,
                skewed,
            } => write!(
                f,
                "{side} writes {path}{}{}",
                if *same_size { " (same size)" } else { "" },
                if *skewed { " (a day ahead)" } else { "" }
            ),
            UserOp::Delete { side, path } => write!(f, "{side} deletes {path}"),
            UserOp::Rename { side, from, to } => write!(f, "{side} renames {from} to {to}"),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::User(u) => write!(f, "{u}"),
            Step::Pass(p) => {
                write!(f, "{} pass", if p.scoped { "a scoped" } else { "a" })?;
                if let Some(k) = p.kill_at {
                    write!(f, ", killed at point {k}")?;
                }
                for (poll, u) in &p.during {
                    write!(f, "; at point {poll}: {u}")?;
                }
                Ok(())
            }
        }
    }
}
