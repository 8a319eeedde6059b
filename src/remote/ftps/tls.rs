//! TLS policy: which certificates we trust, pinning, client certificates, TLS versions, and one
//! session cache per control connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue, WebPkiServerVerifier,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use super::Quirks;
use crate::config::{Server, format_fingerprint};
use crate::error::{Error, Result, TlsFailure};
use crate::remote::learned::{Keep, Learned, ServerMemory, Versions};

/// What we learned about the server's TLS while connecting.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// SHA-256 of the server certificate (DER), as `AB:CD:...`.
    pub fingerprint: String,
}

/// Built once per run from the config, shared by every connection of it.
#[derive(Debug, Clone)]
pub struct TlsContext {
    provider: Arc<CryptoProvider>,
    verifier: Arc<Verifier>,
    client_auth: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// Not TLS, but of the same lifetime: what the run learned about the server.
    quirks: Arc<Quirks>,
    /// What is known of the server across runs, the TLS version to offer among it.
    memory: Arc<ServerMemory>,
}

impl TlsContext {
    /// A context that knows nothing of the server from earlier runs, and keeps nothing.
    pub fn new(server: &Server) -> Result<TlsContext> {
        Self::remembering(server, None, None)
    }

    /// A context that starts from what earlier runs learned of the server, and hands what
    /// this one learns to `keep`.
    pub fn remembering(
        server: &Server,
        remembered: Option<Learned>,
        keep: Option<Keep>,
    ) -> Result<TlsContext> {
        let provider = Arc::new(provider());
        let tls_err = |message: String| Error::Tls {
            server: server.host.clone(),
            kind: TlsFailure::Other,
            message,
        };
        let mut extra_roots = Vec::new();
        if let Some(ca) = &server.ca_file
            && server.fingerprint_sha256.is_none()
        {
            extra_roots = CertificateDer::pem_file_iter(ca)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::config(ca, "server.ca_file", format!("{}: {e}", ca.display())))?;
            if extra_roots.is_empty() {
                return Err(Error::config(ca, "server.ca_file", "no certificate in this file"));
            }
        }
        let extra = if extra_roots.is_empty() {
            None
        } else {
            Some(webpki_verifier(&extra_roots, false, &provider).map_err(tls_err)?)
        };
        let client_auth = match (&server.client_cert, &server.client_key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| Error::config(cert, "server.client_cert", e.to_string()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| Error::config(key, "server.client_key", e.to_string()))?;
                Some((chain, Arc::new(key)))
            }
            _ => None,
        };
        Ok(TlsContext {
            verifier: Arc::new(Verifier {
                extra,
                extra_roots,
                with_system: OnceLock::new(),
                pin: server.fingerprint_sha256,
                provider: provider.clone(),
                seen: Mutex::new(None),
            }),
            provider,
            client_auth,
            quirks: Arc::default(),
            memory: Arc::new(ServerMemory::new(server, remembered, keep)),
        })
    }

    /// What this run learned about the server, for every connection of it.
    pub fn quirks(&self) -> Arc<Quirks> {
        self.quirks.clone()
    }

    /// What is known of the server across runs.
    pub fn memory(&self) -> &Arc<ServerMemory> {
        &self.memory
    }

    /// A client config for one control connection and its data connections, offering
    /// `versions` and resuming from `sessions`, which no other control connection shares: the
    /// data connections of one control connection resume its session, never another's
    /// (ProFTPD refuses that; rclone #7234).
    pub fn client_config(
        &self,
        sessions: Arc<SessionStore>,
        versions: Versions,
    ) -> Result<Arc<ClientConfig>> {
        let offered: &[&rustls::SupportedProtocolVersion] = match versions {
            Versions::Only12 | Versions::Fallback12 => &[&rustls::version::TLS12],
            Versions::Only13 => &[&rustls::version::TLS13],
            Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(offered)
            .map_err(|e| Error::Tls {
                server: String::new(),
                kind: TlsFailure::Other,
                message: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone());
        let config = match &self.client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| Error::Tls {
                    server: String::new(),
                    kind: TlsFailure::Other,
                    message: format!("client certificate: {e}"),
                })?,
            None => builder.with_no_client_auth(),
        };
        let mut config = config;
        config.resumption = Resumption::store(sessions);
        // A TLS 1.2 session resumed without extended master secret is open to the
        // triple-handshake attack, which would break the binding of data connections to their
        // control connection that resumption gives. A user's own cap (`tls_max_version`) leaves
        // it to the server, as it always did.
        config.require_ems = versions == Versions::Fallback12;
        Ok(Arc::new(config))
    }

    /// The fingerprint of the last certificate the server showed, even one we refused.
    pub fn seen_fingerprint(&self) -> Option<String> {
        self.seen_certificate()
            .map(|der| super::cert::fingerprint(der.as_ref()))
    }

    /// The last certificate the server showed, even one we refused.
    pub fn seen_certificate(&self) -> Option<CertificateDer<'static>> {
        self.verifier.seen.lock().ok()?.clone()
    }

    /// A handshake that failed, in plain words with the next step: `e` as the TLS stream
    /// gave it.
    pub fn explain(&self, e: &std::io::Error, host: &str) -> String {
        let seen = self.seen_fingerprint();
        match (e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()), &seen) {
            // Our verifier's own words (a changed pin, an expired `ca_file` certificate).
            (Some(rustls::Error::General(words)), _) => words.clone(),
            (Some(rustls::Error::InvalidCertificate(c)), Some(seen)) => untrusted(c, host, seen),
            (_, Some(seen)) => format!("{e} (server certificate SHA-256 {seen})"),
            (_, None) => e.to_string(),
        }
    }
}

