#!/usr/bin/env python3
"""Time and peak memory of ftps-sync over many small files, against a local vsftpd.

CASE=adopt (the default): both sides start with the same tree (the server's copy is made on
disk, with the same times), so the first pass adopts every file without a transfer and the
second finds nothing to do: what is measured is the scan, the listing, the plan and the state
store at scale.

CASE=transfer: FILES files of SIZE bytes uploaded to an empty server folder, then downloaded
into an empty local one (files per second): the per-file cost of transfers and their records.

    sudo python3 bench/scale.py BIN [BIN...]     # FILES=200000 DIRS=2000 RUNS=3 by default
    sudo python3 bench/scale.py BIN rclone       # rclone (Debian's) side by side, adopt case only
    sudo CASE=transfer FILES=2000 DIRS=20 SIZE=4096 python3 bench/scale.py BIN [BIN...]

Several binaries (say, before and after a change) are run alternately in the same session and
compared there; numbers, not a test. Needs root and vsftpd (bash .ci/install-servers).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import PASSWORD, Tools, Vsftpd, make_tree, write_config  # noqa: E402

FILES = int(os.environ.get("FILES", "200000"))
DIRS = int(os.environ.get("DIRS", "2000"))
RUNS = int(os.environ.get("RUNS", "3"))
CASE = os.environ.get("CASE", "adopt")
SIZE = int(os.environ.get("SIZE", "64"))


def run(binary, work, server, local, state, remote="scale", direction="both", moved_ok=False):
    if binary == "rclone":
        # The peer, as bench/compare.py runs it for its no-change case (sizes only).
        return Tools(server, work, "127.0.0.1").rclone(str(local), f"ftp:/{remote}", ["--size-only"])
    cfg = write_config(work / "scale.yaml", server, work / "pw", local, remote, direction, state)
    os.sync()
    out = work / "time.txt"
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out), binary, "sync", "-q", "--json", "-c", str(cfg)],
                       capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"{binary} failed ({r.returncode}): {r.stderr[-2000:]}")
    moved = r.stdout.count('"uploaded": 0') + r.stdout.count('"downloaded": 0')
    if moved != 2 and not moved_ok:
        sys.exit(f"{binary} transferred files where none were to move: {r.stdout}")
    return elapsed, int(out.read_text().strip().splitlines()[-1]) / 1024


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    work = Path(tempfile.mkdtemp(prefix="ftps-sync-scale-"))
    os.chmod(work, 0o755)
    (work / "pw").write_text(PASSWORD)
    os.chmod(work / "pw", 0o600)
    local = work / "local"
    make_tree(local, FILES, DIRS, SIZE)
    server = Vsftpd(work / "vsftpd", tls12_only=True)
    results = {}
    if CASE == "transfer":
        try:
            transfer(binaries, work, server, local, results)
        finally:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        server.fill("scale", local)
        for i in range(RUNS):
            order = binaries[i % len(binaries):] + binaries[: i % len(binaries)]
            for b in order:
                state = work / f"state-{i}-{order.index(b)}"
                shutil.rmtree(state, ignore_errors=True)
                first = run(b, work, server, local, state)
                again = run(b, work, server, local, state)
                results.setdefault(b, []).append((first, again))
                print(f"run {i + 1} {b}: first pass {first[0]:.1f}s {first[1]:.0f} MiB, "
                      f"no-change pass {again[0]:.1f}s {again[1]:.0f} MiB", flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{FILES} files of 64 B in {DIRS} directories, vsftpd (LIST), TLS 1.2, 4 connections, "
          f"medians of {RUNS} runs, {os.cpu_count()} cores")
    print("| binary | first pass (adopt) | its peak RSS | no-change pass | its peak RSS |")
    print("|---|---|---|---|---|")
    for b, rs in results.items():
        med = lambda xs: statistics.median(xs)
        print(f"| {b} | {med([f[0] for f, _ in rs]):.1f} s | {med([f[1] for f, _ in rs]):.0f} MiB "
              f"| {med([a[0] for _, a in rs]):.1f} s | {med([a[1] for _, a in rs]):.0f} MiB |")


def transfer(binaries, work, server, local, results):
    for i in range(RUNS):
        order = binaries[i % len(binaries):] + binaries[: i % len(binaries)]
        for n, b in enumerate(order):
            name = f"up-{i}-{n}"
            server.fill(name, None)
            up = run(b, work, server, local, work / f"state-{name}", name, "upload", True)
            down_dir = work / f"down-{i}-{n}"
            down_dir.mkdir()
            down = run(b, work, server, down_dir, work / f"state-d-{name}", name, "download", True)
            shutil.rmtree(down_dir)
            results.setdefault(b, []).append((FILES / up[0], FILES / down[0]))
            print(f"run {i + 1} {b}: upload {FILES / up[0]:.0f} files/s, download {FILES / down[0]:.0f} files/s",
                  flush=True)
    print()
    print(f"{FILES} files of {SIZE} B in {DIRS} directories, vsftpd (LIST), TLS 1.2, 4 connections, "
          f"medians of {RUNS} runs, {os.cpu_count()} cores")
    print("| binary | upload | download |")
    print("|---|---|---|")
    for b, rs in results.items():
        print(f"| {b} | {statistics.median([u for u, _ in rs]):.0f} files/s "
              f"| {statistics.median([d for _, d in rs]):.0f} files/s |")


if __name__ == "__main__":
    main()
