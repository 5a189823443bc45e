"""Edge matrix: the conformance set converted for OpenVINO, the RK3588 NPU and LiteRT, each in its tool environment.

The conformance set's models (tests/e2e/test_conformance.py's lists: the vision models as legacy .pdmodel and as
PIR .json, the real PP-OCR models, the legalization models) are converted with ``-t openvino -t rk3588-npu -t
tests/support/litert-x86.toml --precision fp32,int8 --calib`` in the tools' cached environments (``-m edge``;
skipped, with the reason, where one cannot be made). Every artifact's verdict goes to out/edge_matrix.json, from
which scripts/support_matrix.py renders the edge table of docs/matrix.md. Not converted here: the LoD tagger (no
ONNX, which every edge tool starts from) and the NMS detector (its OpenVINO IR is tested on its own in
tests/convert/test_edge_targets.py, as is its --without-nms .tflite), see docs/matrix.md.

What must hold (and can fail):
- every fp32 OpenVINO IR and fp32 .tflite passes against Paddle Inference's golden outputs on this host;
- an .rknn is never a pass: "not verifiable here", its reason and report carrying the toolkit's simulation,
  with numbers;
- an int8 artifact that is not built says why, naming the tool's limitation.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from support.matrix_records import artifact_record, merge_records
from support.models import (LEGAL_MODELS, OCR_MODELS, VISION, export_legal_model, export_vision_model, ocr_image,
                            rapidocr_models)
from support.paths import REPO
from support.tool_envs import tool_environment
from wherry.convert import litert_export, openvino_export, pipeline, rknn_export, source
from wherry.runtimes.checker import NOT_BUILT, PASSED, UNVERIFIABLE

LITERT_X86 = REPO / "tests" / "support" / "litert-x86.toml"   # android-litert with arch x86_64: no emulated board
TARGETS = ["openvino", "rk3588-npu", str(LITERT_X86)]
SIZE = 224                # the conformance set's input size
CALIB_SAMPLES = 16
RESULTS = REPO / "out" / "edge_matrix.json"
#: target -> the edge artifact of each asked-for precision (the NPU's float form is fp16) and its tool module
EDGE = {"openvino": ({"fp32": "model.xml", "int8": "model.int8.xml"}, openvino_export),
        "rk3588-npu": ({"fp32": "model.rknn", "int8": "model.int8.rknn"}, rknn_export),
        "litert-x86": ({"fp32": "model.tflite", "int8": "model.int8.tflite"}, litert_export)}
#: what a not-built int8 artifact's reason must name: the tool and what it cannot do
LIMITATION = {"openvino": re.compile(r"NNCF|OpenVINO"), "rk3588-npu": re.compile(r"rknn-toolkit2"),
              "litert-x86": re.compile(r"^onnx2tf's int8 quantizer |: onnx2tf's int8 quantizer ")}
_records = []


@pytest.fixture(scope="module", autouse=True)
def record_matrix():
    yield
    if _records:
        merge_records(RESULTS, _records, ("model", "source"))


@pytest.fixture(scope="module")
def tools():
    """The three tool environments, made once (minutes each on a fresh machine)."""
    return [tool_environment(module) for module in (openvino_export, rknn_export, litert_export)]


def _calibration(model, path):
    rng = np.random.default_rng(0)
    arrays = {spec.name: rng.standard_normal((CALIB_SAMPLES, *[d or 1 for d in spec.shape[1:]])).astype("float32")
              for spec in source.read(str(model)).inputs}
    np.savez(path, **arrays)
    return path


def _ocr_calibration(shape, path, count=CALIB_SAMPLES):
    """Photos like the conformance set's golden one: seeded random crops of scikit-learn's two sample images,
    resized to the model's input and normalized as PaddleOCR's preprocessing does (support.models.ocr_image)."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    rng = np.random.default_rng(0)
    _, _, h, w = shape
    photos = [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]
    samples = []
    for i in range(count):
        photo = photos[i % len(photos)]
        cw, ch = (int(photo.width * rng.uniform(0.4, 1.0)), int(photo.height * rng.uniform(0.4, 1.0)))
        x, y = int(rng.integers(0, photo.width - cw + 1)), int(rng.integers(0, photo.height - ch + 1))
        crop = photo.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR)
        samples.append(((np.asarray(crop, dtype="float32") / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))
    np.savez(path, x=np.stack(samples).astype("float32"))
    return path


def _record(name, fmt, result, art, seconds):
    record = artifact_record(name, fmt, result, art)
    simulated = (result.report.get("simulated_verification") or {}).get(art.file)
    record.update(precision=art.precision, simulated=simulated is not None, seconds=round(seconds, 1),
                  bundle_verdict=result.check.verdict)
    if simulated is not None:   # the toolkit's simulation of the compiled graph: numbers, never the verdict
        outs = [o for o in simulated["outputs"] if o.get("max_abs") is not None]
        worst = max(outs, key=lambda o: float(o["max_rel"])) if outs else {}
        record.update(simulated_status=simulated["status"], max_abs=worst.get("max_abs"),
                      max_rel=worst.get("max_rel"), cosine=worst.get("cosine"))
    return record


def _convert_and_check(name, fmt, model, out, calib, precisions=("fp32", "int8"), **options):
    start = time.perf_counter()
    results = pipeline.convert(pipeline.ConvertOptions(
        model=str(model), targets=TARGETS, out=out, precisions=list(precisions), calib=calib, **options))
    seconds = time.perf_counter() - start
    by_target = {r.target: r for r in results}
    assert set(by_target) == set(EDGE)
    rows = {(r.target, art.file): art for r in results for art in r.check.results}
    _records.extend(_record(name, fmt, r, art, seconds) for r in results for art in r.check.results)

    for target, (files, module) in EDGE.items():
        for precision, file in files.items():
            if precision not in precisions:
                continue
            art = rows.get((target, file))
            assert art is not None, f"{target} lists no {file}"
            if target == "rk3588-npu":      # no NPU here: never a pass, the simulation says what it saw
                assert art.status == UNVERIFIABLE, (file, art.status, art.reason)
                simulated = by_target[target].report["simulated_verification"][file]
                assert simulated["where"] == rknn_export.SIMULATED
                assert any(o.get("max_abs") is not None for o in simulated["outputs"]), simulated
                assert art.reason.startswith(rknn_export.SIMULATED), art.reason
            elif precision == "fp32":
                assert art.status == PASSED, (target, file, art.reason)
            if precision == "int8" and art.status == NOT_BUILT:
                assert LIMITATION[target].search(art.reason or ""), (target, file, art.reason)
    assert by_target["rk3588-npu"].check.verdict != "passed"      # the ONNX ran here; the NPU did not
    assert rows[("openvino", "model.onnx")].status == PASSED      # the IR's source, checked by ONNX Runtime


@pytest.mark.edge
@pytest.mark.parametrize("fmt", ["legacy", "pir"])
@pytest.mark.parametrize("name", VISION)
def test_edge_targets_of_a_conformance_model(name, fmt, tools, tmp_path):
    model = export_vision_model(name, fmt, SIZE)
    _convert_and_check(name, fmt, model, tmp_path / "out", _calibration(model, tmp_path / "calib.npz"))


@pytest.mark.edge
@pytest.mark.parametrize("name", sorted(OCR_MODELS))
def test_edge_targets_of_a_ppocr_model(name, tools, tmp_path):
    """The real PP-OCR models of the conformance set, on its golden input (a photo at the conformance shape),
    calibrated on crops of photos (rendered text pages left the detector's int8 IR at cosine 0.17 on the photo)."""
    folder, shape = OCR_MODELS[name]
    shape = tuple(int(d) for d in shape.split(","))
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=ocr_image(shape))
    _convert_and_check(name, "legacy", rapidocr_models() / folder, tmp_path / "out",
                       _ocr_calibration(shape, tmp_path / "calib.npz"), inputs=inputs)


@pytest.mark.edge
@pytest.mark.parametrize("name", LEGAL_MODELS)
def test_edge_targets_of_a_legalization_model(name, tools, tmp_path):
    """One model per legalization pass. Those exported with a fixed batch of 2 are converted in fp32 only: wherry
    calibrates (int8) only models whose batch is 1 or dynamic."""
    model = export_legal_model(name)
    batch = source.read(str(model)).inputs[0].shape[0]
    precisions = ("fp32", "int8") if batch in (None, 1) else ("fp32",)
    _convert_and_check(f"{name} (legalization)", "legacy", model, tmp_path / "out",
                       _calibration(model, tmp_path / "calib.npz") if "int8" in precisions else None, precisions)
