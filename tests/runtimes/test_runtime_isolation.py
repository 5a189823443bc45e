"""Crash isolation: a real Paddle Lite abort in the child becomes NativeCrash; the caller lives on."""
from __future__ import annotations

import os

import numpy as np
import pytest

from wherry import runtimes
from support.runtime_fixtures import copy_bundle, rehash, rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401


def test_lite_abort_on_truncated_model_becomes_native_crash(rt_models, rt_feeds, tmp_path):
    truncated = tmp_path / "broken.x86.nb"
    truncated.write_bytes(rt_models["x86_nb"].read_bytes()[:5000])
    with pytest.raises(runtimes.NativeCrash) as err:
        runtimes.open(truncated, isolate=True)
    crash = err.value
    assert crash.tool == "paddlelite"
    assert crash.signal_name == "SIGABRT"
    assert "Failed to read" in crash.log_tail  # Paddle Lite's own last words
    assert "loading broken.x86.nb" in crash.message
    # This process is unharmed and can keep working.
    with runtimes.open(rt_models["x86_nb"], isolate=True) as sess:
        assert sess.run(rt_feeds)


def test_child_killed_while_running(rt_models, rt_feeds):
    sess = runtimes.open(rt_models["onnx"], isolate=True)
    os.kill(sess._impl.pid, 9)
    with pytest.raises(runtimes.NativeCrash) as err:
        sess.run(rt_feeds)
    assert err.value.signal_name == "SIGKILL" and err.value.tool == "onnxruntime"
    sess.close()  # closing a dead session is harmless


def test_errors_in_the_child_keep_their_type(rt_models):
    with runtimes.open(rt_models["onnx"], isolate=True) as sess:
        with pytest.raises(runtimes.InputError):
            sess.run({"x": np.zeros((1, 3, 16, 16), "float64")})


def test_check_reports_a_crashing_artifact_and_goes_on(rt_bundle, tmp_path):
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    data = (bundle / "model.x86.nb").read_bytes()
    (bundle / "model.x86.nb").write_bytes(data[:5000])
    rehash(bundle, "model.x86.nb")
    report = runtimes.check(bundle)
    by_file = {r.file: r for r in report.results}
    assert by_file["model.x86.nb"].status == "failed"
    assert "paddlelite crashed (SIGABRT)" in by_file["model.x86.nb"].reason
    assert by_file["model.onnx"].status == "passed"
    assert not report.ok


def test_one_child_serves_a_bundles_artifacts_and_a_crash_after_others_is_still_the_crashers(rt_bundle, rt_models,
                                                                                              tmp_path):
    import json

    from wherry.runtimes.isolate import SharedChild
    from wherry.runtimes.session import resolve

    child = SharedChild()
    try:
        first = child.borrow(resolve(str(rt_models["onnx"]), None, None))
        second = child.borrow(resolve(str(rt_models["x86_nb"]), None, None))
        assert first.pid == second.pid and not child.fresh   # one interpreter for both models
    finally:
        child.close()
    # the crashing .nb is checked after the ONNX artifact, in the child that ran it
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    (bundle / "model.x86.nb").write_bytes((bundle / "model.x86.nb").read_bytes()[:5000])
    rehash(bundle, "model.x86.nb")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["artifacts"].sort(key=lambda a: a["format"] != "onnx")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    report = runtimes.check(bundle)
    assert [r.file for r in report.results][:2] == ["model.onnx", "model.x86.nb"]
    by_file = {r.file: r for r in report.results}
    assert by_file["model.onnx"].status == "passed"
    assert by_file["model.x86.nb"].status == "failed" and "crashed (SIGABRT)" in by_file["model.x86.nb"].reason
