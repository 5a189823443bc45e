"""`wherry zoo --html`: the matrix page of one real zoo run (a passing model on a desktop and an ARM
target, a model Lite x86 gets wrong, an unverified model and an erroring model with a hostile name),
each bundle's check page it links to, a cached re-run, and the page rendered in headless Chromium."""
from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from support.paths import REPO
from support.models import export_op_case
from support.html_pages import (FAIL_RED, PASS_GREEN, assert_self_contained, needs_chromium, pixels_near,
                                 screenshot)

from wherry.convert import example

HOSTILE = '<img src=x onerror=alert(1)>&amp'        # a plain name to the zoo (no '/'), markup to a browser
TARGETS = ["desktop-x86_64", "rpi4"]


class Tables(HTMLParser):
    """The page's tables as rows of cells: (text, css classes inside, link targets inside)."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self._cell = [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = {"text": "", "classes": set((attrs.get("class") or "").split()), "links": []}
            self.tables[-1][-1].append(self._cell)
        elif self._cell is not None:
            self._cell["classes"].update((attrs.get("class") or "").split())
            if tag == "a":
                self._cell["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def zoo_cli(*args):
    return subprocess.run([sys.executable, "-m", "wherry.convert.cli", "zoo", *map(str, args)], capture_output=True,
                          text=True, timeout=1800, cwd=REPO)


def pads_model() -> Path:
    """A one-op model (pad3d) whose Lite x86 .nb fails parity: a real failed cell."""
    return export_op_case("pads")


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoohtml")
    np.savez(folder / "wrong_inputs.npz", not_an_input=np.zeros((1, 1, 28, 28), np.float32))
    pads = pads_model()
    (folder / "zoo.toml").write_text(f"""
targets = ["desktop-x86_64"]
[models.digits]
path = "{example.MODEL}"
inputs = "{example.INPUTS}"
targets = {json.dumps(TARGETS)}
[models.pads]
path = "{pads / 'model.pdmodel'}"
inputs = "{pads / 'inputs.npz'}"
[models.quiet]
path = "{example.MODEL}"
inputs = "{example.INPUTS}"
verify = false
[models.{json.dumps(HOSTILE)}]
path = "{example.MODEL}"
inputs = "wrong_inputs.npz"
""")
    out, cache = folder / "out", folder / "cache"
    proc = zoo_cli(folder / "zoo.toml", "-o", out, "--cache-dir", cache, "-j", "2", "--html", out / "matrix.html",
                   "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]
    return folder, json.loads(proc.stdout), out / "matrix.html"


def matrix(page: Path) -> dict:
    """(model, target) -> cell of the page's matrix table; also checks its shape."""
    table = next(t for t in Tables(page.read_text()).tables if t[0][0]["text"] == "model")
    assert [c["text"] for c in table[0]] == ["model"] + TARGETS               # one column per target
    assert [r[0]["text"] for r in table[1:]] == ["digits", "pads", "quiet", HOSTILE]   # one row per model
    return {(row[0]["text"], target): cell for row in table[1:] for target, cell in zip(TARGETS, row[1:])}


def test_page_shows_every_cell_with_its_verdicts_memory_and_time(zoo_run):
    _, doc, page = zoo_run
    cells = matrix(page)
    statuses = {(c["model"], c["target"]): c["status"] for c in doc["cells"]}
    rpi4 = next(c for c in doc["cells"] if c["target"] == "rpi4")
    board = next(a.get("board_verdict") for a in rpi4["artifacts"] if a["file"] == "model.arm.nb")
    # the rpi4 cell passes only where the emulated board ran its .nb (Paddle Lite's ARM runtime built here)
    assert statuses == {("digits", "desktop-x86_64"): "passed",
                        ("digits", "rpi4"): "passed" if board == "passed" else "partly verified",
                        ("pads", "desktop-x86_64"): "failed", ("quiet", "desktop-x86_64"): "unverified",
                        (HOSTILE, "desktop-x86_64"): "error"}
    for key, status in statuses.items():
        cell = cells[key]
        assert cell["text"].strip().startswith(status) and "peak memory" in cell["text"] and " MB" in cell["text"]
        assert {"passed": "pass", "failed": "fail", "error": "fail", "unverified": "skip",
                "partly verified": "skip"}[status] in cell["classes"]
    assert "not in the zoo" in cells[("pads", "rpi4")]["text"]
    x86 = cells[("digits", "desktop-x86_64")]["text"]
    assert "model.x86.nb" in x86 and "model.onnx" in x86 and "max abs" in x86 and "cos 1.0000" in x86
    pads = cells[("pads", "desktop-x86_64")]
    assert "model.x86.nb" in pads["text"] and "FAIL" in pads["text"]
    text = page.read_text()
    summary = doc["summary"]
    assert (f"{summary['cells']} cells: {summary['passed']} passed, {summary['partly verified']} partly verified, "
            f"{summary['unverified']} unverified, "
            f"{summary['failed']} failed, {summary['error']} errors") in text
    assert "paddlelite" in text and "paddle2onnx" in text          # tool versions
    why = text.split("Why cells failed", 1)[1].split("<h2>", 1)[0]
    assert "pads" in why and "model.x86.nb" in why and "missing &#x27;x&#x27;" in why and "hint:" in why
    pads_cell = next(c for c in doc["cells"] if c["model"] == "pads" and c["target"] == "desktop-x86_64")
    assert f"find its first diverging layer: <code>wherry debug {pads_cell['bundle']}" in why   # where it is now
    assert "located: first diverging op pad3d #" in why   # the conversion already ran the search (--locate)


