//! What pairing moves needs before planning (`reconcile::moves::needs_content`): the SHA-256 of
//! new local files that could be vanished ones, and the server's SHA-256 of new remote files
//! that the `unique` facts cannot pair. Read as many at once as the pool has connections.

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::digest::HashAlgo;
use crate::engine::content::local_sha256;
use crate::engine::pass::Shared;
use crate::engine::run::retrying;
use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::reconcile::{Base, Policy, Side, moves};

/// Fills the contents `moves::pair` needs into the snapshots, and tells the policy whether the
/// server can show a move made on it at all.
pub(crate) async fn fill(sh: &mut Shared, base: &Base, policy: &mut Policy) -> Result<()> {
    let hash = retrying(&sh.run, "capabilities", |c| {
        Box::pin(std::future::ready(Ok(c.capabilities().hash)))
    })
    .await?;
    // Only a SHA-256 compares with the base's digest.
    policy.remote_moves_recognised =
        hash == Some(HashAlgo::Sha256) || sh.remote.values().any(|e| e.id.is_some());
    let width = sh.config.server.connections.max(1);

    let local = moves::needs_content(base, &sh.local, &sh.remote, policy, Side::Local);
    if !local.is_empty() {
        tracing::debug!(
            files = local.len(),
            "reading new local files that may be moved ones"
        );
    }
    // A file that cannot be read now (gone since the scan, locked) is just not paired.
    let found: Vec<(RelPath, Option<String>)> = {
        let root = &sh.folder.local;
        stream::iter(local)
            .map(|path| async move {
                let sha256 = local_sha256(None, &path.to_local(root))
                    .await
                    .inspect_err(|e| tracing::debug!(path = %path, "not paired with a vanished file: {e}"))
                    .ok();
                Ok::<_, Error>((path, sha256))
            })
            .buffer_unordered(width)
            .try_collect()
            .await?
    };
    for (path, sha256) in found {
        if let Some(e) = sh.local.get_mut(&path) {
            e.sha256 = sha256;
        }
    }
    if hash != Some(HashAlgo::Sha256) {
        return Ok(());
    }
    let remote = moves::needs_content(base, &sh.local, &sh.remote, policy, Side::Remote);
    let found: Vec<(RelPath, Option<String>)> = {
        let sh = &*sh;
        stream::iter(remote)
            .map(|path| async move {
                let remote_path = sh.remote_path(&path);
                // A refused hash (550: gone since the listing) leaves the file unpaired.
                let theirs = match retrying(&sh.run, &remote_path, |c| Box::pin(c.hash(&remote_path))).await {
                    Ok(theirs) => theirs,
                    Err(e @ Error::Reply { .. }) => {
                        tracing::debug!(path = %path, "not paired with a vanished file: {e}");
                        None
                    }
                    Err(e) => return Err(e),
                };
                let sha256 = theirs.and_then(|(algo, hex)| (algo == HashAlgo::Sha256).then_some(hex));
                Ok::<_, Error>((path, sha256))
            })
            .buffer_unordered(width)
            .try_collect()
            .await?
    };
    for (path, sha256) in found {
        if let Some(e) = sh.remote.get_mut(&path) {
            e.sha256 = sha256;
        }
    }
    Ok(())
}
