"""`check --html` / `debug --html`: one self-contained page, rendered in a real headless browser (Debian's
chromium) for a passing, a failing and a quantized bundle; the screenshot must show the tables and figures."""
from __future__ import annotations

import subprocess
import sys

import pytest
from support.html_pages import FAIL_RED, PASS_GREEN, assert_self_contained, needs_chromium, pixels_near, screenshot
from support.paths import CACHE, PADDLE_VERSION, SUPPORT

from wherry.convert import convert, example

BAR_BLUE = (0x3B, 0x7D, 0xD8)                                   # histogram bars


def wherry(*args):
    return subprocess.run([sys.executable, "-m", "wherry.convert.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    passing, = convert(example.MODEL, targets="desktop-x86_64", precisions=["fp32", "int8"], calib=example.INPUTS,
                       inputs=example.INPUTS, name="digits", out=out)
    folder = CACHE / "op-cases" / f"paddle-{PADDLE_VERSION}" / "legacy"
    if not (folder / "pads" / "model.pdmodel").is_file():
        subprocess.run([sys.executable, str(SUPPORT / "op_cases.py"), "legacy", str(folder), "pads"],
                       check=True, capture_output=True)
    failing, = convert(folder / "pads" / "model.pdmodel", targets="desktop-x86_64", precisions="fp32",
                       inputs=folder / "pads" / "inputs.npz", name="pads", out=out)
    return passing.path, (failing.path, folder / "pads" / "model.pdmodel")


@needs_chromium
def test_passing_and_quantized_bundle_report(bundles, tmp_path):
    bundle, _ = bundles
    page = tmp_path / "digits.html"
    proc = wherry("check", bundle, "--html", page)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = page.read_text()
    assert_self_contained(text)
    assert "Quantization" in text and "model.int8.onnx" in text and text.count("<svg") >= 2
    image = screenshot(page, tmp_path / "digits.png")
    assert pixels_near(image, PASS_GREEN) > 500 and pixels_near(image, FAIL_RED) < 50
    assert pixels_near(image, BAR_BLUE) > 200      # histograms drawn
    assert (image.min(axis=-1) < 128).mean() > 0.01  # text on the page, not a blank render


@needs_chromium
def test_failing_bundle_report_with_first_divergence(bundles, tmp_path):
    _, (bundle, model) = bundles
    page = tmp_path / "pads.html"
    proc = wherry("debug", bundle, "--model", model, "--html", page)
    assert proc.returncode == 1, proc.stderr[-2000:]
    text = page.read_text()
    assert_self_contained(text)
    assert "first diverging op: pad3d" in text and "data:image/png;base64," in text
    image = screenshot(page, tmp_path / "pads.png")
    assert pixels_near(image, FAIL_RED) > 500 and pixels_near(image, PASS_GREEN) > 200
    # the error map: the wrongly padded border of the failing output in dark red
    assert pixels_near(image, (155, 0, 0), tol=12) > 200


@needs_chromium
def test_quantized_artifact_gets_a_per_layer_damage_table(bundles, tmp_path):
    bundle, _ = bundles
    page = tmp_path / "int8.html"
    proc = wherry("debug", bundle, "--model", example.MODEL, "--artifact", "model.int8.onnx", "--html", page,
                  "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]  # int8 damage within the int8 tolerance: no divergence
    import json
    art, = json.loads(proc.stdout)["artifacts"]
    assert art["status"] == "no divergence" and len(art["ops"]) >= 5
    snrs = [float(op["outputs"][0]["parity"]["snr_db"]) for op in art["ops"]]
    assert 10 < min(snrs) < 60  # int8 noise is measured per layer (compared after DequantizeLinear), not zero
    text = page.read_text()
    assert "per-layer damage" in text and "Quantization" in text
    image = screenshot(page, tmp_path / "int8.png")
    assert pixels_near(image, PASS_GREEN) > 500 and (image.min(axis=-1) < 128).mean() > 0.01
