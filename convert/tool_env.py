"""Cached tool environments: conversion tools that cannot live in wherry's own environment.

Some converters pin what wherry's environment cannot hold (rknn-toolkit2 wants numpy <= 1.26 and
onnx <= 1.18), need another Python (onnx2tf: 3.12 or newer), or are simply large (OpenVINO + NNCF,
~520 MB). Each gets an environment of its own, made on first use and cached in wherry's user cache
(``$WHERRY_TOOLS_DIR``, else the ``tools`` folder of ``$WHERRY_CACHE`` / ``$XDG_CACHE_HOME/wherry`` /
``~/.cache/wherry``), keyed by its exact requirements and Python, so a new pin makes a new one.

Two kinds, one cache:
- a **folder** (``pip install --no-deps --target``) imported by wherry's own Python: paddle2onnx 2.x
  for PIR programs (``pir_route``);
- a **venv** with its own interpreter and pinned dependencies: the edge exporters (OpenVINO, LiteRT,
  RKNN). The tool runs in a child of that interpreter (``run``: ``child.run`` with the venv's python and
  a code folder holding only ``wherry.convert`` and ``wherry.runtimes``), and the artifacts it built are
  checked there too (``check``: ``python -m wherry.runtimes check``, as on a board).

An environment is built in a hidden sibling and renamed into place, so an interrupted install leaves no
half environment that later runs would trust; ``.ready`` marks a finished one.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)

READY = ".ready"


class ToolUnavailable(WherryError):
    """A tool environment cannot be made on this machine (no suitable Python, no network to PyPI)."""


def tools_dir() -> Path:
    if os.environ.get("WHERRY_TOOLS_DIR"):
        return Path(os.environ["WHERRY_TOOLS_DIR"])
    from wherry.targets.cache import cache_root

    return cache_root() / "tools"


@dataclass(frozen=True)
class ToolEnv:
    """A venv for one tool: its pinned requirements, the Pythons it runs on, extra files for its site-packages."""
    name: str                                  # folder prefix, e.g. "openvino"
    requirements: Tuple[str, ...]              # pip requirement specifiers, exact pins
    pythons: Tuple[str, ...] = ()              # acceptable "3.12"-style versions; empty: wherry's own Python
    site_files: Dict[str, str] = field(default_factory=dict)   # file -> text, written into site-packages
    no_deps: Tuple[str, ...] = ()              # installed after the requirements with --no-deps (their own
    #                                            declared dependencies are wrong or huge; the requirements pin them)
    label: str = ""                            # for messages, e.g. "OpenVINO 2026.4.1 + NNCF 3.4.0"

    def key(self, python: str) -> str:
        text = json.dumps([self.requirements, self.no_deps, _version_of(python), sorted(self.site_files.items())])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _version_of(python: str) -> str:
    proc = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                          text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _candidates(version: str) -> List[str]:
    """Where a CPython ``version`` may be on this machine: PATH, then pyenv's versions (how this project's
    hosts carry their extra Pythons), then uv's managed Pythons."""
    found = [shutil.which(f"python{version}")]
    roots = [os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv"),
             os.path.expanduser("~/.local/share/uv/python")]
    for root in roots:
        base = Path(root) / "versions" if "pyenv" in root else Path(root)
        if base.is_dir():
            found += sorted((str(p / "bin" / f"python{version}") for p in base.glob(f"*{version}.*")), reverse=True)
    return [p for p in found if p and os.access(p, os.X_OK)]


def base_interpreter(python: str = sys.executable) -> str:
    """The real interpreter behind ``python``. A venv's ``bin/python`` is a link to the interpreter it was
    made from, so a venv made from another venv's python breaks the day that venv is deleted; made from
    the real one it lasts as long as the installed Python does."""
    return os.path.realpath(python)


def is_ready(folder: Path) -> bool:
    """``folder`` is a finished venv whose interpreter still runs (``.ready`` alone outlives a deleted base)."""
    return (folder / READY).is_file() and (folder / "bin" / "python").exists()


def find_python(env: ToolEnv) -> str:
    """An interpreter for ``env``: wherry's own when it accepts any, else the first found of its versions."""
    if not env.pythons or _version_of(sys.executable) in env.pythons:
        return base_interpreter()
    for version in env.pythons:
        for candidate in _candidates(version):
            if _version_of(candidate) == version:
                return base_interpreter(candidate)
    raise ToolUnavailable(f"{env.label or env.name} needs Python {' or '.join(env.pythons)}, and none is installed "
                          "here", f"install one (e.g. `pyenv install {env.pythons[0]}`, `uv python install "
                          f"{env.pythons[0]}`, or your system's python{env.pythons[0]} package) so that "
                          f"python{env.pythons[0]} is on PATH")


