#!/usr/bin/env python3
"""The benchmark behind bench/compare.sh: ftps-sync against rclone and lftp, one table per
server, TLS version and link. See compare.sh for how to run it."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import (ACCOUNT, KINDS, PASSWORD, SERVERS, USER, Vsftpd, free_port, sh,  # noqa: E402,F401
                     wait_listening)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("FTPS_SYNC_BIN", ROOT / "target/release/ftps-sync"))
PROXY = Path(os.environ.get("FTPS_SYNC_PROXY", ROOT / "target/release/examples/delay_proxy"))
RUNS = int(os.environ.get("RUNS", "3"))
RTT_MS = float(os.environ.get("RTT_MS", "20"))
CAL_MIB = int(os.environ.get("CAL_MIB", "512"))
# A tool run that takes longer than this has hung (rclone 1.60's FTP backend can deadlock).
TOOL_TIMEOUT = int(os.environ.get("TOOL_TIMEOUT", "900"))
# Another ftps-sync binary to alternate with this one (a build of an earlier commit): a change's
# effect on speed, measured in one run. Its figures are in the table's notes.
BASELINE = Path(os.environ["FTPS_SYNC_BASELINE"]) if os.environ.get("FTPS_SYNC_BASELINE") else None
TOOLS = ("ftps-sync", "rclone", "lftp") + (("baseline",) if BASELINE else ())
# Cargo can leave the binary of the build before in place (a worktree built into the same target
# dir, whose fingerprints then look fresh): a baseline with the same bytes measures nothing.
if BASELINE and BASELINE.read_bytes() == BIN.read_bytes():
    sys.exit(f"the baseline {BASELINE} is the same binary as {BIN}: rebuild this one (touch src/lib.rs)")

# (server, TLS 1.2 only, link) tables: the default subset, and the whole matrix (--full).
SUBSET = [("vsftpd", True, "loopback"), ("proftpd", True, "loopback"), ("pure-ftpd", True, "loopback"),
          ("proftpd", False, "loopback"), ("vsftpd", True, "wan")]
FULL = [(k, t12, link) for link in ("loopback", "wan") for k in KINDS for t12 in (True, False)]


def sizes(full, link):
    """Dataset sizes: (small files, big MiB, files for the no-change run)."""
    env = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
    # The default subset is sized to run in about 15 minutes here (2 cores), most of it lftp's.
    if link == "wan":
        return (env("WAN_SMALL_FILES", 500 if full else 100), env("WAN_BIG_MIB", 1024 if full else 256),
                env("WAN_MANY_FILES", 5000 if full else 1000))
    return env("SMALL_FILES", 2000 if full else 1000), env("BIG_MIB", 1024 if full else 256), env("MANY_FILES", 20000)


def make_tree(root, files, dirs, size):
    root.mkdir(parents=True)
    block = os.urandom(size)
    for d in range(dirs):
        (root / f"d{d:03}").mkdir()
    for i in range(files):
        (root / f"d{i % dirs:03}" / f"f{i:05}.bin").write_bytes(block[i % 7:] + block[: i % 7])


def make_big(root, size_mib):
    root.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    with open(root / "big.bin", "wb") as f:
        for _ in range(size_mib):
            f.write(chunk)


def write_config(cfg, server, password_file, local, remote, direction, state, server_extra="", host="127.0.0.1",
                 connections=4):
    """An ftps-sync config for one folder `name: bench` at `/remote`; returns its path."""
    cfg.write_text(f"""server:
  host: {host}
  port: {server.port}
  user: {USER}
  password_file: {password_file}
  ca_file: {server.cert}
  connections: {connections}
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


class Failed(Exception):
    pass


