"""Detection outputs: NMS rows are compared as sets of detections; the NMS-less export ships too."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wherry import runtimes
from support.models import export_detection_model
from wherry.runtimes import parity
from wherry.runtimes.bundle import Tolerance


def _detections():
    # [class, score, x1, y1, x2, y2]
    return np.array([[0, 0.99, 10, 10, 50, 60], [1, 0.95, 100, 40, 140, 90], [0, 0.80, 200, 10, 230, 40],
                     [2, 0.60, 5, 5, 25, 25]], "float32")


def _tol():
    return Tolerance(**{**parity.default_tolerance("fp32").__dict__, "match_iou": 0.9})


def test_reordered_detections_match_as_a_set():
    g = _detections()
    r = parity.compare({"d": g}, {"d": g[[2, 0, 3, 1]]}, {"d": _tol()})[0]
    assert r.passed and "compared as 4 detection(s)" in r.reason
    plain = parity.compare({"d": g}, {"d": g[[2, 0, 3, 1]]})[0]
    assert not plain.passed  # element-wise, the same detections in another order look wrong


def test_missing_moved_or_reclassified_detections_fail():
    g = _detections()
    assert "1 of 4 golden detection(s) have no match" in parity.compare({"d": g}, {"d": g[:3]}, {"d": _tol()})[0].reason
    moved = g.copy()
    moved[1, 2:] += 30  # IoU with its golden box drops below 0.9
    assert not parity.compare({"d": g}, {"d": moved}, {"d": _tol()})[0].passed
    relabelled = g.copy()
    relabelled[0, 0] = 1
    assert not parity.compare({"d": g}, {"d": relabelled}, {"d": _tol()})[0].passed
    rescored = g.copy()
    rescored[3, 1] += 0.01  # same box, a score off by far more than fp32 rounding
    r = parity.compare({"d": g}, {"d": rescored}, {"d": _tol()})[0]
    assert not r.passed and "score error" in r.reason


@pytest.fixture(scope="module")
def detector_bundles(tmp_path_factory):
    from wherry.convert import pipeline

    out = tmp_path_factory.mktemp("det")
    with_nms = pipeline.convert(pipeline.ConvertOptions(model=str(export_detection_model()), out=out / "nms",
                                                        name="det"))[0]
    without = pipeline.convert(pipeline.ConvertOptions(model=str(export_detection_model()), out=out / "raw",
                                                       name="det", without_nms=True))[0]
    return with_nms, without


def test_detector_with_nms_passes_as_detections_on_lite_and_onnx(detector_bundles):
    result, _ = detector_bundles
    assert result.ok and {a.file: a.status for a in result.check.results} == {"model.x86.nb": "passed",
                                                                              "model.onnx": "passed"}
    manifest = json.loads((result.path / "manifest.json").read_text())
    detections = manifest["outputs"][0]["name"]
    assert all(a["tolerance"][detections]["match_iou"] == 0.9 for a in manifest["artifacts"])
    # ONNX Runtime really returns the detections in another order than Paddle: a set comparison is needed
    golden = np.load(result.path / "golden" / "outputs.npz")[detections]
    with runtimes.open(str(result.path), artifact="model.onnx") as session:
        onnx_rows = session.run(dict(np.load(result.path / "golden" / "inputs.npz")))[detections]
    assert golden.shape == onnx_rows.shape and len(golden) > 3
    assert not np.allclose(golden, onnx_rows, atol=1e-3)


def test_nms_less_export_ships_raw_boxes_and_scores_with_a_note(detector_bundles):
    _, result = detector_bundles
    assert result.ok and all(a.status == "passed" for a in result.check.results)
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert [o["shape"] for o in manifest["outputs"]] == [[1, 32, 4], [1, 3, 32]]
    note = manifest["source"]["notes"][0]
    assert "NMS tail removed" in note and "multiclass_nms3" in note and "score_threshold=0.3" in note
    assert manifest["source"]["files"][0]["name"] == "model.pdmodel"  # the user's file, hashed as given


def test_nms_rows_fetched_through_an_exports_scale_op_are_still_a_set(tmp_path):
    """Paddle 2.x's save_inference_model fetches every output through a `scale` of 1 (PaddleDetection's exports:
    ``save_infer_model/scale_0.tmp_0``): the rows stay a set of detections there, and are compared as one."""
    from wherry.convert import convert, source

    model = export_detection_model(scaled=True)
    assert [op.type for op in source.load_program_desc(model).blocks[0].ops][-4:-2] == ["scale", "scale"]
    assert source.detection_outputs(model) == [0]   # the rows; the count per image stays element-wise
    assert source.detection_outputs(export_detection_model()) == [0]
    bundle, = convert(model, targets="desktop-x86_64", precisions="fp32", out=tmp_path, name="scaled")
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    onnx = next(a for a in manifest["artifacts"] if a["file"] == "model.onnx")
    rows, count = (onnx["tolerance"][o["name"]] for o in manifest["outputs"])
    assert rows["match_iou"] and not count.get("match_iou")
    assert bundle.ok, [(a.file, a.verdict, a.reason) for a in bundle.artifacts]
