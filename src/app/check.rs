//! `ftps-sync check`: connect, try what a sync needs, and report what a user needs to trust
//! and tune the server.
//!
//! Beyond the login and FEAT, it opens several data connections in a row (a server may refuse
//! the ones that do not resume its TLS session, as ProFTPD does once its two TLS 1.3 tickets
//! are spent), and on a small file under a reserved part-file name in the first folder's
//! remote root tries an upload, setting its time, the server's hash, and writing at an
//! offset, then removes it. On a read-only account those say "not tested".

use crate::config::{Config, Folder, Server};
use crate::digest::Hashers;
use crate::error::{Error, Result};
use crate::reconcile::Mtime;
use crate::remote::ftps::tls::TlsContext;
use crate::remote::ftps::{Ftps, HashCommand, ListingMode, MtimeSupport};
use crate::remote::learned::TlsLearned;
use crate::remote::write_at::{self, WriteAt, fetch, send};

pub async fn check(config: &Config) -> Result<u8> {
    let s = &config.server;
    let (remembered, keep) = crate::engine::learned::memory(config);
    let tls = TlsContext::remembering(s, remembered, keep)?;
    say!("server       {}:{} ({:?} TLS)", s.host, s.port, s.tls);
    let mut conn = match Ftps::connect(s, &tls).await {
        Ok(c) => c,
        Err(e) => {
            if let (Error::Tls { .. }, Some(fp)) = (&e, tls.seen_fingerprint()) {
                say!("certificate  SHA-256 {fp} (NOT trusted)");
                say!(
                    "             if you trust this server: ftps-sync check --trust (or add under server:  fingerprint_sha256: \"{fp}\")"
                );
            }
            return Err(e);
        }
    };
    let tls13 = conn.tls.as_ref().is_some_and(|t| t.version == "TLSv1_3");
    if let Some(t) = &conn.tls {
        say!("tls          {} {}", t.version, t.cipher);
        say!("certificate  SHA-256 {}", t.fingerprint);
        if s.fingerprint_sha256.is_some() {
            say!(
                "             pinned (fingerprint_sha256 in {})",
                config.source.display()
            );
        } else {
            say!(
                "             to pin it, add under server:  fingerprint_sha256: \"{}\"",
                t.fingerprint
            );
        }
    }
    say!("login        ok as {}", s.user);
    say!("features     {}", conn.features.lines.join(", "));
    say!(
        "listing      {}",
        match conn.listing {
            ListingMode::Mlsd => "MLSD",
            ListingMode::List => "LIST",
        }
    );
    let mut code = 0;
    let mut data = Tally::default();
    for f in &config.folders {
        match data.count(conn.list_dir(&f.remote).await) {
            Ok(entries) => say!(
                "folder       {}: {} ({} entries)",
                f.name,
                f.remote,
                entries.len()
            ),
            Err(Error::Reply { code: Some(550), .. }) => {
                say!(
                    "folder       {}: {} does not exist yet (created on first sync)",
                    f.name,
                    f.remote
                )
            }
            Err(e) => {
                say!("folder       {}: {} cannot be listed: {e}", f.name, f.remote);
                code = 1;
            }
        }
    }
    // The write tests go in the first folder's root, and only there: never outside it, and
    // not before the first sync has made it.
    let (tried, listable) = match config.folders.first() {
        Some(f) => match conn.dir_exists(&f.remote).await {
            Ok(true) => (
                try_a_file(&mut conn, f, &mut data, (s, &tls)).await,
                f.remote.clone(),
            ),
            Ok(false) => (
                Tried::untested(&format!(
                    "{} does not exist yet (the first sync creates it)",
                    f.remote
                )),
                nearest_existing(&mut conn, &f.remote).await,
            ),
            Err(e) => {
                let mut t = Tried::untested(&format!("cannot tell whether {} exists: {e}", f.remote));
                t.failure = Some(format!("looking at {} failed: {e}", f.remote));
                (t, f.remote.clone())
            }
        },
        None => (Tried::untested("no folder to try it in"), "/".to_owned()),
    };
    // A read-only account, or a root not made yet, still gets data connections in a row:
    // listings. Bounded: a listing the server refuses opens no data connection.
    for _ in 0..2 * DATA_CONNECTIONS {
        if data.opened + data.failed.len() >= DATA_CONNECTIONS {
            break;
        }
        let _ = data.count(conn.list_dir(&listable).await);
    }
    say!("write        {}", tried.write);
    say!("mtime        {}", tried.mtime);
    say!("hash         {}", tried.hash);
    say!("write at an offset  {}", tried.offset);
    let mode = conn.data_mode();
    let quirks = conn.quirks();
    say!(
        "data         {} of {} data connections in a row opened ({mode}){}",
        data.opened,
        data.opened + data.failed.len(),
        if quirks.epsv_broken() {
            "; the server's EPSV does not work, PASV is used"
        } else {
            ""
        }
    );
    for e in &data.failed {
        say!("             failed: {e}");
    }
    let memory = tls.memory().learned();
    let learned = memory.as_ref().map(|l| l.tls);
    let resumption = match (tls13, quirks.resumption_required(), quirks.went_unresumed()) {
        (false, _, _) => "each data connection resumes the control connection's TLS session",
        (true, true, _) if learned == Some(TlsLearned::Tls12) => {
            "the server gives TLS 1.3 data connections no session tickets and refuses those \
             that do not resume: ftps-sync uses TLS 1.2 with it (learned, below)"
        }
        (true, true, _) => {
            "the server gives TLS 1.3 data connections no session tickets and refuses those \
             that do not resume: ftps-sync logs in again after every two transfers, which is slow"
        }
        (true, false, true) => {
            "the server gives TLS 1.3 data connections no session tickets, and takes the ones \
             that do not resume"
        }
        (true, false, false) => "each data connection resumed the control connection's TLS session",
    };
    say!("tls session  {resumption}");
    say!("learned      {}", shown(memory.as_ref(), s));
    if !data.failed.is_empty() {
        say!("result       data connections failed: a sync would retry them, slowly, or fail");
        code = 1;
    }
    if let Some(why) = &tried.failure {
        say!("result       {why}");
        code = 1;
    }
    if code == 0 {
        say!("result       ok");
    }
    conn.quit().await;
    Ok(code)
}

