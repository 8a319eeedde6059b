#!/usr/bin/env python3
"""Service measurements for `ftps-sync run` against a local vsftpd (explicit FTPS, TLS 1.3):
change latency, a burst of files, idle cost. Numbers, not a test.

    sudo python3 bench/service.py        # after cargo build --release and .ci/install-servers
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
import compare  # noqa: E402  (the vsftpd set-up is shared)

EDITS = int(os.environ.get("EDITS", "100"))
BURST = int(os.environ.get("BURST", "1000"))
IDLE_FILES = int(os.environ.get("IDLE_FILES", "20000"))
IDLE_SECONDS = int(os.environ.get("IDLE_SECONDS", "60"))


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid, key="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


def start_run(work, server, local, remote, extra=""):
    cfg = work / f"run-{remote}.yaml"
    cfg.write_text(f"""server:
  host: 127.0.0.1
  port: {server.port}
  user: {compare.USER}
  password_file: {work / 'pw'}
  ca_file: {server.cert}
folders:
  - name: {remote}
    local: {local}
    remote: /{remote}
    max_delete_percent: 100
state_dir: {work / ('state-' + remote)}
debounce: 300ms
poll_interval: 60s
{extra}""")
    log = open(work / f"run-{remote}.log", "w")
    return subprocess.Popen([str(compare.BIN), "run", "-c", str(cfg)], stdout=log, stderr=log)


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (vsftpd switches to its FTP account)")
    work = Path(tempfile.mkdtemp(prefix="ftps-service-"))
    os.chmod(work, 0o755)
    (work / "pw").write_text(compare.PASSWORD)
    os.chmod(work / "pw", 0o600)
    server = compare.Vsftpd(work / "vsftpd", tls12_only=False)
    try:
        # 1. Change latency.
        server.fill("lat", None)
        local = work / "lat"
        local.mkdir()
        proc = start_run(work, server, local, "lat")
        time.sleep(1.5)
        latencies = []
        for i in range(EDITS):
            content = f"edit {i} {time.time()}\n".encode()
            p = local / f"f{i % 10}.txt"
            with open(p, "wb") as f:
                f.write(content)
            t0 = time.monotonic()
            target = server.data / "lat" / p.name
            ok = wait_for(lambda: target.exists() and target.read_bytes() == content, 30)
            if not ok:
                sys.exit(f"edit {i} never reached the server")
            latencies.append(time.monotonic() - t0)
            time.sleep(0.2)
        # 2. A burst of files at once.
        log_path = work / "run-lat.log"
        before = log_path.read_text().count(" uploaded, ")
        burst = local / "burst"
        burst.mkdir()
        t0 = time.monotonic()
        for i in range(BURST):
            (burst / f"b{i:04}.txt").write_bytes(b"x" * 100)
        ok = wait_for(lambda: len(list((server.data / "lat" / "burst").glob("*.txt"))) == BURST
                      if (server.data / "lat" / "burst").exists() else False, 120)
        burst_seconds = time.monotonic() - t0
        time.sleep(1)
        passes = log_path.read_text().count(" uploaded, ") - before
        proc.terminate()
        proc.wait(30)
        if not ok:
            sys.exit("the burst never fully reached the server")

        # 3. Idle cost over a synced tree.
        many = work / "many-src"
        compare.make_tree(many, IDLE_FILES, 100, 1024)
        server.fill("idle", many)
        local = work / "idle"
        shutil.copytree(many, local, copy_function=shutil.copy2)
        proc = start_run(work, server, local, "idle")
        wait_for(lambda: "ftps-sync running" in (work / "run-idle.log").read_text(), 10)
        time.sleep(10)  # the first pass (adopting 20,000 files) is over by now
        c0 = cpu_seconds(proc.pid)
        time.sleep(IDLE_SECONDS)
        idle_cpu = cpu_seconds(proc.pid) - c0
        rss, hwm = rss_mib(proc.pid), rss_mib(proc.pid, "VmHWM")
        # 4. Change latency inside the big tree (the watcher's passes look at the changed paths).
        files = sorted(p for p in local.rglob("*") if p.is_file())[:10]
        big_latencies = []
        for i in range(EDITS // 5):
            content = f"big-tree edit {i} {time.time()}\n".encode()
            p = files[i % len(files)]
            p.write_bytes(content)
            t0 = time.monotonic()
            target = server.data / "idle" / p.relative_to(local)
            if not wait_for(lambda: target.exists() and target.read_bytes() == content, 30):
                sys.exit(f"big-tree edit {i} never reached the server")
            big_latencies.append(time.monotonic() - t0)
            time.sleep(0.2)
        proc.terminate()
        proc.wait(30)
    finally:
        server.stop()

    lat = sorted(latencies)
    p95 = lat[max(0, int(len(lat) * 0.95) - 1)]
    print(f"ftps-sync run, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, vsftpd explicit FTPS TLS 1.3, "
          "debounce 300ms, poll_interval 60s")
    print(f"change latency over {len(lat)} edits (file closed -> readable on the server): "
          f"median {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
    print(f"burst of {BURST} files created at once: all on the server after {burst_seconds:.1f} s, "
          f"in {passes} passes with uploads")
    big = sorted(big_latencies)
    print(f"change latency in the {IDLE_FILES}-file tree over {len(big)} edits: "
          f"median {statistics.median(big) * 1000:.0f} ms, max {big[-1] * 1000:.0f} ms")
    print(f"idle, watching {IDLE_FILES} files for {IDLE_SECONDS} s: {idle_cpu:.2f} s CPU, RSS {rss:.0f} MiB "
          f"(peak {hwm:.0f} MiB)")
    if not os.environ.get("KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")


if __name__ == "__main__":
    main()
