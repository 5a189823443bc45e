"""Edge runtimes beyond Lite and ONNX Runtime, each converted and checked in a tool environment of its own.

The formats' plumbing (an IR is two files, hashed together; ``.xml`` opens the OpenVINO backend and
``.tflite`` the LiteRT one; the profiles load) is tested in the default run: it needs no tool. The real conversions of the digits
example need the tool environments (~500-650 MB each from PyPI, made once and cached in wherry's user
cache, ``$WHERRY_CACHE``): they run with ``-m edge`` and skip, with the reason, where an environment
cannot be made here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from support.tool_envs import tool_environment
from wherry import runtimes
from wherry.convert import example, tool_env
from wherry.runtimes.bundle import content_hash, load_bundle
from wherry.runtimes.checker import golden_data
from wherry.runtimes.errors import BundleError
from wherry.targets import load_profile


# ------------------------------------------------------------------ plumbing (default run, no tool needed)

def test_an_ir_is_hashed_with_its_weights_and_opens_with_openvino(tmp_path):
    xml, weights = tmp_path / "model.xml", tmp_path / "model.bin"
    xml.write_text("<net/>")
    weights.write_bytes(b"\0" * 16)
    before = content_hash(xml)
    weights.write_bytes(b"\1" * 16)
    assert content_hash(xml) != before      # changed weights change the artifact's hash
    target = runtimes.session.resolve(xml)
    assert target.backend == "openvino"


def test_openvino_profile_builds_the_ir_beside_the_onnx():
    profile = load_profile("openvino")
    assert profile.artifacts == ["onnx", "openvino"] and profile.arch == "x86_64"


def test_a_tflite_opens_with_litert_and_android_litert_builds_it(tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"TFL3")
    assert runtimes.session.resolve(model).backend == "litert"
    assert load_profile("android-litert").artifacts == ["tflite"]


def test_a_channels_last_tflite_output_is_turned_back_to_the_manifests_nchw():
    """onnx2tf writes a detector's [1, 1, H, W] map as [1, H, W, 1]; the manifest's NCHW spec says which it is."""
    from wherry.runtimes.backends.litert_backend import _channels_last
    from wherry.runtimes.specs import TensorSpec

    nchw = TensorSpec("sigmoid_0.tmp_0", "float32", (None, 1, None, None))
    assert _channels_last([1, 640, 640, 1], nchw)
    assert not _channels_last([1, 1, 640, 640], nchw)            # already the model's layout
    assert not _channels_last([1, 10], TensorSpec("logits", "float32", (None, 10)))
    assert not _channels_last([1, 640, 640, 1], None)             # a bare .tflite: nothing to go by
    scores = TensorSpec("scores", "float32", (None, 3, 32))       # a detector's [N, classes, boxes]: NWC in a .tflite
    assert _channels_last([1, 32, 3], scores) and not _channels_last([1, 3, 32], scores)
    assert not _channels_last([1, 32, 4], scores)                 # the last dim is not the class count


def test_onnx2tf_int8_failures_of_its_own_are_named_for_what_the_tool_cannot_do():
    """The text onnx2tf 2.6.9 raised on mobilenet_v2 (depthwise biases), resnet18 (PADV2) and a GRU (its int8
    BATCH_MATMUL): a precise reason."""
    from wherry.convert.litert_export import limitation

    depthwise = limitation("StrictFullIntegerQuantizationError: Strict integer quantized TFLite validation failed: "
                           "model_integer_quant.tflite: quantized_dimension must be in range [0, 1). Was 3.Tensor 9 "
                           "has invalid quantization parameters.")
    assert "DEPTHWISE_CONV_2D biases the per-channel axis" in depthwise.message and "quantized_dimension 3" in \
        depthwise.message
    pad = limitation("Unsupported op for strict full integer quantization: index=12 op_type=PADV2")
    assert pad.message == "onnx2tf's int8 quantizer has no int8 form of TFLite op PADV2"
    gru = limitation("RuntimeError: tflite/kernels/batch_matmul.cc:350 (lhs_data->type == kTfLiteFloat32 && "
                     "rhs_data->type == kTfLiteInt8) || lhs_data->type == rhs_data->type was not true.Node number 6 "
                     "(BATCH_MATMUL) failed to prepare.")
    assert gru.message == ("onnx2tf's int8 quantizer wrote a BATCH_MATMUL that LiteRT's kernel cannot prepare "
                           "((lhs_data->type == kTfLiteFloat32 && rhs_data->type == kTfLiteInt8) || lhs_data->type == "
                           "rhs_data->type)")
    assert limitation("RuntimeError: flatbuffer_direct fast path failed.") is None


def test_rknn_profiles_name_their_npu_and_an_rknn_opens_with_rknnlite(tmp_path):
    from wherry.targets.profile import ProfileError

    assert load_profile("rk3588-npu").npu_platform == "rk3588"
    assert load_profile("rv1106-npu").precisions == ["int8"]      # that NPU has no fp16
    bad = tmp_path / "npu.toml"
    bad.write_text('name = "npu"\ndescription = "x"\narch = "aarch64"\nos = "linux"\nartifacts = ["rknn"]\n'
                   'lite_places = []\n')
    with pytest.raises(ProfileError, match="npu_platform"):
        load_profile(str(bad))
    model = tmp_path / "model.rknn"
    model.write_bytes(b"RKNN")
    assert runtimes.session.resolve(model).backend == "rknn"


def test_a_tool_environment_that_cannot_be_made_is_one_readable_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WHERRY_TOOLS_DIR", str(tmp_path / "tools"))
    with pytest.raises(tool_env.ToolUnavailable, match="needs Python 2.9, and none is installed here"):
        tool_env.ensure(tool_env.ToolEnv("old", ("x==1",), pythons=("2.9",)))
    broken = tool_env.ToolEnv("broken", ("not a requirement!",))   # pip refuses it without asking any index
    with pytest.raises(tool_env.ToolUnavailable, match="cannot install broken .installing its packages."):
        tool_env.ensure(broken)
    assert list((tmp_path / "tools").iterdir()) == []          # no half-made environment left to be trusted
    assert tool_env.installed(broken) is None


def test_a_tool_environment_outlives_the_venv_wherry_ran_from_and_is_remade_when_its_python_is_gone(
        tmp_path, monkeypatch):
    # wherry itself runs from a venv; the tool's venv must link to the real interpreter behind it
    assert not Path(tool_env.base_interpreter()).is_symlink()
    monkeypatch.setenv("WHERRY_TOOLS_DIR", str(tmp_path / "tools"))
    env = tool_env.ToolEnv("empty", ())          # nothing to install: only the venv is made
    monkeypatch.setattr(tool_env, "_run", lambda argv, env, what: None if "pip" in argv else
                        subprocess.run(argv, check=True, capture_output=True))
    python = tool_env.ensure(env)
    assert Path(os.path.realpath(python)) == Path(tool_env.base_interpreter())
    # the Python it was made from disappears (here: the link is pointed nowhere)
    python.unlink()
    python.symlink_to(tmp_path / "deleted-venv" / "bin" / "python")
    assert tool_env.installed(env) is None       # `.ready` alone is not trusted
    assert tool_env.ensure(env).exists()         # made again, not handed back broken

def test_squeeze_axes_made_explicit_keep_the_nms_detectors_onnx_results(tmp_path):
    """paddle2onnx's NMS index column is Gather(selected, [1]) -> Squeeze() with no axes: a data-dependent rank
    OpenVINO's CPU plugin cannot compile. The copy for OpenVINO names the axis; ONNX Runtime gives the same
    detections from both."""
    from support.models import export_detection_model

    from wherry.convert import api, openvino_export

    bundle, = api.convert(export_detection_model(), targets="desktop-x86_64", precisions="fp32", out=tmp_path,
                          name="nms", formats=["onnx"])
    onnx_file = bundle.path / "model.onnx"
    rewritten, count = openvino_export._explicit_squeeze_axes(onnx_file, tmp_path / "explicit.onnx")
    assert count == 2 and rewritten == tmp_path / "explicit.onnx"
    feeds, _ = golden_data(load_bundle(bundle.path))
    with runtimes.open(str(onnx_file)) as before, runtimes.open(str(rewritten)) as after:
        old, new = before.run(feeds), after.run(feeds)
    assert old.keys() == new.keys() and all(np.array_equal(old[k], new[k]) for k in old)
    assert openvino_export._explicit_squeeze_axes(rewritten, tmp_path / "again.onnx") == (rewritten, 0)


# ------------------------------------------------------------------ real conversions (-m edge)

@pytest.fixture(scope="module")
def openvino_bundle(wherry, tmp_path_factory):
    from wherry.convert import openvino_export

    tool_environment(openvino_export)
    out = tmp_path_factory.mktemp("openvino")
    proc = wherry("convert", "--example", "-t", "openvino", "-o", out, "--precision", "fp32,int8",
                  "--calib", example.CALIB, "--eval", example.EVAL, "--json", check=0)
    return json.loads(proc.stdout)["bundles"][0], out / "digits_cnn.openvino"


@pytest.mark.edge
def test_openvino_ir_fp32_and_int8_pass_against_golden_in_f32(openvino_bundle):
    record, folder = openvino_bundle
    outcomes = {a["file"]: a for a in record["artifacts"]}
    checked = {r["file"]: r for r in record["report"]["verification"]["artifacts"]}
    for file, max_abs in (("model.xml", 1e-4), ("model.int8.xml", None)):
        assert outcomes[file]["verdict"] == "passed", outcomes[file]
        assert "OpenVINO 2026.4.1's CPU plugin in f32" in checked[file]["reason"]   # where it ran: not this host
        if max_abs is not None:
            assert max(o["max_abs"] for o in checked[file]["outputs"]) < max_abs
    manifest = json.loads((folder / "manifest.json").read_text())
    ir = {a["file"]: a for a in manifest["artifacts"] if a["format"] == "openvino"}
    assert set(ir) == {"model.xml", "model.int8.xml"} and all(a["runtime"] == "openvino" for a in ir.values())
    assert any("FakeQuantize" in n for n in ir["model.int8.xml"]["notes"])
    assert (folder / "model.int8.bin").stat().st_size < 0.5 * (folder / "model.bin").stat().st_size
    assert record["verdict"] == "passed"
    _assert_scored_where_checked(record, ("model.xml", "model.int8.xml"), "OpenVINO")


@pytest.mark.edge
def test_openvino_ir_of_the_nms_detector_passes(wherry, tmp_path):
    """The NMS detector's IR compiles on the CPU plugin (its Squeeze axes made explicit) and its detection rows
    pass against Paddle's."""
    from support.models import export_detection_model

    from wherry.convert import openvino_export

    tool_environment(openvino_export)
    proc = wherry("convert", export_detection_model(), "-t", "openvino", "-o", tmp_path, "--name", "nms", "--json",
                  check=0)
    record = json.loads(proc.stdout)["bundles"][0]
    outcomes = {a["file"]: a for a in record["artifacts"]}
    assert outcomes["model.xml"]["verdict"] == "passed", outcomes["model.xml"]
    manifest = json.loads((tmp_path / "nms.openvino" / "manifest.json").read_text())
    ir = next(a for a in manifest["artifacts"] if a["file"] == "model.xml")
    assert any("Squeeze node(s) without axes" in n for n in ir["notes"])