class Tools:
    """Runs each tool against one server at `host` (the server, or the delay proxy)."""

    def __init__(self, server, work, host):
        self.s, self.work, self.host = server, work, host
        self.obscured = subprocess.run(["rclone", "obscure", PASSWORD], check=True, capture_output=True,
                                       text=True).stdout.strip()
        (work / "pw").write_text(PASSWORD)
        os.chmod(work / "pw", 0o600)

    def timed(self, cmd, cwd=None, capture=False):
        # Write back what earlier runs left dirty, so no tool pays for another's writes.
        os.sync()
        out = self.work / "time.txt"
        t0 = time.monotonic()
        try:
            r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out)] + cmd, cwd=cwd,
                               stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failed(f"hung (no end after {TOOL_TIMEOUT} s)")
        elapsed = time.monotonic() - t0
        if r.returncode != 0:
            raise Failed(f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1:] or ''}")
        rss_kib = int(out.read_text().strip().splitlines()[-1])
        self.stdout = r.stdout if capture else None
        return elapsed, rss_kib / 1024

    def ftps_sync(self, local, remote, direction, state, big=False, binary=BIN):
        tls = '  tls_max_version: "1.2"' if self.s.tls12_only else ""
        cfg = write_config(self.work / "ftps-sync.yaml", self.s, self.work / "pw", local, remote, direction, state,
                           tls, host=self.host)
        return self.timed([str(binary), "sync", "-q", "--json", "-c", str(cfg)], capture=True)

    def confirmed(self):
        """What the last ftps-sync pass did about racy times (docs/design.md, "Racy times"):
        files looked at by MDTM, by the server's hash, by a read-back."""
        passes = json.loads(self.stdout or "[]")
        return tuple(sum(p.get("confirmed", {}).get(k, 0) for p in passes)
                     for k in ("by_mdtm", "by_hash", "by_read_back"))

    def rclone(self, src, dst, extra=(), big=False):
        """`ftp:/path` names a path on the server; anything else is local."""
        remote = (f":ftp,host={self.host},port={self.s.port},user={USER},pass={self.obscured},"
                  f"explicit_tls=true,no_check_certificate=true:")
        src = remote + src[4:] if src.startswith("ftp:") else src
        dst = remote + dst[4:] if dst.startswith("ftp:") else dst
        # No `concurrency` cap: rclone 1.60's FTP backend deadlocks with concurrency=4 and 4
        # checkers. Several streams for one big download where the server allows it.
        run = lambda streams: self.timed(["rclone", "sync", src, dst, "--transfers", "4", "--checkers", "4",  # noqa: E731
                                          "--multi-thread-streams", streams, "--multi-thread-cutoff", "64M",
                                          *extra])
        if big and self.s.rclone_multi_thread:
            try:
                return run("4")
            except Failed:
                # Its best working setting, then: several streams end in 426 on some servers.
                self.s.rclone_multi_thread = False
        return run("0")

    def lftp(self, command):
        script = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no; "
                  f"set net:max-retries 2; set net:timeout 30; {command}; quit")
        return self.timed(["lftp", "-u", f"{USER},{PASSWORD}", "-p", str(self.s.port), "-e", script, self.host])


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
        raise Failed(f"{tool} / {case}: the destination holds {got} (files, bytes), expected {want}")


def median(xs):
    return statistics.median(xs)


def state_root(work):
    """Where the state stores go: STATE_ROOT (a disk-backed file system apart from the servers'
    data, so that the client's fsyncs do not also commit the server's writes), or `work`."""
    return Path(os.environ["STATE_ROOT"]) if os.environ.get("STATE_ROOT") else work


