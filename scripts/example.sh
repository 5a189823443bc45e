#!/usr/bin/env bash
# Set everything up, then convert the bundled example model and verify it on this host.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/wherry convert --example "$@"
