"""Virtual environments the tests build with pip once (cached under support.paths.CACHE / venvs), as a board
or a user's machine would have them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import CACHE
from wherry.convert.tool_env import base_interpreter, is_ready


def base_python() -> str:
    return base_interpreter(getattr(sys, "_base_executable", None) or sys.executable)


def make_venv(name: str, packages, python: str) -> Path:
    folder = CACHE / "venvs" / name
    stamp = folder / ".ready"
    if is_ready(folder):
        return folder / "bin" / "python"
    shutil.rmtree(folder, ignore_errors=True)
    proc = subprocess.run([python, "-m", "venv", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"not verifiable here: cannot create a venv with {python}: {proc.stderr[-300:]}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages],
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"not verifiable here: pip could not install {packages}: {proc.stderr[-500:]}")
    stamp.write_text("ok")
    return folder / "bin" / "python"
