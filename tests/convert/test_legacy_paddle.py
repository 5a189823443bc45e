"""Paddle 1.x models with ops Paddle 3 dropped (issue #23): a Senta-style sentiment model, whose reference
comes from Paddle 2.6.2 in a cached tool environment (convert/legacy_paddle.py).

Slow: the first run makes that environment (paddlepaddle 2.6.2 from PyPI, once, cached in WHERRY_CACHE's
tools folder) to export the model; pytest skips, with the reason, where it cannot be made."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wherry import runtimes
from wherry.convert import legacy_paddle
from support.models import export_senta_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """Three padded reviews of 3, 8 and 5 word ids, with their lengths (what Senta's reader feeds)."""
    path = tmp_path_factory.mktemp("senta") / "reviews.npz"
    rng = np.random.default_rng(1)
    np.savez(path, words=rng.integers(1, 50, size=(3, 8)).astype("int64"), seq_len=np.array([3, 8, 5], np.int64))
    return path


def test_convert_takes_the_reference_from_paddle_262_and_checks_the_nb_against_it(wherry, tmp_path, reviews):
    model = export_senta_model()
    proc = wherry("convert", model, "--inputs", reviews, "-o", tmp_path, "--name", "senta", "--json")
    assert "has no kernel for op sequence_unpad: the golden outputs come from Paddle 2.6.2" in proc.stderr
    (summary,) = json.loads(proc.stdout)["bundles"]
    checked = {a["file"]: a for a in summary["report"]["verification"]["artifacts"]}
    nb = checked["model.x86.nb"]
    assert nb["status"] == "passed", nb
    bundle = tmp_path / "senta.desktop-x86_64"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["golden"]["paddle"] == legacy_paddle.VERSION != manifest["tools"]["paddle"]
    assert any("golden outputs computed by Paddle 2.6.2" in n for n in manifest["source"]["notes"])
    # real numbers compared: class probabilities that differ per review, matched by Lite to float precision
    golden = np.load(bundle / "golden" / "outputs.npz")
    (probs,) = golden.values()
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5) and np.ptp(probs[:, 0]) > 1e-3
    with runtimes.open(str(bundle / "model.x86.nb")) as session:
        lite = session.run(dict(np.load(reviews)))
    (lite_probs,) = lite.values()
    np.testing.assert_allclose(lite_probs, probs, atol=1e-5)
    assert 0 < np.abs(lite_probs - probs).max() or np.array_equal(lite_probs, probs)
    # the ONNX artifact is said, never passed: paddle2onnx has no converter for the sequence ops
    (onnx,) = manifest["not_built"]
    assert onnx["file"] == "model.onnx" and "has no ONNX converter for" in onnx["hint"] and "sequence_unpad" in \
        onnx["hint"]
    assert checked.get("model.onnx", {}).get("status") != "passed"
    # and the golden outputs are Paddle 2.6.2's own: the same as a direct run in its environment
    direct, _, version = legacy_paddle.reference_outputs(model, dict(np.load(reviews)), _missing())
    assert version == legacy_paddle.VERSION
    np.testing.assert_array_equal(next(iter(direct.values())), probs)


def _missing():
    from wherry.runtimes.errors import PaddleOpMissing
    return PaddleOpMissing.missing("sequence_unpad", "3.3.1", "")


def test_without_the_environment_convert_names_the_missing_op_in_one_line(wherry, tmp_path, reviews, monkeypatch):
    """Offline, with no cached Paddle 2.6.2: one line naming the op and what to do, exit 2, no traceback."""
    model = export_senta_model()
    empty = tmp_path / "no-links"
    empty.mkdir()
    monkeypatch.setenv("WHERRY_TOOLS_DIR", str(tmp_path / "tools"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")             # pip reaches no index and finds no wheel
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    proc = wherry("convert", model, "--inputs", reviews, "-o", tmp_path / "out", check=2)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("wherry: error")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr and "hint:" not in proc.stderr, proc.stderr
    assert "Paddle 3.3.1 has no kernel for op sequence_unpad (a Paddle 1.x op Paddle 3 dropped)" in errors[0]
    assert "Paddle 2.6.2, whose environment cannot be made here" in errors[0] and "PyPI" in errors[0]
    assert "saved for inference" not in proc.stderr
    assert not list((tmp_path / "tools").glob("paddle-legacy-*")), "no half environment left behind"


def test_a_crash_of_paddle_262_on_random_data_asks_for_real_inputs(wherry, tmp_path):
    """Random int64 golden data gives sequence lengths of 0 and 1; Paddle 2.6.2 dies of SIGFPE on a 0."""
    proc = wherry("convert", export_senta_model(), "-o", tmp_path, check=2)
    assert "Paddle 2.6.2 crashed (SIGFPE) while computing golden outputs" in proc.stderr, proc.stderr
    assert "pass real inputs with --inputs" in proc.stderr and "report the model" not in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def test_inspect_says_which_ops_the_installed_paddle_dropped(wherry):
    """Every op is one Lite runs, but Paddle 3 cannot be the reference: inspect says so before a conversion."""
    proc = wherry("inspect", export_senta_model(), "-t", "rpi4", "--json")
    report = json.loads(proc.stdout)
    assert report["paddle_missing_ops"] == ["sequence_unpad"]
    assert any("has no op sequence_unpad" in n and "Paddle 2.6.2" in n for n in report["notes"]), report["notes"]
    text = wherry("inspect", export_senta_model(), "-t", "rpi4").stdout
    assert "has no op sequence_unpad: convert takes the golden outputs from Paddle 2.6.2" in text
