//! The racy-time rule (docs/design.md, "Racy times"): a time recorded no earlier than the
//! moment it was recorded, less its precision, proves nothing about a same-size write after
//! it, so the row is recorded unconfirmed and looked at later. Here the rule alone: whether a
//! pass needs the server's clock, what the base records of each side, and when an upload's time
//! proves nothing. Reading the clock is the plan's (`plan::clock`).

use crate::config::{Direction, Folder};
use crate::reconcile::{Base, Entry, Kind, Mtime, Precision, Sig, Snapshot};

/// Whether the pass reads the server's clock: a two-way folder (one that both uploads and
/// downloads, so a server write missed now could be overwritten later) whose listing shows a
/// file the base does not hold as listed, which a download, a content check or an adopt may
/// record.
pub(crate) fn needed(folder: &Folder, base: &Base, remote: &Snapshot) -> bool {
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

/// An upload as the base records it until a listing shows the time the upload set (`set`, by
/// MFMT): its bytes, if anything, decide at the next pass (`needs_remote_digest`).
pub(crate) fn unconfirmed_upload(size: u64, set: Mtime) -> Entry {
    Entry::file(size, Mtime::new(set.nanos, Precision::Unconfirmed))
}

/// What the base records of a remote file as listed: unconfirmed while its time is racy
/// (docs/design.md, "Racy times"), so that the next pass looks at its bytes, where they can be
/// compared (a digest is known).
pub(crate) fn recorded_remote(clock: ServerClock, listed: &Entry, digest_known: bool) -> Sig {
    let mut sig = listed.sig();
    if digest_known && listed.kind == Kind::File && racy(listed.mtime, clock) {
        sig.mtime = Mtime::new(listed.mtime.nanos, Precision::Unconfirmed);
    }
    sig
}

/// What the base records of a local file as seen: unconfirmed while its time is within the
/// file system's precision of the moment the pass began reading (docs/design.md, "Racy
/// times"), or later, so that the next scan reads its bytes.
pub(crate) fn recorded_local(precision: std::time::Duration, moment: i64, seen: Sig) -> Sig {
    let window = precision.as_nanos().min(i64::MAX as u128) as i64;
    let mut sig = seen;
    if sig.mtime.nanos >= moment.saturating_sub(window) {
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
pub(crate) fn racy_upload(stored: &Entry, moment: Option<Mtime>) -> bool {
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