/// What is known of the server across runs, in a line.
pub fn shown(learned: Option<&crate::remote::learned::Learned>, s: &Server) -> String {
    let since = |at: i64| {
        chrono::DateTime::from_timestamp(at, 0).map_or(String::new(), |t| t.format("%Y-%m-%d").to_string())
    };
    match learned {
        None if s.tls_min_version.is_some() || s.tls_max_version.is_some() => {
            "nothing; the TLS versions are the config's".to_owned()
        }
        None => "nothing".to_owned(),
        Some(l) => format!(
            "TLS {} since {}: {}{}",
            l.tls.as_str(),
            since(l.at),
            l.why,
            if s.tls_min_version.is_some() || s.tls_max_version.is_some() {
                " (not used: the config sets the TLS versions)"
            } else if l.tls == TlsLearned::Tls12 {
                "; `tls_min_version: \"1.3\"` under server keeps TLS 1.3"
            } else {
                ""
            }
        ),
    }
}

/// How long a second write into the probe file may wait for the first (`write_at::concurrent`).
const CONCURRENT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The data connections `check` opens in a row, at least: well past ProFTPD's two TLS 1.3
/// tickets.
const DATA_CONNECTIONS: usize = 5;

/// The data connections opened so far, and the errors of those that failed.
#[derive(Default)]
struct Tally {
    opened: usize,
    failed: Vec<String>,
}

