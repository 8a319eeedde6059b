//! A conflict: both sides changed since the last sync. The loser's version moves to a
//! conflict copy, the winner's takes the real name, and (two-way) both sides end up with
//! both. Nothing is overwritten.

use crate::config::Direction;
use crate::engine::pass::Shared;
use crate::engine::report::Report;
use crate::engine::transfer::changed;
use crate::engine::transfer::download::{discard, download, fetch, place};
use crate::engine::transfer::upload::upload;
use crate::error::{Error, Result};
use crate::local::scan::entry_of;
use crate::path::RelPath;
use crate::reconcile::Side;
use crate::remote::Remote;
use crate::remote::listing::{listed_entry, same_remote};

/// Both sides changed: the loser's version moves to `copy`, the winner's takes the real
/// name, and (two-way) both sides end up with both. Nothing is overwritten.
pub(crate) async fn keep_both(
    sh: &Shared,
    conn: &mut dyn Remote,
    path: &RelPath,
    loser: Side,
    copy: &RelPath,
) -> Result<Report> {
    let local = sh
        .local
        .get(path)
        .cloned()
        .ok_or_else(|| changed(path, Side::Local))?;
    let remote = sh
        .remote
        .get(path)
        .cloned()
        .ok_or_else(|| changed(path, Side::Remote))?;
    let uploads = sh.folder.direction != Direction::Download;
    let downloads = sh.folder.direction != Direction::Upload;
    let mut d = Report::default();
    match loser {
        Side::Remote => {
            let (from, to) = (sh.remote_path(path), sh.remote_path(copy));
            if !conn
                .stat(&from)
                .await?
                .is_some_and(|n| same_remote(&listed_entry(&n), &remote))
            {
                return Err(changed(path, Side::Remote));
            }
            if conn.stat(&to).await?.is_some() {
                return Err(changed(copy, Side::Remote));
            }
            // The path's base goes first: once its version is the copy's, a missing file at
            // the path (the transfer back failed) must not read as a deletion to pass on.
            sh.state(|s| s.remove(path))?;
            conn.rename(&from, &to).await?;
            tracing::info!(path = %path, copy = %copy, "conflict: the server's version is kept as the copy");
            let moved = conn
                .stat(&to)
                .await?
                .map(|l| listed_entry(&l))
                .unwrap_or(remote.clone());
            if downloads {
                sh.carry_kept_read(path, copy, &remote, &moved);
                d.absorb(download(sh, conn, copy, &moved, None).await?);
            }
            d.absorb(upload(sh, conn, path, &local, None).await?);
        }
        Side::Local => {
            let (from, to) = (path.to_local(&sh.folder.local), copy.to_local(&sh.folder.local));
            let now = std::fs::symlink_metadata(&from).map_err(Error::local("stat", &from))?;
            if entry_of(&now).sig() != local.sig() {
                return Err(changed(path, Side::Local));
            }
            if to.exists() {
                return Err(changed(copy, Side::Local));
            }
            // The server's version comes down first, so that a failed download leaves the path
            // as it was rather than empty: an empty path reads as a deletion to pass on
            // (simulation seed 17853949132946224134: the download failed, a server-side rename
            // then made the server's file look unchanged, and both copies of a version went).
            let fetched = fetch(sh, conn, path, &remote).await?;
            // As above: the local file moved to the copy is no deletion.
            sh.state(|s| s.remove(path))?;
            if let Err(e) = sh.disk.rename(&from, &to) {
                return Err(discard(sh, path, &fetched.part, Error::local("rename", &from)(e)));
            }
            tracing::info!(path = %path, copy = %copy, "conflict: the local version is kept as the copy");
            d.absorb(place(sh, path, &remote, fetched, None).await?);
            let moved = entry_of(&std::fs::metadata(&to).map_err(Error::local("stat", &to))?);
            if uploads {
                d.absorb(upload(sh, conn, copy, &moved, None).await?);
            }
        }
    }
    Ok(d)
}
