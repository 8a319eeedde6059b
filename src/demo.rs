//! The embedded loopback FTPS server (libunftp + a throwaway rcgen certificate) behind
//! `ftps-sync demo`, also used by the fast test suite as a real FTPS server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libunftp::options::{FtpsRequired, TlsFlags};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sha2::{Digest, Sha256};
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};
use unftp_sbe_fs::Filesystem;

use crate::config::format_fingerprint;
use crate::error::{Error, Result};

/// A throwaway certificate authority and a server certificate it signed.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the server certificate, as `fingerprint_sha256` takes it.
    pub fingerprint: String,
    /// A client certificate signed by the same CA, for servers that require one.
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl TestPki {
    /// A CA and a server certificate for `localhost` and `127.0.0.1`.
    pub fn new() -> Result<TestPki> {
        let err = |e: rcgen::Error| Error::Internal(format!("cannot make a test certificate: {e}"));
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ftps-sync throwaway CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?).map_err(err)?;
        let key = KeyPair::generate().map_err(err)?;
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(err)?
            .signed_by(&key, &ca)
            .map_err(err)?;
        let client_key = KeyPair::generate().map_err(err)?;
        let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ftps-sync test client");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca).map_err(err)?;
        Ok(TestPki {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            fingerprint: format_fingerprint(&Sha256::digest(leaf.der())),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// Writes `ca.pem`, `server.pem`, `server.key`, `client.pem` and `client.key` into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        for (name, text) in [
            ("ca.pem", &self.ca_pem),
            ("server.pem", &self.cert_pem),
            ("server.key", &self.key_pem),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(Error::local("write", &p))?;
        }
        Ok(())
    }
}

/// One user, one password.
#[derive(Debug)]
struct OneUser {
    user: String,
    password: String,
}

#[async_trait::async_trait]
impl Authenticator for OneUser {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> std::result::Result<Principal, AuthenticationError> {
        if username != self.user {
            return Err(AuthenticationError::BadUser);
        }
        if creds.password.as_deref() != Some(self.password.as_str()) {
            return Err(AuthenticationError::BadPassword);
        }
        Ok(Principal {
            username: username.to_owned(),
        })
    }
}

/// A running embedded FTPS server; stops accepting when dropped.
pub struct EmbeddedServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// What the server offers on TLS.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTls {
    /// Offer TLS 1.2 only.
    pub tls12_only: bool,
    /// Passive ports to use instead of 49152-65535 (a test proxy needs to know them).
    pub passive_ports: Option<(u16, u16)>,
}

