//! The racy-time rule (docs/design.md, "Racy times"): a time recorded no earlier than the
//! moment it was recorded, less its precision, proves nothing about a same-size write after
//! it, so the row is recorded unconfirmed and looked at later. Here: the server's clock, read
//! once in a pass before any file's content is read from the server; what the base records of
//! each side; and the look to the second at rows of a `LIST` server.

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::config::{Direction, Folder};
use crate::local::part_name;
use crate::path::RelPath;
use crate::reconcile::{Base, Entry, Kind, Mtime, Precision, Sig, Snapshot};
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
    match retrying(run, &path, |c| Box::pin(send(c, &path, b"", None))).await {
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
    let seen = retrying(run, &path, |c| Box::pin(c.modified(&path))).await;
    let _ = retrying(run, &path, |c| Box::pin(c.remove(&path))).await;
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
    // As many at once as the pool has connections: one round trip each.
    let width = sh.config.server.connections.max(1);
    let seen: Vec<(RelPath, Mtime, Mtime)> = {
        let sh = &*sh;
        stream::iter(candidates)
            .map(|(path, recorded)| async move {
                let remote_path = sh.remote_path(&path);
                let Some(seen) =
                    retrying(&sh.run, &remote_path, |c| Box::pin(c.modified(&remote_path))).await?
                else {
                    return Err(crate::error::Error::Verify {
                        path: remote_path,
                        detail: "the server gave no time to the second for it (MDTM), which a write \
                                 in the minute its listing shows needs"
                            .into(),
                    });
                };
                Ok((path, recorded, seen))
            })
            .buffer_unordered(width)
            .try_collect()
            .await?
    };
    // Only a clock read this pass tells that a minute is past.
    let clock = sh.server_clock;
    for (path, recorded, seen) in seen {
        let minute = Mtime::new(recorded.nanos, Precision::Minutes);
        let past = matches!(clock, ServerClock::Read(_)) && !racy(minute, clock);
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

/// An upload as the base records it until a listing shows the time the upload set (`set`, by
/// MFMT): its bytes, if anything, decide at the next pass (`needs_remote_digest`).
pub(crate) fn unconfirmed_upload(size: u64, set: Mtime) -> Entry {
    Entry::file(size, Mtime::new(set.nanos, Precision::Unconfirmed))
}

/// What the base records of a remote file as listed: unconfirmed while its time is racy
/// (docs/design.md, "Racy times"), so that the next pass looks at its bytes, where they can be
/// compared (a digest is known).
pub(crate) fn recorded_remote(sh: &Shared, listed: &Entry, digest_known: bool) -> Sig {
    let mut sig = listed.sig();
    if digest_known && listed.kind == Kind::File && racy(listed.mtime, sh.server_clock) {
        sig.mtime = Mtime::new(listed.mtime.nanos, Precision::Unconfirmed);
    }
    sig
}

/// What the base records of a local file as seen: unconfirmed while its time is within the
/// file system's precision of the moment the pass began reading (docs/design.md, "Racy
/// times"), or later, so that the next scan reads its bytes.
pub(crate) fn recorded_local(sh: &Shared, seen: Sig) -> Sig {
    let window = sh.local_precision.as_nanos().min(i64::MAX as u128) as i64;
    let mut sig = seen;
    if sig.mtime.nanos >= sh.local_moment.saturating_sub(window) {
        sig.mtime = Mtime::new(sig.mtime.nanos, Precision::Unconfirmed);
    }
    sig
}

/// Whether `seen` shows the time an upload set (`set`, to the second): another one means
/// someone wrote the file after it.
pub(crate) fn shows_time_set(seen: &Entry, set: Mtime) -> bool {
    seen.mtime.same_as(&Mtime::new(set.nanos, Precision::Seconds))
}

/// Whether the time an upload is recorded with (`stored`, to the second) proves nothing
/// (docs/design.md, "Racy times"): a server write after the upload, in the same second, would
/// leave size and time as they are. Safe only when the time is older than the second of
/// `moment`, the part file's own time on the server's clock at the upload's end; never
/// compared with the local clock.
pub(super) fn racy_upload(stored: &Entry, moment: Option<Mtime>) -> bool {
    moment.is_none_or(|m| m.precision > Precision::Seconds || racy(stored.mtime, ServerClock::Read(m)))
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
