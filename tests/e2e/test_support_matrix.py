"""scripts/support_matrix.py: the README's generated tables, each block from its own run's records."""
from __future__ import annotations

import importlib.util
import json

from support.paths import REPO


def _script():
    spec = importlib.util.spec_from_file_location("support_matrix", REPO / "scripts" / "support_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_upstream_rows_show_their_shapes_and_the_located_cause():
    matrix = _script()
    row = {"model": "upstream/seg", "source": "pir", "target": "desktop-x86_64", "device": "host"}
    records = [{**row, "artifact": "model.x86.nb", "status": "passed", "max_rel": 2e-6, "cosine": 1.0,
                "shapes": [{"x": [1, 3, 256, 256]}, {"x": [1, 3, 128, 128]}]},
               {**row, "artifact": "model.onnx", "status": "not built", "reason": "failed to build (paddle2onnx): ...",
                "why": "paddle2onnx: adaptive pool2d -> AveragePool with negative strides"},
               {**row, "target": "rpi4", "artifact": "model.arm.nb", "status": "passed", "max_rel": 1e-5,
                "cosine": 1.0, "device": "emulated-aarch64", "shapes": [{"x": [1, 3, 224, 224]}]}]
    table = matrix.render(records, "a note")
    assert "2 shapes" in table and "fixed dims" in table and "emulated aarch64" in table
    assert "❌ not built: paddle2onnx: adaptive pool2d -> AveragePool with negative strides" in table
    assert table.rstrip().endswith("a note")


def test_each_block_is_rewritten_from_its_own_records_only(tmp_path, monkeypatch):
    """The upstream zoo's records rewrite only the upstream block of docs/matrix.md: the conformance table and
    the README summary stay as the conformance run left them."""
    matrix = _script()
    page, readme = tmp_path / "matrix.md", tmp_path / "README.md"
    page.write_text("x\n<!-- support-matrix:start -->\nKEEP\n<!-- support-matrix:end -->\n"
                    "<!-- upstream-matrix:start -->\nOLD\n<!-- upstream-matrix:end -->\ny\n")
    readme.write_text("<!-- support-matrix:start -->\nSUMMARY\n<!-- support-matrix:end -->\n")
    upstream = tmp_path / "upstream_matrix.json"
    upstream.write_text(json.dumps([{"model": "upstream/m", "source": "legacy", "error": "could not export"}]))
    for name, value in (("MATRIX_PAGE", page), ("README", readme), ("UPSTREAM", upstream),
                        ("RESULTS", tmp_path / "absent.json"), ("EDGE", tmp_path / "absent-edge.json")):
        monkeypatch.setattr(matrix, name, value)
    assert matrix.main([]) == 0
    text = page.read_text()
    assert "KEEP" in text and "OLD" not in text and "upstream/m" in text and text.endswith("y\n")
    assert "SUMMARY" in readme.read_text()


def test_edge_rows_say_simulated_and_the_tools_limitation_and_rewrite_only_their_block(tmp_path, monkeypatch):
    """out/edge_matrix.json (tests/e2e/test_edge_matrix.py) renders the edge block of docs/matrix.md: an .rknn is a
    simulated verdict with its numbers, never a pass; a not-built int8 shows the tool's words without the lead."""
    matrix = _script()
    row = {"model": "resnet18", "source": "legacy", "device": "host", "seconds": 76.4}
    records = [{**row, "target": "openvino", "artifact": "model.xml", "precision": "fp32", "status": "passed",
                "max_abs": 1.3e-4, "cosine": 1.0, "simulated": False},
               {**row, "target": "rk3588-npu", "artifact": "model.int8.rknn", "precision": "int8",
                "status": "not verifiable here", "simulated": True, "simulated_status": "passed", "max_abs": 2.53,
                "cosine": 0.999837},
               {**row, "target": "litert-x86", "artifact": "model.int8.tflite", "precision": "int8",
                "status": "not built", "max_abs": None, "simulated": False,
                "reason": "failed to build (onnx2tf 2.6.9): onnx2tf 2.6.9 failed while converting the ONNX artifact "
                          "to an int8 .tflite: onnx2tf's int8 quantizer has no int8 form of TFLite op PADV2; hint: x"}]
    table = matrix.render_edge(records)
    assert "| resnet18 | legacy .pdmodel | ✅ pass (max abs 1.3e-04, cos 1.000000) | — |" in table
    assert "🟡 simulated pass (max abs 2.53, cos 0.999837; int8 tolerance)" in table
    assert "➖ not built: onnx2tf's int8 quantizer has no int8 form of TFLite op PADV2 | 76 s |" in table
    page = tmp_path / "matrix.md"
    page.write_text("<!-- support-matrix:start -->\nKEEP\n<!-- support-matrix:end -->\n"
                    "<!-- edge-matrix:start -->\nOLD\n<!-- edge-matrix:end -->\nHAND ROWS\n")
    edge = tmp_path / "edge_matrix.json"
    edge.write_text(json.dumps(records))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- edge-summary:start -->\nSTALE\n<!-- edge-summary:end -->\nrest\n")
    for name, value in (("MATRIX_PAGE", page), ("README", readme), ("EDGE", edge),
                        ("RESULTS", tmp_path / "absent.json"), ("UPSTREAM", tmp_path / "absent2.json")):
        monkeypatch.setattr(matrix, name, value)
    assert matrix.main([]) == 0
    text = page.read_text()
    assert "KEEP" in text and "OLD" not in text and "PADV2" in text and text.endswith("HAND ROWS\n")
    summary = readme.read_text()   # the README's edge summary, counted from the same rows
    assert "STALE" not in summary and summary.startswith("intro\n") and summary.endswith("rest\n")
    assert "| simulated pass (not the NPU) |" in summary and "| not built (tool limit) |" in summary
    assert summary.count("| pass | 1 |") == 1, summary   # resnet18's OpenVINO fp32, the only plain pass
