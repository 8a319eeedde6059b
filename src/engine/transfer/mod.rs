//! One file moved: part file -> verify -> rename into place -> the base entry to record.
//! `upload` and `download`, each also in ranges over several connections (`ranged_upload`,
//! `ranged_download`, sharing `parallel`); here the checks both ways share.
//!
//! A file appears under its real name only complete and verified, on either side
//! (docs/design.md, invariant 1). A part file left by an interrupted transfer is resumed only while
//! its source still looks the way it did when the part was started (the state store records
//! that); otherwise it is started again.

use std::path::Path;

pub(crate) mod download;
mod parallel;
pub(crate) mod ranged_download;
pub(crate) mod ranged_upload;
pub(crate) mod upload;

use crate::config::Verify;
use crate::digest::{Digests, HashAlgo};
use crate::engine::pass::Shared;
use crate::error::{Error, Result};
use crate::local::part_name;
use crate::local::write::check_inside;
use crate::path::RelPath;
use crate::reconcile::Side;
use crate::remote::{Capabilities, Remote};

/// Files this small are sent again whole rather than resumed: their part files get no state
/// record, which saves two state-store writes per small file.
const RESUME_FROM: u64 = 4 << 20;

pub(crate) fn resumable(size: u64) -> bool {
    size >= RESUME_FROM
}

pub(crate) fn verify_err(path: &str, detail: String) -> Error {
    Error::Verify {
        path: path.to_owned(),
        detail,
    }
}

pub(crate) fn changed(path: &RelPath, side: Side) -> Error {
    Error::Changed {
        path: path.to_string(),
        side,
    }
}

/// Makes the folder `target` goes in, after checking it resolves inside the sync root; once
/// per folder and pass (`Shared::ready_dirs`): many small files share a folder.
pub(crate) fn local_dir_ready(sh: &Shared, target: &Path) -> Result<()> {
    let Some(parent) = target.parent() else {
        return check_inside(&sh.local_real, target);
    };
    if sh.ready_dirs.lock().is_ok_and(|d| d.contains(parent)) {
        return Ok(());
    }
    check_inside(&sh.local_real, target)?;
    sh.disk
        .make_dirs(parent, &sh.folder.local)
        .map_err(Error::local("create directory", parent))?;
    if let Ok(mut d) = sh.ready_dirs.lock() {
        d.insert(parent.to_owned());
    }
    Ok(())
}

/// The extra digest to compute while streaming so the server's hash command can check it.
pub(crate) fn server_algo(sh: &Shared, caps: Capabilities) -> Option<HashAlgo> {
    if sh.config.verify == Verify::Size {
        return None;
    }
    caps.hash.filter(|a| *a != HashAlgo::Sha256)
}

/// Compares the server's digest of `remote` with what we streamed, when it offers one;
/// whether it did (a digest of an algorithm we computed, and `verify` not `size`).
pub(crate) async fn check_server_hash(
    sh: &Shared,
    conn: &mut dyn Remote,
    remote: &str,
    digests: &Digests,
) -> Result<bool> {
    if sh.config.verify == Verify::Size {
        return Ok(false);
    }
    match conn.hash(remote).await? {
        Some((algo, theirs)) => match digests.get(algo) {
            Some(ours) if ours == theirs => Ok(true),
            Some(ours) => Err(verify_err(
                remote,
                format!("server {} is {theirs}, ours is {ours}", algo.name()),
            )),
            None => Ok(false),
        },
        None => Ok(false),
    }
}

/// The remote part file an upload of `path` writes.
pub(crate) fn remote_part(sh: &Shared, path: &RelPath) -> Result<String> {
    Ok(sh.remote_path(&path.with_name(&part_name(path.name()))?))
}
