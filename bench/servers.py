"""The FTPS servers the benchmarks run against: vsftpd, ProFTPD and Pure-FTPd, each on loopback
with its own certificate, a virtual user and a data folder owned by the FTP account, TLS
capped at 1.2 or left at 1.3, and an optional passive address (the WAN delay proxy's)."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

USER, PASSWORD, ACCOUNT = "alice", "bench-pw", "ftpsinterop"
SERVERS = Path(os.environ.get("FTPS_SYNC_SERVERS", "/opt/ftps-sync-servers"))


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def wait_listening(port, name, host="127.0.0.1"):
    for _ in range(300):
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"{name} did not start")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_next_passive = [30000]


def passive_range():
    """A passive range of its own for each server, below the ephemeral ports."""
    lo = _next_passive[0]
    _next_passive[0] += 200
    return lo, lo + 199


def ids():
    uid = int(subprocess.run(["id", "-u", ACCOUNT], check=True, capture_output=True, text=True).stdout)
    gid = int(subprocess.run(["id", "-g", ACCOUNT], check=True, capture_output=True, text=True).stdout)
    return uid, gid


def md5_crypt(password):
    return subprocess.run(["openssl", "passwd", "-1", password], check=True, capture_output=True,
                          text=True).stdout.strip()


def openssl_cap(base, tls12_only):
    """Environment for a server that caps TLS through OpenSSL's config (no switch of its own)."""
    env = dict(os.environ)
    if tls12_only:
        ossl = base / "openssl.cnf"
        ossl.write_text("openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
                        "[sys]\nMaxProtocol = TLSv1.2\n")
        env["OPENSSL_CONF"] = str(ossl)
    return env


class Server:
    """Common set-up; subclasses start the daemon."""
    name = "?"
    # rclone's multi-thread download (several RETR with REST of one file) works here.
    rclone_multi_thread = True

    def __init__(self, base, tls12_only, pasv_address="127.0.0.1"):
        self.base, self.data = base, base / "data"
        self.tls12_only, self.pasv_address = tls12_only, pasv_address
        self.data.mkdir(parents=True)
        (base / "empty").mkdir()
        sh("chown", f"{ACCOUNT}:{ACCOUNT}", str(self.data))
        self.port = free_port()
        self.passive = passive_range()
        self.cert, self.key = base / "cert.pem", base / "key.pem"
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(self.key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=127.0.0.1",
           "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "subjectAltName=IP:127.0.0.1,IP:127.0.0.2",
           stderr=subprocess.DEVNULL)
        self.proc = self.start()
        wait_listening(self.port, self.name)

    @property
    def tls(self):
        return "TLS 1.2" if self.tls12_only else "TLS 1.3"

    def start(self):
        raise NotImplementedError

    def stop(self):
        os.killpg(self.proc.pid, 9)

    def fill(self, rel, src):
        """Makes `rel` on the server an empty folder, or a copy (times kept) of `src`."""
        dst = self.data / rel
        if dst.exists():
            shutil.rmtree(dst)
        if src is None:
            dst.mkdir(parents=True)
        else:
            shutil.copytree(src, dst, copy_function=shutil.copy2)
        sh("chown", "-R", f"{ACCOUNT}:{ACCOUNT}", str(self.data))

    def popen(self, cmd, env=None):
        return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


class Vsftpd(Server):
    name = "vsftpd"
    # Its data connections for a second RETR of one file end in 426 (SERVERS.md).
    rclone_multi_thread = False
    # Lines added to its configuration.
    extra = ""

    def start(self):
        base = self.base
        crypt = md5_crypt(PASSWORD)
        Path("/etc/ftps-sync-bench.passwd").write_text(f"{USER}:{crypt}\n")
        Path("/etc/pam.d/ftps-sync-bench").write_text(
            "auth required pam_pwdfile.so pwdfile=/etc/ftps-sync-bench.passwd\naccount required pam_permit.so\n")
        lo, hi = self.passive
        conf = base / "vsftpd.conf"
        conf.write_text(f"""listen=YES
listen_port={self.port}
listen_address=127.0.0.1
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
guest_enable=YES
guest_username={ACCOUNT}
virtual_use_local_privs=YES
pam_service_name=ftps-sync-bench
local_root={self.data}
chroot_local_user=YES
allow_writeable_chroot=YES
secure_chroot_dir={base / 'empty'}
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
ssl_enable=YES
force_local_logins_ssl=YES
force_local_data_ssl=YES
require_ssl_reuse=YES
ssl_ciphers=HIGH
rsa_cert_file={self.cert}
rsa_private_key_file={self.key}
pasv_enable=YES
pasv_min_port={lo}
pasv_max_port={hi}
pasv_address={self.pasv_address}
local_umask=022
max_per_ip=0
max_clients=0
{self.extra}""")
        for p in (SERVERS / "vsftpd/usr/sbin/vsftpd", Path("/usr/sbin/vsftpd")):
            if p.exists():
                # vsftpd 3.0.3 has no TLS version switch: OpenSSL's config caps it.
                return self.popen([str(p), str(conf)], openssl_cap(base, self.tls12_only))
        sys.exit("vsftpd not found: run bash .ci/install-servers (or apt-get install vsftpd)")


