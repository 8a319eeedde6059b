#!/usr/bin/env python3
"""Issue 15's measure: a folder of 1,000 files (256 MiB) renamed, and the pass that follows.

For vsftpd and ProFTPD (TLS 1.3, 4 connections): the folder is synced, renamed locally (and,
on ProFTPD, on the server too, in a second round), and the next `ftps-sync sync` is timed, with
move detection on and off (`detect_moves: false`), alternated, 3 runs each; the table gives the
median time, the file bytes the pass sent or received (from `--json`), every byte that crossed
the loopback interface during the pass (TLS, listings, commands: its `tx_bytes` counter, which
counts each packet once, both ways), and checks both trees are byte-identical after each pass.

    sudo python3 bench/moves.py [--runs 3] [--files 1000] [--mib 256]

Needs root (the servers switch to the FTP account) and `cargo build --release`.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from servers import ACCOUNT, PASSWORD, USER, Proftpd, Vsftpd, sh  # noqa: E402

BIN = Path(__file__).resolve().parent.parent / "target" / "release" / "ftps-sync"


def write_config(path, server, work, local, detect):
    path.write_text(f"""server:
  host: 127.0.0.1
  port: {server.port}
  user: {USER}
  password_file: {work / 'pw'}
  ca_file: {server.cert}
  connections: 4
folders:
  - name: moves
    local: {local}
    remote: /moves
    detect_moves: {'true' if detect else 'false'}
    max_delete_percent: 100
state_dir: {work / 'state'}
log: {{ level: warn }}
""")
    return path


def make_folder(root, files, mib):
    size = mib * 1024 * 1024 // files
    root.mkdir(parents=True)
    for i in range(files):
        sub = root / f"part{i % 10}"
        sub.mkdir(exist_ok=True)
        seed = hashlib.sha256(str(i).encode()).digest()
        (sub / f"file{i:04}.bin").write_bytes((seed * (size // len(seed) + 1))[:size])


def digest_tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def loopback_bytes():
    return int(Path("/sys/class/net/lo/statistics/tx_bytes").read_text())


def sync(cfg):
    os.sync()
    wire = loopback_bytes()
    t0 = time.monotonic()
    r = subprocess.run([str(BIN), "sync", "-q", "--json", "-c", str(cfg)], capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    wire = loopback_bytes() - wire
    if r.returncode != 0:
        sys.exit(f"ftps-sync failed ({r.returncode}): {r.stderr.strip()}")
    report = json.loads(r.stdout)[0]
    report["wire"] = wire
    return elapsed, report


def one_run(server_cls, work, files, mib, detect, on_server):
    """A fresh server and folder; synced; renamed; the timed pass. Returns (s, bytes, report)."""
    base = work / "server"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir()
    os.chmod(base, 0o755)
    server = server_cls(base, tls12_only=False)
    try:
        local = work / "local"
        if local.exists():
            shutil.rmtree(local)
        shutil.rmtree(work / "state", ignore_errors=True)
        make_folder(local / "project", files, mib)
        server.fill("moves", None)
        cfg = write_config(work / "ftps-sync.yaml", server, work, local, detect)
        sync(cfg)
        if on_server:
            os.rename(server.data / "moves" / "project", server.data / "moves" / "project-2026")
        else:
            os.rename(local / "project", local / "project-2026")
        elapsed, report = sync(cfg)
        if digest_tree(local) != digest_tree(server.data / "moves"):
            sys.exit(f"{server.name}: trees differ after the pass")
        moved = report["bytes_up"] + report["bytes_down"]
        return elapsed, moved, report
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} missing: cargo build --release")
    work = Path(tempfile.mkdtemp(prefix="ftps-moves-"))
    os.chmod(work, 0o755)
    (work / "pw").write_text(PASSWORD)
    os.chmod(work / "pw", 0o600)
    print(f"# {args.files} files, {args.mib} MiB in all, in 10 subfolders; the pass after the folder's rename;"
          f" medians of {args.runs}, detection on and off alternated; ftps-sync {BIN}")
    print(f"{'server':10} {'renamed':8} {'detection':10} {'time s':>8} {'file bytes':>12} {'on the wire':>13}"
          f" {'moves':>6} {'uploads':>8} {'downloads':>10} {'deletes':>8}")
    cases = [(Vsftpd, False), (Proftpd, False), (Proftpd, True)]
    for server_cls, on_server in cases:
        results = {True: [], False: []}
        for _ in range(args.runs):
            for detect in (True, False):
                results[detect].append(one_run(server_cls, work, args.files, args.mib, detect, on_server))
        for detect in (True, False):
            runs = sorted(results[detect], key=lambda r: r[0])
            elapsed, moved, report = runs[len(runs) // 2]
            print(f"{server_cls.name:10} {'server' if on_server else 'local':8} {'on' if detect else 'off':10}"
                  f" {elapsed:8.2f} {moved / 1048576:8.2f} MiB {report['wire'] / 1048576:9.3f} MiB"
                  f" {report['moved_local'] + report['moved_remote']:6}"
                  f" {report['uploaded']:8} {report['downloaded']:10}"
                  f" {report['deleted_local'] + report['deleted_remote']:8}")
        sys.stdout.flush()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