def fresh(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


class Proxy:
    """The delay proxy on 127.0.0.2 in front of the server's control port and passive range."""

    def __init__(self, server, rtt_ms):
        lo, hi = server.passive
        self.proc = subprocess.Popen([str(PROXY), "127.0.0.2", "127.0.0.1", f"{server.port},{lo}-{hi}", str(rtt_ms)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        if self.proc.stdout.readline().strip() != "READY":
            sys.exit(f"delay proxy did not start: {self.proc.stderr.read()}")

    def stats(self):
        """(control-channel turns, data connections) through the proxy so far."""
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        fields = dict(f.split("=") for f in self.proc.stdout.readline().split()[1:])
        return int(fields["turns"]), int(fields["data"])

    def stop(self):
        os.killpg(self.proc.pid, 9)
        self.proc.wait()


CASE_NAMES = ("small-up", "big-up", "small-down", "big-down", "no-change")


def table(kind, tls12, link, full, work, data, wanted=CASE_NAMES):
    """Runs the `wanted` cases of one table; returns (title, rows, notes)."""
    small_n, big_mib, many_n = sizes(full, link)
    wan = link == "wan"
    server = KINDS[kind](work / f"{kind}-{'12' if tls12 else '13'}-{link}", tls12,
                         "127.0.0.2" if wan else "127.0.0.1")
    proxy = Proxy(server, RTT_MS) if wan else None
    tools = Tools(server, work, "127.0.0.2" if wan else "127.0.0.1")
    small, big, many = data / f"small-{small_n}", data / f"big-{big_mib}", data / f"many-{many_n}"
    if not small.exists() and {"small-up", "small-down"} & set(wanted):
        make_tree(small, small_n, 20, 4096)
    if not big.exists() and {"big-up", "big-down"} & set(wanted):
        make_big(big, big_mib)
    if not many.exists() and "no-change" in wanted:
        make_tree(many, many_n, max(1, many_n // 100), 1024)
    results, notes = {}, []
    nochange = "no-change re-run"
    serial = [0]
    # Round trips per small file, through the proxy: {case: {tool: (turns, data connections)}}.
    trips = {}

    def attempt(case, tool, run):
        before = proxy.stats() if proxy else None
        try:
            value, rss = run()
            if before and "x 4 KiB" in case and tool not in trips.get(case, {}):
                after = proxy.stats()
                trips.setdefault(case, {})[tool] = tuple((a - b) / small_n for a, b in zip(after, before))
        except Failed as e:
            notes.append(f"{tool}, {case}: {e}")
            results.setdefault(case, {}).setdefault(tool, [])
            return
        results.setdefault(case, {}).setdefault(tool, []).append((value, rss))

    def broken(case, tool):
        # A tool that failed a case once is not run on it again in this table.
        return case in results and tool in results[case] and not results[case][tool]

    cases = [("upload", f"upload {small_n:,} x 4 KiB", small, small_n, "files/s"),
             ("upload", f"upload {big_mib} MiB", big, big_mib, "MiB/s"),
             ("download", f"download {small_n:,} x 4 KiB", small, small_n, "files/s"),
             ("download", f"download {big_mib} MiB", big, big_mib, "MiB/s")]
    cases = [c for c, name in zip(cases, CASE_NAMES) if name in wanted]
    try:
        for run in range(RUNS):
            order = list(TOOLS[run % len(TOOLS):] + TOOLS[: run % len(TOOLS)])  # tools alternate
            print(f"  run {run + 1}/{RUNS}: {' '.join(order)}", flush=True)
            for way, case, src, size, _ in cases:
                is_big = src == big
                if way == "download":
                    server.fill("bench", src)
                for tool in order:
                    if broken(case, tool):
                        continue
                    # Every run writes into a folder of its own, removed only with the table:
                    # deleting thousands of files right before a run makes ext4 (without a
                    # journal, as here) scan its recently deleted inodes on every create,
                    # which costs every tool alike and hides their differences.
                    serial[0] += 1
                    if way == "upload":
                        into = f"up-{serial[0]}"
                        server.fill(into, None)

                        def go(tool=tool, src=src, into=into):
                            if tool in ("ftps-sync", "baseline"):
                                r = tools.ftps_sync(src, into, "upload", fresh(state_root(work) / "state"), binary=binary(tool))
                            elif tool == "rclone":
                                r = tools.rclone(str(src), f"ftp:/{into}")
                            else:
                                r = tools.lftp(f"mirror -R --parallel=4 {src} /{into}")
                            check_same(tool, case, src, server.data / into)
                            return r
                    else:
                        dst = fresh(work / "down" / str(serial[0]))

                        def go(tool=tool, src=src, dst=dst, is_big=is_big):
                            if tool in ("ftps-sync", "baseline"):
                                r = tools.ftps_sync(dst, "bench", "download", fresh(state_root(work) / "state"),
                                                    binary=binary(tool))
                            elif tool == "rclone":
                                r = tools.rclone("ftp:/bench", str(dst), big=is_big)
                            else:
                                pget = " --use-pget-n=4" if is_big else ""
                                r = tools.lftp(f"mirror --parallel=4{pget} /bench {dst}")
                            check_same(tool, case, src, dst)
                            return r

                    def rate(go=go, size=size):
                        t, rss = go()
                        return size / t, rss

                    attempt(case, tool, rate)
        # No-change re-run: both sides already equal (the server's copy made on disk, times
        # kept); each tool warms up once, then is timed.
        if "no-change" not in wanted:
            raise Skip
        nochange = case = f"no-change re-run, {many_n:,} files"
        server.fill("many", many)
        local = work / "many-local"
        if local.exists():
            shutil.rmtree(local)
        shutil.copytree(many, local, copy_function=shutil.copy2)
        state = fresh(state_root(work) / "state-many")
        runs = {"ftps-sync": lambda: tools.ftps_sync(local, "many", "both", state),
                "rclone": lambda: tools.rclone(str(local), "ftp:/many", ["--size-only"]),
                "lftp": lambda: tools.lftp(f"mirror -R --parallel=4 {local} /many")}
        if BASELINE:
            state_base = fresh(state_root(work) / "state-base")
            runs["baseline"] = lambda: tools.ftps_sync(local, "many", "both", state_base, binary=BASELINE)
        confirmed = []
        for tool, go in runs.items():
            attempt(f"{case} (warm-up)", tool, go)
        for run in range(RUNS):
            for tool in TOOLS[run % len(TOOLS):] + TOOLS[: run % len(TOOLS)]:
                if broken(f"{case} (warm-up)", tool) or broken(case, tool):
                    continue

                def timed(go=runs[tool], tool=tool):
                    t, rss = go()
                    check_same(tool, case, local, server.data / "many")
                    if tool == "ftps-sync":
                        confirmed.append(tools.confirmed())
                    return t, rss

                attempt(case, tool, timed)
        results.pop(f"{case} (warm-up)", None)
        looks = "; ".join(f"{m} by MDTM, {h} by hash, {b} read back" for m, h, b in confirmed)
        notes.append(f"racy times ftps-sync looked at in each timed no-change pass: {looks or 'none timed'}")
    except Skip:
        pass
    finally:
        if proxy:
            proxy.stop()
        server.stop()
        # What this table wrote, so the full matrix fits on disk.
        shutil.rmtree(work / "down", ignore_errors=True)
        shutil.rmtree(server.base, ignore_errors=True)
    for case, by_tool in trips.items():
        figures = ", ".join(f"{t} {turns:.1f} + {data:.1f}" for t, (turns, data) in by_tool.items())
        notes.append(f"round trips per file, {case} (control turns + data connections, first run): {figures}")
    if BASELINE:
        for case, by_tool in results.items():
            med = {t: median([v for v, _ in vals]) for t, vals in by_tool.items() if vals}
            if "ftps-sync" in med and "baseline" in med:
                notes.append(f"{case}: this ftps-sync {med['ftps-sync']:.2f}, the baseline ({BASELINE}) "
                             f"{med['baseline']:.2f}: {med['ftps-sync'] / med['baseline']:.3f}x")
    link_name = f"{RTT_MS:g} ms round trip (delay proxy)" if wan else "loopback"
    title = f"{server.name}, {server.tls}, {link_name}"
    rows = []
    for way, case, _, _, unit in cases:
        rows.append(row(case, unit, results.get(case, {})))
    if "no-change" in wanted:
        rows.append(row(nochange, "s", results.get(nochange, {})))
    return title, rows, notes


class Skip(Exception):
    """The rest of a table is not wanted."""


def row(case, unit, by_tool):
    med = {tool: median([v for v, _ in vals]) for tool, vals in by_tool.items() if vals}
    rss = {tool: max(r for _, r in vals) for tool, vals in by_tool.items() if vals}
    peers = [med[t] for t in ("rclone", "lftp") if t in med]
    ratio = "-"
    if peers and "ftps-sync" in med:
        best = min(peers) if unit == "s" else max(peers)
        ratio = f"{med['ftps-sync'] / best:.2f}x"
    cell = lambda t: f"{med[t]:.2f} {unit}" if t in med else "fails"  # noqa: E731
    mem = lambda t: f"{rss[t]:.0f}" if t in rss else "-"  # noqa: E731
    return (f"| {case} | {cell('ftps-sync')} | {cell('rclone')} | {cell('lftp')} | {ratio} | "
            f"{mem('ftps-sync')} / {mem('rclone')} / {mem('lftp')} |")


def binary(tool):
    return BASELINE if tool == "baseline" else BIN


def calibrate(work, data):
    """One stream through the proxy with no delay against the same without it: the proxy must
    not be what limits the WAN figures."""
    server = Vsftpd(work / "calibrate", True, "127.0.0.2")
    proxy = Proxy(server, 0)
    big = data / "calibrate"
    if not big.exists():
        make_big(big, CAL_MIB)
    server.fill("bench", big)
    tools = Tools(server, work, "127.0.0.2")
    figures = []
    try:
        for host in ("127.0.0.2", "127.0.0.1"):
            tools.host = host
            cfg = write_config(work / "cal.yaml", server, work / "pw", fresh(work / "down"), "bench", "download",
                               fresh(state_root(work) / "state"), '  tls_max_version: "1.2"', host=host, connections=1)
            t, _ = tools.timed([str(BIN), "sync", "-q", "-c", str(cfg)])
            figures.append(CAL_MIB / t)
    finally:
        proxy.stop()
        server.stop()
    return (f"Calibration: one download stream of {CAL_MIB} MiB through the proxy with no delay: {figures[0]:.0f} MiB/s; "
            f"direct: {figures[1]:.0f} MiB/s.")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--full", action="store_true", help="every server, TLS version and link, 1 GiB files")
    p.add_argument("--only", help="tables to run, e.g. vsftpd:1.2:loopback,proftpd:1.3:wan")
    p.add_argument("--cases", default=",".join(CASE_NAMES),
                   help=f"cases to run in each table, of {','.join(CASE_NAMES)}")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the servers switch to their FTP account)")
    for tool in ("rclone", "lftp"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install rclone lftp")
    unknown = set(args.cases.split(",")) - set(CASE_NAMES)
    if unknown:
        sys.exit(f"unknown cases {sorted(unknown)}; choose from {','.join(CASE_NAMES)}")
    tables = FULL if args.full else SUBSET
    if args.only:
        tables = []
        for spec in args.only.split(","):
            kind, tls, link = spec.split(":")
            tables.append((kind, tls == "1.2", link))
    work = Path(tempfile.mkdtemp(prefix="ftps-bench-"))
    os.chmod(work, 0o755)
    data = work / "datasets"
    data.mkdir()
    out = []
    started = time.monotonic()
    try:
        if any(link == "wan" for _, _, link in tables):
            print("calibrating the delay proxy ...", flush=True)
            out.append(calibrate(work, data))
        for kind, tls12, link in tables:
            print(f"{kind}, TLS {'1.2' if tls12 else '1.3'}, {link} ...", flush=True)
            title, rows, notes = table(kind, tls12, link, args.full, work, data, args.cases.split(","))
            out.append("")
            out.append(f"### {title}")
            out.append("")
            out.append("| case | ftps-sync | rclone 1.60 | lftp 4.9.2 | ftps-sync / best peer | peak RSS MiB "
                       "(ftps-sync / rclone / lftp) |")
            out.append("|---|---|---|---|---|---|")
            out.extend(rows)
            for n in notes:
                out.append(f"- {n}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"ftps-sync benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, 4 connections per tool, "
          f"medians of {RUNS} runs, tools alternated; {time.monotonic() - started:.0f} s in all")
    print("\n".join(out))


if __name__ == "__main__":
    main()