class Proftpd(Server):
    name = "ProFTPD"
    # Stock mod_tls refuses data connections that do not resume the control session; the
    # comparison turns that off (`NoSessionReuseRequired`), or rclone 1.60 cannot work at all.
    reuse_required = False

    @property
    def tls_log(self):
        return self.base / "tls.log"

    def refused(self):
        """Data connections its TLS log says were refused for not resuming."""
        text = self.tls_log.read_text(errors="replace") if self.tls_log.exists() else ""
        return sum("did not reuse" in line for line in text.splitlines())

    def start(self):
        base, root = self.base, SERVERS / "proftpd"
        if not (root / "usr/sbin/proftpd").exists():
            sys.exit("ProFTPD not found: run bash .ci/install-servers")
        uid, gid = ids()
        (base / "ftpd.passwd").write_text(f"{USER}:{md5_crypt(PASSWORD)}:{uid}:{gid}::{self.data}:/bin/false\n")
        os.chmod(base / "ftpd.passwd", 0o600)
        (base / "ftpd.group").write_text(f"{ACCOUNT}:x:{gid}:\n")
        lo, hi = self.passive
        protocols = "TLSv1.2" if self.tls12_only else "TLSv1.2 TLSv1.3"
        masquerade = f"MasqueradeAddress {self.pasv_address}\n" if self.pasv_address != "127.0.0.1" else ""
        conf = base / "proftpd.conf"
        conf.write_text(f"""ServerName "bench"
ServerType standalone
DefaultServer on
Port {self.port}
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User {ACCOUNT}
Group {ACCOUNT}
PidFile {base}/proftpd.pid
ScoreboardFile {base}/proftpd.scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
SystemLog {base}/system.log
ModulePath {root}/usr/lib/proftpd
LoadModule mod_tls.c
LoadModule mod_digest.c
AuthOrder mod_auth_file.c
AuthUserFile {base}/ftpd.passwd
AuthGroupFile {base}/ftpd.group
RequireValidShell off
UseFtpUsers off
DefaultRoot ~
Umask 022
AllowOverwrite on
AllowStoreRestart on
PassivePorts {lo} {hi}
{masquerade}MaxInstances 50
TLSEngine on
TLSRequired on
TLSProtocol {protocols}
{"" if self.reuse_required else "TLSOptions NoSessionReuseRequired"}
TLSECCertificateFile {self.cert}
TLSECCertificateKeyFile {self.key}
TLSVerifyClient off
TLSLog {self.tls_log}
DigestEngine on
""")
        return self.popen([str(root / "usr/sbin/proftpd"), "-n", "-q", "-c", str(conf)])


class PureFtpd(Server):
    name = "Pure-FTPd"

    def start(self):
        base, root = self.base, SERVERS / "pure-ftpd"
        if not (root / "usr/sbin/pure-ftpd").exists():
            sys.exit("Pure-FTPd not found: run bash .ci/install-servers")
        uid, gid = ids()
        passwd = base / "pureftpd.passwd"
        passwd.write_text(f"{USER}:{md5_crypt(PASSWORD)}:{uid}:{gid}::{self.data}/./::::::::::::\n")
        pdb = base / "pureftpd.pdb"
        sh(str(root / "usr/bin/pure-pw"), "mkdb", str(pdb), "-f", str(passwd), stdout=subprocess.DEVNULL)
        both = base / "both.pem"
        both.write_text(self.key.read_text() + self.cert.read_text())
        lo, hi = self.passive
        cmd = [str(root / "usr/sbin/pure-ftpd"), "-S", f"127.0.0.1,{self.port}", "-l", f"puredb:{pdb}",
               "-Y", "3", "-E", "-A", "-H", "-c", "100", "-C", "100", "-u", "1", "-U", "022:022",
               "-2", str(both), "-p", f"{lo}:{hi}"]
        if self.pasv_address != "127.0.0.1":
            cmd += ["-P", self.pasv_address]
        return self.popen(cmd, openssl_cap(base, self.tls12_only))


KINDS = {"vsftpd": Vsftpd, "proftpd": Proftpd, "pure-ftpd": PureFtpd}


class StockProftpd(Proftpd):
    """ProFTPD as installed: session reuse required on data connections."""
    reuse_required = True
