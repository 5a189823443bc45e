"""The two distributions as a user installs them, each into a fresh venv (no PYTHONPATH, not run
from the checkout): the board's `pip install ./runtimes` and the host's `pip install ./runtimes .`.
The venvs with the dependencies are cached under WHERRY_CACHE (default .cache/); wherry itself is
installed again from this checkout on every run, non-editable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.runtime_fixtures import rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401
from support.venvs import base_python, make_venv

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
# Exactly what pyproject.toml's `host` extra pins (read from it, so the two cannot differ).
HOST_DEPS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["host"]
FOREIGN_NAMES = ("convert", "runtimes", "targets")  # generic names wherry must not install


def _package_folders(top: str, prefix: str):
    return {prefix + ("." + ".".join(p.parent.relative_to(ROOT / top).parts) if p.parent != ROOT / top else "")
            for p in (ROOT / top).rglob("__init__.py")
            if not any(part.startswith((".", "build")) or part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)}


def test_package_lists_name_every_package_folder():
    host = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    board = tomllib.loads((ROOT / "runtimes" / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert set(host) == _package_folders("convert", "wherry.convert") | _package_folders("targets", "wherry.targets")
    assert set(board) == _package_folders("runtimes", "wherry.runtimes")


def test_the_quick_tier_covers_each_area_and_leaves_the_slow_parts_out():
    """`bash scripts/test.sh -m quick` (README): every area the tier promises has tests in it, and nothing that
    builds a venv, needs the emulated board or converts many models."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "quick", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    files = {i.split("::")[0].removeprefix("tests/") for i in ids}
    for area in ("runtimes/test_parity.py", "runtimes/test_runtime_errors.py", "convert/test_legalize.py",
                 "convert/test_pir_ops.py", "runtimes/test_serve.py", "targets/test_remote_options.py",
                 "runtimes/test_runner_cli.py", "convert/test_cli_convert.py", "convert/test_source.py"):
        assert area in files, f"the quick tier has no test from {area}"
    assert not [i for i in ids if "[ssh]" in i or "emulated" in i or "needs_only_numpy" in i], ids
    assert not files & {"e2e/test_conformance.py", "targets/test_lite_arm.py", "e2e/test_zoo.py",
                        "targets/test_devices.py"}
    assert 60 <= len(ids) <= 200, len(ids)


def test_package_data_ships_every_data_file():
    """A data file the code reads (a lite_ops.json, a profile, the emulated board script) must be installed."""
    import fnmatch

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(["git", "ls-files", "convert", "targets"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for file in (f for f in tracked if not f.endswith(".py")):
        folder, name = file.rsplit("/", 1)
        parts = folder.split("/")
        # a pattern of the package itself or of any package above it, e.g. profiles/*.toml, page/*.js
        candidates = [("wherry." + ".".join(parts[:i]), "/".join(parts[i:] + [name])) for i in range(1, len(parts) + 1)]
        assert any(fnmatch.fnmatch(rel, pattern) for package, rel in candidates for pattern in data.get(package, ())), \
            f"{file} is not in pyproject.toml's package-data"


def _run(python: Path, *args, cwd: Path, timeout: int = 900):
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "PYTHONNOUSERSITE": "1"}
    return subprocess.run([str(python), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def _script(script: Path, *args, cwd: Path):
    """A console script of the venv (its shebang names the venv's python)."""
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=900,
        env={"PATH": f"{script.parent}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "PYTHONNOUSERSITE": "1"})


def _install(python: Path, *paths: Path, cwd: Path) -> None:
    # --force-reinstall --no-deps: this checkout's code replaces the previous run's; the venv already
    # holds the dependencies (pip fetches only the build backend, setuptools, as for any user).
    proc = _run(python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps",
                *map(str, paths), cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _imports_fail(python: Path, cwd: Path) -> None:
    code = ("import importlib.util as u, json\n"
            f"print(json.dumps({{n: u.find_spec(n) is not None for n in {list(FOREIGN_NAMES)!r}}}))")
    proc = _run(python, "-c", code, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {n: False for n in FOREIGN_NAMES}


@pytest.fixture(scope="module")
def board_python(tmp_path_factory):
    python = make_venv("pkg-board", ["numpy", "onnxruntime"], base_python())
    _install(python, ROOT / "runtimes", cwd=tmp_path_factory.mktemp("board"))
    return python


def test_board_install_runs_the_runner(board_python, rt_bundle, tmp_path):
    info = _run(board_python, "-m", "wherry.runtimes", "info", "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["schema"] == "wherry.info.v1" and data["backends"]["onnxruntime"] and data["backends"]["paddle"] is None
    check = _run(board_python, "-m", "wherry.runtimes", "check", rt_bundle, "--json", cwd=tmp_path)
    report = json.loads(check.stdout)
    assert {a["file"]: a["status"] for a in report["artifacts"]}["model.onnx"] == "passed", check.stdout
    where = _run(board_python, "-c", "import wherry.runtimes as r, importlib.util as u; "
                 "print(r.__file__); print(u.find_spec('wherry.convert'))", cwd=tmp_path)
    path, convert_spec = where.stdout.split()
    assert "site-packages" in path and not path.startswith(str(ROOT / "runtimes"))  # installed, not the checkout
    assert convert_spec == "None"  # the board holds the runtime only
    assert not (board_python.parent / "wherry").exists()
    _imports_fail(board_python, tmp_path)


@pytest.fixture(scope="module")
def host_python(tmp_path_factory):
    python = make_venv("pkg-host-deps", HOST_DEPS, base_python())
    _install(python, ROOT / "runtimes", ROOT, cwd=tmp_path_factory.mktemp("host"))
    return python


def test_host_install_runs_wherry(host_python, tmp_path):
    wherry = host_python.parent / "wherry"
    for args in (["--help"], ["-V"], ["targets", "--json"]):
        proc = _script(wherry, *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    script = _run(host_python, "-c", "from importlib import resources; "
                  "print(resources.files('wherry.targets.devices').joinpath('emulated_board.sh').is_file())", cwd=tmp_path)
    assert script.stdout.strip() == "True", script.stderr  # --device emulated-aarch64 needs it installed
    proc = _script(wherry, "convert", "--example", "-o", tmp_path / "out", "--json", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["schema"] == "wherry.convert.v1" and result["ok"]
    assert [b["target"] for b in result["bundles"]] == ["desktop-x86_64", "rpi4"]
    installed = _run(host_python, "-c", "import wherry.convert; print(wherry.convert.__file__)", cwd=tmp_path).stdout
    assert "site-packages" in installed and not installed.startswith(str(ROOT / "convert"))
    _imports_fail(host_python, tmp_path)
