//! `ftps-sync check`: connect and report what a user needs to trust and tune the server.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::remote::ftps::{Ftps, HashCommand, ListingMode, MtimeSupport};
use crate::remote::tls::TlsContext;

pub async fn check(config: &Config) -> Result<u8> {
    let s = &config.server;
    let tls = TlsContext::new(s)?;
    say!("server       {}:{} ({:?} TLS)", s.host, s.port, s.tls);
    let mut conn = match Ftps::connect(s, &tls).await {
        Ok(c) => c,
        Err(e) => {
            if let (Error::Tls { .. }, Some(fp)) = (&e, tls.seen_fingerprint()) {
                say!("certificate  SHA-256 {fp} (NOT trusted)");
                say!(
                    "             if you trust this server, pin it under server:  fingerprint_sha256: \"{fp}\""
                );
            }
            return Err(e);
        }
    };
    if let Some(t) = &conn.tls {
        say!("tls          {} {}", t.version, t.cipher);
        say!("certificate  SHA-256 {}", t.fingerprint);
        say!(
            "             to pin it, add under server:  fingerprint_sha256: \"{}\"",
            t.fingerprint
        );
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
    say!(
        "mtime        {}",
        match conn.mtime {
            MtimeSupport::Mfmt => "MFMT",
            MtimeSupport::MdtmWrite => "MDTM (2-argument form, tried on first upload)",
            MtimeSupport::None => "cannot be set",
        }
    );
    say!(
        "hash         {}",
        match conn.hash {
            Some(HashCommand::Hash(a)) => format!("HASH {}", a.name()),
            Some(HashCommand::X(a)) => format!("X{}", a.name().replace('-', "")),
            None => "none (uploads verified by size)".into(),
        }
    );
    let mut code = 0;
    for f in &config.folders {
        match conn.list_dir(&f.remote).await {
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
    conn.quit().await;
    Ok(code)
}
