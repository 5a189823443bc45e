"""`python -m wherry.runtimes` end to end: check passes good bundles and fails altered ones."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from support.runtime_fixtures import copy_bundle, rehash, rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def runner(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "wherry.runtimes", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=300)


@pytest.fixture(scope="module")
def altered_bundle(rt_bundle, tmp_path_factory):
    """The ONNX artifact's classifier bias shifted on purpose, with the manifest hash updated:
    an accuracy failure, not an integrity one."""
    import onnx
    from onnx import numpy_helper

    bundle = copy_bundle(rt_bundle, tmp_path_factory.mktemp("altered") / "b")
    model = onnx.load(str(bundle / "model.onnx"))
    # paddle2onnx stores weights as initializers or as Constant nodes: look in both.
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node if n.op_type == "Constant"
                                               for a in n.attribute if a.name == "value"]
    biases = [t for t in tensors if list(t.dims) == [10]]
    assert biases, "the test model's fc bias was not found"
    bias = numpy_helper.to_array(biases[0])
    biases[0].CopyFrom(numpy_helper.from_array(bias + np.linspace(-0.3, 0.3, 10, dtype=bias.dtype), biases[0].name))
    onnx.save(model, str(bundle / "model.onnx"))
    rehash(bundle, "model.onnx")
    return bundle


def test_check_passes_a_good_bundle(rt_bundle, tmp_path):
    junit = tmp_path / "junit.xml"
    proc = runner("check", rt_bundle, "--junit", junit)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["artifact", "size", "precision", "max", "abs", "err", "cosine", "verdict"]
    row = {ln.split()[0]: ln for ln in lines[2:5]}
    assert row["model.onnx"].endswith("PASS") and row["model.x86.nb"].endswith("PASS")
    assert row["model.arm.nb"].endswith("not verifiable here")
    assert "arm .nb on x86_64" in proc.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "0", "1")
    import datetime
    import socket
    assert suite.get("hostname") == socket.gethostname() and float(suite.get("time")) > 0
    assert abs(datetime.datetime.fromisoformat(suite.get("timestamp")) - datetime.datetime.now()).total_seconds() < 600


def test_check_fails_an_altered_artifact_and_names_the_output(altered_bundle):
    proc = runner("check", altered_bundle)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout
    assert "model.onnx: output 'linear_0.tmp_1': max abs error" in proc.stdout
    assert "Traceback" not in proc.stderr
    report = json.loads(runner("check", altered_bundle, "--json").stdout)
    onnx_result = next(a for a in report["artifacts"] if a["file"] == "model.onnx")
    assert onnx_result["status"] == "failed" and not report["ok"]
    failing = {o["name"] for o in onnx_result["outputs"] if o["verdict"] == "failed"}
    assert "linear_0.tmp_1" in failing
    nb = next(a for a in report["artifacts"] if a["file"] == "model.x86.nb")
    assert nb["status"] == "passed"


def test_tolerance_overrides(altered_bundle):
    # Loose enough for every output: passes.
    assert runner("check", altered_bundle, "--artifact", "model.onnx", "--rtol", "1", "--min-cosine", "0.9"
                  ).returncode == 0
    # Loosened for one output only: the other still fails, and is the one named.
    proc = runner("check", altered_bundle, "--artifact", "model.onnx", "--rtol", "linear_0.tmp_1:1",
                  "--min-cosine", "linear_0.tmp_1:0.9")
    assert proc.returncode == 1
    assert "output 'softmax_0.tmp_0'" in proc.stdout and "output 'linear_0.tmp_1'" not in proc.stdout
    bad = runner("check", altered_bundle, "--atol", "lots")
    assert bad.returncode == 2 and "--atol 'lots' is not a number" in bad.stderr


def test_check_fails_on_hash_mismatch(rt_bundle, tmp_path):
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    data = bytearray((bundle / "model.x86.nb").read_bytes())
    data[-100] ^= 0xFF
    (bundle / "model.x86.nb").write_bytes(bytes(data))
    proc = runner("check", bundle)
    assert proc.returncode == 1
    assert "model.x86.nb does not match its manifest hash (tampered or corrupted)" in proc.stdout
    assert "model.onnx" in proc.stdout and "Traceback" not in proc.stderr


def test_check_with_nothing_runnable_is_not_a_pass(rt_bundle):
    proc = runner("check", rt_bundle, "--artifact", "model.arm.nb")
    assert proc.returncode == 1
    assert "nothing could be verified on this device" in proc.stdout


def test_run_writes_outputs(rt_bundle, rt_reference, tmp_path):
    out = tmp_path / "out.npz"
    proc = runner("run", rt_bundle, "--artifact", "model.x86.nb", "--out", out)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as data:
        for name, ref in rt_reference.items():
            np.testing.assert_allclose(data[name], ref, rtol=0, atol=1e-5)
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=np.zeros((1, 3, 16, 16), "float32"))
    proc = runner("run", rt_bundle / "model.onnx", "--inputs", inputs, "--json")
    assert json.loads(proc.stdout)["outputs"][0]["shape"] == [1, 10]
    proc = runner("run", rt_bundle / "model.onnx", "--inputs", tmp_path / "missing.npz")
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_and_info(rt_bundle):
    proc = runner("bench", rt_bundle, "--artifact", "model.x86.nb", "--runs", "5", "--warmup", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["backend"] == "paddlelite" and result["runs"] == 5
    assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"]
    assert result["load_s"] > 0 and result["peak_rss_mb"] > 10
    info = json.loads(runner("info", "--json").stdout)
    assert info["arch"] == "x86" and info["backends"]["onnxruntime"]


def test_serve_is_delegated():
    proc = runner("serve", "--help")
    if (ROOT / "runtimes" / "serve.py").exists():
        assert proc.returncode == 0
    else:
        assert proc.returncode == 2 and "runtimes.serve" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_functions_are_reusable_by_the_host_cli(rt_bundle, capsys):
    import argparse

    from wherry.runtimes import cli

    parser = argparse.ArgumentParser()
    cli.add_check_args(parser)
    args = parser.parse_args([str(rt_bundle), "--no-isolate", "--artifact", "model.onnx"])
    assert cli.cmd_check(args) == 0
    assert "model.onnx" in capsys.readouterr().out
    assert cli.cmd_info(argparse.Namespace()) == 0  # the host registers info without options


@pytest.mark.parametrize("option, value", [("--job-timeout", "nan"), ("--header-timeout", "nan"),
                                           ("--client-timeout", "inf"), ("--request-timeout", "-1"),
                                           ("--max-upload-mb", "nan"), ("--job-timeout", "0")])
def test_a_runner_limit_that_is_no_positive_number_is_refused(option, value):
    """NaN compares false with everything: `--header-timeout nan` or `--job-timeout nan` started a runner that
    kept slow clients and endless jobs for ever, and `--max-upload-mb nan` was a traceback (issue 27, finding 8)."""
    proc = subprocess.run([sys.executable, "-m", "wherry.runtimes", "serve", "--port", "0", option, value],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"argument {option}: '{value}' is not a positive finite number" in proc.stderr
