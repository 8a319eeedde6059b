# Shared by the packaging checks: set CHECK to the check's name, then source this file.
# shellcheck shell=bash
skip() {
    echo "SKIPPED $CHECK check: $*"
    exit 0
}
step() { echo "== $CHECK check: $*"; }
fail() {
    echo "FAILED $CHECK check: $*" >&2
    exit 1
}
