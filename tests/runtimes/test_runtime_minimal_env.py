"""`runtimes` on a device-like environment: only numpy + onnxruntime (no paddle, no paddlelite),
and Paddle Lite under numpy 2 (whose from_numpy corrupts inputs). Each environment is a
venv without system site packages, cached under .cache and built with pip once."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from wherry.targets.devices import board_code

from support.venvs import base_python, make_venv
from support.runtime_fixtures import rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]

BOARD_CODE = board_code(Path(tempfile.mkdtemp(prefix="wherry-board-code-")))
atexit.register(shutil.rmtree, BOARD_CODE.parent, True)


def in_env(python: Path, *args, cwd=None):
    # A clean environment: nothing from the host venv may leak in; wherry.runtimes comes from a board copy.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(BOARD_CODE), "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONNOUSERSITE": "1"}
    return subprocess.run([str(python), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=600)


@pytest.fixture(scope="module")
def minimal_python():
    return make_venv("runtime-min", ["numpy", "onnxruntime"], base_python())


def test_runtimes_imports_with_numpy_and_onnxruntime_only(minimal_python):
    proc = in_env(minimal_python, "-c",
                  "import importlib.util as u, json, sys\n"
                  "from wherry import runtimes\n"
                  "assert u.find_spec('paddle') is None and u.find_spec('paddlelite') is None\n"
                  "print(json.dumps({'avail': runtimes.available(), 'file': runtimes.__file__}))")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["avail"]["paddle"] is None and data["avail"]["paddlelite"] is None
    assert data["avail"]["onnxruntime"]
    assert data["file"].startswith(str(BOARD_CODE))


def test_runner_check_works_without_paddle(minimal_python, rt_bundle, tmp_path):
    proc = in_env(minimal_python, "-m", "wherry.runtimes", "check", rt_bundle, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    status = {a["file"]: (a["status"], a["reason"]) for a in report["artifacts"]}
    assert status["model.onnx"] == ("passed", "")
    assert status["model.x86.nb"] == ("not verifiable here", "no Paddle Lite runtime on this device")
    assert status["model.arm.nb"] == ("not verifiable here", "arm .nb on x86_64")
    proc = in_env(minimal_python, "-m", "wherry.runtimes", "run", rt_bundle, "--artifact", "model.x86.nb", cwd=tmp_path)
    assert proc.returncode == 2
    assert "backend paddlelite is not installed" in proc.stderr and "Traceback" not in proc.stderr


def test_lite_is_exact_under_numpy2(rt_models, rt_feeds, tmp_path):
    python = make_venv("runtime-lite-numpy2", ["numpy>=2,<2.3", "paddlelite==2.13rc0"], base_python())
    np.savez(tmp_path / "in.npz", **rt_feeds)
    from wherry import runtimes

    with runtimes.open(rt_models["x86_nb"]) as sess:  # numpy 1.x in this process
        want = sess.run(rt_feeds)
    proc = in_env(python, "-m", "wherry.runtimes", "run", rt_models["x86_nb"], "--inputs", tmp_path / "in.npz",
                  "--out", tmp_path / "out.npz")
    assert proc.returncode == 0, proc.stderr
    version = in_env(python, "-c", "import numpy; print(numpy.__version__)").stdout
    assert version.startswith("2."), version
    with np.load(tmp_path / "out.npz") as got:
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value)


def _python39():
    import glob

    candidates = [shutil.which("python3.9")] + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python")))
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
                              capture_output=True, text=True)
        if proc.stdout.strip() == "True":
            return candidate
    return None


def test_runner_check_on_python39(rt_bundle, tmp_path):
    """The oldest Python the board side supports."""
    base = _python39()
    if base is None:
        pytest.skip("not verifiable here: no CPython 3.9 on this machine")
    python = make_venv("runtime-min-py39", ["numpy", "onnxruntime"], base)
    proc = in_env(python, "-m", "wherry.runtimes", "check", rt_bundle, "--artifact", "model.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model.onnx" in proc.stdout and "PASS" in proc.stdout
