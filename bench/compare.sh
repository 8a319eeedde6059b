#!/usr/bin/env bash
# Benchmark: ftps-sync vs `rclone sync` vs `lftp mirror`, 4 connections each, against local
# vsftpd, ProFTPD and Pure-FTPd (explicit FTPS), at TLS 1.2 and 1.3, on loopback and through a
# delay proxy (20 ms round trip: RTT_MS). Prints one table per server, TLS version and link:
# medians, the ratio to the best peer, and each tool's peak RSS. Numbers, not a test.
#
#   sudo bench/compare.sh                  # a subset, about 15 minutes (RUNS=3)
#   sudo bench/compare.sh --full           # the whole matrix, 1 GiB files
#   sudo bench/compare.sh --only vsftpd:1.2:loopback,proftpd:1.3:wan
#
# Sizes: SMALL_FILES (2000), BIG_MIB (256; 1024 with --full), MANY_FILES (20000), and WAN_*
# for the delay-proxy tables. Needs root (the servers switch to their FTP account), the servers
# (bash .ci/install-servers), rclone and lftp (apt-get install rclone lftp).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo build --release --quiet --example delay_proxy
exec python3 bench/compare.py "$@"
