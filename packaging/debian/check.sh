#!/usr/bin/env bash
# The Debian package, built and checked for real on this machine (as root): cargo deb, dpkg -i,
# the files, the conffile, the system user, `ftps-sync --version`, `systemd-analyze verify` of
# the packaged unit, `service install`/`uninstall` on the live system, an upgrade that keeps
# the user's config, then remove and purge.
#
#   sudo bash packaging/debian/check.sh
#
# Where a tool cannot be had, it prints one loud SKIPPED line with the reason and exits 0;
# where it can, every step must pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

CHECK=debian
# shellcheck source=packaging/check-lib.sh
. packaging/check-lib.sh

[ "$(id -u)" = 0 ] || skip "it installs a package: run it as root"
command -v dpkg >/dev/null || skip "dpkg is not installed (not a Debian system)"
command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed (apt-get install systemd)"
if ! command -v cargo-deb >/dev/null; then
    step "installing cargo-deb"
    cargo install --locked --quiet cargo-deb || skip "cargo-deb cannot be installed"
fi

step "cargo deb"
cargo deb --quiet --strip
DEB=$(ls -t target/debian/ftps-sync_"$VERSION"*_*.deb | head -1)
echo "built $DEB ($(stat -c %s "$DEB") bytes)"

step "dpkg -i"
dpkg -i "$DEB"
[ "$(ftps-sync --version)" = "ftps-sync $VERSION" ] || fail "ftps-sync --version: $(ftps-sync --version)"
getent passwd ftps-sync >/dev/null || fail "the system user ftps-sync was not made"
[ -f /lib/systemd/system/ftps-sync.service ] || fail "no unit in /lib/systemd/system"
[ "$(stat -c '%U:%G %a' /etc/ftps-sync/config.yaml)" = "root:ftps-sync 640" ] ||
    fail "config rights: $(stat -c '%U:%G %a' /etc/ftps-sync/config.yaml)"
[ "$(stat -c '%U %a' /var/lib/ftps-sync)" = "ftps-sync 750" ] || fail "state dir: $(stat -c '%U %a' /var/lib/ftps-sync)"
dpkg-query --showformat='${Conffiles}\n' --show ftps-sync | grep -q '/etc/ftps-sync/config.yaml' ||
    fail "/etc/ftps-sync/config.yaml is not a conffile"
for f in /usr/share/doc/ftps-sync/example.yaml /usr/share/doc/ftps-sync/copyright; do
    [ -f "$f" ] || fail "missing $f"
done
# From the package's contents: an image may keep dpkg from installing man pages.
contents=$(dpkg-deb -c "$DEB")
# cargo deb compresses the man page, as Debian wants.
for f in usr/share/man/man1/ftps-sync.1.gz usr/share/bash-completion/completions/ftps-sync \
    usr/share/zsh/vendor-completions/_ftps-sync usr/share/fish/vendor_completions.d/ftps-sync.fish; do
    grep -q " ./$f\$" <<<"$contents" || fail "the package lacks /$f"
done

step "systemd-analyze verify /lib/systemd/system/ftps-sync.service"
out=$(systemd-analyze verify /lib/systemd/system/ftps-sync.service 2>&1 || echo "exit $?")
echo "$out" | grep ftps-sync && fail "systemd-analyze verify complained"
echo "verified"

step "service install refuses a folder the service account cannot write"
mkdir -p /srv/ftps-sync/documents
chmod 755 /srv/ftps-sync/documents
printf 'secret' >/etc/ftps-sync/password
chown root:ftps-sync /etc/ftps-sync/password
chmod 640 /etc/ftps-sync/password
if ftps-sync service install >/tmp/ftps-sync-install.log 2>&1; then
    fail "service install took a folder ftps-sync cannot write: $(cat /tmp/ftps-sync-install.log)"
fi
grep -q "ftps-sync cannot read and write folder documents" /tmp/ftps-sync-install.log ||
    fail "the refusal does not name the folder: $(cat /tmp/ftps-sync-install.log)"
[ ! -e /etc/systemd/system/ftps-sync.service ] || fail "a refused install wrote the unit"
echo "refused, as it should be"

step "service install / status / uninstall on this system"
chown ftps-sync:ftps-sync /srv/ftps-sync/documents
ftps-sync service install | tee /tmp/ftps-sync-install.log
grep -q "checked: ftps-sync can read and write" /tmp/ftps-sync-install.log || fail "install checked nothing"
ftps-sync service status | tee /tmp/ftps-sync-status.log || true
grep -q "config       /etc/ftps-sync/config.yaml" /tmp/ftps-sync-status.log || fail "service status: no config line"
[ -f /etc/systemd/system/ftps-sync.service ] || fail "service install wrote no unit"
cmp -s /etc/systemd/system/ftps-sync.service /lib/systemd/system/ftps-sync.service ||
    fail "the unit for the packaged config differs from the packaged unit"
ftps-sync service uninstall | tee /tmp/ftps-sync-uninstall.log
[ ! -e /etc/systemd/system/ftps-sync.service ] || fail "service uninstall left the unit"

step "an upgrade keeps the user's config"
echo "# edited by the user" >>/etc/ftps-sync/config.yaml
dpkg -i --force-confold "$DEB" >/dev/null
grep -q 'edited by the user' /etc/ftps-sync/config.yaml || fail "the upgrade replaced the user's config"

step "remove and purge"
dpkg -r ftps-sync >/dev/null
[ ! -e /usr/bin/ftps-sync ] || fail "remove left the binary"
[ -f /etc/ftps-sync/config.yaml ] || fail "remove took the config (it goes on purge)"
dpkg -P ftps-sync >/dev/null
[ ! -e /var/lib/ftps-sync ] || fail "purge left /var/lib/ftps-sync"
rm -rf /srv/ftps-sync /etc/ftps-sync

echo "debian check: all steps passed"
