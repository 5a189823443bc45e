"""Bad input: clear WherryError subclasses with hints, raised before native code."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from wherry import runtimes
from wherry.runtimes.npz import load_npz, validate_feeds
from wherry.runtimes.specs import TensorSpec
from support.runtime_fixtures import copy_bundle, rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401


@pytest.mark.parametrize("isolate", [False, True])
@pytest.mark.parametrize("feeds,needle", [
    ({"y": np.zeros((1, 3, 16, 16), "float32")}, "missing 'x'; unknown 'y'"),
    ({"x": np.zeros((1, 3, 16, 16), "float64")}, "dtype float64, the model expects float32"),
    ({"x": np.zeros((1, 3, 8, 8), "float32")}, "shape [1, 3, 8, 8], the model expects x: float32[?,3,16,16]"),
    ({"x": np.zeros((3, 16, 16), "float32")}, "shape [3, 16, 16]"),
    ({"x": [[1.0]]}, "is a list, not a numpy array"),
])
def test_wrong_feeds_are_refused_with_the_fix(rt_bundle, feeds, needle, isolate):
    with runtimes.open(rt_bundle, artifact="model.x86.nb", isolate=isolate) as sess:
        with pytest.raises(runtimes.InputError) as err:
            sess.run(feeds)
        assert needle in err.value.message
        assert err.value.hint
        assert sess.run({"x": np.zeros((1, 3, 16, 16), "float32")})  # the session still works


def test_non_contiguous_feed_is_made_contiguous(rt_models, rt_feeds):
    strided = np.asfortranarray(rt_feeds["x"])
    assert not strided.flags.c_contiguous
    with runtimes.open(rt_models["x86_nb"]) as sess:
        a, b = sess.run(rt_feeds), sess.run({"x": strided})
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_arm_nb_refused_on_x86_with_and_without_manifest(rt_bundle, rt_models, tmp_path):
    with pytest.raises(runtimes.ArchMismatch) as err:
        runtimes.open(rt_bundle, artifact="model.arm.nb")
    assert "silently returns garbage" in err.value.message and "model.onnx" in err.value.hint
    bare = tmp_path / "detector.arm.nb"  # no manifest: the file name says arm
    shutil.copyfile(rt_models["arm_nb"], bare)
    with pytest.raises(runtimes.ArchMismatch):
        runtimes.open(bare)
    with pytest.raises(runtimes.ArchMismatch):  # inside the bundle directory: the manifest says arm
        runtimes.open(rt_bundle / "model.arm.nb")


def test_x86_nb_refused_on_an_arm_device(rt_bundle, monkeypatch):
    monkeypatch.setenv("WHERRY_DEVICE_ARCH", "arm")
    with pytest.raises(runtimes.ArchMismatch) as err:
        runtimes.open(rt_bundle, artifact="model.x86.nb")
    assert "x86" in err.value.message
    report = runtimes.check(rt_bundle, isolate=False)
    status = {r.file: (r.status, r.reason) for r in report.results}
    assert status["model.x86.nb"] == ("not verifiable here", "x86 .nb on arm")
    assert status["model.onnx"][0] == "passed"


def test_missing_nb_is_an_exception_not_an_abort(tmp_path):
    with pytest.raises(runtimes.BundleError, match="does not exist"):
        runtimes.open(tmp_path / "nothing.x86.nb")
    with pytest.raises(runtimes.BundleError, match="does not exist"):
        runtimes.open(tmp_path / "nothing.x86.nb", backend="paddlelite", isolate=True)


def test_tampered_and_missing_artifacts(rt_bundle, tmp_path):
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    with open(bundle / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(runtimes.BundleError, match="does not match its manifest hash"):
        runtimes.open(bundle, artifact="model.onnx")
    os.unlink(bundle / "model.x86.nb")
    with pytest.raises(runtimes.BundleError, match="missing"):
        runtimes.open(bundle, artifact="model.x86.nb")
    with pytest.raises(runtimes.BundleError, match="no artifact 'model.tflite'"):
        runtimes.open(bundle, artifact="model.tflite")


def test_unknown_manifest_schema(rt_bundle, tmp_path):
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    data = json.loads((bundle / "manifest.json").read_text())
    data["schema"] = "wherry.bundle/99"
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(runtimes.BundleError, match="not supported") as err:
        runtimes.check(bundle)
    assert "upgrade wherry" in err.value.hint


def test_pickled_npz_is_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(runtimes.InputError, match="pickled Python objects"):
        load_npz(path)


def test_corrupt_and_missing_npz(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(runtimes.InputError, match="not a readable .npz"):
        load_npz(bad)
    with pytest.raises(runtimes.InputError, match="does not exist"):
        load_npz(tmp_path / "none.npz")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(runtimes.InputError, match="single array"):
        load_npz(single)


def test_validate_feeds_returns_model_order():
    specs = [TensorSpec("a", "float32", (None, 2)), TensorSpec("b", "int64", (3,))]
    feeds = {"b": np.zeros(3, "int64"), "a": np.zeros((4, 2), "float32")}
    assert list(validate_feeds(specs, feeds)) == ["a", "b"]


def test_missing_backend_and_unknown_paths(rt_models, tmp_path, monkeypatch):
    with pytest.raises(runtimes.BackendUnavailable, match="unknown backend 'tflite'"):
        runtimes.open(rt_models["onnx"], backend="tflite")
    # A backend whose library is absent: hide onnxruntime from the import system.
    import wherry.runtimes.backends as registry

    monkeypatch.setitem(registry._REGISTRY, "onnxruntime",
                        (".onnxruntime_backend", "onnxruntime_not_installed_here", (),
                         "pip install onnxruntime"))
    with pytest.raises(runtimes.BackendUnavailable) as err:
        runtimes.open(rt_models["onnx"])
    assert err.value.hint == "pip install onnxruntime"
    assert runtimes.available()["onnxruntime"] is None
    with pytest.raises(runtimes.BundleError, match="does not exist"):
        runtimes.open(tmp_path / "nope.onnx")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(runtimes.BundleError, match="cannot tell what"):
        runtimes.open(tmp_path / "notes.txt")


def test_closed_session_refuses_to_run(rt_models, rt_feeds):
    sess = runtimes.open(rt_models["onnx"])
    sess.close()
    with pytest.raises(runtimes.SessionClosed, match="is closed") as info:
        sess.run(rt_feeds)
    assert not isinstance(info.value, runtimes.InputError)  # the feeds were fine; the session is gone
    assert "closed" in repr(sess)
