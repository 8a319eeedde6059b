//! Reading the server's clock before a pass reads any content, and the look to the second at the
//! rows of a `LIST` server (docs/design.md, "Racy times"; the rule is `racy`).

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::config::Folder;
use crate::local::part_name;
use crate::path::RelPath;
use crate::reconcile::{Base, Kind, Mtime, Precision};
use crate::remote::write_at::send;

use crate::engine::pass::Shared;
use crate::engine::racy::{ServerClock, racy};
use crate::engine::run::{Runner, retrying};

/// The time of an empty part file written in the folder's root, on the server's clock, to
/// the second (MLST, or MDTM on a `LIST` server); the file is removed.
pub(crate) async fn read(run: &Runner, folder: &Folder) -> ServerClock {
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
pub(crate) async fn look_to_the_second(sh: &mut Shared, base: &Base) -> crate::error::Result<usize> {
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
