//! `ftps-sync check --trust`: trust on first use. Shows the certificate the server presents
//! and, once the user confirms (or `--yes`), pins it in the config file. A certificate the
//! system already trusts is not pinned without `--force`: a pin breaks at the next renewal.

use std::io::{BufRead, IsTerminal, Write};

use crate::config::{Config, parse_fingerprint, pin_in_file};
use crate::error::{Error, Result, TlsFailure};
use crate::remote::ftps::Ftps;
use crate::remote::ftps::cert::CertInfo;
use crate::remote::ftps::tls::TlsContext;

pub async fn trust(config: &Config, yes: bool, force: bool) -> Result<u8> {
    // What the server presents, and whether it verifies without any pin.
    let mut unpinned = config.server.clone();
    unpinned.fingerprint_sha256 = None;
    let tls = TlsContext::new(&unpinned)?;
    let attempt = Ftps::connect(&unpinned, &tls).await;
    let Some(der) = tls.seen_certificate() else {
        // No certificate came: the failure was before TLS (no answer, TLS refused).
        return Err(attempt
            .err()
            .unwrap_or_else(|| Error::Internal("connected over TLS without seeing a certificate".into())));
    };
    let verified = match attempt {
        Ok(mut conn) => {
            conn.quit().await;
            true
        }
        Err(e) if e.tls_failure() == Some(TlsFailure::Certificate) => false,
        // Refused after the handshake (a wrong password): the certificate was verified.
        Err(Error::Login { .. } | Error::TooManyConnections { .. }) => true,
        Err(e) => return Err(e),
    };
    let info = CertInfo::of(der.as_ref())
        .ok_or_else(|| Error::Internal("the server's certificate cannot be read".into()))?;
    let s = &config.server;
    say!("server       {}:{}", s.host, s.port);
    say!("subject      {}", info.subject);
    let issuer = if info.self_signed() {
        "(self-signed)".to_owned()
    } else {
        info.issuer.clone()
    };
    say!("issuer       {issuer}");
    say!(
        "valid        {} to {}",
        info.not_before.format("%Y-%m-%d"),
        info.not_after.format("%Y-%m-%d")
    );
    say!("fingerprint  SHA-256 {}", info.fingerprint);
    if let Err(why) = info.valid_at(chrono::Utc::now()) {
        say!("warning      this certificate {why}");
    }
    let fingerprint = parse_fingerprint(&info.fingerprint);
    match s.fingerprint_sha256 {
        Some(pinned) if Some(pinned) == fingerprint => {
            say!("already pinned in {}: nothing to do", config.source.display());
            return Ok(0);
        }
        Some(pinned) => say!(
            "the server's certificate changed: {} pins {}",
            config.source.display(),
            crate::config::format_fingerprint(&pinned)
        ),
        None => {}
    }
    // A pin that no longer matches is replaced even for a trusted certificate: left, it would
    // refuse every connection.
    let stale_pin = s.fingerprint_sha256.is_some();
    if verified && !force && !stale_pin {
        say!(
            "this certificate is trusted already (by the system's authorities or ca_file), so no pin \
             is needed. A pin would break when the certificate is renewed (Let's Encrypt renews every \
             90 days). To pin it all the same: ftps-sync check --trust --force"
        );
        return Ok(0);
    }
    if !yes && !confirmed(&format!("Pin this certificate in {}?", config.source.display()))? {
        say!("nothing changed");
        return Ok(1);
    }
    pin_in_file(&config.source, &info.fingerprint)?;
    say!(
        "pinned: {} now says under server:  fingerprint_sha256: \"{}\"",
        config.source.display(),
        info.fingerprint
    );
    Ok(0)
}

/// Asks `question` on the terminal; only "y" or "yes" is a yes.
fn confirmed(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "not asking without a terminal: check the certificate above, then run again with --yes".into(),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(crate::error::system("read the answer from the terminal"))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
