#!/usr/bin/env bash
# Installs everything the tests need and runs every test: Rust (cargo test) and
# Python (pytest). Fails on the first failure; never skips for a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ngspice >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq ngspice >/dev/null
fi
python3 -m pip install -q -e '.[test]'
cargo test --workspace --release
python3 -m pytest -q
