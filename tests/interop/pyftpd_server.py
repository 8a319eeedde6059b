#!/usr/bin/env python3
"""pyftpdlib FTPS servers for the interop and hostile-server tests.

Modes:
  normal          TLS_FTPHandler, TLS required on control and data, MLSD
  list-only       as normal, without MLST/MLSD (Unix LIST)
  dos             as list-only, LIST in DOS/IIS format
  client-cert     as normal, and a client certificate signed by --ca is required
  no-tls          plain FTPHandler: AUTH TLS is refused
  greet-230       greets with 230 (logged in) instead of 220
  hostile-names   MLSD/LIST of the root lists names that try to escape or inject
  hostile-corrupt once <root>/../LIE exists, RETR sends bytes that differ from the listing's
                  size (short.bin) or from XSHA256 (corrupt.bin)
  hostile-empty   lists an empty root once <root>/../EMPTY exists
  epsv-refused    lists EPSV in FEAT but answers it 502 (PASV works)
  epsv-blackhole  answers EPSV with a port whose connections never complete, as behind a
                  firewall that drops them (PASV works)
  flaky-data      refuses every second data command with 425, over all connections
  rename-in-place refuses (553) a rename into another folder, as some servers do
  endless-listing MLSD/LIST of the root streams new short names without end
  endless-line    MLSD/LIST of the root streams one line without end
  long-name       MLSD/LIST of the root holds one name of 2,000 bytes
  long-names      MLSD/LIST of the root streams names of 1,000 bytes without end
  endless-tree    every folder lists 1,000 subfolders (d0000..d0999), however deep
Every command received is appended to --log. Prints READY when listening.
"""
import argparse
import hashlib
import os
import sys
import time

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--root", required=True)
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
p.add_argument("--ca")
p.add_argument("--user", required=True)
p.add_argument("--password", required=True)
p.add_argument("--mode", default="normal")
p.add_argument("--log", required=True)
p.add_argument("--masquerade")
p.add_argument("--passive-ports")
p.add_argument("--no-mlsd", action="store_true", help="leave MLST/MLSD out (Unix LIST only)")
p.add_argument("--max-cons-per-ip", type=int, default=0, help="answer 421 beyond this many connections")
p.add_argument("--readonly-dir", help="a directory (under --root) where the user may not write")
args = p.parse_args()
mode = args.mode

base = FTPHandler if mode == "no-tls" else TLS_FTPHandler


def log(line):
    with open(args.log, "a") as f:
        f.write(line + "\n")


class DosFS(AbstractedFS):
    def format_list(self, basedir, listing, ignore_err=True):
        for name in listing:
            st = self.lstat(os.path.join(basedir, name))
            t = time.gmtime(st.st_mtime)
            stamp = time.strftime("%m-%d-%y  %I:%M%p", t)
            size = "<DIR>         " if os.path.isdir(os.path.join(basedir, name)) else f"{st.st_size:>14}"
            yield f"{stamp}       {size} {name}\r\n".encode("utf-8", "surrogateescape")


class EmptyFS(AbstractedFS):
    """Says the root is empty once <root>/../EMPTY exists."""

    def listdir(self, path):
        marker = os.path.join(self.root, "..", "EMPTY")
        if os.path.exists(marker) and os.path.realpath(path) == os.path.realpath(self.root):
            return []
        return super().listdir(path)


DATA_COMMANDS = ("RETR", "STOR", "APPE", "LIST", "MLSD", "NLST")
_data_commands = [0]


