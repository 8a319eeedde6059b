#!/usr/bin/env bash
# The Windows build, checked on Linux: cross-builds ftps-sync.exe, runs it under wine (--version,
# the library's unit tests, `check` and two `sync` passes against a loopback FTPS server, the
# service registered and removed), builds the MSI with wixl and checks its tables.
#
#   bash packaging/windows/check.sh        # needs: rustup target x86_64-pc-windows-gnu,
#                                          # gcc-mingw-w64-x86-64 wine64 wixl msitools (Debian),
#                                          # python3 with pyftpdlib and pyopenssl, openssl
#
# Where a tool cannot be had, it prints one loud SKIPPED line with the reason and exits 0;
# where it can, every step must pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=x86_64-pc-windows-gnu
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

CHECK=windows
# shellcheck source=packaging/check-lib.sh
. packaging/check-lib.sh

rustup target list --installed 2>/dev/null | grep -qx "$TARGET" ||
    skip "the Rust target $TARGET is not installed (rustup target add $TARGET)"
for tool in x86_64-w64-mingw32-gcc wine wixl msiinfo openssl python3; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done
python3 -c 'import pyftpdlib, OpenSSL' 2>/dev/null || skip "python3 lacks pyftpdlib or pyopenssl"

WORK=$(mktemp -d /tmp/ftps-sync-windows.XXXXXX)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    WINEPREFIX=$WORK/prefix wineserver -k 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export WINEPREFIX=$WORK/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="

step "cross-build, and clippy on the Windows-only code"
cargo build --release --target "$TARGET"
cargo clippy --quiet --target "$TARGET" --lib --bins -- -D warnings
OUT=$ROOT/target/$TARGET/release
EXE=$OUT/ftps-sync.exe

# wine 8.0 lacks bcryptprimitives.dll's ProcessPrng, which every Rust binary imports: a test-time
# shim beside the executables (see wine-shim/). It never goes into the MSI.
SHIM=$WORK/bcryptprimitives.dll
x86_64-w64-mingw32-gcc -shared -O2 -o "$SHIM" packaging/windows/wine-shim/bcryptprimitives.c \
    packaging/windows/wine-shim/bcryptprimitives.def -ladvapi32
# What ships (and runs here): the binary without its debug info, 95 MB smaller.
mkdir -p "$OUT/msi"
x86_64-w64-mingw32-strip -o "$OUT/msi/ftps-sync.exe" "$EXE"
BIN=$WORK/bin
mkdir -p "$BIN"
cp "$OUT/msi/ftps-sync.exe" "$SHIM" "$BIN/"
winpath() { echo "Z:$1" | tr / '\\'; }

step "ftps-sync.exe --version under wine"
wineboot --init >/dev/null 2>&1 || true
got=$(wine "$BIN/ftps-sync.exe" --version | tr -d '\r')
[ "$got" = "ftps-sync $VERSION" ] || fail "--version printed '$got'"
echo "$got"

step "unit tests under wine"
cargo test --lib --target "$TARGET" --no-run
cp "$SHIM" "$ROOT/target/$TARGET/debug/deps/"
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine cargo test --lib --target "$TARGET" 2>&1 | tr -d '\r' |
    tee "$WORK/unit.log" | grep -E '^test result|FAILED|panicked' || true
grep -q '^test result: ok' "$WORK/unit.log" || fail "unit tests under wine (log above)"

step "check and sync against a loopback FTPS server"
PKI=$WORK/pki
mkdir -p "$PKI" "$WORK/server" "$WORK/local"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=check-ca \
    -keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$PKI/ext"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 2 -extfile "$PKI/ext" -out "$PKI/server.pem" 2>/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 tests/interop/pyftpd_server.py --port "$PORT" --root "$WORK/server" --cert "$PKI/server.pem" \
    --key "$PKI/server.key" --user win --password secret --log "$WORK/server.log" >"$WORK/server.out" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q READY "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$WORK/server.out" || fail "the test server did not start: $(cat "$WORK/server.out")"

mkdir -p "$WORK/server/docs" "$WORK/local/sub"
echo "from the server" >"$WORK/server/docs/from-server.txt"
echo "a device name" >"$WORK/server/aux.txt"
echo "upper" >"$WORK/server/Case.txt"
echo "lower" >"$WORK/server/case.txt"
echo "server notes" >"$WORK/server/notes.txt"
echo "local notes" >"$WORK/local/Notes.txt"
echo "from windows" >"$WORK/local/from-windows.txt"
echo "deep" >"$WORK/local/sub/deep.txt"
# A file, not an environment variable: the service does not get this shell's environment.
printf secret >"$WORK/password"
cat >"$WORK/config.yaml" <<EOF
server:
  host: 127.0.0.1
  port: $PORT
  user: win
  password_file: $(winpath "$WORK/password")
  ca_file: $(winpath "$PKI/ca.pem")
