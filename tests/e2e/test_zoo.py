"""The model-family zoo (tests/support/zoo/) through the real pipeline, in PIR and legacy format.

Slow part (``-m zoo``): every family, both formats, for a desktop and an ARM board target; rows go to
out/conformance.json (source "pir" / "legacy", model "zoo/<family>") for the README support matrix.
Fast part (default run): two PIR families, desktop target only.

Legacy twins: Paddle 3.3.1 can no longer export most of these layer mixes with
FLAGS_enable_pir_api=0 (sigmoid, matmul, logical_not... take the PIR code path and reject a legacy
Variable), so the legacy twins are exported by Paddle 2.6.2 in a virtual environment of their own,
cached next to the other test models.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.paths import CACHE, PADDLE_VERSION, REPO, SUPPORT
from support.matrix_records import artifact_record, board_result
from wherry.convert import pipeline
from wherry.convert.tool_env import base_interpreter, is_ready
from wherry.runtimes.checker import PASSED
from support.zoo import FAMILIES

TARGETS = ["desktop-x86_64", "rpi4"]
RESULTS = REPO / "out" / "conformance.json"
LEGACY_PADDLE = "2.6.2"
FAST = ["ppocr_rec", "control_flow"]
_records = []
_verdicts = {}


def legacy_python():
    """A Python with Paddle 2.6.2 (the last release that exports these layers as legacy programs)."""
    venv = CACHE / f"paddle-{LEGACY_PADDLE}-venv"
    python = venv / "bin" / "python"
    if not is_ready(venv):
        subprocess.run([base_interpreter(), "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"paddlepaddle=={LEGACY_PADDLE}", "numpy<2"], check=True)
        (venv / ".ready").touch()
    return python


def exported(fmt: str, names):
    """The zoo exported in ``fmt`` (cached); one exporting process per format."""
    python = sys.executable if fmt == "pir" else legacy_python()
    version = PADDLE_VERSION if fmt == "pir" else LEGACY_PADDLE
    folder = CACHE / "zoo" / f"paddle-{version}" / fmt
    missing = [n for n in names if not (folder / n / "inputs.npz").is_file()]
    if missing:
        subprocess.run([str(python), str(SUPPORT / "zoo" / "export.py"), fmt, str(folder), *missing],
                       check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module", autouse=True)
def record_matrix():
    yield
    if not _records:
        return
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    # a run replaces the rows of the models it converted (the debug finding, a row of its own, only its own)
    keys = {(r["model"], r["source"], "located" in r) for r in _records}
    kept = [r for r in previous if (r["model"], r["source"], "located" in r) not in keys]
    RESULTS.write_text(json.dumps(kept + _records, indent=2) + "\n")


def convert_family(name, fmt, out_dir, targets, record=True):
    folder = exported(fmt, [name]) / name
    key = (f"zoo/{name}", fmt)
    error = folder / "export_error.txt"
    if error.is_file():
        message = f"export with Paddle {LEGACY_PADDLE if fmt == 'legacy' else PADDLE_VERSION} failed: " \
                  + error.read_text().strip()
        if record:
            _records.append({"model": key[0], "source": fmt, "error": message})
        pytest.skip(message)
    try:
        results = pipeline.convert(pipeline.ConvertOptions(model=str(folder), targets=targets, out=out_dir,
                                                           inputs=folder / "inputs.npz"))
    except Exception as exc:
        if record:
            _records.append({"model": key[0], "source": fmt, "error": str(exc).splitlines()[0]})
        raise
    rows = {}
    for r in results:
        for art in r.check.results:
            rows[(r.target, art.file)] = art.status
            board = board_result(r, art.file)
            if board is not None:  # the ARM .nb also ran on the emulated aarch64 board
                rows[(r.target, art.file, "emulated")] = board["status"]
            if record:
                _records.append(artifact_record(key[0], fmt, r, art))
        if record:
            for warning in r.report.get("warnings", []):
                if warning.startswith("no .nb for"):
                    _records.append({"model": key[0], "source": fmt, "target": r.target,
                                     "artifact": _nb_file(r.target), "status": "not built", "reason": warning,
                                     "max_abs": None, "max_rel": None, "cosine": None})
    return rows


def _nb_file(target):
    return "model.x86.nb" if target == "desktop-x86_64" else "model.arm.nb"


@pytest.mark.parametrize("name", FAST)
def test_pir_family_converts(name, tmp_path):
    rows = convert_family(name, "pir", tmp_path, ["desktop-x86_64"], record=False)
    assert rows[("desktop-x86_64", "model.onnx")] == PASSED
    assert rows[("desktop-x86_64", "model.x86.nb")] == PASSED


@pytest.mark.zoo
@pytest.mark.parametrize("fmt", ["legacy", "pir"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_zoo_family(name, fmt, tmp_path):
    rows = convert_family(name, fmt, tmp_path, TARGETS)
    _verdicts[(name, fmt)] = rows
    if fmt == "pir":
        assert rows[("desktop-x86_64", "model.onnx")] == PASSED, rows


@pytest.mark.zoo
@pytest.mark.parametrize("fmt", ["legacy", "pir"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_debug_reaches_a_verdict_on_every_healthy_zoo_bundle(name, fmt, tmp_path):
    """`wherry debug BUNDLE` (default options: the small program kept in the bundle, no --model) ends in "no
    divergence" for every artifact the family's desktop bundle passes check with."""
    from wherry.convert.debug import debug
    from wherry.convert.debug.locate import HEALTHY

    folder = exported(fmt, [name]) / name
    if (folder / "export_error.txt").is_file():
        pytest.skip("export failed: " + (folder / "export_error.txt").read_text().strip()[:200])
    result, = pipeline.convert(pipeline.ConvertOptions(model=str(folder), targets=["desktop-x86_64"],
                                                       out=tmp_path, inputs=folder / "inputs.npz"))
    healthy = [a.file for a in result.check.results if a.status == PASSED]
    if not healthy:
        pytest.skip(f"no artifact of zoo/{name} ({fmt}) passes check")
    report = debug(result.path, artifacts=healthy)
    assert {a.file: a.status for a in report.artifacts} == {f: HEALTHY for f in healthy}, report.text()
    assert all(a.ops for a in report.artifacts)
    if name == "control_flow":   # the convs inside its if branch and while body are compared too, .nb and ONNX
        assert all(sum(1 for f in a.ops if f.where and f.type == "conv2d") >= 2 for a in report.artifacts), report.text()


