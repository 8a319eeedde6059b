//! A file's content, as the engine compares it: the SHA-256 of a local file (the scan's, else
//! read), and of a remote file (the server's hash, else read back whole). Reading a remote file
//! back is `read_back`, the one place that does it.

use crate::digest::HashAlgo;
use crate::error::{Error, Result};
use crate::local::scan::digest_file;
use crate::remote::Remote;

/// A local file's digests (its SHA-256, and `also`), read off the async workers.
pub(crate) async fn local_digests(
    path: &std::path::Path,
    also: Option<HashAlgo>,
) -> Result<crate::digest::Digests> {
    let path = path.to_owned();
    crate::local::io::blocking("hash", move || digest_file(&path, also)).await?
}

/// A local file's SHA-256: the one the scan found (`scanned`), else read.
pub(crate) async fn local_sha256(scanned: Option<String>, path: &std::path::Path) -> Result<String> {
    match scanned {
        Some(sha256) => Ok(sha256),
        None => Ok(local_digests(path, None).await?.sha256),
    }
}

/// The SHA-256 of a remote file of `size` bytes (as listed): the server's when it offers one,
/// else by reading it (`read_back`).
pub(crate) async fn remote_sha256(conn: &mut dyn Remote, remote_path: &str, size: u64) -> Result<String> {
    if let Some((crate::digest::HashAlgo::Sha256, hex)) = conn.hash(remote_path).await? {
        return Ok(hex);
    }
    read_back(conn, remote_path, size, None).await
}

/// Reads a remote file of `size` bytes (as listed) for its SHA-256, keeping the bytes in the
/// part file `keep` when given. A read of any other length is no digest of it (a transient
/// error), and leaves no part file.
pub(crate) async fn read_back(
    conn: &mut dyn Remote,
    remote_path: &str,
    size: u64,
    keep: Option<&std::path::Path>,
) -> Result<String> {
    let file = match keep {
        Some(part) => Some(std::fs::File::create(part).map_err(Error::local("create", part))?),
        None => None,
    };
    let named = keep.unwrap_or(std::path::Path::new(remote_path));
    let hashing = crate::local::stream::write_file(Default::default(), file, 0, None, named, None);
    let result = conn.get(remote_path, 0, &hashing.chunks).await;
    let finished = hashing.finish().await;
    let checked = match (finished, result) {
        (Ok((digests, _)), Ok(read)) if read == size => Ok(digests.sha256),
        (Ok(_), Ok(read)) => Err(Error::Verify {
            path: remote_path.to_owned(),
            detail: format!("read {read} bytes to hash it, the listing said {size}"),
        }),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if checked.is_err()
        && let Some(part) = keep
    {
        let _ = std::fs::remove_file(part);
    }
    checked
}