/// A certificate the verifier refused, in plain words, with the way out.
fn untrusted(c: &rustls::CertificateError, host: &str, seen: &str) -> String {
    use rustls::CertificateError as E;
    let pin = format!(
        "If you trust this server, pin its certificate: run `ftps-sync check --trust`, or add under \
         server:  fingerprint_sha256: \"{seen}\""
    );
    match c {
        E::Expired | E::ExpiredContext { .. } => {
            format!("the server's certificate has expired ({c}); the server needs a new one")
        }
        E::NotValidYet | E::NotValidYetContext { .. } => {
            format!("the server's certificate is not valid yet ({c}): is this machine's clock right?")
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => format!(
            "the server's certificate is not valid for the name {host} ({c}): set server.host to a name \
             it is valid for. {pin}"
        ),
        E::UnknownIssuer => format!(
            "the server's certificate is not trusted: it is signed by an authority this machine does \
             not know. {pin}, or put that authority's certificate in server.ca_file"
        ),
        _ if format!("{c:?}").contains("CaUsedAsEndEntity") => format!(
            "the server's certificate is not trusted: it is self-signed. {pin}, or put the certificate \
             itself in server.ca_file"
        ),
        _ => format!("the server's certificate is not trusted ({c}). {pin}"),
    }
}

/// The TLS sessions of one control connection, for its data connections to resume.
///
/// A TLS 1.2 session is resumed again and again. A TLS 1.3 ticket is spent by the handshake
/// that uses it (rustls offers each once, as RFC 8446 asks, and cannot copy one), so this
/// store counts the tickets it holds: OpenSSL servers send two after the control handshake;
/// vsftpd sends more on each data connection, ProFTPD none. With none left, a data connection
/// is a full handshake: servers that do not check take it, ProFTPD refuses it (`425`, "did not
/// reuse TLS session"), and from then on `Ftps` opens a fresh control connection first.
#[derive(Debug, Default)]
pub struct SessionStore {
    inner: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    /// Every TLS 1.3 ticket the server ever sent on this control connection or its data
    /// connections.
    received: usize,
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first; the newest is offered first.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

/// More tickets than a control connection's data connections could use before they expire.
const MAX_TLS13_TICKETS: usize = 16;

impl SessionStore {
    /// TLS 1.3 tickets left to resume with.
    pub fn tls13_tickets(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.tls13.len())
    }

    /// TLS 1.3 tickets received so far, spent or not.
    pub fn tickets_received(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.received)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Sessions) -> T) -> Option<T> {
        self.inner.lock().ok().map(|mut s| f(&mut s))
    }
}

