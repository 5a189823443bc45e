#!/usr/bin/env bash
# Set up wherry's host environment in ./.venv (idempotent, safe to re-run).
# paddlelite ships wheels only for CPython <= 3.10, so the host side needs 3.10.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python310() {
  local candidates=()
  [ -n "${WHERRY_PYTHON:-}" ] && candidates+=("$WHERRY_PYTHON")
  command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    for p in "$root"/versions/3.10*/bin/python; do [ -x "$p" ] && candidates+=("$p"); done
  fi
  for p in "$HOME"/.pyenv/versions/3.10*/bin/python /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -x "$p" ] && candidates+=("$p")
  done
  for p in "${candidates[@]}"; do
    if "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  if ! PY=$(find_python310); then
    echo "wherry setup: no CPython 3.10 found (paddlelite has wheels only up to 3.10)." >&2
    echo "  install one (e.g. 'pyenv install 3.10' or 'apt-get install python3.10') or set WHERRY_PYTHON=/path/to/python3.10" >&2
    exit 1
  fi
  echo "wherry setup: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi

stamp=.venv/.wherry-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ runtimes/pyproject.toml -nt "$stamp" ]; then
  echo "wherry setup: installing wherry, wherry-runtime and the host dependencies into .venv" >&2
  # Two distributions from this checkout: wherry-runtime (runtimes/, what a board installs) and
  # wherry (the converter); both editable, so the checkout is what runs.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ./runtimes -e '.[host,test,docs]'
  touch "$stamp"
fi
