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
    assert!(
        err.to_string().contains(&h.pki.fingerprint),
        "the message shows the fingerprint: {err}"
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
}
