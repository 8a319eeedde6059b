#!/usr/bin/env python3
"""Issue 13 item 3b's measure: one big file uploaded to vsftpd with `lock_upload_files=NO` (the
one server here that keeps the bytes around writes at offsets and lets two run into one file at
once; by default vsftpd locks a file for the whole of an upload), in ranges over 4 connections
against one stream, and against lftp's `put`, alternated, medians of `--runs`.

ftps-sync's cases:
- one stream, `verify: auto` (vsftpd has no hash command: size only; its default);
- one stream, `verify: download` (every byte read back and compared);
- ranges (`segment_from: 64MiB`), `verify: download` (ranges need a check of the whole).
Every run starts from an empty server folder and state, and checks the server's file is
byte-identical to the local one after it.

    sudo python3 bench/segmented_upload.py [--runs 3] [--mib 1024] [--tls12] [--wan]

`--wan` puts compare.py's delay proxy (20 ms round trip, 127.0.0.2) in front of the server's
control port and passive range, for every tool (`cargo build --release --examples` first).

Needs root (the server switches to the FTP account), `cargo build --release`, lftp and rclone.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import PROXY, RTT_MS, Proxy  # noqa: E402
from servers import PASSWORD, USER, Vsftpd  # noqa: E402

class UnlockedVsftpd(Vsftpd):
    extra = "lock_upload_files=NO\n"


BIN = Path(__file__).resolve().parent.parent / "target" / "release" / "ftps-sync"


def write_config(path, server, work, local, verify, segment_from, tls12, host):
    cap = '  tls_max_version: "1.2"\n' if tls12 else ""
    path.write_text(f"""server:
  host: {host}
  port: {server.port}
  user: {USER}
  password_file: {work / 'pw'}
  ca_file: {server.cert}
  connections: 4
  segment_from: {segment_from}
{cap}folders:
  - name: big
    local: {local}
    remote: /big
state_dir: {work / 'state'}
verify: {verify}
log: {{ level: warn }}
""")
    return path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


CASES = {
    "ftps-sync one stream, verify auto (size)": ("auto", "off"),
    "ftps-sync one stream, verify download": ("download", "off"),
    "ftps-sync ranges, verify download": ("download", "64MiB"),
    "lftp put (no check)": "lftp",
    "rclone copyto (size check)": "rclone",
}


def run_case(case, server, work, local, tls12, host):
    server.fill("big", None)
    shutil.rmtree(work / "state", ignore_errors=True)
    os.sync()
    spec = CASES[case]
    if spec == "lftp":
        script = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no; "
                  f"put {local / 'big.bin'} -o /big/big.bin; quit")
        cmd = ["lftp", "-u", f"{USER},{PASSWORD}", "-p", str(server.port), "-e", script, host]
    elif spec == "rclone":
        obscured = subprocess.run(["rclone", "obscure", PASSWORD], check=True, capture_output=True,
                                  text=True).stdout.strip()
        remote = (f":ftp,host={host},port={server.port},user={USER},pass={obscured},"
                  f"explicit_tls=true,no_check_certificate=true:/big/big.bin")
        cmd = ["rclone", "copyto", str(local / "big.bin"), remote]
    else:
        cfg = write_config(work / "c.yaml", server, work, local, spec[0], spec[1], tls12, host)
        cmd = [str(BIN), "sync", "-q", "-c", str(cfg)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        if spec == "rclone":
            # rclone 1.60 fails against vsftpd at TLS 1.3 ("unexpected EOF", SERVERS.md).
            return None
        sys.exit(f"{case} failed ({r.returncode}): {r.stderr.strip()}")
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--tls12", action="store_true")
    ap.add_argument("--wan", action="store_true")
    args = ap.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} missing: cargo build --release")
    for tool in ("lftp", "rclone"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install lftp rclone")
    work = Path(tempfile.mkdtemp(prefix="ftps-segup-"))
    os.chmod(work, 0o755)
    (work / "pw").write_text(PASSWORD)
    os.chmod(work / "pw", 0o600)
    local = work / "local"
    local.mkdir()
    seed = hashlib.sha256(b"segmented upload").digest()
    with open(local / "big.bin", "wb") as f:
        block = seed * (1 << 15)  # 1 MiB
        for i in range(args.mib):
            f.write(hashlib.sha256(i.to_bytes(8, "little")).digest() + block[32:])
    want = sha256(local / "big.bin")
    base = work / "server"
    base.mkdir()
    os.chmod(base, 0o755)
    if args.wan and not PROXY.exists():
        sys.exit(f"{PROXY} missing: cargo build --release --examples")
    server = UnlockedVsftpd(base, args.tls12, "127.0.0.2" if args.wan else "127.0.0.1")
    proxy = Proxy(server, RTT_MS) if args.wan else None
    host = "127.0.0.2" if args.wan else "127.0.0.1"
    times = {c: [] for c in CASES}
    try:
        for _ in range(args.runs):
            for case in CASES:
                t = run_case(case, server, work, local, args.tls12, host)
                times[case].append(t)
                if t is not None and sha256(server.data / "big" / "big.bin") != want:
                    sys.exit(f"{case}: the server's file differs from the local one")
    finally:
        if proxy:
            proxy.stop()
        server.stop()
    link = f"through the delay proxy ({RTT_MS:g} ms round trip)" if args.wan else "on loopback"
    print(f"# {args.mib} MiB to vsftpd (lock_upload_files=NO) {link}, {server.tls}, 4 connections; medians of {args.runs},"
          f" cases alternated; ftps-sync {BIN}")
    print(f"{'case':44} {'time s':>8} {'MiB/s':>8}  runs")
    for case, ts in times.items():
        if None in ts:
            print(f"{case:44} {'fails':>8}")
            continue
        med = sorted(ts)[len(ts) // 2]
        runs = " ".join(f"{t:.2f}" for t in ts)
        print(f"{case:44} {med:8.2f} {args.mib / med:8.1f}  {runs}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
