"""Every backend on real converted models, compared with Paddle Inference on the original."""
from __future__ import annotations

import numpy as np
import pytest

from wherry import runtimes
from wherry.runtimes import parity
from support.runtime_fixtures import rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401 - fixtures


def _close_to(reference, outputs, rtol=1e-5):
    assert len(outputs) == len(reference)
    for ref, out in zip(reference.values(), outputs.values()):
        assert out.shape == ref.shape and out.dtype == ref.dtype
        assert np.max(np.abs(out - ref)) <= rtol * np.max(np.abs(ref)), np.max(np.abs(out - ref))


@pytest.mark.parametrize("key", ["legacy", "pir", "paddle1"])
def test_paddle_inference_reads_every_source_format(rt_models, rt_feeds, rt_reference, key):
    with runtimes.open(rt_models[key]) as sess:
        assert sess.backend == "paddle"
        assert [s.name for s in sess.inputs] == ["x"]
        assert sess.inputs[0].shape == (None, 3, 16, 16) and sess.inputs[0].dtype == "float32"
        out = sess.run(rt_feeds)
    _close_to(rt_reference, out)


def test_paddle_accepts_prefix_and_directory(rt_models, rt_feeds, rt_reference):
    legacy = rt_models["legacy"]
    with runtimes.open(str(legacy)[: -len(".pdmodel")]) as sess:
        _close_to(rt_reference, sess.run(rt_feeds))
    with runtimes.open(legacy.parent) as sess:
        _close_to(rt_reference, sess.run(rt_feeds))


@pytest.mark.parametrize("isolate", [False, True])
@pytest.mark.parametrize("key,backend", [("onnx", "onnxruntime"), ("x86_nb", "paddlelite")])
def test_converted_artifacts_match_paddle_inference(rt_models, rt_feeds, rt_reference, key, backend, isolate):
    with runtimes.open(rt_models[key], isolate=isolate, threads=2) as sess:
        assert sess.backend == backend
        assert sess.isolated == isolate
        out = sess.run(rt_feeds)
    result = parity.compare(rt_reference, dict(zip(rt_reference, out.values())),
                            {k: parity.default_tolerance("fp32") for k in rt_reference})
    assert all(r.passed for r in result), [r.reason for r in result]
    assert all(r.max_rel < 1e-5 for r in result)


def test_lite_dynamic_batch_resizes(rt_models):
    rng = np.random.default_rng(3)
    with runtimes.open(rt_models["x86_nb"]) as lite, runtimes.open(rt_models["onnx"]) as ort:
        for batch in (1, 5, 2):
            feeds = {"x": rng.standard_normal((batch, 3, 16, 16)).astype("float32")}
            got, want = lite.run(feeds), ort.run(feeds)
            for name in want:
                assert got[name].shape == (batch, 10)
                np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5)


def test_lite_outputs_are_copies_not_views_of_lite_memory(rt_models, rt_feeds):
    with runtimes.open(rt_models["x86_nb"]) as sess:
        first = sess.run(rt_feeds)
        kept = {k: v.copy() for k, v in first.items()}
        sess.run({"x": -rt_feeds["x"]})
        for name in kept:
            np.testing.assert_array_equal(first[name], kept[name])


def test_lite_input_path_exact_without_from_numpy_alone(rt_models, rt_feeds):
    """The numpy-2 safe path (from_numpy + copy into Lite's buffer) gives the same bits as from_numpy."""
    from paddlelite import lite

    from wherry.runtimes.backends.paddlelite_backend import set_input

    config = lite.MobileConfig()
    config.set_model_from_file(str(rt_models["x86_nb"]))
    predictor = lite.create_paddle_predictor(config)
    results = []
    for exact in (False, True):
        set_input(predictor.get_input(0), rt_feeds["x"], exact_copy=exact)
        np.testing.assert_array_equal(predictor.get_input(0).numpy(), rt_feeds["x"])
        predictor.run()
        results.append(np.array(predictor.get_output(1).numpy(), copy=True))
    np.testing.assert_array_equal(results[0], results[1])


def test_open_bundle_by_artifact_uses_manifest_specs(rt_bundle, rt_feeds, rt_reference):
    with runtimes.open(rt_bundle, artifact="model.x86.nb") as sess:
        assert sess.backend == "paddlelite"
        assert sess.inputs[0].shape == (None, 3, 16, 16)  # from the manifest: Lite cannot describe inputs
        _close_to(rt_reference, sess.run(rt_feeds))
    with runtimes.open(rt_bundle) as sess:  # no artifact: the first one runnable here
        assert sess.backend == "onnxruntime"


def test_available_reports_installed_versions():
    from importlib import metadata

    avail = runtimes.available()
    assert set(avail) == {"onnxruntime", "paddlelite", "paddle", "openvino", "litert", "rknn"}
    # not in wherry's own environment: their tool environments check the IR and the .tflite; rknnlite is
    # a Rockchip board's
    assert avail["openvino"] is None and avail["litert"] is None and avail["rknn"] is None
    assert avail["onnxruntime"] == metadata.version("onnxruntime")
    assert avail["paddlelite"] == metadata.version("paddlelite")
    assert avail["paddle"] == metadata.version("paddlepaddle")


def test_an_openvino_error_is_told_by_its_cause_not_by_openvinos_source_locations():
    """OpenVINO opens its messages with the C++ locations the exception passed through; the first of them
    ("Exception from src/inference/src/cpp/core.cpp:117:") was all a failed load said."""
    from wherry.runtimes.backends.openvino_backend import cause

    message = ("Exception from src/inference/src/cpp/core.cpp:117:\n"
               "Exception from src/inference/src/dev/plugin.cpp:53:\n"
               "Check 'false' failed at src/plugins/intel_cpu/src/node.cpp:1591:\n"
               "[CPU] Squeeze node with name 'p2o.Squeeze.3' Doesn't support op with dynamic rank\n")
    assert cause(message) == "[CPU] Squeeze node with name 'p2o.Squeeze.3' Doesn't support op with dynamic rank"
    assert cause("Exception from src/inference/src/cpp/core.cpp:117:\n") == \
        "Exception from src/inference/src/cpp/core.cpp:117:"   # nothing else said: the location it is
    assert cause("") == "(no message)"