@pytest.mark.edge
def test_tflite_of_the_nms_less_detector_passes_with_its_class_scores_channels_first(wherry, tmp_path):
    """onnx2tf writes the [1, 3, 32] class scores as [1, 32, 3] (NWC); the backend turns them back to the
    manifest's layout, and both outputs pass against Paddle's."""
    from support.models import export_detection_model

    from wherry.convert import litert_export

    tool_environment(litert_export)
    proc = wherry("convert", export_detection_model(), "-t", str(Path(__file__).parents[1] / "support" / "litert-x86.toml"),
                  "--without-nms", "-o", tmp_path, "--name", "nonms", "--json", check=0)
    record = json.loads(proc.stdout)["bundles"][0]
    assert {a["file"]: a["verdict"] for a in record["artifacts"]}["model.tflite"] == "passed", record["artifacts"]


@pytest.mark.edge
def test_the_nms_detectors_tflite_fails_and_its_rknn_is_not_built_each_saying_why(wherry, tmp_path):
    """With its NMS: LiteRT's XNNPack delegate cannot prepare the .tflite, which is a failure of the artifact on
    its runtime (not "not verifiable here"); rknn-toolkit2 refuses the NMS over computed boxes, and the hint
    says to convert with --without-nms. No traceback in what the user reads."""
    from support.models import export_detection_model

    from wherry.convert import litert_export, rknn_export

    for module in (litert_export, rknn_export):
        tool_environment(module)
    proc = wherry("convert", export_detection_model(), "-t", str(Path(__file__).parents[1] / "support" / "litert-x86.toml"),
                  "-t", "rk3588-npu", "-o", tmp_path, "--name", "nms", "--json", check=1)
    bundles = json.loads(proc.stdout)["bundles"]
    verdicts = {a["file"]: a for b in bundles for a in b["artifacts"]}
    assert verdicts["model.tflite"]["verdict"] == "failed" and "LiteRT failed to run" in json.dumps(verdicts["model.tflite"])
    assert verdicts["model.tflite"]["debug_command"] is None     # nothing ran: no layer to compare
    assert verdicts["model.rknn"]["verdict"] == "not built"
    not_built, = (n for b in bundles for n in b["report"].get("not_built", []))
    assert "--without-nms" in not_built["hint"], not_built
    # (the JSON's "log" keeps the tool's own log, traceback and all, for a bug report)
    assert "Traceback" not in proc.stderr and "Traceback" not in not_built["reason"]


