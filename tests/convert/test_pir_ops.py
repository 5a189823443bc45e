"""Every translator, verified: each op case (tests/support/op_cases.py) exported as PIR, translated, and run in
Paddle Inference against the PIR original. Adding an op to the translator adds one case."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from support.paths import CACHE, PADDLE_VERSION, SUPPORT
from support.op_cases import CASES, input_sets
from wherry import runtimes
from wherry.convert import pir, source
from wherry.runtimes import parity


@pytest.fixture(scope="session")
def pir_cases():
    """All cases exported once (one process: importing paddle dominates), cached like the other models."""
    folder = CACHE / "op-cases" / f"paddle-{PADDLE_VERSION}" / "pir"
    missing = [name for name in CASES if not (folder / name / "model.json").is_file()]
    if missing:
        subprocess.run([sys.executable, str(SUPPORT / "op_cases.py"), "pir", str(folder), *missing],
                       check=True, capture_output=True)
    return folder


def input_files(folder, name):
    """The case's input sets: inputs.npz, and for dynamic inputs one more file per further shape."""
    files = [folder / "inputs.npz"] + [folder / f"inputs.{k}.npz" for k in range(1, input_sets(name))]
    assert all(f.is_file() for f in files), "stale op-case export: remove the op-cases cache folder"
    return files


def assert_same(golden, outputs):
    assert list(outputs) == list(golden)
    assert [v.shape for v in outputs.values()] == [v.shape for v in golden.values()]
    verdicts = parity.compare(golden, outputs, {k: parity.default_tolerance("fp32") for k in golden})
    assert all(v.passed for v in verdicts), [v.to_json() for v in verdicts]
    # integer outputs (indices, counters) must be exact, not just close
    for key, value in golden.items():
        if value.dtype.kind in "iub":
            np.testing.assert_array_equal(outputs[key], value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_translation_matches_the_pir_original(name, pir_cases, tmp_path):
    folder = pir_cases / name
    kinds = pir.analyze(folder / "model.json")
    assert not [p for k in kinds.values() for p in k.problems]
    result = pir.translate(folder / "model.json", folder / "model.pdiparams", tmp_path)
    shapes = set()
    with runtimes.open(str(folder / "model.json")) as original, runtimes.open(str(result.model_file)) as translated:
        for inputs in input_files(folder, name):
            feeds = dict(np.load(inputs))
            golden = original.run(feeds)
            assert_same(golden, translated.run(feeds))
            shapes.add(tuple(v.shape for v in golden.values()))
    assert len(shapes) == input_sets(name)  # a dynamic case really ran at different shapes


RUNTIME_SHAPE_CASES = sorted(n for n in CASES if n.startswith("runtime_"))


@pytest.mark.parametrize("name", RUNTIME_SHAPE_CASES)
def test_runtime_shapes_reach_an_x86_nb(name, pir_cases, wherry, tmp_path):
    """Shapes computed at run time travel as the legacy ops' tensor inputs: inspect lists no op as computed
    at run time, and Lite's x86 .nb matches Paddle on the PIR original at the exported shape and another."""
    folder = pir_cases / name
    report = json.loads(wherry("inspect", folder / "model.json", "--json", check=0).stdout)
    assert report["targets"]["desktop-x86_64"]["lite_ok"] is True
    assert all(row["translates"] and not row["problem"] for row in report["pir_ops"].values()), report["pir_ops"]
    proc = wherry("convert", folder, "-t", "desktop-x86_64", "-o", tmp_path, "--inputs", folder / "inputs.npz",
                  "--json")
    results = {a["file"]: a for a in json.loads(proc.stdout)["bundles"][0]["report"]["verification"]["artifacts"]}
    assert results["model.x86.nb"]["status"] == "passed", results
    assert results["model.onnx"]["status"] == "passed", results
    nb = next(tmp_path.glob("*/model.x86.nb"))
    with runtimes.open(str(folder / "model.json")) as original, runtimes.open(str(nb), isolate=True) as lite:
        for inputs in input_files(folder, name)[1:]:
            feeds = dict(np.load(inputs))
            assert_same(original.run(feeds), lite.run(feeds))


def test_a_program_paddle_translated_from_legacy_has_feed_inputs_and_converts(wherry, tmp_path):
    """paddle.pir.translate_to_pir writes pd_op.feed inputs (and shape lists as vectors): read, translated and
    converted like a jit.save export, and right at two shapes."""
    folder = CACHE / "op-cases" / f"paddle-{PADDLE_VERSION}" / "feed"
    name = "runtime_reshape"
    if not (folder / name / "model.json").is_file():
        subprocess.run([sys.executable, str(SUPPORT / "op_cases.py"), "feed", str(folder), name], check=True,
                       capture_output=True)
    folder = folder / name
    assert '"1.feed"' in (folder / "model.json").read_text() and '"1.data"' not in (folder / "model.json").read_text()
    info = source.read(folder / "model.json")
    assert [(s.name, s.shape) for s in info.inputs] == [("x", (None, 3, None, None))]
    result = pir.translate(folder / "model.json", folder / "model.pdiparams", tmp_path / "legacy")
    with runtimes.open(str(folder / "model.json")) as original, runtimes.open(str(result.model_file)) as translated:
        for inputs in input_files(folder, name):
            feeds = dict(np.load(inputs))
            assert_same(original.run(feeds), translated.run(feeds))
    proc = wherry("convert", folder, "-t", "desktop-x86_64", "-o", tmp_path / "out", "--inputs", folder / "inputs.npz",
                  "--json")
    results = {a["file"]: a for a in json.loads(proc.stdout)["bundles"][0]["report"]["verification"]["artifacts"]}
    assert [results[f]["status"] for f in ("model.x86.nb", "model.onnx")] == ["passed", "passed"], results


def test_an_inherited_legacy_mode_flag_does_not_break_pir_reading(pir_cases, tmp_path):
    """FLAGS_enable_pir_api=0 in the caller's environment: the command and the API still read PIR;
    a process that already imported Paddle in legacy mode gets a clear error, not Paddle's."""
    import os

    model = pir_cases / "embedding" / "model.json"
    env = dict(os.environ, FLAGS_enable_pir_api="0")
    cli = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "convert", str(model), "--format", "onnx",
                          "-o", str(tmp_path / "cli"), "--inputs", str(model.parent / "inputs.npz")],
                         env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    script = ("import sys, paddle\nfrom wherry.convert import convert\nfrom wherry.runtimes import ModelError\n"
              "try:\n    convert(sys.argv[1], out=sys.argv[2], formats='onnx')\n"
              "except ModelError as e:\n    print('MODELERROR', e.message)\n")
    api = subprocess.run([sys.executable, "-c", script, str(model), str(tmp_path / "api")], env=env,
                         capture_output=True, text=True)
    assert "MODELERROR" in api.stdout and "FLAGS_enable_pir_api=0" in api.stdout, api.stdout + api.stderr
    assert not (tmp_path / "api").exists() or not any((tmp_path / "api").iterdir())
