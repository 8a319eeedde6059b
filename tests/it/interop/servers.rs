//! How each real server is configured and started.

use std::path::{Path, PathBuf};
use std::process::Command;

use ftps_sync::demo::TestPki;

use crate::support::ConfigYaml;

use super::{Proc, account, free_port, is_root, passive_range, servers_dir, skip};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "interop-pw";
const ACCOUNT: &str = "ftpsinterop";

/// A running server and the directory it serves as `/`.
pub struct Server {
    pub name: String,
    pub port: u16,
    pub tls: &'static str,
    /// The user's root on disk: the server's `/`.
    pub data: PathBuf,
    pub base: tempfile::TempDir,
    /// Owner of files the test puts into `data`, so the server may change them.
    owner: Option<(u32, u32)>,
    /// Kept for its Drop: the server stops with this value.
    _proc: Proc,
}

impl Server {
    /// Writes a file into the server's tree, as the server's own user.
    pub fn put(&self, rel: &str, content: impl AsRef<[u8]>) {
        let p = self.data.join(rel);
        let parent = p.parent().expect("parent");
        std::fs::create_dir_all(parent).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        self.own(&p);
        let mut d = parent.to_owned();
        while d.starts_with(&self.data) && d != self.data {
            self.own(&d);
            d = d.parent().expect("parent").to_owned();
        }
    }

    pub fn own(&self, p: &Path) {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
        }
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.data.join(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        self.own(&p);
        p
    }

    /// A loaded config for one folder against this server, with extra server and folder lines.
    pub fn config(
        &self,
        local: &Path,
        remote: &str,
        server_extra: &str,
        folder_extra: &str,
    ) -> ftps_sync::config::Config {
        self.load(
            self.config_yaml(local, remote)
                .server(server_extra)
                .folder(folder_extra),
        )
    }

    /// A config for one folder against this server: its CA, password file and TLS mode, a
    /// 20 s timeout, a state dir of the folder's own.
    pub fn config_yaml(&self, local: &Path, remote: &str) -> ConfigYaml {
        let path = |name: &str| self.base.path().join(name).display().to_string();
        let state = format!(
            "state-{}",
            local.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        );
        ConfigYaml::new(self.port, local, remote)
            .tls(self.tls)
            .user(USER)
            .password_file(&path("password"))
            .ca_file(&path("ca.pem"))
            .timeout("20s")
            .name("f")
            .state_dir(&path(&state))
            .retry("{ attempts: 3, initial_backoff: 100ms, max_backoff: 500ms }")
    }

    pub fn load(&self, yaml: ConfigYaml) -> ftps_sync::config::Config {
        let text = yaml.render();
        ftps_sync::config::Config::parse(&text, &self.base_path().join("config.yaml"))
            .unwrap_or_else(|e| panic!("config: {e}\n{text}"))
    }
}