@pytest.fixture(scope="module")
def litert_bundle(wherry, tmp_path_factory):
    from wherry.convert import litert_export

    tool_environment(litert_export)
    out = tmp_path_factory.mktemp("litert")
    proc = wherry("convert", "--example", "-t", "android-litert", "-o", out, "--precision", "fp32,int8",
                  "--calib", example.CALIB, "--eval", example.EVAL, "--json", check=0)
    return json.loads(proc.stdout)["bundles"][0], out / "digits_cnn.android-litert"


@pytest.mark.edge
def test_tflite_fp32_and_int8_pass_against_golden_on_litert(litert_bundle):
    record, folder = litert_bundle
    outcomes = {a["file"]: a for a in record["artifacts"]}
    checked = {r["file"]: r for r in record["report"]["verification"]["artifacts"]}
    for file in ("model.tflite", "model.int8.tflite"):
        assert outcomes[file]["verdict"] == "passed", outcomes[file]
        assert "LiteRT 2.1.2's Python interpreter" in checked[file]["reason"]
    assert max(o["max_abs"] for o in checked["model.tflite"]["outputs"]) < 1e-4
    # an aarch64 target: the fp32 .tflite also ran on the emulated aarch64 board, LiteRT's aarch64 wheel
    manifest = json.loads((folder / "manifest.json").read_text())
    notes = {a["file"]: a["notes"] for a in manifest["artifacts"]}
    assert any(n.startswith("emulated aarch64 board (qemu, LiteRT 2.3.0 aarch64 kernels) vs golden: pass")
               for n in notes["model.tflite"]), notes["model.tflite"]
    assert any(n.startswith("emulated aarch64 board") for n in notes["model.int8.tflite"])
    assert (folder / "model.int8.tflite").stat().st_size < 0.5 * (folder / "model.tflite").stat().st_size
    assert record["verdict"] == "passed"
    _assert_scored_where_checked(record, ("model.tflite", "model.int8.tflite"), "LiteRT")


