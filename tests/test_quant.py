"""Quantization on a CNN trained on real data (scikit-learn digits), measured on the real runtimes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from convert.example import EVAL, INPUTS, MODEL
from convert.example.train import digits_data
from runtimes import parity

# 450 held-out digits: one digit is 0.22 points. int8 PTQ of a small conv net with per-channel
# weights usually costs well under one point; 2 points (9 digits) leaves room for calibration
# noise while still catching a broken quantization (which costs tens of points).
MAX_INT8_DROP = 2.0


@pytest.fixture(scope="module")
def calib_npz(tmp_path_factory):
    x_train, _, _, _ = digits_data()  # the training split: disjoint from the eval digits
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, x=x_train[:128])
    return path


@pytest.fixture(scope="module")
def quantized(wherry, calib_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("quant")
    proc = wherry("convert", MODEL, "--inputs", INPUTS, "-t", "rpi4", "-t", "desktop-x86_64", "-o", out,
                  "--precision", "fp32,fp16,int8-weight,int8", "--calib", calib_npz, "--eval", EVAL, "--json",
                  check=0)
    return {r["target"]: r for r in json.loads(proc.stdout)}, out


def _rows(result):
    return {r["artifact"]: r for r in result["report"]["quantization"]["rows"]}


def _status(result):
    return {a["file"]: a for a in result["report"]["verification"]["artifacts"]}


def test_int8_onnx_runs_here_within_the_accuracy_bound(quantized):
    results, _ = quantized
    rpi4 = results["rpi4"]
    assert _status(rpi4)["model.int8.onnx"]["status"] == "passed"
    row = _rows(rpi4)["model.int8.onnx"]
    reference = rpi4["report"]["quantization"]["reference_accuracy"]
    assert reference > 95.0  # the example is a real, trained model
    assert row["accuracy"] is not None and row["accuracy_drop"] <= MAX_INT8_DROP
    assert row["size_ratio"] < 0.5
    assert row["latency_ms"] > 0 and row["latency_ratio"] is not None


def test_fp16_onnx_passes_its_tolerance(quantized, tmp_path):
    results, out = quantized
    status = _status(results["desktop-x86_64"])["model.fp16.onnx"]
    assert status["status"] == "passed"
    manifest = json.loads((out / "digits_cnn.desktop-x86_64" / "manifest.json").read_text())
    art = next(a for a in manifest["artifacts"] if a["file"] == "model.fp16.onnx")
    assert art["precision"] == "fp16"
    assert art["tolerance"]["linear_0.tmp_1"]["min_cosine"] == parity.default_tolerance("fp16").min_cosine
    assert _rows(results["desktop-x86_64"])["model.fp16.onnx"]["size_ratio"] < 0.6


def test_lite_int8_nb_has_int8_kernels_and_is_not_claimed_verified(quantized):
    results, out = quantized
    rpi4 = results["rpi4"]
    art = next(a for a in rpi4["report"]["artifacts"] if a["file"] == "model.arm.int8.nb")
    assert art["arch"] == "arm" and art["precision"] == "int8"
    assert any("conv2d/int8" in n for n in art["notes"]), art["notes"]
    assert _status(rpi4)["model.arm.int8.nb"]["status"] == "not verifiable here"
    assert (out / "digits_cnn.rpi4" / "model.arm.int8-weight.nb").is_file()
    # x86 Lite cannot run quantized programs: no quantized .nb for the desktop target, and it says why
    notes = " ".join(results["desktop-x86_64"]["report"]["quantization"]["notes"])
    assert "ARM only" in notes or "exist for ARM only" in notes
    assert not list((out / "digits_cnn.desktop-x86_64").glob("*.int8.nb"))


def test_fp16_nb_is_not_mislabelled(quantized):
    """PyPI's opt has no ARM fp16 kernels: wherry must not ship an fp32 program named fp16."""
    results, out = quantized
    assert not (out / "digits_cnn.rpi4" / "model.arm.fp16.nb").exists()
    assert any("fp16 .nb not built" in n for n in results["rpi4"]["report"]["quantization"]["notes"])


def test_max_drop_keeps_the_most_sensitive_layers_in_float(wherry, calib_npz, tmp_path):
    # without labels the bound is % cosine loss vs fp32 on the calibration data; int8 loses ~0.01 %
    proc = wherry("convert", MODEL, "--inputs", INPUTS, "-t", "desktop-x86_64", "--format", "onnx", "-o", tmp_path,
                  "--precision", "fp32,int8", "--calib", calib_npz, "--max-drop", "0.003", "--json", check=0)
    result = json.loads(proc.stdout)[0]
    notes = result["report"]["quantization"]["notes"]
    kept = [n for n in notes if n.startswith("kept in float")]
    assert kept, notes
    assert any("layer sensitivity" in n for n in notes)
    art = next(a for a in result["report"]["artifacts"] if a["file"] == "model.int8.onnx")
    assert any(n.startswith("kept in float") for n in art["notes"])
    assert _status(result)["model.int8.onnx"]["status"] == "passed"


def test_unreachable_bound_fails_clearly(wherry, calib_npz, tmp_path):
    proc = wherry("convert", MODEL, "--inputs", INPUTS, "-t", "desktop-x86_64", "--format", "onnx", "-o", tmp_path,
                  "--precision", "int8", "--calib", calib_npz, "--max-drop", "-1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot be met" in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("make, needle", [
    (lambda p: np.savez(p, y=np.zeros((16, 1, 8, 8), "float32")), "lacks input(s) x"),
    (lambda p: np.savez(p, x=np.zeros((4, 1, 8, 8), "float32")), "at least 8"),
    (lambda p: np.savez(p, x=np.zeros((16, 1, 4, 4), "float32")), "samples have shape"),
])
def test_bad_calibration_data_fails_before_work(wherry, tmp_path, make, needle):
    make(tmp_path / "c.npz")
    proc = wherry("convert", MODEL, "-o", tmp_path / "out", "--precision", "int8", "--calib", tmp_path / "c.npz")
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert "golden run" not in proc.stderr  # refused before any long work


def test_bad_eval_and_options(wherry, tmp_path, calib_npz):
    np.savez(tmp_path / "e.npz", x=np.zeros((10, 1, 8, 8), "float32"), labels=np.arange(5))
    proc = wherry("convert", MODEL, "-o", tmp_path / "out", "--eval", tmp_path / "e.npz")
    assert proc.returncode == 2 and "labels must be 10 integer class indices" in proc.stderr
    np.savez(tmp_path / "e2.npz", x=np.zeros((3, 1, 8, 8), "float32"), labels=np.array([0, 1, 42]))
    proc = wherry("convert", MODEL, "-o", tmp_path / "out", "--eval", tmp_path / "e2.npz")
    assert proc.returncode == 2 and "does not fit 10 classes" in proc.stderr
    proc = wherry("convert", MODEL, "-o", tmp_path / "out", "--precision", "int8")
    assert proc.returncode == 2 and "int8 needs calibration data" in proc.stderr
    proc = wherry("convert", MODEL, "-o", tmp_path / "out", "--max-drop", "1")
    assert proc.returncode == 2 and "--max-drop guards int8" in proc.stderr
    proc = wherry("convert", MODEL, "-o", tmp_path / "out", "--precision", "int4")
    assert proc.returncode == 2 and "unknown precision" in proc.stderr