folders:
  - name: check
    local: $(winpath "$WORK/local")
    remote: /
state_dir: $(winpath "$WORK/state")
EOF
CFG=$(winpath "$WORK/config.yaml")
wine "$BIN/ftps-sync.exe" check -c "$CFG" | tr -d '\r' | tee "$WORK/check.log"
grep -q 'TLS' "$WORK/check.log" || fail "check did not report TLS"

set +e
wine "$BIN/ftps-sync.exe" sync -c "$CFG" >"$WORK/sync.log" 2>&1
code=$?
set -e
tr -d '\r' <"$WORK/sync.log"
# Exit 1: the remote names Windows cannot hold, and the local/remote pair that differs only by
# case, are reported as skipped.
[ "$code" = 1 ] || fail "sync exited $code, expected 1 (skipped names)"
cmp -s "$WORK/server/from-windows.txt" "$WORK/local/from-windows.txt" || fail "upload"
cmp -s "$WORK/server/sub/deep.txt" "$WORK/local/sub/deep.txt" || fail "nested upload"
cmp -s "$WORK/local/docs/from-server.txt" "$WORK/server/docs/from-server.txt" || fail "download"
for n in aux.txt Case.txt case.txt notes.txt; do
    [ ! -e "$WORK/local/$n" ] || fail "$n was written locally"
done
[ ! -e "$WORK/server/Notes.txt" ] || fail "Notes.txt was uploaded beside notes.txt"
grep -q 'cannot hold both' "$WORK/sync.log" || fail "Notes.txt/notes.txt not reported"
grep -q 'reserved device name' "$WORK/sync.log" || fail "aux.txt not reported"
grep -q 'differs only by case' "$WORK/sync.log" || fail "Case.txt/case.txt not reported"
ls "$WORK/local" "$WORK/server" | grep -q 'ftps-sync.part' && fail "a part file was left"

echo "edited on windows" >"$WORK/local/from-windows.txt"
set +e
wine "$BIN/ftps-sync.exe" sync -c "$CFG" >"$WORK/sync2.log" 2>&1
set -e
grep -q '^edited on windows$' "$WORK/server/from-windows.txt" || fail "the second pass did not upload the edit"

step "service install refuses password_env, in the words it uses on Linux"
sed 's/^  password_file: .*/  password_env: FTPS_SYNC_PASSWORD/' "$WORK/config.yaml" >"$WORK/env-config.yaml"
set +e
FTPS_SYNC_PASSWORD=secret wine "$BIN/ftps-sync.exe" service install -c "$(winpath "$WORK/env-config.yaml")" \
    >"$WORK/install-env.log" 2>&1
code=$?
set -e
tr -d '\r' <"$WORK/install-env.log"
[ "$code" = 2 ] || fail "service install with password_env exited $code, expected 2"
grep -q 'use `password_file` for a service' "$WORK/install-env.log" || fail "no password_file hint"
wine reg query 'HKLM\System\CurrentControlSet\Services\ftps-sync' >/dev/null 2>&1 &&
    fail "a service was registered all the same"

step "service install and uninstall under wine's service manager"
KEY='HKLM\System\CurrentControlSet\Services\ftps-sync'
# The service logs at debug level: when it does not stop, its log says what it was doing.
{ cat "$WORK/config.yaml"; printf 'log:\n  level: debug\n'; } >"$WORK/service.yaml"
wine "$BIN/ftps-sync.exe" service install -c "$(winpath "$WORK/service.yaml")" 2>&1 | tr -d '\r' | tee "$WORK/install.log"
grep -q 'registered the service ftps-sync' "$WORK/install.log" || fail "service install"
wine reg query "$KEY" /v ImagePath 2>/dev/null | tr -d '\r' | tee "$WORK/reg.log"
grep -q 'service run -c' "$WORK/reg.log" || fail "the service's command line is not registered"
# Started by install, or (wine's service manager can time out a first start) by sc.
for _ in $(seq 30); do
    wine sc query ftps-sync 2>/dev/null | grep -q RUNNING && break
    wine sc start ftps-sync >/dev/null 2>&1 || sleep 1
done
wine sc query ftps-sync 2>/dev/null | grep -q RUNNING || fail "the service is not running"
# The service runs the daemon loop: a new local file reaches the server.
echo "from the service" >"$WORK/local/service.txt"
for _ in $(seq 200); do [ -f "$WORK/server/service.txt" ] && break; sleep 0.1; done
[ -f "$WORK/server/service.txt" ] ||
    fail "the running service did not sync a new file"
