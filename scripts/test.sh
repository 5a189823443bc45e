#!/usr/bin/env bash
# Set everything up, then run the test suite (JUnit XML goes to out/junit.xml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
exec .venv/bin/python -m pytest --junitxml=out/junit.xml "$@"
