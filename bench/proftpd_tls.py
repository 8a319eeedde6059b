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

from compare import BIN, PASSWORD, RUNS, SERVERS, check_same, make_tree, median, write_config
from servers import StockProftpd

SMALL_FILES = int(os.environ.get("SMALL_FILES", "2000"))


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
    server = StockProftpd(work / "proftpd", tls12_only=False)
    src = work / "small"
    make_tree(src, SMALL_FILES, 20, 4096)
    rates, retries = {"TLS 1.3": [], "TLS 1.2": []}, {"TLS 1.3": 0, "TLS 1.2": 0}
    try:
        for run in range(RUNS):
            order = ["TLS 1.3", "TLS 1.2"] if run % 2 == 0 else ["TLS 1.2", "TLS 1.3"]
            print(f"run {run + 1}/{RUNS}: {', '.join(order)}", flush=True)
            for case in order:
                server.fill("bench", None)
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