# `service status` asks the service manager, and reads the config from the command line.
wine "$BIN/ftps-sync.exe" service status 2>&1 | tr -d '\r' | tee "$WORK/status.log" || true
grep -q '^state        running' "$WORK/status.log" || fail "service status does not say running"
grep -q '^config       .*service.yaml' "$WORK/status.log" || fail "service status names no config"
# %ProgramData%\ftps-sync\logs (wine's %ProgramData% is C:\users\Public).
SERVICE_LOG=$(find "$WINEPREFIX/drive_c" -path '*ftps-sync/logs/ftps-sync.log*' | head -1)
[ -n "$SERVICE_LOG" ] || fail "the service wrote no log under %ProgramData%"
wine "$BIN/ftps-sync.exe" service uninstall 2>&1 | tr -d '\r' | tee "$WORK/uninstall.log"
grep -q 'removed the service ftps-sync' "$WORK/uninstall.log" || fail "service uninstall"
# The grace period for in-flight transfers is 10 s; the SCM is told to wait 15.
for _ in $(seq 200); do grep -q 'INFO stopped' "$SERVICE_LOG" && break; sleep 0.1; done
sed 's/\x1b\[[0-9;]*m//g' "$SERVICE_LOG" | grep -E 'ftps-sync running|stopping|INFO stopped'
if ! grep -q 'INFO stopped' "$SERVICE_LOG"; then
    echo "-- the service's log, last 80 lines:"
    tail -80 "$SERVICE_LOG" | tr -d '\r'
    fail "the service did not stop cleanly on the SCM's Stop"
fi

step "MSI"
MSI=$OUT/ftps-sync-$VERSION-x64.msi
# wixl takes sources relative to the working directory.
wixl -a x64 -D Version="$VERSION" -D Exe="target/$TARGET/release/msi/ftps-sync.exe" \
    -D Config=packaging/windows/config.yaml -o "$MSI" packaging/windows/ftps-sync.wxs
for table in ServiceInstall ServiceControl File; do
    msiinfo export "$MSI" "$table" | tr -d '\r' >"$WORK/$table.idt"
done
grep -q 'ftps-sync.*service run -c "\[CommonAppDataFolder\]ftps-sync\\config.yaml"' "$WORK/ServiceInstall.idt" ||
    fail "ServiceInstall: $(cat "$WORK/ServiceInstall.idt")"
grep -q 'ftps-sync' "$WORK/ServiceControl.idt" || fail "ServiceControl: $(cat "$WORK/ServiceControl.idt")"
grep -q 'ftps-sync.exe' "$WORK/File.idt" && grep -q 'config.yaml' "$WORK/File.idt" || fail "File table"
grep -q bcryptprimitives "$WORK/File.idt" && fail "the wine shim is in the MSI"
echo "built $MSI ($(stat -c %s "$MSI") bytes)"

step "MSI installed and removed under wine"
cp "$SHIM" "$WORK/prefix/drive_c/windows/system32/" # the wine gap, for the installed copy
wine msiexec /i "$(winpath "$MSI")" /qn
installed="$WORK/prefix/drive_c/Program Files/ftps-sync/ftps-sync.exe"
[ -f "$installed" ] || fail "msiexec did not install ftps-sync.exe"
[ -f "$WORK/prefix/drive_c/ProgramData/ftps-sync/config.yaml" ] || fail "msiexec did not install the config"
wine reg query "$KEY" /v ImagePath 2>/dev/null | tr -d '\r' | tee "$WORK/msi-reg.log"
grep -q 'ftps-sync.exe.*service run -c' "$WORK/msi-reg.log" || fail "the MSI did not register the service"
[ "$(wine "$installed" --version | tr -d '\r')" = "ftps-sync $VERSION" ] || fail "the installed binary does not run"
# Started before its config is filled in, the service stops and says why in its log.
wine sc start ftps-sync >/dev/null 2>&1 || true
for _ in $(seq 100); do
    grep -qsF 'config.yaml:' "$SERVICE_LOG" && break
    sleep 0.1
done
grep -qF 'config.yaml:' "$SERVICE_LOG" || fail "the service did not log why the example config cannot run"
grep -F 'config.yaml:' "$SERVICE_LOG" | tail -1
wine msiexec /x "$(winpath "$MSI")" /qn
[ ! -f "$installed" ] || fail "msiexec /x left the binary"
wine reg query "$KEY" >/dev/null 2>&1 && fail "msiexec /x left the service registered"

echo "windows check: all steps passed"