/// The common part: a 0755 temp dir, a data dir owned by `owner`, certificates, password.
fn prepare(owner: Option<(u32, u32)>) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    // FTPS_SYNC_KEEP_SERVER_DIRS=1 keeps each server's dir (configs, logs) for a post-mortem.
    let keep = std::env::var_os("FTPS_SYNC_KEEP_SERVER_DIRS").is_some();
    let base = tempfile::Builder::new()
        .prefix("ftps-interop-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("temp dir");
    // Daemons change to the virtual user before reaching its root: every ancestor must be
    // traversable (mktemp dirs are 0700).
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = base.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(base.path().join("empty")).expect("empty dir");
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown data");
    }
    let pki = TestPki::new().expect("pki");
    std::fs::write(base.path().join("ca.pem"), &pki.ca_pem).expect("ca");
    std::fs::write(base.path().join("server.pem"), &pki.cert_pem).expect("cert");
    std::fs::write(base.path().join("server.key"), &pki.key_pem).expect("key");
    std::fs::write(
        base.path().join("both.pem"),
        format!("{}{}", pki.key_pem, pki.cert_pem),
    )
    .expect("pem");
    std::fs::write(base.path().join("client.pem"), &pki.client_cert_pem).expect("client cert");
    std::fs::write(base.path().join("client.key"), &pki.client_key_pem).expect("client key");
    std::fs::write(base.path().join("password"), PASSWORD).expect("password");
    std::fs::set_permissions(
        base.path().join("password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    (base, data)
}

fn home_of(name: &str) -> Option<PathBuf> {
    let o = Command::new("getent").args(["passwd", name]).output().ok()?;
    let line = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    line.split(':')
        .nth(5)
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn md5_crypt(password: &str) -> String {
    let o = Command::new("openssl")
        .args(["passwd", "-1", password])
        .output()
        .expect("openssl passwd");
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Root, the unpacked binary and the test account, or a SKIPPED line.
fn daemon_prereqs(what: &str, binary: &Path) -> Option<(u32, u32)> {
    if !binary.exists() {
        skip(
            what,
            &format!("{} not found (run .ci/install-servers)", binary.display()),
        );
        return None;
    }
    if !is_root() {
        skip(what, "needs root to switch to the FTP account");
        return None;
    }
    match account(ACCOUNT) {
        Some(ids) => {
            // vsftpd changes to the account's home before its chroot: it must exist.
            if let Some(home) = home_of(ACCOUNT)
                && !home.exists()
            {
                std::fs::create_dir_all(&home).expect("account home");
                std::os::unix::fs::chown(&home, Some(ids.0), Some(ids.1)).expect("chown home");
            }
            Some(ids)
        }
        None => {
            skip(
                what,
                &format!("account {ACCOUNT} missing (run .ci/install-servers)"),
            );
            None
        }
    }
}

pub fn vsftpd(implicit: bool) -> Option<Server> {
    vsftpd_with(implicit, "")
}

/// vsftpd with `extra` lines added to its configuration.
pub fn vsftpd_with(implicit: bool, extra: &str) -> Option<Server> {
    let what = if implicit { "vsftpd-implicit" } else { "vsftpd" };
    let bin = servers_dir().join("vsftpd/usr/sbin/vsftpd");
    let owner = daemon_prereqs(what, &bin)?;
    let (base, data) = prepare(Some(owner));
    let b = base.path();
    // PAM only reads /etc/pam.d; the service and its password file have fixed contents. Both
    // are shared by the vsftpd tests running in parallel: replaced whole, never truncated under
    // a login that reads them (a half-written file answered 530).
    let pwfile = "/etc/ftps-sync-interop.passwd";
    let entry = format!("{USER}:{}\n", md5_crypt(PASSWORD));
    replace_file(Path::new(pwfile), entry.as_bytes());
    let pam = format!("auth required pam_pwdfile.so pwdfile={pwfile}\naccount required pam_permit.so\n");
    replace_file(Path::new("/etc/pam.d/ftps-sync-interop"), pam.as_bytes());
    let port = free_port();
    let (lo, hi) = passive_range();
    let conf = b.join("vsftpd.conf");
    std::fs::write(
        &conf,
        format!(
            "listen=YES\nlisten_port={port}\nlisten_address=127.0.0.1\nbackground=NO\nanonymous_enable=NO\n\
             local_enable=YES\nwrite_enable=YES\nguest_enable=YES\nguest_username={ACCOUNT}\n\
             virtual_use_local_privs=YES\npam_service_name=ftps-sync-interop\nlocal_root={data}\n\
             chroot_local_user=YES\nallow_writeable_chroot=YES\nsecure_chroot_dir={empty}\nseccomp_sandbox=NO\n\
             isolate=NO\nisolate_network=NO\nssl_enable=YES\nforce_local_logins_ssl=YES\nforce_local_data_ssl=YES\n\
             require_ssl_reuse=YES\nssl_ciphers=HIGH\nrsa_cert_file={cert}\nrsa_private_key_file={key}\n\
             implicit_ssl={implicit}\npasv_enable=YES\npasv_min_port={lo}\npasv_max_port={hi}\n\
             pasv_address=127.0.0.1\nxferlog_enable=YES\nvsftpd_log_file={b}/xfer.log\nlocal_umask=022\n{extra}",
            data = data.display(),
            empty = b.join("empty").display(),
            cert = b.join("server.pem").display(),
            key = b.join("server.key").display(),
            implicit = if implicit { "YES" } else { "NO" },
            b = b.display(),
        ),
    )
    .expect("vsftpd.conf");
    let mut cmd = Command::new(&bin);
    cmd.arg(&conf);
    Some(launch(
        what,
        cmd,
        port,
        if implicit { "implicit" } else { "explicit" },
        base,
        data,
        Some(owner),
    ))
}

pub fn proftpd() -> Option<Server> {
    proftpd_with("")
}

/// ProFTPD with `extra` lines added to its configuration.
pub fn proftpd_with(extra: &str) -> Option<Server> {
    let what = "proftpd";
    let root = servers_dir().join("proftpd");
    let bin = root.join("usr/sbin/proftpd");
    let owner = daemon_prereqs(what, &bin)?;
    let (base, data) = prepare(Some(owner));
    let b = base.path();
    let (uid, gid) = owner;
    std::fs::write(
        b.join("ftpd.passwd"),
        format!(
            "{USER}:{}:{uid}:{gid}::{}:/bin/false\n",
            md5_crypt(PASSWORD),
            data.display()
        ),
    )
    .expect("passwd");
    std::fs::write(b.join("ftpd.group"), format!("{ACCOUNT}:x:{gid}:\n")).expect("group");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(b.join("ftpd.passwd"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let port = free_port();
    let (lo, hi) = super::passive_range_of(1000);
    let conf = b.join("proftpd.conf");
    std::fs::write(
        &conf,
        format!(
            "ServerName \"interop\"\nServerType standalone\nDefaultServer on\nPort {port}\nDefaultAddress 127.0.0.1\n\
             SocketBindTight on\nUseIPv6 off\nUser {ACCOUNT}\nGroup {ACCOUNT}\nPidFile {b}/proftpd.pid\n\
             ScoreboardFile {b}/proftpd.scoreboard\nDelayTable none\nWtmpLog off\nUseReverseDNS off\n\
             SystemLog {b}/system.log\nTransferLog {b}/xfer.log\nModulePath {modules}\nLoadModule mod_tls.c\n\
             LoadModule mod_digest.c\nAuthOrder mod_auth_file.c\nAuthUserFile {b}/ftpd.passwd\n\
             AuthGroupFile {b}/ftpd.group\nRequireValidShell off\nUseFtpUsers off\nDefaultRoot ~\nUmask 022\n\
             AllowOverwrite on\nPassivePorts {lo} {hi}\nMaxInstances 50\nTLSEngine on\nTLSRequired on\n\
             {protocols}TLSECCertificateFile {b}/server.pem\nTLSECCertificateKeyFile {b}/server.key\n\
             TLSVerifyClient off\nTLSLog {b}/tls.log\nDigestEngine on\n{extra}",
            b = b.display(),
            modules = root.join("usr/lib/proftpd").display(),
            // ProFTPD takes the first `TLSProtocol`: one in `extra` replaces this one.
            protocols = if extra.contains("TLSProtocol") {
                ""
            } else {
                "TLSProtocol TLSv1.2 TLSv1.3\n"
            },
        ),
    )
    .expect("proftpd.conf");
    let mut cmd = Command::new(&bin);
    cmd.args(["-n", "-q", "-c"]).arg(&conf);
    Some(launch(what, cmd, port, "explicit", base, data, Some(owner)))
}

pub fn pure_ftpd() -> Option<Server> {
    let what = "pure-ftpd";
    let root = servers_dir().join("pure-ftpd");
    let bin = root.join("usr/sbin/pure-ftpd");
    let owner = daemon_prereqs(what, &bin)?;
    let (base, data) = prepare(Some(owner));
    let b = base.path();
    let (uid, gid) = owner;
    let passwd = b.join("pureftpd.passwd");
    std::fs::write(
        &passwd,
        format!(
            "{USER}:{}:{uid}:{gid}::{}/./::::::::::::\n",
            md5_crypt(PASSWORD),
            data.display()
        ),
    )
    .expect("passwd");
    let pdb = b.join("pureftpd.pdb");
    let st = Command::new(root.join("usr/bin/pure-pw"))
        .args(["mkdb"])
        .arg(&pdb)
        .arg("-f")
        .arg(&passwd)
        .status()
        .expect("pure-pw");
    assert!(st.success(), "pure-pw mkdb failed");
    let port = free_port();
    let (lo, hi) = passive_range();
    let mut cmd = Command::new(&bin);
    cmd.arg("-S")
        .arg(format!("127.0.0.1,{port}"))
        .arg("-l")
        .arg(format!("puredb:{}", pdb.display()))
        .args(["-Y", "3", "-E", "-A", "-H", "-u", "1", "-U", "022:022"])
        .arg("-2")
        .arg(b.join("both.pem"))
        .arg("-p")
        .arg(format!("{lo}:{hi}"))
        .arg("-O")
        .arg(format!("clf:{}", b.join("xfer.log").display()));
    Some(launch(what, cmd, port, "explicit", base, data, Some(owner)))
}

/// Starts `cmd`, waits until it listens on `port`, and wraps it as a `Server`.
fn launch(
    what: &str,
    cmd: Command,
    port: u16,
    tls: &'static str,
    base: tempfile::TempDir,
    data: PathBuf,
    owner: Option<(u32, u32)>,
) -> Server {
    let mut proc = Proc::spawn(what, cmd, &base.path().join("server.log"));
    proc.wait_listening(port);
    super::ran();
    Server {
        name: what.to_owned(),
        port,
        tls,
        data,
        base,
        owner,
        _proc: proc,
    }
}

/// Whether python3 with pyftpdlib and pyOpenSSL is here.
pub fn pyftpdlib_available() -> Result<(), String> {
    let ok = Command::new("python3")
        .args(["-c", "import pyftpdlib, OpenSSL"])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err("python3 with pyftpdlib and pyOpenSSL not found (run .ci/install-servers)".into())
    }
}

/// pyftpdlib in one of the modes of `tests/interop/pyftpd_server.py`.
pub fn pyftpdlib(mode: &str, extra: &[String]) -> Option<Server> {
    let what = format!("pyftpdlib-{mode}");
    if let Err(why) = pyftpdlib_available() {
        skip(&what, &why);
        return None;
    }
    let (base, data) = prepare(None);
    let b = base.path();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/pyftpd_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--port")
        .arg(port.to_string())
        .arg("--root")
        .arg(&data)
        .arg("--cert")
        .arg(b.join("server.pem"))
        .arg("--key")
        .arg(b.join("server.key"))
        .arg("--ca")
        .arg(b.join("ca.pem"))
        .args(["--user", USER, "--password", PASSWORD, "--mode", mode])
        .arg("--log")
        .arg(b.join("commands.log"))
        .args(extra);
    Some(launch(&what, cmd, port, "explicit", base, data, None))
}

impl Server {
    /// Commands the (pyftpdlib) server received.
    pub fn commands(&self) -> String {
        std::fs::read_to_string(self.base.path().join("commands.log")).unwrap_or_default()
    }

    /// The transfers the server logged (its transfer log; pyftpdlib's command log).
    pub fn transfers(&self) -> String {
        std::fs::read_to_string(self.base.path().join("xfer.log")).unwrap_or_else(|_| self.commands())
    }

    pub fn base_path(&self) -> &Path {
        self.base.path()
    }
}

/// Replaces `path` whole (a uniquely named file beside it, renamed over it), so a reader never
/// sees it empty or half-written, even with another test replacing it at the same time.
fn replace_file(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let dir = path.parent().expect("a file in a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("temp file");
    tmp.write_all(bytes).expect("write");
    // Readable as `fs::write` left them (a temp file starts at 0600).
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    tmp.persist(path).expect("rename into place");
}
