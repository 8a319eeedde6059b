#!/usr/bin/env python3
"""ftps-sync small-file uploads to stock ProFTPD at TLS 1.3 against the same capped at TLS 1.2.

Stock ProFTPD (mod_tls, session reuse required, its default) at TLS 1.3 gives two session
tickets per control connection and none on a data connection it only reads (an upload), and
refuses a data connection that does not resume its control connection's session. ftps-sync
proves that once and gives the server TLS 1.2 (docs/design.md, "What is learned about a
server"). This runs, in one go and alternating, ftps-sync uploads of SMALL_FILES x 4 KiB files
in 20 directories:
  - first run: an empty state dir, so the run pays the one refusal that proves it;
  - second run: the state dir holds what a first run learned (no folder state: all files go);
  - TLS 1.2: capped by the config (`tls_max_version`),
the server the same, and prints files/s (medians of RUNS), the ratios to TLS 1.2, the retries
each case needed (from `--json`) and the "did not reuse" lines in ProFTPD's TLS log per case.

    sudo python3 bench/proftpd_tls.py          # RUNS=3 SMALL_FILES=2000 by default
    sudo WAN=1 SMALL_FILES=300 python3 bench/proftpd_tls.py   # through the 20 ms delay proxy

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

from compare import BIN, PASSWORD, RTT_MS, RUNS, SERVERS, Proxy, check_same, make_tree, median, write_config
from servers import StockProftpd

SMALL_FILES = int(os.environ.get("SMALL_FILES", "2000"))
# WAN=1: through the delay proxy (RTT_MS, 20 by default), as users' servers are far away.
WAN = os.environ.get("WAN") == "1"
HOST = "127.0.0.2" if WAN else "127.0.0.1"


CASES = ["first run", "second run", "TLS 1.2"]


def upload(server, work, src, case):
    state = work / "state"
    if state.exists():
        shutil.rmtree(state)
    learned = work / "learned"
    if case == "second run":
        shutil.copytree(learned, state / "servers")
    cap_line = '  tls_max_version: "1.2"' if case == "TLS 1.2" else ''
    cfg = write_config(work / "ftps-sync.yaml", server, work / "pw", src, "bench", "upload", state, cap_line,
                       host=HOST)
    os.sync()
    t0 = time.monotonic()
    r = subprocess.run([str(BIN), "sync", "-q", "--json", "-c", str(cfg)], capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"ftps-sync failed ({r.returncode}): {r.stderr[-2000:]}")
    if case == "first run":
        if not (state / "servers").exists():
            sys.exit("the first run learned nothing: is the server stock ProFTPD at TLS 1.3?")
        if learned.exists():
            shutil.rmtree(learned)
        shutil.copytree(state / "servers", learned)
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
    server = StockProftpd(work / "proftpd", tls12_only=False, pasv_address=HOST)
    proxy = Proxy(server, RTT_MS) if WAN else None
    src = work / "small"
    make_tree(src, SMALL_FILES, 20, 4096)
    rates = {c: [] for c in CASES}
    retries = {c: 0 for c in CASES}
    refused = {c: 0 for c in CASES}
    try:
        for run in range(RUNS):
            # Rotated, so each case runs in each place; the first run comes first once, so the
            # second run has something learned to start from.
            order = CASES[run % 3:] + CASES[:run % 3]
            print(f"run {run + 1}/{RUNS}: {', '.join(order)}", flush=True)
            for case in order:
                server.fill("bench", None)
                before = server.refused()
                t, n = upload(server, work, src, case)
                check_same(f"ftps-sync {case}", "upload", src, server.data / "bench")
                rates[case].append(SMALL_FILES / t)
                retries[case] += n
                refused[case] += server.refused() - before
    finally:
        if proxy:
            proxy.stop()
        server.stop()
    print()
    print(f"ftps-sync to ProFTPD 1.3.8 (stock mod_tls: session reuse required, TLS 1.2 and 1.3), "
          f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"{f'{RTT_MS:g} ms round trip (delay proxy)' if WAN else 'loopback'}, 4 connections, "
          f"upload {SMALL_FILES:,} x 4 KiB, medians of {RUNS}")
    print()
    print("| case | files/s (runs) | median | / TLS 1.2 | retries (all runs) | 'did not reuse' (all runs) |")
    print("|---|---|---|---|---|---|")
    base = median(rates["TLS 1.2"])
    for case in CASES:
        runs = ", ".join(f"{r:.0f}" for r in rates[case])
        m = median(rates[case])
        print(f"| {case} | {runs} | {m:.0f} | {m / base:.2f}x | {retries[case]} | {refused[case]} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
