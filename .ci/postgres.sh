#!/usr/bin/env bash
# What the ledger's PostgreSQL tests (tests/ledger, tests/postgres.py) need: Debian's postgresql
# server binaries under /usr/lib/postgresql/*/bin. The tests start their own throwaway cluster
# on loopback; the package's own cluster and service are not used. .ci/run runs it; see
# docs/LEDGER.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends postgresql
fi