// One store per control connection, so one server name: the name is not needed as a key.
impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.with(|s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(|s| s.kx_hint).flatten()
    }

    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(|s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(|s| s.tls12.clone()).flatten()
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.with(|s| s.tls12 = None);
    }

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with(|s| {
            if s.tls13.len() >= MAX_TLS13_TICKETS {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
            s.received += 1;
        });
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.with(|s| s.tls13.pop_back()).flatten()
    }
}

/// ring, with the AES-128-GCM suites offered first: as safe, and cheaper for the server to
/// decrypt (vsftpd took uploads about twice as fast with them here).
fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| {
        let name = format!("{:?}", s.suite());
        (!name.contains("AES_128_GCM"), !name.starts_with("TLS13"))
    });
    p
}

/// A verifier over `roots`, plus the system's trust store when `with_system`.
fn webpki_verifier(
    roots: &[CertificateDer<'static>],
    with_system: bool,
    provider: &Arc<CryptoProvider>,
) -> std::result::Result<Arc<WebPkiServerVerifier>, String> {
    let mut store = RootCertStore::empty();
    if with_system {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = store.add(cert);
        }
    }
    for cert in roots {
        store.add(cert.clone()).map_err(|e| format!("ca_file: {e}"))?;
    }
    if store.is_empty() {
        return Err(
            "no trusted CA certificates found on this system: set server.ca_file or server.fingerprint_sha256".into(),
        );
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| e.to_string())
}

/// CA verification (system roots + `ca_file`) or a SHA-256 pin of the server certificate.
///
/// The system trust store is loaded only when `ca_file` alone does not verify the server:
/// reading it takes longer than a whole no-change pass over a small folder. The trust is the
/// same: a chain is accepted if it leads to a `ca_file` root or a system root.
#[derive(Debug)]
struct Verifier {
    extra: Option<Arc<WebPkiServerVerifier>>,
    extra_roots: Vec<CertificateDer<'static>>,
    with_system: OnceLock<std::result::Result<Arc<WebPkiServerVerifier>, String>>,
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let fp: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.clone().into_owned());
        }
        match &self.pin {
            Some(pin) if *pin == fp => return Ok(ServerCertVerified::assertion()),
            Some(pin) => {
                return Err(rustls::Error::General(format!(
                    "the server's certificate changed: fingerprint_sha256 expects {}, the server \
                     presented {}. If the change is expected (a renewed certificate), check the new \
                     one and pin it with `ftps-sync check --trust`",
                    format_fingerprint(pin),
                    format_fingerprint(&fp)
                )));
            }
            None => {}
        }
        // The server's own self-signed certificate in `ca_file` (what `openssl req -x509`
        // makes; curl's and lftp's --cacert take it): trusted as exactly that certificate, for
        // its validity dates but whatever the host name, as a pin would be.
        if self
            .extra_roots
            .iter()
            .any(|root| root.as_ref() == end_entity.as_ref())
        {
            let now = chrono::DateTime::from_timestamp(now.as_secs() as i64, 0).unwrap_or_default();
            return match super::cert::CertInfo::of(end_entity.as_ref()).map(|c| c.valid_at(now)) {
                Some(Ok(())) => Ok(ServerCertVerified::assertion()),
                Some(Err(why)) => Err(rustls::Error::General(format!(
                    "the server's certificate, trusted as the one in ca_file, {why}"
                ))),
                None => Err(rustls::Error::General(
                    "the certificate in ca_file that the server presented cannot be read".into(),
                )),
            };
        }
        if let Some(extra) = &self.extra
            && let Ok(ok) =
                extra.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            return Ok(ok);
        }
        match self
            .with_system
            .get_or_init(|| webpki_verifier(&self.extra_roots, true, &self.provider))
        {
            Ok(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            Err(e) => Err(rustls::Error::General(e.clone())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_learned_fallback_requires_extended_master_secret() {
        let pin = "  fingerprint_sha256: \"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\"\n";
        let config = crate::config::for_tests(pin);
        let tls = TlsContext::new(&config.server).expect("tls");
        let made = |v| tls.client_config(Arc::default(), v).expect("client config");
        // TLS 1.2 alone there: the interop test on ProFTPD sees no TLS 1.3 session.
        assert!(made(Versions::Fallback12).require_ems);
        for v in [Versions::Both, Versions::Only12, Versions::Only13] {
            assert!(!made(v).require_ems, "{v:?}");
        }
    }
}
