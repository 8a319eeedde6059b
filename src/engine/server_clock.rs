//! The server's clock, read once in a pass before anything of a file's content is read from
//! the server, for the racy-time rule (docs/design.md, "Racy times"): a time recorded from a
//! listing proves nothing unless it is in an earlier second than the server's clock when the
//! bytes it stands for were read.

use crate::config::{Direction, Folder};
use crate::local::part_name;
use crate::path::RelPath;
use crate::reconcile::{Base, Kind, Mtime, Precision, Snapshot};
use crate::remote::write_at::send;

use super::{Runner, Shared, retrying};

/// Whether the pass reads the server's clock: a two-way folder (one that both uploads and
/// downloads, so a server write missed now could be overwritten later) whose listing shows a
/// file the base does not hold as listed, which a download, a content check or an adopt may
/// record.
pub(super) fn needed(folder: &Folder, base: &Base, remote: &Snapshot) -> bool {
    folder.direction != Direction::Download
        && remote
            .iter()
            .any(|(path, e)| e.kind == Kind::File && base.get(path).is_none_or(|b| b.remote != e.sig()))
}

/// What a pass knows of the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ServerClock {
    /// Not read: not needed, or the server cannot tell it (a read-only account, which uploads
    /// nothing either; no MLST nor MDTM). Times are taken as they are.
    #[default]
    Unread,
    /// The server's clock, to the second, before any content was read.
    Read(Mtime),
    /// Reading it failed (a lost connection, a refusal for now): every time is racy.
    Failed,
}

impl ServerClock {
    /// For the planner (`Policy::server_clock`): a time in this second or later is racy.
    pub(crate) fn racy_from(self) -> Option<i64> {
        match self {
            ServerClock::Unread => None,
            ServerClock::Read(m) => Some(m.secs()),
            ServerClock::Failed => Some(i64::MIN),
        }
    }
}

/// The time of an empty part file written in the folder's root, on the server's clock, to
/// the second (MLST, or MDTM on a `LIST` server); the file is removed.
pub(super) async fn read(run: &Runner, folder: &Folder) -> ServerClock {
    // The part-file name of a hidden name no user file has.
    let path = format!(
        "{}/{}",
        folder.remote.trim_end_matches('/'),
        part_name(".ftps-sync-clock")
    );
    // Refused here (a read-only account, which uploads nothing either): no clock, none needed.
    match retrying!(run, &path, |c| send(c, &path, b"", None)) {
        Ok(_) => {}
        Err(e) if e.class() != crate::error::Class::Transient => {
            tracing::debug!(
                folder = folder.name,
                "the server's clock cannot be read here: {e}"
            );
            return ServerClock::Unread;
        }
        Err(e) => {
            tracing::debug!(folder = folder.name, "the server's clock could not be read: {e}");
            return ServerClock::Failed;
        }
    }
    let seen = retrying!(run, &path, |c| c.modified(&path));
    let _ = retrying!(run, &path, |c| c.remove(&path));
    match seen {
        Ok(Some(clock)) if clock.precision <= Precision::Seconds => ServerClock::Read(clock),
        // The server tells no time to the second (no MDTM, no `modify` fact).
        Ok(_) => ServerClock::Unread,
        // Written, and then no time for it: gone since, or refused; nothing proves a time.
        Err(e) => {
            tracing::debug!(folder = folder.name, "the server's clock could not be read: {e}");
            ServerClock::Failed
        }
    }
}

/// On a `LIST` server, a file whose upload the base recorded to the second (its time older
/// than the upload, but in the minute a listing shows) is looked at to the second (MDTM): the
/// same time means no write since the upload, and once this pass's clock reading is past that
/// minute the listing's minute confirms it (an adopt records it). Another time is a write: the
/// entry takes it, and the planner sees the change. Where MDTM gives no time, nothing can tell
/// a write in that minute: the pass fails, as for any server error, and plans nothing.
/// Returns how many it looked at.
pub(super) async fn look_to_the_second(sh: &mut Shared, base: &Base) -> crate::error::Result<usize> {
    let candidates: Vec<(RelPath, Mtime)> = sh
        .remote
        .iter()
        .filter_map(|(path, e)| {
            let b = base.get(path)?;
            (e.kind == Kind::File
                && e.mtime.precision == Precision::Minutes
                && b.kind == Kind::File
                && b.remote.mtime.precision == Precision::Seconds
                && b.remote.size == e.size
                && e.mtime.same_as(&b.remote.mtime))
            .then(|| (path.clone(), b.remote.mtime))
        })
        .collect();
    let looked = candidates.len();
    for (path, recorded) in candidates {
        let remote_path = sh.remote_path(&path);
        let Some(seen) = retrying!(&sh.run, &remote_path, |c| c.modified(&remote_path))? else {
            return Err(crate::error::Error::Verify {
                path: remote_path,
                detail: "the server gave no time to the second for it (MDTM), which a write in the \
                         minute its listing shows needs"
                    .into(),
            });
        };
        let minute = Mtime::new(recorded.nanos, Precision::Minutes);
        // Only a clock read this pass tells that the minute is past.
        let past = matches!(sh.server_clock, ServerClock::Read(_)) && !racy(minute, sh.server_clock);
        let Some(entry) = sh.remote.get_mut(&path) else {
            continue;
        };
        if seen.secs() == recorded.secs() && past {
            continue;
        }
        entry.mtime = seen;
    }
    Ok(looked)
}

/// Whether a time from a listing (`listed`) proves nothing about a write after the bytes it
/// stands for were read, the server's clock reading `clock` before that read: not in an
/// earlier unit of its own precision (a second; a minute for a `LIST` time).
pub(crate) fn racy(listed: Mtime, clock: ServerClock) -> bool {
    let clock = match clock {
        ServerClock::Unread => return false,
        ServerClock::Failed => return true,
        ServerClock::Read(m) => m,
    };
    let unit: i64 = match listed.precision {
        Precision::Nanos | Precision::Seconds => 1_000_000_000,
        Precision::Minutes => 60_000_000_000,
        Precision::Days => 86_400_000_000_000,
        Precision::Unconfirmed => return true,
    };
    listed.nanos.div_euclid(unit) >= clock.nanos.div_euclid(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn a_time_in_the_clocks_second_or_later_is_racy() {
        let clock = ServerClock::Read(Mtime::new(1000 * SECOND + 300_000_000, Precision::Seconds));
        let at = |secs: i64, p| Mtime::new(secs * SECOND, p);
        assert!(!racy(at(999, Precision::Seconds), clock));
        assert!(racy(at(1000, Precision::Seconds), clock));
        assert!(
            racy(at(5000, Precision::Seconds), clock),
            "in the server's future"
        );
        // A LIST time is a minute wide: 960 s is the minute the clock is in.
        assert!(racy(at(960, Precision::Minutes), clock));
        assert!(!racy(at(900, Precision::Minutes), clock));
        assert!(
            !racy(at(1000, Precision::Seconds), ServerClock::Unread),
            "not read, no claim"
        );
        assert!(
            racy(at(1, Precision::Seconds), ServerClock::Failed),
            "a failed reading, no proof"
        );
    }
}
