"""`check --html` / `debug --html`: one self-contained page, rendered in a real headless browser (Debian's
chromium) for a passing, a failing and a quantized bundle; the screenshot must show the tables and figures."""
from __future__ import annotations

import re
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
    quant = text[text.index("<h2>Quantization</h2>"):]
    quant = quant[:quant.index("</table>")]
    assert "size_ratio" not in quant and " KB</td>" in quant and "x</td>" in quant  # human units, not raw keys
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
    image = screenshot(page, tmp_path / "pads.png", height=2400)  # the error maps sit below the plots
    assert pixels_near(image, FAIL_RED) > 500 and pixels_near(image, PASS_GREEN) > 200
    # the error map: the wrongly padded border of the failing output in dark red
    assert pixels_near(image, (155, 0, 0), tol=12) > 200
    # histograms share one x axis and carry their output's tolerance line; maps have a colour scale, and
    # an exact output says so instead of showing a blank box
    histograms = [h for h in re.findall(r"<svg.*?</svg>", text) if "exact of" in h]
    axes = {tuple(re.findall(r">1e(-?\d+)</text>", h)) for h in histograms}
    assert len(histograms) == 6 and len(axes) == 1, axes
    assert text.count('class="tolerance"') >= 6 and 'alt="colour scale"' in text
    assert "exact: every value equal" in text


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
    # every layer ranked, most damaged first, the same ranking on the page
    ranked = [float(d["snr_db"]) for d in art["damage"]]
    assert len(ranked) == len(art["ops"]) and ranked == sorted(ranked) and ranked[0] == min(snrs)
    worst = art["damage"][0]
    assert f'<td>1</td><td>{worst["type"]} #{worst["index"]}</td>' in page.read_text()
    text = page.read_text()
    assert "per-layer damage" in text and "Quantization" in text
    image = screenshot(page, tmp_path / "int8.png")
    assert pixels_near(image, PASS_GREEN) > 500 and (image.min(axis=-1) < 128).mean() > 0.01


def test_debug_page_plots_error_versus_depth_with_the_first_divergence_marked(bundles, tmp_path):
    """The debug page's error-versus-depth plot: one point per compared op (error over its tolerance
    limit, execution order), the tolerance line, and the culprit (pad3d) marked; graph labels are not
    clipped to a fixed width without their full text."""
    _, (bundle, model) = bundles
    page = tmp_path / "pads.html"
    proc = wherry("debug", bundle, "--model", model, "--html", page, "--artifact", "model.x86.nb", "--json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    import json
    art, = json.loads(proc.stdout)["artifacts"]
    text = page.read_text()
    plot = text[text.index('class="depth"'):]
    plot = plot[:plot.index("</svg>")]
    assert plot.count("<circle") == len(art["ops"]) >= 3
    assert ">tolerance</text>" in plot
    assert f"first divergence: pad3d #{art['first_divergence']['index']}" in plot
    # the culprit's point is red (above the line), the ops before it green
    assert '#c0392b"><title>pad3d' in plot and '#2e7d32"><title>' in plot
    # graph boxes: the op on one line, the tensor it writes on the next, the full label as a tooltip
    label = f"pad3d #{art['first_divergence']['index']} -> {art['first_divergence']['outputs'][0]['name']}"
    import html
    assert f"<title>{html.escape(label)}</title>" in text
