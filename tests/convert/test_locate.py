"""A conversion locates where a failed artifact leaves the model (--locate auto), and debug locates a crash.

The crash is real: without the ``zero-d`` legalization, Paddle Lite 2.13's x86 ``fill_constant`` aborts on
the 0-D shape Paddle 3.3.1 exports for a transformer's attention mask. The crash bisection builds prefixes
of the program and must find that op on its own (not from Lite's log line, which names it too).
"""
from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from support.models import export_legal_model
from support.paths import REPO


@pytest.fixture(scope="module")
def crashing(tmp_path_factory):
    """The attention-mask model converted without the pass that keeps Lite's fill_constant alive: --json output."""
    out = tmp_path_factory.mktemp("locate")
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "convert", str(export_legal_model("transformer_mask")),
                           "--skip-pass", "zero-d", "--precision", "fp32", "-o", str(out), "--name", "mask", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]   # the .nb fails: a verdict, not an error
    return out / "mask.desktop-x86_64", json.loads(proc.stdout)


def test_a_crashing_nb_is_located_at_its_op_before_the_bundle_ships(crashing):
    bundle, document = crashing
    jsonschema.validate(document, json.loads((REPO / "docs" / "schemas" / "convert.schema.json").read_text()))
    (summary,) = document["bundles"]
    by_file = {a["file"]: a for a in summary["artifacts"]}
    assert by_file["model.onnx"]["verdict"] == "passed" and by_file["model.onnx"]["located"] is None
    nb = by_file["model.x86.nb"]
    assert nb["verdict"] == "failed"
    located = nb["located"]
    assert located["status"] == "crashed" and located["op"] == "fill_constant", located
    assert "dies in op fill_constant" in located["summary"]
    # the published bundle's report keeps it
    report = json.loads((bundle / "report.json").read_text())
    assert report["located"]["model.x86.nb"]["op"] == "fill_constant"


def test_debug_says_crashed_with_the_op_and_exits_1(crashing):
    bundle, _ = crashing
    run = [sys.executable, "-m", "wherry.convert.cli", "debug", str(bundle), "--artifact", "model.x86.nb"]
    proc = subprocess.run(run + ["--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    document = json.loads(proc.stdout)
    jsonschema.validate(document, json.loads((REPO / "docs" / "schemas" / "debug.schema.json").read_text()))
    (nb,) = document["artifacts"]
    assert nb["status"] == "crashed" and nb["first_divergence"]["type"] == "fill_constant"
    assert "prefixes" in nb["reason"]
    text = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert "crashes at op fill_constant #" in text.stdout


def test_locate_never_leaves_the_search_to_the_user(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "convert",
                           str(export_legal_model("transformer_mask")), "--skip-pass", "zero-d", "--precision", "fp32",
                           "--locate", "never", "-o", str(tmp_path), "--name", "mask"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "located:" not in proc.stdout
    assert "find the first diverging layer: wherry debug" in proc.stdout   # the command is still named
    assert "located" not in json.loads((tmp_path / "mask.desktop-x86_64" / "report.json").read_text())