@pytest.mark.zoo
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_zoo_pir_and_legacy_verdicts_agree(name):
    pir, legacy = _verdicts.get((name, "pir")), _verdicts.get((name, "legacy"))
    if pir is None or legacy is None:
        pytest.skip("both formats must have converted in this run")
    if legacy.get(("desktop-x86_64", "model.x86.nb")) == PASSED:
        assert pir.get(("desktop-x86_64", "model.x86.nb")) == PASSED
    assert pir == legacy


@pytest.mark.zoo
def test_legacy_twins_need_and_get_their_legalization(tmp_path):
    """Paddle 2.6 clips swish's beta (Lite opt aborts) and writes Python scalars as 0-D fill_constant (the
    Lite program aborts when it runs); the zoo's legacy rows pass only with both repairs."""
    from wherry.convert import legalize, lite_export
    from wherry.runtimes.errors import NativeCrash

    folder = exported("legacy", ["ppocr_rec", "control_flow"])
    model, params = folder / "ppocr_rec" / "model.pdmodel", folder / "ppocr_rec" / "model.pdiparams"
    with pytest.raises(NativeCrash):
        lite_export.export_nb(model, params, tmp_path / "raw.nb", ["x86"])
    legal_model, legal_params, changes = legalize.legalize(model, params, tmp_path / "rec")
    assert any(c.startswith("restore-attrs:") and "swish" in c for c in changes)
    assert lite_export.export_nb(legal_model, legal_params, tmp_path / "ok.nb", ["x86"]).nb_file.is_file()
    flow = folder / "control_flow"
    _, _, changes = legalize.legalize(flow / "model.pdmodel", flow / "model.pdiparams", tmp_path / "flow")
    assert any(c.startswith("zero-d:") for c in changes)


