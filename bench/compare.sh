#!/usr/bin/env bash
# Benchmark: ftps-sync vs `rclone sync` vs `lftp mirror` against a local vsftpd (explicit FTPS,
# require_ssl_reuse=YES, TLS capped at 1.2 because rclone 1.60 cannot use vsftpd at TLS 1.3),
# 4 connections each, on loopback. Prints a table of medians and ratios; numbers, not a test.
#
#   sudo bench/compare.sh            # RUNS=3 by default; RUNS=5 bench/compare.sh for more
#
# Needs root (vsftpd switches to its FTP account), vsftpd (bash .ci/install-servers, or
# Debian's vsftpd package), rclone and lftp (Debian packages: apt-get install rclone lftp).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/compare.py "$@"