impl Tally {
    /// Counts what a data command says of its data connection. A command the server refused
    /// (a permanent reply other than `522` or `534`, which refuse the connection's TLS) says nothing
    /// of it: a read-only folder is no failed data connection.
    fn count<T>(&mut self, r: Result<T>) -> Result<T> {
        match &r {
            Ok(_) => self.opened += 1,
            Err(Error::Reply { code: Some(c), .. }) if (500..600).contains(c) && !matches!(c, 522 | 534) => {}
            Err(e) => self.failed.push(e.to_string()),
        }
        r
    }
}

/// The nearest folder above `path` that exists, to list when `path` does not exist yet.
async fn nearest_existing(conn: &mut Ftps, path: &str) -> String {
    let mut dir = path.trim_end_matches('/');
    while let Some((parent, _)) = dir.rsplit_once('/') {
        dir = parent;
        let candidate = if dir.is_empty() { "/" } else { dir };
        if conn.dir_exists(candidate).await.unwrap_or(false) {
            return candidate.to_owned();
        }
    }
    // A path relative to the login folder.
    ".".to_owned()
}

/// What trying a small file found, one line each.
struct Tried {
    write: String,
    mtime: String,
    hash: String,
    offset: String,
    /// Something that would make a sync fail or lose its checks.
    failure: Option<String>,
}

impl Tried {
    fn untested(why: &str) -> Tried {
        let not = format!("not tested: {why}");
        Tried {
            write: not.clone(),
            mtime: not.clone(),
            hash: not.clone(),
            offset: not,
            failure: None,
        }
    }
}

const PROBE_NAME: &str = "ftps-sync-check";
const FIRST: &[u8] = b"ftps-sync check: first part\n";
/// 2001-02-03 04:05:06 UTC: a time no file here would have by chance.
const PROBE_TIME: i64 = 981_173_106;

/// Uploads a small file under a reserved part-file name in the folder's remote root (the
/// sync's own part files are named so, and a later pass removes one left behind), tries
/// setting its time, the server's hash and writing at an offset, and removes it.
async fn try_a_file(
    conn: &mut Ftps,
    folder: &Folder,
    data: &mut Tally,
    server: (&Server, &TlsContext),
) -> Tried {
    let root = folder.remote.trim_end_matches('/');
    let path = format!("{root}/{}", crate::local::part_name(PROBE_NAME));
    match data.count(send(conn, &path, FIRST, None).await) {
        Ok(_) => {}
        Err(Error::Reply { reply, .. }) => {
            return Tried::untested(&format!(
                "the server refused an upload to {root} ({reply}): read-only?"
            ));
        }
        Err(e) => {
            let mut t = Tried::untested(&format!("the upload failed ({e})"));
            t.failure = Some(format!("an upload to {root} failed: {e}"));
            return t;
        }
    }
    // Uploads read nothing back, so they collect no session ticket a server may send on a data
    // connection: three in a row spend ProFTPD's two TLS 1.3 tickets. Where that shows the
    // server may not resume TLS 1.3 data connections, a few more, as a sync would send, prove
    // it or not (`remote::learned`): a login renewed, and uploads that bring no ticket.
    for _ in 0..2 {
        let _ = data.count(send(conn, &path, FIRST, None).await);
    }
    for _ in 0..6 {
        if !server.1.memory().suspected() {
            break;
        }
        let _ = data.count(send(conn, &path, FIRST, None).await);
    }
    let mut tried = Tried::untested("");
    tried.write = match data.count(fetch(conn, &path).await) {
        Ok(bytes) if bytes == FIRST => format!("ok (a file uploaded to {root} read back equal)"),
        Ok(bytes) => {
            let why = format!(
                "the file uploaded to {root} read back as {} bytes, not the {} sent",
                bytes.len(),
                FIRST.len()
            );
            tried.failure = Some(why.clone());
            why
        }
        Err(e) => format!("uploaded, but reading it back failed: {e}"),
    };
    tried.mtime = try_mtime(conn, &path).await;
    tried.hash = try_hash(conn, &path).await;
    tried.offset = try_offset(conn, &path, data, server).await;
    if let Err(e) = conn.remove(&path).await {
        say!("             the test file {path} could not be removed: {e}");
    }
    tried
}

