#!/usr/bin/env python3
"""The benchmark behind bench/compare.sh. See that file for how to run it."""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("FTPS_SYNC_BIN", ROOT / "target/release/ftps-sync"))
RUNS = int(os.environ.get("RUNS", "3"))
# Smaller sets for a smoke run of the script itself.
BIG_MIB = int(os.environ.get("BIG_MIB", "1024"))
SMALL_FILES = int(os.environ.get("SMALL_FILES", "5000"))
MANY_FILES = int(os.environ.get("MANY_FILES", "20000"))
USER, PASSWORD, ACCOUNT = "alice", "bench-pw", "ftpsinterop"
SERVERS = Path(os.environ.get("FTPS_SYNC_SERVERS", "/opt/ftps-sync-servers"))


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def wait_listening(port, name):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"{name} did not start")


def vsftpd_binary():
    for p in (SERVERS / "vsftpd/usr/sbin/vsftpd", Path("/usr/sbin/vsftpd")):
        if p.exists():
            return p
    sys.exit("vsftpd not found: run bash .ci/install-servers (or apt-get install vsftpd)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Vsftpd:
    def __init__(self, base, tls12_only):
        self.base = base
        self.data = base / "data"
        self.data.mkdir(parents=True)
        (base / "empty").mkdir()
        sh("chown", f"{ACCOUNT}:{ACCOUNT}", str(self.data))
        self.port = free_port()
        cert, key = base / "cert.pem", base / "key.pem"
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
           "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "subjectAltName=IP:127.0.0.1",
           stderr=subprocess.DEVNULL)
        self.cert = cert
        crypt = subprocess.run(["openssl", "passwd", "-1", PASSWORD], check=True, capture_output=True, text=True).stdout.strip()
        Path("/etc/ftps-sync-bench.passwd").write_text(f"{USER}:{crypt}\n")
        Path("/etc/pam.d/ftps-sync-bench").write_text(
            "auth required pam_pwdfile.so pwdfile=/etc/ftps-sync-bench.passwd\naccount required pam_permit.so\n")
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
rsa_cert_file={cert}
rsa_private_key_file={key}
pasv_enable=YES
pasv_min_port=30000
pasv_max_port=39999
pasv_address=127.0.0.1
local_umask=022
max_per_ip=0
max_clients=0
""")
        env = dict(os.environ)
        if tls12_only:
            # vsftpd 3.0.3 has no TLS version switch: cap it through OpenSSL's config.
            ossl = base / "openssl.cnf"
            ossl.write_text("openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
                            "[sys]\nMaxProtocol = TLSv1.2\n")
            env["OPENSSL_CONF"] = str(ossl)
        self.proc = subprocess.Popen([str(vsftpd_binary()), str(conf)], env=env, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, "vsftpd")

    def stop(self):
        os.killpg(self.proc.pid, 9)

    def fill(self, rel, src):
        dst = self.data / rel
        if dst.exists():
            shutil.rmtree(dst)
        if src is None:
            dst.mkdir(parents=True)
        else:
            shutil.copytree(src, dst, copy_function=shutil.copy2)
        sh("chown", "-R", f"{ACCOUNT}:{ACCOUNT}", str(self.data))


def make_tree(root, files, dirs, size):
    root.mkdir(parents=True)
    block = os.urandom(size)
    for d in range(dirs):
        (root / f"d{d:03}").mkdir()
    for i in range(files):
        (root / f"d{i % dirs:03}" / f"f{i:05}.bin").write_bytes(block[i % 7:] + block[: i % 7])


def make_big(root, size):
    root.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    with open(root / "big.bin", "wb") as f:
        for _ in range(size >> 20):
            f.write(chunk)


def write_config(cfg, server, password_file, local, remote, direction, state, server_extra=""):
    """An ftps-sync config for one folder `name: bench` at `/remote`, 4 connections; returns its path."""
    cfg.write_text(f"""server:
  host: 127.0.0.1
  port: {server.port}
  user: {USER}
  password_file: {password_file}
  ca_file: {server.cert}
  connections: 4
{server_extra}
folders:
  - name: bench
    local: {local}
    remote: /{remote}
    direction: {direction}
    max_delete_percent: 100
