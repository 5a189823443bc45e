"""`wherry convert` / `wherry inspect` as a user runs them: real output, clear errors, nothing half-written."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from support.models import export_vision_model


def _assert_user_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "wherry: error:" in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def _no_partial_bundles(out_dir):
    if out_dir.exists():
        leftovers = [p.name for p in out_dir.iterdir()]
        assert leftovers == [], leftovers


def test_example_prints_the_verification_table(wherry, tmp_path):
    proc = wherry("convert", "--example", "-o", tmp_path, check=0)
    assert "model.x86.nb" in proc.stdout and "model.onnx" in proc.stdout
    rows = [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("model.")]
    summaries = [line.split("  ")[0] for line in proc.stdout.splitlines() if "  digits_cnn: " in line]
    if "emulated aarch64 board (qemu" in proc.stdout:   # the board ran the rpi4 .nb with Lite's ARM kernels
        assert rows == ["PASS"] * 4 and summaries == ["PASS", "PASS"], proc.stdout
    else:                      # x86 nb + onnx on desktop, onnx on rpi4; the arm .nb never ran
        assert rows == ["PASS", "PASS", "here", "PASS"] and summaries == ["PASS", "PARTLY VERIFIED"], proc.stdout
        assert "not verifiable here" in proc.stdout
    assert "add-xshape" in proc.stdout and "restore-attrs" in proc.stdout
    manifest = json.loads((tmp_path / "digits_cnn.rpi4" / "manifest.json").read_text())
    assert {a["file"]: a["arch"] for a in manifest["artifacts"]} == {"model.arm.nb": "arm", "model.onnx": "any"}
    assert manifest["golden"]["origin"] == "user"
    assert manifest["source"]["format"] == "legacy" and len(manifest["source"]["files"][0]["sha256"]) == 64


def test_json_summary_and_existing_bundle(wherry, tmp_path, example_model):
    proc = wherry("convert", example_model, "-o", tmp_path, "--json", "--format", "onnx", check=0)
    summary = json.loads(proc.stdout)["bundles"]
    assert summary[0]["ok"] and summary[0]["target"] == "desktop-x86_64"
    artifacts = summary[0]["report"]["verification"]
    assert [a["file"] for a in summary[0]["report"]["artifacts"]] == ["model.onnx"]
    assert artifacts is not None
    again = wherry("convert", example_model, "-o", tmp_path, "--format", "onnx")
    _assert_user_error(again, "already exists", "--force")
    wherry("convert", example_model, "-o", tmp_path, "--format", "onnx", "--force", check=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_cnn.desktop-x86_64"]


def test_inspect_lists_ops_and_lite_support(wherry, example_model):
    proc = wherry("inspect", example_model, "--json", check=0)
    report = json.loads(proc.stdout)
    assert report["format"] == "legacy"
    assert report["ops"]["conv2d"] == 3
    assert report["targets"]["rpi4"]["lite_ok"] and report["targets"]["desktop-x86_64"]["lite_ok"]
    text = wherry("inspect", example_model, check=0).stdout
    assert "all ops supported by Lite" in text and "x: float32[?,1,8,8]" in text


def test_missing_params(wherry, tmp_path, example_model):
    shutil.copy(example_model, tmp_path / "m.pdmodel")
    _assert_user_error(wherry("convert", tmp_path / "m.pdmodel", "-o", tmp_path / "out"), "m.pdiparams is missing")
    _no_partial_bundles(tmp_path / "out")


def test_corrupt_model(wherry, tmp_path, example_model):
    data = example_model.read_bytes()
    (tmp_path / "m.pdmodel").write_bytes(data[:200] + b"\xff" * 50)
    shutil.copy(example_model.with_suffix(".pdiparams"), tmp_path / "m.pdiparams")
    _assert_user_error(wherry("convert", tmp_path / "m.pdmodel", "-o", tmp_path / "out"), "not a")
    _no_partial_bundles(tmp_path / "out")


def test_truncated_params(wherry, tmp_path, example_model):
    shutil.copy(example_model, tmp_path / "m.pdmodel")
    params = example_model.with_suffix(".pdiparams").read_bytes()
    (tmp_path / "m.pdiparams").write_bytes(params[: len(params) // 2])
    proc = wherry("convert", tmp_path / "m.pdmodel", "-o", tmp_path / "out")
    _assert_user_error(proc)
    _no_partial_bundles(tmp_path / "out")


def test_json_not_a_paddle_program(wherry, tmp_path):
    (tmp_path / "m.json").write_text('{"nodes": []}')
    (tmp_path / "m.pdiparams").write_bytes(b"")
    _assert_user_error(wherry("convert", tmp_path / "m.json", "-o", tmp_path / "out"), "not a Paddle 3 PIR program")


def test_unknown_target(wherry, tmp_path, example_model):
    _assert_user_error(wherry("convert", example_model, "-t", "toaster", "-o", tmp_path / "out"),
                       "unknown target 'toaster'", "rpi4")
    _no_partial_bundles(tmp_path / "out")


def test_two_targets_that_are_one_profile_are_refused(wherry, tmp_path, example_model):
    """`-t a/box.toml -t b/box.toml` (both named box) printed two verified bundles at one path, the second
    having overwritten the first (issue 27, finding 4, in convert)."""
    from wherry.targets.profile import PROFILE_DIR
    text = (PROFILE_DIR / "desktop-x86_64.toml").read_text().replace('name = "desktop-x86_64"', 'name = "box"')
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "box.toml").write_text(text)
    proc = wherry("convert", example_model, "-o", tmp_path / "out", "-t", tmp_path / "a" / "box.toml",
                  "-t", tmp_path / "b" / "box.toml", check=2)
    assert "two targets are the profile 'box'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unwritable_output(wherry, tmp_path, example_model):
    (tmp_path / "afile").write_text("x")
    _assert_user_error(wherry("convert", example_model, "-o", tmp_path / "afile" / "out"),
                       "cannot write to output directory")


@pytest.mark.parametrize("arrays, needle", [
    ({"y": np.zeros((1, 1, 8, 8), "float32")}, "y"),
    ({"x": np.zeros((1, 3, 8, 8), "float32")}, "shape"),
    ({"x": np.zeros((1, 1, 8, 8), "int32")}, "dtype"),
])
def test_bad_input_npz(wherry, tmp_path, example_model, arrays, needle):
    np.savez(tmp_path / "in.npz", **arrays)
    proc = wherry("convert", example_model, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out")
    _assert_user_error(proc, needle)
    _no_partial_bundles(tmp_path / "out")


def test_pickled_npz_is_refused(wherry, tmp_path, example_model):
    np.savez(tmp_path / "in.npz", x=np.array([{"evil": pickle.dumps(1)}], dtype=object))
    _assert_user_error(wherry("convert", example_model, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out"),
                       "pickle")


def test_dynamic_dims_need_a_shape(wherry, tmp_path):
    model = export_vision_model("squeezenet1_1", "legacy", 64)
    shutil.copytree(model.parent, tmp_path / "m")
    # only the batch dim is dynamic here, so it converts; a bad --shape is refused with the model's dims
    _assert_user_error(wherry("convert", tmp_path / "m", "--shape", "x=1,3,32,32", "-o", tmp_path / "out"),
                       "does not fit", "x: float32[?,3,64,64]")
    _assert_user_error(wherry("convert", tmp_path / "m", "--shape", "x=1,three", "-o", tmp_path / "out"),
                       "NAME=D1,D2")


def test_lite_segfault_becomes_a_readable_error(wherry, tmp_path):
    """With the repair disabled and only the .nb asked for, Lite's x86 segfault surfaces as a typed error naming
    the pass; nothing was built, so no bundle (with ONNX asked for too, the ONNX ships: test_artifact_fates)."""
    model = export_vision_model("mobilenet_v3_small", "legacy", 64)
    proc = wherry("convert", model, "-t", "desktop-x86_64", "--format", "nb", "-o", tmp_path / "out",
                  "--skip-pass", "add-xshape")
    _assert_user_error(proc, "Paddle Lite opt crashed (SIGSEGV)", "variable_place_inference_pass", "add-xshape")
    _no_partial_bundles(tmp_path / "out")


def test_paddle1_directory_converts_and_verifies(wherry, tmp_path, example_model):
    import subprocess
    import sys

    from support.paths import SUPPORT
    model_dir = tmp_path / "digits_1x"
    subprocess.run([sys.executable, str(SUPPORT / "export_paddle1.py"), str(example_model.with_suffix("")),
                    str(model_dir)], check=True, capture_output=True)
    proc = wherry("convert", model_dir, "--inputs", example_model.parent / "digits_inputs.npz", "-o",
                  tmp_path / "out", "--json", check=0)
    summary = json.loads(proc.stdout)["bundles"][0]
    statuses = {a["file"]: a["status"] for a in summary["report"]["verification"]["artifacts"]}
    assert statuses == {"model.x86.nb": "passed", "model.onnx": "passed"}
    manifest = json.loads((tmp_path / "out" / "digits_1x.desktop-x86_64" / "manifest.json").read_text())
    assert manifest["source"]["format"] == "paddle1" and len(manifest["source"]["files"]) == 21


def test_golden_from_real_images_records_the_preprocessing(wherry, tmp_path):
    """--images + --preprocess: goldens from real photos; a device can redo the preprocessing from the manifest."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from support.models import OCR_MODELS, rapidocr_models
    from wherry.runtimes.preprocess import PreprocessSpec, load_folder

    images = tmp_path / "images"
    images.mkdir()
    for i, img in enumerate(load_sample_images().images):
        Image.fromarray(img).save(images / f"photo{i}.png")
    spec = '{"size": [48, 192], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}'
    model = rapidocr_models() / OCR_MODELS["ppocr_mobile_v2_cls"][0]
    proc = wherry("convert", model, "--images", images, "--preprocess", spec, "--format", "onnx", "-o",
                  tmp_path / "out", "--json", check=0)
    assert json.loads(proc.stdout)["bundles"][0]["ok"]
    bundle = tmp_path / "out" / f"{model.name}.desktop-x86_64"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["golden"]["origin"] == "images"
    recorded = PreprocessSpec.from_json(manifest["preprocess"])
    golden = np.load(bundle / "golden" / "inputs.npz")["x"]
    assert golden.shape == (2, 3, 48, 192)
    np.testing.assert_array_equal(load_folder(images, recorded), golden)

    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_user_error(wherry("convert", model, "--images", empty, "-o", tmp_path / "o2"), "holds no images")
    _assert_user_error(wherry("convert", model, "--images", images, "--preprocess", '{"layout": "HWCN"}',
                              "-o", tmp_path / "o3"), "invalid preprocessing spec")