async fn try_mtime(conn: &mut Ftps, path: &str) -> String {
    let how = match conn.mtime {
        MtimeSupport::Mfmt => "MFMT",
        MtimeSupport::MdtmWrite => "MDTM with a time",
        MtimeSupport::None => {
            return "cannot be set: changes are told by size and the listing's time".into();
        }
    };
    match conn.set_mtime(path, PROBE_TIME).await {
        Ok(true) => {}
        Ok(false) => return format!("{how} refused: changes are told by size and the listing's time"),
        Err(e) => return format!("{how} failed: {e}"),
    }
    match conn.stat(path).await {
        Ok(Some(seen))
            if seen
                .mtime
                .is_some_and(|m| m.same_as(&Mtime::from_secs(PROBE_TIME))) =>
        {
            format!("{how} (set and listed back)")
        }
        Ok(Some(seen)) => format!(
            "{how} accepted, but the file lists as of {}: the time is not kept",
            seen.mtime.map_or("no time".into(), |m| m.secs().to_string())
        ),
        Ok(None) => format!("{how} accepted, but the file no longer lists"),
        Err(e) => format!("{how} accepted; listing it back failed: {e}"),
    }
}

async fn try_hash(conn: &mut Ftps, path: &str) -> String {
    let Some(command) = conn.hash else {
        return "none (uploads are verified by size; `verify: download` reads them back)".into();
    };
    let name = match command {
        HashCommand::Hash(a) => format!("HASH {}", a.name()),
        HashCommand::X(a) => format!("X{}", a.name().replace('-', "")),
    };
    let mut hashers = Hashers::new(Some(command.algo()));
    hashers.update(FIRST);
    let ours = hashers.finish();
    match conn.hash(path).await {
        Ok(Some((algo, theirs))) if ours.get(algo) == Some(theirs.as_str()) => {
            format!("{name} (matches the bytes sent)")
        }
        Ok(Some((algo, theirs))) => {
            format!(
                "{name} answers {theirs}, not the {} of the bytes sent: not used",
                algo.name()
            )
        }
        Ok(None) => format!("{name} listed in FEAT, but gave no digest"),
        Err(e) => format!("{name} listed in FEAT, but failed: {e}"),
    }
}

/// Whether the server keeps the bytes around a write at an offset (`write_at::probe`) and lets
/// two such writes run at once (`write_at::concurrent`, on a second connection), and so
/// whether big uploads may go in ranges over several connections.
async fn try_offset(
    conn: &mut Ftps,
    path: &str,
    data: &mut Tally,
    (server, tls): (&Server, &TlsContext),
) -> String {
    let one_stream = "uploads go in one stream";
    match write_at::probe(conn, path).await {
        Ok(WriteAt::Keeps) => {
            data.opened += 4;
            let at_once = match Ftps::connect(server, tls).await {
                Ok(mut second) => write_at::concurrent(conn, &mut second, path, CONCURRENT_WAIT).await,
                Err(e) => Err(e),
            };
            match at_once {
                Ok(true) => "works (writes past the end and inside the file land where sent, two at \
                             once too): uploads from `segment_from` on go in ranges where the \
                             server's hash or `verify: download` checks the whole"
                    .into(),
                Ok(false) => format!(
                    "writes land where sent, but the server lets one upload into a file at a time \
                     (vsftpd: `lock_upload_files=NO` allows more): {one_stream}"
                ),
                Err(e) => format!("writes land where sent; the test of two at once failed: {e}"),
            }
        }
        Ok(WriteAt::Refused(reply)) => {
            format!("refused ({reply}): {one_stream}")
        }
        Ok(WriteAt::Cuts) => {
            data.opened += 4;
            format!("the server cuts the file at the offset: {one_stream}")
        }
        Ok(WriteAt::Garbled(n)) => {
            data.opened += 4;
            format!("the file reads back as {n} bytes, not what was written: {one_stream}")
        }
        Err(e) => {
            data.failed.push(e.to_string());
            format!("failed: {e}")
        }
    }
}