def test_cells_link_to_their_bundles_check_pages(zoo_run):
    _, doc, page = zoo_run
    cells = matrix(page)
    for c in doc["cells"]:
        links = cells[(c["model"], c["target"])]["links"]
        if c["status"] in ("error", "unverified"):   # no bundle, or nothing checked in it
            assert links == []
            continue
        link, = links
        target = (page.parent / unquote(link)).resolve()
        assert not link.startswith("/") and target == (Path(c["bundle"]) / "check.html").resolve()
        check = target.read_text()
        assert_self_contained(check)
        assert "Verdicts" in check and "<svg" in check              # the check page with its histograms
    pads = (page.parent / unquote(cells[("pads", "desktop-x86_64")]["links"][0])).read_text()
    assert "FAIL" in pads and "model.x86.nb" in pads
    arm = next(c for c in doc["cells"] if c["target"] == "rpi4")
    nb = next(a for a in arm["artifacts"] if a["file"] == "model.arm.nb")
    arm_page = (Path(arm["bundle"]) / "check.html").read_text()
    if nb.get("board_verdict") == "passed":                        # the ARM runtime is built here
        assert "run on the emulated aarch64 board" in arm_page
    else:
        assert "not verifiable here" in arm_page


def test_hostile_names_and_messages_are_escaped(zoo_run):
    _, _, page = zoo_run
    text = page.read_text()
    assert_self_contained(text)
    assert "<img" not in text and "onerror=alert(1)&gt;&amp;amp" in text


def test_cached_rerun_page_says_cached_and_links_from_elsewhere(zoo_run):
    folder, first, _ = zoo_run
    page = folder / "elsewhere" / "matrix.html"
    proc = zoo_cli(folder / "zoo.toml", "-o", folder / "out", "--cache-dir", folder / "cache", "--html", page)
    assert proc.returncode == 1, proc.stderr[-3000:]
    cells = matrix(page)
    digits = cells[("digits", "rpi4")]
    assert "cached" in digits["text"] and "(first run)" in digits["text"]
    link, = digits["links"]
    assert link.startswith("../out/") and (page.parent / unquote(link)).is_file()   # restored with the bundle
    assert "cached" not in cells[(HOSTILE, "desktop-x86_64")]["text"]           # errors are not cached


def test_unwritable_html_file_is_an_error_line_not_a_traceback(zoo_run, tmp_path):
    folder, _, _ = zoo_run
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = zoo_cli(folder / "zoo.toml", "-o", folder / "out", "--cache-dir", folder / "cache",
                   "--html", blocker / "matrix.html")
    assert proc.returncode == 1 and "cannot write the HTML matrix" in proc.stderr and "Traceback" not in proc.stderr
    assert "digits" in proc.stdout                                  # the matrix is still printed


@needs_chromium
def test_page_renders_in_chromium(zoo_run, tmp_path):
    _, _, page = zoo_run
    image = screenshot(page, tmp_path / "matrix.png")
    assert pixels_near(image, PASS_GREEN) > 300        # passed cells and their pass verdicts
    assert pixels_near(image, FAIL_RED) > 300          # the failed and the errored cell, the FAIL badge
    assert (image.min(axis=-1) < 128).mean() > 0.01    # text on the page, not a blank render
