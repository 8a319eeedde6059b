//! TLS policy against real servers: client certificates, refusal of AUTH TLS, a greeting that
//! claims a login before TLS.

use ftps_sync::Error;
use ftps_sync::config::Config;
use ftps_sync::remote::ftps::Ftps;
use ftps_sync::remote::ftps::tls::TlsContext;

use super::servers::{self, Server};

fn config(server: &Server, server_extra: &str) -> Config {
    let local = server.base_path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    server.config(&local, "/", server_extra, "")
}

async fn connect(config: &Config) -> ftps_sync::Result<Ftps> {
    Ftps::connect(&config.server, &TlsContext::new(&config.server)?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_the_server_requires_one() {
    let Some(server) = servers::pyftpdlib("client-cert", &[]) else {
        return;
    };
    let without = connect(&config(&server, "")).await;
    assert!(without.is_err(), "the server requires a client certificate");
    let b = server.base_path();
    let with = format!(
        "  client_cert: {}\n  client_key: {}\n",
        b.join("client.pem").display(),
        b.join("client.key").display()
    );
    let mut conn = connect(&config(&server, &with))
        .await
        .expect("accepted with the client certificate");
    conn.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_tls_never_sees_the_user_name() {
    let Some(server) = servers::pyftpdlib("no-tls", &[]) else {
        return;
    };
    let err = connect(&config(&server, "")).await.err().expect("refused");
    assert_eq!(
        err.tls_failure(),
        Some(ftps_sync::error::TlsFailure::Refused),
        "{err:?}"
    );
    assert!(err.to_string().contains("never falls back"), "{err}");
    let commands = server.commands();
    assert!(commands.contains("AUTH TLS"), "{commands}");
    assert!(!commands.contains("USER"), "USER was sent: {commands}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_230_greeting_before_tls_ends_the_connection() {
    let Some(server) = servers::pyftpdlib("greet-230", &[]) else {
        return;
    };
    let err = connect(&config(&server, "")).await.err().expect("refused");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let commands = server.commands();
    assert!(
        !commands.contains("USER") && !commands.contains("PASS"),
        "{commands}"
    );
}
