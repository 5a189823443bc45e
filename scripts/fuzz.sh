#!/usr/bin/env bash
# The long fuzz run: 500 random cases per property of tests/runtimes/test_fuzz.py (3000 in all: manifests,
# damaged bundle data, .npz files, tar uploads, HTTP requests). The normal test run does a small,
# fixed set of the same cases. Extra arguments go to pytest (e.g. -k http).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
WHERRY_FUZZ=long exec .venv/bin/python -m pytest tests/runtimes/test_fuzz.py -p no:cacheprovider "$@"