def ensure(env: ToolEnv) -> Path:
    """The python of ``env``'s venv, made on first use (minutes: a few hundred MB from PyPI)."""
    base = find_python(env)
    folder = tools_dir() / f"{env.name}-{env.key(base)}"
    python = folder / "bin" / "python"
    if is_ready(folder):
        return python
    if folder.exists():   # its interpreter is gone: made again below
        log.warning("%s's environment %s lost its Python; making it again", env.label or env.name, folder)
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    log.warning("installing %s into %s (once; a few hundred MB from PyPI)", env.label or env.name, folder)
    try:
        _run([base, "-m", "venv", str(staging)], env, "creating its venv")
        _run([str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--no-input", *env.requirements], env, "installing its packages")
        if env.no_deps:
            _run([str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "--no-input", "--no-deps", *env.no_deps], env, "installing " + ", ".join(env.no_deps))
        if env.site_files:
            site = subprocess.run([str(staging / "bin" / "python"), "-c", "import sysconfig; "
                                   "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                                  check=True).stdout.strip()
            for name, text in env.site_files.items():
                target = Path(site) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        (staging / READY).write_text(json.dumps({"requirements": env.requirements, "python": base}))
        os.rename(staging, folder)
    except OSError:   # another wherry finished the same environment meanwhile
        shutil.rmtree(staging, ignore_errors=True)
        if not is_ready(folder):
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return python


def _run(argv: List[str], env: ToolEnv, what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        from wherry.convert.child import log_tail

        raise ToolUnavailable(f"cannot install {env.label or env.name} ({what}): "
                              f"{log_tail(proc.stderr or proc.stdout, 3) or 'pip failed'}",
                              "check network access to PyPI; the environment is built once and cached in "
                              f"{tools_dir()}")


def code_dir(tmp: Path) -> Path:
    """A folder that makes ``wherry.convert`` and ``wherry.runtimes`` importable in another interpreter
    (symbolic links to this wherry's own packages): put it first on the tool child's PYTHONPATH."""
    import wherry.convert
    import wherry.runtimes

    root = tmp / "wherry-code"
    (root / "wherry").mkdir(parents=True, exist_ok=True)
    for package in (wherry.convert, wherry.runtimes):
        link = root / "wherry" / package.__name__.split(".")[-1]
        if not link.exists():
            link.symlink_to(Path(inspect.getfile(package)).resolve().parent, target_is_directory=True)
    return root


def run(env: ToolEnv, target: str, kwargs: dict, *, tool: str, what: str, timeout: float = 1800):
    """``child.run`` of ``target`` in ``env``'s interpreter: (value, log text, seconds)."""
    from wherry.convert import child

    python = ensure(env)
    # the venv's console scripts on PATH, as in an activated venv (onnx2tf runs `onnxsim` by name)
    path = os.pathsep.join([str(python.parent), os.environ.get("PATH", "")])
    with tempfile.TemporaryDirectory(prefix="wherry-tool-") as tmp:
        return child.run(target, kwargs, tool=tool, what=what, timeout=timeout, python=str(python),
                         pythonpath=[str(code_dir(Path(tmp)))], env={"PATH": path})


def _runner(env: ToolEnv, args: List[str], tmp: Path, timeout: float) -> "subprocess.CompletedProcess[str]":
    """``python -m wherry.runtimes ARGS`` with ``env``'s interpreter and only wherry.runtimes on its path, as a
    board gets it: what runs there is the device's code path."""
    python = ensure(env)
    environ = {**os.environ, "PYTHONPATH": str(code_dir(tmp))}
    return subprocess.run([str(python), "-m", "wherry.runtimes", *args], capture_output=True, text=True,
                          env=environ, timeout=timeout)


def _failed(what: str, proc: "subprocess.CompletedProcess[str]") -> WherryError:
    from wherry.convert.child import log_tail

    return WherryError(f"{what} (exit {proc.returncode}): {log_tail(proc.stderr, 4)}")


def check(env: ToolEnv, bundle: Path, files: Sequence[str], timeout: float = 1800) -> dict:
    """``python -m wherry.runtimes check`` of ``files`` in ``bundle`` with ``env``'s interpreter, as a board
    would run it: the runner's JSON result per artifact file."""
    args = ["check", str(bundle), "--json", "--no-isolate"] + [w for name in files for w in ("--artifact", name)]
    with tempfile.TemporaryDirectory(prefix="wherry-tool-") as tmp:
        proc = _runner(env, args, Path(tmp), timeout)
    try:
        return {r["file"]: r for r in json.loads(proc.stdout)["artifacts"]}
    except (ValueError, KeyError, TypeError):
        raise _failed(f"the check in {env.label or env.name}'s environment failed", proc) from None


def outputs(env: ToolEnv, bundle: Path, file: str, feeds: Dict[str, Any], timeout: float = 1800) -> Dict[str, Any]:
    """The outputs of artifact ``file`` of ``bundle`` on ``feeds``, from ``python -m wherry.runtimes run`` with
    ``env``'s interpreter (the runtime only that environment has: a task metric of an edge artifact)."""
    import numpy as np

    from wherry.runtimes.npz import load_npz

    with tempfile.TemporaryDirectory(prefix="wherry-tool-") as tmp:
        inputs, out = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(inputs, **feeds)
        proc = _runner(env, ["run", str(bundle), "--artifact", file, "--inputs", str(inputs), "--out", str(out)],
                       Path(tmp), timeout)
        if proc.returncode != 0 or not out.is_file():
            raise _failed(f"{file} did not run in {env.label or env.name}'s environment", proc)
        return load_npz(out)


def installed(env: ToolEnv) -> Optional[Path]:
    """The python of ``env``'s venv if it is already made (nothing is installed), else None."""
    try:
        base = find_python(env)
    except ToolUnavailable:
        return None
    folder = tools_dir() / f"{env.name}-{env.key(base)}"
    return folder / "bin" / "python" if is_ready(folder) else None
