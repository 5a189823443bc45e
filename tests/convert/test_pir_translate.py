"""PIR -> legacy translation on real Paddle 3.3.1 PIR exports, verified with Paddle Inference and Lite."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wherry import runtimes
from support.models import export_vision_model
from wherry.convert import pir
from wherry.runtimes import parity

MODELS = [("mobilenet_v1", 224), ("mobilenet_v2", 224), ("googlenet", 224), ("densenet121", 224),
          ("inception_v3", 299), ("ocr_like", 64), ("misc_ops", 16)]


@pytest.mark.parametrize("name, size", MODELS)
def test_translated_program_matches_the_pir_original(name, size, tmp_path):
    model = export_vision_model(name, "pir", size)
    result = pir.translate(model, model.with_suffix(".pdiparams"), tmp_path)
    assert result.model_file.is_file() and sum(result.ops.values()) > 0
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype("float32")
    with runtimes.open(str(model), isolate=True) as original:
        golden = original.run({"x": x})
    with runtimes.open(str(result.model_file), isolate=True) as translated:
        outputs = translated.run({"x": x})
    assert list(outputs) == list(golden)  # the PIR fetch names are kept
    verdicts = parity.compare(golden, outputs, {k: parity.default_tolerance("fp32") for k in golden})
    assert all(v.passed for v in verdicts), [v.to_json() for v in verdicts]
    assert not any(v.uninformative for v in verdicts if v.name != "fetch_name_1" or name != "misc_ops")


def test_ocr_ops_reach_an_x86_nb_and_onnx(wherry, tmp_path):
    """Transposed conv, nearest/bilinear resize, layer_norm, split, softmax attention: through the CLI."""
    model = export_vision_model("ocr_like", "pir", 64)
    proc = wherry("convert", model.parent, "-t", "desktop-x86_64", "-o", tmp_path, "--json", check=0)
    summary = json.loads(proc.stdout)["bundles"][0]
    results = {a["file"]: a for a in summary["report"]["verification"]["artifacts"]}
    assert results["model.x86.nb"]["status"] == "passed" and results["model.onnx"]["status"] == "passed"
    manifest = json.loads((tmp_path / "pir.desktop-x86_64" / "manifest.json").read_text())
    assert manifest["source"]["format"] == "pir" and manifest["source"]["translated"] is True
    assert [o["name"] for o in manifest["outputs"]] == ["fetch_name_0", "fetch_name_1"]


def test_misc_ops_reach_an_x86_nb(wherry, tmp_path):
    """gelu, leaky_relu, clip, silu, sqrt/exp/log, pow, max/min, reductions, argmax, cast through Lite x86."""
    model = export_vision_model("misc_ops", "pir", 16)
    proc = wherry("convert", model.parent, "-t", "desktop-x86_64", "-o", tmp_path, "--json", check=0)
    results = {a["file"]: a for a in json.loads(proc.stdout)["bundles"][0]["report"]["verification"]["artifacts"]}
    assert results["model.x86.nb"]["status"] == "passed" and results["model.onnx"]["status"] == "passed"


def test_untranslatable_ops_are_named_and_onnx_comes_straight_from_pir(wherry, tmp_path):
    model = export_vision_model("untranslatable", "pir", 16)
    with pytest.raises(pir.UntranslatableOps) as err:
        pir.translate(model, model.with_suffix(".pdiparams"), tmp_path / "t")
    assert err.value.op_names == ["pd_op.tril"]  # its users fail with it, unreported (no "used before defined")
    assert "op #" in err.value.message and "before it is defined" not in err.value.message
    assert not (tmp_path / "t").exists()
    # a .nb needs the legacy program: asked alone, it is a clear user error and nothing is written
    proc = wherry("convert", model, "-o", tmp_path / "nb", "--format", "nb")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pd_op.tril" in proc.stderr
    assert not any((tmp_path / "nb").iterdir())
    # the ONNX artifact still ships, converted by paddle2onnx 2.x from the PIR program and verified; the .nb is
    # recorded as not built by the translator, naming the ops (so the conversion exits 1, as for any missing artifact)
    proc = wherry("convert", model, "-o", tmp_path / "out", "--json", check=1)
    summary = json.loads(proc.stdout)["bundles"][0]
    results = {a["file"]: a for a in summary["report"]["verification"]["artifacts"]}
    assert results["model.onnx"]["status"] == "passed"
    nb = next(r for r in summary["report"]["not_built"] if r["file"] == "model.x86.nb")
    assert nb["tool"] == "wherry PIR translator" and "pd_op.tril" in nb["reason"]


def test_inspect_lists_each_pir_op_and_its_artifacts(wherry):
    model = export_vision_model("mobilenet_v3_small", "pir", 224)
    report = json.loads(wherry("inspect", model, "--json", check=0).stdout)
    assert report["format"] == "pir"
    assert report["targets"]["rpi4"]["lite_ok"] is True
    assert any("translation" in n for n in report["notes"])
    conv = report["pir_ops"]["pd_op.conv2d"]
    assert conv["translates"] and conv["legacy_ops"] == ["conv2d"] and "nb (arm)" in conv["artifacts"]
    bad = json.loads(wherry("inspect", export_vision_model("untranslatable", "pir", 16), "--json", check=0).stdout)
    assert any("pd_op.tril" in n for n in bad["notes"])
    assert "lite_ok" not in bad["targets"]["rpi4"]
    row = bad["pir_ops"]["pd_op.tril"]
    assert not row["translates"] and "paddle2onnx 2" in row["artifacts"][0] and row["problem"]
    assert bad["pir_ops"]["pd_op.conv2d"]["translates"]


def test_every_op_kind_has_a_way_or_none():
    assert pir.describe("pd_op.conv2d") == "hand-written"
    assert pir.describe("pd_op.topk") == "table -> top_k_v2"
    assert pir.describe("pd_op.gather_nd") == "generic -> gather_nd"      # from the wheel's op protos
    assert pir.describe("pd_op.one_hot") == "table -> one_hot_v2"
    assert pir.describe("pd_op.no_such_op") is None


def test_a_dynamic_width_recognizer_reaches_a_passing_nb_at_two_widths(wherry, tmp_path):
    """PP-OCR's recognizer pattern (conv backbone, reshapes that take the width at run time, CTC head), exported
    with any width: inspect finds nothing computed at run time, and the x86 .nb and ONNX pass at two widths."""
    model = export_vision_model("rec_dynamic", "pir", 32)
    report = json.loads(wherry("inspect", model, "--json", check=0).stdout)
    assert report["inputs"][0]["shape"] == [None, 3, 32, None]
    assert report["targets"]["desktop-x86_64"]["lite_ok"] is True
    assert not [row["problem"] for row in report["pir_ops"].values() if row["problem"]]
    for width in (64, 160):
        proc = wherry("convert", model, "-t", "desktop-x86_64", "-o", tmp_path / str(width), "--shape",
                      f"x=1,3,32,{width}", "--json", check=0)
        bundle = json.loads(proc.stdout)["bundles"][0]
        results = {a["file"]: a["status"] for a in bundle["report"]["verification"]["artifacts"]}
        assert results == {"model.x86.nb": "passed", "model.onnx": "passed"}, (width, results)
        manifest = json.loads(next((tmp_path / str(width)).glob("*/manifest.json")).read_text())
        assert manifest["source"]["translated"] is True
