use super::*;

fn parse(text: &str) -> Result<Config> {
    Config::parse(text, Path::new("/etc/ftps-sync/test.yaml"))
}

fn base(extra_server: &str, extra_folder: &str) -> String {
    // SAFETY of env: tests set a variable only they read.
    // An existing absolute folder on every system (`/tmp` is not absolute on Windows).
    let local = std::env::temp_dir();
    format!(
        "server:\n  host: h\n  user: u\n  password_env: FTPS_SYNC_TEST_PW\n{extra_server}folders:\n  - name: f\n    local: {}\n    remote: /r\n{extra_folder}",
        local.display()
    )
}

fn set_pw() {
    // Tests read one variable, always set to the same value.
    unsafe { std::env::set_var("FTPS_SYNC_TEST_PW", "pw") };
}

fn config_err(r: Result<Config>) -> (String, Option<usize>) {
    match r {
        Err(Error::Config { key, line, .. }) => (key, line),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn defaults() {
    set_pw();
    let c = parse(&base("", "")).unwrap();
    assert_eq!(c.server.port, 21);
    assert_eq!(c.server.password.expose(), "pw");
    assert_eq!(c.folders[0].direction, Direction::Both);
    assert_eq!(c.folders[0].conflict, ConflictPolicy::KeepBoth);
    assert_eq!(c.poll_interval, Duration::from_secs(60));
    assert!(!format!("{c:?}").contains("\"pw\""));
}

#[test]
fn unknown_key_is_located() {
    set_pw();
    let (key, line) = config_err(parse(&base("  colour: blue\n", "")));
    assert_eq!(line, Some(5));
    assert!(key.contains("server"), "{key}");
}

#[test]
fn both_passwords_refused_at_their_line() {
    set_pw();
    let (key, line) = config_err(parse(&base("  password_file: /x\n", "")));
    assert_eq!(key, "server.password_file");
    assert_eq!(line, Some(5));
}

#[test]
fn bad_duration_and_relative_root() {
    set_pw();
    let (key, line) = config_err(parse(&format!("{}poll_interval: soon\n", base("", ""))));
    assert_eq!((key.as_str(), line), ("poll_interval", Some(9)));
    let text = base("", "").replace(
        &format!("local: {}", std::env::temp_dir().display()),
        "local: tmp",
    );
    let (key, line) = config_err(parse(&text));
    assert_eq!((key.as_str(), line), ("folders[0].local", Some(7)));
}

#[test]
fn waits_of_nothing_are_refused() {
    set_pw();
    for (line, key) in [
        ("poll_interval: 0s\n", "poll_interval"),
        ("retry: { initial_backoff: 0s }\n", "retry.initial_backoff"),
        (
            "retry: { initial_backoff: 10s, max_backoff: 1s }\n",
            "retry.max_backoff",
        ),
    ] {
        let (got, _) = config_err(parse(&format!("{}{line}", base("", ""))));
        assert_eq!(got, key, "{line}");
    }
}

#[test]
fn plaintext_needs_opt_in() {
    set_pw();
    let (key, _) = config_err(parse(&base("  tls: none\n", "")));
    assert_eq!(key, "server.tls");
    assert!(parse(&base("  tls: none\n  insecure_plaintext: true\n", "")).is_ok());
}

#[test]
#[cfg(unix)]
fn a_password_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = base("", "").replace(
        "password_env: FTPS_SYNC_TEST_PW",
        &format!("password_file: {}", pw.display()),
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.server.password.expose(), "secret");
    assert!(
        c.warnings.iter().any(|w| w.contains("chmod 600")),
        "{:?}",
        c.warnings
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(parse(&text).unwrap().warnings.is_empty());
}

#[test]
fn rates_and_fingerprints() {
    assert_eq!(parse_rate("10MiB/s").unwrap(), 10 * 1024 * 1024);
    assert_eq!(parse_rate("500 KB/s").unwrap(), 500_000);
    assert!(parse_rate("fast").is_err());
    let fp = [0xABu8; 32];
    assert_eq!(parse_fingerprint(&format_fingerprint(&fp)), Some(fp));
    assert_eq!(parse_fingerprint("AB:CD"), None);
}

#[test]
fn segment_from_is_a_size_or_off() {
    set_pw();
    let c = parse(&base("", "")).unwrap();
    assert_eq!(c.server.segment_from, None, "off by default");
    let c = parse(&base("  segment_from: 256MiB\n", "")).unwrap();
    assert_eq!(c.server.segment_from, Some(256 << 20));
    let c = parse(&base("  segment_from: off\n", "")).unwrap();
    assert_eq!(c.server.segment_from, None);
    for bad in ["100KiB", "lots", "12 parsecs"] {
        let (key, line) = config_err(parse(&base(&format!("  segment_from: {bad}\n"), "")));
        assert_eq!((key.as_str(), line), ("server.segment_from", Some(5)), "{bad}");
    }
    assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
}
