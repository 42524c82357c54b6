#!/usr/bin/env bash
# Packaging checks: build the wheel, the sdist and the MCP Bundle from this checkout, install
# them the ways the README tells users to (pip into a fresh venv, `uvx --from <wheel>`,
# `uvx hailuo-mcp`, `pipx install hailuo-mcp`, the .mcpb as Claude Desktop reads it), and drive
# each with a real MCP client from outside the checkout (.ci/package_check.py).
#
# Everything it downloads or caches stays in build/package/ inside the clone. hailuo-mcp is not
# on PyPI yet, so the install commands find it in the freshly built dist/ (UV_FIND_LINKS,
# PIP_FIND_LINKS) and take its dependencies from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/build/package
started=$SECONDS

rm -rf "$WORK"
mkdir -p "$WORK/dist" "$WORK/home"
# The real interpreter behind any shim (pyenv's need the real HOME, which the checks replace).
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
export PIP_CACHE_DIR=$WORK/cache/pip
export UV_CACHE_DIR=$WORK/cache/uv
export UV_PYTHON=$PYTHON
export UV_PYTHON_DOWNLOADS=never
export UV_FIND_LINKS=$WORK/dist
export PIP_FIND_LINKS=$WORK/dist
export PIPX_HOME=$WORK/pipx
export PIPX_BIN_DIR=$WORK/pipx/bin
export PIPX_MAN_DIR=$WORK/pipx/man
# pipx as most users have it: installing through pip, not through uv.
export PIPX_DEFAULT_BACKEND=pip

echo "== package: tools (build, uv, pipx)"
"$PYTHON" -m venv "$WORK/tools"
# (pip's notes about this machine's local index folders are noise: dropped.)
"$WORK/tools/bin/pip" install -q build==1.6.1 uv==0.13.9 pipx==1.18.4 \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)

echo "== package: wheel and sdist"
# The sdist first, then the wheel from the sdist: what a downstream rebuild does.
"$WORK/tools/bin/python" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; exit 1; }
ls "$WORK/dist"

echo "== package: MCP Bundle (validate, pack)"
# @anthropic-ai/mcpb, pinned by bundle/package-lock.json.
npm ci --prefix bundle --no-audit --no-fund --silent
version=$(.venv/bin/python -c 'import json; print(json.load(open("bundle/manifest.json"))["version"])')
npx --prefix bundle --no-install mcpb validate bundle/manifest.json
npx --prefix bundle --no-install mcpb pack bundle "$WORK/dist/hailuo-mcp-$version.mcpb" \
    >"$WORK/pack.log" 2>&1 || { cat "$WORK/pack.log"; exit 1; }
grep -E '^(package size|total files):' "$WORK/pack.log"

echo "== package: install and drive"
PATH=$WORK/tools/bin:$PATH .venv/bin/python .ci/package_check.py --work "$WORK"

echo "== package: done in $((SECONDS - started)) s"
