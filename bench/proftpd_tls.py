#!/usr/bin/env python3
"""ftps-sync small-file uploads to stock ProFTPD at TLS 1.3 against the same at TLS 1.2.

Stock ProFTPD (mod_tls, session reuse required, its default) at TLS 1.3 gives two session
tickets per control connection and none on data connections, and refuses a data connection
that does not resume its control connection's session. This runs, in one go and alternating,
ftps-sync uploads of SMALL_FILES x 4 KiB files in 20 directories at TLS 1.3 and capped at 1.2
(`tls_max_version`), the server the same, and prints files/s (medians of RUNS), the ratio, the
retries each pass needed (from `--json`) and the "did not reuse" lines in ProFTPD's TLS log.

    sudo python3 bench/proftpd_tls.py          # RUNS=3 SMALL_FILES=2000 by default

Needs root (ProFTPD switches to its FTP account) and ProFTPD unpacked by .ci/install-servers.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import (ACCOUNT, BIN, PASSWORD, RUNS, SERVERS, USER, check_same, free_port, make_tree, median, sh,
                     wait_listening, write_config)

SMALL_FILES = int(os.environ.get("SMALL_FILES", "2000"))


class Proftpd:
    def __init__(self, base):
        self.base, self.data = base, base / "data"
        self.data.mkdir(parents=True)
        root = SERVERS / "proftpd"
        self.port = free_port()
        self.cert, key = base / "cert.pem", base / "key.pem"
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=127.0.0.1",
           "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "subjectAltName=IP:127.0.0.1",
           stderr=subprocess.DEVNULL)
        uid = int(subprocess.run(["id", "-u", ACCOUNT], check=True, capture_output=True, text=True).stdout)
        gid = int(subprocess.run(["id", "-g", ACCOUNT], check=True, capture_output=True, text=True).stdout)
        crypt = subprocess.run(["openssl", "passwd", "-1", PASSWORD], check=True, capture_output=True,
                               text=True).stdout.strip()
        (base / "ftpd.passwd").write_text(f"{USER}:{crypt}:{uid}:{gid}::{self.data}:/bin/false\n")
        os.chmod(base / "ftpd.passwd", 0o600)
        (base / "ftpd.group").write_text(f"{ACCOUNT}:x:{gid}:\n")
        sh("chown", f"{ACCOUNT}:{ACCOUNT}", str(self.data))
        self.tls_log = base / "tls.log"
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
AuthOrder mod_auth_file.c
AuthUserFile {base}/ftpd.passwd
AuthGroupFile {base}/ftpd.group
RequireValidShell off
UseFtpUsers off
DefaultRoot ~
AllowOverwrite on
PassivePorts 40000 49999
MaxInstances 50
TLSEngine on
TLSRequired on
TLSProtocol TLSv1.2 TLSv1.3
TLSECCertificateFile {self.cert}
TLSECCertificateKeyFile {key}
TLSVerifyClient off
TLSLog {self.tls_log}
""")
        self.proc = subprocess.Popen([str(root / "usr/sbin/proftpd"), "-n", "-q", "-c", str(conf)],
                                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, "proftpd")

    def stop(self):
        os.killpg(self.proc.pid, 9)

    def refused(self):
        text = self.tls_log.read_text(errors="replace") if self.tls_log.exists() else ""
        return sum("did not reuse" in line for line in text.splitlines())

    def empty(self, rel):
        dst = self.data / rel
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        sh("chown", "-R", f"{ACCOUNT}:{ACCOUNT}", str(self.data))


def upload(server, work, src, cap):
    state = work / "state"
    if state.exists():
        shutil.rmtree(state)
    cap_line = '  tls_max_version: "1.2"' if cap else ''
    cfg = write_config(work / "ftps-sync.yaml", server, work / "pw", src, "bench", "upload", state, cap_line)
    os.sync()
    t0 = time.monotonic()
    r = subprocess.run([str(BIN), "sync", "-q", "--json", "-c", str(cfg)], capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"ftps-sync failed ({r.returncode}): {r.stderr[-2000:]}")
    return elapsed, json.loads(r.stdout)[0]["retries"]


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (ProFTPD switches to its FTP account)")
    if not (SERVERS / "proftpd/usr/sbin/proftpd").exists():
        sys.exit("ProFTPD not found: run bash .ci/install-servers")
    work = Path(tempfile.mkdtemp(prefix="ftps-bench-tls-"))
    os.chmod(work, 0o755)
    (work / "pw").write_text(PASSWORD)
    os.chmod(work / "pw", 0o600)
    server = Proftpd(work / "proftpd")
    src = work / "small"
    make_tree(src, SMALL_FILES, 20, 4096)
    rates, retries = {"TLS 1.3": [], "TLS 1.2": []}, {"TLS 1.3": 0, "TLS 1.2": 0}
    try:
        for run in range(RUNS):
            order = ["TLS 1.3", "TLS 1.2"] if run % 2 == 0 else ["TLS 1.2", "TLS 1.3"]
            print(f"run {run + 1}/{RUNS}: {', '.join(order)}", flush=True)
            for case in order:
                server.empty("bench")
                t, n = upload(server, work, src, cap=case == "TLS 1.2")
                check_same(f"ftps-sync {case}", "upload", src, server.data / "bench")
                rates[case].append(SMALL_FILES / t)
                retries[case] += n
        refused = server.refused()
    finally:
        server.stop()
    print()
    print(f"ftps-sync to ProFTPD 1.3.8 (stock mod_tls: session reuse required), {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} cores, loopback, 4 connections, upload {SMALL_FILES:,} x 4 KiB, medians of {RUNS}")
    print()
    print("| TLS | files/s (runs) | median | retries (all runs) |")
    print("|---|---|---|---|")
    for case in ("TLS 1.3", "TLS 1.2"):
        runs = ", ".join(f"{r:.0f}" for r in rates[case])
        print(f"| {case} | {runs} | {median(rates[case]):.0f} | {retries[case]} |")
    print()
    print(f"TLS 1.3 / TLS 1.2: {median(rates['TLS 1.3']) / median(rates['TLS 1.2']):.2f}x; "
          f"'did not reuse' lines in ProFTPD's TLS log: {refused}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
