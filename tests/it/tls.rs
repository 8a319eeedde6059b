//! Certificates are verified; a pin replaces CA checks; nothing falls back to plain FTP.

use ftps_sync::error::TlsFailure;

use crate::support::{Harness, pass};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let h = Harness::new().await;
    // No ca_file: the throwaway CA is not among the system roots.
    let config = h.config_yaml().load(&h.config_path());
    let err = pass(&config).await.expect_err("refused");
    assert_eq!(err.tls_failure(), Some(TlsFailure::Certificate), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    let message = err.to_string();
    // In plain words, with the way out: the exact line to add, and the command.
    assert!(message.contains("is not trusted"), "{message}");
    assert!(
        message.contains(&format!("fingerprint_sha256: \"{}\"", h.pki.fingerprint)),
        "{message}"
    );
    assert!(message.contains("ftps-sync check --trust"), "{message}");
    assert!(
        !message.contains("OtherError") && !message.contains("UnknownIssuer"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_pin_is_trusted_and_a_wrong_one_refused() {
    let h = Harness::new().await;
    let good = h
        .config_yaml()
        .server(&format!("  fingerprint_sha256: \"{}\"\n", h.pki.fingerprint))
        .load(&h.config_path());
    pass(&good).await.expect("the pinned certificate is accepted");
    let wrong = format!("{}00", &h.pki.fingerprint[..h.pki.fingerprint.len() - 2]);
    let wrong = if wrong == h.pki.fingerprint {
        wrong.replace("00", "11")
    } else {
        wrong
    };
    let bad = h
        .config_yaml()
        .server(&format!("  fingerprint_sha256: \"{wrong}\"\n"))
        .load(&h.config_path());
    let err = pass(&bad).await.expect_err("refused");
    assert_eq!(err.tls_failure(), Some(TlsFailure::Certificate), "{err:?}");
    // The pin expected against the certificate presented, each once.
    let message = err.to_string();
    assert!(message.contains("the server's certificate changed"), "{message}");
    assert_eq!(message.matches(&wrong).count(), 1, "{message}");
    assert_eq!(message.matches(&h.pki.fingerprint).count(), 1, "{message}");
    assert!(message.contains("check --trust"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_only_server_works() {
    let h = Harness::with_tls(ftps_sync::demo::ServerTls {
        tls12_only: true,
        ..Default::default()
    })
    .await;
    crate::support::put(&h.local, "a", "a");
    crate::support::put(&h.remote, "b", "b");
    let config = h.config("");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.uploaded + r.downloaded, 2);
    let capped = h
        .config_yaml()
        .ca_file("pki/ca.pem")
        .server("  tls_max_version: \"1.2\"\n")
        .load(&h.config_path());
    let again = pass(&capped).await.expect("pass");
    assert_eq!(again.uploaded + again.downloaded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_against_an_explicit_server_is_a_garbled_handshake() {
    let h = Harness::new().await;
    // The server greets in plain text where implicit TLS expects a handshake.
    let config = h
        .config_yaml()
        .ca_file("pki/ca.pem")
        .tls("implicit")
        .load(&h.config_path());
    let err = pass(&config).await.expect_err("refused");
    assert_eq!(err.tls_failure(), Some(TlsFailure::Garbled), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("it may expect `tls: explicit`"), "{err}");
}

/// `openssl req -x509` in `dir`: a self-signed certificate for localhost, as admins make them
/// (a CA certificate, which webpki refuses as a server's own). `None`: no openssl here.
fn openssl_self_signed(dir: &std::path::Path) -> Option<()> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.pem"))
        .output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        other => {
            let why = format!("openssl cannot make a certificate here: {other:?}");
            crate::support::skip("self-signed ca_file", why);
            None
        }
    }
}

/// A second server over the harness's tree, with `server.pem` and `server.key` from `pki`.
async fn serve_with_certificate_in(h: &Harness, pki: &std::path::Path) -> ftps_sync::demo::EmbeddedServer {
    let served = h.dir.path().join("served");
    let tls = ftps_sync::demo::ServerTls::default();
    ftps_sync::demo::serve(&served, pki, crate::support::USER, crate::support::PASSWORD, tls)
        .await
        .expect("server with that certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_holding_the_servers_own_self_signed_certificate_trusts_exactly_it() {
    let h = Harness::new().await;
    let own = h.dir.path().join("self-signed");
    let other = h.dir.path().join("other");
    if openssl_self_signed(&own).is_none() || openssl_self_signed(&other).is_none() {
        return;
    }
    let server = serve_with_certificate_in(&h, &own).await;
    crate::support::put(&h.local, "a.txt", "a");
    let config = h
        .config_yaml()
        .port(server.addr.port())
        .ca_file("self-signed/server.pem")
        .load(&h.config_path());
    let r = pass(&config)
        .await
        .expect("the server's own certificate in ca_file is trusted");
    assert_eq!(r.uploaded, 1);
    // Another self-signed certificate proves nothing about this server.
    let config = h
        .config_yaml()
        .port(server.addr.port())
        .ca_file("other/server.pem")
        .load(&h.config_path());
    let err = pass(&config).await.expect_err("refused");
    assert_eq!(err.tls_failure(), Some(TlsFailure::Certificate), "{err:?}");
    assert!(err.to_string().contains("is not trusted"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_in_ca_file_is_refused_for_its_date() {
    let h = Harness::new().await;
    let pki = h.dir.path().join("expired");
    std::fs::create_dir_all(&pki).expect("mkdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(pki.join("server.pem"), cert.pem()).expect("cert");
    std::fs::write(pki.join("server.key"), key.serialize_pem()).expect("key");
    let server = serve_with_certificate_in(&h, &pki).await;
    let config = h
        .config_yaml()
        .port(server.addr.port())
        .ca_file("expired/server.pem")
        .load(&h.config_path());
    let err = pass(&config).await.expect_err("refused");
    assert_eq!(err.tls_failure(), Some(TlsFailure::Certificate), "{err:?}");
    assert!(
        err.to_string()
            .contains("trusted as the one in ca_file, expired on 2021-01-01"),
        "{err}"
    );
}

/// A command written when the task's tokio budget is spent: the socket write is refused for
/// that poll, and TLS keeps the record buffered. The wait for the reply must send it; if it
/// does not, the server never sees the command and the connection hangs until the timeout
/// (seen on vsftpd as a read-back's RETR or MDTM unanswered for 20 s, one run in 50).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_written_on_a_spent_budget_still_reaches_the_server() {
    let h = Harness::new().await;
    let config = h.config("");
    let connector = ftps_sync::remote::ftps::FtpsConnector::for_server(&config.server).expect("connector");
    let mut conn = connector.connect(None).await.expect("connect");
    // A task's budget is 128 operations. Whichever operation of the command finds it spent
    // returns pending: each of them in turn, so one of them is the socket write.
    for spent in 100..=128 {
        tokio::task::yield_now().await;
        for _ in 0..spent {
            tokio::task::coop::consume_budget().await;
        }
        let answered = tokio::time::timeout(std::time::Duration::from_secs(2), conn.noop()).await;
        assert!(
            matches!(answered, Ok(Ok(()))),
            "with {spent} of the budget spent: NOOP unanswered: {answered:?}"
        );
    }
}
