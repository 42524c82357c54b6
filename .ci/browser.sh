#!/usr/bin/env bash
# What the player's browser test (tests/server/test_player_browser.py) needs, installed from the
# registries only: Debian's chromium (never a browser download) and the npm packages of
# tests/apps_host (the ext-apps host bridge, playwright-core driving that chromium, esbuild),
# pinned by tests/apps_host/package-lock.json. .ci/run runs it; see docs/APPS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium
fi
# playwright-core never downloads a browser itself; the variable only makes sure of it.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/apps_host --no-audit --no-fund