def _assert_scored_where_checked(record, files, runtime):
    """--eval: the edge artifacts' task metric, measured in their tool's environment, within 2 points of the
    original model's (450 held-out digits; fp32 within 0.5)."""
    quantization = record["report"]["quantization"]
    rows = {r["artifact"]: r for r in quantization["rows"]}
    for file in files:
        row = rows[file]
        assert row["score"] is not None and runtime in row["measured_on"], row
        assert row["score_drop"] <= (0.5 if "int8" not in file else 2.0), row


@pytest.mark.edge
def test_int8_tflite_of_a_hardsigmoid_model_is_not_built_with_the_op_named(wherry, tmp_path):
    """mobilenet_v3's squeeze-excitation gates are HardSigmoid: onnx2tf makes them RELU_0_TO_1, which its int8
    quantizer cannot take. The fp32 .tflite still ships and passes; the int8 one is a precise not-built record."""
    from support.models import export_vision_model
    from wherry.convert import litert_export

    tool_environment(litert_export)
    model = export_vision_model("mobilenet_v3_small", "legacy", 64)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).uniform(-1, 1, (16, 3, 64, 64)).astype("float32"))
    proc = wherry("convert", model, "-t", "android-litert", "-o", tmp_path / "out", "--precision", "fp32,int8",
                  "--calib", calib, "--json", check=1)
    record = json.loads(proc.stdout)["bundles"][0]
    outcomes = {a["file"]: a for a in record["artifacts"]}
    assert outcomes["model.tflite"]["verdict"] == "passed", outcomes["model.tflite"]
    assert outcomes["model.int8.tflite"]["verdict"] == "not built"
    assert "RELU_0_TO_1" in outcomes["model.int8.tflite"]["reason"]
    assert "HardSigmoid" in outcomes["model.int8.tflite"]["reason"]


