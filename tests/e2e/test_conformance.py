"""Conformance set: real models, converted for a desktop and an ARM board target, checked on this host.

Every model: the ONNX artifact and the x86 .nb pass parity against Paddle
Inference on the original model; the arm .nb is not verifiable on this x86 host,
and when Paddle Lite's ARM runtime is built here (`wherry targets build-lite`,
see test_lite_arm.py) the conversion runs it on the emulated aarch64 board, where
it must pass too. Results go to out/conformance.json, from which
scripts/support_matrix.py renders the README support matrix.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from support.models import LEGAL_MODELS, OCR_MODELS, VISION, export_detection_model, export_legal_model, export_sequence_model, export_vision_model, ocr_image, rapidocr_models
from support.paths import REPO
from support.matrix_records import artifact_record, board_result
from wherry.convert import pipeline
from wherry.runtimes.checker import PASSED, UNVERIFIABLE
from wherry.runtimes.errors import NativeCrash, WherryError

TARGETS = ["desktop-x86_64", "rpi4"]
RESULTS = REPO / "out" / "conformance.json"
_records = []
_web_bundles = []   # (model, source, desktop bundle): their model.onnx is run in the browser at the end


@pytest.fixture(scope="module", autouse=True)
def record_matrix():
    yield
    _records.extend(_web_records())
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    keys = {(r["model"], r["source"]) for r in _records}
    kept = [r for r in previous if (r["model"], r["source"]) not in keys]
    RESULTS.write_text(json.dumps(kept + _records, indent=2) + "\n")


def _raw_lite(model, out_dir, places):
    """What plain paddle_lite_opt does with the untouched model (for the matrix, not asserted)."""
    from wherry.convert.lite_export import export_nb
    from wherry.convert.source import locate

    files = locate(model)
    try:
        export_nb(files.model_file, files.params_file, out_dir / f"raw.{places}.nb", [places])
    except NativeCrash as crash:
        return f"crash ({crash.signal_name})"
    except WherryError as exc:
        return "error: " + exc.message.splitlines()[0][:60]
    if places != "x86":
        return "ok"
    try:  # some programs build and then abort when run (0-D tensors)
        from wherry import runtimes
        from wherry.convert import golden, source
        with runtimes.open(str(out_dir / f"raw.{places}.nb"), isolate=True) as session:
            session.run(golden.random_inputs(source.read(model).inputs, {}))
    except NativeCrash as crash:
        return f"builds, crashes when run ({crash.signal_name})"
    except WherryError:
        pass
    return "ok"


def _convert_and_check(model, out_dir, record_key, **options):
    if record_key[1] == "legacy":
        out_dir.mkdir(parents=True, exist_ok=True)
        raw = {"raw_lite_x86": _raw_lite(model, out_dir, "x86"), "raw_lite_arm": _raw_lite(model, out_dir, "arm")}
        _records.append({"model": record_key[0], "source": record_key[1], "raw": raw})
        for leftover in out_dir.glob("raw.*.nb"):
            leftover.unlink()
    try:
        results = pipeline.convert(pipeline.ConvertOptions(model=str(model), targets=TARGETS, out=out_dir,
                                                           **options))
    except Exception as exc:
        _records.append({"model": record_key[0], "source": record_key[1], "error": str(exc).splitlines()[0]})
        raise
    by_target = {r.target: r for r in results}
    if "desktop-x86_64" in by_target:
        _web_bundles.append((record_key, by_target["desktop-x86_64"].path))
    rows = {}
    for r in results:
        for art in r.check.results:
            rows[(r.target, art.file)] = art
            board = board_result(r, art.file)
            if board is not None:  # an ARM .nb run on the emulated aarch64 board with Lite's ARM runtime
                rows[(r.target, art.file, "emulated")] = board
            _records.append(artifact_record(record_key[0], record_key[1], r, art))
    return by_target, rows


def _web_records():
    """The web column: every converted model's ONNX artifact in onnxruntime-web (headless Chromium, WASM),
    all in one browser page; no records (the column stays empty) where there is no browser."""
    from wherry.targets.web import check as web_check

    bundles = [(key, path) for key, path in _web_bundles
               if any(a["file"] == "model.onnx" for a in json.loads((path / "manifest.json").read_text())["artifacts"])]
    if not bundles:
        return []
    try:
        reports = web_check.check_many([path for _, path in bundles], artifacts=["model.onnx"])
    except WherryError as exc:
        print(f"web column not measured: {exc.message}")
        return []
    records = []
    for (key, _), report in zip(bundles, reports):
        art = report.results[0]
        worst = art.worst()
        records.append({"model": key[0], "source": key[1], "target": "web", "artifact": art.file,
                        "status": art.status, "reason": art.reason, "device": "browser",
                        "browser": report.device.get("machine"), "max_abs": worst.max_abs if worst else None,
                        "max_rel": worst.max_rel if worst else None, "cosine": worst.cosine if worst else None})
    return records


def _assert_conformant(by_target, rows):
    assert rows[("desktop-x86_64", "model.onnx")].status == PASSED, rows[("desktop-x86_64", "model.onnx")].reason
    assert rows[("desktop-x86_64", "model.x86.nb")].status == PASSED, rows[("desktop-x86_64", "model.x86.nb")].reason
    assert rows[("rpi4", "model.onnx")].status == PASSED
    arm = rows[("rpi4", "model.arm.nb")]
    board = rows.get(("rpi4", "model.arm.nb", "emulated"))
    if board is not None:  # Lite's ARM runtime is built here: the emulated board ran the ARM kernels
        assert board["status"] == PASSED, board["reason"]
        assert arm.status == PASSED and "emulated aarch64 board" in arm.reason  # the bundle's verdict counts it
    else:
        assert arm.status == UNVERIFIABLE and "arm" in arm.reason  # on this x86 host, and nowhere else
    arm_file = by_target["rpi4"].path / "model.arm.nb"
    assert arm_file.stat().st_size > 1000
    for r in by_target.values():
        assert r.ok and (r.path / "manifest.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["legacy", "pir"])
@pytest.mark.parametrize("name", VISION)
def test_vision_model(name, fmt, tmp_path):
    model = export_vision_model(name, fmt, 224)
    by_target, rows = _convert_and_check(model, tmp_path, (name, fmt))
    _assert_conformant(by_target, rows)
    assert by_target["rpi4"].manifest.source["translated"] == (fmt == "pir")
    assert not by_target["rpi4"].report["warnings"], "golden outputs must be informative"


@pytest.mark.slow
@pytest.mark.parametrize("name", LEGAL_MODELS)
def test_legalization_model(name, tmp_path):
    """One model per legalization row: plain paddle_lite_opt crashes on it (or its .nb aborts when run: the
    0-D case), wherry's Lite artifacts build and the x86 one matches Paddle Inference. No artifact that was
    built is discarded whatever happens to the others."""
    by_target, rows = _convert_and_check(export_legal_model(name), tmp_path, (f"{name} (legalization)", "legacy"))
    assert rows[("desktop-x86_64", "model.x86.nb")].status == PASSED, rows[("desktop-x86_64", "model.x86.nb")].reason
    board = rows.get(("rpi4", "model.arm.nb", "emulated"))   # the board's verdict, where it ran the .nb
    assert rows[("rpi4", "model.arm.nb")].status == (board["status"] if board else UNVERIFIABLE)
    assert by_target["rpi4"].manifest.source["legalized"]


@pytest.mark.slow
def test_sequence_model(tmp_path):
    """Paddle 1.x GRU + CRF tagger on a LoD input: Lite takes the sequence lengths, ONNX cannot express them."""
    by_target, rows = _convert_and_check(export_sequence_model(), tmp_path, ("gru_crf_tagger (LoD)", "paddle1"),
                                         lod={"words": [4, 7, 2]})
    assert rows[("desktop-x86_64", "model.x86.nb")].status == PASSED
    assert rows[("desktop-x86_64", "model.onnx")].status == "not representable"
    board = rows.get(("rpi4", "model.arm.nb", "emulated"))
    if board is not None:  # Lite's ARM runtime is built here: the sequence lengths reach the ARM kernels too
        assert board["status"] == PASSED, board["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("without_nms", [False, True], ids=["nms", "without-nms"])
def test_detection_model(without_nms, tmp_path):
    label = "nms_detector" + (" (--without-nms)" if without_nms else " (NMS as detections)")
    by_target, rows = _convert_and_check(export_detection_model(), tmp_path, (label, "legacy"),
                                         without_nms=without_nms)
    _assert_conformant(by_target, rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OCR_MODELS))
def test_ppocr_model(name, tmp_path):
    folder, shape = OCR_MODELS[name]
    shape = tuple(int(d) for d in shape.split(","))
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=ocr_image(shape))
    by_target, rows = _convert_and_check(rapidocr_models() / folder, tmp_path / "out", (name, "legacy"),
                                         inputs=inputs)
    _assert_conformant(by_target, rows)
    # a real photo gives informative goldens: nothing flagged as near-constant
    assert not by_target["rpi4"].report["warnings"]
