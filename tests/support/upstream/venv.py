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

from wherry.convert.tool_env import base_interpreter, is_ready

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"   # pinned imports of the upstream model code, paddlepaddle included
PACKAGES = HERE / "packages.txt"           # the upstream packages, installed --no-deps


def cache_root() -> Path:
    return Path(os.environ.get("WHERRY_CACHE") or Path.home() / ".cache" / "wherry")


# The legacy twins come from Paddle 2.6.2, the release these upstream versions were written for: Paddle
# 3.3.1 under FLAGS_enable_pir_api=0 rejects most of them ("argument must be Value, but got Variable").
LEGACY_PADDLE = "2.6.2"
# pins Paddle 2.6.2 brings its own range for (protobuf<=3.20.2 era, opt_einsum==3.3.0)
_PADDLE_OWN = ("paddlepaddle", "protobuf", "opt-einsum")


def requirements(paddle: str) -> str:
    lines = REQUIREMENTS.read_text().splitlines()
    if paddle == LEGACY_PADDLE:
        lines = [ln for ln in lines if ln.split("==")[0].lower() not in _PADDLE_OWN] + [f"paddlepaddle=={paddle}"]
    return "\n".join(lines) + "\n"


def key(paddle: str = "3.3.1") -> str:
    digest = hashlib.sha256(requirements(paddle).encode() + PACKAGES.read_bytes() + sys.version.encode())
    return digest.hexdigest()[:12]


def python(paddle: str = "3.3.1") -> Path:
    """The venv's python, created (a few minutes, pip's cache makes it faster) when missing."""
    venv = cache_root() / f"upstream-venv-{key(paddle)}"
    exe = venv / "bin" / "python"
    if is_ready(venv):
        return exe
    if venv.exists():
        shutil.rmtree(venv)  # a half-built one from an interrupted run
    pip = [str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([base_interpreter(), "-m", "venv", str(venv)], check=True)  # no system site-packages
    (venv / "requirements.txt").write_text(requirements(paddle))
    subprocess.run([*pip, "-r", str(venv / "requirements.txt")], check=True, capture_output=True)
    subprocess.run([*pip, "--no-deps", "-r", str(PACKAGES)], check=True, capture_output=True)
    (venv / ".ready").touch()
    return exe
