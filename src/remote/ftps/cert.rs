//! What a server certificate says, in words a user checks before trusting it (`check --trust`),
//! and its validity dates (a self-signed certificate trusted through `ca_file`).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::format_fingerprint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the DER, as `AB:CD:...` (what `fingerprint_sha256` takes).
    pub fingerprint: String,
}

impl CertInfo {
    /// `None` if `der` is no X.509 certificate.
    pub fn of(der: &[u8]) -> Option<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let time = |t: &x509_parser::time::ASN1Time| DateTime::from_timestamp(t.timestamp(), 0);
        let validity = cert.validity();
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(&validity.not_before)?,
            not_after: time(&validity.not_after)?,
            fingerprint: fingerprint(der),
        })
    }

    pub fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }

    /// `Err` with why, if the certificate is not valid at `now`.
    pub fn valid_at(&self, now: DateTime<Utc>) -> Result<(), String> {
        let day = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        if now < self.not_before {
            return Err(format!(
                "is not valid before {} (is this machine's clock right?)",
                day(self.not_before)
            ));
        }
        if now > self.not_after {
            return Err(format!("expired on {}", day(self.not_after)));
        }
        Ok(())
    }
}

pub fn fingerprint(der: &[u8]) -> String {
    format_fingerprint(&Sha256::digest(der))
}