/// Serves `root` over explicit FTPS (TLS required on control and data) on `127.0.0.1`, a random
/// port, with the certificate in `pki_dir` (see `TestPki::write_to`).
pub async fn serve(
    root: &Path,
    pki_dir: &Path,
    user: &str,
    password: &str,
    tls: ServerTls,
) -> Result<EmbeddedServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(Error::local("listen on", "127.0.0.1:0"))?;
    let addr = listener
        .local_addr()
        .map_err(Error::local("listen on", "127.0.0.1:0"))?;
    let root = root.to_owned();
    let auth = Arc::new(OneUser {
        user: user.to_owned(),
        password: password.to_owned(),
    });
    let (cert, key) = (pki_dir.join("server.pem"), pki_dir.join("server.key"));
    let flags = if tls.tls12_only {
        TlsFlags::V1_2 | TlsFlags::RESUMPTION_SESS_ID
    } else {
        TlsFlags::V1_2 | TlsFlags::V1_3 | TlsFlags::RESUMPTION_SESS_ID | TlsFlags::RESUMPTION_TICKETS
    };
    let passive = tls.passive_ports.unwrap_or((49152, 65535));
    let serve_root = root.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let fs_root = serve_root.clone();
            let server = libunftp::ServerBuilder::with_authenticator(
                Box::new(move || Filesystem::new(fs_root.clone()).expect("the demo root exists")),
                auth.clone(),
            )
            .ftps(cert.clone(), key.clone())
            .ftps_tls_flags(flags)
            .ftps_required(FtpsRequired::All, FtpsRequired::All)
            .passive_ports(passive.0..=passive.1)
            .build();
            match server {
                Ok(server) => {
                    tokio::spawn(async move {
                        let _ = server.service(stream).await;
                    });
                }
                Err(e) => tracing::error!("embedded server: {e}"),
            }
        }
    });
    Ok(EmbeddedServer { addr, root, accept })
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::local("create directory", parent))?;
    }
    std::fs::write(path, text).map_err(Error::local("write", path))
}

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in read.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// `ftps-sync demo`: a real two-way sync against an embedded FTPS server on loopback.
pub async fn run_demo() -> Result<u8> {
    let base = tempfile::Builder::new()
        .prefix("ftps-sync-demo-")
        .tempdir()
        .map_err(Error::local("create", std::env::temp_dir()))?
        .keep();
    let local = base.join("local");
    let server_root = base.join("server");
    let remote_dir = server_root.join("shared");
    let pki_dir = base.join("pki");
    for d in [&local, &remote_dir, &pki_dir] {
        std::fs::create_dir_all(d).map_err(Error::local("create directory", d))?;
    }
    write_file(&local.join("notes.txt"), "written on this machine\n")?;
    write_file(&local.join("reports/2026/q3.csv"), "quarter,revenue\nq3,42\n")?;
    write_file(&local.join("todo.txt"), "local edit: buy milk\n")?;
    write_file(
        &remote_dir.join("from-the-server.txt"),
        "uploaded by someone else\n",
    )?;
    write_file(&remote_dir.join("docs/manual.txt"), "the server's manual\n")?;
    write_file(&remote_dir.join("todo.txt"), "remote edit: buy bread\n")?;

    let pki = TestPki::new()?;
    pki.write_to(&pki_dir)?;
    let password = format!("demo-{}", std::process::id());
    let password_file = base.join("password");
    write_file(&password_file, &password)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600));
    }
    let server = serve(&server_root, &pki_dir, "demo", &password, ServerTls::default()).await?;
    let config_path = base.join("ftps-sync.yaml");
    write_file(
        &config_path,
        &format!(
            "# Written by `ftps-sync demo`.\nserver:\n  host: 127.0.0.1\n  port: {port}\n  tls: explicit\n  user: demo\n  \
             password_file: password\n  ca_file: pki/ca.pem\nfolders:\n  - name: demo\n    local: {local}\n    \
             remote: /shared\n    direction: both\n    conflict: keep-both\nstate_dir: state\n",
            port = server.addr.port(),
            local = local.display(),
        ),
    )?;
    let config = crate::config::Config::load(&config_path)?;
    say!(
        "Embedded FTPS server on {} (explicit TLS, TLS required on control and data)",
        server.addr
    );
    say!("  server certificate SHA-256 {}", pki.fingerprint);
    say!("  local folder   {}", local.display());
    say!("  server folder  {} (served as /shared)", remote_dir.display());
    say!("");
    say!("First pass (two-way, keep-both on conflicts):");
    sync_all(&config).await?;
    say!("");
    say!("Second pass (nothing should move):");
    sync_all(&config).await?;
    say!("");
    let (l, r) = (tree(&local), tree(&remote_dir));
    say!("Local folder now holds:");
    for line in &l {
        say!("  {line}");
    }
    let same = l == r;
    say!("");
    say!(
        "The server folder holds {} entries: {}",
        r.len(),
        if same { "the same tree" } else { "A DIFFERENT TREE" }
    );
    say!(
        "Everything is kept in {} (config: {})",
        base.display(),
        config_path.display()
    );
    drop(server);
    Ok(if same { 0 } else { 1 })
}

/// One pass per folder, each report printed as it ends.
async fn sync_all(config: &crate::config::Config) -> Result<()> {
    let folders: Vec<_> = config.folders.iter().collect();
    let cancel = tokio_util::sync::CancellationToken::new();
    crate::signals::cancel_on_signal(cancel.clone());
    let connector = crate::remote::ftps::FtpsConnector::remembering(
        &config.server,
        crate::engine::learned::memory(config),
    )?;
    crate::engine::sync_all(
        config,
        &folders,
        &connector,
        &cancel,
        Default::default(),
        |outcome| match outcome {
            Ok(report) => say!("{report}"),
            Err(e) => eprintln!("error: {e}"),
        },
    )
    .await?;
    Ok(())
}
