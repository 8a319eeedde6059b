//! Connecting: TCP, TLS (explicit or implicit), login, and what FEAT offers.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use suppaftp::tokio::AsyncTlsConnector;
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpResult, Mode, Status};
use tokio::net::TcpStream;

use super::data::{DIAL_NONE, HANDSHAKE_FULL, HANDSHAKE_NONE, HANDSHAKE_RESUMED, dialler};
use super::reply::{reply_code, reply_text, within};
use super::resume::DataSession;
use super::sent::{SentTls, ShutdownError};
use super::{Features, Ftps, HashCommand, ListingMode, MtimeSupport, Stream};
use crate::config::{Server, TlsMode};
use crate::error::{Error, Result, TlsFailure};
use crate::remote::ftps::tls::{SessionStore, TlsContext, TlsInfo};
use crate::remote::learned::Versions;

/// TLS connector that records what was negotiated on the control connection.
struct Connector {
    inner: tokio_rustls::TlsConnector,
    info: Arc<Mutex<Option<TlsInfo>>>,
    /// Why the handshake failed: suppaftp passes only a message on.
    failure: Arc<Mutex<Option<TlsFailure>>>,
    /// How the last handshake went (`HANDSHAKE_*`): data connections use this connector too.
    handshake: Arc<AtomicU8>,
    shutdown: ShutdownError,
    context: TlsContext,
}

/// What kind of failure a handshake error is.
fn classify(e: &std::io::Error) -> TlsFailure {
    // Garbled: what libunftp's early clear-text answer, or a cut connection, looks like.
    use std::io::ErrorKind;
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        // `General` is how our verifier refuses a pin with its own words (see `tls`).
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::General(_)) => TlsFailure::Certificate,
        Some(
            rustls::Error::PeerIncompatible(_)
            | rustls::Error::AlertReceived(
                rustls::AlertDescription::ProtocolVersion
                | rustls::AlertDescription::HandshakeFailure
                | rustls::AlertDescription::InsufficientSecurity,
            ),
        ) => TlsFailure::Incompatible,
        Some(
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. },
        ) => TlsFailure::Garbled,
        Some(_) => TlsFailure::Other,
        None => match e.kind() {
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::InvalidData => TlsFailure::Garbled,
            _ => TlsFailure::Other,
        },
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

#[async_trait::async_trait]
impl AsyncTlsConnector for Connector {
    type Stream = SentTls;

    async fn connect(&self, domain: &str, stream: TcpStream) -> FtpResult<SentTls> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_owned())
            .map_err(|e| FtpError::SecureError(format!("bad server name {domain:?}: {e}")))?;
        let tls = self.inner.connect(name, stream).await.map_err(|e| {
            if let Ok(mut failure) = self.failure.lock() {
                *failure = Some(classify(&e));
            }
            FtpError::SecureError(self.context.explain(&e, domain))
        })?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.handshake.store(
            if resumed {
                HANDSHAKE_RESUMED
            } else {
                HANDSHAKE_FULL
            },
            Ordering::SeqCst,
        );
        if let Ok(mut info) = self.info.lock()
            && info.is_none()
        {
            let (_, conn) = tls.get_ref();
            *info = Some(TlsInfo {
                version: conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default(),
                cipher: conn
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default(),
                // This connection's own: the context's last seen may be another's.
                fingerprint: conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| crate::remote::ftps::cert::fingerprint(c.as_ref()))
                    .unwrap_or_default(),
            });
        }
        Ok(SentTls::new(tls, self.shutdown.clone()))
    }
}