@pytest.mark.zoo
def test_debug_locates_lite_x86_rnn_leaving_its_final_states_unwritten(tmp_path):
    """zoo/rnn_text's x86 .nb fails parity; `wherry debug` names the op: Lite's x86 rnn kernel computes the
    sequence output right and leaves the final hidden/cell states (its State outputs) unwritten."""
    folder = exported("legacy", ["rnn_text"]) / "rnn_text"
    out = tmp_path / "out"
    results = pipeline.convert(pipeline.ConvertOptions(model=str(folder / "model.pdmodel"),
                                                       targets=["desktop-x86_64"], out=out,
                                                       inputs=folder / "inputs.npz"))
    bundle = results[0].path
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "debug", str(bundle), "--model",
                           str(folder / "model.pdmodel"), "--artifact", "model.x86.nb", "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr
    first = json.loads(proc.stdout)["artifacts"][0]["first_divergence"]
    assert first["type"] == "rnn", first
    assert all(i["parity"]["verdict"] == "passed" for i in first["inputs"])
    states = [o for o in first["outputs"] if o["parity"]["verdict"] != "passed"]
    assert states and all(o["name"] != first["outputs"][0]["name"] for o in states)  # the sequence output is right
    _records.append({"model": "zoo/rnn_text", "source": "legacy", "target": "desktop-x86_64",
                     "artifact": "model.x86.nb", "located": "rnn",
                     "why": "wherry debug: Lite's x86 rnn leaves the final states unwritten"})


@pytest.mark.zoo
def test_debug_locates_lite_arm_pool2d_taking_an_identity_adaptive_pool_for_a_global_one(tmp_path):
    """zoo/ppliteseg's ARM .nb failed on the emulated board (both formats) until the identity-adaptive-pool
    pass: `wherry debug --device emulated-aarch64`, with the ARM kernels, names the op on the program without
    that pass: pool2d, the pyramid pooling's adaptive pool to 4x4 of a 4x4 feature map, inputs exact."""
    from wherry.convert import legalize
    from wherry.convert.debug import locate

    folder = exported("legacy", ["ppliteseg"]) / "ppliteseg"
    results = pipeline.convert(pipeline.ConvertOptions(model=str(folder / "model.pdmodel"), targets=["rpi4"],
                                                       out=tmp_path / "out", inputs=folder / "inputs.npz"))
    board = board_result(results[0], "model.arm.nb")
    if board is None:
        pytest.skip("no Paddle Lite ARM runtime on the emulated board (`wherry targets build-lite`)")
    assert board["status"] == PASSED, board
    without = legalize.legalize(folder / "model.pdmodel", folder / "model.pdiparams", tmp_path / "without",
                                [p for p in legalize.PASSES if p != "identity-adaptive-pool"])
    report = locate.debug(results[0].path, str(folder / "model.pdmodel"), ["model.arm.nb"],
                          device="emulated-aarch64", nb_program=without[:2])
    first = report.artifacts[0].first
    assert first is not None and first.type == "pool2d", report.text()
    assert all(i.parity.passed for i in first.inputs)
    # shown in the matrix only where the ARM row fails (that is, if the pass ever stops repairing it)
    _records.append({"model": "zoo/ppliteseg", "source": "legacy", "target": "rpi4", "artifact": "model.arm.nb",
                     "located": "pool2d", "why": "wherry debug on the emulated board: Lite's ARM pool2d takes an "
                                                 "adaptive pool to the input's own size for a global pool"})
