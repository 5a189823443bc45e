#!/usr/bin/env bash
# mypy as CI runs it (.ci/run, .pre-commit-config.yaml): --strict for the runtime (wherry.runtimes),
# plain for the converter and the targets (wherry.convert, wherry.targets). The folders install
# under those names through setuptools' package-dir, which mypy cannot follow through an editable
# install, so mypy reads them through a tree of links (.venv/mypy-tree/wherry/<folder> -> <folder>)
# and its paths are printed back as the checkout's (runtimes/x.py, not wherry/runtimes/x.py).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=$root/.venv/mypy-tree
mkdir -p "$tree/wherry"
for d in runtimes convert targets; do ln -sfn "$root/$d" "$tree/wherry/$d"; done
mypy() { (cd "$tree" && "$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" "$@") | sed 's#^wherry/##'; }
status=0
mypy --strict -p wherry.runtimes || status=1
mypy -p wherry.convert -p wherry.targets || status=1
exit $status
