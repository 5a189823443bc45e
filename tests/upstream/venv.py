"""The upstream zoo's own virtual environment, created once from pinned lists and cached outside the checkout.

Never the project's .venv: the upstream packages and their imports (datasets, huggingface-hub,
opencv...) would change it. The folder name hashes both lists, so a changed pin builds a new one.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"   # pinned imports of the upstream model code, paddlepaddle included
PACKAGES = HERE / "packages.txt"           # the upstream packages, installed --no-deps


def cache_root() -> Path:
    return Path(os.environ.get("WHERRY_CACHE") or Path.home() / ".cache" / "wherry")


def key() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + PACKAGES.read_bytes() + sys.version.encode())
    return digest.hexdigest()[:12]


def python() -> Path:
    """The venv's python, created (a few minutes, pip's cache makes it faster) when missing."""
    venv = cache_root() / f"upstream-venv-{key()}"
    exe = venv / "bin" / "python"
    if (venv / ".ready").is_file():
        return exe
    if venv.exists():
        shutil.rmtree(venv)  # a half-built one from an interrupted run
    pip = [str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no system site-packages
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, capture_output=True)
    subprocess.run([*pip, "--no-deps", "-r", str(PACKAGES)], check=True, capture_output=True)
    (venv / ".ready").touch()
    return exe
