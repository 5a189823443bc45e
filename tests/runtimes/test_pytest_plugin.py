"""`pytest --wherry-bundle DIR`: one test per artifact x output; free when unused."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


from support.runtime_fixtures import copy_bundle, rehash, rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # -p wherry.runtimes.pytest_plugin: works whether or not wherry's entry point is installed;
    # -p no:wherry avoids loading it twice when it is.
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:wherry", "-p", "wherry.runtimes.pytest_plugin",
                           "-p", "no:cacheprovider", "-rs", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_one_test_per_artifact_and_output(rt_bundle, tmp_path):
    proc = run_pytest("--wherry-bundle", rt_bundle, "-v", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = proc.stdout
    for art in ("model.onnx", "model.x86.nb"):
        for name in ("softmax_0.tmp_0", "linear_0.tmp_1"):
            assert f"{art}::{name} PASSED" in out
    assert "model.arm.nb::softmax_0.tmp_0 SKIPPED" in out
    assert "not verifiable here: arm .nb on x86_64" in out
    assert "4 passed, 2 skipped" in out


def test_failures_name_artifact_and_output(rt_bundle, tmp_path):
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    (bundle / "model.x86.nb").write_bytes((bundle / "model.x86.nb").read_bytes()[:5000])
    rehash(bundle, "model.x86.nb")
    proc = run_pytest("--wherry-bundle", bundle, "--wherry-artifact", "model.x86.nb", cwd=tmp_path)
    assert proc.returncode == 1
    assert "2 failed" in proc.stdout
    assert "paddlelite crashed (SIGABRT)" in proc.stdout


def test_bad_bundle_is_a_usage_error(tmp_path):
    proc = run_pytest("--wherry-bundle", tmp_path, cwd=tmp_path)
    assert proc.returncode == 4
    assert "is not a wherry bundle" in proc.stderr


def test_plugin_imports_nothing_heavy_when_unused(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import sys\n"
        "def test_nothing_loaded():\n"
        "    assert 'wherry.runtimes.pytest_plugin' in sys.modules\n"
        "    heavy = [m for m in ('numpy', 'wherry.runtimes.checker', 'wherry.runtimes.session', 'onnxruntime', 'paddle')\n"
        "             if m in sys.modules]\n"
        "    assert heavy == []\n")
    proc = run_pytest("-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]