@pytest.mark.edge
@pytest.mark.parametrize("kind", ["openvino", "litert"])
def test_the_artifact_runs_through_the_one_session_interface(kind, request):
    """runtimes.open on the .xml / .tflite in its tool environment: the same outputs as the golden run."""
    import subprocess

    from wherry.convert import litert_export, openvino_export

    module, file, backend = {"openvino": (openvino_export, "model.xml", "openvino"),
                             "litert": (litert_export, "model.tflite", "litert")}[kind]
    _, folder = request.getfixturevalue(f"{kind}_bundle")
    python = tool_environment(module)
    code = ("import json, sys, numpy as np; from wherry import runtimes\n"
            f"s = runtimes.open(sys.argv[1] + '/{file}')\n"
            "x = np.load(sys.argv[1] + '/golden/inputs.npz')\n"
            "out = s.run({k: x[k] for k in x.files})\n"
            "print(json.dumps({'backend': s.backend, 'inputs': [i.name for i in s.inputs], "
            "'out': {k: v.tolist() for k, v in out.items()}}))")
    with __import__("tempfile").TemporaryDirectory() as tmp:
        env = {"PYTHONPATH": str(tool_env.code_dir(__import__("pathlib").Path(tmp))), "PATH": "/usr/bin:/bin"}
        proc = subprocess.run([str(python), "-c", code, str(folder)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    golden = np.load(folder / "golden" / "outputs.npz")
    assert data["backend"] == backend and data["inputs"] == ["x"]
    for name, values in data["out"].items():
        np.testing.assert_allclose(np.array(values), golden[name], atol=1e-4)


@pytest.mark.edge
def test_an_ir_without_its_weights_or_with_other_weights_is_refused(openvino_bundle, tmp_path):
    _, folder = openvino_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(folder, copy)
    bundle = load_bundle(copy)
    xml = bundle.manifest.artifact("model.xml")
    (copy / "model.bin").write_bytes((copy / "model.int8.bin").read_bytes())
    with pytest.raises(BundleError, match="does not match its manifest hash"):
        load_bundle(copy).verify_artifact(xml)
    (copy / "model.bin").unlink()
    with pytest.raises(BundleError, match="model.bin .part of artifact model.xml. is missing"):
        load_bundle(copy).verify_artifact(xml)


@pytest.mark.edge
def test_rknn_is_recorded_as_simulated_never_as_a_pass(wherry, tmp_path):
    """rk3588 fp16 and int8 .rknn: the toolkit's simulation in the building session, judged against golden, is
    recorded as simulated in the report and the check's reason; the artifacts stay "not verifiable here" and
    the bundle is never "passed". rv1106 has no fp16: a precise not-built record beside its int8 .rknn."""
    from wherry.convert import rknn_export

    tool_environment(rknn_export)
    proc = wherry("convert", "--example", "-t", "rk3588-npu", "-t", "rv1106-npu", "-o", tmp_path,
                  "--precision", "fp32,int8", "--calib", example.CALIB, "--json", check=1)
    bundles = {b["target"]: b for b in json.loads(proc.stdout)["bundles"]}
    rk3588 = bundles["rk3588-npu"]
    simulated = rk3588["report"]["simulated_verification"]
    assert set(simulated) == {"model.rknn", "model.int8.rknn"}
    for file, record in simulated.items():
        assert record["status"] == "passed", record
        assert record["where"] == rknn_export.SIMULATED
    assert max(o["max_abs"] for o in simulated["model.rknn"]["outputs"]) < 0.05     # fp16 on logits ~10
    outcomes = {a["file"]: a for a in rk3588["artifacts"]}
    for file in ("model.rknn", "model.int8.rknn"):
        assert outcomes[file]["verdict"] == "not verifiable here"
        assert outcomes[file]["reason"].startswith("simulated: the toolkit's simulation of the compiled graph, not "
                                                   "the NPU: passed")
    assert rk3588["verdict"] == "partly verified"          # the ONNX ran here; the NPU did not
    rv1106 = {a["file"]: a for a in bundles["rv1106-npu"]["artifacts"]}
    assert rv1106["model.rknn"]["verdict"] == "not built" and "no fp16" in rv1106["model.rknn"]["reason"]
    assert rv1106["model.int8.rknn"]["verdict"] == "not verifiable here"
    check = wherry("check", tmp_path / "digits_cnn.rk3588-npu", "--json", check=0)
    rows = {r["file"]: r for r in json.loads(check.stdout)["artifacts"]}
    assert rows["model.rknn"]["status"] == "not verifiable here"   # a later check on x86 claims nothing either