impl Ftps {
    /// Connects, secures, logs in and probes the server. Every failure here is fatal for the
    /// pass: wrong address, TLS refused or untrusted, wrong password.
    ///
    /// A TLS handshake that breaks on garbage (not on a certificate) is tried again on a new
    /// connection, five times at most, waiting 20 ms and doubling: libunftp 0.24 can read the
    /// ClientHello as a command when it arrives before its own switch to TLS, and answers in
    /// clear text. On a loaded machine that happened three times in a row (one engine-suite run
    /// in 40 here). Nothing is ever sent unprotected, so trying again is safe.
    ///
    /// TLS 1.2 learned for the server (`learned`) is given up, never the other way round, when
    /// the handshake at TLS 1.2 fails (the server refuses it, or extended master secret), or
    /// when the server is no longer the one it was learned of: then it connects again at once.
    pub async fn connect(server: &Server, tls: &TlsContext) -> Result<Ftps> {
        let memory = tls.memory();
        let mut attempt = 0u32;
        // Once TLS 1.2 was given up in this call, the config's versions for the rest of it.
        let mut configured = false;
        loop {
            attempt += 1;
            let versions = if configured {
                memory.configured()
            } else {
                memory.versions()
            };
            match Self::connect_once(server, tls, versions).await {
                Err(Error::Tls { kind, message, .. })
                    if versions == Versions::Fallback12 && kind != TlsFailure::Certificate =>
                {
                    memory.fallback_refused(&message, kind == TlsFailure::Incompatible);
                    configured = true;
                }
                Err(
                    e @ Error::Tls {
                        kind: TlsFailure::Garbled,
                        ..
                    },
                ) if attempt < 6 => {
                    tracing::debug!("TLS handshake broke ({e}); connecting again");
                    tokio::time::sleep(Duration::from_millis(20 << (attempt - 1))).await;
                }
                Ok(mut ftps) => {
                    let holds = memory.still_holds(&ftps.identity());
                    if memory.take_forgotten() {
                        // What the run found out about resuming is to be found out again.
                        tls.quirks().resumption.reset();
                    }
                    if holds || versions != Versions::Fallback12 {
                        return Ok(ftps);
                    }
                    ftps.quit().await;
                    configured = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect_once(server: &Server, tls: &TlsContext, versions: Versions) -> Result<Ftps> {
        let addr = format!("{}:{}", server.host, server.port);
        let t = server.timeout;
        let connect_err = |message: String| Error::Connect {
            server: addr.clone(),
            message,
        };
        let tls_err = |kind: TlsFailure, message: String| Error::Tls {
            server: addr.clone(),
            kind,
            message,
        };
        let info = Arc::new(Mutex::new(None));
        let failure = Arc::new(Mutex::new(None));
        let failed = || failure.lock().ok().and_then(|f| *f).unwrap_or(TlsFailure::Other);
        let sessions = Arc::new(SessionStore::default());
        let handshake = Arc::new(AtomicU8::new(HANDSHAKE_NONE));
        let shutdown = ShutdownError::default();
        let connector = || -> Result<Connector> {
            Ok(Connector {
                inner: tokio_rustls::TlsConnector::from(tls.client_config(sessions.clone(), versions)?),
                info: info.clone(),
                failure: failure.clone(),
                handshake: handshake.clone(),
                shutdown: shutdown.clone(),
                context: tls.clone(),
            })
        };
        // Explicit mode learns it from the socket below; implicit mode from an address literal.
        let mut peer_v6 = server.host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6());
        let stream = match server.tls {
            TlsMode::Implicit => {
                let fut = Stream::connect_secure_implicit(addr.as_str(), connector()?, &server.host);
                let mut stream = match tokio::time::timeout(t, fut).await {
                    Err(_) => return Err(connect_err(format!("no TLS greeting within {}s", t.as_secs()))),
                    Ok(Err(FtpError::ConnectionError(e))) => return Err(connect_err(e.to_string())),
                    // A plain-text greeting where a handshake was expected.
                    Ok(Err(FtpError::SecureError(m))) if failed() == TlsFailure::Garbled => {
                        return Err(tls_err(
                            TlsFailure::Garbled,
                            format!(
                                "{m}; the server did not answer in TLS: it may expect `tls: explicit` \
                                 (usually on port 21)"
                            ),
                        ));
                    }
                    Ok(Err(FtpError::SecureError(m))) => return Err(tls_err(failed(), m)),
                    Ok(Err(e)) => return Err(connect_err(e.to_string())),
                    Ok(Ok(s)) => s,
                };
                // suppaftp's implicit connect does not protect the data channel by itself.
                for cmd in ["PBSZ 0", "PROT P"] {
                    within(
                        t,
                        "TLS setup",
                        "",
                        stream.custom_command(cmd, &[Status::CommandOk]),
                    )
                    .await
                    .map_err(|e| tls_err(TlsFailure::Refused, format!("{cmd} refused: {e}")))?;
                }
                stream
            }
            TlsMode::Explicit | TlsMode::None => {
                let tcp = match tokio::time::timeout(t, TcpStream::connect(addr.as_str())).await {
                    Err(_) => return Err(connect_err(format!("no answer within {}s", t.as_secs()))),
                    Ok(Err(e)) => return Err(connect_err(e.to_string())),
                    Ok(Ok(s)) => s,
                };
                let _ = tcp.set_nodelay(true);
                peer_v6 = tcp.peer_addr().is_ok_and(|a| a.is_ipv6());
                let stream = match tokio::time::timeout(t, Stream::connect_with_stream(tcp)).await {
                    Err(_) => {
                        return Err(connect_err(format!(
                            "no greeting within {}s; if the server expects TLS from the first byte \
                             (usually on port 990), set `tls: implicit`",
                            t.as_secs()
                        )));
                    }
                    // A greeting other than 220 (a 230 "already logged in" before TLS, a 421):
                    // we never go on to send anything, let alone USER.
                    Ok(Err(FtpError::UnexpectedResponse(r))) if reply_code(&r.body) == Some(421) => {
                        return Err(Error::TooManyConnections {
                            server: addr.clone(),
                            reply: reply_text(&r.body),
                        });
                    }
                    Ok(Err(FtpError::UnexpectedResponse(r))) => {
                        return Err(connect_err(format!(
                            "unexpected greeting: {}",
                            reply_text(&r.body)
                        )));
                    }
                    Ok(Err(e)) => return Err(connect_err(e.to_string())),
                    Ok(Ok(s)) => s,
                };
                if server.tls == TlsMode::Explicit {
                    match tokio::time::timeout(t, stream.into_secure(connector()?, &server.host)).await {
                        Err(_) => {
                            return Err(tls_err(
                                TlsFailure::Timeout,
                                format!("no TLS handshake within {}s", t.as_secs()),
                            ));
                        }
                        Ok(Err(FtpError::UnexpectedResponse(r))) => {
                            return Err(tls_err(
                                TlsFailure::Refused,
                                format!(
                                    "the server refused TLS ({}); ftps-sync never falls back to plain FTP",
                                    reply_text(&r.body)
                                ),
                            ));
                        }
                        Ok(Err(FtpError::SecureError(m))) => return Err(tls_err(failed(), m)),
                        // Cut before the handshake (while AUTH TLS was answered).
                        Ok(Err(FtpError::ConnectionError(io))) => {
                            return Err(tls_err(classify(&io), io.to_string()));
                        }
                        Ok(Err(e)) => return Err(tls_err(failed(), e.to_string())),
                        Ok(Ok(s)) => s,
                    }
                } else {
                    stream
                }
            }
        };
        let mut stream = stream;
        let welcome = stream.get_welcome_msg().unwrap_or_default().to_owned();
        match tokio::time::timeout(t, stream.login(server.user.as_str(), server.password.expose())).await {
            Err(_) => return Err(connect_err(format!("no answer to login within {}s", t.as_secs()))),
            Ok(Err(FtpError::UnexpectedResponse(r))) if reply_code(&r.body) == Some(421) => {
                return Err(Error::TooManyConnections {
                    server: addr.clone(),
                    reply: reply_text(&r.body),
                });
            }
            Ok(Err(FtpError::UnexpectedResponse(r))) => {
                return Err(Error::Login {
                    server: addr.clone(),
                    user: server.user.clone(),
                    reply: reply_text(&r.body),
                });
            }
            Ok(Err(e)) => return Err(connect_err(format!("login: {e}"))),
            Ok(Ok(())) => {}
        }
        // The stream starts in ASCII mode, where LF becomes CRLF.
        within(t, "TYPE I", "", stream.transfer_type(FileType::Binary)).await?;
        let dial = Arc::new(AtomicU8::new(DIAL_NONE));
        if server.passive {
            stream.set_passive_nat_workaround(true);
            stream = stream.passive_stream_builder(dialler(dial.clone(), t));
        } else {
            stream = stream.active_mode(t);
        }
        let tls_info = info.lock().ok().and_then(|i| i.clone());
        let tls13 = tls_info.as_ref().is_some_and(|i| i.version == "TLSv1_3");
        let mut ftps = Ftps {
            stream,
            server: addr,
            timeout: t,
            features: Features::default(),
            listing: ListingMode::List,
            hash: None,
            mtime: MtimeSupport::None,
            tls: tls_info,
            welcome,
            list_all: true,
            limiter: None,
            read_buf: Vec::new(),
            broken: false,
            shutdown,
            epsv: false,
            epsv_unconfirmed: None,
            peer_v6,
            dial,
            quirks: tls.quirks(),
            memory: tls.memory().clone(),
            resume: DataSession::new(handshake, tls.memory().suspected()),
            sessions,
            tls13,
            cwd: None,
            config: server.clone(),
            context: tls.clone(),
        };
        ftps.probe(server.passive).await?;
        Ok(ftps)
    }

    async fn probe(&mut self, passive: bool) -> Result<()> {
        let (code, text) = self.raw("FEAT", "FEAT", "").await?;
        if code == Some(211) {
            self.features = Features::parse(&text);
        }
        tracing::debug!(server = %self.server, features = ?self.features.lines, "FEAT");
        let f = &self.features;
        if passive {
            // EPSV uses the control connection's address by design; PASV's address is
            // ignored for the same reason (NAT, bounce attacks).
            self.epsv = f.has("EPSV") && !self.quirks.epsv_broken();
            self.stream.set_mode(if self.epsv {
                Mode::ExtendedPassive
            } else {
                Mode::Passive
            });
        }
        self.listing = f.listing();
        self.mtime = f.mtime();
        self.hash = f.hash();
        // Only send OPTS for what FEAT advertised (libunftp drops the connection otherwise).
        if let Some(HashCommand::Hash(algo)) = self.hash {
            let (code, _) = self
                .raw(&format!("OPTS HASH {}", algo.name()), "OPTS HASH", "")
                .await?;
            if code != Some(200) {
                self.hash = None;
            }
        }
        if let Some(opts) = self.features.mlst_opts() {
            // Without `unique` a move on the server is recognised only by the server's hash.
            let _ = self.raw(&opts, "OPTS MLST", "").await?;
        }
        if self.features.has("UTF8") {
            // Pure-FTPd answers 504 although it lists UTF8: harmless, names are UTF-8 anyway.
            let _ = self.raw("OPTS UTF8 ON", "OPTS UTF8", "").await?;
        }
        Ok(())
    }
}