class Handler(base):
    def pre_process_command(self, line, cmd, arg):
        log(cmd if cmd in ("PASS",) else line)
        if mode == "flaky-data" and cmd in DATA_COMMANDS and self.authenticated:
            _data_commands[0] += 1
            if _data_commands[0] % 2 == 0:
                self.respond("425 Can't open data connection (flaky-data).")
                return
        return super().pre_process_command(line, cmd, arg)

    def handle(self):
        if mode == "greet-230":
            self.on_connect()
            self.respond("230 Already logged in, go ahead.")
            return
        super().handle()

    # ---- hostile listings ----
    def _hostile_lines(self, mlsd):
        root = self.fs.root
        real = sorted(n for n in os.listdir(root) if not n.startswith(".ftps"))
        fake = ["../x", "/etc/x", "a/../../x", "sub/../../y", "back\\slash", "nul\0name", "cr\rname", ".", "..",
                "dup.txt", "evil-link"]
        lines = []
        for name in real + fake:
            full = os.path.join(root, name)
            if name in real:
                st = os.stat(full)
                kind = "dir" if os.path.isdir(full) else "file"
                size, mtime = st.st_size, st.st_mtime
            else:
                kind, size, mtime = "file", 3, 1767225600
            if name == "evil-link":
                kind = "OS.unix=slink:/etc/passwd"
            if mlsd:
                stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime))
                lines.append(f"type={kind};size={size};modify={stamp}; {name}\r\n")
            else:
                t = "d" if kind == "dir" else ("l" if "slink" in kind else "-")
                stamp = time.strftime("%b %d %H:%M", time.gmtime(mtime))
                lines.append(f"{t}rw-r--r--   1 owner group {size:>8} {stamp} {name}\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape")

    def _is_root(self, path):
        return os.path.realpath(path) == os.path.realpath(self.fs.root)

    def ftp_MLSD(self, path):
        if mode == "hostile-names" and self._is_root(path):
            self.push_dtp_data(self._hostile_lines(True), cmd="MLSD")
            return path
        if self._endless(path, True, "MLSD"):
            return path
        return super().ftp_MLSD(path)

    def ftp_LIST(self, path):
        if mode == "hostile-names" and self._is_root(path):
            self.push_dtp_data(self._hostile_lines(False), cmd="LIST")
            return path
        if self._endless(path, False, "LIST"):
            return path
        return super().ftp_LIST(path)

    # ---- listings without end (each bound on what a listing may make the client hold) ----
    def _endless(self, path, mlsd, cmd):
        if mode not in ENDLESS or (mode != "endless-tree" and not self._is_root(path)):
            return False

        def line(name, kind="file"):
            if mlsd:
                return f"type={kind};size=3;modify=20260101000000; {name}\r\n"
            t = "d" if kind == "dir" else "-"
            return f"{t}rw-r--r--   1 owner group        3 Jan 01  2026 {name}\r\n"

        def lines():
            if mode == "endless-line":
                yield b"type=file;size=3; "
                while True:
                    yield b"x" * 65536
            elif mode == "long-name":
                yield line("n" * 2000).encode()
            elif mode == "endless-tree":
                yield "".join(line(f"d{i:04}", "dir") for i in range(1000)).encode()
            else:
                width = 1000 if mode == "long-names" else 12
                i = 0
                while True:
                    yield "".join(line(f"{i + k:0{width}}") for k in range(1000)).encode()
                    i += 1000

        self.push_dtp_data(Endless(lines()), isproducer=True, cmd=cmd)
        return True

    # ---- EPSV that does not work ----
    def ftp_EPSV(self, line):
        if mode == "epsv-refused":
            self.respond("502 EPSV not allowed here.")
            return
        if mode == "epsv-blackhole":
            self.respond(f"229 Entering extended passive mode (|||{blackhole_port()}|).")
            return
        return super().ftp_EPSV(line)

    # ---- hostile transfers ----
    def ftp_RETR(self, file):
        name = os.path.basename(file)
        lie = os.path.exists(os.path.join(self.fs.root, "..", "LIE"))
        if mode == "hostile-corrupt" and lie and name in ("corrupt.bin", "short.bin"):
            with open(file, "rb") as f:
                data = bytearray(f.read())
            if name == "corrupt.bin":
                data[len(data) // 2] ^= 0xFF
            else:
                data = data[: len(data) // 2]
            log(f"LIED about {name}")
            self.push_dtp_data(bytes(data), cmd="RETR")
            return file
        return super().ftp_RETR(file)

    def ftp_RNTO(self, path):
        source = self._rnfr
        if mode == "rename-in-place" and source and os.path.dirname(source) != os.path.dirname(path):
            self._rnfr = None
            self.respond("553 Renaming into another folder is not allowed.")
            return
        return super().ftp_RNTO(path)

    def ftp_XSHA256(self, path):
        with open(path, "rb") as f:
            self.respond("250 " + hashlib.sha256(f.read()).hexdigest())

    def ftp_FEAT(self, line):
        if mode == "hostile-corrupt":
            self._extra_feats = list(getattr(self, "_extra_feats", [])) + ["XSHA256"]
        return super().ftp_FEAT(line)


ENDLESS = ("endless-listing", "endless-line", "long-name", "long-names", "endless-tree")


class Endless:
    """A producer of the chunks of a generator (pyftpdlib's own needs a finite iterator)."""

    def __init__(self, chunks):
        self.chunks = chunks

    def more(self):
        return next(self.chunks, b"")


_blackhole = []


def blackhole_port():
    """A port whose accept queue is full: Linux drops further SYNs, so a connect hangs."""
    if not _blackhole:
        import socket

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        addr = listener.getsockname()
        fillers = []
        for _ in range(2):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(addr)
            fillers.append(c)
        time.sleep(0.2)
        _blackhole.extend([listener] + fillers)
    return _blackhole[0].getsockname()[1]


Handler.proto_cmds = dict(Handler.proto_cmds)
Handler.proto_cmds["XSHA256"] = dict(perm="r", auth=True, arg=True, help="Syntax: XSHA256 <SP> file-name.")
if mode in ("list-only", "dos") or args.no_mlsd:
    for cmd in ("MLST", "MLSD"):
        Handler.proto_cmds.pop(cmd, None)
if args.masquerade:
    Handler.masquerade_address = args.masquerade
    # pyftpdlib cannot masquerade EPSV; the EPSV modes answer it themselves.
    for cmd in ("EPSV", "EPRT") if not mode.startswith("epsv-") else ("EPRT",):
        Handler.proto_cmds.pop(cmd, None)
if args.passive_ports:
    lo, hi = map(int, args.passive_ports.split("-"))
    Handler.passive_ports = range(lo, hi + 1)
if mode == "dos":
    Handler.abstracted_fs = DosFS
if mode == "hostile-empty":
    Handler.abstracted_fs = EmptyFS
if base is TLS_FTPHandler:
    Handler.certfile = args.cert
    Handler.keyfile = args.key
    Handler.tls_control_required = True
    Handler.tls_data_required = True
    if mode == "client-cert":
        from OpenSSL import SSL

        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.use_certificate_chain_file(args.cert)
        ctx.use_privatekey_file(args.key)
        ctx.load_verify_locations(args.ca)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: a[-1])
        Handler.ssl_context = ctx

authorizer = DummyAuthorizer()
authorizer.add_user(args.user, args.password, args.root, perm="elradfmwMT")
if args.readonly_dir:
    ro = os.path.join(args.root, args.readonly_dir)
    os.makedirs(ro, exist_ok=True)
    authorizer.override_perm(args.user, ro, perm="elr", recursive=True)
Handler.authorizer = authorizer
server = FTPServer(("127.0.0.1", args.port), Handler)
if args.max_cons_per_ip:
    server.max_cons_per_ip = args.max_cons_per_ip
print("READY", flush=True)
server.serve_forever(handle_exit=True)