state_dir: {state}
log: {{ level: warn }}
""")
    return cfg


class Tools:
    def __init__(self, server, work):
        self.s, self.work = server, work
        self.obscured = subprocess.run(["rclone", "obscure", PASSWORD], check=True, capture_output=True,
                                       text=True).stdout.strip()
        (work / "pw").write_text(PASSWORD)
        os.chmod(work / "pw", 0o600)

    def timed(self, cmd, cwd=None):
        # Write back what earlier runs left dirty, so no tool pays for another's writes.
        os.sync()
        out = self.work / "time.txt"
        t0 = time.monotonic()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out)] + cmd, cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - t0
        if r.returncode not in (0, 1):
            sys.exit(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")
        rss_kib = int(out.read_text().strip().splitlines()[-1])
        return elapsed, rss_kib / 1024

    def ftps_sync(self, local, remote, direction, state, server=None):
        cfg = write_config(self.work / "ftps-sync.yaml", server or self.s, self.work / "pw", local, remote,
                           direction, state)
        return self.timed([str(BIN), "sync", "-q", "-c", str(cfg)])

    def rclone(self, src, dst, extra=()):
        """`ftp:/path` names a path on the server; anything else is local."""
        remote = (f":ftp,host=127.0.0.1,port={self.s.port},user={USER},pass={self.obscured},"
                  f"explicit_tls=true,no_check_certificate=true:")
        src = remote + src[4:] if src.startswith("ftp:") else src
        dst = remote + dst[4:] if dst.startswith("ftp:") else dst
        # 4 transfers as the others; no `concurrency` cap: rclone 1.60's FTP backend deadlocks
        # with concurrency=4 and 4 checkers (seen here on downloads). One stream per file, as
        # the others (no multi-thread download).
        return self.timed(["rclone", "sync", src, dst, "--transfers", "4", "--checkers", "4",
                           "--multi-thread-streams", "0", *extra])

    def lftp(self, command):
        script = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no; "
                  f"set net:max-retries 2; {command}; quit")
        return self.timed(["lftp", "-u", f"{USER},{PASSWORD}", "-p", str(self.s.port), "-e", script, "127.0.0.1"])


def tree_summary(root):
    """(files, bytes) under root, part files included (there must be none)."""
    files = total = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            files += 1
            total += os.path.getsize(os.path.join(dirpath, n))
    return files, total


def check_same(tool, case, want_root, got_root):
    want, got = tree_summary(want_root), tree_summary(got_root)
    if want != got:
        sys.exit(f"{tool} / {case}: the destination holds {got} (files, bytes), expected {want}")


def median(xs):
    return statistics.median(xs)


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (vsftpd switches to its FTP account)")
    for tool in ("rclone", "lftp"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install rclone lftp")
    work = Path(tempfile.mkdtemp(prefix="ftps-bench-"))
    os.chmod(work, 0o755)
    server = Vsftpd(work / "vsftpd12", tls12_only=True)
    server13 = Vsftpd(work / "vsftpd13", tls12_only=False)
    tools = Tools(server, work)
    data = work / "datasets"
    print(f"datasets in {data} ...", flush=True)
    make_big(data / "big", BIG_MIB << 20)
    make_tree(data / "small", SMALL_FILES, 50, 4096)
    make_tree(data / "many", MANY_FILES, 100, 1024)
    results = {}

    def record(case, tool, value, rss=None):
        results.setdefault(case, {}).setdefault(tool, []).append((value, rss))

    def fresh(path):
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    try:
        for run in range(RUNS):
            order = ["ftps-sync", "rclone", "lftp"]
            order = order[run % 3:] + order[: run % 3]  # tools alternate
            print(f"run {run + 1}/{RUNS}: {' '.join(order)}", flush=True)
            for case, dataset, unit, size in (("upload 1 GiB", "big", "MiB/s", BIG_MIB),
                                              ("upload 5,000 x 4 KiB", "small", "files/s", SMALL_FILES)):
                for tool in order:
                    server.fill("bench", None)
                    src = data / dataset
                    if tool == "ftps-sync":
                        t, rss = tools.ftps_sync(src, "bench", "upload", fresh(work / "state"))
                    elif tool == "rclone":
                        t, rss = tools.rclone(str(src), "ftp:/bench")
                    else:
                        t, rss = tools.lftp(f"mirror -R --parallel=4 {src} /bench")
                    check_same(tool, case, src, server.data / "bench")
                    record(case, tool, size / t, rss)
            for case, dataset, size in (("download 1 GiB", "big", BIG_MIB),
                                        ("download 5,000 x 4 KiB", "small", SMALL_FILES)):
                server.fill("bench", data / dataset)
                for tool in order:
                    dst = fresh(work / "down")
                    if tool == "ftps-sync":
                        t, rss = tools.ftps_sync(dst, "bench", "download", fresh(work / "state"))
                    elif tool == "rclone":
                        t, rss = tools.rclone("ftp:/bench", str(dst))
                    else:
                        t, rss = tools.lftp(f"mirror --parallel=4 /bench {dst}")
                    check_same(tool, case, data / dataset, dst)
                    record(case, tool, size / t, rss)
            # ftps-sync at TLS 1.3 (extra rows, same server software uncapped).
            server13.fill("bench", None)
            t, rss = tools.ftps_sync(data / "big", "bench", "upload", fresh(work / "state"), server13)
            record("upload 1 GiB, TLS 1.3", "ftps-sync", BIG_MIB / t, rss)
            server13.fill("bench", None)
            t, rss = tools.ftps_sync(data / "small", "bench", "upload", fresh(work / "state"), server13)
            record("upload 5,000 x 4 KiB, TLS 1.3", "ftps-sync", SMALL_FILES / t, rss)

        # No-change re-run over 20,000 files: both sides already equal; each tool warms up once.
        server.fill("many", data / "many")
        local = work / "many-local"
        if local.exists():
            shutil.rmtree(local)
        shutil.copytree(data / "many", local, copy_function=shutil.copy2)
        state = fresh(work / "state-many")
        tools.ftps_sync(local, "many", "both", state)
        tools.rclone(str(local), "ftp:/many", ["--size-only"])
        tools.lftp(f"mirror -R --parallel=4 {local} /many")
        for run in range(RUNS):
            for tool in ["ftps-sync", "rclone", "lftp"][run % 3:] + ["ftps-sync", "rclone", "lftp"][: run % 3]:
                if tool == "ftps-sync":
                    t, rss = tools.ftps_sync(local, "many", "both", state)
                elif tool == "rclone":
                    t, rss = tools.rclone(str(local), "ftp:/many", ["--size-only"])
                else:
                    t, rss = tools.lftp(f"mirror -R --parallel=4 {local} /many")
                check_same(tool, "no-change", local, server.data / "many")
                record("no-change re-run, 20,000 files", tool, t, rss)
    finally:
        server.stop()
        server13.stop()

    units = {"upload 1 GiB": "MiB/s", "download 1 GiB": "MiB/s", "upload 1 GiB, TLS 1.3": "MiB/s"}
    print()
    print(f"ftps-sync benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, loopback, vsftpd explicit FTPS "
          f"(require_ssl_reuse), TLS 1.2 unless noted, 4 connections, medians of {RUNS} runs")
    print()
    print("| case | ftps-sync | rclone 1.60 | lftp 4.9.2 | ftps-sync / best peer | ftps-sync peak RSS |")
    print("|---|---|---|---|---|---|")
    for case, by_tool in results.items():
        unit = "s" if case.startswith("no-change") else units.get(case, "files/s")
        med = {tool: median([v for v, _ in vals]) for tool, vals in by_tool.items()}
        rss = max((r for _, r in by_tool.get("ftps-sync", []) if r), default=0)
        peers = [med[t] for t in ("rclone", "lftp") if t in med]
        if peers:
            best = min(peers) if unit == "s" else max(peers)
            ratio = f"{med['ftps-sync'] / best:.2f}x"
        else:
            ratio = "-"
        cell = lambda t: f"{med[t]:.2f} {unit}" if t in med else "-"
        print(f"| {case} | {cell('ftps-sync')} | {cell('rclone')} | {cell('lftp')} | {ratio} | {rss:.0f} MiB |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
